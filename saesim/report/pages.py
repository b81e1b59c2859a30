"""What each book page quotes and tables, computed from its experiment tables, so that its notebook stays thin.

A notebook of the book loads its tables (:func:`saesim.report.book.grid_frame`),
calls one function here per block of prose numbers or per small table, glues
the numbers (:func:`saesim.report.book.glue_fields`) and draws. Nothing here
reads or writes a file except through :func:`comparison_grids`, which loads the
grid of each comparison a profile defines; every other function is a pure
function of tables already loaded.

==========================  ===================================================================
Page                        Functions
==========================  ===================================================================
method                      :func:`toy_pairing` (the paper's Fig. 2 toy, scored live)
full space                  :func:`full_space_numbers`, :func:`svcca_modes_numbers`,
                            :func:`svcca_modes_table`, :func:`comparison_grids`,
                            :func:`control_panels` (the controls' sentences:
                            :func:`saesim.report.prose.control_lines`)
many-to-1                   :func:`many_to_one_numbers`, :func:`hub_null_table`, :func:`rule_summary`
feature counts              :func:`peak_pair`, :func:`feature_count_numbers`, :func:`hub_table`,
                            :func:`dead_latents`
semantic subspaces          :func:`concept_table_pair`, :func:`subspace_numbers`, :func:`concept_pair_table`,
                            :func:`control_subspace`
explorer                    :func:`explorer_intro`, :func:`map_hover`, :func:`map_note`,
                            :func:`seed_floor_view`, :func:`seed_table_note`, :func:`page_size_note`
robustness                  :func:`robustness_effects`, :func:`verdict_views`
findings                    :func:`findings_view`
==========================  ===================================================================
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from saesim import vocab
from saesim.compare.significance import above_null
from saesim.report.frames import check_frame, fmt_number, fmt_signed
from saesim.report.tables import MIN_HEADLINE_PAIRS, counts_table, with_effects

__all__ = [
    "FINDINGS_TITLES",
    "PAPER_TABLE_PAIRS",
    "ToyPairing",
    "comparison_grids",
    "intro_summary",
    "tail_calibration",
    "concept_pair_table",
    "concept_table_pair",
    "control_panels",
    "control_subspace",
    "dead_latents",
    "explorer_intro",
    "feature_count_numbers",
    "findings_view",
    "full_space_numbers",
    "hub_null_table",
    "hub_table",
    "many_to_one_numbers",
    "map_hover",
    "map_note",
    "page_size_note",
    "seed_floor_view",
    "seed_table_note",
    "peak_pair",
    "robustness_effects",
    "rule_summary",
    "subspace_numbers",
    "svcca_modes_numbers",
    "svcca_modes_table",
    "toy_pairing",
    "verdict_views",
]

ALPHA = 0.05
"""The level at which the pages count p-values."""


# --------------------------------------------------------------------------- method: the toy of Fig. 2


@dataclass(frozen=True)
class ToyPairing:
    """The paper's toy (Fig. 2): B's rows reordered by their best-correlated row of A, scored on both orders.

    Attributes
    ----------
    corr : ndarray
        Pearson correlation of every row of ``m1`` (rows) with every row of ``m2`` (columns).
    order : ndarray of int
        For each row of ``m1``, the row of ``m2`` it takes (0-based).
    rearranged : ndarray
        ``m2[order]``.
    scores : dict
        ``{"unpaired": {measure: score}, "paired": {measure: score}}``.
    """

    corr: np.ndarray
    order: np.ndarray
    rearranged: np.ndarray
    scores: dict

    MEASURES = {vocab.label("measure", key): (measure, options) for key, measure, options in (
        ("svcca", "svcca", {}), ("svcca_authors_k", "svcca", {"compat": True}), ("rsa", "rsa", {}),
        ("linear_cka", "linear_cka", {}))}

    @property
    def svcca_dims(self):
        """The dimension policy of the toy's corrected SVCCA: the library's default variance fraction
        (:data:`saesim.compare.geometry.DEFAULT_VARIANCE`), not the run's profile."""
        from saesim.compare.geometry import DEFAULT_VARIANCE

        return DEFAULT_VARIANCE

    def numbers(self, paper_order=None) -> dict:
        """The numbers the method page quotes: the order (1-based), whether it is the paper's, each score, its move."""
        out = {"order": ", ".join(str(i + 1) for i in self.order)}
        if paper_order is not None:
            out["matches"] = "yes" if np.allclose(self.rearranged, paper_order) else "no"
        for key, measure in (("rsa", "rsa"), ("svcca", "svcca"), ("svcca1", "svcca_authors_k")):
            measure = vocab.label("measure", measure)
            before, after = self.scores["unpaired"][measure], self.scores["paired"][measure]
            out[f"{key}_unpaired"] = before
            out[f"{key}_paired"] = after
            out[f"{key}_moves"] = _moves(before, after)
        return out

    def correlation_frame(self) -> pd.DataFrame:
        n, m = self.corr.shape
        return pd.DataFrame(self.corr, index=[f"A row {i + 1}" for i in range(n)],
                            columns=[f"B row {j + 1}" for j in range(m)])

    def scores_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.scores).rename_axis("measure")


def toy_pairing(m1, m2) -> ToyPairing:
    """Pair each row of ``m1`` with the row of ``m2`` whose entries correlate best, and score both orders."""
    from saesim.compare.geometry import similarity

    m1, m2 = np.asarray(m1, dtype=float), np.asarray(m2, dtype=float)
    corr = np.corrcoef(m1, m2)[: len(m1), len(m1):]
    order = corr.argmax(axis=1)
    rearranged = m2[order]
    scores = {name: {label: float(similarity(m1, y, measure, **options).statistic)
                     for label, (measure, options) in ToyPairing.MEASURES.items()}
              for name, y in (("unpaired", m2), ("paired", rearranged))}
    return ToyPairing(corr=corr, order=order, rearranged=rearranged, scores=scores)


