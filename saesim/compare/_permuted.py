"""Batched float32 statistics of permuted pairings: row-merged products and inner sums of permuted matrices.

Private to :mod:`saesim.compare`; import the public names from :mod:`saesim.compare.geometry`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


RSA_BLOCK_ROWS = 64
"""Rows of a permuted n x n matrix gathered at a time (RSA ranks, linear CKA Grams; bounds scratch)."""

SCRATCH_BYTES = 64 * 2**20
"""Scratch memory of one batch of permuted float32 products (:class:`PermutedProduct`)."""


def _distinct_rows(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First index of each distinct row of ``z``, and per row the position of its distinct row."""
    _, first, groups = np.unique(z, axis=0, return_index=True, return_inverse=True)
    return first, groups.reshape(-1)


class PermutedProduct:
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
        self.batch = max(1, SCRATCH_BYTES // (4 * (rows * k_right + 3 * k_left * k_right)))

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


class PermutedInner:
    """Batches of ``sum_ij x[i, j] y[perm[i], perm[j]]`` for symmetric n x n ``x`` and ``y``, in float32.

    By symmetry only the blocks of ``x`` on and right of the diagonal are
    needed (the ones right of it count twice); each block of ``RSA_BLOCK_ROWS``
    rows gathers the matching rows of ``y`` and, from them, the permuted
    columns. Blocks run outermost so that a block of ``x`` stays in cache
    across a batch of permutations. Each block's dot product is a float32 sum,
    the blocks add up in float64.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.y = np.ascontiguousarray(y, dtype=np.float32)
        self.blocks = []
        for start in range(0, x.shape[0], RSA_BLOCK_ROWS):
            stop = min(start + RSA_BLOCK_ROWS, x.shape[0])
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
