# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
profile = "offline"
layers_a = None
layers_b = None
rule = "first_index"
rules = ["first_index", "many_to_one", "max_corr", "mutual", "hungarian"]
directions = ["b_to_a", "a_to_b"]
rule_pairs = None  # [[A layer, B layer], ...] of the every-rule section; default: up to 3 diagonal pairs (first, middle, last)
rule_n_perm = 100  # permutations of the every-rule section; None: the page's n_perm (None: the profile's)
rule_metrics = ["svcca", "rsa"]  # measures of the every-rule section (add "linear_cka" for the third)
n_perm = None
seed = 0
compat = False
cache_dir = None
results_dir = None
figures_dir = "figures"

# %% [markdown]
# (many-to-one)=
# # Many-to-1 pairing and the other pairing rules
#
# Before the 1-1 step, many B latents may pick the same A latent (a {term}`hub`). The paper shows
# this {term}`many-to-1` pairing in its appendix (**A6** Pythia, **A7** Gemma), beside the 1-1
# results of the main text. This page shows it, the two side by side, and every other pairing rule
# ({term}`mutual nearest neighbours`, {term}`Hungarian optimal assignment <1-1 (Hungarian)>`,
# {term}`keeping the best-correlated chooser <1-1 (best correlation)>`) against the paper's
# {term}`first-occurrence rule <1-1 (first occurrence)>`, in both directions
# ({term}`each B latent choosing an A latent <B picks A>`, as the paper, and
# {term}`the reverse <A picks B>`). The {ref}`glossary` defines each rule.

# %%
from IPython.display import HTML, display

from saesim import vocab
from saesim.report import book, pages, plots, tables
from saesim.report.frames import fmt_number

common = dict(layers_a=layers_a, layers_b=layers_b, cache_dir=cache_dir, results_dir=results_dir, n_perm=n_perm,
              seed=seed, compat=compat)
many = book.grid_frame(profile, "full_space", rules=["many_to_one"], directions=["b_to_a"], **common)
one = book.grid_frame(profile, "full_space", rules=[rule], directions=["b_to_a"], **common)
labels = dict(label_a=many.label_a, label_b=many.label_b)
display(HTML(book.scope_note(profile, cache_dir=cache_dir)))

# %%
# Multiple testing on this page: each grid (one comparison, one rule, one direction, every layer pair) is
# one family; Holm adjusts the tail p-values over it.
m, o = tables.page_family(many.frame), tables.page_family(one.frame)
book.glue_fields(pages.many_to_one_numbers(m, o), prefix="mo_", rule=rule)

# %% [markdown]
# ## Many-to-1 before 1-1 (A6–A7)
#
# **Multiple testing on this page.** Each grid (one comparison under one rule and direction, every
# layer pair) is one family per measure. A layer pair is *above its null* when its p-value,
# Holm-adjusted over that grid's layer pairs, is at most 0.05 and its score exceeds the null mean;
# the p-values are the permutation ones, with a generalised-Pareto fit of the null's tail where too
# few shuffles reach the score ({ref}`significance`).
#
# Effect first: under many-to-1 pairing, against the hub-preserving null, the largest RSA excess is
# {glue:text}`mo_top_many:.3f` (A {glue:text}`mo_top_many_a` – B {glue:text}`mo_top_many_b`,
# z = {glue:text}`mo_top_many_z:.1f`); after the {glue:text}`mo_rule` 1-1 rule it is
# {glue:text}`mo_top_one:.3f` (A {glue:text}`mo_top_one_a` – B {glue:text}`mo_top_one_b`,
# z = {glue:text}`mo_top_one_z:.1f`). The median corrected-SVCCA excess is
# {glue:text}`mo_svcca_excess_many:.3f` many-to-1 and {glue:text}`mo_svcca_excess_one:.3f` 1-1.
# Above their null after Holm: {glue:text}`mo_rsa_above_many` of {glue:text}`mo_n_cells_many`
# layer pairs for RSA and {glue:text}`mo_svcca_above_many` for SVCCA many-to-1;
# {glue:text}`mo_rsa_above_one` of {glue:text}`mo_n_cells_one` and {glue:text}`mo_svcca_above_one`
# 1-1.

# %%
fig = plots.heatmap_panels(m, ["rsa_excess", "svcca_excess"], shared_scale=True, **labels)
book.show_figure(fig, "figA6_many_to_one_effect",
                 plots.caption(many.meta(), "Many-to-1 pairing (before 1-1): paired RSA (a) and corrected SVCCA "
                                            "(b) minus their hub-preserving null means per layer pair (0 = null "
                                            "level, white)"),
                 out_dir=figures_dir)

# %% [markdown]
# In raw scores, with many-to-1 pairing the highest paired SVCCA is {glue:text}`mo_best_many:.3f`
# (A layer {glue:text}`mo_best_many_a`, B layer {glue:text}`mo_best_many_b`); after the
# {glue:text}`mo_rule` 1-1 rule it is {glue:text}`mo_best_one:.3f`. The median layer pair keeps
# {glue:text}`mo_pairs_many` pairs many-to-1 and {glue:text}`mo_pairs_one` after 1-1; the biggest
# hub (one A latent chosen by many B latents) took {glue:text}`mo_biggest_hub` partners.

# %%
fig = plots.heatmap_panels(m, ["svcca", "rsa"], **labels)
book.show_figure(fig, "figA6_many_to_one_svcca_rsa",
                 plots.caption(many.meta(), "Many-to-1 pairing (before 1-1): paired SVCCA (a) and RSA (b) per "
                                            "layer pair (appendix A6/A7)"),
                 out_dir=figures_dir)