def _moves(before: float, after: float) -> str:
    return "rises" if after > before + 5e-4 else "falls" if after < before - 5e-4 else "stays"


# --------------------------------------------------------------------------- full space


def full_space_numbers(frame: pd.DataFrame) -> dict:
    """The full-space page's prose numbers, from its family (:func:`saesim.report.tables.page_family`).

    The cells with the largest RSA, corrected-SVCCA and authors'-SVCCA excess
    over their nulls, the highest raw SVCCA and RSA, the counts of raw permutation p ≤ 0.05, the
    counts of cells above their null (:func:`saesim.compare.significance.above_null`: Holm over
    the family, on the tail p-values), the permutations per null and the range of the pairs kept
    (% of the choosing latents).
    """
    check_frame(frame, "frame", ["layer_a", "layer_b", "svcca", "rsa", "rsa_excess", "svcca_excess",
                                 "svcca_authors_k", "svcca_p", "rsa_p", "svcca_p_tail", "rsa_p_tail", "n_pairs",
                                 "n_choosers"])
    above = {metric: above_null(frame, metric) for metric in ("svcca", "rsa", "svcca_authors_k")}
    best = frame.loc[frame["svcca"].idxmax()]
    best_rsa = frame.loc[frame["rsa"].idxmax()]
    top_rsa = frame.loc[frame["rsa_excess"].idxmax()]
    top_svcca = frame.loc[frame["svcca_excess"].idxmax()]
    top_k1 = frame.loc[frame["svcca_authors_k"].idxmax()]
    kept = 100.0 * frame["n_pairs"] / frame["n_choosers"]
    return {
        "n_cells": len(frame),
        "top_rsa_excess": float(top_rsa["rsa_excess"]), "top_rsa_a": int(top_rsa["layer_a"]),
        "top_rsa_b": int(top_rsa["layer_b"]), "top_rsa_z": float(top_rsa["rsa_z"]), "top_rsa": float(top_rsa["rsa"]),
        "top_rsa_null": round(float(top_rsa["rsa_null_mean"]), 3) + 0.0,  # near 0: never "-0.000"
        "top_svcca_excess": float(top_svcca["svcca_excess"]), "top_svcca_a": int(top_svcca["layer_a"]),
        "top_svcca_b": int(top_svcca["layer_b"]), "top_svcca_z": float(top_svcca["svcca_z"]),
        "top_k1": float(top_k1["svcca_authors_k"]), "top_k1_a": int(top_k1["layer_a"]),
        "top_k1_b": int(top_k1["layer_b"]), "top_k1_null": float(top_k1["svcca_authors_k_null_mean"]),
        "best_svcca": float(best["svcca"]), "best_svcca_a": int(best["layer_a"]), "best_svcca_b": int(best["layer_b"]),
        "best_svcca_null": float(best["svcca_null_mean"]), "best_svcca_p": float(best["svcca_p"]),
        "best_rsa": float(best_rsa["rsa"]), "best_rsa_a": int(best_rsa["layer_a"]),
        "best_rsa_b": int(best_rsa["layer_b"]),
        "median_svcca_null": float(frame["svcca_null_mean"].median()),
        "sig_svcca": int((frame["svcca_p"] <= ALPHA).sum()), "sig_rsa": int((frame["rsa_p"] <= ALPHA).sum()),
        "above_svcca": int(above["svcca"]["above"].sum()), "above_rsa": int(above["rsa"]["above"].sum()),
        "above_authors": int(above["svcca_authors_k"]["above"].sum()),
        "n_perm": int(frame["n_perm"].max()) if "n_perm" in frame else 0,
        "perm_floor": 1.0 / (int(frame["n_perm"].max()) + 1) if "n_perm" in frame else float("nan"),
        "kept_min": float(kept.min()), "kept_max": float(kept.max()),
    }


AUTHORS_K_COLUMNS = ("svcca_authors_k", "svcca_authors_k_null_mean", "svcca_authors_k_p", "svcca_authors_k_z",
                     "svcca_authors_k_k_x", "svcca_authors_k_k_y")
"""The columns of the authors' one-component SVCCA that every grid table written by this saesim holds."""


def svcca_modes_numbers(frame: pd.DataFrame, *, compat: bool, source: str = "the grid table",
                        profile: str = "PROFILE") -> dict:
    """The corrected and the authors' SVCCA compared on the same pairs and shuffles: the page's numbers.

    Raises
    ------
    RuntimeError
        When ``frame`` lacks the authors'-SVCCA columns (a table written by an
        older saesim); the message says how to rewrite it.
    """
    missing = [c for c in AUTHORS_K_COLUMNS if c not in frame]
    if missing:
        raise RuntimeError(f"the table {source} has no columns {missing}: it was written by an older saesim. "
                           f"Rerun `saesim run --profile {profile}` (with the same --cache) to rewrite it, "
                           f"then rebuild the book.")
    scored = frame.dropna(subset=["svcca", "svcca_authors_k"])
    best = scored.loc[scored["svcca_authors_k"].idxmax()]
    return {
        "k_x_median": int(scored["svcca_k_x"].median()),
        "k_y_median": int(scored["svcca_k_y"].median()),
        "authors_k_max": int(scored[["svcca_authors_k_k_x", "svcca_authors_k_k_y"]].max().max()),
        "authors_best": float(best["svcca_authors_k"]),
        "authors_best_a": int(best["layer_a"]),
        "authors_best_b": int(best["layer_b"]),
        "authors_median_null": float(scored["svcca_authors_k_null_mean"].median()),
        "sig_authors": int((scored["svcca_authors_k_p"] <= ALPHA).sum()),
        "n_differ": int(((scored["svcca"] - scored["svcca_authors_k"]).abs() > 0.01).sum()),
        "modes_note": ("This page ran with compat=True, so its SVCCA already keeps the authors' k and the two "
                       "columns coincide." if compat else
                       "Everywhere else on this page SVCCA is the corrected one (the run's dimension rule above)."),
    }


