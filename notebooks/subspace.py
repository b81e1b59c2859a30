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
n_perm = None
seed = 0
compat = False
table_layer_a = None
table_layer_b = None
cache_dir = None
results_dir = None
figures_dir = "figures"

# %% [markdown]
# (subspace)=
# # Semantic subspaces
#
# A latent belongs to a concept (Time, Calendar, People/Roles, Nature, Emotions, MonthNames,
# Countries, Biology) when one of its top-activating tokens is one of the concept's keywords and
# the keyword is a word of the context window. Pairing is searched among the members only and
# made 1-1; there is no junk filter and no correlation cut (as in the paper). This page is the
# paper's **Tables 1–2**, the concept heatmaps **A9–A10**, the keyword lists **A11**, and the
# controls of the arXiv version (**A12**): an unrelated-keyword subspace and a
# {term}`random-subset null`. The {ref}`glossary` defines every measure and test.

# %%
import pandas as pd
from IPython.display import HTML, display

from saesim.report import book, pages, plots, tables
from saesim.compare.concepts import CONCEPTS, CONTROL_CONCEPT

grid = book.grid_frame(profile, "subspace", rules=[rule], layers_a=layers_a, layers_b=layers_b,
                       cache_dir=cache_dir, results_dir=results_dir, n_perm=n_perm, seed=seed, compat=compat)
frame = tables.with_effects(grid.frame)
concepts = [c for c in CONCEPTS if c in set(frame["concept"])]
# One multiple-testing family on this page: every scored (layer pair, concept) subspace of the
# real concepts; Holm adjusts the tail p-values over it (the Control subspace is judged apart).
family = tables.concept_family(frame, concepts)
labels = dict(label_a=grid.label_a, label_b=grid.label_b)
meta = grid.meta(junk_filter=False, r_min=None, require_overlap=None, top_k=None)
display(HTML(book.scope_note(profile, cache_dir=cache_dir)))

# %%
# The layer pair of the concept table: the paper's (Pythia-70m L3 vs Pythia-160m L5; Gemma-1 L12 vs
# Gemma-2 L14) when present, else the pair with the most concepts resting on enough pairs to be
# headlined (ties: the largest mean SVCCA excess).
table_layer_a, table_layer_b = pages.concept_table_pair(family, frame, grid.profile.name, table_layer_a, table_layer_b)
book.glue_fields(pages.subspace_numbers(frame, family, concepts, layer_a=table_layer_a, layer_b=table_layer_b),
                 prefix="ss_", profile=grid.profile.name)

# %% [markdown]
# **Multiple testing on this page.** One family: the {glue:text}`ss_n_scored` scored (layer pair,
# concept) subspaces of the eight concepts, for each measure. A subspace is *above its null* when
# its p-value, Holm-adjusted over that family, is at most 0.05 and its score exceeds the null
# mean; the p-values are the permutation ones, with a generalised-Pareto fit of the null's tail
# where too few shuffles reach the score ({ref}`significance`). Raw p-values are quoted only as
# descriptive counts and stay in the downloadable data. The unrelated-word Control subspace is a
# check of the method, judged apart (its own layer pairs are its family).
#
# **Headlines need pairs.** A concept subspace is headlined only when it rests on at least
# {glue:text}`ss_min_pairs` pairs ({glue:text}`ss_n_enough` of {glue:text}`ss_n_scored` do; the
# median is {glue:text}`ss_median_pairs:.0f`). Smaller ones are drawn with their pair count (n) in
# every cell: their nulls are wide and their largest values are mostly chance.
#
# ## Effect over the null first
#
# Over the grid of profile **{glue:text}`ss_profile`**, {glue:text}`ss_n_scored` of
# {glue:text}`ss_n_rows` (layer pair, concept) subspaces had enough members and pairs to be scored
# (more than 2 of each). Among the headline-sized ones, the concept subspace whose corrected SVCCA
# stands out most from its null (largest z): {glue:text}`ss_top_text`. For RSA:
# {glue:text}`ss_top_rsa_text`. After Holm adjustment over the family,
# {glue:text}`ss_n_sig_holm` subspaces are above their null for SVCCA (raw p ≤ 0.05:
# {glue:text}`ss_n_sig`) and {glue:text}`ss_n_sig_rsa_holm` for RSA (raw:
# {glue:text}`ss_n_sig_rsa`).

