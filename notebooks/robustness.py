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
layer_pairs = None  # list of [A layer, B layer]; default: A's first, middle and last layer, B's at the same depth
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
# the SAE score next to its controls — **{term}`two SAEs of model A`** at the same layer, differing
# by seed (the agreement two SAEs of one model reach: the reference the cross-model score is read
# against, reported as a share of its effect, not a baseline to beat), the
# **{term}`random-model controls <re-randomised controls>`** (SAEs of re-randomised copies of model
# A in A's place: the authors' variant, which keeps the embeddings and norms, and one with every
# tensor resampled), the **{term}`raw-neuron baseline`** (residual neurons paired directly, no SAE;
# MLP output-projection rows scored, as the authors' "compare LLMs" runs), and the
# **{term}`null`** — with {term}`bootstrap confidence intervals <bootstrap interval>` over
# documents. The verdict at the
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
                f"{vocab.label('measure', metric)} of the SAE pairs beside two SAEs of model A at A's layer (the "
                f"reference), against the random-model controls and the raw-neuron baseline (points, with "
                f"{n_boot}-resample bootstrap 95 % intervals over documents, percentile intervals recentred on the "
                f"full-sample score), and the shuffled-pairing null (grey band: mean ± 1.96 sd; line: mean), per "
                f"layer pair. Profile {prof.name}, {vocab.label('rule', rule)}, {vocab.label('direction', direction)}.")

# %%
# The page's families: A against B's grid, one per rule and direction (its layer pairs), per measure.
grid = grid_frame(prof, rules=None, directions=("b_to_a",), cache_dir=cache, results_dir=results,
                  n_perm=n_perm).frame
n_family = len(grid[(grid["rule"] == rule) & (grid["direction"] == direction)])
display(page_style(pages.robustness_effects(frames["sae"], grid, metrics),
                   f"SAE pairs per baseline layer pair: score with its {n_boot}-resample bootstrap interval, null "
                   f"mean, effect over the null, its z, its p-value Holm-adjusted over the {n_family} layer pairs of "
                   f"A against B's grid ({vocab.label('rule', rule)}, {vocab.label('direction', direction)}), and "
                   f"whether the pair lies above its null"))

# %% [markdown]
# ## Is each layer pair above its null?
#
# One framework for the whole book ({ref}`significance`): a layer pair is above its null when its
# p-value, Holm-adjusted over the layer pairs of its comparison's grid (one rule, one direction),
# is at most 0.05 and its score exceeds the null mean. Where fewer than ten shuffles reach the
# score, the p-value comes from a generalised Pareto fit to the null's upper tail, so it can fall
# below 1/(R + 1); the histogram shows those p-values with Holm's cut-off.

# %%
from saesim.report.plots import pvalue_histogram  # noqa: E402

family = grid[(grid["rule"] == rule) & (grid["direction"] == direction)]
fig = pvalue_histogram(family, [f"{m}_p_tail" for m in metrics if f"{m}_p_tail" in family], alpha=alpha)
show_figure(fig, "robustness_pvalues",
            f"The book's p-values (permutation, tail fit where few of the {int(family['n_perm'].iloc[0])} shuffles "
            f"reach the score) of the {len(family)} layer pairs of the {prof.name} grid ({vocab.label('rule', rule)}, "
            f"{vocab.label('direction', direction)}), "
            f"with Holm's cut-off at {alpha}.")

# %% [markdown]
# ## Verdict

# %%
verdicts = verdict_table(table, family=grid, alpha=alpha)  # decisions: saesim.report.verdicts
wrap = [{"selector": "td", "props": "white-space: normal; min-width: 7.5em; text-align: left;"}]
for measure, rule_name, view in pages.verdict_views(verdicts):
    display(page_style(view, f"Verdict for {measure} ({rule_name}, {vocab.label('direction', direction)}) at each "
                             f"baseline layer pair: the SAE score [bootstrap 95 % interval], its effect over the "
                             f"shuffled null, its p-value Holm-adjusted over the {n_family} layer pairs of A against "
                             f"B's grid, "
                             f"and where it stands against each baseline ('above' / 'below': its interval lies "
                             f"wholly above / below the baseline's, 'overlaps' otherwise; * a point used for a "
                             f"missing interval); two SAEs of model A are shown for reference, and the share is "
                             f"the pair's effect over the null as a fraction of theirs")
            .set_table_styles(wrap, overwrite=False))
