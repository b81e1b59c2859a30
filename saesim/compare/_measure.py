"""What every similarity measure shares: the registry, the result type and the prepared-measure base class.

Private to :mod:`saesim.compare`; import the public names from :mod:`saesim.compare.geometry`.
"""

from __future__ import annotations

import sys
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from saesim.validation import check_paired_rows


MeasureName = Literal["svcca", "pwcca", "rsa", "linear_cka", "procrustes"]


class DegenerateInputWarning(UserWarning):
    """The input is valid but the measure is undefined on it (the statistic is NaN)."""


@dataclass(frozen=True)
class MeasureInfo:
    """What a similarity measure's number means.

    Attributes
    ----------
    name : str
        Registry key, e.g. ``"svcca"``.
    higher_is_similar : bool
        True when a larger statistic means more similar point clouds.
    value_range : tuple of float
        The smallest and largest possible statistic.
    options : tuple of str
        Keyword options the measure accepts.
    min_rows : int
        Fewest paired rows on which the measure is defined.
    summary : str
        One-line description of the statistic.
    """

    name: str
    higher_is_similar: bool
    value_range: tuple[float, float]
    options: tuple[str, ...]
    min_rows: int
    summary: str


MEASURES: dict[str, MeasureInfo] = {
    "svcca": MeasureInfo(
        "svcca", True, (0.0, 1.0), ("variance", "compat"), 2,
        "mean canonical correlation between the top principal subspaces of x and y",
    ),
    "pwcca": MeasureInfo(
        "pwcca", True, (0.0, 1.0), ("variance",), 2,
        "projection-weighted mean canonical correlation (Morcos et al. 2018)",
    ),
    "rsa": MeasureInfo(
        "rsa", True, (-1.0, 1.0), (), 3,
        "Spearman correlation of the two Pearson-correlation RSMs (strict upper triangle)",
    ),
    "linear_cka": MeasureInfo(
        "linear_cka", True, (0.0, 1.0), (), 2,
        "linear centred kernel alignment ||Xc^T Yc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)",
    ),
    "procrustes": MeasureInfo(
        "procrustes", True, (0.0, 1.0), (), 2,
        "nuclear norm of X^T Y after centring and unit Frobenius norm (1 = same up to rotation)",
    ),
}
"""Registry of the measures: direction, range, accepted options."""


@dataclass(frozen=True)
class SimilarityResult:
    """The similarity of two paired point clouds.

    Attributes
    ----------
    measure : str
        Key of :data:`MEASURES`.
    statistic : float
        The similarity; NaN when the measure is undefined on the input.
    n_pairs : int
        Number of paired rows.
    higher_is_similar : bool
        Whether a larger statistic means more similar.
    value_range : tuple of float
        The smallest and largest possible statistic.
    compat : bool
        Whether the authors' computation was reproduced (SVCCA only).
    k_x, k_y : int or None
        Principal components kept per side (SVCCA and PWCCA).
    canonical_correlations : ndarray of float64 or None
        The ``min(k_x, k_y)`` canonical correlations, descending (SVCCA and
        PWCCA).
    extras : dict
        Measure-specific values: ``variance`` (the policy as given) and
        ``pairs_per_dim`` (n_pairs / max(k_x, k_y)) for SVCCA and PWCCA,
        ``weighted_side`` for PWCCA, ``distance`` for Procrustes.
    """

    measure: str
    statistic: float
    n_pairs: int
    higher_is_similar: bool
    value_range: tuple[float, float]
    compat: bool = False
    k_x: int | None = None
    k_y: int | None = None
    canonical_correlations: np.ndarray | None = field(default=None, repr=False, compare=False)
    extras: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """One tidy-table row (arrays left out; ``extras`` flattened)."""
        row = {
            "measure": self.measure,
            "statistic": self.statistic,
            "n_pairs": self.n_pairs,
            "higher_is_similar": self.higher_is_similar,
            "value_min": self.value_range[0],
            "value_max": self.value_range[1],
            "compat": self.compat,
            "k_x": self.k_x,
            "k_y": self.k_y,
        }
        row.update(self.extras)
        return row


