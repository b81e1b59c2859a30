"""RSA: the Spearman correlation of the two sides' Pearson-correlation RSMs, and their centred ranks.

Private to :mod:`saesim.compare`; import the public names from :mod:`saesim.compare.geometry`.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import scipy.spatial.distance
import scipy.stats

from saesim.compare._measure import PreparedMeasure, SimilarityResult, checked_rows, warn_degenerate
from saesim.compare._permuted import RSA_BLOCK_ROWS, PermutedInner
from saesim.compare.subspace import CONSTANT_RTOL, FACTOR_CACHE, FactorCache


RSM_DECIMALS = 12
"""RSM entries are rounded to this many decimals before ranking, so that correlations
equal in exact arithmetic tie (and get average ranks) despite rounding error."""

_RANKS_MEMO_MIN_ROWS = 500
"""Rows from which the RSM ranks are memoised (below, ranking is cheaper than the bookkeeping)."""


def centred_rsm_ranks(z: np.ndarray, cache: FactorCache | None = None) -> np.ndarray | None:
    """Centred average ranks of the condensed Pearson RSM of the rows of ``z``.

    None when a row is constant (its correlations are undefined). Memoised by content in
    ``cache`` (default :data:`saesim.compare.subspace.FACTOR_CACHE`) from
    ``_RANKS_MEMO_MIN_ROWS`` rows on (read-only then).
    """
    if z.shape[0] >= _RANKS_MEMO_MIN_ROWS:
        return (FACTOR_CACHE if cache is None else cache).rsm_ranks.get(z, _compute_centred_rsm_ranks)
    return _compute_centred_rsm_ranks(z)


def _compute_centred_rsm_ranks(z: np.ndarray) -> np.ndarray | None:
    centred = z - z.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1)
    if np.any(norms <= CONSTANT_RTOL * np.linalg.norm(z, axis=1)):
        return None
    unit = centred / norms[:, None]
    condensed = scipy.spatial.distance.squareform(unit @ unit.T, checks=False)
    ranks = average_ranks(condensed, RSM_DECIMALS)
    return ranks - ranks.mean()


def average_ranks(values: np.ndarray, decimals: int) -> np.ndarray:
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


class PreparedRSA(PreparedMeasure):
    measure = "rsa"

    def __init__(self, x, y, *, cache: FactorCache | None = None):
        self.n_pairs = x.shape[0]
        self.ranks_x = centred_rsm_ranks(x, cache)
        self.ranks_y = centred_rsm_ranks(y, cache)
        self.degenerate = self.ranks_x is None or self.ranks_y is None
        if self.degenerate:
            warn_degenerate("rsa", "a row of x or of y is constant, so its correlations are undefined")
            return
        self.denominator = np.linalg.norm(self.ranks_x) * np.linalg.norm(self.ranks_y)
        if self.denominator == 0:
            self.degenerate = True
            warn_degenerate("rsa", "all pairwise correlations of x or of y are tied")

    @cached_property
    def _square_x(self) -> np.ndarray:
        return scipy.spatial.distance.squareform(self.ranks_x, checks=False)

    @cached_property
    def _square_y(self) -> np.ndarray:
        return scipy.spatial.distance.squareform(self.ranks_y, checks=False)

    @cached_property
    def _permuted_inner(self) -> PermutedInner:
        # Centred average ranks are multiples of 1/2 below n^2 / 4: exact in float32 up to n ~ 5800.
        def square(ranks):
            return scipy.spatial.distance.squareform(ranks.astype(np.float32), checks=False)
        return PermutedInner(square(self.ranks_x), square(self.ranks_y))

    def _scores(self, perms):
        return 0.5 * self._permuted_inner(perms) / self.denominator

    def score(self, perm=None) -> float:
        if self.degenerate:
            return np.nan
        if perm is None:
            return float(np.dot(self.ranks_x, self.ranks_y) / self.denominator)
        # The RSM of y[perm] is rsm_y[perm][:, perm]; ranks move with their entries.
        total = 0.0
        for start in range(0, self.n_pairs, RSA_BLOCK_ROWS):
            rows = np.take(self._square_y, perm[start:start + RSA_BLOCK_ROWS], axis=0)
            total += np.vdot(self._square_x[start:start + RSA_BLOCK_ROWS], np.take(rows, perm, axis=1))
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
    x, y = checked_rows(x, y, "rsa")
    return PreparedRSA(x, y).result()
