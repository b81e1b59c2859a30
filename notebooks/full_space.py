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
direction = "b_to_a"
n_perm = None
seed = 0
compat = False
r_min = None
junk_filter = None
bar_layer_a = None
cache_dir = None
results_dir = None
figures_dir = "figures"

# %% [markdown]
# (full-space)=
# # The full SAE space, layer by layer
#
# Every SAE latent of model B is paired with the latent of model A whose activations correlate
# best with it over the same tokens; the pairs go through the filters (non-concept tokens, shared
# top token, 1-1, r > 0.1), and the paired decoder rows are compared with {term}`SVCCA` and
# {term}`RSA`, each judged against shuffled pairings (the {term}`shuffled null`). This page is the
# paper's **Fig. 3** (Pythia) / **Fig. 4** (Gemma) and appendix **A1–A5** and **A8** for the
# profile it was executed on. The {ref}`glossary` defines every measure, test and pairing rule.

# %%
from IPython.display import HTML, Markdown, display

from saesim import vocab
from saesim.report import book, pages, plots, prose, tables

grid = book.grid_frame(profile, "full_space", rules=[rule], directions=[direction], layers_a=layers_a,
                       layers_b=layers_b, cache_dir=cache_dir, results_dir=results_dir, n_perm=n_perm,
                       seed=seed, compat=compat, r_min=r_min, junk_filter=junk_filter)
# The page's one multiple-testing family: its layer pairs (one rule, one direction), per measure.
frame = tables.page_family(grid.frame)
labels = dict(label_a=grid.label_a, label_b=grid.label_b)
display(HTML(book.scope_note(profile, cache_dir=cache_dir)))

# %%
dims, dims_short = plots.dims_words(grid.settings.svcca_variance), plots.policy_label(grid.settings.svcca_variance)
book.glue_fields(pages.full_space_numbers(frame), prefix="fs_", profile=grid.profile.name,
                 rule=vocab.label("rule", rule, default=rule), dims=dims,
                 k_with_n=plots.dims_with_pairs(grid.settings.svcca_variance))

# %% [markdown]
# ## Effect over the null first (Figs. 3–4)
#
# On profile **{glue:text}`fs_profile`** with the **{glue:text}`fs_rule`** pairing rule ({ref}`glossary`), the layer
# pair whose paired RSA rises most above its null is A layer {glue:text}`fs_top_rsa_a` – B layer
# {glue:text}`fs_top_rsa_b`: RSA {glue:text}`fs_top_rsa:.3f` against a null mean of
# {glue:text}`fs_top_rsa_null:.3f`, an {term}`excess <excess over null>` of {glue:text}`fs_top_rsa_excess:.3f`
# ({term}`z` = {glue:text}`fs_top_rsa_z:.1f`). For corrected SVCCA the largest excess is
# {glue:text}`fs_top_svcca_excess:.3f` (A {glue:text}`fs_top_svcca_a` – B {glue:text}`fs_top_svcca_b`,
# z = {glue:text}`fs_top_svcca_z:.1f`). Compared like with like, the
# {term}`authors' one-component SVCCA <SVCCA, k = 1 (authors')>` (k = 1) peaks at
# {glue:text}`fs_top_k1:.3f` (A {glue:text}`fs_top_k1_a` – B {glue:text}`fs_top_k1_b`,
# null {glue:text}`fs_top_k1_null:.3f`); the paper's k = 1 peaks are 0.678 (Pythia) and 0.584 (Gemma),
# authors' numbers, see {doc}`reproducing`.

# %%
fig = plots.heatmap_panels(frame, ["rsa_excess", "svcca_excess"], **labels)
book.show_figure(fig, "fig3_full_space_effect",
                 plots.caption(grid.meta(), "Paired RSA (a) and corrected SVCCA (b) minus their null means for "
                                            "every layer pair (0 = null level, white)"),
                 out_dir=figures_dir)

# %% [markdown]
# The raw scores, each beside its null on one colour scale per measure:

