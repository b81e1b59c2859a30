"""The verdict of one cell against its baselines: one rule, one object, every sentence and table cell.

A cell (layer pair, pairing rule, direction, measure) of a
:func:`saesim.experiments.baselines.control_comparison` table has the SAE pairs' score with its
bootstrap interval and, beside it, the same measure for each baseline. :func:`judge` decides, by
one interval rule, where the SAE score sits against each baseline:

* ``"above"`` — the SAE interval lies wholly above the baseline's;
* ``"below"`` — wholly below it;
* ``"overlaps"`` — otherwise (a point value stands in for a missing interval, and the cell says so).

The baselines are what the cross-model score has to clear: the random-model controls (authors'
and every tensor), the raw neurons and the shuffled-pairing null. The **seed control** — two SAEs
of model A — is not one of them: it is the agreement two SAEs of one model reach, the reference
the cross-model score is read against, reported as a share of its effect. Whether the cell is
above its own null comes from :func:`saesim.compare.significance.above_null` over the page's
family (the comparison's grid), the one significance test of the book.

:class:`Verdict` carries the decisions; :meth:`Verdict.words` and :meth:`Verdict.row` are the
only places the words and the table cells come from, so a sentence cannot contradict its row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from saesim import vocab
from saesim.compare.effects import as_float
from saesim.compare.significance import ALPHA, above_null
from saesim.report.frames import fmt_number, fmt_signed
from saesim.vocab import column_label, label

__all__ = ["BASELINES", "IDENTICAL_R", "NO_SCORE", "PLACES", "SATURATION_RATIO", "SEED", "Verdict", "judge", "place",
           "verdict_frame"]

PLACES: tuple[str, ...] = ("above", "overlaps", "below")
"""Where the SAE interval sits against a baseline's."""

BASELINES: dict[str, str] = {key: label("comparison", key) for key in ("control", "control_all", "raw_neuron",
                                                                      "shuffle_null")}
"""The baselines a cross-model score has to clear, in the order the pages show them (labels from
:mod:`saesim.vocab`)."""

NO_SCORE = "no SAE score (too few pairs)"
"""The verdict of a cell whose SAE pairs have no score."""

SEED = "seed"
"""The comparison of two SAEs of model A: the reference, not a baseline."""

IDENTICAL_R = 0.999
"""Raw-neuron pairs with a mean correlation this high come from one model in both slots."""

SATURATION_RATIO = 2.0
"""A CCA score with fewer than this many pairs per kept dimension is flagged as saturated."""


def _interval(row) -> tuple[float, float, bool]:
    """``(low, high, approximate)``; a missing interval is the point value, flagged."""
    value = as_float(row.get("value"))
    low, high = as_float(row.get("ci_low")), as_float(row.get("ci_high"))
    missing = not (np.isfinite(low) and np.isfinite(high))
    return (value, value, True) if missing else (low, high, False)


def place(sae, base) -> tuple[str, bool]:
    """Where ``sae``'s interval sits against ``base``'s: one of :data:`PLACES`, and whether a point
    value stood in for a missing interval.

    Examples
    --------
    >>> place({"value": 0.5, "ci_low": 0.4, "ci_high": 0.6}, {"value": 0.3, "ci_low": 0.2, "ci_high": 0.35})
    ('above', False)
    >>> place({"value": 0.3, "ci_low": 0.2, "ci_high": 0.4}, {"value": 0.35, "ci_low": 0.3, "ci_high": 0.5})
    ('overlaps', False)
    """
    sae_low, sae_high, a = _interval(sae)
    base_low, base_high, b = _interval(base)
    where = "above" if sae_low > base_high else "below" if sae_high < base_low else "overlaps"
    return where, a or b


def _fmt(row) -> str:
    value, low, high = as_float(row.get("value")), as_float(row.get("ci_low")), as_float(row.get("ci_high"))
    text = fmt_number(value)
    return f"{text} [{fmt_number(low)}, {fmt_number(high)}]" if np.isfinite(low) and np.isfinite(high) else text