class PreparedMeasure(ABC):
    """A measure with everything that a row permutation of ``y`` keeps, done once.

    ``score(perm)`` is the statistic of ``(x, y[perm])`` in float64;
    ``score()`` is the observed one; ``scores(perms)`` scores a batch of
    permutations at once (float32 kernels where a measure has one). Build one
    with :func:`prepare`.
    """

    measure: str
    n_pairs: int
    degenerate: bool

    @abstractmethod
    def score(self, perm: np.ndarray | None = None) -> float:
        """Statistic of ``x`` against ``y[perm]`` (``y`` itself when ``perm`` is None)."""

    def scores(self, perms) -> np.ndarray:
        """Statistics of ``x`` against ``y[perm]`` for every row ``perm`` of ``perms``.

        Parameters
        ----------
        perms : array_like of int, shape (B, n_pairs)
            One permutation of ``range(n_pairs)`` per row.

        Returns
        -------
        ndarray of float64, shape (B,)
            ``scores(perms)[j]`` is ``score(perms[j])`` up to rounding: SVCCA,
            PWCCA, RSA, linear CKA and Procrustes compute in float32 (within
            1e-5 of float64, see :func:`saesim.compare.nulls.permutation_test`); the
            others loop :meth:`score`. NaN for a degenerate input.

        Raises
        ------
        ValueError
            If ``perms`` is not a 2-D integer array with ``n_pairs`` columns.
        """
        perms = np.asarray(perms)
        if perms.ndim != 2 or perms.shape[1] != self.n_pairs or not np.issubdtype(perms.dtype, np.integer):
            raise ValueError(
                f"`perms` must be a 2-D integer array of shape (B, {self.n_pairs}), one permutation per "
                f"row; got shape {perms.shape} and dtype {perms.dtype}."
            )
        if self.degenerate:
            return np.full(perms.shape[0], np.nan)
        return self._scores(np.ascontiguousarray(perms, dtype=np.int64))

    def _scores(self, perms: np.ndarray) -> np.ndarray:
        """``scores`` of valid permutations of a non-degenerate input (default: loop ``score``)."""
        return np.array([self.score(perm) for perm in perms], dtype=np.float64)

    def result(self) -> SimilarityResult:
        """The observed :class:`SimilarityResult`."""
        return self._result(self.score())

    def _result(self, statistic: float, **fields) -> SimilarityResult:
        info = MEASURES[self.measure]
        return SimilarityResult(
            measure=self.measure,
            statistic=float(statistic),
            n_pairs=self.n_pairs,
            higher_is_similar=info.higher_is_similar,
            value_range=info.value_range,
            **fields,
        )


def warn_degenerate(measure: str, what: str) -> None:
    """Warn, attributing the warning to the first caller outside saesim."""
    frame, stacklevel = sys._getframe(0), 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith("saesim."):
        frame, stacklevel = frame.f_back, stacklevel + 1
    warnings.warn(
        f"{measure}: {what}; the statistic is NaN. Drop constant rows/matrices before comparing.",
        DegenerateInputWarning,
        stacklevel=stacklevel,
    )


def check_measure(measure, options: dict, *, name: str = "measure") -> str:
    """``measure`` if it is a key of :data:`MEASURES` and accepts every key of ``options``; else ValueError / TypeError."""
    if measure not in MEASURES:
        valid = ", ".join(repr(key) for key in sorted(MEASURES))
        raise ValueError(f"`{name}` must be one of {valid}; got {measure!r}.")
    unknown = sorted(set(options) - set(MEASURES[measure].options))
    if unknown:
        accepted = ", ".join(MEASURES[measure].options) or "none"
        raise TypeError(
            f"{measure!r} got unknown option(s) {', '.join(unknown)}; it accepts: {accepted}. "
            f"Remove them or pick another `{name}`."
        )
    return measure


def checked_rows(x, y, measure: str) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``y`` as float64 arrays whose rows pair up, at least as many as ``measure`` needs; else ValueError."""
    return check_paired_rows(x, y, name_x="x", name_y="y", min_rows=MEASURES[measure].min_rows)
