"""The group (many-to-1) null's statistic: the hub side's distinct rows re-assigned to groups of pairs.

:func:`saesim.compare.nulls.permutation_test` with ``groups=`` permutes the distinct hub partners
among the groups of pairs that share one; :class:`GroupNull` scores a draw without rebuilding the
paired rows (the fixed side prepared once, the hub side as weighted distinct rows).

Private to :mod:`saesim.compare`; import the public names from :mod:`saesim.compare.nulls`.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.linalg.blas
import scipy.sparse as sp
import scipy.spatial.distance
import torch

from saesim.compare.geometry import RSM_DECIMALS, centred_rsm_ranks, prepare
from saesim.compare.subspace import (
    AUTHORS_VARIANCE,
    CONSTANT_RTOL,
    GRAM_RANK_RTOL,
    VARIANCE_RTOL,
    compress_columns,
    n_distinct_rows,
    n_kept,
    pca_basis,
    validate_variance,
)

EIGH_RTOL = 1e-4
"""The group null's SVCCA takes the covariance (eigh) route only when the smallest kept singular
value is at least this fraction of the largest; the route resolves singular values down to about
sqrt(d * eps) of the largest, so below that it takes the SVD."""


def validate_groups(groups, group_side, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Group of each pair, numbered 0..m-1 in order of first appearance."""
    if group_side not in ("x", "y"):
        raise ValueError(
            f"`group_side` must be 'x' or 'y' (the side whose rows `groups` labels); got {group_side!r}."
        )
    labels = np.asarray(groups)
    n = x.shape[0]
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(
            f"`groups` must be a 1-D array with one hub-partner label per pair ({n}); got shape "
            f"{labels.shape}. Pass the partner index of each pair, e.g. `pairs.a` for direction 'b_to_a'."
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"`groups` must hold integer labels (latent indices); got dtype {labels.dtype}. "
            "Pass e.g. `pairs.a`."
        )
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    numbered = rank[inverse.reshape(-1)]
    hub = x if group_side == "x" else y
    first_rows = np.sort(first)
    mismatch = np.flatnonzero(np.any(hub != hub[first_rows][numbered], axis=1))
    if mismatch.size:
        i = int(mismatch[0])
        raise ValueError(
            f"`groups` labels pairs {int(first_rows[numbered[i]])} and {i} with {labels[i]}, but their "
            f"`{group_side}` rows differ; pairs sharing a label must share their `{group_side}` row (the hub "
            f"partner). Pass the partner index of the side that repeats, or set `group_side`."
        )
    return numbered


def _float64_singular_values(matrix: torch.Tensor) -> np.ndarray:
    """Singular values of a float64 matrix, as the square roots of its smaller Gram's eigenvalues.

    About 1.4x faster than ``svdvals`` at 330 x 330; a singular value ``s`` comes out within
    about ``1e-16 / s`` of the SVD's (below 1e-8 as ``s`` goes to 0), far inside ``NULL_ATOL``.
    """
    gram = matrix @ matrix.mT if matrix.shape[0] <= matrix.shape[1] else matrix.mT @ matrix
    return np.sqrt(np.clip(torch.linalg.eigvalsh(gram).numpy(), 0.0, None))


