"""Similarity of two paired point clouds: SVCCA, PWCCA, RSA, linear CKA, Procrustes.

Row ``i`` of ``x`` (n x d_x) and row ``i`` of ``y`` (n x d_y) describe the same
pair, typically the decoder rows of a pair of matched SAE latents; the widths
may differ. Every measure returns a :class:`SimilarityResult`, and
:data:`MEASURES` says for each one whether higher means more similar and what
its range is.

Each measure is computed by a *prepared* object (see :func:`prepare`) that does
once everything a permutation of the rows of ``y`` leaves unchanged (PCA bases,
centring, norms, RSM ranks) and then scores any row permutation cheaply. The
plain functions (:func:`svcca`, :func:`rsa`, ...) are that same object scored
at the identity, so the observed score and the null scores of
:func:`saesim.compare.nulls.permutation_test` share one formula; the null evaluates
it on batches of permutations in float32, within 1e-5
(:meth:`PreparedMeasure.scores`).

``svcca(..., compat=True)`` reproduces the authors' ReSi-derived SVCCA, which
keeps one principal component per side for realistic inputs (see
:func:`svcca`, Notes).

Dimension policy of the CCA family (SVCCA, PWCCA), the ``variance`` option:

* a float in (0, 1]: per side, the fewest principal components reaching that
  fraction of the variance;
* an int k >= 1: k components per side;
* a string ``"ratio:R"`` (R > 0): k = floor(n_distinct / R) components per
  side (at least 1), n_distinct the side's distinct rows, so that there are at
  least R distinct points per kept dimension — CCA on k dimensions with few
  points per dimension finds large canonical correlations even between
  unrelated clouds. In a 1-1 pairing n_distinct is n_pairs; the hub side of a
  many-to-1 pairing counts each partner once.

Every policy is capped at the numerical rank and at n_pairs - 1; the result
always reports ``k_x``, ``k_y`` and ``n_pairs``.

References
----------
Lan et al., "Sparse Autoencoders Reveal Universal Feature Spaces Across Large
Language Models", arXiv:2410.06981 (2024), Sec. 3.

Raghu, Gilmer, Yosinski and Sohl-Dickstein, "SVCCA: Singular Vector Canonical
Correlation Analysis for Deep Learning Dynamics and Interpretability",
NeurIPS 2017.

Kriegeskorte, Mur and Bandettini, "Representational similarity analysis",
Front. Syst. Neurosci. 2 (2008).

Kornblith, Norouzi, Lee and Hinton, "Similarity of Neural Network
Representations Revisited", ICML 2019.

Morcos, Raghu and Bengio, "Insights on representational similarity in neural
networks with canonical correlation", NeurIPS 2018 (PWCCA).

Klabunde, Schumacher, Strohmaier and Lemmerich, "Similarity of Neural Network
Models: A Survey of Functional and Representational Measures",
arXiv:2305.06329 (2023).
"""

from __future__ import annotations

import sys
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from collections.abc import Callable
from functools import cached_property, partial
from typing import Literal

import numpy as np
import scipy.spatial.distance
import scipy.stats
import torch

# The tolerances and the dimension policy live in saesim.compare.subspace (shared with the nulls);
# the constants stay importable from here, as before.
from saesim.compare.subspace import (
    AUTHORS_VARIANCE,
    CONSTANT_RTOL,
    GRAM_RANK_RTOL,
    RANK_RTOL,
    VARIANCE_RTOL,
    ContentMemo,
    compress_columns,
    is_constant,
    pca_basis,
    policy_label,
    validate_variance,
)
from saesim.validation import check_paired_rows

__all__ = [
    "AUTHORS_VARIANCE",
    "CONSTANT_RTOL",
    "DEFAULT_VARIANCE",
    "MEASURES",
    "RANK_RTOL",
    "RSM_DECIMALS",
    "VARIANCE_RTOL",
    "DegenerateInputWarning",
    "MeasureInfo",
    "MeasureName",
    "PreparedMeasure",
    "SimilarityResult",
    "linear_cka",
    "prepare",
    "procrustes",
    "pwcca",
    "rsa",
    "similarity",
    "svcca",
]

MeasureName = Literal["svcca", "pwcca", "rsa", "linear_cka", "procrustes"]

DEFAULT_VARIANCE = 0.99
"""Default fraction of each side's variance kept by SVCCA's PCA step."""

RSM_DECIMALS = 12
"""RSM entries are rounded to this many decimals before ranking, so that correlations
equal in exact arithmetic tie (and get average ranks) despite rounding error."""

_RSA_BLOCK_ROWS = 64
"""Rows of a permuted n x n matrix gathered at a time (RSA ranks, linear CKA Grams; bounds scratch)."""

_SCRATCH_BYTES = 64 * 2**20
"""Scratch memory of one batch of permuted float32 products (:class:`_PermutedProduct`)."""

