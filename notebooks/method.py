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
cache_dir = None
results_dir = None
figures_dir = "figures"

# %% [markdown]
# (method)=
# # The method
#
# Two language models A and B read the same tokens. Each layer's activations are encoded by that
# layer's sparse autoencoder (SAE), giving non-negative sparse codes: one row per token, one column
# per latent. For every latent of B the latent of A whose activations correlate best over the
# tokens is its partner (Pearson correlation). Pairs are filtered: latents whose top tokens are
# "non-concept" junk (punctuation, newlines, special tokens) are dropped, the two latents must
# share a top token, an A latent chosen by several B latents is kept once ("1-1"), and the
# correlation must exceed 0.1. The decoder rows of the paired latents, one pair per row, form two
# point clouds whose geometry is compared with rotation-invariant measures; each score is judged
# against the same measure on shuffled pairings. Every measure, test, control and pairing rule the
# book names is defined in the {ref}`glossary`.
#
# ## Fig. 1: the pipeline

# %%
import numpy as np
import pandas as pd
from IPython.display import display

from saesim.config import load_profile
from saesim.experiments.grid import GRID_COLUMNS, settings_from_profile
from saesim.report import book, pages, plots, tables

fig = plots.method_diagram()
book.show_figure(fig, "fig1_method_overview",
                 "Method overview (the paper's Fig. 1, redrawn): the same tokens go through both models; each "
                 "layer's SAE codes are paired across models by activation correlation; the SAE decoder rows are "
                 "reordered so that paired latents line up; SVCCA and RSA compare the two point clouds, against "
                 "shuffled pairings.",
                 out_dir=figures_dir)

# %% [markdown]
# (token-alignment)=
# ## Pairing tokens across tokenizers
#
# Row $t$ of model A's codes and row $t$ of model B's codes must be the same token of the same text.
# Each model tokenises the text with its own tokenizer, and a position enters the comparison only
# when a token of A and a token of B cover the *identical* span of characters (the fast tokenizers'
# offset mappings). Special tokens (BOS, and the `<|endoftext|>` prepended where a tokenizer adds no
# BOS, which takes the attention sink) and padding never do, and a span that two tokens of one model
# share — a multi-byte character split into bytes by a byte-level BPE — is dropped rather than
# guessed. Both causal tokenizers put a word's leading space inside its token (`▁world`, `Ġworld`),
# so a paired token has read exactly the same text before it in both models. What the pairing
# leaves out is below.

# %%
from IPython.display import Markdown

from saesim.config import load_profile
from saesim.extract.pipeline import token_alignment
from saesim.report import alignment, tables

prof = load_profile(profile)
book.glue_value("svcca_rule", "SVCCA keeping " + plots.dims_words(prof.filters.svcca_dims))
report = token_alignment(prof, out=cache_dir)
two_tokenizers = len(report["models"]) > 1
if two_tokenizers:
    book.glue_value("aligned_tokens", report["n_aligned"])
    display(Markdown(alignment.alignment_sentence(report)))
    display(tables.page_style(
        alignment.alignment_summary(report).style.format({"tokens": "{:,}", "paired": "{:,}", "kept": "{:.1%}"})
        .hide(axis="index"),
        "Tokens of each model (real tokens, special tokens and padding excluded) and those whose character span "
        "is a token of the other model"))
    display(tables.page_style(
        alignment.alignment_bands(report).style.format({"tokens": "{:,}", "kept": "{:.1%}"}, na_rep="–")
        .hide(axis="index"),
        "Kept fraction by how often the token occurs in this text (in its own model's tokenisation)"))
    display(tables.page_style(
        alignment.alignment_dropped(report).style.format(precision=0, na_rep=""),
        "The most frequent dropped tokens of each model (a leading space shows as ▁ or Ġ)"))
else:
    display(Markdown(f"Both models of profile `{prof.name}` share one tokenizer, so every token pairs."))

# %% [markdown]
# (sae-quality)=
# ## How good are the SAEs?
#
# A latent is worth pairing across models only if it is a reproducible feature of its layer, not an
# accident of one training run. Every SAE below is scored on tokens it was not trained on (held-out
# {term}`FVU`: the fraction of the activations' variance its reconstruction leaves unexplained), by its
# dead latents and mean L0, and — where model A's layer has a second SAE that differs by seed only —
# by how many latents the two SAEs share: the decoder rows are matched one to one (Hungarian, on
# cosine), {term}`PW-MCC` is the mean cosine of the matched pairs, and a latent is shared when its match
# reaches cosine 0.7 (with the encoder rows too, the stricter criterion of Paulo & Belrose). Random
# unit directions of the same shapes give the chance level.