class GroupNull:
    """Statistic of the group null: the hub side's distinct rows re-assigned to groups.

    ``score(perm)`` gives group ``perm[j]`` the hub row of partner ``j``, in
    float64. Partner ``j`` then appears ``w_j = sizes[perm[j]]`` times, so the
    hub side is its m distinct rows ``c`` (compressed to m x min(m, d)
    columns) with weights ``w``, and every product with the fixed side runs
    over its rows summed per group (``sums[perm[j]]`` meets ``c_j``). SVCCA:
    the weighted SVD of ``sqrt(w) (c - mean_w)`` gives the kept basis
    ``P / sqrt(w)`` and the canonical correlations are the singular values of
    ``(P / sqrt(w))^T sums(U_other)[perm]``. Linear CKA and Procrustes: the
    weighted covariance (Frobenius norm) or total variance, and
    ``c^T sums(Oc)[perm]``. RSA: the n(n-1)/2 RSM entries of the hub side are
    the m(m+1)/2 distinct ones with multiplicities ``w_j w_k`` (``w_j (w_j -
    1) / 2`` on the diagonal), ranked by weighted average ranks in an order
    sorted once; the inner product with the other side's ranks is
    ``0.5 <R, Q[perm][:, perm]>`` with ``Q`` the per-group block sums of the
    other side's ranked RSM. Every measure is symmetric in its two sides, so
    the hub may be ``x`` or ``y``; PWCCA (weights on one side) recomputes.
    """

    def __init__(self, x, y, labels, group_side, metric, options):
        self.x, self.y, self.side, self.metric, self.options = x, y, group_side, metric, dict(options)
        hub, other = (x, y) if group_side == "x" else (y, x)
        self.n = hub.shape[0]
        self.labels = labels
        self.n_groups = int(labels.max()) + 1
        self.sizes = np.bincount(labels, minlength=self.n_groups).astype(np.float64)
        self.distinct = hub[np.unique(labels, return_index=True)[1]]
        self.indicator = sp.csr_matrix((np.ones(self.n), (labels, np.arange(self.n))),
                                       shape=(self.n_groups, self.n))
        self.wide = hub.shape[0] < hub.shape[1]
        setup = {"svcca": self._setup_svcca, "rsa": self._setup_rsa, "linear_cka": self._setup_cka,
                 "procrustes": self._setup_procrustes}.get(metric)
        self._kernel = None if setup is None else setup(other)

    def _sums(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(self.indicator @ z)

    def _weighted(self, w: np.ndarray):
        """Weighted mean of the compressed distinct rows and ``sqrt(w) (c - mean)``."""
        mean = w @ self.factor / self.n
        return mean, np.sqrt(w)[:, None] * (self.factor - mean)

    # SVCCA
    def _setup_svcca(self, other):
        self.compat = bool(self.options.get("compat", False))
        self.variance = validate_variance(self.options.get("variance", 0.99), self.compat)
        self.factor = compress_columns(self.distinct)
        self.n_distinct = n_distinct_rows(self.distinct)  # the hub side's, whatever the draw
        self.raw_sq = np.sum(self.distinct**2, axis=1)
        self.other_sums = self._sums(pca_basis(other, self.variance, self.compat))
        return self._svcca

    def _svcca(self, perm, w, shared):
        # The draw's centred rows, total variance and weighted covariance depend on the hub side
        # and the draw only, so every SVCCA variant of one permutation_tests call shares them.
        if "svcca" not in shared:
            mean = w @ self.factor / self.n
            centred = self.factor - mean
            if self.wide:
                cov = None
                norm_sq = float(w @ np.einsum("ij,ij->i", centred, centred))
            else:
                # The lower triangle of sqrt(w) (c - mean) transposed times itself (BLAS syrk:
                # half the work of a product); its trace is the total variance.
                cov = scipy.linalg.blas.dsyrk(1.0, (centred * np.sqrt(w)[:, None]).T, trans=0, lower=1)
                norm_sq = float(np.trace(cov))
            constant = np.sqrt(norm_sq) <= CONSTANT_RTOL * np.sqrt(w @ self.raw_sq)
            shared["svcca"] = {"centred": centred, "norm_sq": norm_sq, "constant": constant, "cov": cov}
        moments = shared["svcca"]
        if moments["constant"]:
            return np.nan
        if self.wide:
            return self._svcca_svd(perm, w)
        # Tall: the eigenvectors of the d' x d' weighted covariance are the right singular vectors
        # of sqrt(w) (c - mean), about 3x cheaper than its SVD. Used when the covariance route
        # resolves the kept part; the authors' k = 1 needs only the top pair. The float64 products
        # and decompositions run in torch (MKL), about 1.3x faster here than numpy's LAPACK.
        centred, norm_sq, cov = moments["centred"], moments["norm_sq"], moments["cov"]
        if self.compat and AUTHORS_VARIANCE * norm_sq > 1.0 + VARIANCE_RTOL and "eigh" not in moments:
            # authors_k is 1 whenever the total variance exceeds 1 / 0.99.
            top = cov.shape[0] - 1
            value, vector = scipy.linalg.eigh(cov, subset_by_index=[top, top], driver="evr")
            s_top = np.sqrt(max(value[0], 0.0))
            if s_top * s_top < EIGH_RTOL**2 * norm_sq:
                return self._svcca_svd(perm, w)
            scores = centred @ vector[:, 0] / s_top
            return float(min(np.linalg.norm(scores @ self.other_sums[perm]), 1.0))
        if "eigh" not in moments:
            eigenvalues, vectors = torch.linalg.eigh(torch.from_numpy(cov), UPLO="L")
            singular_values = np.sqrt(np.clip(eigenvalues.numpy()[::-1], 0.0, None))
            moments["eigh"] = (singular_values, torch.flip(vectors, (1,)))
        s, vectors = moments["eigh"]
        k = n_kept(s, self.n, self.n_distinct, self.variance, self.compat)
        if s[k - 1] < EIGH_RTOL * s[0]:
            return self._svcca_svd(perm, w)
        other = torch.from_numpy(self.other_sums[perm])
        d, k_other = cov.shape[0], other.shape[1]
        if k * (d + k_other) < d * k_other:  # few kept dimensions: project the rows first
            whitened = (torch.from_numpy(centred) @ vectors[:, :k]).T @ other
        else:
            whitened = vectors[:, :k].T @ (torch.from_numpy(centred).T @ other)
        whitened /= torch.from_numpy(s[:k, None])
        return float(np.mean(np.minimum(_float64_singular_values(whitened), 1.0)))

    def _svcca_svd(self, perm, w):
        """The group null's SVCCA through the SVD of ``sqrt(w) (c - mean)`` (any shape, any rank)."""
        _, weighted = self._weighted(w)
        p, s, _ = np.linalg.svd(weighted, full_matrices=False)
        if self.wide:  # centred_svd's Gram route: singular values below its resolution are zero
            s = np.where(s <= GRAM_RANK_RTOL * s[0], 0.0, s)
        k = n_kept(s, self.n, self.n_distinct, self.variance, self.compat)
        basis = p[:, :k] / np.sqrt(w)[:, None]
        rho = np.linalg.svd(basis.T @ self.other_sums[perm], compute_uv=False)
        return float(np.mean(np.minimum(rho, 1.0)))

    # linear CKA and Procrustes
    def _setup_factors(self, other):
        self.factor = compress_columns(self.distinct)
        centred = other - other.mean(axis=0)
        factor_other = compress_columns(centred)
        self.other_sums = self._sums(factor_other)
        return factor_other

    def _setup_cka(self, other):
        factor_other = self._setup_factors(other)
        self.other_norm = np.linalg.norm(factor_other.T @ factor_other)
        return self._cka

    def _cka(self, perm, w, shared):
        mean, weighted = self._weighted(w)
        covariance = weighted.T @ weighted
        cross = self.factor.T @ self.other_sums[perm]
        return float(np.sum(cross**2) / (np.linalg.norm(covariance) * self.other_norm))

    def _setup_procrustes(self, other):
        factor_other = self._setup_factors(other)
        self.other_norm = np.linalg.norm(factor_other)
        return self._procrustes

    def _procrustes(self, perm, w, shared):
        _, weighted = self._weighted(w)
        cross = self.factor.T @ self.other_sums[perm]
        nuclear = np.sum(np.linalg.svd(cross, compute_uv=False))
        return float(nuclear / (np.linalg.norm(weighted) * self.other_norm))

    # RSA
    def _setup_rsa(self, other):
        centred = self.distinct - self.distinct.mean(axis=1, keepdims=True)
        unit = centred / np.linalg.norm(centred, axis=1)[:, None]
        m = self.n_groups
        rows, cols = np.triu_indices(m)
        keys = np.rint((unit @ unit.T)[rows, cols] * 10.0**RSM_DECIMALS).astype(np.int64)
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        # Read once per draw, so kept small: one byte per entry flags a new tie group, and the row
        # and column of an entry take two bytes each below 65 536 partners.
        self.tie_start = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]
        index_type = np.uint16 if m <= np.iinfo(np.uint16).max else np.int32
        self.rows_sorted, self.cols_sorted = rows[order].astype(index_type), cols[order].astype(index_type)
        ranks_other = centred_rsm_ranks(other)
        self.other_norm = np.linalg.norm(ranks_other)
        square = scipy.spatial.distance.squareform(ranks_other, checks=False)
        block_sums = np.asarray((self.indicator @ (self.indicator @ square).T).T)
        block_sums[np.diag_indices(m)] *= 0.5  # a diagonal block counts each pair once
        # Packed upper triangles, row by row: entry (a, b), a <= b, sits at offsets[a] + b.
        starts = np.arange(m, dtype=np.int64)
        self.offsets = starts * m - starts * (starts - 1) // 2 - starts
        self.blocks_packed = np.ascontiguousarray(block_sums[rows, cols])
        # The draw's centred ranks are multiples of 1/2 below n^2 / 4: exact in float32 up to
        # n ~ 5800 pairs, within 1e-7 (relative) beyond; float32 halves the scattered bytes.
        self.ranks_packed = np.empty(rows.size, dtype=np.float32)
        from saesim.compare._kernels import weighted_rank_inner

        self._rank_inner = weighted_rank_inner
        return self._rsa

    def _rsa(self, perm, w, shared):
        # One compiled pass over the distinct entries in the order they were sorted in once
        # (multiplicities, weighted average ranks, scattered to the groups of the draw), then the
        # dot product with the other side's block sums.
        inner, norm_sq = self._rank_inner(w, perm, self.rows_sorted, self.cols_sorted, self.tie_start,
                                          self.offsets, self.blocks_packed, self.ranks_packed,
                                          self.n * (self.n - 1) / 2)
        if norm_sq <= 0:
            return np.nan
        return float(inner / (np.sqrt(norm_sq) * self.other_norm))

    # any measure
    def rows(self, perm) -> tuple[np.ndarray, np.ndarray]:
        """The draw's ``(x, y)``, for recomputing from scratch."""
        hub = self.distinct[np.argsort(perm)[self.labels]]
        return (hub, self.y) if self.side == "x" else (self.x, hub)

    def recompute(self, perm) -> float:
        return prepare(*self.rows(perm), self.metric, **self.options).score()

    def score(self, perm, shared: dict | None = None) -> float:
        """The draw's statistic; ``shared`` carries work between measures of one draw."""
        if self._kernel is None:
            return self.recompute(perm)
        return self._kernel(perm, self.sizes[perm], {} if shared is None else shared)
