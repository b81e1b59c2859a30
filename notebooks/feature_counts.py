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
layer_a = None
layer_b = None
rule = "first_index"
direction = "b_to_a"
n_perm = None
seed = 0
compat = False
n_examples = 3
cache_dir = None
results_dir = None
figures_dir = "figures"

# %% [markdown]
# (feature-counts)=
# # Hubs, frequencies, dead latents and what the filters keep
#
# The pairing is many-to-1 before any filter: some A latents are chosen by many B latents (hub
# features, often punctuation or newline detectors). This page counts the hubs, the activation
# frequency of every latent, the dead latents, the fraction of pairs kept at each filter stage
# (reviewers noted that only 10–30 % survive), and shows paired latents with their top contexts,
# **including pairs the filters removed**, so a reader can judge whether those hold meaningful
# features.

# %%
import pandas as pd
from IPython.display import HTML, display

from saesim.report import book, pages, plots, tables
from saesim.experiments.grid import cached_best_partners
from saesim.extract.pipeline import load_layer
from saesim.compare.match import hub_counts
from saesim.extract.tokens import activation_frequency

grid = book.grid_frame(profile, "full_space", rules=[rule], directions=[direction], layers_a=layers_a,
                       layers_b=layers_b, cache_dir=cache_dir, results_dir=results_dir, n_perm=n_perm, seed=seed,
                       compat=compat)
frame = tables.with_effects(grid.frame)
display(HTML(book.scope_note(profile, cache_dir=cache_dir)))
# default: the layer pair whose RSA rises most above its null
layer_a, layer_b = pages.peak_pair(frame, layer_a, layer_b, by="rsa_excess")
data_a = load_layer(grid.profile, "a", layer_a, out=cache_dir)
data_b = load_layer(grid.profile, "b", layer_b, out=cache_dir)
cell = grid.meta(layers_a=[layer_a], layers_b=[layer_b])

# %%
best = cached_best_partners(data_a, data_b, compat=compat, cache=cache_dir)
hubs = hub_counts(best, direction=direction)
book.glue_fields(pages.feature_count_numbers(hubs, data_a, data_b, frame, layer_a=layer_a, layer_b=layer_b),
                 prefix="fc_", n_tokens=data_a.n_tokens)

# %% [markdown]
# ## Hub features
#
# For A layer {glue:text}`fc_layer_a` and B layer {glue:text}`fc_layer_b`, over {glue:text}`fc_n_tokens`
# tokens, the {glue:text}`fc_n_choosers` choosing latents pick only {glue:text}`fc_n_unique` distinct partners
# ({glue:text}`fc_unique_pct:.1f` %). The biggest hub, latent {glue:text}`fc_top_hub_latent`, is
# chosen {glue:text}`fc_top_hub` times; its top tokens are {glue:text}`fc_top_hub_tokens`. (The
# paper's Pythia notebooks found one "period/newline" hub with 13,839 partners.)

# %%
fig = plots.hub_histogram(hubs.counts, label=f"{grid.label_a} L{layer_a} latents").figure
book.show_figure(fig, "fig_hub_histogram",
                 plots.caption(cell, "How many B latents choose each A latent as their best partner "
                                     "(many-to-1, before any filter), log-log"),
                 out_dir=figures_dir)

# %%
tables.page_style(pages.hub_table(hubs, data_a.contexts, n=10),
                  f"The ten biggest hubs of {grid.label_a} layer {layer_a}: how many B latents chose each and "
                  f"their top tokens")

# %% [markdown]
# ## Activation frequency and dead latents
#
# {glue:text}`fc_dead_a` of {glue:text}`fc_n_latents_a` A latents and {glue:text}`fc_dead_b` of
# {glue:text}`fc_n_latents_b` B latents never fire on these tokens; the median live A latent fires
# on {glue:text}`fc_median_freq_a:.4f` of the tokens.

# %%
fig = plots.frequency_histogram({f"{grid.label_a} L{layer_a}": activation_frequency(data_a.codes),
                                 f"{grid.label_b} L{layer_b}": activation_frequency(data_b.codes)}).figure
book.show_figure(fig, "fig_activation_frequency",
                 plots.caption(cell, "Fraction of tokens on which each latent fires"),
                 out_dir=figures_dir)

# %%
tables.page_style(pages.dead_latents(frame, grid.label_a, grid.label_b),
                  "Dead latents (never firing on these tokens) of every layer of both models")

# %% [markdown]
# ## What each filter keeps
#
# Over the grid, the pairs kept are between {glue:text}`fc_kept_min:.1f` % and
# {glue:text}`fc_kept_max:.1f` % of the choosing latents.

# %%
fig = plots.filter_stages(frame)
book.show_figure(fig, "fig_filter_stages",
                 plots.caption(grid.meta(), "Percentage of the choosing latents left after each stage of the "
                                            "pipeline, one line per layer pair"),
                 out_dir=figures_dir)

# %%
tables.counts_view(frame, "Pairs left after each filter stage, per layer pair")

# %% [markdown]
# ## Paired latents and their top contexts, kept and removed
#
# The best-correlated pairs of each outcome for A layer {glue:text}`fc_layer_a` and B layer
# {glue:text}`fc_layer_b`: kept, removed by the junk / shared-token filter, by the 1-1 rule and by
# the correlation cut. Of the many-to-1 pairs, {glue:text}`fc_n_kept` were kept and
# {glue:text}`fc_n_junk` removed by the junk / shared-token filter.

# %%
examples, outcome_counts = book.pair_examples(data_a, data_b, grid.settings.replace(rules=(rule,)), n=n_examples,
                                              seed=seed)
book.glue_value("fc_n_kept", outcome_counts.get("kept", 0))
book.glue_value("fc_n_junk", outcome_counts.get("removed: junk / shared-token filter", 0))
display(tables.page_style(pd.Series(outcome_counts, name="many-to-1 pairs").to_frame(),
                          "Many-to-1 pairs by what the filters did with them"))
display(tables.split_table(examples.set_index(["outcome", "A latent", "B latent"]),
                           ["r", "A top tokens", "B top tokens"],
                           "Pairs of each outcome, best-correlated first: their correlation r and each latent's "
                           "top tokens (their contexts one click away)"))
