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
# controls of the arXiv version (**A12**): an unrelated-keyword subspace and a random-subset null.

# %%
import pandas as pd
from IPython.display import display

from saesim import book, plots, tables
from saesim.concepts import CONCEPTS, CONTROL_CONCEPT

grid = book.grid_frame(profile, "subspace", rules=[rule], layers_a=layers_a, layers_b=layers_b,
                       cache_dir=cache_dir, results_dir=results_dir, n_perm=n_perm, seed=seed, compat=compat)
frame = grid.frame
concepts = [c for c in CONCEPTS if c in set(frame["concept"])]
scored = frame[(frame["skipped"].fillna("") == "") & frame["concept"].isin(concepts)]
labels = dict(label_a=grid.label_a, label_b=grid.label_b)
meta = grid.meta(junk_filter=False, r_min=None, require_overlap=None, top_k=None)
print(f"profile {grid.profile.name}: {len(frame)} (layer pair, concept) rows from {grid.source}")

# %%
# The layer pair of the concept table: the paper's (Pythia-70m L3 vs Pythia-160m L5; Gemma-1 L12 vs
# Gemma-2 L14) when present, else the pair with the most concepts scored (ties: highest mean SVCCA).
paper_pairs = {"pythia": (3, 5), "gemma": (12, 14)}
if table_layer_a is None or table_layer_b is None:
    pair = paper_pairs.get(grid.profile.name)
    present = set(zip(frame["layer_a"], frame["layer_b"]))
    if pair not in present:
        ranking = (scored.groupby(["layer_a", "layer_b"])["svcca"].agg(["count", "mean"])
                   .sort_values(["count", "mean"], ascending=False))
        pair = ranking.index[0] if len(ranking) else sorted(present)[0]
    table_layer_a = int(pair[0]) if table_layer_a is None else table_layer_a
    table_layer_b = int(pair[1]) if table_layer_b is None else table_layer_b
book.glue_value("ss_profile", grid.profile.name)
book.glue_value("ss_table_a", table_layer_a)
book.glue_value("ss_table_b", table_layer_b)
book.glue_value("ss_n_scored", len(scored))
book.glue_value("ss_n_rows", int(frame["concept"].isin(concepts).sum()))
book.glue_value("ss_n_sig", int((scored["svcca_p"] <= 0.05).sum()))
book.glue_value("ss_best_svcca", float(scored["svcca"].max()) if len(scored) else float("nan"))
book.glue_value("ss_best_concept", str(scored.loc[scored["svcca"].idxmax(), "concept"]) if len(scored) else "none")

# %% [markdown]
# ## One layer pair, one row per concept (Tables 1–2)
#
# Profile **{glue:text}`ss_profile`**, A layer {glue:text}`ss_table_a` against B layer
# {glue:text}`ss_table_b`. Over the whole grid, {glue:text}`ss_n_scored` of
# {glue:text}`ss_n_rows` (layer pair, concept) subspaces had enough members and pairs to be scored
# (more than 2 of each); {glue:text}`ss_n_sig` of them have an SVCCA p-value ≤ 0.05. The highest
# concept SVCCA is {glue:text}`ss_best_svcca:.3f` ({glue:text}`ss_best_concept`). The paper's
# Table 1 reports 0.47–0.83 for Pythia-70m L3 vs Pythia-160m L5 with null means 0.05–0.17.

# %%
tables.page_style(tables.concept_table(frame, layer_a=table_layer_a, layer_b=table_layer_b),
                  f"Table 1 analogue: every concept at {grid.label_a} layer {table_layer_a} vs {grid.label_b} "
                  f"layer {table_layer_b} (profile {grid.profile.name})")

# %% [markdown]
# ## One heatmap per concept (A9–A10)

# %%
for value, name, what in [
    ("svcca", "figA9_concepts_svcca", "Paired SVCCA of each concept subspace per layer pair (appendix A9/A10)"),
    ("svcca_null_mean", "figA9_concepts_svcca_null", "Mean SVCCA of shuffled pairings in each concept subspace "
                                                     "(appendix A10)"),
    ("svcca_p", "figA9_concepts_svcca_p", "SVCCA p-value of each concept subspace (appendix A9/A10)"),
    ("rsa", "figA9_concepts_rsa", "Paired RSA of each concept subspace per layer pair (appendix A9/A10)"),
    ("rsa_p", "figA9_concepts_rsa_p", "RSA p-value of each concept subspace (appendix A9/A10)"),
]:
    fig = plots.concept_heatmap_grid(frame, value, concepts=concepts, **labels)
    book.show_figure(fig, name, plots.caption(meta, what + "; blank cells: too few members or pairs"),
                     out_dir=figures_dir)

# %%
counts = frame[frame["concept"].isin(concepts)].pivot_table(index="concept", columns=["layer_a", "layer_b"],
                                                            values="n_pairs", aggfunc="first").reindex(concepts)
counts.columns = [f"A{a}·B{b}" for a, b in counts.columns]
counts

# %% [markdown]
# ## The concept keyword lists (A11)

# %%
keywords = pd.DataFrame({
    "concept": list(CONCEPTS) + ["Control (unrelated)"],
    "keywords": [len(dict.fromkeys(v)) for v in CONCEPTS.values()] + [len(CONTROL_CONCEPT)],
    "list": [", ".join(dict.fromkeys(v)) for v in CONCEPTS.values()] + [", ".join(CONTROL_CONCEPT)],
}).set_index("concept")
with pd.option_context("display.max_colwidth", None):
    display(keywords)

# %% [markdown]
# ## Controls (A12)
#
# **Unrelated keywords.** A subspace built from frequent function words that name no concept
# ("Control" below) should not look like a concept: the paper's dev notes report high p-values
# for it. **Random subsets.** Each concept's score is also compared with random subsets of the
# same size drawn from the global many-to-1 pairing ("corr from full subsets", the arXiv
# version's second null). {glue:text}`ss_n_subset_sig` of {glue:text}`ss_n_scored` scored concept
# subspaces beat that null at p ≤ 0.05.

# %%
control_rows = frame[frame["concept"] == "Control"]
cols = [c for c in ["layer_a", "layer_b", "n_members_a", "n_members_b", "n_pairs", "svcca", "svcca_null_mean",
                    "svcca_p", "svcca_subset_null_mean", "svcca_subset_p", "rsa", "rsa_p", "skipped"]
        if c in control_rows]
control_rows[cols].set_index(["layer_a", "layer_b"])

# %%
book.glue_value("ss_n_subset_sig", int((scored["svcca_subset_p"] <= 0.05).sum()) if "svcca_subset_p" in scored else 0)
if "svcca_subset_p" in frame:
    fig = plots.concept_heatmap_grid(frame, "svcca_subset_p", concepts=concepts, **labels)
    book.show_figure(fig, "figA12_concepts_svcca_subset_p",
                     plots.caption(dict(meta, null_kind="random_subset"),
                                   "SVCCA p-value of each concept subspace against random subsets of the global "
                                   "pairing of the same size (appendix A12)"),
                     out_dir=figures_dir)
