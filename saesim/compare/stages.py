"""The paper's filter pipeline from best partners to the pairs that are scored, stage by stage.

The order is authors_pipeline §2.4's: the junk / shared-top-token filter
(:func:`saesim.compare.filters.junk_overlap_mask`), then 1-1, then the r cut
(:mod:`saesim.compare.match`). For ``many_to_one``, ``first_index`` and ``max_corr`` every
chooser's best partner enters the junk filter and the 1-1 rule (if any) de-duplicates what it
keeps; ``mutual`` and ``hungarian`` pair first (with the r cut as their candidate threshold),
then the junk filter and the r cut apply. :func:`filter_stages` keeps every intermediate set, so
the grids (which score the final pairs and record the counts), the book's filter examples and the
explorer's pair table (which show what each stage removed) follow one definition.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from saesim.compare.filters import junk_overlap_mask
from saesim.compare.match import Pairs, dedup, filter_pairs, pair, r_cut

__all__ = ["PAIR_FIRST_RULES", "FilterStages", "filter_stages", "filtered_pairs"]

PAIR_FIRST_RULES: tuple[str, ...] = ("mutual", "hungarian")
"""Rules that pair before the junk filter (their candidates are the rule's pairs, not every chooser's best)."""

_DEDUP_AFTER_JUNK = ("first_index", "max_corr")
"""Rules whose 1-1 step de-duplicates the pairs the junk filter kept."""


@dataclass(frozen=True, eq=False)
class FilterStages:
    """The pairs entering and leaving each filter stage (see :func:`filter_stages`).

    Attributes
    ----------
    candidates : Pairs
        Pairs entering the junk filter: every chooser's best partner
        (``many_to_one`` with no cut), or the rule's pairs for
        :data:`PAIR_FIRST_RULES`.
    junk_ok : ndarray of bool
        The junk / overlap verdict of each candidate (all True without the
        junk filter).
    after_junk : Pairs
        The candidates the junk filter kept (``candidates`` itself without it).
    after_1to1 : Pairs
        After the 1-1 rule (``first_index``, ``max_corr``); ``after_junk``
        for the other rules.
    final : Pairs
        After the r cut: the pairs that are scored.
    """

    candidates: Pairs
    junk_ok: np.ndarray
    after_junk: Pairs
    after_1to1: Pairs
    final: Pairs

    def counts(self) -> dict:
        """``{"n_after_junk", "n_after_1to1"}``: the grid records' stage counts."""
        return {"n_after_junk": self.after_junk.n_pairs, "n_after_1to1": self.after_1to1.n_pairs}


def filter_stages(best, layer_a, layer_b, settings, *, rule: str, direction: str) -> FilterStages:
    """Run the filter pipeline on best partners and keep every stage.

    Parameters
    ----------
    best : saesim.compare.corr.BestPartners
    layer_a, layer_b : saesim.compare.filters.SaeLayer
        The two layers (their top tokens and special ids feed the junk filter).
    settings : saesim.experiments.grid.CompareSettings
        Or any object with its fields ``r_min``, ``junk_filter``,
        ``junk_list``, ``require_overlap``, ``top_k``, ``min_active`` and
        ``compat``.
    rule : str
        A pairing rule of :data:`saesim.compare.match.RULES`.
    direction : {"b_to_a", "a_to_b"}

    Returns
    -------
    FilterStages
    """
    if rule in PAIR_FIRST_RULES:
        candidates = pair(best, rule=rule, r_min=settings.r_min, direction=direction)
    else:
        candidates = pair(best, rule="many_to_one", r_min=-np.inf, direction=direction)
    if settings.junk_filter:
        junk_ok = junk_overlap_mask(
            candidates.a, candidates.b, layer_a.top_k(settings.top_k), layer_b.top_k(settings.top_k),
            compat=settings.compat, junk_list=settings.junk_list,
            special_ids=set(layer_a.special_ids) | set(layer_b.special_ids),
            min_active=settings.min_active, require_overlap=settings.require_overlap,
        )
        after_junk = filter_pairs(candidates, junk_ok, stage="junk")
    else:
        junk_ok = np.ones(candidates.n_pairs, dtype=bool)
        after_junk = candidates
    after_1to1 = dedup(after_junk, rule) if rule in _DEDUP_AFTER_JUNK else after_junk
    final = r_cut(after_1to1, r_min=settings.r_min)
    return FilterStages(candidates=candidates, junk_ok=junk_ok, after_junk=after_junk, after_1to1=after_1to1,
                        final=final)


def filtered_pairs(best, layer_a, layer_b, settings, *, rule: str, direction: str) -> tuple[Pairs, dict]:
    """The pairs left after the paper's stages, and the count after each (:meth:`FilterStages.counts`)."""
    stages = filter_stages(best, layer_a, layer_b, settings, rule=rule, direction=direction)
    return stages.final, stages.counts()
