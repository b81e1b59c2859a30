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
comparisons = None  # which comparisons are steered (None here and below: the stage's default)
pairs = None  # layer pairs (A, B) of the main comparison (default: each A layer with B's at the same depth)
concepts = None  # keyword concepts and contrastive pairs (default: the profile's steering_concepts)
alphas = None  # push sizes, as multiples of B's mean residual norm
reference_alpha = None  # the push of B's own vector whose side effect the efficiencies are read at
n_fit_docs = None  # held-in documents for the vectors and the activation map
n_prompts = None  # held-out neutral prompts B reads while steered
prompt_tokens = None  # tokens per prompt (B's tokenisation)
n_null = None  # maps fitted on shuffled pairings (the p-value)
n_random = None  # random orthogonal maps and random vectors
n_boot = None  # bootstrap resamples of the prompts per interval
seed = None  # the seed of every random draw
rule = "first_index"
measure = "rsa"
cache_dir = None
results_dir = None
figures_dir = "figures"

# %% [markdown]
# (steering)=
# # Do steering vectors transfer?
#
# The paper motivates universality by transfer: if two models' SAE feature spaces are alike, what
# is found in one should carry over to the other. Reviewers asked the authors to test exactly that
# for steering vectors. This chapter does: a steering vector found in model A is carried into
# model B through the paired SAE features (a map fitted on the paired decoder rows of one layer
# pair), added to B's residual stream, and its effect on B's next-token predictions is compared
# with what B's own vector for the same concept does, at the same cost to everything else: its
# {term}`transfer efficiency`.

# %%
from IPython.display import HTML, Markdown, display

from saesim.report import book, steering as report, tables
from saesim.experiments.steering import SteeringSettings, run_steering, steering_meta

grid = book.grid_frame(profile, "full_space", rules=[rule], cache_dir=cache_dir, results_dir=results_dir)
settings = SteeringSettings.from_parameters(comparisons=comparisons, pairs=pairs, concepts=concepts, alphas=alphas,
                                            reference_alpha=reference_alpha, n_fit_docs=n_fit_docs,
                                            n_prompts=n_prompts, prompt_tokens=prompt_tokens, n_null=n_null,
                                            n_random=n_random, n_boot=n_boot, seed=seed)
table = run_steering(grid.profile, settings, cache=cache_dir, out=results_dir)
meta = steering_meta(grid.profile, cache=cache_dir, out=results_dir)
settings = report.resolved_settings(meta)  # as computed: every default filled in
similarity = report.similarity_of_pairs(grid.frame, rule, measure)
numbers = report.steering_numbers(table, meta, similarity)
book.glue_fields(numbers, prefix="st_")
display(HTML(book.scope_note(profile, cache_dir=cache_dir)))

# %% [markdown]
# ## In short

# %%
display(Markdown("\n\n".join(report.steering_lines(numbers, label_a=grid.label_a, label_b=grid.label_b))))

# %% [markdown]
# ## The experiment
#
# For each layer pair at the same relative depth (the paper's similarity is read there too):
#
# 1. **Steering vectors in A** from held-in text (the grid's first documents): the *mean
#    difference* (mean residual activation at layer l_A of the tokens that are one of the concept's
#    keywords, minus the mean of all other tokens; for a contrastive pair, minus the mean of the
#    contrasting words' tokens) and the *decoder sum* (the sum of the unit decoder rows of A's
#    latents whose top examples are the concept's keywords, as the concept chapter assigns them).
# 2. **Maps** from A's residual space to B's: orthogonal
#    {term}`Procrustes <Procrustes, paired decoder rows>` on the paired decoder rows
#    (the headline: it keeps norms and angles, so it cannot fit the pairs by stretching), ridge
#    least squares on the same rows, and ridge least squares on the aligned token activations (the
#    activation-level map of the transfer literature: the reference a feature-level map should
#    approach). Nulls: Procrustes on shuffled pairings (the p-value), random orthogonal maps and a
#    random direction of B.
# 3. **B's own vector**, the same recipe run in B: the upper bound.
# 4. **Effect on B**: each unit vector, times a scale α × B's mean residual norm at l_B, is added
#    at every position while B reads held-out neutral prompts (the start of the grid's last
#    documents, those with the fewest of the concept's keywords). The *effect* is the change in
#    the log-probability B gives the concept's keyword tokens (its own tokenisation; for a
#    contrastive pair, minus the change for the contrasting words); the *side effect* is the KL
#    divergence from the unsteered next-token distribution.
# 5. **Transfer efficiency** = the mapped vector's effect ÷ B's own vector's effect, both read at
#    the side effect B's own vector causes at the reference scale (interpolated along each
#    vector's scale curve). 1 means the carried vector steers B as well as B's own; 0, not at all.
#    Intervals: bootstrap over prompts. p: against the shuffled-pairing maps, one pooled test over
#    the cells, and per cell with Holm over the cells of one comparison.

