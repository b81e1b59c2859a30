"""PWCCA: canonical correlations weighted by how much of one side's columns each canonical direction carries.

Private to :mod:`saesim.compare`; import the public names from :mod:`saesim.compare.geometry`.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import torch

from saesim.compare._measure import PreparedMeasure, SimilarityResult, checked_rows, warn_degenerate
from saesim.compare._permuted import PermutedProduct
from saesim.compare._svcca import cca_extras
from saesim.compare.subspace import FactorCache, pca_basis, validate_variance


PWCCA_DEFAULT_VARIANCE = 1.0
"""PWCCA's default policy: every dimension (up to rank and n - 1), as Morcos et al."""


class PreparedPWCCA(PreparedMeasure):
    measure = "pwcca"

    def __init__(self, x, y, *, variance=PWCCA_DEFAULT_VARIANCE, cache: FactorCache | None = None):
        self.variance = validate_variance(variance, False)
        self.compat = False
        self.n_pairs = x.shape[0]
        self.x, self.y = x, y
        self.basis_x = pca_basis(x, self.variance, False, cache)
        self.basis_y = pca_basis(y, self.variance, False, cache)
        self.degenerate = self.basis_x.shape[1] == 0 or self.basis_y.shape[1] == 0
        if self.degenerate:
            warn_degenerate("pwcca", "all rows of x or of y are identical (no variance)")
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
    def _products(self) -> PermutedProduct:
        return PermutedProduct(self.basis_x, self.basis_y, self.x, self.y)

    def _scores(self, perms):
        projection = torch.from_numpy(self.projection.astype(np.float32))

        def weighted_mean(products):
            u, rho, vt = torch.linalg.svd(products, full_matrices=False)
            directions = u if self.weighted_side == "x" else vt.mT
            weights = (directions.mT @ projection).abs().sum(-1)
            total = weights.sum(-1)
            statistic = (weights * rho.clamp(max=1.0)).sum(-1) / total
            return torch.where(total > 0, statistic, torch.nan)

        try:
            return self._products.map(perms, weighted_mean)
        except torch.linalg.LinAlgError:
            # float32's batched SVD can fail to converge on an ill-conditioned draw (repeated
            # singular values); score that chunk draw by draw on the exact float64 path instead.
            return np.array([self.score(perm) for perm in perms], dtype=np.float64)

    def result(self) -> SimilarityResult:
        if self.degenerate:
            return self._result(np.nan, k_x=self.basis_x.shape[1], k_y=self.basis_y.shape[1],
                                canonical_correlations=np.zeros(0), extras=cca_extras(self))
        rho, weights = self._parts()
        total = weights.sum()
        return self._result(
            float(np.dot(weights, rho) / total) if total > 0 else np.nan,
            k_x=self.basis_x.shape[1],
            k_y=self.basis_y.shape[1],
            canonical_correlations=rho,
            extras={**cca_extras(self), "weighted_side": self.weighted_side},
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
    x, y = checked_rows(x, y, "pwcca")
    return PreparedPWCCA(x, y, variance=variance).result()
