"""Multiple testing over a family of p-values: Holm and Benjamini-Hochberg.

* :func:`adjust_pvalues` — adjusted p-values of one family (NaN entries left out of it);
* :func:`adjust_columns` — the same for every ``<metric>_p`` column of a tidy table, which gains
  ``<metric>_p_holm`` and ``<metric>_p_bh`` (the grids' and the book pages' families);
* :func:`n_rejected` — how many p-values each procedure rejects at a level, from the raw
  p-values (the cut-offs drawn on the p-value histograms).

With the sorted p-values :math:`p_{(1)} \\le \\dots \\le p_{(m)}`, Holm's adjusted value is
:math:`\\min(1, \\max_{i \\le j} (m - i + 1) p_{(i)})` and BH's is
:math:`\\min(1, \\min_{i \\ge j} m p_{(i)} / i)` (:func:`scipy.stats.false_discovery_control`).

References
----------
Holm, "A simple sequentially rejective multiple test procedure", Scand. J. Stat. 6 (1979).

Benjamini and Hochberg, "Controlling the false discovery rate: a practical and powerful approach
to multiple testing", J. R. Stat. Soc. B 57 (1995).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = ["METHODS", "adjust_columns", "adjust_pvalues", "benjamini_hochberg", "holm", "n_rejected"]

METHODS: tuple[str, ...] = ("holm", "bh")
"""The procedures: Holm's step-down (family-wise error) and Benjamini-Hochberg (false discovery rate)."""

Method = Literal["holm", "bh"]


def holm(p) -> np.ndarray:
    """Holm's step-down adjusted p-values of finite ``p`` (1-D), in the input order, capped at 1."""
    p = np.asarray(p, dtype=float)
    order = np.argsort(p, kind="stable")
    m = p.size
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def benjamini_hochberg(p) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values of finite ``p`` (1-D), in the input order, capped at 1."""
    from scipy.stats import false_discovery_control

    return false_discovery_control(np.asarray(p, dtype=float), method="bh")


def _check_method(method) -> None:
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {list(METHODS)}; got {method!r}.")


def adjust_pvalues(p, method: Method) -> np.ndarray:
    """Adjusted p-values of one family; NaN (and infinite) entries are left out of it and stay NaN.

    Parameters
    ----------
    p : array_like of float
        Raw p-values (flattened).
    method : {"holm", "bh"}
        Holm's step-down procedure or Benjamini-Hochberg.

    Returns
    -------
    ndarray of float64
        Same length as ``p``; each finite entry adjusted over the finite ones.

    Examples
    --------
    >>> adjust_pvalues([0.01, 0.04, float("nan"), 0.03], "holm").round(2).tolist()
    [0.03, 0.06, nan, 0.06]
    """
    _check_method(method)
    p = np.asarray(p, dtype=float).ravel()
    valid = np.isfinite(p)
    out = np.full(p.shape, np.nan)
    if valid.any():
        out[valid] = holm(p[valid]) if method == "holm" else benjamini_hochberg(p[valid])
    return out


def adjust_columns(frame, columns=None):
    """Add Holm and Benjamini-Hochberg adjusted p-values across all rows of a table.

    For every ``<metric>_p`` column (or every column in ``columns``), adds
    ``<metric>_p_holm`` and ``<metric>_p_bh`` (the whole table is one family;
    NaN p-values are left out). Returns a copy.
    """
    frame = frame.copy()
    columns = columns or [c for c in frame.columns if c.endswith("_p")]
    for column in columns:
        p = frame[column].to_numpy(dtype=float)
        frame[f"{column}_holm"] = adjust_pvalues(p, "holm")
        frame[f"{column}_bh"] = adjust_pvalues(p, "bh")
    return frame


def n_rejected(p, alpha: float, method: Method) -> int:
    """How many of the finite ``p`` the procedure rejects at level ``alpha``.

    With the sorted p-values :math:`p_{(1)} \\le \\dots \\le p_{(m)}`, Holm rejects the first k,
    k the largest index with :math:`p_{(j)} \\le \\alpha / (m - j + 1)` for every
    :math:`j \\le k`; BH rejects the first k, k the largest index with
    :math:`p_{(k)} \\le k \\alpha / m`. These are the rows whose adjusted p-values
    (:func:`adjust_pvalues`) are at most ``alpha``.

    Examples
    --------
    >>> n_rejected([0.001, 0.01, 0.03, 0.2], 0.05, "bh"), n_rejected([0.001, 0.01, 0.03, 0.2], 0.05, "holm")
    (3, 2)
    """
    _check_method(method)
    if not 0 < alpha < 1:
        raise ValueError(f"`alpha` must be in (0, 1); got {alpha!r}.")
    values = np.asarray(p, dtype=float).ravel()
    values = np.sort(values[np.isfinite(values)])
    m = values.size
    if m == 0:
        return 0
    ranks = np.arange(1, m + 1)
    if method == "holm":
        ok = values <= alpha / (m - ranks + 1)
        return int(np.argmin(ok)) if not ok.all() else m
    ok = np.nonzero(values <= ranks * alpha / m)[0]
    return int(ok[-1] + 1) if ok.size else 0