@dataclass(frozen=True)
class Verdict:
    """The decisions for one cell; every word and cell the pages print about it comes from here.

    Attributes
    ----------
    layer_a, layer_b, rule, direction, metric
        The cell.
    score : str
        The SAE score with its interval, formatted.
    effect : float
        The SAE score minus its shuffled-null mean.
    p_holm : float
        The cell's Holm-adjusted tail p-value within its family (NaN when no family was given).
    above_null : bool or None
        :func:`saesim.compare.significance.above_null`'s decision (None without a family).
    places : dict
        Baseline name (:data:`BASELINES`) -> ``(place, baseline score formatted, approximate)``.
    seed_effect : float
        The seed control's effect over its own null (NaN when absent).
    seed_share : float
        ``effect / seed_effect`` where the seed effect is positive, else NaN.
    seed_score : str
        The seed control's score with its interval, formatted ("" when absent): shown for reference.
    notes : tuple of str
        Cautions about a baseline (a CCA score saturated by too few pairs per kept dimension; raw
        neurons of one model in both slots) and the baselines' own effects, for the sentence.
    """

    layer_a: int
    layer_b: int
    rule: str
    direction: str
    metric: str
    score: str
    effect: float
    p_holm: float = float("nan")
    above_null: bool | None = None
    places: dict = field(default_factory=dict)
    seed_effect: float = float("nan")
    seed_share: float = float("nan")
    notes: tuple[str, ...] = ()
    seed_score: str = ""

    @property
    def cleared(self) -> list[str]:
        """Baselines the SAE interval lies wholly above."""
        return [name for name, (where, *_) in self.places.items() if where == "above"]

    def summary(self, alpha: float = ALPHA) -> str:
        """The verdict in a few words (the table's last column)."""
        parts = []
        if self.above_null is not None:
            parts.append("above its null" if self.above_null else
                         f"not above its null (Holm p = {_p(self.p_holm)} > {alpha:g})" if np.isfinite(self.p_holm)
                         else "no p-value")
        if self.places:
            by = {where: [BASELINES[n] for n, (w, *_) in self.places.items() if w == where] for where in PLACES}
            if len(by["above"]) == len(self.places):
                parts.append("above every baseline")
            elif not by["above"]:
                parts.append("above no baseline")
            else:
                parts.append("above " + ", ".join(by["above"]) + " only")
            if by["below"]:
                parts.append("below " + ", ".join(by["below"]))
        else:
            parts.append("no baseline")
        if np.isfinite(self.seed_share):
            parts.append(f"{self.seed_share:.0%} of two SAEs' effect")
        return "; ".join(parts)

    def words(self, alpha: float = ALPHA) -> str:
        """One sentence for the page."""
        head = (f"Layers {vocab.layer_pair(self.layer_a, self.layer_b)}, {self.metric} ({self.rule}, {self.direction}): SAE score "
                f"{self.score}, {fmt_signed(self.effect)} over its shuffled null")
        against = [f"{where} {BASELINES[name]} {score}{' (point value; interval missing)' if approx else ''}"
                   for name, (where, score, approx) in self.places.items()]
        seed = ("" if not np.isfinite(self.seed_effect) else
                f"; two SAEs of model A score {self.seed_score or 'n/a'}, {fmt_signed(self.seed_effect)} over their null"
                + (f", and this pair reaches {self.seed_share:.0%} of that" if np.isfinite(self.seed_share) else ""))
        notes = "".join(f" ({note})" for note in self.notes)
        return (head + (": " + "; ".join(against) if against else "") + seed + notes
                + f". Verdict: {self.summary(alpha)}.")

    def row(self) -> dict:
        """The table row: the SAE score, effect, p, one column per baseline, the seed share, the verdict."""
        out = {"layer pair": vocab.layer_pair(self.layer_a, self.layer_b), "rule": self.rule, "measure": self.metric,
               "SAE score [CI]": self.score, "effect over null": self.effect, "p (Holm)": self.p_holm}
        for name, (where, score, approx) in self.places.items():
            out[BASELINES[name]] = f"{where}: {score}{'*' if approx else ''}"
        if self.seed_score:
            out[label("comparison", SEED)] = self.seed_score
        out[column_label("seed_share")] = self.seed_share
        out["verdict"] = self.summary()
        return out


