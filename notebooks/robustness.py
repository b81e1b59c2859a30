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

from IPython.display import HTML, Markdown, display

from saesim import vocab
from saesim.experiments.baselines import run_baselines
from saesim.experiments.bootstrap import BootstrapOptions, row_documents
from saesim.report import pages
from saesim.report.book import grid_frame, scope_note, show_figure
from saesim.report.plots import plot_baselines
from saesim.report.prose import verdict_table
from saesim.report.tables import page_style
from saesim.config import load_profile
from saesim.experiments.grid import settings_from_profile

prof = load_profile(profile)
cache = Path(cache_dir) if cache_dir else Path(prof.cache_dir)
display(HTML(scope_note(prof, cache_dir=cache)))
results = Path(results_dir) if results_dir else cache / "results"
out = results / "robustness"
settings = settings_from_profile(prof, **({"n_perm": n_perm} if n_perm else {}))
rule = rule or settings.rules[0]
settings = settings.replace(rules=(rule,), directions=(direction,), metrics=tuple(metrics))
layer_pairs = [tuple(int(x) for x in p) for p in layer_pairs] if layer_pairs else prof.baseline_layer_pairs()
controls = [vocab.label("comparison", slot) for slot in ("seed", "control", "control_all") if slot in prof.slots]
row_doc = row_documents(prof, cache=cache)
display(Markdown(f"Profile `{prof.name}`: {len(layer_pairs)} layer pairs, rule `{rule}`, direction `{direction}`, "
                 f"{n_boot} bootstrap resamples of {len(set(row_doc))} documents, {settings.n_perm} shuffles; "
                 f"controls: {', '.join(controls) if controls else 'none defined by this profile'}."))

# %% [markdown]
# ## Paired score against each baseline

# %%
options = BootstrapOptions(rule=rule, direction=direction, metrics=metrics, n_boot=n_boot, seed=seed)
# Every bootstrap of the baseline layer pairs (SAE pairs, each control, raw neurons), run in parallel processes
# and kept in out/cells/bootstrap; the tables are written to out/bootstrap_<name>.parquet and out/baselines.parquet.
frames, table = run_baselines(prof, layer_pairs, row_doc, settings, options, out=out, cache=cache, executor=executor,
                              metrics=metrics)
for metric in metrics:
    fig = plot_baselines(table, metric)
    show_figure(fig, f"robustness_baselines_{metric}",
                f"{vocab.label('measure', metric)} of the SAE pairs against the SAE-seed control (two SAEs of model "
                f"A at A's layer), the random-model controls and the raw-neuron baseline (points, with "
                f"{n_boot}-resample bootstrap 95 % intervals over documents, percentile intervals recentred on the "
                f"full-sample score), and the shuffled-pairing null (grey band: mean ± 1.96 sd; line: mean), per "
                f"layer pair. Profile {prof.name}, rule {rule}, direction {direction}.")

# %%
# The page's one multiple-testing family: every cell and rule of the grid `saesim run` computed
# (each B latent choosing), Holm-adjusted per measure; every adjusted p-value on this page is over it.
grid = grid_frame(prof, rules=None, directions=("b_to_a",), cache_dir=cache, results_dir=results,
                  n_perm=n_perm).frame
display(page_style(pages.robustness_effects(frames["sae"], grid, metrics),
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
wrap = [{"selector": "td", "props": "white-space: normal; min-width: 7.5em; text-align: left;"}]
for measure, rule_name, view in pages.verdict_views(verdicts):
    display(page_style(view, f"Verdict for {measure} ({rule_name}, {direction}) at each baseline layer "
                             f"pair: the SAE score [bootstrap 95 % interval], its effect over the shuffled null, "
                             f"its p Holm-adjusted over the page's family ({len(grid)} grid tests per measure), "
                             f"and where it stands against each baseline ('above': its interval lies entirely "
                             f"above the baseline's; * a point used for a missing interval); share of seed "
                             f"floor: its effect over the null as a fraction of two SAEs of model A's")
            .set_table_styles(wrap, overwrite=False))
