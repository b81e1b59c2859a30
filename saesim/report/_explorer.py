"""Limits and input checks shared by the explorer's modules (its table, its map and seed stability)."""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["DEFAULT_MAX_ROWS", "ZERO_NORM", "finite_2d", "nanmean", "unit_rows", "validate_positive_int"]

DEFAULT_MAX_ROWS = 2000
"""Pairs embedded in the explorer's table: about 1 KB each, so the page stays well under 10 MB."""

ZERO_NORM = 1e-12
"""A decoder row with a smaller norm has no direction (cosine undefined)."""


def finite_2d(w, name: str) -> np.ndarray:
    """``w`` as a float64 2-D array of finite values (a decoder), or a ValueError naming ``name``."""
    arr = np.asarray(w, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"`{name}` must be a 2-D decoder (n_latents, d); got shape {arr.shape}. Transpose a "
                         "(d, n_latents) weight.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` contains {int(np.count_nonzero(~np.isfinite(arr)))} NaN or infinite values; "
                         "decoder rows must be finite.")
    return arr


def unit_rows(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows scaled to unit norm (zero rows stay zero) and the mask of zero rows."""
    norms = np.linalg.norm(w, axis=1)
    zero = norms < ZERO_NORM
    return w / np.where(zero, 1.0, norms)[:, None] * (~zero)[:, None], zero


def nanmean(x: np.ndarray) -> float:
    """Mean of the finite entries; NaN when there are none (no warning)."""
    x = np.asarray(x, dtype=float)
    return float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")


def validate_positive_int(value, name: str) -> None:
    """Raise a ValueError naming ``name`` unless ``value`` is an integer >= 1 (not a bool)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer; got {value!r}.")
