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
sweep_pair = None  # [A layer, B layer] of every sweep; default: the middle diagonal pair of the robustness chapter
rule = None  # default: the profile's rule
direction = "b_to_a"
metrics = ["svcca", "rsa"]
sweep_n_perm = 50  # shuffles per score in the SVCCA-dimension and token-budget sweeps
sweep_filters_n_perm = 10  # shuffles per score in the filter sweep (every rule x direction x setting x r cut)
sweep_r_min = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
fractions = [0.1, 0.25, 0.5, 1.0]
seed = 0
frontier = True  # the SAE frontier: two SAEs per point, about 5.25x the profile's SAE training per seed

# %% [markdown]
# # Which choices move the score?
#
# The paired score moves with the SVCCA dimension, the filters, the pairing rule and direction, and
# the number of tokens. Each sweep below varies one of these choices on one layer pair and keeps the
# shuffled-pairing null beside every score, so a change of the score can be told from a change of
# its null. {doc}`robustness` gives the baselines and confidence intervals.

# %%
from pathlib import Path

from IPython.display import HTML, Markdown, display

from saesim import vocab
from saesim.experiments import sweeps
from saesim.experiments.bootstrap import row_documents
from saesim.experiments.sae_frontier import frontier_for_profile, projection
from saesim.report.book import scope_note, show_figure
from saesim.report.frontier import (frontier_caption, frontier_table, frontier_text, recipe_axes_caption,
                                    recipe_axes_text)
from saesim.report.plots import plot_sae_frontier, plot_sae_recipe_axes, plot_sweep, policy_label
from saesim.report.tables import labelled
from saesim.config import load_profile
from saesim.experiments.grid import settings_from_profile
from saesim.extract.pipeline import load_layer

prof = load_profile(profile)
cache = Path(cache_dir) if cache_dir else Path(prof.cache_dir)
display(HTML(scope_note(prof, cache_dir=cache)))
results = Path(results_dir) if results_dir else cache / "results"
out = results / "robustness"
settings = settings_from_profile(prof)
rule = rule or settings.rules[0]
la, lb = (int(x) for x in sweep_pair) if sweep_pair else sweeps.default_sweep_pair(prof)
a = load_layer(prof, "a", la, out=cache).to_sae_layer()
b = load_layer(prof, "b", lb, out=cache).to_sae_layer()
row_doc = row_documents(prof, cache=cache)
sweep_settings = settings.replace(rules=(rule,), directions=(direction,), metrics=tuple(metrics),
                                  n_perm=sweep_n_perm, compat=False)
display(Markdown(f"Profile `{prof.name}`. Every sweep below runs on one layer pair, A{la}–B{lb} (`sweep_pair`), "
                 f"rule `{rule}`, direction `{direction}`. Scores are judged against {sweep_n_perm} shuffles "
                 f"(`sweep_n_perm`), and against {sweep_filters_n_perm} in the filter sweep "
                 f"(`sweep_filters_n_perm`), which scores every combination of r cut, filter setting, pairing rule "
                 f"and direction."))

# %% [markdown]
# ## SVCCA dimension

# %%
# Each sweep is kept under its parameters (results/robustness/kept/): a rebuild reads it back; the last
# build's table is also written to results/robustness/<sweep>.parquet.
key = {"profile": prof.key(), "settings": sweep_settings.key(), "pair": [la, lb]}
dimension = sweeps.kept_table(out, "sweep_svcca_dimension", key,
                              lambda: sweeps.sweep_svcca_dimension(a, b, sweep_settings))
display(labelled(dimension.assign(policy=lambda t: t["policy"].map(policy_label)),
                 ["policy", "n_pairs", "svcca_k_x", "svcca_k_y", "svcca", "svcca_null_mean", "svcca_effect", "pwcca",
                  "pwcca_null_mean"], f"SVCCA and PWCCA under each dimension policy, A{la}–B{lb} (pairs kept and the "
                                      f"PWCCA null mean one click away)",
                 shown=["policy", "svcca_k_x", "svcca_k_y", "svcca", "svcca_null_mean", "svcca_effect", "pwcca"]))
fig = plot_sweep(dimension, "policy", metrics=("svcca", "pwcca"))
show_figure(fig, "robustness_sweep_dimension",
            f"SVCCA and PWCCA (points) and their shuffled-null means (dashes) under each dimension policy: "
            f"a share of the variance kept, a fixed number of components k, or k = n/R components for n pairs; "
            f"the policies are categories, so the points are not joined; layers A{la}–B{lb}, rule "
            f"{vocab.label('rule', rule)}, {vocab.label('direction', direction)}, {sweep_n_perm} shuffles.")

