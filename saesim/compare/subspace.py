"""The PCA step of the CCA family and the per-side factors the measures and their nulls share.

SVCCA (and PWCCA) first keep, per side, the top principal components of the centred rows; how
many is the *dimension policy* (the ``variance`` option of :func:`saesim.compare.geometry.svcca`):
a variance fraction, a fixed k, ``"ratio:R"`` (:class:`RatioPolicy`) or, in compat mode, the
authors' rule (:func:`authors_k`). This module holds that policy and the kept bases
(:func:`validate_variance`, :func:`n_kept`, :func:`pca_basis`), the column compression used by
linear CKA and Procrustes (:func:`compress_columns`), and the tolerances they rest on.
:mod:`saesim.compare.geometry` scores the measures with them and :mod:`saesim.compare.nulls`
re-applies the same rules inside its group null, so the observed score and the null keep the same
number of components by one definition.

The per-side factors that are expensive and asked for again (a side's centred SVD, RSA's RSM ranks)
are remembered by content in one explicit :class:`FactorCache`: the measures take one
(``prepare(..., cache=...)``) and otherwise share :data:`FACTOR_CACHE`, which
``FACTOR_CACHE.clear()`` empties.
"""

from __future__ import annotations

import hashlib
import numbers
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

__all__ = [
    "AUTHORS_VARIANCE",
    "CONSTANT_RTOL",
    "GRAM_RANK_RTOL",
    "RANK_RTOL",
    "RATIO_PREFIX",
    "VARIANCE_RTOL",
    "FACTOR_CACHE",
    "ContentMemo",
    "FactorCache",
    "RatioPolicy",
    "authors_k",
    "centred_svd",
    "compress_columns",
    "is_constant",
    "n_distinct_rows",
    "n_kept",
    "pca_basis",
    "policy_label",
    "validate_variance",
]

AUTHORS_VARIANCE = 0.99
"""The threshold hard-coded in the authors' ``top_k_pca_comps`` (compat mode)."""

RANK_RTOL = 1e-10
"""Singular values below ``RANK_RTOL`` times the largest count as zero (numerical rank)."""

GRAM_RANK_RTOL = 1e-6
"""When SVCCA's PCA step goes through the Gram matrix (fewer rows than columns), singular values
below this fraction of the largest are below its resolution (about sqrt(n * eps)) and count as zero."""

VARIANCE_RTOL = 1e-12
"""Slack on the cumulative variance fraction, so that ``variance=1.0`` keeps the full rank."""

CONSTANT_RTOL = 1e-12
"""A row or matrix whose centred norm is at most ``CONSTANT_RTOL`` times its raw norm is constant."""

RATIO_PREFIX = "ratio:"
"""Prefix of the pairs-per-dimension policy, ``variance="ratio:10"``."""


def is_constant(centred: np.ndarray, raw: np.ndarray) -> bool:
    """True when centring removed (numerically) everything."""
    return np.linalg.norm(centred) <= CONSTANT_RTOL * np.linalg.norm(raw)


def compress_columns(z: np.ndarray) -> np.ndarray:
    """An n x min(n, d) matrix ``a`` with ``z = a @ q.T`` for some orthonormal ``q``.

    Frobenius and nuclear norms of ``x.T @ P @ y`` depend on ``x`` and ``y``
    only through such factors, so wide inputs (d > n) shrink to n columns.
    """
    if z.shape[1] <= z.shape[0]:
        return z
    return np.linalg.qr(z.T, mode="r").T


@dataclass(frozen=True)
class RatioPolicy:
    """Keep k = max(1, floor(n_distinct / ratio)) components per side.

    ``n_distinct`` is the side's number of distinct rows: its pairs in a 1-1 pairing, but only its
    distinct partners on the hub side of a many-to-1 pairing, whose repeated rows add no
    information to its principal components (counting them would let k approach the number of
    distinct points, where canonical correlations tie near 1 whatever the pairing).
    """

    ratio: float

    def __str__(self) -> str:
        return f"{RATIO_PREFIX}{self.ratio:g}"

    def k(self, n_distinct: int) -> int:
        return max(1, int(np.floor(n_distinct / self.ratio + 1e-9)))