# %%
for value, name, what in [
    ("svcca_excess", "figA9_concepts_svcca_excess", "Paired corrected SVCCA minus its null mean for each concept "
                                                    "subspace per layer pair (0 = null level, white)"),
    ("rsa_excess", "figA9_concepts_rsa_excess", "Paired RSA minus its null mean for each concept subspace per "
                                                "layer pair (0 = null level, white)"),
]:
    limit = float(family[value].abs().quantile(0.98)) if len(family) else 1.0
    fig = plots.concept_heatmap_grid(frame, value, concepts=concepts,
                                     style=plots.HeatmapStyle(vmin=-limit, vmax=limit), **labels)
    book.show_figure(fig, name, plots.caption(meta, what + "; n = pairs in the cell; colour scale clipped at the "
                                                           "98th percentile of |excess|; blank cells: too few "
                                                           "members or pairs"),
                     out_dir=figures_dir)

# %% [markdown]
# ## One layer pair, one row per concept (Tables 1–2)
#
# A layer {glue:text}`ss_table_a` against B layer {glue:text}`ss_table_b`. Compared like with
# like, the authors' one-component SVCCA (k = 1) of the concepts here ranges
# {glue:text}`ss_k1_min:.3f`–{glue:text}`ss_k1_max:.3f` (median null {glue:text}`ss_k1_null:.3f`);
# the paper's Table 1 reports 0.47–0.83 with null means 0.05–0.17 for Pythia-70m L3 vs
# Pythia-160m L5 (authors' numbers, k = 1). The corrected SVCCA in the table is not comparable
# with those.

# %%
concept_view = pages.concept_pair_table(frame, family, layer_a=table_layer_a, layer_b=table_layer_b)
tables.split_table(concept_view, [c for c in concept_view if c not in pages.CONCEPT_PAIR_ONE_CLICK],
                   f"Table 1 analogue: every concept at {grid.label_a} layer {table_layer_a} vs {grid.label_b} layer "
                   f"{table_layer_b} (profile {grid.profile.name}). p (Holm): Holm-adjusted over the page's "
                   f"family, the {len(family)} concept subspaces × layer pairs (blank for the Control, judged "
                   f"apart; see the Controls section). One click away: SVCCA, k = 1 (authors'), the authors' "
                   f"dimension rule, comparable with the paper's Table 1")

# %% [markdown]
# ## Raw scores, nulls and p-values (A9–A10)
#
# The paper's appendix figures: the raw SVCCA scores and their shuffled-null means on one colour
# scale, the raw RSA scores, and the p-values Holm-adjusted over the page's family.

# %%
raw_limits = dict(vmin=float(min(family["svcca"].min(), family["svcca_null_mean"].min())),
                  vmax=float(max(family["svcca"].max(), family["svcca_null_mean"].max())))
for value, name, what, style in [
    ("svcca", "figA9_concepts_svcca", "Paired corrected SVCCA of each concept subspace per layer pair (appendix "
                                      "A9/A10)", raw_limits),
    ("svcca_null_mean", "figA9_concepts_svcca_null", "Mean corrected SVCCA of shuffled pairings in each concept "
                                                     "subspace, on the paired scores' colour scale (appendix A10)",
     raw_limits),
    ("svcca_p_holm", "figA9_concepts_svcca_p", f"SVCCA p-value of each concept subspace, Holm-adjusted over the "
                                               f"page's family of {len(family)} concept subspaces × layer pairs "
                                               f"(appendix A9/A10)", {}),
    ("rsa", "figA9_concepts_rsa", "Paired RSA of each concept subspace per layer pair (appendix A9/A10)", {}),
    ("rsa_p_holm", "figA9_concepts_rsa_p", f"RSA p-value of each concept subspace, Holm-adjusted over the page's "
                                           f"family of {len(family)} concept subspaces × layer pairs (appendix "
                                           f"A9/A10)", {}),
]:
    fig = plots.concept_heatmap_grid(family if value.endswith("_holm") else frame, value, concepts=concepts,
                                     style=plots.HeatmapStyle(**style), **labels)
    book.show_figure(fig, name, plots.caption(meta, what + "; n = pairs in the cell; blank cells: too few members "
                                                           "or pairs"),
                     out_dir=figures_dir)