def svcca_modes_table(frame: pd.DataFrame, corrected: str = "corrected"):
    """SVCCA per layer pair under both dimension rules, with k on each side, null mean and permutation p
    (a captioned :class:`saesim.report.tables.SplitTable`; the authors' k on each side, always 1, one click
    away). ``corrected`` names the run's dimension rule (e.g. :func:`saesim.report.plots.policy_label` of
    its setting), so the header and the caption say what was computed."""
    from saesim.report.tables import split_table

    # one index column, "A0–B1", so that the table fits the page's column
    frame = frame.sort_values(["layer_a", "layer_b"], ascending=[True, False])
    indexed = frame.set_index(pd.Index([vocab.layer_pair(a, b) for a, b in zip(frame["layer_a"], frame["layer_b"])],
                                       name="layer pair"))
    shown = ["SVCCA", "null mean", "p", "k A", "k B"]
    modes = pd.concat({
        "pairs": indexed[["n_pairs"]].set_axis(["n"], axis=1),
        corrected: indexed[["svcca", "svcca_null_mean", "svcca_p", "svcca_k_x", "svcca_k_y"]]
        .set_axis(shown, axis=1),
        "authors' k = 1": indexed[["svcca_authors_k", "svcca_authors_k_null_mean", "svcca_authors_k_p",
                                   "svcca_authors_k_k_x", "svcca_authors_k_k_y"]].set_axis(shown, axis=1),
    }, axis=1)
    counts = [("pairs", "n")] + [(mode, k) for mode in (corrected, "authors' k = 1") for k in ("k A", "k B")]
    both = (corrected, "k A, B")
    modes.insert(modes.columns.get_loc((corrected, "k B")) + 1, both,
                 [f"{fmt_number(x, '.0f')}, {fmt_number(y, '.0f')}"
                  for x, y in zip(modes[(corrected, "k A")], modes[(corrected, "k B")])])
    shown = [("pairs", "n"), *((corrected, c) for c in ("SVCCA", "null mean", "p", "k A, B")),
             *(("authors' k = 1", c) for c in ("SVCCA", "null mean", "p"))]
    return split_table(modes, shown,
                       f"SVCCA per layer pair with the components kept on each side (k A, B), its shuffled-null "
                       f"mean and permutation p-value, under the run's dimension rule ({corrected}) and the "
                       f"authors' (k = 1 on each side); same pairs and same shuffles for both",
                       formats={**{c: ".0f" for c in counts}, (corrected, "p"): ".2g", ("authors' k = 1", "p"): ".2g"})


def _measure(metric: str) -> str:
    return vocab.label("measure", metric, default=metric)


def comparison_grids(profile, kind: str = "full_space", *, main=None, **grid_kwargs) -> dict:
    """The grid table of every comparison the profile defines (A against B, then each control), same settings.

    ``grid_kwargs`` go to :func:`saesim.report.grid_data.grid_frame` for each
    comparison's slots; ``main``, when given, is A against B's table,
    already loaded, and is reused.
    """
    from saesim.config import Profile, load_profile
    from saesim.report.grid_data import grid_frame

    prof = profile if isinstance(profile, Profile) else load_profile(profile)
    out = {}
    for name, slots in prof.comparisons().items():
        if name == "full_space" and main is not None:
            out[name] = main
        else:
            out[name] = grid_frame(profile, kind, slots=slots, **grid_kwargs)
    return out


def intro_summary(profile, *, cache_dir=None, results_dir=None, direction: str = "b_to_a") -> str:
    """The introduction's "In short" (markdown): :func:`saesim.report.prose.summary_lines` of the
    profile's main rule and ``direction``, from the grid tables ``saesim run`` wrote, with the
    settings it was read under. A sentence saying how to compute them when they are missing."""
    from saesim.config import Profile, load_profile
    from saesim.experiments.grid import settings_from_profile
    from saesim.report.prose import summary_lines

    prof = profile if isinstance(profile, Profile) else load_profile(profile)
    rule = settings_from_profile(prof).rules[0]
    cache = Path(cache_dir) if cache_dir is not None else Path(prof.cache_dir)
    results = Path(results_dir) if results_dir is not None else cache / "results"
    if not (results / "full_space.parquet").is_file():
        return (f"*No results yet for profile `{prof.name}`: run `saesim run --profile {prof.name}` and rebuild "
                f"the book.*")
    grids = comparison_grids(prof, "full_space", rules=[rule], directions=[direction], cache_dir=cache,
                             results_dir=results)
    lines = summary_lines({name: grid.frame for name, grid in grids.items()})
    from saesim.report.steering import summary_lines as steering_summary

    lines += steering_summary(prof, cache_dir=cache, results_dir=results, rule=rule)
    head = (f"From this build's own run (profile `{prof.name}`, {vocab.label('rule', rule, default=rule)}, "
            f"{vocab.label('direction', direction, default=direction)}); {{doc}}`generated/findings` has the rest.")
    return "\n\n".join([head, *lines]) + "\n"


def tail_calibration(n_draws: int, *, reps: int = 400, seed: int = 0,
                     levels: Sequence[float] = (0.05, 0.01)) -> pd.DataFrame:
    """The method chapter's live check of :func:`saesim.compare.significance.tail_p_value`.

    For nulls of known shape (normal; gamma(2), right-skewed; beta(2, 5), bounded), ``reps``
    scores drawn from the null itself, each against ``n_draws`` fresh null draws: the share of
    p-values at or below each level (a calibrated test gives the level), for the tail p-value and
    the plain permutation p-value. Deterministic for a seed. ``benchmarks/bench_tail_pvalue.py``
    runs the same with more repetitions and the far tail.
    """
    from scipy import stats

    from saesim.compare.nulls import p_value
    from saesim.compare.significance import tail_p_value

    rng = np.random.default_rng(seed)
    rows = []
    for name, dist in (("normal", stats.norm()), ("gamma(2)", stats.gamma(2.0)), ("beta(2, 5)", stats.beta(2.0, 5.0))):
        scores, nulls = dist.rvs(reps, random_state=rng), dist.rvs((reps, n_draws), random_state=rng)
        tail = np.array([tail_p_value(s, n) for s, n in zip(scores, nulls)])
        perm = np.array([p_value(s, n) for s, n in zip(scores, nulls)])
        for level in levels:
            rows.append({"null": name, "level": level, "tail p ≤ level": float(np.mean(tail <= level)),
                         "permutation p ≤ level": float(np.mean(perm <= level))})
    return pd.DataFrame(rows)


