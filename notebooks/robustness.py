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
layer_pairs = None  # list of [layer_a, layer_b]; default: A's first, middle and last layer, B's at the same depth
rule = None  # default: the profile's rule
direction = "b_to_a"
metrics = ["svcca", "rsa"]
n_boot = 50  # bootstrap resamples over documents (offline: about 1.3-2.5 s each per comparison; 200 would take an hour)
n_perm = None  # default: the profile's
seed = 0
alpha = 0.05
executor = "local"  # the SAE and control bootstraps: "local" (a process per core) or "serial"

# %% [markdown]
# # How robust is it?
#
# A paired similarity score says little on its own: with corrected SVCCA on decoder rows the
# shuffled-pairing null is itself high. This chapter puts, for each layer pair,
# the SAE score next to its controls — the **SAE-seed control** (two SAE sets of model A at the
# same layer: how much SAE training noise alone leaves shared), the **random-model controls**
# (SAEs of re-randomised copies of model A in A's place: the authors' variant, which keeps the
# embeddings and norms, and one with every tensor resampled), the **raw-neuron baseline** (residual
# neurons paired directly, no SAE; MLP output-projection rows scored, as the authors' "compare LLMs"
# runs), and the **null** — with bootstrap confidence intervals over documents. The verdict at the
# end is generated from the numbers; the next chapter, {doc}`sweeps`, varies the choices reviewers
# questioned.

# %%
from pathlib import Path

import pandas as pd
from IPython.display import HTML, Markdown, display

from saesim.experiments.baselines import bootstrap_many, bootstrap_raw_neurons, control_comparison
from saesim.experiments.bootstrap import BootstrapOptions, row_documents
from saesim.report.book import grid_frame, scope_note, show_figure
from saesim.report.plots import plot_baselines
from saesim.report.prose import family_p_value, verdict_table
from saesim.config import load_profile
from saesim.experiments.grid import adjust_pvalues, settings_from_profile

prof = load_profile(profile)
cache = Path(cache_dir) if cache_dir else Path(prof.cache_dir)
display(HTML(scope_note(prof, cache_dir=cache)))
results = Path(results_dir) if results_dir else cache / "results"
out = results / "robustness"
out.mkdir(parents=True, exist_ok=True)
settings = settings_from_profile(prof, **({"n_perm": n_perm} if n_perm else {}))
rule = rule or settings.rules[0]
settings = settings.replace(rules=(rule,), directions=(direction,), metrics=tuple(metrics))
layer_pairs = [tuple(int(x) for x in p) for p in layer_pairs] if layer_pairs else prof.baseline_layer_pairs()
has_control = prof.control is not None
controls = [slot for slot in ("seed", "control", "control_all") if slot in prof.slots]
row_doc = row_documents(prof, cache=cache)
display(Markdown(f"Profile `{prof.name}`: {len(layer_pairs)} layer pairs, rule `{rule}`, direction `{direction}`, "
                 f"{n_boot} bootstrap resamples of {len(set(row_doc))} documents, {settings.n_perm} shuffles; "
                 f"controls: {', '.join(controls) if controls else 'none defined by this profile'}."))

# %% [markdown]
# ## Paired score against each baseline

# %%
options = BootstrapOptions(rule=rule, direction=direction, metrics=metrics, n_boot=n_boot, seed=seed)
# The SAE and control bootstraps run in parallel processes; finished ones are kept in out/cells/bootstrap.
jobs = [("sae", (("a", la), ("b", lb))) for la, lb in layer_pairs]
# The seed control compares A's layer with the same layer of A's second SAE set; the random models
# stand in A's place against B.
jobs += [("seed", (("a", la), ("seed", la))) for la, _ in dict.fromkeys(layer_pairs)
         if "seed" in controls and la in prof.layers("seed")]
jobs += [(slot, ((slot, la), ("b", lb))) for slot in ("control", "control_all") if slot in controls
         for la, lb in layer_pairs if la in prof.layers(slot)]
done = bootstrap_many(prof, [comparison for _, comparison in jobs], row_doc, settings, options, cache=cache, out=out,
                      executor=executor)
records = {"sae": [], "seed": [], "control": [], "control_all": [], "raw_neuron": []}
for (name, _), record in zip(jobs, done):
    records[name].append(record)
# The raw-neuron baseline pairs the models' residual neurons (no SAE); kept like the others.
records["raw_neuron"] = bootstrap_raw_neurons(prof, layer_pairs, row_doc, settings, options, cache=cache, out=out)
frames = {k: adjust_pvalues(pd.DataFrame(v)) if v else None for k, v in records.items()}
for name, frame in frames.items():
    if frame is not None:
        frame.to_parquet(out / f"bootstrap_{name}.parquet", index=False)
