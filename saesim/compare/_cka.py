"""Linear CKA: the centred kernel alignment of paired rows, with two exact kernels for permuted pairings.

Private to :mod:`saesim.compare`; import the public names from :mod:`saesim.compare.geometry`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property, partial

import numpy as np

from saesim.compare._measure import PreparedMeasure, SimilarityResult, checked_rows, warn_degenerate
from saesim.compare._permuted import PermutedInner, PermutedProduct
from saesim.compare.subspace import FactorCache, compress_columns, is_constant


_GATHER_COST = 40
"""Multiply-adds of a float32 matrix product that take as long as gathering one entry of a
permuted n x n matrix (about 40 at n = 1 353 and 3 003 on a 2-core AMD EPYC, one thread);
linear CKA uses it to pick the faster of its two exact kernels."""

_GRAM_MAX_ROWS = 6000
"""Linear CKA permutes n x n float32 Gram matrices only up to this many pairs (memory)."""


class PreparedCKA(PreparedMeasure):
    measure = "linear_cka"

    def __init__(self, x, y, *, cache: FactorCache | None = None):  # no per-side factor worth caching
        self.n_pairs = x.shape[0]
        centred_x, centred_y = x - x.mean(axis=0), y - y.mean(axis=0)
        self.degenerate = is_constant(centred_x, x) or is_constant(centred_y, y)
        if self.degenerate:
            warn_degenerate("linear_cka", "x or y has no variance")
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
        products = PermutedProduct(self.factor_x, self.factor_y, self.x, self.y)
        if self.n_pairs <= _GRAM_MAX_ROWS and _GATHER_COST * self.n_pairs**2 / 2 < products.multiply_adds:
            return PermutedInner(self.factor_x @ self.factor_x.T, self.factor_y @ self.factor_y.T)
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
    x, y = checked_rows(x, y, "linear_cka")
    return PreparedCKA(x, y).result()