# %%
fig = plots.heatmap_panels(frame, ["rsa", "rsa_null_mean", "svcca", "svcca_null_mean"],
                           shared_scale=[["rsa", "rsa_null_mean"], ["svcca", "svcca_null_mean"]], **labels)
book.show_figure(fig, "fig3_full_space_svcca_rsa",
                 plots.caption(grid.meta(), "Paired RSA (a) beside its null mean (b), paired corrected SVCCA (c) "
                                            "beside its null mean (d), for every layer pair (the paper's Figs. 3-4)"),
                 out_dir=figures_dir)

# %%
tables.page_style(tables.layer_table(frame, "svcca", fmt=".3f"),
                  "Fig. 3 analogue: paired corrected SVCCA per layer pair (rows: B layer, columns: A layer)")

# %%
tables.page_style(tables.layer_table(frame, "rsa", fmt=".3f"),
                  "Fig. 3 analogue: paired RSA per layer pair (rows: B layer, columns: A layer)")

# %% [markdown]
# ## Nulls and p-values (A1, A2, A5)
#
# **Is a layer pair above its null?** One family per measure: the {glue:text}`fs_n_cells` layer
# pairs of the grid above (one rule, one direction). A pair is {term}`above its null` when its p-value,
# {term}`Holm`-adjusted over that {term}`family`, is at most 0.05 and its score exceeds the null mean; the
# p-value is the permutation one where at least ten of the {glue:text}`fs_n_perm` shuffles reach
# the score and a generalised Pareto fit to the null's upper tail otherwise (the {term}`tail p-value`,
# {ref}`significance`),
# since no permutation p-value can go below 1/({glue:text}`fs_n_perm` + 1) =
# {glue:text}`fs_perm_floor:.4f`.
#
# The median shuffled-pairing SVCCA is {glue:text}`fs_median_svcca_null:.3f`.
# **{glue:text}`fs_above_svcca` of {glue:text}`fs_n_cells` layer pairs lie above their null for
# SVCCA and {glue:text}`fs_above_rsa` for RSA** (raw permutation p ≤ 0.05: {glue:text}`fs_sig_svcca`
# and {glue:text}`fs_sig_rsa`).

# %%
fig = plots.heatmap_panels(frame, ["svcca_null_mean", "svcca_p", "svcca_p_holm"], **labels)
book.show_figure(fig, "figA1_svcca_null_and_p",
                 plots.caption(grid.meta(), "Mean SVCCA of shuffled pairings (a), the SVCCA permutation p-value (b) "
                                            "and the book's p-value (tail fit where few shuffles reach the score) "
                                            "Holm-adjusted over the page's layer pairs (c) per layer pair "
                                            "(appendix A1/A5)"),
                 out_dir=figures_dir)

# %%
fig = plots.heatmap_panels(frame, ["rsa_null_mean", "rsa_p", "rsa_p_holm"], **labels)
book.show_figure(fig, "figA2_rsa_null_and_p",
                 plots.caption(grid.meta(), "Mean RSA of shuffled pairings (a), the RSA permutation p-value (b) and "
                                            "the book's p-value (tail fit where few shuffles reach the score) "
                                            "Holm-adjusted over the page's layer pairs (c) per layer pair "
                                            "(appendix A2/A5)"),
                 out_dir=figures_dir)

# %%
fig = plots.pvalue_histogram(frame, ["svcca_p_tail", "rsa_p_tail", "linear_cka_p_tail"])
book.show_figure(fig, "fig_pvalue_histogram",
                 plots.caption(grid.meta(), "The book's p-values over the grid (permutation, tail fit where few "
                                            "shuffles reach the score) with the Holm cut-off (alpha = 0.05)"),
                 out_dir=figures_dir)

# %% [markdown]
# ## Activation correlations and pairs kept (A3, A4, A5)
#
# Between {glue:text}`fs_kept_min:.1f` % and {glue:text}`fs_kept_max:.1f` % of the choosing
# latents keep a partner after all filters (the paper: 5.7–23 % for Pythia, 7.7–28 % for Gemma).

