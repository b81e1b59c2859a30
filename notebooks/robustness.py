# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
profile = "offline"
cache_dir = None
results_dir = None
layer_pairs = None  # list of [layer_a, layer_b]; default: up to 3 diagonal pairs (first, middle, last layer)
rule = None  # default: the profile's rule
direction = "b_to_a"
metrics = ["svcca", "rsa"]
n_boot = 20
n_perm = None  # default: the profile's
sweep_pair = None  # [layer_a, layer_b] of every sweep; default: the middle pair of layer_pairs
sweep_n_perm = 50  # shuffles per score in the SVCCA-dimension and token-budget sweeps
sweep_filters_n_perm = 10  # shuffles per score in the filter sweep (every rule x direction x setting x r cut)
sweep_r_min = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
fractions = [0.1, 0.25, 0.5, 1.0]
seed = 0
alpha = 0.05
executor = "local"  # the SAE and control bootstraps: "local" (a process per core) or "serial"

# %% [markdown]
# # How robust is it?
#
# A paired similarity score says little on its own: with corrected SVCCA on decoder rows the
# shuffled-pairing null is itself high, and the score moves with the SVCCA dimension, the filters,
# the pairing rule and direction, and the number of tokens. This chapter puts, for each layer pair,
# the SAE score next to three baselines — the **random-model control** (SAEs of a re-randomised
# model, where the profile defines one), the **raw-neuron baseline** (residual neurons paired
# directly, no SAE; MLP output-projection rows scored, as the authors' "compare LLMs" runs), and the
# **shuffled-pairing null** — with bootstrap confidence intervals over documents, then sweeps the
# choices reviewers questioned. The verdict at the end is generated from the numbers.

# %%
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from saesim import robust
from saesim.book import grid_frame, show_figure
from saesim.config import load_profile
from saesim.experiments import adjust_pvalues, settings_from_profile
from saesim.extract import load_layer

