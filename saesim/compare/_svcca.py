"""SVCCA: the mean canonical correlation of the two sides' top principal subspaces (and the authors' k = 1).

Private to :mod:`saesim.compare`; import the public names from :mod:`saesim.compare.geometry`.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import torch

from saesim.compare._measure import PreparedMeasure, SimilarityResult, checked_rows, warn_degenerate
from saesim.compare._permuted import PermutedProduct
from saesim.compare.subspace import FactorCache, pca_basis, policy_label, validate_variance


DEFAULT_VARIANCE = 0.99
"""Default fraction of each side's variance kept by SVCCA's PCA step."""

_GRAM_EIG_MIN_RANK = 128
"""Matrices with at least this many singular values get them from their Gram's eigenvalues
(:func:`_singular_values`); smaller ones use an SVD."""


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


class PreparedSVCCA(PreparedMeasure):
    measure = "svcca"

    def __init__(self, x, y, *, variance=DEFAULT_VARIANCE, compat=False, cache: FactorCache | None = None):
        self.variance = validate_variance(variance, compat)
        self.compat = bool(compat)
        self.n_pairs = x.shape[0]
        self.x, self.y = x, y
        self.basis_x = pca_basis(x, self.variance, self.compat, cache)
        self.basis_y = pca_basis(y, self.variance, self.compat, cache)
        self.degenerate = self.basis_x.shape[1] == 0 or self.basis_y.shape[1] == 0
        if self.degenerate:
            warn_degenerate("svcca", "all rows of x or of y are identical (no variance)")

    @cached_property
    def _products(self) -> PermutedProduct:
        return PermutedProduct(self.basis_x, self.basis_y, self.x, self.y)

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
            extras=cca_extras(self),
        )


def cca_extras(prepared) -> dict:
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
    x, y = checked_rows(x, y, "svcca")
    return PreparedSVCCA(x, y, variance=variance, compat=compat).result()