def control_panels(grids: Mapping) -> tuple[dict, list]:
    """``(frames, panels)`` of :func:`comparison_grids`' tables: each frame with its effects, and the
    ``(title, frame, label_a, label_b)`` panels :func:`saesim.report.plots.comparison_heatmaps` draws."""
    frames = {name: with_effects(grid.frame) for name, grid in grids.items()}
    panels = [(vocab.label("comparison", name, default=name), frames[name], grid.label_a, grid.label_b)
              for name, grid in grids.items()]
    return frames, panels


# --------------------------------------------------------------------------- many-to-1


def many_to_one_numbers(many: pd.DataFrame, one: pd.DataFrame) -> dict:
    """The many-to-1 page's prose numbers: many-to-1 pairing (``many``) against a 1-1 rule (``one``).

    Both are page families (:func:`saesim.report.tables.page_family`), each one comparison under
    one rule and direction. The largest RSA excess of each with its cell and z, the median SVCCA
    excess, the highest SVCCA, the median pairs kept, the biggest hub, and the layer pairs of each
    above its null (:func:`saesim.compare.significance.above_null`: Holm over that grid's
    ``n_cells_many`` / ``n_cells_one`` layer pairs, on the tail p-values, and a positive excess).
    """
    for name, frame in (("many", many), ("one", one)):
        check_frame(frame, name, ["layer_a", "layer_b", "svcca", "rsa_excess", "rsa_z", "svcca_excess", "n_pairs",
                                  "svcca_null_mean", "rsa", "rsa_null_mean", "svcca_p_tail", "rsa_p_tail"])
    best_m, best_o = many.loc[many["svcca"].idxmax()], one.loc[one["svcca"].idxmax()]
    top_m, top_o = many.loc[many["rsa_excess"].idxmax()], one.loc[one["rsa_excess"].idxmax()]
    hubs = [count for cell in many.get("top_hubs", ()) for _, count in json.loads(cell)]
    return {
        "top_many": float(top_m["rsa_excess"]), "top_many_z": float(top_m["rsa_z"]),
        "top_many_a": int(top_m["layer_a"]), "top_many_b": int(top_m["layer_b"]),
        "top_one": float(top_o["rsa_excess"]), "top_one_z": float(top_o["rsa_z"]),
        "top_one_a": int(top_o["layer_a"]), "top_one_b": int(top_o["layer_b"]),
        "svcca_excess_many": float(many["svcca_excess"].median()),
        "svcca_excess_one": float(one["svcca_excess"].median()),
        "best_many": float(best_m["svcca"]), "best_many_a": int(best_m["layer_a"]),
        "best_many_b": int(best_m["layer_b"]), "best_one": float(best_o["svcca"]),
        "pairs_many": int(many["n_pairs"].median()), "pairs_one": int(one["n_pairs"].median()),
        "biggest_hub": max(hubs, default=0),
        "n_cells_many": len(many), "n_cells_one": len(one),
        **{f"{metric}_above_{name}": int(above_null(frame, metric)["above"].sum())
           for metric in ("rsa", "svcca") for name, frame in (("many", many), ("one", one))},
    }


def hub_null_table(grids: Mapping, metrics: Sequence[str] = ("rsa", "svcca")) -> pd.DataFrame:
    """Each comparison under each rule against its own null: median excess and z, layer pairs above it.

    ``grids`` maps each rule to ``{comparison: grid table}`` (as
    :func:`comparison_grids` gives; a :class:`~saesim.report.grid_data.GridTable`
    or its frame; one direction). Rows: comparison by comparison, each rule,
    each measure. Columns (headers from :mod:`saesim.vocab`, see :data:`HUB_NULL_COLUMNS`): the
    layer pairs, the median excess and z, the layer pairs with a raw permutation p ≤ 0.05
    (descriptive) and those above their null (:func:`saesim.compare.significance.above_null`:
    Holm over that table's layer pairs alone, on the tail p-values; one family per row).
    """
    rows = []
    rules = list(grids)
    for name in (grids[rules[0]] if rules else ()):
        for rule in rules:
            table = getattr(grids[rule][name], "frame", grids[rule][name])
            for metric in metrics:
                rows.append({"comparison": vocab.label("comparison", name, default=name),
                             "rule": vocab.label("rule", rule, default=rule), "measure": _measure(metric),
                             "null": "/".join(sorted(table["null_kind"].dropna().unique())),
                             "cells": len(table),
                             "median_excess": float((table[metric] - table[f"{metric}_null_mean"]).median()),
                             "median_z": float(table[f"{metric}_z"].median()),
                             "p_le_05": int((table[f"{metric}_p"] <= ALPHA).sum()),
                             "cells_above_null": int(above_null(table, metric)["above"].sum())})
    return pd.DataFrame(rows, columns=list(HUB_NULL_COLUMNS)).rename(columns=HUB_NULL_COLUMNS)


HUB_NULL_COLUMNS = {
    "comparison": vocab.column_label("comparison"), "rule": vocab.column_label("rule"),
    "measure": vocab.column_label("measure"), "null": vocab.column_label("null_kind"),
    "cells": vocab.column_label("cells"), "median_excess": vocab.column_label("median_excess"),
    "median_z": "median z", "p_le_05": "raw p ≤ 0.05", "cells_above_null": vocab.column_label("cells_above_null"),
}
"""Columns of :func:`hub_null_table` -> their headers (:mod:`saesim.vocab` where it names them)."""