_GRAM_EIG_MIN_RANK = 128
"""Matrices with at least this many singular values get them from their Gram's eigenvalues
(:func:`_singular_values`); smaller ones use an SVD."""

_GATHER_COST = 40
"""Multiply-adds of a float32 matrix product that take as long as gathering one entry of a
permuted n x n matrix (about 40 at n = 1 353 and 3 003 on a 2-core AMD EPYC, one thread);
linear CKA uses it to pick the faster of its two exact kernels."""

_GRAM_MAX_ROWS = 6000
"""Linear CKA permutes n x n float32 Gram matrices only up to this many pairs (memory)."""


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


def _warn_degenerate(measure: str, what: str) -> None:
    """Warn, attributing the warning to the first caller outside saesim."""
    frame, stacklevel = sys._getframe(0), 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith("saesim."):
        frame, stacklevel = frame.f_back, stacklevel + 1
    warnings.warn(
        f"{measure}: {what}; the statistic is NaN. Drop constant rows/matrices before comparing.",
        DegenerateInputWarning,
        stacklevel=stacklevel,
    )


def _distinct_rows(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First index of each distinct row of ``z``, and per row the position of its distinct row."""
    _, first, groups = np.unique(z, axis=0, return_index=True, return_inverse=True)
    return first, groups.reshape(-1)


class _PermutedProduct:
    """Batches of ``a.T @ b[perm]`` in float32, merging the repeated rows of one side.

    Row ``i`` of ``a`` (n x k_a) pairs with row ``perm[i]`` of ``b`` (n x k_b).
    A many-to-1 pairing repeats rows of one side: with ``a = G @ c`` (``c`` its
    m distinct rows, ``G`` the n x m row-to-distinct-row indicator),
    ``a.T @ P @ b = c.T @ (G.T @ P @ b)``, so the rows of ``b`` are first
    summed per distinct row of ``a`` (an ``index_add``) and the product costs
    m x k_a x k_b multiply-adds instead of n x k_a x k_b. The side with fewer
    distinct rows is merged; equal rows are found on the raw data ``data_a``,
    ``data_b`` the factors were computed from. ``multiply_adds`` is the cost
    of one product.
    """

    def __init__(self, a: np.ndarray, b: np.ndarray, data_a: np.ndarray, data_b: np.ndarray):
        first_a, groups_a = _distinct_rows(data_a)
        first_b, groups_b = _distinct_rows(data_b)
        # Merging b computes the transpose, b.T @ a[inverse perm].
        self.swapped = first_b.size < first_a.size
        if self.swapped:
            a, b, first, groups = b, a, first_b, groups_b
        else:
            first, groups = first_a, groups_a
        self.n_pairs = a.shape[0]
        merged = first.size < self.n_pairs
        self.left = torch.from_numpy(np.ascontiguousarray((a[first] if merged else a).T, dtype=np.float32))
        self.right = torch.from_numpy(np.ascontiguousarray(b, dtype=np.float32))
        self.groups = torch.from_numpy(groups) if merged else None
        k_left, rows = self.left.shape
        k_right = self.right.shape[1]
        self.multiply_adds = rows * k_left * k_right
        self.batch = max(1, _SCRATCH_BYTES // (4 * (rows * k_right + 3 * k_left * k_right)))

    def map(self, perms: np.ndarray, statistic: Callable[[torch.Tensor], torch.Tensor]) -> np.ndarray:
        """``statistic`` of the products ``a.T @ b[perm]`` (a batch, B x k_a x k_b), as float64."""
        # Without merging, gather b[perm]. Merging a adds row j of b to the distinct row of
        # a's row inverse[j]; merging b (swapped) adds row i of a to that of b's row perm[i].
        merges_a = self.groups is not None and not self.swapped
        index = np.argsort(perms, axis=1) if merges_a else perms
        out = []
        for start in range(0, len(index), self.batch):
            batch = torch.from_numpy(index[start:start + self.batch])
            if self.groups is None:
                summed = self.right.index_select(0, batch.reshape(-1)).view(len(batch), self.n_pairs, -1)
            else:
                summed = self.right.new_zeros((len(batch), self.left.shape[1], self.right.shape[1]))
                for sums, rows in zip(summed, batch):
                    sums.index_add_(0, self.groups[rows], self.right)
            products = torch.matmul(self.left, summed)
            out.append(statistic(products.mT if self.swapped else products).double())
        return torch.cat(out).numpy()


def _singular_values(products: torch.Tensor) -> torch.Tensor:
    """Singular values of a batch of float32 matrices, for their mean (in no particular order).

    From ``min(shape) >= _GRAM_EIG_MIN_RANK`` on, they are the square roots of
    the eigenvalues of the smaller Gram matrix, which takes about 2/3 of the
    time of ``torch.linalg.svdvals`` at 340 x 340. A singular value ``s`` then
    comes out within about ``1e-7 / s`` of float64, up to ``3e-4`` as ``s``
    goes to 0 (its square drowns in the Gram's rounding); a shuffled pairing
    has only a few such values, so their mean over >= 128 values stays within
    about 1e-6. Below that size, and for sums (Procrustes), use ``svdvals``.
    """
    if min(products.shape[-2:]) < _GRAM_EIG_MIN_RANK:
        return torch.linalg.svdvals(products)
    if products.shape[-2] <= products.shape[-1]:
        gram = products @ products.mT
    else:
        gram = products.mT @ products
    return torch.linalg.eigvalsh(gram).clamp(min=0).sqrt()


class _PermutedInner:
    """Batches of ``sum_ij x[i, j] y[perm[i], perm[j]]`` for symmetric n x n ``x`` and ``y``, in float32.

    By symmetry only the blocks of ``x`` on and right of the diagonal are
    needed (the ones right of it count twice); each block of ``_RSA_BLOCK_ROWS``
    rows gathers the matching rows of ``y`` and, from them, the permuted
    columns. Blocks run outermost so that a block of ``x`` stays in cache
    across a batch of permutations. Each block's dot product is a float32 sum,
    the blocks add up in float64.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.y = np.ascontiguousarray(y, dtype=np.float32)
        self.blocks = []
        for start in range(0, x.shape[0], _RSA_BLOCK_ROWS):
            stop = min(start + _RSA_BLOCK_ROWS, x.shape[0])
            block = np.array(x[start:stop, start:], dtype=np.float32)
            block[:, stop - start:] *= 2
            self.blocks.append((start, stop, block))

    def __call__(self, perms: np.ndarray) -> np.ndarray:
        """The sums for each row of ``perms`` (B x n), as float64."""
        totals = np.zeros(len(perms))
        for start, stop, block in self.blocks:
            for j, perm in enumerate(perms):
                rows = np.take(self.y, perm[start:stop], axis=0)
                totals[j] += np.vdot(block, np.take(rows, perm[start:], axis=1))
        return totals


# --- SVCCA -------------------------------------------------------------------


class _PreparedSVCCA(PreparedMeasure):
    measure = "svcca"

    def __init__(self, x, y, *, variance=DEFAULT_VARIANCE, compat=False):
        self.variance = validate_variance(variance, compat)
        self.compat = bool(compat)
        self.n_pairs = x.shape[0]
        self.x, self.y = x, y
        self.basis_x = pca_basis(x, self.variance, self.compat)
        self.basis_y = pca_basis(y, self.variance, self.compat)
        self.degenerate = self.basis_x.shape[1] == 0 or self.basis_y.shape[1] == 0
        if self.degenerate:
            _warn_degenerate("svcca", "all rows of x or of y are identical (no variance)")

    @cached_property
    def _products(self) -> _PermutedProduct:
        return _PermutedProduct(self.basis_x, self.basis_y, self.x, self.y)

    def canonical_correlations(self, perm=None) -> np.ndarray:
        """Canonical correlations of the kept PC scores, descending."""
        if self.degenerate:
            return np.zeros(0)
        basis_y = self.basis_y if perm is None else self.basis_y[perm]
        rho = np.linalg.svd(self.basis_x.T @ basis_y, compute_uv=False)
        return np.minimum(rho, 1.0)

    def score(self, perm=None) -> float:
        if self.degenerate:
            return np.nan
        return float(np.mean(self.canonical_correlations(perm)))

    def _scores(self, perms):
        return self._products.map(perms, lambda products: _singular_values(products).clamp(max=1.0).mean(-1))

    def result(self) -> SimilarityResult:
        rho = self.canonical_correlations()
        return self._result(
            float(np.mean(rho)) if rho.size else np.nan,
            compat=self.compat,
            k_x=self.basis_x.shape[1],
            k_y=self.basis_y.shape[1],
            canonical_correlations=rho,
            extras=_cca_extras(self),
        )


def _cca_extras(prepared) -> dict:
    k = max(prepared.basis_x.shape[1], prepared.basis_y.shape[1])
    return {"variance": policy_label(prepared.variance),
            "pairs_per_dim": prepared.n_pairs / k if k else np.nan}


def svcca(x, y, *, variance: float | int | str = DEFAULT_VARIANCE, compat: bool = False) -> SimilarityResult:
    """Singular-vector canonical correlation analysis of paired rows.

    Parameters
    ----------
    x : array_like, shape (n, d_x)
        One point cloud; row ``i`` pairs with row ``i`` of ``y``.
    y : array_like, shape (n, d_y)
        The other point cloud; ``d_y`` may differ from ``d_x``.
    variance : float, int or str, default 0.99
        The dimension policy. A float in (0, 1] keeps, per side, the fewest
        principal components whose variance reaches that fraction of the
        total. An int keeps that many components (capped at the numerical
        rank and at n - 1); note that ``1`` means one component, ``1.0``
        means all the variance. ``"ratio:R"`` keeps ``max(1, n // R)``
        components per side, so at least R pairs back each dimension.
    compat : bool, default False
        Reproduce the authors' component count (see Notes). Requires the
        default ``variance``.

    Returns
    -------
    SimilarityResult
        ``statistic`` is the mean of the ``min(k_x, k_y)`` canonical
        correlations, in [0, 1]; ``k_x``, ``k_y``, ``n_pairs`` and
        ``canonical_correlations`` are filled in, ``extras["variance"]`` holds
        the policy and ``extras["pairs_per_dim"]`` is n / max(k_x, k_y).

    Raises
    ------
    ValueError
        If the rows do not pair up, contain NaN/inf, n < 2, or ``variance`` is
        out of range (or not the default with ``compat=True``).
    TypeError
        If ``variance`` is neither a float, an int nor a string.

    Warns
    -----
    DegenerateInputWarning
        If all rows of one side are identical (statistic NaN).

    Notes
    -----
    With few pairs per kept dimension the canonical correlations of two
    *unrelated* clouds are large (k_x, k_y close to n gives values near 1),
    so a high statistic only means something against a null of the same k;
    ``"ratio:10"`` keeps k <= n_distinct / 10 per side (n_distinct = n
    unless rows repeat, as on a many-to-1 pairing's hub side).

    The n pairs are the data points and the d dimensions the variables. Each
    side is column-centred, its thin SVD ``U S V^T`` gives PC scores, and the
    first k columns of ``U`` (k <= rank <= n - 1) are an orthonormal basis of
    the kept scores. Canonical correlations are the singular values of
    ``U_x[:, :k_x]^T U_y[:, :k_y]``, the cosines of the principal angles
    between the two score subspaces.

    With ``compat=True`` k follows the authors' ``top_k_pca_comps``,
    ``argmax(cumsum(s^2)/sum(s^2) >= 0.99 * sum(s^2)) + 1``, which is 1 as
    soon as the total variance ``sum(s^2)`` exceeds 1/0.99 (always, for
    unit-norm decoder rows). The statistic is then ``|corr(PC1 of x, PC1 of
    y)|`` (authors_pipeline §2.5); a corrected SVCCA gives much larger null
    values.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((200, 8))
    >>> q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    >>> res = svcca(x, x @ q)
    >>> round(res.statistic, 6), res.k_x == res.k_y
    (1.0, True)
    >>> svcca(x, x @ q, compat=True).k_x
    1
    """
    return prepare(x, y, "svcca", variance=variance, compat=compat).result()


# --- PWCCA -------------------------------------------------------------------

PWCCA_DEFAULT_VARIANCE = 1.0
"""PWCCA's default policy: every dimension (up to rank and n - 1), as Morcos et al."""


class _PreparedPWCCA(PreparedMeasure):
    measure = "pwcca"

    def __init__(self, x, y, *, variance=PWCCA_DEFAULT_VARIANCE):
        self.variance = validate_variance(variance, False)
        self.compat = False
        self.n_pairs = x.shape[0]
        self.x, self.y = x, y
        self.basis_x = pca_basis(x, self.variance, False)
        self.basis_y = pca_basis(y, self.variance, False)
        self.degenerate = self.basis_x.shape[1] == 0 or self.basis_y.shape[1] == 0
        if self.degenerate:
            _warn_degenerate("pwcca", "all rows of x or of y are identical (no variance)")
            return
        # Weights are taken on the side with fewer kept dimensions (as Morcos et al.'s code).
        self.weighted_side = "x" if self.basis_x.shape[1] <= self.basis_y.shape[1] else "y"
        # Projections of that side's centred columns (neurons) onto its kept basis; a row
        # permutation of y moves basis_y and centred y together, so these stay fixed.
        if self.weighted_side == "x":
            self.projection = self.basis_x.T @ (x - x.mean(axis=0))
        else:
            self.projection = self.basis_y.T @ (y - y.mean(axis=0))

    def _parts(self, perm=None):
        basis_y = self.basis_y if perm is None else self.basis_y[perm]
        u, rho, vt = np.linalg.svd(self.basis_x.T @ basis_y, full_matrices=False)
        directions = u if self.weighted_side == "x" else vt.T
        weights = np.abs(directions.T @ self.projection).sum(axis=1)
        return np.minimum(rho, 1.0), weights

    def score(self, perm=None) -> float:
        if self.degenerate:
            return np.nan
        rho, weights = self._parts(perm)
        total = weights.sum()
        return float(np.dot(weights, rho) / total) if total > 0 else np.nan

    @cached_property
    def _products(self) -> _PermutedProduct:
        return _PermutedProduct(self.basis_x, self.basis_y, self.x, self.y)

    def _scores(self, perms):
        projection = torch.from_numpy(self.projection.astype(np.float32))

        def weighted_mean(products):
            u, rho, vt = torch.linalg.svd(products, full_matrices=False)
            directions = u if self.weighted_side == "x" else vt.mT
            weights = (directions.mT @ projection).abs().sum(-1)
            total = weights.sum(-1)
            statistic = (weights * rho.clamp(max=1.0)).sum(-1) / total
            return torch.where(total > 0, statistic, torch.nan)

        return self._products.map(perms, weighted_mean)

    def result(self) -> SimilarityResult:
        if self.degenerate:
            return self._result(np.nan, k_x=self.basis_x.shape[1], k_y=self.basis_y.shape[1],
                                canonical_correlations=np.zeros(0), extras=_cca_extras(self))
        rho, weights = self._parts()
        total = weights.sum()
        return self._result(
            float(np.dot(weights, rho) / total) if total > 0 else np.nan,
            k_x=self.basis_x.shape[1],
            k_y=self.basis_y.shape[1],
            canonical_correlations=rho,
            extras={**_cca_extras(self), "weighted_side": self.weighted_side},
        )


def pwcca(x, y, *, variance: float | int | str = PWCCA_DEFAULT_VARIANCE) -> SimilarityResult:
    """Projection-weighted canonical correlation analysis (PWCCA) of paired rows.

    Parameters
    ----------
    x : array_like, shape (n, d_x)
        One point cloud; row ``i`` pairs with row ``i`` of ``y``.
    y : array_like, shape (n, d_y)
        The other point cloud; ``d_y`` may differ from ``d_x``.
    variance : float, int or str, default 1.0
        Dimension policy of the CCA step, as for :func:`svcca` (a variance
        fraction, a fixed k, or ``"ratio:R"``). The default keeps every
        dimension (up to the rank and n - 1), which is plain PWCCA; on wide
        inputs (d close to n) pass ``"ratio:10"`` or a fraction.

    Returns
    -------
    SimilarityResult
        ``statistic`` in [0, 1]; ``k_x``, ``k_y``, ``n_pairs``,
        ``canonical_correlations`` and ``extras`` (``variance``,
        ``pairs_per_dim``, ``weighted_side``).

    Raises
    ------
    ValueError
        If the rows do not pair up, contain NaN/inf, n < 2, or ``variance``
        is out of range.

    Warns
    -----
    DegenerateInputWarning
        If all rows of one side are identical (statistic NaN).

    Notes
    -----
    Morcos, Raghu and Bengio (2018), Eq. (2): with canonical correlations
    ``rho_i`` and canonical variates ``h_i`` (unit vectors over the n pairs)
    of the side with fewer dimensions, whose centred columns are ``z_j``,
    ``alpha_i = sum_j |<h_i, z_j>|`` and
    ``PWCCA = sum_i alpha_i rho_i / sum_i alpha_i``: canonical directions
    that account for more of that side's columns weigh more. Unlike the
    authors of PWCCA we do not add the column means back before weighting
    (the variates are centred; adding a constant would make the weights
    depend on the origin).

    When ``k_x + k_y >= n``, some canonical correlations are exactly 1 and
    their canonical directions (hence the weights) are not unique, so the
    statistic is not well defined; keep k well below n (``"ratio:10"``).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((200, 6))
    >>> q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    >>> round(pwcca(x, x @ q).statistic, 6)
    1.0
    """
    return prepare(x, y, "pwcca", variance=variance).result()


# --- RSA ---------------------------------------------------------------------


_RANKS_MEMO = ContentMemo(2)
"""The last few large :func:`centred_rsm_ranks` results."""

_RANKS_MEMO_MIN_ROWS = 500
"""Rows from which the RSM ranks are memoised (below, ranking is cheaper than the bookkeeping)."""


def centred_rsm_ranks(z: np.ndarray) -> np.ndarray | None:
    """Centred average ranks of the condensed Pearson RSM of the rows of ``z``.

    None when a row is constant (its correlations are undefined). Memoised by content from
    ``_RANKS_MEMO_MIN_ROWS`` rows on (read-only then).
    """
    if z.shape[0] >= _RANKS_MEMO_MIN_ROWS:
        return _RANKS_MEMO.get(z, _compute_centred_rsm_ranks)
    return _compute_centred_rsm_ranks(z)


def _compute_centred_rsm_ranks(z: np.ndarray) -> np.ndarray | None:
    centred = z - z.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1)
    if np.any(norms <= CONSTANT_RTOL * np.linalg.norm(z, axis=1)):
        return None
    unit = centred / norms[:, None]
    condensed = scipy.spatial.distance.squareform(unit @ unit.T, checks=False)
    ranks = _average_ranks(condensed, RSM_DECIMALS)
    return ranks - ranks.mean()


def _average_ranks(values: np.ndarray, decimals: int) -> np.ndarray:
    """``scipy.stats.rankdata(np.round(values, decimals))`` (average ranks of ties), about 4x faster.

    ``np.round`` rounds ``values * 10**decimals`` to an integer, so those
    integers tie and order exactly as the rounded values. Each is packed with
    its index into one uint64 and the whole array sorted by value, which is
    several times faster than ``argsort``; when value and index do not fit
    in 64 bits, scipy ranks the integers.
    """
    keys = np.rint(np.asarray(values, dtype=np.float64) * 10.0**decimals).astype(np.int64)
    n = keys.size
    if n == 0:
        return np.zeros(0)
    lowest = keys.min()
    index_bits = max(1, (n - 1).bit_length())
    if (int(keys.max()) - int(lowest)).bit_length() + index_bits > 64:
        return scipy.stats.rankdata(keys)
    packed = (keys - lowest).astype(np.uint64) << np.uint64(index_bits)
    packed |= np.arange(n, dtype=np.uint64)
    packed.sort()
    order = (packed & np.uint64((1 << index_bits) - 1)).astype(np.intp)
    packed >>= np.uint64(index_bits)
    starts = np.empty(n, dtype=bool)
    starts[0] = True
    np.not_equal(packed[1:], packed[:-1], out=starts[1:])
    first = np.flatnonzero(starts)
    counts = np.diff(np.append(first, n))
    ranks = np.empty(n)
    ranks[order] = np.repeat(first + (counts + 1) / 2, counts)
    return ranks


class _PreparedRSA(PreparedMeasure):
    measure = "rsa"

    def __init__(self, x, y):
        self.n_pairs = x.shape[0]
        self.ranks_x = centred_rsm_ranks(x)
        self.ranks_y = centred_rsm_ranks(y)
        self.degenerate = self.ranks_x is None or self.ranks_y is None
        if self.degenerate:
            _warn_degenerate("rsa", "a row of x or of y is constant, so its correlations are undefined")
            return
        self.denominator = np.linalg.norm(self.ranks_x) * np.linalg.norm(self.ranks_y)
        if self.denominator == 0:
            self.degenerate = True
            _warn_degenerate("rsa", "all pairwise correlations of x or of y are tied")

    @cached_property
    def _square_x(self) -> np.ndarray:
        return scipy.spatial.distance.squareform(self.ranks_x, checks=False)

    @cached_property
    def _square_y(self) -> np.ndarray:
        return scipy.spatial.distance.squareform(self.ranks_y, checks=False)

    @cached_property
    def _permuted_inner(self) -> _PermutedInner:
        # Centred average ranks are multiples of 1/2 below n^2 / 4: exact in float32 up to n ~ 5800.
        def square(ranks):
            return scipy.spatial.distance.squareform(ranks.astype(np.float32), checks=False)
        return _PermutedInner(square(self.ranks_x), square(self.ranks_y))

    def _scores(self, perms):
        return 0.5 * self._permuted_inner(perms) / self.denominator

    def score(self, perm=None) -> float:
        if self.degenerate:
            return np.nan
        if perm is None:
            return float(np.dot(self.ranks_x, self.ranks_y) / self.denominator)
        # The RSM of y[perm] is rsm_y[perm][:, perm]; ranks move with their entries.
        total = 0.0
        for start in range(0, self.n_pairs, _RSA_BLOCK_ROWS):
            rows = np.take(self._square_y, perm[start:start + _RSA_BLOCK_ROWS], axis=0)
            total += np.vdot(self._square_x[start:start + _RSA_BLOCK_ROWS], np.take(rows, perm, axis=1))
        return float(0.5 * total / self.denominator)


def rsa(x, y) -> SimilarityResult:
    """Representational similarity analysis of paired rows.

    Parameters
    ----------
    x : array_like, shape (n, d_x)
        One point cloud; row ``i`` pairs with row ``i`` of ``y``.
    y : array_like, shape (n, d_y)
        The other point cloud; ``d_y`` may differ from ``d_x``.

    Returns
    -------
    SimilarityResult
        ``statistic`` is a Spearman correlation, in [-1, 1].

    Raises
    ------
    ValueError
        If the rows do not pair up, contain NaN/inf, or n < 3.

    Warns
    -----
    DegenerateInputWarning
        If a row is constant, or all pairwise correlations on one side tie
        (statistic NaN).

    Notes
    -----
    Each side's representational similarity matrix (RSM) holds the Pearson
    correlation between rows i and j (centre each row across its d entries,
    then cosine). The statistic is the Spearman correlation of the two strict
    upper triangles, i.e. the Pearson correlation of their average ranks, as
    in the authors' code (ReSi ``rsa.py``). Entries are rounded to
    ``RSM_DECIMALS`` decimals before ranking so that exact ties survive
    rounding error. Memory and time are O(n^2): fine up to about 5 000 rows.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((50, 6))
    >>> round(rsa(x, 3.0 * x[:, ::-1] + 1.0).statistic, 6)
    1.0
    """
    return prepare(x, y, "rsa").result()


# --- linear CKA --------------------------------------------------------------


class _PreparedCKA(PreparedMeasure):
    measure = "linear_cka"

    def __init__(self, x, y):
        self.n_pairs = x.shape[0]
        centred_x, centred_y = x - x.mean(axis=0), y - y.mean(axis=0)
        self.degenerate = is_constant(centred_x, x) or is_constant(centred_y, y)
        if self.degenerate:
            _warn_degenerate("linear_cka", "x or y has no variance")
            return
        self.x, self.y = x, y
        self.factor_x = compress_columns(centred_x)
        self.factor_y = compress_columns(centred_y)
        self.denominator = (np.linalg.norm(self.factor_x.T @ self.factor_x)
                            * np.linalg.norm(self.factor_y.T @ self.factor_y))

    def score(self, perm=None) -> float:
        if self.degenerate:
            return np.nan
        factor_y = self.factor_y if perm is None else self.factor_y[perm]
        return float(np.linalg.norm(self.factor_x.T @ factor_y) ** 2 / self.denominator)

    @cached_property
    def _numerators(self) -> Callable[[np.ndarray], np.ndarray]:
        """The cheaper of two exact float32 kernels for ``||Xc^T P Yc||_F^2``.

        Either the permuted products ``Xc^T P Yc`` (m x d_x x d_y multiply-adds, m
        distinct rows) or ``sum_ij Kx[i, j] Ky[p_i, p_j]`` over the n x n Gram
        matrices ``K = Xc Xc^T`` (n^2 / 2 gathered entries), which wins when n is
        small against d_x d_y.
        """
        products = _PermutedProduct(self.factor_x, self.factor_y, self.x, self.y)
        if self.n_pairs <= _GRAM_MAX_ROWS and _GATHER_COST * self.n_pairs**2 / 2 < products.multiply_adds:
            return _PermutedInner(self.factor_x @ self.factor_x.T, self.factor_y @ self.factor_y.T)
        return partial(products.map, statistic=lambda product: product.square().sum((-2, -1)))

    def _scores(self, perms):
        return self._numerators(perms) / self.denominator


def linear_cka(x, y) -> SimilarityResult:
    """Linear centred kernel alignment (CKA) of paired rows.

    Parameters
    ----------
    x : array_like, shape (n, d_x)
        One point cloud; row ``i`` pairs with row ``i`` of ``y``.
    y : array_like, shape (n, d_y)
        The other point cloud; ``d_y`` may differ from ``d_x``.

    Returns
    -------
    SimilarityResult
        ``statistic`` in [0, 1]; 1 when ``y`` is an isotropically scaled
        orthogonal transform of ``x`` (after centring).

    Raises
    ------
    ValueError
        If the rows do not pair up, contain NaN/inf, or n < 2.

    Warns
    -----
    DegenerateInputWarning
        If all rows of one side are identical (statistic NaN).

    Notes
    -----
    Feature-space form ``||Xc^T Yc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)``
    with column-centred ``Xc``, ``Yc``. A side wider than n is first reduced
    to n columns by a QR factorisation, which leaves every term unchanged.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((100, 5))
    >>> q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    >>> round(linear_cka(x, 2.0 * x @ q).statistic, 6)
    1.0
    """
    return prepare(x, y, "linear_cka").result()


# --- Procrustes --------------------------------------------------------------


class _PreparedProcrustes(PreparedMeasure):
    measure = "procrustes"

    def __init__(self, x, y):
        self.n_pairs = x.shape[0]
        centred_x, centred_y = x - x.mean(axis=0), y - y.mean(axis=0)
        self.degenerate = is_constant(centred_x, x) or is_constant(centred_y, y)
        if self.degenerate:
            _warn_degenerate("procrustes", "x or y has no variance")
            return
        self.x, self.y = x, y
        self.factor_x = compress_columns(centred_x / np.linalg.norm(centred_x))
        self.factor_y = compress_columns(centred_y / np.linalg.norm(centred_y))

    def score(self, perm=None) -> float:
        if self.degenerate:
            return np.nan
        factor_y = self.factor_y if perm is None else self.factor_y[perm]
        return float(np.sum(np.linalg.svd(self.factor_x.T @ factor_y, compute_uv=False)))

    @cached_property
    def _products(self) -> _PermutedProduct:
        return _PermutedProduct(self.factor_x, self.factor_y, self.x, self.y)

    def _scores(self, perms):
        # A nuclear norm sums many small singular values: svdvals, not the Gram's eigenvalues.
        return self._products.map(perms, lambda products: torch.linalg.svdvals(products).sum(-1))

    def result(self) -> SimilarityResult:
        statistic = self.score()
        return self._result(statistic, extras={"distance": float(np.sqrt(max(0.0, 2.0 - 2.0 * statistic)))})


def procrustes(x, y) -> SimilarityResult:
    """Orthogonal Procrustes similarity of paired rows.

    Parameters
    ----------
    x : array_like, shape (n, d_x)
        One point cloud; row ``i`` pairs with row ``i`` of ``y``.
    y : array_like, shape (n, d_y)
        The other point cloud; ``d_y`` may differ from ``d_x``.

    Returns
    -------
    SimilarityResult
        ``statistic`` in [0, 1], 1 when ``y`` is a rotated (and scaled,
        shifted) copy of ``x``; ``extras["distance"]`` is the Procrustes
        distance ``sqrt(2 - 2 * statistic)``, in [0, sqrt(2)].

    Raises
    ------
    ValueError
        If the rows do not pair up, contain NaN/inf, or n < 2.

    Warns
    -----
    DegenerateInputWarning
        If all rows of one side are identical (statistic NaN).

    Notes
    -----
    Both sides are column-centred and scaled to unit Frobenius norm. When the
    widths differ, the narrower side is zero-padded to the wider one, so the
    best orthogonal map acts on R^max(d_x, d_y); padding adds zero singular
    values only, so the statistic is the nuclear norm ``||X^T Y||_*`` of the
    unpadded normalised matrices, and
    ``min_Q ||X Q - Y||_F^2 = 2 - 2 ||X^T Y||_*``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((100, 4))
    >>> q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    >>> res = procrustes(x, 5.0 * x @ q[:4] + 2.0)
    >>> round(res.statistic, 6), round(res.extras["distance"], 6)
    (1.0, 0.0)
    """
    return prepare(x, y, "procrustes").result()


# --- dispatch ----------------------------------------------------------------

_PREPARED = {
    "svcca": _PreparedSVCCA,
    "pwcca": _PreparedPWCCA,
    "rsa": _PreparedRSA,
    "linear_cka": _PreparedCKA,
    "procrustes": _PreparedProcrustes,
}


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


def prepare(x, y, measure: MeasureName, **options) -> PreparedMeasure:
    """Do once what a row permutation of ``y`` leaves unchanged, for repeated scoring.

    Parameters
    ----------
    x : array_like, shape (n, d_x)
        One point cloud; row ``i`` pairs with row ``i`` of ``y``.
    y : array_like, shape (n, d_y)
        The other point cloud.
    measure : {"svcca", "pwcca", "rsa", "linear_cka", "procrustes"}
        Which measure.
    **options
        The measure's options (``variance``, ``compat`` for SVCCA; ``variance``
        for PWCCA).

    Returns
    -------
    PreparedMeasure
        ``score(perm)`` gives the statistic of ``(x, y[perm])`` and
        ``result()`` the observed :class:`SimilarityResult`.

    Raises
    ------
    ValueError
        If ``measure`` is unknown or the rows are invalid (see the measures).
    TypeError
        If an option does not belong to ``measure``.

    Notes
    -----
    What each prepared measure keeps, and what a permutation costs:

    * SVCCA: orthonormal PC-score bases ``U_x`` (n x k_x), ``U_y``; the
      singular values of ``U_x^T P U_y`` (k_x x k_y). In compat mode k = 1,
      so one dot product.
    * PWCCA: the same bases plus the projections of the weighted side's
      centred columns onto its basis; a permutation costs the SVD of the
      k_x x k_y matrix and one (k x d) product for the weights.
    * RSA: the centred ranks of both condensed RSMs; permuting ``y``'s rows
      permutes the RSM's indices, so the ranks are re-indexed, not recomputed.
    * linear CKA: centred factors and the denominator; ``||Xc^T P Yc||_F``.
    * Procrustes: normalised factors; the nuclear norm of ``X^T P Y``.

    ``scores(perms)`` scores a batch of permutations in float32 (torch
    products, batched; for RSA, and for linear CKA when n is small against
    d_x d_y, re-indexed n x n matrices), within 1e-5 of ``score`` (see
    :func:`saesim.compare.nulls.permutation_test`). When one side repeats rows (a
    many-to-1 pairing), the products run over its distinct rows only.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.standard_normal((30, 4)), rng.standard_normal((30, 5))
    >>> prepared = prepare(x, y, "linear_cka")
    >>> perm = rng.permutation(30)
    >>> bool(np.isclose(prepared.score(perm), linear_cka(x, y[perm]).statistic))
    True
    """
    measure = check_measure(measure, options)
    x, y = check_paired_rows(x, y, name_x="x", name_y="y", min_rows=MEASURES[measure].min_rows)
    return _PREPARED[measure](x, y, **options)


def similarity(x, y, measure: MeasureName, **options) -> SimilarityResult:
    """Any measure by name: ``similarity(x, y, "svcca", compat=True)``.

    Parameters
    ----------
    x : array_like, shape (n, d_x)
        One point cloud; row ``i`` pairs with row ``i`` of ``y``.
    y : array_like, shape (n, d_y)
        The other point cloud.
    measure : {"svcca", "pwcca", "rsa", "linear_cka", "procrustes"}
        Which measure.
    **options
        The measure's options (``variance``, ``compat`` for SVCCA; ``variance``
        for PWCCA).

    Returns
    -------
    SimilarityResult
        As returned by the named function.

    Raises
    ------
    ValueError
        If ``measure`` is unknown or the rows are invalid.
    TypeError
        If an option does not belong to ``measure``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).standard_normal((40, 3))
    >>> round(similarity(x, x, "procrustes").statistic, 6)
    1.0
    """
    return prepare(x, y, measure, **options).result()