# %%
from saesim.experiments.sae_quality import sae_quality_table
from saesim.report.scope import LITERATURE_STABILITY, stability_sentence

quality = sae_quality_table(prof, cache=cache_dir)
sentence = stability_sentence(quality)
display(Markdown((sentence + " " if sentence else "No layer has a second SAE of the same width, so seed "
                  "stability was not measured. ") + "The literature's figures, quoted: " + LITERATURE_STABILITY))
display(tables.page_style(tables.quality_view(quality), tables.quality_caption(quality, prof)))

# %% [markdown]
# ## Fig. 2: why pairing comes first
#
# The paper's toy example: two 4 × 3 "decoder matrices", `m1` for model A and `m2` for model B,
# whose features come in a different order. Rotation-invariant measures compare the rows *as
# paired*; on the unpaired matrices they compare unrelated rows. Below, B's rows are reordered
# live, each A row taking the B row whose entries correlate best with it, and the scores are
# computed on both orders. The live reordering gives B rows {glue:text}`toy_order` (1-based), the
# same order as the paper's `m2_rearranged`: {glue:text}`toy_matches`. RSA
# {glue:text}`toy_rsa_moves` from {glue:text}`toy_rsa_unpaired:.3f` unpaired to
# {glue:text}`toy_rsa_paired:.3f` paired. The corrected SVCCA (keeping {glue:text}`toy_svcca_dims`)
# {glue:text}`toy_svcca_moves` from {glue:text}`toy_svcca_unpaired:.3f` to
# {glue:text}`toy_svcca_paired:.3f`: with four rows in three dimensions, CCA can align almost any
# two point clouds, so on a toy this small SVCCA says little either way; the one-component SVCCA
# of the authors' code goes from {glue:text}`toy_svcca1_unpaired:.3f` to
# {glue:text}`toy_svcca1_paired:.3f`. The pairing matters for the measures that compare the
# rows as paired (RSA here); the table below gives all four.

# %% tags=["show-input"]
m1 = np.array([[2.48, 5.24, 1.24], [5.95, 0.67, 1.8], [0.1, 7.4, 4.1], [3.15, 6.48, 9.28]])
m2 = np.array([[0.55, 6.13, 3.56], [0.91, 5.89, 4.26], [6.48, 7.44, 5.36], [5.78, 2.22, 4.54]])
m2_paper = np.array([[6.48, 7.44, 5.36], [5.78, 2.22, 4.54], [0.55, 6.13, 3.56], [0.91, 5.89, 4.26]])

# each A row takes the B row whose entries correlate best; every measure scores both orders
toy = pages.toy_pairing(m1, m2)
book.glue_fields(toy.numbers(paper_order=m2_paper), prefix="toy_", svcca_dims=plots.dims_words(toy.svcca_dims))
display(toy.correlation_frame().style.format("{:.2f}").set_caption("Pearson correlation of the rows of m1 and m2"))
display(toy.scores_frame().style.format("{:.3f}")
        .set_caption("Similarity of m1 with m2 as given (unpaired) and with m2's rows reordered (paired)"))

# %%
fig = plots.toy_pairing_figure(m1, m2, toy.rearranged, {k: {m: s for m, s in v.items() if m in ("SVCCA", "RSA")}
                                                       for k, v in toy.scores.items()})
book.show_figure(fig, "fig2_toy_pairing",
                 "Toy example (the paper's Fig. 2, data from the authors' fig_2_metrics.py): model A's matrix m1, "
                 "model B's m2, and m2 with its rows reordered by their best-correlated row of m1; the titles give "
                 f"SVCCA (keeping {plots.dims_words(toy.svcca_dims)}) and RSA of m1 against each, computed live.",
                 out_dir=figures_dir)