def rule_summary(frame: pd.DataFrame, pairs) -> tuple[pd.DataFrame, dict]:
    """Every (rule, direction) over the listed layer pairs, best mean SVCCA first, and the page's numbers.

    Returns
    -------
    summary : DataFrame
        Indexed by (rule, direction): mean and max SVCCA, mean RSA, median
        pairs kept, the layer pairs with a raw SVCCA p ≤ 0.05 (descriptive) and those whose
        SVCCA is above its null (:func:`saesim.compare.significance.above_null`: Holm over the
        listed layer pairs of that rule and direction, one family each, on the tail p-values).
    numbers : dict
        ``rule_pairs`` (the pairs in words), ``best_rule`` and ``best_rule_direction``
        (their labels, :mod:`saesim.vocab`).
    """
    check_frame(frame, "frame", ["rule", "direction", "svcca", "svcca_null_mean", "svcca_p", "svcca_p_tail", "rsa",
                                 "n_pairs"])
    summary = (frame.assign(significant=frame["svcca_p"] <= ALPHA, above=above_null(frame, "svcca")["above"])
               .groupby(["rule", "direction"])
               .agg(mean_svcca=("svcca", "mean"), max_svcca=("svcca", "max"), mean_rsa=("rsa", "mean"),
                    median_pairs=("n_pairs", "median"), svcca_p_le_05=("significant", "sum"),
                    svcca_above=("above", "sum"))
               .sort_values("mean_svcca", ascending=False))
    top = summary.index[0]
    numbers = {"rule_pairs": ", ".join(vocab.layer_pair(la, lb) for la, lb in pairs),
               "best_rule": vocab.label("rule", top[0], default=top[0]),
               "best_rule_direction": vocab.label("direction", top[1], default=top[1])}
    above = f"layer pairs with {_measure('svcca')} {vocab.column_label('cells_above_null')}"
    shown = summary.rename(columns=lambda c: above if c == "svcca_above" else vocab.column_label(c)).rename(
        index=lambda key: vocab.label("rule", key, default=vocab.label("direction", key, default=key)))
    return shown.rename_axis(index=["rule", "direction"]), numbers


# --------------------------------------------------------------------------- feature counts


def peak_pair(frame: pd.DataFrame, layer_a=None, layer_b=None, *, by: str = "rsa_excess") -> tuple[int, int]:
    """``(layer_a, layer_b)``: the given layers, a missing one taken from the cell with the largest ``by``."""
    if layer_a is not None and layer_b is not None:
        return int(layer_a), int(layer_b)
    check_frame(frame, "frame", ["layer_a", "layer_b", by])
    peak = frame.loc[frame[by].idxmax()]
    return (int(peak["layer_a"]) if layer_a is None else int(layer_a),
            int(peak["layer_b"]) if layer_b is None else int(layer_b))


def feature_count_numbers(hubs, data_a, data_b, frame: pd.DataFrame, *, layer_a: int, layer_b: int) -> dict:
    """The feature-counts page's numbers: hubs of one layer pair, dead latents, firing rate, pairs kept.

    ``hubs`` is :func:`saesim.compare.match.hub_counts` of the layer pair's
    best partners, ``data_a``/``data_b`` its two layers
    (:func:`saesim.extract.pipeline.load_layer`), ``frame`` the page's grid.
    """
    from saesim.extract.tokens import activation_frequency
    from saesim.report.book import top_tokens_text

    top = hubs.top(1)
    top_hub = top[0] if top else (-1, 0)
    freq_a = activation_frequency(data_a.codes)
    kept = counts_table(frame)["kept %"]
    return {
        "layer_a": layer_a, "layer_b": layer_b, "n_unique": hubs.n_unique, "n_choosers": hubs.n_choosers,
        "unique_pct": 100.0 * hubs.unique_fraction, "top_hub": top_hub[1], "top_hub_latent": top_hub[0],
        "top_hub_tokens": top_tokens_text(data_a.contexts, top_hub[0], 5) if top_hub[0] >= 0 else "none",
        "dead_a": int(data_a.dead.sum()), "dead_b": int(data_b.dead.sum()),
        "n_latents_a": data_a.n_latents, "n_latents_b": data_b.n_latents,
        "median_freq_a": float(np.median(freq_a[freq_a > 0])) if (freq_a > 0).any() else 0.0,
        "kept_min": float(kept.min()), "kept_max": float(kept.max()),
    }


def hub_table(hubs, contexts, *, n: int = 10, k: int = 5) -> pd.DataFrame:
    """The ``n`` biggest hubs with their top ``k`` tokens."""
    from saesim.report.book import top_tokens_text

    return hubs.to_frame().head(n).assign(top_tokens=lambda t: [top_tokens_text(contexts, i, k) for i in t["latent"]])


def dead_latents(frame: pd.DataFrame, label_a: str, label_b: str) -> pd.DataFrame:
    """Dead latents per (model, layer) of a grid table, with the share of the layer's latents."""
    check_frame(frame, "frame", ["layer_a", "layer_b", "dead_a", "n_latents_a", "dead_b", "n_latents_b"])
    parts = []
    for side, label in (("a", label_a), ("b", label_b)):
        parts.append(frame.groupby(f"layer_{side}")[[f"dead_{side}", f"n_latents_{side}"]].first()
                     .rename(columns={f"dead_{side}": "dead", f"n_latents_{side}": "latents"}).assign(model=label))
    dead = pd.concat(parts).rename_axis("layer").reset_index().set_index(["model", "layer"])
    dead["dead %"] = 100.0 * dead["dead"] / dead["latents"]
    return dead


# --------------------------------------------------------------------------- semantic subspaces


PAPER_TABLE_PAIRS = {"pythia": (3, 5), "gemma": (12, 14)}
"""The paper's Table 1-2 layer pairs (Pythia-70m L3 vs Pythia-160m L5; Gemma-1 L12 vs Gemma-2 L14), by profile."""


