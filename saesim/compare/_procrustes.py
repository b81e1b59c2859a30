"""Orthogonal Procrustes similarity: the nuclear norm of the normalised cross product (1 = same up to rotation).

Private to :mod:`saesim.compare`; import the public names from :mod:`saesim.compare.geometry`.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import torch

from saesim.compare._measure import PreparedMeasure, SimilarityResult, checked_rows, warn_degenerate
from saesim.compare._permuted import PermutedProduct
from saesim.compare.subspace import FactorCache, compress_columns, is_constant


class PreparedProcrustes(PreparedMeasure):
    measure = "procrustes"

    def __init__(self, x, y, *, cache: FactorCache | None = None):  # no per-side factor worth caching
        self.n_pairs = x.shape[0]
        centred_x, centred_y = x - x.mean(axis=0), y - y.mean(axis=0)
        self.degenerate = is_constant(centred_x, x) or is_constant(centred_y, y)
        if self.degenerate:
            warn_degenerate("procrustes", "x or y has no variance")
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
    def _products(self) -> PermutedProduct:
        return PermutedProduct(self.factor_x, self.factor_y, self.x, self.y)

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
    x, y = checked_rows(x, y, "procrustes")
    return PreparedProcrustes(x, y).result()
