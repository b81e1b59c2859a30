# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
profile = "offline"
cache_dir = None
results_dir = None
layer_a = None  # default: the cross-model pair with the largest RSA effect over its null
layer_b = None
rule = None  # default: the profile's rule
direction = "b_to_a"
max_rows = 2000  # pairs embedded in each table (highest r first); about 1 KB each
map_points = 1000  # pairs drawn on the map (a seeded subsample of the kept pairs)
seed = 0

# %% [markdown]
# # Explore the pairs
#
# The scores of the other chapters are computed on pairs of latents. This page shows the pairs
# themselves, for one layer pair: each latent of B with the latent of A it chose, their correlation,
# their top tokens and context windows, how often they fire, the concepts they belong to, and which
# filter kept or dropped the pair and why. Type a token into the search box to find the latents that
# fire on it; the box under each column filters that column (e.g. `stage`). The table shows the latents,
# r, their top tokens and the stage with its reason; **Columns** shows the rest (rank by r, context
# windows, firing rates, concepts, links) and **Download CSV** saves every column of the rows that match
# the search. Every script on the page is served from this site.

# %%
from pathlib import Path

from IPython.display import HTML, Markdown, display

from saesim.report import explore, pages
from saesim.report.book import glue_fields, grid_frame, scope_note
from saesim.config import load_profile
from saesim.experiments.grid import cached_best_partners, settings_from_profile
from saesim.extract.pipeline import load_layer
from saesim.report.tables import page_style
from saesim.vocab import column_label, label

WRAP_HEADERS = [{"selector": "th", "props": "white-space: normal;"}]  # headers wrap: the table fits the page

prof = load_profile(profile)
cache = Path(cache_dir) if cache_dir else Path(prof.cache_dir)
display(HTML(scope_note(prof, cache_dir=cache)))
results = Path(results_dir) if results_dir else cache / "results"
settings = settings_from_profile(prof)
rule = rule or settings.rules[0]
settings = settings.replace(rules=(rule,), directions=(direction,))
grid = grid_frame(prof, rules=[rule], cache_dir=cache, results_dir=results).frame
if layer_a is None or layer_b is None:
    la, lb = explore.strongest_pair(grid, metric="rsa", rule=rule)
else:
    la, lb = int(layer_a), int(layer_b)
data_a, data_b = load_layer(prof, "a", la, out=cache), load_layer(prof, "b", lb, out=cache)
best = cached_best_partners(data_a, data_b, compat=settings.compat, cache=cache)
a, b = data_a.to_sae_layer(), data_b.to_sae_layer()
table = explore.pair_table(a, b, settings, best=best, max_rows=max_rows,
                           neuronpedia_a=explore.neuronpedia_id(prof, "a", la),
                           neuronpedia_b=explore.neuronpedia_id(prof, "b", lb))
cell = grid[(grid["layer_a"] == la) & (grid["layer_b"] == lb)].iloc[0]
intro, numbers = pages.explorer_intro(table, cell, profile=prof.name, label_a=data_a.label, label_b=data_b.label,
                                      layer_a=la, layer_b=lb, rule=rule, direction=direction, r_min=settings.r_min)
glue_fields(numbers, prefix="ex_")
display(Markdown(intro))

# %% [markdown]
# ## The pairs

# %%
links = ["links"] if "links" in table.frame else []
page_bytes = explore.show_table(table.frame, caption=f"Pairs of A{la} and B{lb}", table_id="pairs-table",
                                html_columns=links)

# %% [markdown]
# ## A map of the paired directions
#
# Each kept pair's A decoder row (circle, coloured by r) and its B decoder row (cross) mapped into A's
# space by the orthogonal map that best superposes all kept pairs (orthogonal Procrustes), on the first
# two principal components of the A rows. Hover a point to see its latent's top tokens.

# %%
kept = table.frame[table.frame["stage"] == "kept"]
if len(kept) >= 2:
    dmap = explore.decoder_map(a.decoder, b.decoder, (kept["A latent"].to_numpy(), kept["B latent"].to_numpy()),
                               max_points=map_points, seed=seed)
    fig = explore.map_figure(dmap, **pages.map_hover(kept, dmap))
    fragment = explore.map_html(fig, div_id="decoder-map")
    page_bytes += len(fragment.encode())
    display(HTML(fragment))
    display(Markdown(pages.map_note(dmap, seed=seed)))
else:
    display(Markdown(f"Only {len(kept)} pairs are kept at this layer pair: too few for a map."))

# %% [markdown]
# ## How many latents do two SAEs of one model share?
#
# Two SAEs trained on the same model with other seeds or widths do not learn the same latents
# (Paulo and Belrose, 2025). The fraction of latents two such SAEs share is the noise floor for the
# cross-model pairing rates: a B latent paired across models means little if two SAEs of one model
# pair no more often. For each A layer: the fraction of B latents paired (after the filters, r > 0.1)
# with the strongest B layer, against the same fraction between two SAE sets of model A at that layer,
# and the seed control's shared fraction by a one-to-one (Hungarian) matching at decoder cosine >= 0.7,
# the same fraction by activation correlation >= 0.7, and the mean best cosine (Song et al., 2025).

# %%
if prof.seed_control is not None:
    floor = explore.seed_floor(prof, rule=rule, cache_dir=cache, results_dir=results)
    view, numbers = pages.seed_floor_view(floor)
    glue_fields(numbers, prefix="ex_")
    view = view.assign(rule=[label("rule", r) for r in view["rule"]]).rename(
        columns=lambda c: column_label(c, default=c))
    shown = [column_label("layer_a"), column_label("layer_b"),
             *(c for c in pages.SEED_FLOOR_COLUMNS.values() if c in view)]
    display(page_style(view[shown], "Per A layer: B latents paired across models against the same fraction for two "
                                    "SAEs of model A, and the seed control's shared fractions (blank: no seed SAE at "
                                    "that layer)").set_table_styles(WRAP_HEADERS, overwrite=False).hide(axis="index"))
    every = page_style(view, "The same with every column: the rule and the counts of shared latents")
    display(HTML("<details><summary>Every column (the rule, counts of shared latents)</summary>"
                 + every.set_table_styles(WRAP_HEADERS, overwrite=False).hide(axis="index").to_html() + "</details>"))
    seed_layers = set(prof.layers("seed"))
    if la in seed_layers:
        data_s = load_layer(prof, "seed", la, out=cache)
        best_s = cached_best_partners(data_a, data_s, compat=settings.compat, cache=cache)
        seed_table = explore.pair_table(a, data_s.to_sae_layer(), settings, best=best_s, max_rows=max_rows // 2)
        display(Markdown(pages.seed_table_note(seed_table, label=data_s.label, layer=la)))
        page_bytes += explore.show_table(seed_table.frame, caption=f"Pairs of A{la} and its seed control",
                                         table_id="seed-table", init=False)
else:
    display(Markdown(f"Profile `{prof.name}` has no second SAE set of model A (`seed_control`), so there is no "
                     "seed noise floor here; the offline profile has one."))

# %% [markdown]
# ## Page size

# %%
size_note, numbers = pages.page_size_note(page_bytes, explore.plotly_bytes())
glue_fields(numbers, prefix="ex_")
display(Markdown(size_note))