def concept_table_pair(family: pd.DataFrame, frame: pd.DataFrame, profile: str, layer_a=None,
                       layer_b=None) -> tuple[int, int]:
    """The layer pair of the concept table: the given layers, else the paper's pair when present, else the
    pair with the most concepts resting on enough pairs to be headlined (ties: the largest mean SVCCA excess)."""
    if layer_a is not None and layer_b is not None:
        return int(layer_a), int(layer_b)
    pair = PAPER_TABLE_PAIRS.get(profile)
    present = set(zip(frame["layer_a"], frame["layer_b"]))
    if pair not in present:
        ranking = (family.assign(enough=family["n_pairs"] >= MIN_HEADLINE_PAIRS)
                   .groupby(["layer_a", "layer_b"]).agg(enough=("enough", "sum"), mean=("svcca_excess", "mean"))
                   .sort_values(["enough", "mean"], ascending=False))
        pair = ranking.index[0] if len(ranking) else sorted(present)[0]
    return (int(pair[0]) if layer_a is None else int(layer_a), int(pair[1]) if layer_b is None else int(layer_b))


def control_subspace(frame: pd.DataFrame) -> pd.DataFrame:
    """The scored rows of the unrelated-word Control subspace of a subspace table."""
    return frame[(frame["concept"] == "Control") & (frame["skipped"].fillna("") == "")]


def _rate(series: pd.Series) -> float:
    return float((series <= ALPHA).mean())


def _n_above(family: pd.DataFrame, metric: str, null_mean: str | None = None) -> int:
    """Cells of one family (``<metric>_p_holm`` adjusted over it, as
    :func:`saesim.report.tables.concept_family` stores) above their null: Holm-adjusted p ≤
    :data:`ALPHA` and score above ``null_mean`` (default ``<metric>_null_mean``). The decision of
    :func:`saesim.compare.significance.above_null` with the family as one family."""
    score = metric.removesuffix("_subset")
    null_mean = null_mean or f"{metric}_null_mean"
    if f"{metric}_p_holm" not in family or null_mean not in family:
        return 0
    return int(((family[f"{metric}_p_holm"] <= ALPHA) & (family[score] > family[null_mean])).sum())


def subspace_numbers(frame: pd.DataFrame, family: pd.DataFrame, concepts: Sequence[str], *, layer_a: int,
                     layer_b: int) -> dict:
    """The semantic-subspace page's numbers and the sentences built from them.

    ``frame`` is the page's grid with effects, ``family`` its one
    multiple-testing family (:func:`saesim.report.tables.concept_family`: every scored (layer
    pair, concept) subspace of the real concepts, Holm-adjusted over it on the tail p-values),
    ``concepts`` the real concepts scored, ``layer_a``/``layer_b`` the
    concept table's pair.

    Counts of raw permutation p ≤ 0.05 (``n_sig``, ``n_sig_rsa``, ``n_control_sig``,
    ``n_control_sig_rsa``, ``n_subset_sig``) are descriptive; the claims are the counts above the
    null after Holm: ``n_sig_holm``, ``n_sig_rsa_holm`` and ``n_subset_sig_holm`` over the
    family, ``n_control_above`` and ``n_control_above_rsa`` over the Control's own layer pairs
    (judged apart, :func:`saesim.compare.significance.above_null`).
    """
    from saesim.report.tables import concept_headline

    at_pair = family[(family["layer_a"] == layer_a) & (family["layer_b"] == layer_b)]
    control = control_subspace(frame)
    nan = float("nan")
    if not len(control):
        reading = "no Control subspace was scored"
    else:
        rate_control, rate_concepts = _rate(control["svcca_p"]), _rate(family["svcca_p"])
        reading = (f"At a raw p ≤ {ALPHA:g}, the Control passes at {rate_control:.0%} of its layer "
                   f"pairs and the concepts at {rate_concepts:.0%} of theirs, "
                   + ("so at this level neither the Control nor any concept subspace stands out from its shuffled "
                      "null" if rate_control == rate_concepts == 0 else
                      "so the shuffle null rejects for a sizeable set of latents paired by activation whatever they "
                      "mean: a concept's score says little beyond the Control's at the same layer pair"
                      if rate_control >= rate_concepts else
                      "so the concepts stand out from unrelated words more often than chance alone would give"))
    out = {
        "table_a": layer_a, "table_b": layer_b,
        "n_scored": len(family), "n_rows": int(frame["concept"].isin(list(concepts)).sum()),
        "min_pairs": MIN_HEADLINE_PAIRS,
        "n_enough": int((family["n_pairs"] >= MIN_HEADLINE_PAIRS).sum()),
        "median_pairs": float(family["n_pairs"].median()) if len(family) else nan,
        "n_sig": int((family["svcca_p"] <= ALPHA).sum()), "n_sig_holm": _n_above(family, "svcca"),
        "n_sig_rsa": int((family["rsa_p"] <= ALPHA).sum()), "n_sig_rsa_holm": _n_above(family, "rsa"),
        "n_control": len(control), "n_control_sig": int((control["svcca_p"] <= ALPHA).sum()),
        "n_control_sig_rsa": int((control["rsa_p"] <= ALPHA).sum()),
        "n_control_above": int(above_null(control, "svcca", keys=())["above"].sum()) if len(control) else 0,
        "n_control_above_rsa": int(above_null(control, "rsa", keys=())["above"].sum()) if len(control) else 0,
        "control_pairs": float(control["n_pairs"].median()) if len(control) else nan,
        "control_reading": reading,
        "n_subset_sig": int((family["svcca_subset_p"] <= ALPHA).sum()) if "svcca_subset_p" in family else 0,
        "n_subset_sig_holm": _n_above(family, "svcca_subset"),
        "k1_min": float(at_pair["svcca_authors_k"].min()) if len(at_pair) else nan,
        "k1_max": float(at_pair["svcca_authors_k"].max()) if len(at_pair) else nan,
        "k1_null": float(at_pair["svcca_authors_k_null_mean"].median()) if len(at_pair) else nan,
    }
    for name, metric in (("top_text", "svcca"), ("top_rsa_text", "rsa")):
        row = concept_headline(family, metric)
        out[name] = (f"no concept subspace has {MIN_HEADLINE_PAIRS} pairs or more" if row is None else
                     f"{row['concept']} at A {int(row['layer_a'])} – B {int(row['layer_b'])} ({int(row['n_pairs'])} "
                     f"pairs): {row[metric]:.3f} against a null mean of {row[f'{metric}_null_mean']:.3f}, an excess "
                     f"of {row[f'{metric}_excess']:.3f} (z = {row[f'{metric}_z']:.1f}, Holm-adjusted p = "
                     f"{row[f'{metric}_p_holm']:.2g} over the {len(family)} concept subspaces)")
    return out


