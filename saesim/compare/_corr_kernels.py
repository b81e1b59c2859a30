"""Array kernels of the sparse best-partner search: per-latent scales, blocks of B latents, exact top-m.

:func:`saesim.compare.corr.best_partners` (sparse path) and
:class:`saesim.compare.corr.CoactivationMoments` run on these: fp64 sums and scales of
non-negative CSR codes, blocks of B latents sized by their co-firing work, and the exact top-m
``(index, value)`` of every compressed segment (histogram pruning, then a small sort), merged into
running lists across blocks.

Private to :mod:`saesim.compare`; import the public names from :mod:`saesim.compare.corr`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def dead_tolerance(sumsq: np.ndarray) -> np.ndarray:
    """Sum of squared deviations at or below which a latent counts as dead."""
    return 1e-12 * np.maximum(sumsq, 1e-300)


def segment_ids(indptr: np.ndarray) -> np.ndarray:
    """Segment (row) number of every stored entry of a compressed matrix (int32)."""
    n_segments = indptr.shape[0] - 1
    return np.repeat(np.arange(n_segments, dtype=np.int32), np.diff(indptr))


def segment_top_m(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, m: int):
    """Top-m (index, value) per compressed segment, value descending, ties to lower index.

    ``indices`` must be sorted within each segment. Runs m passes of a
    segment-wise maximum, each O(nnz); no global sort.
    """
    n_segments = indptr.shape[0] - 1
    top_index = np.full((n_segments, m), -1, dtype=np.int64)
    top_value = np.full((n_segments, m), np.nan)
    lengths = np.diff(indptr)
    nonempty = np.flatnonzero(lengths > 0)
    if nonempty.size == 0:
        return top_index, top_value
    segment_of = segment_ids(indptr)
    remaining = values.astype(np.float64, copy=True)
    for slot in range(m):
        seg_max = np.maximum.reduceat(remaining, indptr[nonempty])
        full_max = np.full(n_segments, -np.inf)
        full_max[nonempty] = seg_max
        hits = np.flatnonzero((remaining == full_max[segment_of]) & np.isfinite(remaining))
        if hits.size == 0:
            break
        hit_segments = segment_of[hits]
        first = np.ones(hits.size, dtype=bool)
        first[1:] = hit_segments[1:] != hit_segments[:-1]
        chosen = hits[first]
        top_index[segment_of[chosen], slot] = indices[chosen]
        top_value[segment_of[chosen], slot] = remaining[chosen]
        remaining[chosen] = -np.inf
    return top_index, top_value


def canonical_csr(codes) -> sp.csr_matrix:
    """fp64 CSR without duplicate entries (the caller's arrays are never modified)."""
    codes = sp.csr_matrix(codes, dtype=np.float64)
    if not codes.has_canonical_format:
        codes = codes.copy()
        codes.sum_duplicates()
    return codes


def sparse_scales(codes: sp.csr_matrix):
    """Per-latent ``(sum, 1/sqrt(SS) with 0 for dead, dead)`` of non-negative CSR codes (fp64)."""
    n_tokens, n_latents = codes.shape
    sums = np.bincount(codes.indices, weights=codes.data, minlength=n_latents)
    sumsq = np.bincount(codes.indices, weights=codes.data * codes.data, minlength=n_latents)
    ss = np.maximum(sumsq - sums**2 / n_tokens, 0.0)
    dead = ss <= dead_tolerance(sumsq)
    inv_norm = np.zeros(n_latents)
    np.divide(1.0, np.sqrt(ss), out=inv_norm, where=~dead)
    return sums, inv_norm, dead


def work_blocks(codes_a: sp.csr_matrix, codes_b: sp.csr_matrix, block_size: int | None, block_work: int) -> np.ndarray:
    """Boundaries of blocks of B latents: ``block_size`` latents, or about ``block_work`` products each."""
    n_b = codes_b.shape[1]
    if n_b == 0:
        return np.zeros(1, dtype=np.int64)
    if block_size is not None:
        return np.append(np.arange(0, n_b, block_size), n_b)
    # products of B latent j: sum over the tokens it fires on of A's active count there
    per_token = np.diff(codes_a.indptr).astype(np.float64)
    work = np.bincount(codes_b.indices, weights=np.repeat(per_token, np.diff(codes_b.indptr)), minlength=n_b)
    cum = np.cumsum(work)
    n_blocks = max(1, int(np.ceil(cum[-1] / block_work)))
    cuts = np.searchsorted(cum, np.arange(1, n_blocks) * (cum[-1] / n_blocks), side="right")
    return np.unique(np.concatenate([[0], cuts, [n_b]]))


def r_bins(r: np.ndarray, n_bins: int) -> np.ndarray:
    """``ceil(r * n_bins)`` clamped to [0, n_bins] (intp): 0 exactly when r <= 0, non-decreasing in r."""
    bins = np.multiply(r, n_bins)
    np.ceil(bins, out=bins)
    np.fmax(bins, 0.0, out=bins)  # fmax also maps a nan to 0 (no partner)
    np.minimum(bins, n_bins, out=bins)
    return bins.astype(np.intp)


def top_m_unsorted(segment, index, value, bins, n_segments: int, m: int, n_bins: int, *, indptr=None):
    """Exact top-m ``(index, value)`` per segment among entries with ``bins >= 1``, in any order.

    Value descending, ties to the lower index (indices distinct within a segment);
    padded with -1 / nan. ``bins`` is a non-decreasing function of ``value`` in
    [0, n_bins]. When there are many entries, a per-segment histogram of ``bins``
    gives the bin of each segment's m-th largest value; entries below it cannot be
    in the top m and are dropped before the (small) sort. With ``indptr`` the
    segments are contiguous runs (``segment`` is then ignored and may be None).
    """
    top_index = np.full((n_segments, m), -1, dtype=np.int64)
    top_value = np.full((n_segments, m), np.nan)
    counts = None if indptr is None else np.diff(indptr)
    if value.size > n_segments * (n_bins + 1) // 8:
        if counts is None:
            key = np.multiply(segment, n_bins + 1, dtype=np.intp)
        else:
            key = np.repeat(np.arange(0, n_segments * (n_bins + 1), n_bins + 1, dtype=np.intp), counts)
        key += bins
        hist = np.bincount(key, minlength=n_segments * (n_bins + 1))
        del key
        at_least = np.cumsum(hist.reshape(n_segments, n_bins + 1)[:, :0:-1], axis=1)  # [:, c]: bins >= n_bins - c
        floor_bin = n_bins - np.argmax(at_least >= m, axis=1)
        floor_bin[at_least[:, -1] < m] = 1  # fewer than m positive entries: keep them all
        keep = np.flatnonzero(bins >= (floor_bin[segment] if counts is None else np.repeat(floor_bin, counts)))
    else:
        keep = np.flatnonzero(bins >= 1)
    if keep.size == 0:
        return top_index, top_value
    segment = segment[keep] if counts is None else np.searchsorted(indptr, keep, side="right") - 1
    index, value = index[keep], value[keep]
    order = np.lexsort((index, -value, segment))
    segment, index, value = segment[order], index[order], value[order]
    starts = np.flatnonzero(np.r_[True, segment[1:] != segment[:-1]])
    rank = np.arange(segment.size) - np.repeat(starts, np.diff(np.r_[starts, segment.size]))
    chosen = rank < m
    top_index[segment[chosen], rank[chosen]] = index[chosen]
    top_value[segment[chosen], rank[chosen]] = value[chosen]
    return top_index, top_value


def merge_top_m(run_index, run_value, new_index, new_value, rows) -> None:
    """Merge sorted top-m lists into the running ones (in place) for ``rows``.

    Every running entry has a lower index than every new one, so a stable sort
    with the running entries first sends ties to the lower index.
    """
    m = run_index.shape[1]
    index = np.concatenate([run_index[rows], new_index[rows]], axis=1)
    value = np.concatenate([run_value[rows], new_value[rows]], axis=1)
    order = np.argsort(np.where(index >= 0, -value, np.inf), axis=1, kind="stable")[:, :m]
    run_index[rows] = np.take_along_axis(index, order, axis=1)
    run_value[rows] = np.take_along_axis(value, order, axis=1)
