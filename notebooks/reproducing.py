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
runs_dir = "runs"
paper_profiles = ["pythia", "gemma"]
figures_dir = "figures"

# %% [markdown]
# (reproducing)=
# # Reproducing the paper
#
# The paper's numbers come from two model pairs: **Pythia-70m vs Pythia-160m** (EleutherAI's
# sparsify SAEs) and **Gemma-1-2B vs Gemma-2-2B** (SAELens `gemma-2b-res-jb` and Gemma Scope).
# `saesim` ships a profile for each. They download models, SAEs and OpenWebText from the Hugging
# Face hub, so they cannot run on the machine that builds this book by default; the `offline`
# profile runs the same pipeline on a model and text that ship with the package.
#
# Every table below whose header or caption says **(authors' paper)** holds the numbers the
# authors reported, as `saesim.report.reported` ships them (transcribed from their figure notebooks; each
# comes with a note on the settings behind it and how sure the transcription is). They are shown,
# never used as inputs. A column marked **(ours)** appears only when that profile's results exist
# in this checkout ({glue:text}`rp_found`).
#
# ## What each profile needs, and the command

# %%
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from saesim import vocab
from saesim.report import book, reported, tables
from saesim.config import load_profile

rows = {}
for name in paper_profiles + ["offline", "tiny"]:
    p = load_profile(name)
    rows[name] = {
        "models (A vs B)": f"{p.model_a.label} vs {p.model_b.label}",
        "SAEs": f"{p.model_a.sae.location} vs {p.model_b.sae.location}",
        "data": f"{p.data.corpus}, {p.data.n_docs} docs × {p.data.max_length} tokens",
        "layers A × B": f"{list(p.layers_a)} × {list(p.layers_b)}",
        "needs hub": p.needs_hub,
        "needs GPU": p.needs_gpu,
    }
pd.DataFrame(rows).T.rename_axis("profile")

# %% [markdown]
# To run a profile and build this book from it (with `../shared` beside the checkout for the
# offline data; the hub profiles need `HF_HUB_OFFLINE=0`, and Gemma needs an accepted licence,
# `huggingface-cli login` and a GPU):
#
# ```bash
# make book PROFILE=pythia            # = saesim run --profile pythia --cache runs/pythia, then saesim book
# # or step by step
# saesim run  --profile pythia --cache runs/pythia
# saesim book --profile pythia --cache runs/pythia
# ```
#
# **Expected run time.** Not measured here: the build machine has no hub access and no GPU. The
# forward passes are small (Pythia: 100 × 300 tokens; Gemma: 150 × 150), so the time goes into
# downloading the models and SAEs (Pythia: two models and 2 × 12 SAEs of 32,768 latents;
# Gemma: two 2B-parameter models and 10 SAEs of 16,384 latents) and into the 55 (Pythia) or 24
# (Gemma) layer pairs of 32k × 32k (16k × 16k) correlations with their nulls. A run comparable
# to the paper's numbers also needs `compat`: the paper's scores are the authors' one-component
# SVCCA (`-p compat=true`, or the `svcca_authors_k` column beside the corrected one).

# %%
found = {}
for name in paper_profiles:
    candidates = [Path(runs_dir) / name / "results"]
    if profile == name and results_dir is not None:
        candidates.insert(0, Path(results_dir))
    for folder in candidates:
        table = folder / "full_space.parquet"
        if table.is_file():
            frame = pd.read_parquet(table)
            if len(frame) and (frame["profile"] == name).all():
                found[name] = folder
                break
book.glue_value("rp_found", ", ".join(f"{k}: {v}" for k, v in found.items()) or
                "no pythia or gemma results yet, so only the authors' numbers are shown")

paper_rule = vocab.label("rule", "first_index")  # the paper's 1-1
TITLES = {
    "fig3": f"Fig. 3: Pythia-70m (A, columns) vs Pythia-160m (B, rows), full space, {paper_rule}",
    "A1": f"Appendix A1: Pythia-70m (A, columns) vs Pythia-160m (B, rows), {tables.display_name('svcca_null_mean')} "
          f"and {tables.display_name('svcca_p')}, {paper_rule}",
    "fig4": f"Fig. 4: Gemma-1-2B (A, columns) vs Gemma-2-2B (B, rows), full space, {paper_rule}",
    "table1": f"Table 1: semantic subspaces, Pythia-70m L3 vs Pythia-160m L5, {paper_rule}",
    "table2": f"Table 2: semantic subspaces, Gemma-1-2B L12 vs Gemma-2-2B L14, {paper_rule} (layer pair not confirmed)",
}
NOT_VALUES = ("layer_a", "layer_b", "concept", "source", "profile")


def note(item):
    """What the authors' numbers of ``item`` are, the settings behind them and the transcription's confidence."""
    text = "".join("\\" + c if c in "\\`*_[]{}<>|#$~^&" else c for c in reported.describe(item))
    display(Markdown(f"**About these numbers ({tables.AUTHORS_SOURCE}).** {text}"))


def styled(table, caption):
    """Scores to three decimals, pair counts as integers. A table of the authors' numbers only says so once,
    above its columns; beside ours, the pairs kept and the scores are shown (the null means, p-values and
    differences one click away)."""
    tag = f" ({tables.AUTHORS_SOURCE})"
    formats = {c: ".0f" for c in table.columns
               if str(c).startswith(tables.display_name("n_pairs")) and "Δ" not in str(c)}
    if all(str(c).endswith(tag) for c in table.columns):
        table = table.set_axis(pd.MultiIndex.from_tuples([(tables.AUTHORS_SOURCE, str(c)[: -len(tag)])
                                                          for c in table.columns]), axis=1)
        formats = {(tables.AUTHORS_SOURCE, str(c)[: -len(tag)]): f for c, f in formats.items()}
        return tables.page_style(table, caption, formats=formats)
    main = tuple(tables.display_name(v) + " (" for v in ("n_pairs", "svcca", "rsa"))
    shown = [c for c in table.columns if str(c).startswith(main) and "Δ" not in str(c)]
    if len(shown) < len(table.columns) and shown:
        return tables.split_table(table, shown, caption, formats=formats)
    return tables.page_style(table, caption, formats=formats)


