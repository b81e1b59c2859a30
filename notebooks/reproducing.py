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
authors_file = "../authors_numbers.yaml"
paper_profiles = ["pythia", "gemma"]

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
# Every table below whose header says **(authors' paper)** holds the numbers the authors reported
# (read from their figure notebooks); a column marked **(ours)** appears only when that profile's
# results exist in this checkout ({glue:text}`rp_found`).
#
# ## What each profile needs, and the command

# %%
from pathlib import Path

import pandas as pd
import yaml
from IPython.display import Markdown, display

from saesim import book, tables
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
# (Gemma) layer pairs of 32k × 32k (16k × 16k) correlations with their nulls. The `offline`
# profile's own timings are in the introduction's build note.

# %%
authors = yaml.safe_load(Path(authors_file).read_text())
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


def grid(item, value):
    spec = authors[item]
    return pd.DataFrame(spec[value], index=pd.Index(spec["layers_b"], name="B layer"),
                        columns=pd.Index(spec["layers_a"], name="A layer"))


def tidy(item, value):
    spec = authors[item]
    return {(a, b): v for b, row in zip(spec["layers_b"], spec[value]) for a, v in zip(spec["layers_a"], row)}


def compare_full_space(item, name):
    reported = tables.authors_table({"svcca": tidy(item, "svcca"), "rsa": tidy(item, "rsa")},
                                    index_names=("layer_a", "layer_b"))
    if name not in found:
        for value in ("svcca", "rsa"):
            display(grid(item, value).style.format("{:.3f}")
                    .set_caption(f"{tables.display_name(value)} ({tables.AUTHORS_SOURCE}): {authors[item]['what']}"))
        return
    ours = book.grid_frame(name, "full_space", rules=["first_index"], cache_dir=Path(runs_dir) / name,
                           results_dir=found[name]).frame
    display(tables.side_by_side(ours.set_index(["layer_a", "layer_b"])[["svcca", "rsa"]], reported)
            .style.format("{:.3f}", na_rep="").set_caption(authors[item]["what"]))


def compare_concepts(item, name):
    spec = authors[item]
    reported = tables.authors_table(
        {column: {concept: values[i] for concept, values in spec["rows"].items()}
         for i, column in enumerate(spec["columns"])}, index_names="concept")
    if name not in found:
        display(reported.style.format("{:.3f}", na_rep="").set_caption(spec["what"]))
        return
    sub = pd.read_parquet(found[name] / "subspace.parquet")
    ours = sub[(sub["layer_a"] == spec["layer_a"]) & (sub["layer_b"] == spec["layer_b"])].set_index("concept")
    display(tables.side_by_side(ours[[c for c in spec["columns"] if c in ours]], reported)
            .style.format("{:.3f}", na_rep="").set_caption(spec["what"]))


# %% [markdown]
# ## Pythia-70m vs Pythia-160m
#
# ### Fig. 3: full space, 1-1

# %%
compare_full_space("fig3", "pythia")

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
    ("A6, A7 (many-to-1)", "many_to_one", "figA6_many_to_one_svcca_rsa, figA7_many_to_one_null_and_p"),
    ("A8 (paired vs null bars)", "full_space", "figA8_paired_vs_null_bars"),
    ("A9, A10 (concept heatmaps)", "subspace", "figA9_concepts_*"),
    ("A11 (keyword lists)", "subspace", "keyword table"),
    ("A12 (unrelated keywords, random-subset null)", "subspace", "figA12_concepts_svcca_subset_p"),
    ("A12 (hubs, frequencies, examples)", "feature_counts", "fig_hub_histogram, fig_activation_frequency"),
]
display(Markdown("| paper | page | figure files / table |\n|---|---|---|\n" + "\n".join(
    f"| {paper} | {{doc}}`{page}` | `{files}` |" for paper, page, files in where)))
