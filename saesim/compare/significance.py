"""Is a score above its permutation null? The book's one significance framework.

* :func:`tail_p_value` — a one-sided permutation p-value whose resolution is not capped at
  ``1 / (R + 1)``. When at least :data:`MIN_EXCEEDANCES` of the R null draws reach the score, it is
  the empirical Phipson-Smyth value ``(1 + b) / (1 + R)`` (:func:`saesim.compare.nulls.p_value`);
  otherwise the upper tail of the null is modelled by a generalised Pareto distribution (GPD)
  fitted by maximum likelihood to the draws above a threshold, and the p-value is
  ``(N_exc / R) * GPD.sf(score - threshold)`` (Knijnenburg et al. 2009). The threshold starts at the
  top quarter of the draws (at most 250) and is lowered, ten draws at a time down to
  :data:`MIN_TAIL`, until a Cramér-von Mises test no longer rejects the fit at 0.05; when no fit
  passes, the empirical value is kept. A fitted shape below 0 (a bounded tail, which from a few
  dozen draws puts the end too low and makes far scores look impossible) is replaced by the
  exponential tail (shape 0, scale = mean excess of the top :data:`EXP_TAIL` draws), which lies
  above every lighter tail: the estimate errs on the conservative side there. The value never exceeds the empirical one and
  never falls below :data:`P_FLOOR`.
* :func:`above_null` — one family, one procedure: Holm's step-down over the tail p-values of a
  named family (by default one comparison's grid for one measure, rule and direction: the cells a
  heatmap shows), and the decision "above its null" = Holm-adjusted p <= alpha and a positive
  excess. Every page asks this function.

Why a tail model: with R = 100 permutations no permutation p-value is below 1/101, so Holm over
36 layer pairs can never reject at 0.05 (it needs R >= 719), although the z-scores are 20-35.
The tail fit gives p-values that can reach what the draws imply, at a cost of one small fit per
cell, instead of ten times the permutations. Its calibration on synthetic nulls of known
distribution (normal, gamma, beta) is tested in ``tests/unit/test_significance.py`` and measured
in ``benchmarks/bench_tail_pvalue.py``.

References
----------
Knijnenburg, Wessels, Reinders and Shmulevich, "Fewer permutations, more accurate P-values",
Bioinformatics 25 (2009), i161-i168.

Phipson and Smyth, "Permutation p-values should never be zero", Stat. Appl. Genet. Mol. Biol. 9
(2010).

Holm, "A simple sequentially rejective multiple test procedure", Scand. J. Stat. 6 (1979).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from saesim.compare.multitest import holm
from saesim.compare.nulls import TIE_RTOL, p_value

__all__ = [
    "ALPHA",
    "FAMILY_KEYS",
    "MIN_EXCEEDANCES",
    "MIN_TAIL",
    "MULTIPLE_TESTING",
    "P_FLOOR",
    "TailFit",
    "above_null",
    "family_size",
    "holm_within_families",
    "tail_fit",
    "tail_p_value",
]

ALPHA = 0.05
"""The book's level: a cell is above its null when its Holm-adjusted p-value is at most this."""

MULTIPLE_TESTING = "holm"
"""The one multiple-testing procedure of every page (family-wise error, Holm's step-down)."""

FAMILY_KEYS: tuple[str, ...] = ("rule", "direction")
"""Columns that split a comparison's grid into families: one family per rule and direction."""

MIN_EXCEEDANCES = 10
"""Null draws at or above the score needed to keep the empirical p-value (Knijnenburg et al.)."""

MAX_TAIL = 250
"""Most draws used to fit the tail (Knijnenburg et al.'s starting number of exceedances)."""

MIN_TAIL = 10
"""Fewest draws the tail is fitted to; with fewer than ``4 * MIN_TAIL`` draws no tail is fitted."""

EXP_TAIL = 25
"""Draws the exponential tail is fitted to when the GPD's shape comes out negative: the top few,
because a light tail's mean excess shrinks with the threshold (a lower threshold overstates p)."""