prof = load_profile(profile)
cache = Path(cache_dir) if cache_dir else Path(prof.cache_dir)
results = Path(results_dir) if results_dir else cache / "results"
out = results / "robustness"
out.mkdir(parents=True, exist_ok=True)
settings = settings_from_profile(prof, **({"n_perm": n_perm} if n_perm else {}))
rule = rule or settings.rules[0]
settings = settings.replace(rules=(rule,), directions=(direction,), metrics=tuple(metrics))
if layer_pairs is None:
    diagonal = [[la, la] for la in prof.layers("a") if la in prof.layers("b")]
    layer_pairs = [diagonal[i] for i in sorted({0, len(diagonal) // 2, len(diagonal) - 1})]
layer_pairs = [tuple(int(x) for x in p) for p in layer_pairs]
has_control = prof.control is not None
row_doc = robust.row_documents(prof, cache=cache)
display(Markdown(f"Profile `{prof.name}`: {len(layer_pairs)} layer pairs, rule `{rule}`, direction `{direction}`, "
                 f"{n_boot} bootstrap resamples of {len(set(row_doc))} documents, {settings.n_perm} shuffles; "
                 f"random-model control: {'yes' if has_control else 'not defined by this profile'}."))

# %% [markdown]
# ## Paired score against each baseline

# %%
layer_ids = sorted({("a", la) for la, _ in layer_pairs} | {("b", lb) for _, lb in layer_pairs})
raw_layers = robust.raw_neuron_layers(prof, layer_ids, cache=cache)
common = dict(rule=rule, direction=direction, metrics=metrics, n_boot=n_boot, seed=seed)
# The SAE and control bootstraps run in parallel processes; finished ones are kept in out/cells/bootstrap.
jobs = [("sae", (("a", la), ("b", lb))) for la, lb in layer_pairs]
jobs += [("control", (("a", la), ("control", lb))) for la, lb in layer_pairs
         if has_control and lb in prof.layers("control")]
done = robust.bootstrap_many(prof, [comparison for _, comparison in jobs], row_doc, settings, cache=cache, out=out,
                             executor=executor, **common)
records = {"sae": [], "control": [], "raw_neuron": []}
for (name, _), record in zip(jobs, done):
    records[name].append(record)
for la, lb in layer_pairs:
    records["raw_neuron"].append(robust.bootstrap_ci(raw_layers[("a", la)], raw_layers[("b", lb)], row_doc,
                                                     settings.replace(junk_filter=False), **common).to_record())
frames = {k: adjust_pvalues(pd.DataFrame(v)) if v else None for k, v in records.items()}
for name, frame in frames.items():
    if frame is not None:
        frame.to_parquet(out / f"bootstrap_{name}.parquet", index=False)
table = robust.control_comparison(frames["sae"], control=frames["control"], raw=frames["raw_neuron"],
                                  metrics=metrics)
table.to_parquet(out / "baselines.parquet", index=False)
for metric in metrics:
    fig = robust.plot_baselines(table, metric)
    show_figure(fig, f"robustness_baselines_{metric}",
                f"{metric} of the SAE pairs against the random-model control, the raw-neuron baseline and the "
                f"shuffled-pairing null (band: mean ± 1.96 sd), per layer pair; bars: {int(100 * 0.95)} % "
                f"percentile bootstrap CIs over documents ({n_boot} resamples). Profile {prof.name}, rule {rule}, "
                f"direction {direction}.")

# %%
effect_cols = ["layer_a", "layer_b", "n_pairs"] + [c for m in metrics for c in
                                                   (m, f"{m}_ci_low", f"{m}_ci_high", f"{m}_null_mean",
                                                    f"{m}_effect", f"{m}_effect_z", f"{m}_p")]
display(frames["sae"][[c for c in effect_cols if c in frames["sae"]]].round(4))

# %% [markdown]
# ## Multiple testing over the whole grid

# %%
# The grid `saesim run` computed (every layer pair, the profile's rules, each B latent choosing).
grid = grid_frame(prof, rules=None, directions=("b_to_a",), cache_dir=cache, results_dir=results,
                  n_perm=n_perm).frame
from saesim.plots import pvalue_histogram  # noqa: E402

fig = pvalue_histogram(grid, [f"{m}_p" for m in metrics if f"{m}_p" in grid], alpha=alpha)
show_figure(fig, "robustness_pvalues",
            f"Shuffled-pairing p-values of every cell and rule of the {prof.name} grid (each B latent "
            f"choosing; {len(grid)} tests per metric, {int(grid['n_perm'].iloc[0])} shuffles each) with the Holm and "
            f"Benjamini-Hochberg cut-offs at {alpha}. With R shuffles no p-value is below 1/(R+1), so Holm over "
            f"m tests can reject only if m/(R+1) < {alpha}.")

# %% [markdown]
# ## Sweeps

# %%
la, lb = (int(x) for x in sweep_pair) if sweep_pair else layer_pairs[len(layer_pairs) // 2]
a = load_layer(prof, "a", la, out=cache).to_sae_layer()
b = load_layer(prof, "b", lb, out=cache).to_sae_layer()
sweep_settings = settings.replace(n_perm=sweep_n_perm, compat=False)
display(Markdown(f"Every sweep below runs on one layer pair, A{la}–B{lb} (`sweep_pair`). Scores are judged against "
                 f"{sweep_n_perm} shuffles (`sweep_n_perm`), and against {sweep_filters_n_perm} in the filter sweep "
                 f"(`sweep_filters_n_perm`), which scores every combination of r cut, filter setting, pairing rule "
                 f"and direction."))
dimension = robust.sweep_svcca_dimension(a, b, sweep_settings)
dimension.to_parquet(out / "sweep_svcca_dimension.parquet", index=False)
display(dimension[["policy", "n_pairs", "svcca_k_x", "svcca_k_y", "svcca", "svcca_null_mean", "svcca_effect",
                   "pwcca", "pwcca_null_mean"]].round(4))
fig = robust.plot_sweep(dimension, "policy", metrics=("svcca", "pwcca"))
show_figure(fig, "robustness_sweep_dimension",
            f"SVCCA and PWCCA (solid) and their shuffled-null means (dotted) under each dimension policy "
            f"(variance fraction, fixed k, or 'ratio:R' = n_pairs / R components); layers A{la}–B{lb}, rule "
            f"{rule}, direction {direction}, {sweep_n_perm} shuffles.")

# %%
filters = robust.sweep_filters(a, b, sweep_settings.replace(metrics=("svcca",), n_perm=sweep_filters_n_perm),
                               r_min=tuple(sweep_r_min))
filters.to_parquet(out / "sweep_filters.parquet", index=False)
done = filters[filters["skipped"] == ""]
if (filters["skipped"] != "").any():
    display(Markdown("Skipped: " + "; ".join(sorted(set(filters.loc[filters["skipped"] != "", "skipped"])))
                     + " (top-k 20 needs a re-extraction with more cached top tokens)."))
done = done.assign(setting=[("junk off" if not j else f"junk on, top-{k}") for j, k in
                            zip(done["junk_filter"], done["top_k"])],
                   panel=done["rule"] + " · " + done["direction"])
fig = robust.plot_sweep(done, "r_min", metrics=("svcca", "kept_fraction"), hue="setting", col="panel")
show_figure(fig, "robustness_sweep_filters",
            f"SVCCA (top) and the fraction of choosers kept (bottom) against the r cut, for each junk-filter "
            f"setting, pairing rule and direction; dotted: shuffled-null mean ({sweep_filters_n_perm} shuffles); "
            f"layers A{la}–B{lb}.")

# %%
budget = robust.sweep_token_budget(a, b, row_doc, sweep_settings, fractions=fractions, seed=seed)
budget.to_parquet(out / "sweep_token_budget.parquet", index=False)
display(budget[["fraction", "n_docs", "n_tokens", "n_pairs"] + [c for m in metrics for c in (m, f"{m}_p",
                                                                                              f"{m}_effect")]].round(4))
fig = robust.plot_sweep(budget, "fraction", metrics=tuple(metrics))
show_figure(fig, "robustness_sweep_tokens",
            f"Scores (solid) and null means (dotted) on nested random shares of the documents; "
            f"layers A{la}–B{lb}, rule {rule}, direction {direction}, {sweep_n_perm} shuffles.")

# %% [markdown]
# ## Verdict

# %%
display(Markdown("\n".join(f"- {line}" for line in robust.verdict(table, alpha=alpha))))