# %%
fig = plots.heatmap_panels(frame, ["mean_best_r", "mean_r_filtered"], **labels)
book.show_figure(fig, "figA3_correlation_before_after_filtering",
                 plots.caption(grid.meta(), "Mean best activation correlation of every choosing latent (a) and "
                                            "of the pairs kept after the filters (b) (appendix A3/A5)"),
                 out_dir=figures_dir)

# %%
fig = plots.heatmap_panels(frame, ["n_pairs", "n_unique_a"], **labels)
book.show_figure(fig, "figA4_pairs_kept",
                 plots.caption(grid.meta(), "Pairs kept (a) and distinct A latents among them (b) per layer "
                                            "pair (appendix A4/A5)"),
                 out_dir=figures_dir)

# %%
tables.counts_view(frame, "Appendix A4 analogue: latents and pairs at each filter stage")

# %% [markdown]
# ## Paired versus shuffled, one A layer against every B layer (A8)

# %%
bar_a = bar_layer_a if bar_layer_a is not None else pages.peak_pair(frame, by="svcca")[0]
fig = plots.paired_vs_null_panels(frame, ["svcca", "rsa"], layer_a=bar_a, **labels)
book.show_figure(fig, "figA8_paired_vs_null_bars",
                 plots.caption(grid.meta(layers_a=[bar_a]), "Paired score vs the shuffled-pairing null "
                                                            "(mean ± sd) for one A layer against every B layer: "
                                                            "SVCCA (left), RSA (right) (appendix A8)"),
                 out_dir=figures_dir)

# %% [markdown]
# ## Linear CKA (not in the paper)
#
# Linear CKA of the same paired rows, with its own shuffled null.

# %%
fig = plots.heatmap_panels(frame, ["linear_cka", "linear_cka_p"], **labels)
book.show_figure(fig, "fig_full_space_linear_cka",
                 plots.caption(grid.meta(), "Paired linear CKA (a) and its p-value (b) per layer pair"),
                 out_dir=figures_dir)

# %% [markdown]
# (svcca-modes)=
# ## Corrected and authors' SVCCA side by side
#
# SVCCA keeps, on each side, the leading principal components of the paired decoder rows and
# correlates the two reduced sets. The corrected {term}`SVCCA` keeps {glue:text}`fs_dims`; the authors' rule
# (`top_k_pca_comps`) keeps a single one for unit-norm decoder
# rows, so their SVCCA is the correlation of the two first principal components. Every row of the
# table carries both, computed on **the same pairs** and judged against **the same shuffles**:
# only the dimension rule differs.
#
# Here the corrected SVCCA keeps a median of {glue:text}`fs_k_x_median` (A) and
# {glue:text}`fs_k_y_median` (B) components, the authors' rule at most {glue:text}`fs_authors_k_max`.
# With the authors' k the highest paired SVCCA is {glue:text}`fs_authors_best:.3f` (A layer
# {glue:text}`fs_authors_best_a`, B layer {glue:text}`fs_authors_best_b`) against a median
# shuffled-null mean of {glue:text}`fs_authors_median_null:.3f` (corrected:
# {glue:text}`fs_median_svcca_null:.3f`); {glue:text}`fs_above_authors` of {glue:text}`fs_n_cells`
# layer pairs lie above their null (corrected: {glue:text}`fs_above_svcca`), and
# {glue:text}`fs_n_differ` of them differ from the corrected score by more than 0.01.
# {glue:text}`fs_modes_note`
#
# The authors' other departures are not part of this comparison: their correlation counts a
# latent that never fires as zeros of a dense matrix, their junk and shared-token filters compare
# exact strings over all top positions, and their p-value is #(null ≥ score) / R. All of them
# together (with k = 1) are what a `compat=True` run computes: set the `compat` parameter of this
# page (`saesim book -p compat=true`, after `saesim run --compat` for the tables) to see the whole
# grid that way.

# %%
book.glue_fields(pages.svcca_modes_numbers(frame, compat=compat, source=grid.source, profile=grid.profile.name),
                 prefix="fs_")