GOF_ALPHA = 0.05
"""A tail fit is accepted when the Cramér-von Mises test of it does not reject at this level."""

P_FLOOR = 1e-300
"""The smallest value reported (the tail's estimate underflows below it only for absurd scores)."""


@dataclass(frozen=True)
class TailFit:
    """How :func:`tail_p_value` reached its value.

    Attributes
    ----------
    p_value : float
        The p-value.
    method : {"empirical", "gpd"}
        The empirical Phipson-Smyth value or the GPD tail.
    n_draws : int
        Finite null draws.
    n_exceed : int
        Draws at or above the score.
    n_tail : int
        Draws the GPD was fitted to (0 for "empirical").
    threshold, shape, scale : float
        The tail's threshold and the GPD's shape (xi) and scale (NaN for "empirical").
    """

    p_value: float
    method: str
    n_draws: int
    n_exceed: int
    n_tail: int = 0
    threshold: float = float("nan")
    shape: float = float("nan")
    scale: float = float("nan")


def tail_fit(score: float, null) -> TailFit:
    """The p-value of ``score`` against ``null`` and how it was reached (see the module docstring).

    Parameters
    ----------
    score : float
        Observed statistic (higher = more similar).
    null : array_like, shape (R,)
        Null draws; NaN draws are dropped.

    Returns
    -------
    TailFit
    """
    from scipy.stats import cramervonmises, genpareto

    empirical = p_value(score, null)
    draws = np.asarray(null, dtype=np.float64)
    draws = np.sort(draws[np.isfinite(draws)])[::-1]
    n = int(draws.size)
    if not np.isfinite(score):
        return TailFit(float("nan"), "empirical", n, 0)
    exceed = int(np.count_nonzero(draws >= score - TIE_RTOL * abs(score)))
    plain = TailFit(empirical, "empirical", n, exceed)
    if exceed >= MIN_EXCEEDANCES or n < 4 * MIN_TAIL:
        return plain
    n_tail = min(MAX_TAIL, n // 4)
    while n_tail >= MIN_TAIL:
        threshold = 0.5 * (draws[n_tail - 1] + draws[n_tail])
        excess = draws[:n_tail] - threshold
        if np.ptp(excess) <= 0:
            return plain
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            shape, _, scale = genpareto.fit(excess, floc=0.0)
            if shape < 0:  # a bounded tail: the exponential (shape 0) over the top EXP_TAIL draws
                n_tail = min(n_tail, EXP_TAIL)
                threshold = 0.5 * (draws[n_tail - 1] + draws[n_tail])
                excess = draws[:n_tail] - threshold
                shape, scale = 0.0, float(np.mean(excess))
            fit_ok = cramervonmises(excess, genpareto.cdf, args=(shape, 0.0, scale)).pvalue >= GOF_ALPHA
        if fit_ok and scale > 0:
            sf = float(genpareto.sf(score - threshold, shape, 0.0, scale))
            p = n_tail / n * sf
            p = min(max(p, P_FLOOR), empirical)  # never above the permutation value
            return TailFit(p, "gpd", n, exceed, n_tail, float(threshold), float(shape), float(scale))
        n_tail -= 10
    return plain


def tail_p_value(score: float, null) -> float:
    """One-sided p-value of ``score`` against ``null`` with a GPD tail where draws run out.

    Equal to :func:`saesim.compare.nulls.p_value` when at least :data:`MIN_EXCEEDANCES` draws
    reach the score (or fewer than 40 draws are given, or no tail fit passes); otherwise the
    generalised Pareto estimate, never above the empirical value and never below :data:`P_FLOOR`.

    Examples
    --------
    >>> import numpy as np
    >>> null = np.random.default_rng(0).normal(size=1000)
    >>> tail_p_value(0.0, null) == p_value(0.0, null)  # many draws reach 0: the empirical value
    True
    >>> 2.9e-7 < tail_p_value(5.0, null) < 1 / 1001  # true 2.9e-7: conservative, below 1/(R+1)
    True
    """
    return tail_fit(score, null).p_value


def family_size(frame: pd.DataFrame, metric: str, keys=FAMILY_KEYS) -> pd.Series:
    """Number of finite p-values in each row's family (aligned with ``frame``)."""
    column = _p_column(frame, metric)
    present = [k for k in keys if k in frame]
    finite = frame[column].notna() & np.isfinite(frame[column].astype(float))
    if not present:
        return pd.Series(int(finite.sum()), index=frame.index)
    return finite.groupby([frame[k] for k in present], dropna=False).transform("sum").astype(int)


def _p_column(frame: pd.DataFrame, metric: str) -> str:
    column = f"{metric}_p_tail"
    if column not in frame:
        raise KeyError(
            f"the table has no {column!r} column (the tail p-values of {metric!r}); it was computed "
            "before the significance framework: rerun the grid (`saesim run`), which recomputes "
            "stale cells."
        )
    return column


def above_null(frame: pd.DataFrame, metric: str, *, alpha: float = ALPHA, keys=FAMILY_KEYS) -> pd.DataFrame:
    """Is each cell above its null? Holm over one family, on the tail p-values.

    Parameters
    ----------
    frame : pandas.DataFrame
        A tidy grid of ONE comparison (e.g. ``full_space.parquet`` or a control's table) with
        ``<metric>``, ``<metric>_null_mean`` and ``<metric>_p_tail``.
    metric : str
        The measure (``"rsa"``, ``"svcca"``, ``"svcca_authors_k"``, ``"linear_cka"``).
    alpha : float
        Family-wise level (default :data:`ALPHA`).
    keys : tuple of str
        Columns whose values split ``frame`` into families (default :data:`FAMILY_KEYS`: each rule
        and direction of the grid is its own family, the cells one heatmap shows). Keys missing
        from ``frame`` are ignored.

    Returns
    -------
    pandas.DataFrame
        Same index as ``frame``; columns ``excess`` (score - null mean), ``p`` (tail p-value),
        ``p_holm`` (Holm-adjusted within the family), ``family_size`` and ``above`` (bool:
        ``p_holm <= alpha`` and ``excess > 0``). Rows without a score are never above.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"`alpha` must be in (0, 1); got {alpha!r}.")
    column = _p_column(frame, metric)
    for needed in (metric, f"{metric}_null_mean"):
        if needed not in frame:
            raise KeyError(f"the table has no {needed!r} column; pass a grid table scored with {metric!r}.")
    adjusted = holm_within_families(frame[[*[k for k in keys if k in frame], column]], keys)[f"{metric}_p_holm"]
    p = frame[column].astype(float)
    excess = frame[metric].astype(float) - frame[f"{metric}_null_mean"].astype(float)
    return pd.DataFrame({"excess": excess, "p": p, "p_holm": adjusted,
                         "family_size": family_size(frame, metric, keys),
                         "above": (adjusted <= alpha) & (excess > 0)}, index=frame.index)


def holm_within_families(frame: pd.DataFrame, keys=FAMILY_KEYS) -> pd.DataFrame:
    """Add ``<metric>_p_holm`` for every ``<metric>_p_tail`` column: Holm within each family.

    The families are the groups of ``keys`` (missing keys ignored; none = the whole table is one
    family). This is the adjustment :func:`above_null` makes, stored in the table so the value
    a page prints and the decision it reads are the same numbers. Returns a copy.
    """
    frame = frame.copy()
    for column in [c for c in frame.columns if c.endswith("_p_tail")]:
        metric = column[: -len("_p_tail")]
        p = frame[column].astype(float)
        adjusted = pd.Series(np.nan, index=frame.index)
        present = [k for k in keys if k in frame]
        groups = frame.groupby(present, dropna=False, sort=False).groups.values() if present else [frame.index]
        for index in groups:
            values = p.loc[index].to_numpy()
            finite = np.isfinite(values)
            if finite.any():
                out = np.full(values.shape, np.nan)
                out[finite] = holm(values[finite])
                adjusted.loc[index] = out
        frame[f"{metric}_p_holm"] = adjusted
    return frame