table = control_comparison(frames["sae"], seed=frames["seed"], control=frames["control"],
                           control_all=frames["control_all"], raw=frames["raw_neuron"], metrics=metrics)
table.to_parquet(out / "baselines.parquet", index=False)
for metric in metrics:
    fig = plot_baselines(table, metric)
    show_figure(fig, f"robustness_baselines_{metric}",
                f"{metric.upper()} of the SAE pairs against the SAE-seed control (two SAEs of model A at A's layer), the "
                f"random-model controls and the raw-neuron baseline (points, with {n_boot}-resample bootstrap 95 % "
                f"intervals over documents, percentile intervals recentred on the full-sample score), and the "
                f"shuffled-pairing null (grey band: mean ± 1.96 sd; line: mean), per layer pair. Profile "
                f"{prof.name}, rule {rule}, direction {direction}.")

# %%
# The page's one multiple-testing family: every cell and rule of the grid `saesim run` computed
# (each B latent choosing), Holm-adjusted per measure; every adjusted p-value on this page is over it.
grid = grid_frame(prof, rules=None, directions=("b_to_a",), cache_dir=cache, results_dir=results,
                  n_perm=n_perm).frame
sae_frame = frames["sae"].drop(columns=[c for c in frames["sae"] if c.endswith(("_p_holm", "_p_bh"))])
for m in metrics:
    sae_frame[f"{m}_p_holm"] = [family_p_value(grid, r.layer_a, r.layer_b, r.rule, r.direction, m)
                                for r in sae_frame.itertuples()]
from saesim.report.tables import page_style  # noqa: E402

effects = pd.DataFrame([{"layer pair": f"A{r['layer_a']}–B{r['layer_b']}", "measure": m.upper(),
                         "pairs": int(r["n_pairs"]),
                         "score [95 % CI]": f"{r[m]:.3f} [{r[f'{m}_ci_low']:.3f}, {r[f'{m}_ci_high']:.3f}]",
                         "null mean": r[f"{m}_null_mean"], "effect": r[f"{m}_effect"], "z": r[f"{m}_effect_z"],
                         "p": r[f"{m}_p"], "p (Holm)": r[f"{m}_p_holm"]}
                        for r in sae_frame.to_dict("records") for m in metrics])
display(page_style(effects.set_index(["layer pair", "measure"]),
                   f"SAE pairs per baseline layer pair: score with its {n_boot}-resample bootstrap interval, null "
                   f"mean, effect over the null, its z, its p and its p Holm-adjusted over the page's family "
                   f"({len(grid)} grid tests per measure)"))

# %% [markdown]
# ## Multiple testing: one family, the whole grid
#
# The page's p-values are adjusted over one family per measure: every cell and rule of the grid
# (each B latent choosing), as the figure below shows them; the verdict quotes the same adjusted
# values.

# %%
from saesim.report.plots import pvalue_histogram  # noqa: E402

fig = pvalue_histogram(grid, [f"{m}_p" for m in metrics if f"{m}_p" in grid], alpha=alpha)
show_figure(fig, "robustness_pvalues",
            f"Shuffled-pairing p-values of every cell and rule of the {prof.name} grid (each B latent "
            f"choosing; {len(grid)} tests per metric, {int(grid['n_perm'].iloc[0])} shuffles each) with the Holm and "
            f"Benjamini-Hochberg cut-offs at {alpha}. With R shuffles no p-value is below 1/(R+1), so Holm over "
            f"m tests can reject only if m/(R+1) < {alpha}.")

# %% [markdown]
# ## Verdict

# %%
verdicts = verdict_table(table, family=grid, alpha=alpha)
shown = verdicts.assign(**{
    "effect over null": verdicts["effect over null"].map("{:+.3f}".format),
    "p (Holm)": verdicts["p (Holm)"].map("{:.3g}".format),
    **({"share of seed floor": verdicts["share of seed floor"].map("{:.0%}".format)}
       if "share of seed floor" in verdicts else {})})
wrap = [{"selector": "td", "props": "white-space: normal; min-width: 7.5em; text-align: left;"}]
for (measure, rule_name), part in shown.groupby(["measure", "rule"], sort=False):
    view = part.drop(columns=["measure", "rule"]).set_index("layer pair").T.fillna("")
    display(page_style(view, f"Verdict for {measure.upper()} ({rule_name}, {direction}) at each baseline layer "
                             f"pair: the SAE score [bootstrap 95 % interval], its effect over the shuffled null, "
                             f"its p Holm-adjusted over the page's family ({len(grid)} grid tests per measure), "
                             f"and where it stands against each baseline ('above': its interval lies entirely "
                             f"above the baseline's; * a point used for a missing interval); share of seed "
                             f"floor: its effect over the null as a fraction of two SAEs of model A's")
            .set_table_styles(wrap, overwrite=False))