def compare_full_space(item, name):
    theirs = reported.reported(item)
    values = [c for c in theirs.columns if c not in NOT_VALUES]
    note(item)
    if name not in found:
        for value in values:
            grid = (theirs.pivot(index="layer_b", columns="layer_a", values=value).sort_index(ascending=False)
                    .rename_axis(index=tables.display_name("layer_b"), columns=tables.display_name("layer_a")))
            display(styled(grid, f"{tables.display_name(value)} ({tables.AUTHORS_SOURCE}): {TITLES[item]}"))
        return
    authors = tables.authors_table(reported.as_mapping(item), index_names=("layer_a", "layer_b"))
    ours = book.grid_frame(name, "full_space", rules=["first_index"], cache_dir=Path(runs_dir) / name,
                           results_dir=found[name]).frame
    display(styled(tables.side_by_side(ours.set_index(["layer_a", "layer_b"])[values], authors), TITLES[item]))


def compare_concepts(item, name):
    theirs = reported.reported(item)
    values = [c for c in theirs.columns if c not in NOT_VALUES]
    authors = tables.authors_table(reported.as_mapping(item), index_names="concept")[
        [f"{tables.display_name(v)} ({tables.AUTHORS_SOURCE})" for v in values]]
    note(item)
    if name not in found:
        display(styled(authors, TITLES[item]))
        return
    layer_a, layer_b = int(theirs["layer_a"].iloc[0]), int(theirs["layer_b"].iloc[0])
    sub = pd.read_parquet(found[name] / "subspace.parquet")
    ours = sub[(sub["layer_a"] == layer_a) & (sub["layer_b"] == layer_b)].set_index("concept")
    display(styled(tables.side_by_side(ours[[c for c in values if c in ours]], authors), TITLES[item]))


# %% [markdown]
# ## Pythia-70m vs Pythia-160m
#
# ### Fig. 3: full space, 1-1

# %%
compare_full_space("fig3", "pythia")

# %% [markdown]
# ### Appendix A1: the shuffled nulls behind Fig. 3

# %%
compare_full_space("A1", "pythia")

# %% [markdown]
# ### Table 1: semantic subspaces, Pythia-70m L3 vs Pythia-160m L5

# %%
compare_concepts("table1", "pythia")

# %% [markdown]
# ## Gemma-1-2B vs Gemma-2-2B
#
# ### Fig. 4: full space, 1-1

# %%
compare_full_space("fig4", "gemma")

# %% [markdown]
# ### Table 2: semantic subspaces (Gemma-1 L12 vs Gemma-2 L14; the layer pair is not confirmed)

# %%
compare_concepts("table2", "gemma")

# %% [markdown]
# ## Where each of the paper's figures and tables is in this book

# %%
where = [
    ("Fig. 1 (method)", "method", "fig1_method_overview"),
    ("Fig. 2 (toy pairing)", "method", "fig2_toy_pairing"),
    ("Fig. 3 / Fig. 4 (full space, 1-1)", "full_space", "fig3_full_space_svcca_rsa"),
    ("Table 1 / Table 2 (concepts)", "subspace", "concept table"),
    ("A1, A5 (SVCCA null and p)", "full_space", "figA1_svcca_null_and_p"),
    ("A2, A5 (RSA null and p)", "full_space", "figA2_rsa_null_and_p"),
    ("A3, A5 (correlations)", "full_space", "figA3_correlation_before_after_filtering"),
    ("A4, A5 (pairs kept)", "full_space", "figA4_pairs_kept"),
    ("A6, A7 (many-to-1)", "many_to_one", "figA6_many_to_one_effect, figA6_many_to_one_svcca_rsa, figA7_many_to_one_null_and_p"),
    ("A8 (paired vs null bars)", "full_space", "figA8_paired_vs_null_bars"),
    ("A9, A10 (concept heatmaps)", "subspace", "figA9_concepts_*"),
    ("A11 (keyword lists)", "subspace", "keyword table"),
    ("A12 (unrelated keywords, random-subset null)", "subspace", "figA12_control_subspace, figA12_concepts_svcca_subset_p"),
    ("A12 (hubs, frequencies, examples)", "feature_counts", "fig_hub_histogram, fig_activation_frequency"),
]
def figure_links(page: str, files: str) -> str:
    """Each figure of a row as a link to its anchor, where the page's executed notebook shows it."""
    executed = Path(f"{page}.ipynb")
    shown = executed.read_text() if executed.exists() else ""
    out = []
    for name in files.split(", "):
        drawn = sorted(Path(figures_dir).glob(f"{name}.png")) if " " not in name else []
        labels = [(path.stem, path.stem.replace("_", "-").lower()) for path in drawn]
        out += [f"{{numref}}`{label}` (`{stem}`)" for stem, label in labels if f":name: {label}\\n" in shown]
        out += [] if any(f":name: {label}\\n" in shown for _, label in labels) else [f"`{name}`"]
    return "; ".join(out)


display(Markdown("| paper | page | figures (links to each) or table |\n|---|---|---|\n" + "\n".join(
    f"| {paper} | {{doc}}`{page}` | {figure_links(page, files)} |" for paper, page, files in where)))