# %% [markdown]
# ## Filters, pairing rule and direction

# %%
top_k_cached = sweeps.cached_top_k(a, b)  # the junk filter can only look at the top tokens the layers cache
top_ks = [k for k in (5, 10, 20) if k <= top_k_cached]
filters = sweeps.kept_table(
    out, "sweep_filters", {**key, "n_perm": sweep_filters_n_perm, "r_min": sweep_r_min, "top_k": top_ks},
    lambda: sweeps.sweep_filters(a, b, sweep_settings.replace(metrics=("svcca",), n_perm=sweep_filters_n_perm),
                                 r_min=tuple(sweep_r_min), top_k=tuple(top_ks)))
done = filters[filters["skipped"] == ""]
done = done.assign(setting=[("junk off" if not j else f"junk on, top-{k}") for j, k in
                            zip(done["junk_filter"], done["top_k"])])
fig = plot_sweep(done, "r_min", metrics=("svcca", "kept_fraction"), hue="setting", col="rule", style="direction")
show_figure(fig, "robustness_sweep_filters",
            f"SVCCA (top row) and the fraction of choosers kept (bottom row) against the r cut, one panel per "
            f"pairing rule; colour: junk-filter setting (top-k of {', '.join(map(str, top_ks))} cached top "
            f"tokens, or off), line style: direction; dotted: shuffled-null mean ({sweep_filters_n_perm} "
            f"shuffles); layers A{la}–B{lb}.")

# %% [markdown]
# ## Token budget

# %%
budget = sweeps.kept_table(out, "sweep_token_budget", {**key, "fractions": fractions, "seed": seed},
                           lambda: sweeps.sweep_token_budget(a, b, row_doc, sweep_settings, fractions=fractions,
                                                             seed=seed))
# the sweep's budgets are one family: <metric>_p_holm is Holm over them (sweeps.sweep_token_budget)
display(labelled(budget, ["fraction", "n_docs", "n_tokens", "n_pairs"]
                 + [c for m in metrics for c in (m, f"{m}_p", f"{m}_p_holm", f"{m}_effect")],
                 f"Effects over the null and p-values Holm-adjusted over the sweep's {len(budget)} budgets (one "
                 f"family; tail fit where few shuffles reach the score) on nested shares of the documents, "
                 f"A{la}–B{lb}; the shares, raw scores and raw permutation p-values one click away",
                 shown=["n_docs", "n_tokens", "n_pairs"]
                 + [c for m in metrics for c in (f"{m}_effect", f"{m}_p_holm")]))
fig = plot_sweep(budget, "fraction", metrics=tuple(metrics))
show_figure(fig, "robustness_sweep_tokens",
            f"Scores (solid) and null means (dotted) on nested random shares of the documents; "
            f"layers A{la}–B{lb}, {vocab.label('rule', rule)}, {vocab.label('direction', direction)}, "
            f"{sweep_n_perm} shuffles.")

# %% [markdown]
# ## How stable can the SAEs get on this machine?
#
# Two SAEs of one layer that differ only by seed should find the same latents; how many they share
# depends on how long they train. This section trains two SAEs per point of a small design around the
# profile's SAE recipe (fewer training tokens, more epochs, a narrower SAE; and, at a quarter of the
# tokens, another k, Adam, half and twice the learning rate, and inputs scaled as SAELens scales them)
# on this machine's CPU and measures their seed stability and held-out FVU at each point, with the
# training time. A line fitted against log2(training tokens) says what the targets would take where the
# points measured do not reach them.

# %%
# Kept under its parameters (results/robustness/kept/): a rebuild reads it back.
if frontier:
    front = frontier_for_profile(prof, cache=cache, out=out)
    proj = projection(front)
    show_figure(plot_sae_frontier(front, proj), "fig_sae_frontier", frontier_caption(front, proj))
    display(Markdown(frontier_text(front, proj)))
    show_figure(plot_sae_recipe_axes(front), "fig_sae_recipe_axes", recipe_axes_caption(front))
    display(Markdown(recipe_axes_text(front)))
    display(frontier_table(front))
else:
    display(Markdown("The SAE frontier was not run for this build (`frontier = False`)."))