def _p(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


def judge(group: pd.DataFrame, *, family: pd.DataFrame | None = None, alpha: float = ALPHA) -> Verdict | None:
    """The verdict of one cell: ``group`` holds its rows of a control-comparison table (one per
    comparison). None when the SAE pairs have no score.

    ``family`` is the comparison's grid (A against B, every layer pair of the cell's rule and
    direction); the cell's significance is read from
    :func:`saesim.compare.significance.above_null` over it.
    """
    by = {row["comparison"]: row for row in group.to_dict("records")}
    sae = by.get("sae")
    if sae is None or not np.isfinite(as_float(sae.get("value"))):
        return None
    la, lb, rule, direction, metric = (sae[k] for k in ("layer_a", "layer_b", "rule", "direction", "metric"))
    p_holm, above = float("nan"), None
    if family is not None and not family.empty:
        decided = above_null(family, metric, alpha=alpha)
        hit = (family["layer_a"] == la) & (family["layer_b"] == lb)
        for key, value in (("rule", rule), ("direction", direction)):
            if key in family:
                hit &= family[key] == value
        if hit.any():
            cell = decided[hit].iloc[0]
            p_holm, above = float(cell["p_holm"]), bool(cell["above"])
    places, notes = {}, []
    effect = as_float(sae.get("effect"))
    for name in BASELINES:
        base = by.get(name)
        if base is None or not np.isfinite(as_float(base.get("value"))):
            continue
        where, approx = place(sae, base)
        places[name] = (where, _fmt(base), approx)
        if name != "shuffle_null" and np.isfinite(as_float(base.get("effect"))):
            notes.append(f"{BASELINES[name]} {fmt_signed(as_float(base['effect']))} over its own null")
        if name == "raw_neuron" and as_float(base.get("mean_r")) >= IDENTICAL_R:
            notes.append("the raw neurons pair with mean r ≈ 1: both slots run the same model, so they are "
                         "not a bar to clear")
        if _saturated(base):
            notes.append(f"caution: {BASELINES[name]} keeps k = {int(max(base['k_x'], base['k_y']))} dimensions "
                         f"for {int(base['n_pairs'])} pairs, so its CCA score is near 1 by construction")
    seed = by.get(SEED)
    seed_effect = as_float(seed.get("effect")) if seed is not None else float("nan")
    seed_score = _fmt(seed) if seed is not None and np.isfinite(as_float(seed.get("value"))) else ""
    share = effect / seed_effect if np.isfinite(seed_effect) and seed_effect > 0 and np.isfinite(effect) else np.nan
    return Verdict(int(la), int(lb), str(rule), str(direction), str(metric), _fmt(sae), effect, p_holm, above,
                   places, seed_effect, float(share), tuple(notes), seed_score)


def _saturated(row) -> bool:
    """A CCA score with fewer than :data:`SATURATION_RATIO` pairs per kept dimension."""
    k = max(as_float(row.get("k_x")), as_float(row.get("k_y")))
    n = as_float(row.get("n_pairs"))
    return bool(np.isfinite(k) and np.isfinite(n) and k > 0 and n / k < SATURATION_RATIO)


def verdict_frame(table: pd.DataFrame, *, family: pd.DataFrame | None = None, metrics=None,
                  alpha: float = ALPHA) -> tuple[list[Verdict], pd.DataFrame]:
    """Every cell's :class:`Verdict` and the table the page shows (one :meth:`Verdict.row` each)."""
    if table is None or table.empty:
        return [], pd.DataFrame()
    metrics = list(metrics or dict.fromkeys(table["metric"]))
    verdicts, rows = [], []
    keys = ["layer_a", "layer_b", "rule", "direction", "metric"]
    for (la, lb, rule, direction, metric), group in table[table["metric"].isin(metrics)].groupby(keys, sort=True):
        fam = None
        if family is not None and not family.empty:
            fam = family
            for key, value in (("rule", rule), ("direction", direction)):
                if key in fam:
                    fam = fam[fam[key] == value]
        verdict = judge(group, family=fam, alpha=alpha)
        if verdict is None:
            rows.append({"layer pair": vocab.layer_pair(la, lb), "rule": rule, "measure": metric,
                         "verdict": NO_SCORE})
            continue
        verdicts.append(verdict)
        rows.append(verdict.row())
    return verdicts, pd.DataFrame(rows)
