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

from IPython.display import HTML, Markdown, display

from saesim import vocab
from saesim.report import book, pages, prose, steering
from saesim.config import load_profile
from saesim.experiments.baselines import read_baselines

prof = load_profile(profile)
grids = pages.comparison_grids(prof, "full_space", rules=[rule], directions=[direction], cache_dir=cache_dir,
                               results_dir=results_dir)
frames = {name: grid.frame for name, grid in grids.items()}
baselines = read_baselines(Path(results_dir) if results_dir else Path(cache_dir or prof.cache_dir) / "results")

# %% [markdown]
# ## In short
#
# {term}`Effects over the null <effect over null>` first, each read against what
# {term}`two SAEs of model A` reach and against the {term}`random-model controls <re-randomised controls>`;
# then what does not hold up. A layer pair is {term}`above its null` under the book's one test
# ({ref}`significance`); the {ref}`glossary` defines every term.

# %%
display(Markdown("\n\n".join(prose.summary_lines(frames, [m for m in metrics if m in frames["full_space"]],
                                                  alpha=alpha))))

# %% [markdown]
# ## Does a steering vector carry over?
#
# The functional test of the claim ({ref}`steering`): a steering vector of model A, carried into
# model B through the paired SAE features, against B's own vector and the null maps.

# %%
display(Markdown("\n\n".join(steering.summary_lines(prof, cache_dir=cache_dir, results_dir=results_dir, rule=rule))
                 or "The steering chapter does not apply to this profile's models (no causal language model)."))

# %% [markdown]
# ## Did better-trained SAEs change the answer?
#
# This build trains its SAEs on more text than the previous recipe did, on documents outside the
# comparison's token grid ({ref}`sae-quality`). Here both recipes' SAEs of the middle layer pair
# (model A, its second SAE set, model B) are retrained and compared exactly as the grid compares
# them, so the change of recipe can be read beside the change of the answer.

# %%
from saesim.experiments import sae_recipe, sweeps
from saesim.report import recipe

why_not = sae_recipe.recipe_applies(prof)
if why_not:
    display(Markdown(f"Not measured for this profile: {why_not}."))
else:
    before_after = sae_recipe.recipe_comparison(prof, sweeps.default_sweep_pair(prof), cache=cache_dir,
                                                results_dir=results_dir)
    display(Markdown(prose.bulleted(recipe.recipe_lines(before_after, rule=rule, direction=direction))))
    display(recipe.recipe_table(before_after, "The previous SAE recipe against this build's on one layer pair: "
                                "held-out FVU, seed stability of model A's SAEs (Hungarian matching on decoder "
                                "cosine) and RSA's excess over its shuffled null with its permutation p; SVCCA, the "
                                "training text, trainer and pair counts one click away",
                                metrics=[m for m in metrics if m in ("rsa", "svcca")] or ["rsa"], rule=rule,
                                direction=direction))

# %% [markdown]
# ## Scope of this run

# %%
display(HTML(book.scope_note(prof, cache_dir=cache_dir)))

# %% [markdown]
# ## How this comparison differs from the paper's

# %%
from saesim.report.scope import paper_differences

differences = paper_differences(prof, cache_dir)
display(Markdown(prose.bulleted(differences) or
                 "This profile compares models as the paper does (one family, one tokenizer, OpenWebText)."))

# %% [markdown]
# ## Each measure against its null and the controls

# %%
summaries = {}
for metric in metrics:
    lines, summaries[metric] = prose.findings(frames, metric, alpha=alpha, baselines=baselines,
                                              depth=(prof.layers_a, prof.layers_b))
    display(Markdown(prose.bulleted(lines, lead=f"**{pages.FINDINGS_TITLES.get(metric, metric)}**")))

# %% [markdown]
# The numbers behind the sentences: for each measure and comparison, the layer pairs above their
# null ({term}`Holm` over that comparison's layer pairs), the median and largest
# {term}`excess over the null <excess over null>`, and
# where the largest sits.

# %%
pages.findings_view(summaries, f"Each comparison against its null ({vocab.label('rule', rule, default=rule)}, "
                               f"{vocab.label('direction', direction, default=direction)}; Holm over each "
                               f"comparison's layer pairs at {alpha:g}); peak: the layer pair with the largest excess")