# %% [markdown]
# ## Many-to-1 against a null that keeps the hubs
#
# In many-to-1 pairing the paired A rows repeat (a hub's row once per B latent that chose it).
# Shuffling rows breaks those repeats and gives a null that is too low; the null used here permutes
# the distinct A partners among the groups of B latents that share one (B rows fixed, group sizes
# kept). The table reads each comparison of the profile under both rules against its own null:
# if the random-model controls come out far above their null in many-to-1 while they do not in 1-1,
# the many-to-1 "similarity" is an artefact of the hubs.

# %%
hub_nulls = pages.hub_null_table({
    which: pages.comparison_grids(profile, "full_space", rules=[which], directions=["b_to_a"], cache_dir=cache_dir,
                                  results_dir=results_dir, n_perm=n_perm, seed=seed, compat=compat)
    for which in ("many_to_one", rule)})
book.glue_value("mo_hub_table_rows", len(hub_nulls))
(hub_nulls.style.format({vocab.column_label("median_excess"): lambda v: fmt_number(v, ".3f"),
                         "median z": lambda v: fmt_number(v, ".1f")}).hide(axis="index")
 .set_caption("Each comparison under many-to-1 (hub-preserving null) and 1-1 (row shuffle): median effect "
              "over the null, median z, layer pairs with a raw p ≤ 0.05 (descriptive) and layer pairs above "
              "their null (Holm over that grid's layer pairs, one family per row)"))

# %%
fig = plots.heatmap_panels(m, ["svcca_null_mean", "svcca_p_holm", "rsa_null_mean", "rsa_p_holm"], **labels)
book.show_figure(fig, "figA7_many_to_one_null_and_p",
                 plots.caption(many.meta(), f"Many-to-1 pairing: null means and p-values, Holm-adjusted over the "
                                            f"grid's {len(m)} layer pairs, of SVCCA (a, b) and RSA (c, d) "
                                            f"(appendix A7)"),
                 out_dir=figures_dir)

# %%
fig = plots.heatmap_panels(m, ["mean_best_r", "mean_r_filtered", "n_pairs", "n_unique_a"], **labels)
book.show_figure(fig, "figA6_many_to_one_correlation_counts",
                 plots.caption(many.meta(), "Many-to-1 pairing: mean best correlation (a), correlation after the "
                                            "filters (b), pairs kept (c) and distinct A latents (d) "
                                            "(appendix A6/A7 count tables)"),
                 out_dir=figures_dir)

# %%
tables.counts_view(m, "Appendix A6/A7 count table analogue: pairs left after each filter, many-to-1, per layer pair")

# %% [markdown]
# ## Many-to-1 and 1-1 side by side

# %%
fig = plots.rule_heatmaps([("many_to_one", m), (rule, o)], ["svcca", "rsa"], **labels)
book.show_figure(fig, "fig_many_to_one_vs_one_to_one",
                 plots.caption(one.meta(rule=f"many_to_one / {rule}",
                                        null_kind="hub partners permuted (many-to-1) / shuffled pairings (1-1)"),
                               "Many-to-1 and 1-1 side by side: paired SVCCA and RSA per layer pair"),
                 out_dir=figures_dir)

# %% [markdown]
# ## Every pairing rule, both directions
#
# Each rule keeps a different set of pairs. Every (rule, direction) costs as much as the whole grid
# above, so this section scores a few layer pairs only: {glue:text}`mo_rule_pairs` (the
# `rule_pairs` parameter; by default the first, middle and last layer that both models have,
# each paired with itself), with
# {glue:text}`mo_rule_n_perm` permutations per score (`rule_n_perm`). The table summarises each
# (rule, direction) over those pairs; the figure shows the paired SVCCA of each against its
# null (shuffled pairings for 1-1 rules; for many-to-1, the distinct hub partners permuted among
# the groups that share one, which keeps the hubs). The best rule by mean SVCCA is
# {glue:text}`mo_best_rule`
# ({glue:text}`mo_best_rule_direction`).

# %%
rule_pairs = rule_pairs or many.profile.baseline_layer_pairs()
every = book.grid_frame(profile, "full_space", rules=rules, directions=directions, pairs=rule_pairs,
                        cache_dir=cache_dir, results_dir=results_dir, executor="local",
                        n_perm=rule_n_perm if rule_n_perm is not None else n_perm, seed=seed, compat=compat,
                        metrics=rule_metrics)
f = every.frame
pair_names = [f"A{la}–B{lb}" for la, lb in every.pairs]
summary, rule_numbers = pages.rule_summary(f, every.pairs)
book.glue_fields(rule_numbers, prefix="mo_", rule_n_perm=every.settings.n_perm)
tables.split_table(summary, [c for c in summary if c != vocab.column_label("svcca_p_le_05")],
                   "Every pairing rule and direction over the layer pairs above: mean and largest paired SVCCA, "
                   "mean RSA, median pairs kept and layer pairs whose SVCCA is above its null (Holm over the listed "
                   "layer pairs of each rule and direction), best mean SVCCA first; the layer pairs with a raw "
                   "SVCCA p ≤ 0.05 (descriptive) one click away",
                   formats={vocab.column_label("median_pairs"): ".1f"})

# %%
fig = plots.rule_bars(f, pairs=every.pairs, rules=rules, directions=directions, metric="svcca", **labels)
book.show_figure(fig, "fig_rules_directions_svcca",
                 plots.caption(every.meta(), f"Paired SVCCA (bars) and its null mean (black "
                                             f"ticks) for every pairing rule ({plots.labels_text('rule', rules)}) "
                                             f"and direction ({plots.labels_text('direction', directions)}: one "
                                             f"panel each), on the layer pairs "
                                             f"{', '.join(pair_names)} with {every.settings.n_perm} permutations per "
                                             f"score"),
                 out_dir=figures_dir)