# %% [markdown]
# ## The concept keyword lists (A11)

# %%
keywords = pd.DataFrame({
    "concept": list(CONCEPTS) + ["Control (unrelated)"],
    "keywords": [len(dict.fromkeys(v)) for v in CONCEPTS.values()] + [len(CONTROL_CONCEPT)],
    "list": [", ".join(dict.fromkeys(v)) for v in CONCEPTS.values()] + [", ".join(CONTROL_CONCEPT)],
}).set_index("concept")
tables.page_style(keywords, "Appendix A11 analogue: the keywords of each concept and of the unrelated-word Control")

# %% [markdown]
# ## Controls (A12)
#
# **Unrelated keywords.** A subspace built from frequent function words that name no concept
# ("Control") should not look like a concept. Here it is scored at {glue:text}`ss_n_control` layer
# pairs (median {glue:text}`ss_control_pairs:.0f` pairs, more than most concepts) and has a raw
# p ≤ 0.05 at {glue:text}`ss_n_control_sig` of them for SVCCA and {glue:text}`ss_n_control_sig_rsa`
# for RSA, against {glue:text}`ss_n_sig` of {glue:text}`ss_n_scored` concept subspaces for SVCCA.
# {glue:text}`ss_control_reading`. Judged as its own family (Holm over its
# {glue:text}`ss_n_control` layer pairs), the Control is above its null at
# {glue:text}`ss_n_control_above` of them for SVCCA and {glue:text}`ss_n_control_above_rsa` for
# RSA. **Random subsets.** Each concept's score is
# also compared with random subsets of the same size drawn from the global many-to-1 pairing
# ("corr from full subsets", the arXiv version's second null); {glue:text}`ss_n_subset_sig_holm` of
# {glue:text}`ss_n_scored` concept subspaces are above that null after Holm over the family (raw
# p ≤ 0.05: {glue:text}`ss_n_subset_sig`).

# %%
control_effects = tables.with_effects(pages.control_subspace(frame))
if len(control_effects):
    fig = plots.heatmap_panels(control_effects, ["svcca_excess", "rsa_excess", "svcca_p", "n_pairs"],
                               shared_scale=[["svcca_excess", "rsa_excess"]], **labels)
    book.show_figure(fig, "figA12_control_subspace",
                     plots.caption(meta, "The unrelated-word Control subspace per layer pair: corrected SVCCA (a) "
                                         "and RSA (b) minus their null means, the raw SVCCA p-value (c; not in the "
                                         "page's family) and the pairs it rests on (d)"),
                     out_dir=figures_dir)

# %%
if "svcca_subset_p_holm" in family:
    fig = plots.concept_heatmap_grid(family, "svcca_subset_p_holm", concepts=concepts,
                                     title="SVCCA p, random-subset null (Holm)", **labels)
    book.show_figure(fig, "figA12_concepts_svcca_subset_p",
                     plots.caption(dict(meta, null_kind="random_subset"),
                                   f"SVCCA p-value of each concept subspace against random subsets of the global "
                                   f"pairing of the same size, Holm-adjusted over the page's family of "
                                   f"{len(family)} concept subspaces × layer pairs (appendix A12); n = pairs in "
                                   f"the cell"),
                     out_dir=figures_dir)