# %%
fig = report.steering_method_diagram()
book.show_figure(fig, "fig_steering_method", "How a steering vector is carried from model A to model B and "
                                             "read against B's own vector and the nulls.", out_dir=figures_dir)

# %% [markdown]
# ## Along depth, beside the similarity of the same layer pairs

# %%
fig = report.steering_depth(report.cells_with_null_band(table, settings.reference_alpha), similarity, measure=measure)
book.show_figure(fig, "fig_steering_depth",
                 f"Left: transfer efficiency of each concept's vector (Procrustes map on the paired decoder rows; "
                 f"dots with 95 % bootstrap intervals over {settings.n_prompts} prompts, shaded: 5–95 % of "
                 f"{settings.n_null} maps "
                 f"fitted on shuffled pairings; crosses: the controls). Right: the "
                 f"{report.measure_label(measure)} effect over null of the same layer pairs (full-space grid, "
                 f"{report.rule_label(rule)} pairing).",
                 out_dir=figures_dir)

# %% [markdown]
# ## Effect against side effect as the push grows

# %%
fig = report.steering_curves(table, report.curve_panels(table, settings.reference_alpha), label_b=grid.label_b)
book.show_figure(fig, "fig_steering_curves",
                 f"Effect on B against side effect for scales α = {report.alphas_text(settings)} × B's "
                 "residual norm, at the best layer pair of each concept: B's own vector, the vector carried by "
                 "each map, and the range of the shuffled-pairing maps.", out_dir=figures_dir)

# %% [markdown]
# ## Every cell, with its interval and p-value
#
# One row per layer pair and concept (headline recipe and map). p: one-sided, against the
# shuffled-pairing maps; p (Holm): Holm over the rows of one comparison.

# %%
view = report.steering_table(table, settings.reference_alpha, "full_space")
tables.split_table(view, report.steering_shown(view),
                   f"Transfer efficiency of each cell, {grid.label_a} → {grid.label_b}: the Procrustes-mapped "
                   "mean-difference vector against B's own, at matched side effect")

# %%
view = report.steering_table(table, settings.reference_alpha, report.control_names(table))
tables.split_table(view, report.steering_shown(view),
                   f"The same for {report.controls_text(table)}: its own SAEs paired with B's and mapped the "
                   "same way")

# %% [markdown]
# ## What the steered model writes (illustration, not evidence)
#
# Greedy continuations of one neutral prompt at the reference scale, unsteered and with each
# vector. One prompt and one draw show what the numbers above mean; they prove nothing.

# %%
tables.page_style(report.examples_table(meta), "Greedy continuations of one held-out prompt, layer pair of the "
                                               "middle of the depth, first concept")

# %% [markdown]
# ## Cost
#
# The stage took {glue:text}`st_seconds:.0f` s on this machine (loading both models, capturing
# the held-in activations, and every steered forward pass); it is cached with the other results and
# reruns only when its settings or the SAEs change.