# %% [markdown]
# ## The measures
#
# Let $X, Y \in \mathbb{R}^{n \times d}$ hold the decoder rows of the $n$ pairs (row $i$ of $X$
# and row $i$ of $Y$ are paired latents).
#
# **{term}`SVCCA`.** Each side is centred and reduced by SVD to its top $k$ directions,
# $X' = X V_X^{(k_X)}$, $Y' = Y V_Y^{(k_Y)}$; canonical correlation analysis of $X'$ and $Y'$ gives
# correlations $\rho_1 \ge \dots \ge \rho_{\min(k_X, k_Y)}$ and
#
# $$\mathrm{SVCCA}(X, Y) = \frac{1}{\min(k_X, k_Y)} \sum_{i} \rho_i .$$
#
# How many directions each side keeps is the profile's dimension rule; this build's is
# {glue:text}`svcca_rule`. The authors' code keeps $k = 1$ ({term}`SVCCA, k = 1 (authors')`,
# `compat=True`); the book shows both
# where they differ ({ref}`svcca-modes`).
#
# **{term}`RSA`.** With $S_X$ the matrix of Pearson correlations between the rows of $X$ (and $S_Y$
# alike), RSA is the Spearman correlation of the upper triangles of $S_X$ and $S_Y$.
#
# **{term}`Null <shuffled null>` and {term}`p-value <permutation p-value>`.** The rows of $Y$ are
# shuffled $R$ times, giving null scores $s_1, \dots,
# s_R$; the permutation p-value is $p = \left(1 + \#\{s_r \ge s\}\right) / (1 + R)$, the authors'
# $\#\{s_r \ge s\}/R$.

# %% [markdown]
# (significance)=
# ## Is a score above its null? One test for the whole book
#
# This build draws R = {glue:text}`sig_n_perm` shuffles per null, so no permutation p-value is
# below 1/(R + 1) = {glue:text}`sig_floor:.4f`, and {term}`Holm's correction <Holm>` over the
# {glue:text}`sig_family` layer pairs of a grid could never reject at 0.05, however far the score
# lies from its null (it would need R ≥ {glue:text}`sig_needed`). Every page therefore uses one
# test:
#
# - **the {term}`tail p-value`**: the permutation p-value where at least ten shuffles reach the score;
#   otherwise a generalised Pareto distribution fitted by maximum likelihood to the upper tail of
#   the null draws (the top quarter, at most 250, lowered ten at a time until a Cramér–von Mises
#   test accepts the fit), $p = (N_\mathrm{tail}/R)\,\bar F_\mathrm{GPD}(s - t)$ (Knijnenburg et
#   al. 2009). A fitted shape below 0 describes a bounded tail, which a few dozen draws place too
#   low; the exponential tail (shape 0) over the top 25 draws stands in for it, which errs towards
#   larger p. The tail p-value never exceeds the permutation one;
# - **the {term}`family`**: one claim, one family — the layer pairs of one comparison's grid under one
#   measure, one pairing rule and one direction (a concept page: its concepts × layer pairs);
# - **the procedure**: {term}`Holm`'s step-down correction within the family (family-wise error 0.05;
#   not {term}`BH`);
# - **the decision**: a cell is {term}`above its null` when its Holm-adjusted p-value is at most 0.05 and
#   its score exceeds the null mean (`saesim.compare.significance.above_null`, which every page
#   calls).
#
# Is the tail p-value calibrated? Below, scores drawn from the null itself, each against
# {glue:text}`sig_n_perm` fresh null draws, for three null shapes: a calibrated test rejects at
# about the level. `benchmarks/bench_tail_pvalue.py` runs the same check with 2 000 repetitions and
# measures the far tail (for true p = 10⁻⁴ from 1 000 draws the estimate is within a factor of two
# for normal and gamma nulls and about five times too large for the bounded one).

# %%
prof = load_profile(profile)
n_perm_book, n_family = int(settings_from_profile(prof).n_perm), len(prof.layers_a) * len(prof.layers_b)
book.glue_fields(sig_n_perm=n_perm_book, sig_floor=1 / (n_perm_book + 1), sig_family=n_family,
                 sig_needed=int(np.ceil(n_family / 0.05)) - 1)
tables.page_style(pages.tail_calibration(n_perm_book), "Share of p-values at or below the level when the score is "
                  "drawn from the null itself (400 scores per null; a calibrated test gives the level)")

# %% [markdown]
# ## The experiment tables
#
# `saesim run` writes one row per (layer of A, layer of B, pairing rule, direction) to
# `full_space.parquet` and one row per (layer pair, concept) to `subspace.parquet`. The stable
# columns of the full-space table ({glue:text}`n_grid_columns` of them):

# %%
book.glue_value("n_grid_columns", len(GRID_COLUMNS))
columns = pd.DataFrame({"column": list(GRID_COLUMNS),
                        "what it holds": [plots.panel_title(c) if plots.panel_title(c) != c else ""
                                          for c in GRID_COLUMNS]})
display(tables.page_style(columns.style.format(lambda name: f"<code>{name}</code>", subset=["column"])
                          .hide(axis="index"), f"The {len(GRID_COLUMNS)} stable columns of full_space.parquet"))