CONCEPT_PAIR_COLUMNS = [vocab.column_label(c) for c in ("n_pairs", "svcca_authors_k", "svcca_authors_k_null_mean")] + [
    f"{_measure('svcca')} paired", vocab.column_label("svcca_null_mean"), vocab.column_label("svcca_p_holm"),
    f"{_measure('rsa')} paired", vocab.column_label("rsa_null_mean"), vocab.column_label("rsa_p_holm"), "skipped"]
"""Columns of :func:`concept_pair_table`, in order (headers from :mod:`saesim.vocab`; the paired scores
as :func:`saesim.report.tables.concept_table` heads them)."""

CONCEPT_PAIR_ONE_CLICK = [vocab.column_label(c) for c in ("svcca_authors_k", "svcca_authors_k_null_mean")]
"""Columns of :func:`concept_pair_table` the subspace page shows one click away (the authors' k = 1 SVCCA,
quoted in the page's text), so that the corrected scores and their Holm p-values fit the page."""


def concept_pair_table(frame: pd.DataFrame, family: pd.DataFrame, *, layer_a: int, layer_b: int) -> pd.DataFrame:
    """Every concept at one layer pair (the paper's Tables 1-2): the pairs kept, the authors' k = 1 SVCCA, the
    scores, their null means and the p-values Holm-adjusted over the page's family (every scored (layer pair,
    concept) subspace of the real concepts; blank for the Control, judged apart)."""
    from saesim.report.tables import concept_table

    table = concept_table(frame, layer_a=layer_a, layer_b=layer_b)
    at_pair = family[(family["layer_a"] == layer_a) & (family["layer_b"] == layer_b)]
    adjusted = at_pair.set_index("concept")[["svcca_p_holm", "rsa_p_holm", "svcca_authors_k",
                                             "svcca_authors_k_null_mean"]]
    table = table.join(adjusted.rename(columns=vocab.column_label))
    return table[[c for c in CONCEPT_PAIR_COLUMNS if c in table]]


# --------------------------------------------------------------------------- explorer


def explorer_intro(table, cell, *, profile: str, label_a: str, label_b: str, layer_a: int, layer_b: int, rule: str,
                   direction: str, r_min: float) -> tuple[str, dict]:
    """The explorer page's opening sentence (markdown) and its glued numbers, for one layer pair.

    ``table`` is :func:`saesim.report.explore.pair_table`'s result, ``cell``
    the layer pair's row of the grid table.
    """
    counts = ", ".join(f"{n} {s}" for s, n in table.stage_counts.items() if n)
    text = (f"Profile `{profile}`: A = {label_a}, layer {layer_a}; B = {label_b}, layer {layer_b} "
            f"(`layer_a`, `layer_b`; by default the pair whose RSA most exceeds its shuffled null: RSA "
            f"{fmt_number(cell['rsa'])} against a null mean of {fmt_number(cell['rsa_null_mean'])}). Rule `{rule}`, "
            f"direction "
            f"`{direction}`, r > {r_min:g}. One row per {'B' if direction == 'b_to_a' else 'A'} latent "
            f"({table.n_rows} rows): {counts}. The table holds the {len(table.frame)} rows with the highest r "
            f"(`max_rows`); {table.n_left_out} rows with lower r are left out.")
    numbers = {"pair": vocab.layer_pair(layer_a, layer_b), "n_rows": table.n_rows, "kept": table.stage_counts["kept"]}
    return text, numbers


def map_hover(kept: pd.DataFrame, dmap) -> dict:
    """Colour (r) and hover texts of :func:`saesim.report.explore.map_figure` for the pairs a decoder map drew."""
    by_pair = kept.set_index(["A latent", "B latent"])
    rows = [by_pair.loc[(i, j)] for i, j in zip(dmap.a, dmap.b)]
    return {"color": [row["r"] for row in rows],
            "hover_a": [f"A {i} · r {row['r']:.2f}<br>{row['A top tokens']}" for i, row in zip(dmap.a, rows)],
            "hover_b": [f"B {j} · r {row['r']:.2f}<br>{row['B top tokens']}" for j, row in zip(dmap.b, rows)]}


def map_note(dmap, *, seed: int) -> str:
    """What the decoder map shows: points drawn, variance on its two axes, mean cosine of a pair after the map."""
    return (f"{dmap.n_points} of {dmap.n_pairs} kept pairs drawn (`map_points`, seed {seed}); the two axes hold "
            f"{dmap.explained_variance.sum():.0%} of the A rows' variance; after the map, the mean cosine of a "
            f"pair's two rows is {dmap.mean_mapped_cosine:.3f}.")


SEED_FLOOR_COLUMNS = {
    "cross_paired_fraction": "B paired across models", "seed_paired_fraction": "paired, A vs seed",
    "seed_statistic": "shared, cos >= 0.7", "seed_shared_fraction_r": "shared, r >= 0.7",
    "seed_mean_max_cosine": "mean best cos (A to seed)", "seed_mean_max_cosine_y": "mean best cos (seed to A)",
}
"""Headers of :func:`saesim.report.explore.seed_floor`'s columns on the explorer page."""