def n_distinct_rows(z: np.ndarray) -> int:
    """Number of distinct rows of ``z`` (byte-wise)."""
    n_rows, n_columns = z.shape
    if n_columns == 0:  # every empty row is the same
        return min(n_rows, 1)
    if n_rows < 2:
        return n_rows
    z = np.ascontiguousarray(z)
    return int(np.unique(z.view(np.dtype((np.void, z.dtype.itemsize * n_columns))).ravel()).size)


def validate_variance(variance, compat: bool):
    """The ``variance`` option checked and normalised: a :class:`RatioPolicy`, an int k or a float fraction."""
    if isinstance(variance, RatioPolicy):
        variance = str(variance)
    if isinstance(variance, str):
        text = variance.strip().lower()
        ratio = None
        if text.startswith(RATIO_PREFIX):
            try:
                ratio = float(text[len(RATIO_PREFIX):])
            except ValueError:
                ratio = None
        if ratio is None or not np.isfinite(ratio) or ratio <= 0:
            raise ValueError(
                f"`variance` as a string must be 'ratio:R' with R > 0 (keep distinct rows / R components "
                f"per side); got {variance!r}."
            )
        if compat:
            raise ValueError(
                f"`variance`={variance!r} cannot be combined with compat=True: the authors' rule is fixed "
                f"at {AUTHORS_VARIANCE}. Leave `variance` at its default or set compat=False."
            )
        return RatioPolicy(ratio)
    if isinstance(variance, bool) or not isinstance(variance, numbers.Real):
        raise TypeError(
            f"`variance` must be a float in (0, 1] (fraction of variance kept), an int >= 1 "
            f"(number of components) or 'ratio:R' (distinct rows / R components); got {variance!r} "
            f"({type(variance).__name__})."
        )
    if compat and variance != AUTHORS_VARIANCE:
        raise ValueError(
            f"`variance`={variance!r} cannot be combined with compat=True: the authors' rule is "
            f"fixed at {AUTHORS_VARIANCE}. Leave `variance` at its default or set compat=False."
        )
    if isinstance(variance, numbers.Integral):
        if variance < 1:
            raise ValueError(
                f"`variance` as an int is the number of components and must be >= 1; got "
                f"{variance}. Pass a float such as 0.99 for a variance fraction."
            )
        return int(variance)
    if not 0.0 < variance <= 1.0:
        raise ValueError(
            f"`variance` as a float is the fraction of variance kept and must lie in (0, 1]; "
            f"got {variance!r}. Pass an int for a fixed number of components."
        )
    return float(variance)


def policy_label(variance) -> float | int | str:
    """The policy as a plain value for records (``"ratio:10"`` for a ratio)."""
    return str(variance) if isinstance(variance, RatioPolicy) else variance


def authors_k(singular_values: np.ndarray) -> int:
    """The authors' ``top_k_pca_comps``: the threshold is compared with a fraction
    scaled by the *total* variance, so k = 1 whenever that total exceeds 1/0.99."""
    total = np.sum(singular_values**2)
    cumulative = np.cumsum(singular_values**2 / total)
    return int(np.argmax(cumulative >= AUTHORS_VARIANCE * total)) + 1


class ContentMemo:
    """The last few results of an expensive function of one array, by a digest of its bytes.

    Hashing costs a small fraction of what it saves: corrected and authors'-k SVCCA of one record
    decompose the same rows, and a many-to-1 null ranks the fixed side's RSM for the observed
    score and again for the null. Results are made read-only: they are shared.
    """

    def __init__(self, size: int):
        self.size = size
        self.results: OrderedDict = OrderedDict()

    def clear(self) -> None:
        self.results.clear()

    def get(self, z: np.ndarray, compute):
        z = np.ascontiguousarray(z)
        key = (z.shape, z.dtype.str, hashlib.blake2b(z.data, digest_size=16).digest())
        if key in self.results:
            self.results.move_to_end(key)
            return self.results[key]
        result = compute(z)
        for array in (result if isinstance(result, tuple) else (result,)):
            if isinstance(array, np.ndarray):
                array.setflags(write=False)
        self.results[key] = result
        while len(self.results) > self.size:
            self.results.popitem(last=False)
        return result


