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
rule = "first_index"
direction = "b_to_a"
metrics = ["rsa", "svcca", "svcca_authors_k"]
alpha = 0.05
cache_dir = None
results_dir = None

# %% [markdown]
# (findings)=
# # What we found
#
# Every sentence on this page is generated from this build's own tables: the full-space grid of
# model A against model B, the same grid for each control the profile defines (two SAE sets of
# model A; SAEs of re-randomised copies of A in A's place), and the robustness chapter's
# bootstrap intervals and raw-neuron baseline. Nothing here is written for one outcome: a run in
# which the models share nothing reads as such.

# %%
from pathlib import Path

import pandas as pd
from IPython.display import HTML, Markdown, display

from saesim.report import book, tables
from saesim.report import prose
from saesim.config import load_profile
from saesim.experiments.grid import adjust_pvalues

prof = load_profile(profile)
display(HTML(book.scope_note(prof, cache_dir=cache_dir)))
frames = {}
for name, slots in prof.comparisons().items():
    table = book.grid_frame(prof, "full_space", rules=[rule], directions=[direction], slots=slots,
                            cache_dir=cache_dir, results_dir=results_dir)
    frames[name] = adjust_pvalues(table.frame)
results = Path(results_dir) if results_dir else Path(cache_dir or prof.cache_dir) / "results"
baselines_path = results / "robustness" / "baselines.parquet"
baselines = pd.read_parquet(baselines_path) if baselines_path.is_file() else None

# %% [markdown]
# ## How this comparison differs from the paper's

# %%
from saesim.report.scope import paper_differences

differences = paper_differences(prof, cache_dir)
display(Markdown("\n".join(f"- {line}" for line in differences) if differences else
                 "This profile compares models as the paper does (one family, one tokenizer, OpenWebText)."))

# %% [markdown]
# ## Each measure against its null and the controls

# %%
summaries = []
for metric in metrics:
    lines, table = prose.findings(frames, metric, alpha=alpha, baselines=baselines,
                                   depth=(prof.layers_a, prof.layers_b))
    title = {"rsa": "RSA", "svcca": "Corrected SVCCA", "svcca_authors_k": "The authors' SVCCA (k = 1)"}[metric]
    display(Markdown(f"**{title}**\n\n" + "\n".join(f"- {line}" for line in lines)))
    summaries.append(table.assign(measure=tables.display_name(metric)))

# %% [markdown]
# The numbers behind the sentences: for each measure and comparison, the layer pairs above their
# null after Holm's correction over that comparison's grid, the median and largest excess over
# the null, and where the largest sits.

# %%
summary = pd.concat(summaries, ignore_index=True)
shown = summary[["measure", "what", "cells", "cells_above_null", "median_excess", "max_excess", "peak_layer_a",
                 "peak_layer_b", "peak_z", "median_pairs"]].assign(
    peak=lambda t: [f"A{a}–B{b}" for a, b in zip(t["peak_layer_a"], t["peak_layer_b"])]).rename(columns={
        "cells_above_null": "above null (Holm)", "median_excess": "median excess", "max_excess": "largest excess",
        "peak_z": "z at peak", "median_pairs": "median pairs"})
shown["measure"] = shown["measure"].replace({"svcca_authors_k": "SVCCA (k = 1)"})
shown = shown[["measure", "what", "cells", "above null (Holm)", "median excess", "largest excess", "peak", "z at peak",
               "median pairs"]]
tables.page_style(shown.style.format({"median excess": "{:+.3f}", "largest excess": "{:+.3f}", "z at peak": "{:.1f}",
                                      "median pairs": "{:.0f}"}).hide(axis="index"),
                  f"Each comparison against its null ({rule}, {direction}; Holm over each comparison's grid at "
                  f"{alpha:g}); peak: the layer pair with the largest excess")