# %%
fig = plots.heatmap_panels(frame, ["svcca", "svcca_authors_k", "svcca_null_mean", "svcca_authors_k_null_mean"],
                           titles=[f"Paired SVCCA, {dims_short}", "Paired SVCCA, authors' k = 1",
                                   f"Shuffled-null mean, {dims_short}", "Shuffled-null mean, authors' k = 1"],
                           shared_scale=True, **labels)
book.show_figure(fig, "fig_svcca_corrected_vs_authors_k",
                 plots.caption(grid.meta(), f"Paired SVCCA keeping {dims} (a) and keeping "
                                            "the authors' k = 1 component (b), with the mean SVCCA of the same "
                                            "shuffled pairings under each rule (c, d); same pairs and same "
                                            "shuffles in every panel, only SVCCA's dimension rule differs"),
                 out_dir=figures_dir)

# %%
pages.svcca_modes_table(frame, dims_short)

# %% [markdown]
# (full-space-controls)=
# ## The controls, on the same axes
#
# A raw score means little without its null, and the null means little without controls. Each
# panel below shows the paired score **minus its shuffled-null mean** on one colour scale (0 =
# null level, white):
# the main comparison; two SAE sets of *one* model (the {term}`seed control`: the agreement two
# SAEs of one model reach, the reference the cross-model score is read against); and the SAEs of
# {term}`re-randomised copies of model A <re-randomised controls>` in A's place, once as the
# authors built it (every tensor but the embeddings and norms resampled, so token-embedding
# structure survives) and once with every tensor resampled.

# %%
grids = pages.comparison_grids(profile, "full_space", main=grid, rules=[rule], directions=[direction],
                               cache_dir=cache_dir, results_dir=results_dir, n_perm=n_perm, seed=seed, compat=compat,
                               r_min=r_min, junk_filter=junk_filter)
control_frames, panels = pages.control_panels(grids)
book.glue_value("fs_n_comparisons", len(panels))

# %%
if len(panels) > 1:
    for metric, fig_name in (("rsa", "fig_controls_rsa_excess"), ("svcca", "fig_controls_svcca_excess")):
        fig = plots.comparison_heatmaps(panels, f"{metric}_excess", ncols=2)
        book.show_figure(fig, fig_name,
                         plots.caption(grid.meta(), f"Paired {tables.display_name(metric)} minus its shuffled-null "
                                                    "mean for the main comparison and each control, one colour "
                                                    "scale (0 = null level)"),
                         out_dir=figures_dir)
else:
    display(Markdown(f"Profile `{grid.profile.name}` defines no controls; nothing to show."))

# %%
lines, null_numbers = prose.control_lines(control_frames)
book.glue_fields(null_numbers, prefix="fs_")
display(Markdown(prose.bulleted(lines, lead="**Raw scores against effects.** A raw score ranks the comparisons "
                                            "differently from its excess over the null when the nulls differ:")))

# %% [markdown]
# **Nulls move with n and k.** Over the {glue:text}`fs_null_cells` cells of every comparison, the
# corrected-SVCCA null mean ranges {glue:text}`fs_null_min:.3f`–{glue:text}`fs_null_max:.3f`; its
# Spearman correlation with the number of pairs is {glue:text}`fs_null_rho_n:.2f` and with the kept
# dimension k is {glue:text}`fs_null_rho_k:.2f` ({glue:text}`fs_k_with_n`). A score is read against
# the null of its own cell, never against another cell's.
#
# The same numbers as a table: for every comparison and layer pair, the score, its null mean, the
# effect over the null, z, the p-value Holm-adjusted over that comparison's layer pairs and whether
# the pair lies above its null (RSA, the paper's measure least affected by the dimension rule).

# %%
if len(panels) > 1:
    display(tables.comparison_style(tables.comparison_table(control_frames, "rsa"),
                                    "RSA of every comparison and layer pair: score, null mean, effect over the "
                                    "null, z, and the p-value Holm-adjusted over that comparison's layer pairs"))