class FactorCache:
    """The per-side factors of the last few inputs, by content, for the measures and their nulls.

    Two :class:`ContentMemo` of their own size: ``svd``, the last ``svd_size`` tall
    :func:`centred_svd` results (the PCA step of SVCCA and PWCCA), and ``rsm_ranks``, the last
    ``ranks_size`` large RSM rankings of RSA (:func:`saesim.compare.geometry.centred_rsm_ranks`).
    A cached factor is exactly what recomputing it gives, so a cache changes the time a score
    takes, never the score. :func:`saesim.compare.geometry.prepare` takes one (``cache=``); by
    default every measure and null shares :data:`FACTOR_CACHE`. Entries are read-only arrays;
    :meth:`clear` drops them all (to free memory, or to time a cold start).
    """

    def __init__(self, svd_size: int = 4, ranks_size: int = 2):
        self.svd = ContentMemo(svd_size)
        self.rsm_ranks = ContentMemo(ranks_size)

    def clear(self) -> None:
        """Forget every cached factor."""
        self.svd.clear()
        self.rsm_ranks.clear()


FACTOR_CACHE = FactorCache()
"""The cache the measures and nulls share when given none (the only module-level one)."""


def centred_svd(z: np.ndarray, cache: FactorCache | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """``(u, s)`` of the column-centred ``z`` (thin SVD), or None when centring leaves nothing.

    Tall inputs are memoised by content in ``cache`` (default :data:`FACTOR_CACHE`; about a tenth
    of their SVD); wide ones take the cheaper Gram route, not worth it.
    """
    if z.shape[0] >= z.shape[1]:
        return (FACTOR_CACHE if cache is None else cache).svd.get(z, _compute_centred_svd)
    return _compute_centred_svd(z)


def _compute_centred_svd(z: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    centred = z - z.mean(axis=0)
    if is_constant(centred, z):
        return None
    if centred.shape[0] < centred.shape[1]:
        # Fewer rows than columns (concept subspaces, their random subsets): the n x n Gram's
        # eigenvectors are u, about 4x faster than the SVD; singular values below its
        # resolution (GRAM_RANK_RTOL of the largest) are set to zero.
        eigenvalues, vectors = np.linalg.eigh(centred @ centred.T)
        u = np.ascontiguousarray(vectors[:, ::-1])
        s = np.sqrt(np.clip(eigenvalues[::-1], 0.0, None))
        s[s <= GRAM_RANK_RTOL * s[0]] = 0.0
        return u, s
    return tuple(np.linalg.svd(centred, full_matrices=False)[:2])


def pca_basis(z: np.ndarray, variance, compat: bool, cache: FactorCache | None = None) -> np.ndarray:
    """Orthonormal, centred n x k basis of the kept principal-component scores of ``z`` (SVD memoised in ``cache``)."""
    decomposed = centred_svd(z, cache)
    if decomposed is None:
        return np.zeros((z.shape[0], 0))
    u, s = decomposed
    n_distinct = n_distinct_rows(z) if isinstance(variance, RatioPolicy) else z.shape[0]
    k = n_kept(s, z.shape[0], n_distinct, variance, compat)
    return np.array(u[:, :k])  # a writeable copy: the memoised u is shared


def n_kept(s: np.ndarray, n_rows: int, n_distinct: int, variance, compat: bool) -> int:
    """SVCCA's number of kept components from a side's centred singular values ``s``.

    The policy's k (the authors' rule, ``variance.k(n_distinct)``, a fixed k, or the fewest
    components reaching the variance fraction), capped at the numerical rank and ``n_rows - 1``.
    """
    rank = int(np.count_nonzero(s > RANK_RTOL * s[0]))
    if compat:
        k = authors_k(s)
    elif isinstance(variance, RatioPolicy):
        k = variance.k(n_distinct)
    elif isinstance(variance, int):
        k = variance
    else:
        cumulative = np.cumsum(s[:rank] ** 2)
        k = int(np.searchsorted(cumulative / cumulative[-1], variance - VARIANCE_RTOL)) + 1
    return min(k, rank, n_rows - 1)
