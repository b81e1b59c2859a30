"""Look at the paired features themselves: the explorer chapter's tables, decoder map and seed stability.

The computations behind the book's explorer chapter (``notebooks/explorer.py``),
each in its own module and all importable from here:

* :func:`seed_stability` (:mod:`saesim.report.explore_seeds`) — how many
  latents two SAEs of one model and layer share: a one-to-one (Hungarian)
  matching on the decoder cosine graph above 0.7 (Paulo and Belrose, 2025),
  the same fraction by activation correlation, and the mean best cosine (the
  pairwise max-cosine consistency of Song et al., 2025). Beside a
  cross-model pairing rate it is the noise floor: what two seeds of one
  model already give. (The full-matching measure, PW-MCC and the shared
  fraction with its chance level, is
  :func:`saesim.compare.stability.sae_stability`.)
* :func:`pair_table` (:mod:`saesim.report.explore_table`) — one row per
  choosing latent of a layer pair (each B latent for
  ``direction="b_to_a"``): its partner, r and its rank, both latents' top
  tokens and context windows, activation frequencies, which filter stage
  kept or dropped the pair and why, and concept membership.
* :func:`decoder_map` (:mod:`saesim.report.explore_map`) — 2-D coordinates
  of the paired A decoder rows (PCA) with each pair's B row mapped into A's
  space by an orthogonal Procrustes fit, for an interactive map
  (:func:`map_figure`).

This module keeps the chapter's own helpers: :func:`strongest_pair` (the
layer pair to show) and :func:`seed_floor` (cross-model pairing rates beside
the seed noise floor).

The presentation helpers (:func:`show_table`, :func:`map_html`,
:func:`saesim.report.assets.ensure_plotly`) keep every script on the site itself: the table is
``itables`` in its offline mode (the DataTables bundle inlined in the page)
and the map is plotly with ``plotly.min.js`` served from the book's
``_static`` folder — no CDN. The table fits the page's column
(:func:`table_view`, :func:`table_options`): its informative columns are
shown, rounded and wrapped, the rest sit behind a "Columns" button and in a
CSV download.

References
----------
Lan et al., "Sparse Autoencoders Reveal Universal Feature Spaces Across Large
Language Models", arXiv:2410.06981 (2024).

Paulo and Belrose, "Sparse Autoencoders Trained on the Same Data Learn
Different Features", arXiv:2501.16615 (2025).

Song et al., "Position: Mechanistic Interpretability Should Prioritize Feature
Consistency in SAEs", arXiv:2505.20254 (2025).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from saesim.report._explorer import DEFAULT_MAX_ROWS
from saesim.report.explore_map import DecoderMap, decoder_map, map_figure, map_html, plotly_bytes
from saesim.report.explore_seeds import SHARED_COSINE, SeedStabilityResult, ZeroDirectionWarning, seed_stability
from saesim.report.explore_table import (CLIPPED, STAGES, TABLE_COLUMNS, PairTable, neuronpedia_id, neuronpedia_url,
                                         pair_table, show_table, table_options, table_view)

__all__ = [
    "CLIPPED",
    "DEFAULT_MAX_ROWS",
    "SHARED_COSINE",
    "STAGES",
    "TABLE_COLUMNS",
    "DecoderMap",
    "PairTable",
    "SeedStabilityResult",
    "ZeroDirectionWarning",
    "decoder_map",
    "map_figure",
    "map_html",
    "neuronpedia_id",
    "neuronpedia_url",
    "pair_table",
    "seed_floor",
    "seed_stability",
    "plotly_bytes",
    "show_table",
    "strongest_pair",
    "table_options",
    "table_view",
]


# --------------------------------------------------------------------------- book helpers


def strongest_pair(frame, *, metric: str = "rsa", rule: str | None = None) -> tuple[int, int]:
    """The (A layer, B layer) whose ``metric`` most exceeds its null mean (``metric - metric_null_mean``).

    Parameters
    ----------
    frame : pandas.DataFrame
        A full-space grid (``full_space.parquet`` or :func:`saesim.report.book.grid_frame`'s ``frame``).
    metric : str, default "rsa"
    rule : str, optional
        Only rows of this rule (default: all rows given).

    Raises
    ------
    ValueError
        The frame lacks ``metric`` or its null mean, or has no finite effect.
    """
    need = [metric, f"{metric}_null_mean", "layer_a", "layer_b"]
    missing = [c for c in need if c not in frame]
    if missing:
        raise ValueError(f"`frame` lacks the columns {missing}; pass a full-space grid (full_space.parquet).")
    rows = frame if rule is None else frame[frame["rule"] == rule]
    effect = (rows[metric] - rows[f"{metric}_null_mean"]).astype(float)
    if not np.isfinite(effect).any():
        raise ValueError(f"`frame` has no finite {metric} effect (rule {rule!r}); every cell was skipped.")
    best = rows.loc[effect.idxmax()]
    return int(best["layer_a"]), int(best["layer_b"])


def seed_floor(profile, *, rule: str | None = None, cache_dir=None, results_dir=None, pairs=None,
               threshold: float = SHARED_COSINE):
    """Cross-model pairing rates beside the seed noise floor, one row per A layer.

    For each A layer: the fraction of B latents paired (after the filters
    and the r cut) with the A layer of the cross-model pair (the B layer
    with the largest RSA effect, or ``pairs``), the same fraction between A
    and the profile's second SAE set of A at the same layer (slot
    ``"seed"``), and :func:`seed_stability` of those two SAE sets.

    Parameters
    ----------
    profile : Profile
        Must have ``seed_control`` (else a ValueError says so).
    rule : str, optional
        Pairing rule (default: the profile's).
    cache_dir, results_dir : path, optional
        As :func:`saesim.report.book.grid_frame`.
    pairs : sequence of (int, int), optional
        Cross-model (A layer, B layer) pairs; default the strongest B layer per A layer.
    threshold : float, default 0.7

    Returns
    -------
    pandas.DataFrame
    """
    import pandas as pd

    from saesim.experiments.grid import cached_best_partners
    from saesim.extract.pipeline import load_layer
    from saesim.report.grid_data import grid_frame

    if profile.seed_control is None:
        raise ValueError(f"profile `{profile.name}` has no `seed_control` (a second SAE set of model A); the seed "
                         "floor needs one (see the offline profile).")
    cache = Path(cache_dir) if cache_dir is not None else Path(profile.cache_dir)
    rules = [rule] if rule else None
    cross = grid_frame(profile, rules=rules, cache_dir=cache, results_dir=results_dir).frame
    rule = rule or cross["rule"].iloc[0]
    cross = cross[cross["rule"] == rule]
    if pairs is None:
        pairs = [strongest_pair(cross[cross["layer_a"] == la]) for la in sorted(cross["layer_a"].unique())]
    seed_layers = set(profile.layers("seed"))
    same = [(la, la) for la, _ in pairs if la in seed_layers]
    seed = grid_frame(profile, rules=[rule], slots=("a", "seed"), pairs=same, cache_dir=cache,
                      results_dir=results_dir).frame if same else cross.iloc[:0]
    out = []
    for la, lb in pairs:
        c = cross[(cross["layer_a"] == la) & (cross["layer_b"] == lb)].iloc[0]
        row = {"layer_a": la, "layer_b": lb, "rule": rule,
               "cross_paired_fraction": c["n_pairs"] / c["n_latents_b"]}
        s = seed[(seed["layer_a"] == la) & (seed["layer_b"] == la)] if len(seed) else seed
        if len(s):
            row["seed_paired_fraction"] = s.iloc[0]["n_pairs"] / s.iloc[0]["n_latents_b"]
            data_a, data_s = load_layer(profile, "a", la, out=cache), load_layer(profile, "seed", la, out=cache)
            best = cached_best_partners(data_a, data_s, compat=profile.compat, cache=cache)
            res = seed_stability(data_a, data_s, threshold=threshold, best=best, compat=profile.compat)
            row.update({f"seed_{k}": v for k, v in res.row().items()
                        if k in ("statistic", "shared_fraction_r", "mean_max_cosine", "mean_max_cosine_y",
                                 "n_shared", "n_shared_r", "n_x", "n_y")})
        out.append(row)
    return pd.DataFrame(out)