def seed_floor_view(floor: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """:func:`saesim.report.explore.seed_floor` with readable headers, and ``seed_shared`` (its mean shared
    fraction at decoder cosine ≥ 0.7; NaN without a seed control)."""
    shared = float(floor["seed_statistic"].mean()) if "seed_statistic" in floor else float("nan")
    return floor.rename(columns=SEED_FLOOR_COLUMNS).reset_index(drop=True), {"seed_shared": shared}


def seed_table_note(seed_table, *, label: str, layer: int) -> str:
    """What the seed-control pair table holds."""
    return (f"The same A layer against the second SAE set of model A ({label}, layer {layer}): "
            f"{seed_table.n_rows} rows, {seed_table.stage_counts['kept']} kept; the {len(seed_table.frame)} "
            f"with the highest r are shown, {seed_table.n_left_out} left out.")


def page_size_note(page_bytes: int, plotly_bytes: int) -> tuple[str, dict]:
    """How much the explorer's tables and map embed in the page, and ``page_mb``."""
    mb = page_bytes / 2**20
    return (f"The tables and the map embed {mb:.1f} MB in this page (the DataTables bundle included); plotly's "
            f"script ({plotly_bytes / 2**20:.1f} MB) is one file of the site, loaded once for every page that uses "
            f"it.", {"page_mb": mb})


# --------------------------------------------------------------------------- robustness and findings


def robustness_effects(sae: pd.DataFrame, family: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """The SAE pairs of the baseline layer pairs: score with its bootstrap interval, null mean, effect, z,
    the book's p-value Holm-adjusted over the page's family and whether the cell is above its null.

    ``family`` is A against B's grid: each rule and direction of it is one Holm family
    (:func:`saesim.compare.significance.above_null`); a baseline layer pair is looked up in it.
    """
    decided = {m: family[["layer_a", "layer_b", "rule", "direction"]].join(above_null(family, m)) for m in metrics}
    rows = []
    for r in sae.to_dict("records"):
        for m in metrics:
            d = decided[m]
            hit = d[(d["layer_a"] == r["layer_a"]) & (d["layer_b"] == r["layer_b"]) & (d["rule"] == r["rule"])
                    & (d["direction"] == r["direction"])]
            p_holm = float(hit["p_holm"].iloc[0]) if len(hit) else float("nan")
            above = ("yes" if bool(hit["above"].iloc[0]) else "no") if len(hit) else ""
            rows.append({"layer pair": vocab.layer_pair(r["layer_a"], r["layer_b"]), "measure": _measure(m),
                         vocab.column_label("n_pairs"): int(r["n_pairs"]),
                         "score [95 % CI]": f"{fmt_number(r[m])} [{fmt_number(r[f'{m}_ci_low'])}, "
                                            f"{fmt_number(r[f'{m}_ci_high'])}]",
                         vocab.column_label("null_mean"): r[f"{m}_null_mean"],
                         vocab.column_label("effect"): r[f"{m}_effect"], "z": r[f"{m}_effect_z"],
                         vocab.column_label("p_holm"): p_holm, "above null": above})
    return pd.DataFrame(rows).set_index(["layer pair", "measure"])


def verdict_views(verdicts: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """:func:`saesim.report.prose.verdict_table` as the page shows it: one ``(measure, rule, view)`` per measure
    and rule, the view with the layer pairs as columns and the numbers formatted."""
    effect, p_holm, share = (vocab.column_label(c) for c in ("effect", "p_holm", "seed_share"))
    shown = verdicts.assign(**{
        effect: verdicts[effect].map(lambda v: fmt_number(v, "+.3f")),
        p_holm: verdicts[p_holm].map(lambda v: "" if not np.isfinite(v) else fmt_number(v, ".2g")),
        **({share: verdicts[share].map(lambda v: "" if not np.isfinite(v) else fmt_number(v, ".0%"))}
           if share in verdicts else {})})
    return [(_measure(measure), vocab.label("rule", rule, default=rule),
             part.drop(columns=["measure", "rule"]).set_index("layer pair").T.fillna(""))
            for (measure, rule), part in shown.groupby(["measure", "rule"], sort=False)]


FINDINGS_TITLES = {"rsa": "RSA", "svcca": "Corrected SVCCA", "svcca_authors_k": "The authors' SVCCA (k = 1)",
                   "linear_cka": "Linear CKA"}
"""Heading of each measure's findings."""

def findings_view(summaries: Mapping[str, pd.DataFrame], caption: str | None = None):
    """:func:`saesim.report.prose.findings`' tables of each measure (``{metric: table}``) as one table to show
    (:func:`saesim.report.tables.split_table`: excesses signed to 3 decimals, z to 1, pairs whole; the z at the
    peak and the median pairs kept one click away)."""
    from saesim.report.tables import split_table

    summary = pd.concat([table.assign(measure=_measure(metric)) for metric, table in summaries.items()],
                        ignore_index=True)
    # a comparison reads as its table label ("random model (authors')"), not its in-sentence phrase
    labels = {vocab.phrase("comparison", key): term.label for key, term in vocab.TERMS["comparison"].items()}
    shown = summary.assign(peak=[vocab.layer_pair(a, b) for a, b in zip(summary["peak_layer_a"], summary["peak_layer_b"])],
                           what=[labels.get(w, w) for w in summary["what"]])
    columns = ["measure", "what", "cells", "cells_above_null", "median_excess", "max_excess", "peak", "peak_z",
               "median_pairs"]
    names = {c: vocab.column_label(c, default=c) for c in columns}
    table = shown[columns].rename(columns=names)
    return split_table(table, [names[c] for c in columns if c not in FINDINGS_ONE_CLICK], caption, index=False,
                       formats={names["median_excess"]: fmt_signed, names["max_excess"]: fmt_signed,
                                names["peak_z"]: ".1f", names["median_pairs"]: ".0f"})


FINDINGS_ONE_CLICK = ("peak_z", "median_pairs")
"""Columns of :func:`findings_view` one click away (behind its table's toggle)."""
