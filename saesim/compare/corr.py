"""Best-partner search: Pearson correlation of latents over tokens.

For every latent of model B, find the latent of model A whose activations
correlate best with it over the same token positions (the paper's "many-to-1"
pairing), and the reverse direction, plus the top-m candidates per latent that
the 1-1 pairing rules need.

Two exact paths give the same answers:

* the **sparse path** (default for non-negative scipy.sparse codes) never
  centres or densifies anything. With per-latent sums ``s`` and sums of
  squared deviations ``SS`` (fp64), ``u = 1/sqrt(SS)`` and the co-firing
  product ``S = A^T B``,

      r_ij = (S_ij - s_i s_j / T) / sqrt(SS_i SS_j)
           = (A u)_i^T (B v)_j  -  (s_i u_i) (s_j v_j / T),

  so both sides are scaled once, ``S`` is formed over co-firing pairs only,
  ``sum_t k_A(t) k_B(t)`` multiply-adds in blocks of B latents, and each stored
  entry gets its rank-one correction. A pair that never fires together has
  ``r_ij = -(mu_i / sigma_i)(mu_j / sigma_j) <= 0`` for non-negative codes, so
  every positive correlation, hence every partner and candidate, is a stored
  entry of ``S``; the dense ``n_A x n_B`` correction is never formed. Per
  block, the top-m of every B latent is exact (a histogram of r per latent
  discards entries below its m-th largest, the few left are sorted), and the
  A latents' running top-m absorb each block. :class:`CoactivationMoments` is
  the mergeable (token-chunked, multi-worker) form of the same moments.
* the **dense path** (torch; CUDA when available) z-scores both sides and
  multiplies blocks of B latents against all of A, keeping only the running
  maxima. It handles dense inputs such as ReLU pre-activations or codes with
  negative values, and implements ``compat=True``.

``compat=True`` reproduces the authors' ``batched_correlation`` exactly:
columns z-scored with the unbiased (ddof = 1) standard deviation plus 1e-8,
the product divided by T, dead columns giving r = 0, and plain argmax (so a
B latent whose correlations are all <= 0, a dead one included, still gets the
A latent with the largest value, ties going to the lowest index).

References
----------
Lan et al., "Sparse Autoencoders Reveal Universal Feature Spaces Across Large
Language Models", arXiv:2410.06981 (2024), Sec. 3.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.sparse as sp

from saesim.validation import check_codes, check_positive_int, check_same_rows
from saesim.compare._corr_kernels import (
    canonical_csr,
    dead_tolerance,
    merge_top_m,
    r_bins,
    segment_ids,
    segment_top_m,
    sparse_scales,
    top_m_unsorted,
    work_blocks,
)
from saesim.compare._corr_kernels import r_bins as _r_bins  # noqa: F401  (old name, used by tests)
from saesim.compare._corr_kernels import top_m_unsorted as _top_m_unsorted  # noqa: F401  (old name, used by tests)

__all__ = [
    "AUTHORS_EPS",
    "BestPartners",
    "CoactivationMoments",
    "CoactivationCorrelation",
    "DeadLatentWarning",
    "best_partners",
    "quiet_best_partners",
]

AUTHORS_EPS = 1e-8
"""The constant the authors add to the standard deviation before z-scoring."""

DEFAULT_TOP_M = 8
"""Default number of candidate partners kept per latent (for 1-1 rules)."""

DEFAULT_CHUNK_ROWS = 65_536
"""Token rows per accumulator update in :func:`best_partners` (bounds SpGEMM scratch)."""

DEFAULT_BLOCK = 1024
"""B latents per block on the dense path."""

DEFAULT_BLOCK_WORK = 1 << 18
"""Co-firing multiply-adds per block of B latents on the sparse path (about as many
stored entries, so a block's arrays stay in cache; random TopK codes, k = 32, 8 192
latents: about 100 B latents a block)."""

_R_BINS = 1024
"""Histogram bins over r in (0, 1] used to discard entries below a latent's m-th largest."""

Backend = Literal["auto", "sparse", "dense"]


class DeadLatentWarning(UserWarning):
    """Some latents never vary over the tokens (dead); they get no partner."""


@dataclass(frozen=True)
class BestPartners:
    """Best partners in both directions, with top-m candidates.

    Attributes
    ----------
    index : ndarray of int64, shape (n_b,)
        For each latent of B, the latent of A with the highest Pearson r;
        -1 where none (dead, or best r <= 0 unless ``compat``).
    r : ndarray of float64, shape (n_b,)
        That correlation; nan where ``index`` is -1.
    index_a, r_a : ndarray, shape (n_a,)
        The same for each latent of A (its best latent of B).
    dead_a, dead_b : ndarray of bool
        Zero-variance latents on each side.
    top_index : ndarray of int64, shape (n_b, m)
        The top-m A candidates of each B latent, r descending (ties to the
        lower index), padded with -1. Without ``compat`` only r > 0 entries.
    top_r : ndarray of float64, shape (n_b, m)
        Their correlations, padded with nan.
    top_index_a, top_r_a : ndarray, shape (n_a, m)
        The top-m B candidates of each A latent.
    n_tokens : int
        Token rows the correlations were computed over.
    compat : bool
        Whether the authors' ``batched_correlation`` semantics were used.
    """

    index: np.ndarray
    r: np.ndarray
    index_a: np.ndarray
    r_a: np.ndarray
    dead_a: np.ndarray
    dead_b: np.ndarray
    top_index: np.ndarray
    top_r: np.ndarray
    top_index_a: np.ndarray
    top_r_a: np.ndarray
    n_tokens: int
    compat: bool = False
    backend: str = field(default="sparse", compare=False)

    @property
    def n_a(self) -> int:
        """Number of latents of A."""
        return int(self.dead_a.shape[0])

    @property
    def n_b(self) -> int:
        """Number of latents of B."""
        return int(self.dead_b.shape[0])

    @property
    def m(self) -> int:
        """Number of candidates kept per latent."""
        return int(self.top_index.shape[1])

    def reversed(self) -> "BestPartners":
        """The same result with the roles of A and B swapped."""
        return BestPartners(
            index=self.index_a,
            r=self.r_a,
            index_a=self.index,
            r_a=self.r,
            dead_a=self.dead_b,
            dead_b=self.dead_a,
            top_index=self.top_index_a,
            top_r=self.top_r_a,
            top_index_a=self.top_index,
            top_r_a=self.top_r,
            n_tokens=self.n_tokens,
            compat=self.compat,
            backend=self.backend,
        )

    def mean_r(self) -> float:
        """Mean best-partner r over the B latents that have a partner.

        Under ``compat`` this is the authors' ``mean_actv_corr``: the mean over
        all B latents, dead ones counted as r = 0.
        """
        if self.compat:
            return float(np.mean(self.r)) if self.r.size else float("nan")
        valid = self.index >= 0
        return float(np.mean(self.r[valid])) if valid.any() else float("nan")

    def summary(self) -> dict:
        """Counts for a tidy table row."""
        return {
            "n_tokens": self.n_tokens,
            "n_latents_a": self.n_a,
            "n_latents_b": self.n_b,
            "dead_a": int(self.dead_a.sum()),
            "dead_b": int(self.dead_b.sum()),
            "with_partner_b": int((self.index >= 0).sum()),
            "unique_partners_a": int(np.unique(self.index[self.index >= 0]).size),
            "mean_best_r": self.mean_r(),
            "compat": self.compat,
        }


@dataclass(frozen=True)
class CoactivationCorrelation:
    """Pearson r of every co-firing latent pair (sparse), plus dead masks.

    ``r_by_b`` is an (n_b, n_a) CSR matrix: row j holds the correlations of B
    latent j with the A latents it fires together with at least once (A
    indices sorted). Every other pair of non-negative codes has r <= 0.
    """

    r_by_b: sp.csr_matrix
    dead_a: np.ndarray
    dead_b: np.ndarray
    n_tokens: int

    @property
    def r(self) -> sp.csc_matrix:
        """The same correlations as an (n_a, n_b) matrix (a transposed view)."""
        return self.r_by_b.T

    def best_partners(self, *, m: int = DEFAULT_TOP_M) -> BestPartners:
        """Best partners (r > 0 only) and top-m candidates in both directions."""
        check_positive_int(m, "m", fix=f"Pass the candidates per latent, e.g. m={DEFAULT_TOP_M}.")
        n_b, n_a = self.r_by_b.shape
        segment = segment_ids(self.r_by_b.indptr)
        keep = self.r_by_b.data > 0
        keep &= ~self.dead_a[self.r_by_b.indices]
        keep &= ~self.dead_b[segment]
        indptr = np.zeros(n_b + 1, dtype=np.int64)
        np.cumsum(np.bincount(segment[keep], minlength=n_b), out=indptr[1:])
        positive = sp.csr_matrix((self.r_by_b.data[keep], self.r_by_b.indices[keep], indptr), shape=(n_b, n_a))
        del segment, keep
        top_index, top_r = segment_top_m(positive.indptr, positive.indices, positive.data, m)
        by_a = positive.T.tocsr()  # (n_a, n_b), column indices sorted by construction
        del positive
        top_index_a, top_r_a = segment_top_m(by_a.indptr, by_a.indices, by_a.data, m)
        return BestPartners(
            index=top_index[:, 0].copy(),
            r=top_r[:, 0].copy(),
            index_a=top_index_a[:, 0].copy(),
            r_a=top_r_a[:, 0].copy(),
            dead_a=self.dead_a,
            dead_b=self.dead_b,
            top_index=top_index,
            top_r=top_r,
            top_index_a=top_index_a,
            top_r_a=top_r_a,
            n_tokens=self.n_tokens,
            compat=False,
            backend="sparse",
        )


class CoactivationMoments:
    """Mergeable Pearson moments of two sparse, non-negative code matrices.

    State: token count, per-latent sums and sums of squares (fp64), and the
    sparse cross moment ``M = sum_t a_t b_t^T`` over co-firing pairs, stored
    B-major as an (n_b, n_a) CSR matrix. Chunks of token rows are added with
    :meth:`update`; partial states from other workers are combined with
    :meth:`merge`; :meth:`result` applies the rank-one mean correction.

    Parameters
    ----------
    n_a, n_b : int
        Number of latents of A and B.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> rng = np.random.default_rng(0)
    >>> a = sp.random(200, 6, density=0.3, random_state=rng, format="csr")
    >>> b = sp.csr_matrix(a[:, ::-1].toarray() + 0.01 * (a[:, ::-1].toarray() > 0))
    >>> moments = CoactivationMoments(6, 6).update(a[:100], b[:100]).update(a[100:], b[100:])
    >>> moments.result().best_partners(m=1).index.tolist()
    [5, 4, 3, 2, 1, 0]
    """

    def __init__(self, n_a: int, n_b: int):
        self.n_a = int(n_a)
        self.n_b = int(n_b)

    def _init_state(self) -> None:
        self.n_tokens_ = 0
        self.sum_a_ = np.zeros(self.n_a)
        self.sumsq_a_ = np.zeros(self.n_a)
        self.sum_b_ = np.zeros(self.n_b)
        self.sumsq_b_ = np.zeros(self.n_b)
        self.cross_ = None  # (n_b, n_a) CSR, fp64; None until the first update

    def _add_cross(self, cross: sp.csr_matrix) -> None:
        self.cross_ = cross if self.cross_ is None else (self.cross_ + cross).tocsr()

    def update(self, codes_a, codes_b) -> "CoactivationMoments":
        """Add a chunk of token rows (aligned rows of A and B codes)."""
        codes_a = _as_nonnegative_csr(codes_a, name="codes_a")
        codes_b = _as_nonnegative_csr(codes_b, name="codes_b")
        check_same_rows(codes_a, codes_b, name_a="codes_a", name_b="codes_b")
        for name, codes, n in (("codes_a", codes_a, self.n_a), ("codes_b", codes_b, self.n_b)):
            if codes.shape[1] != n:
                raise ValueError(
                    f"`{name}` has {codes.shape[1]} latents but the accumulator was built for {n}; "
                    "use one accumulator per (SAE A, SAE B) pair."
                )
        if not hasattr(self, "n_tokens_"):
            self._init_state()
        self.n_tokens_ += codes_a.shape[0]
        self.sum_a_ += np.asarray(codes_a.sum(axis=0)).ravel()
        self.sumsq_a_ += np.asarray(codes_a.multiply(codes_a).sum(axis=0)).ravel()
        self.sum_b_ += np.asarray(codes_b.sum(axis=0)).ravel()
        self.sumsq_b_ += np.asarray(codes_b.multiply(codes_b).sum(axis=0)).ravel()
        self._add_cross(codes_b.T.tocsr() @ codes_a)
        return self

    def merge(self, other: "CoactivationMoments") -> "CoactivationMoments":
        """Combine another accumulator's partial state into this one."""
        if (other.n_a, other.n_b) != (self.n_a, self.n_b):
            raise ValueError(
                f"cannot merge moments for {other.n_a}x{other.n_b} latents into {self.n_a}x{self.n_b}; "
                "both accumulators must compare the same two SAEs."
            )
        if not hasattr(other, "n_tokens_"):
            return self
        if not hasattr(self, "n_tokens_"):
            self._init_state()
        self.n_tokens_ += other.n_tokens_
        self.sum_a_ += other.sum_a_
        self.sumsq_a_ += other.sumsq_a_
        self.sum_b_ += other.sum_b_
        self.sumsq_b_ += other.sumsq_b_
        if other.cross_ is not None:
            self._add_cross(other.cross_)
        return self

    def result(self) -> CoactivationCorrelation:
        """Correlations of all co-firing pairs (rank-one mean correction)."""
        if not hasattr(self, "n_tokens_"):
            raise RuntimeError("CoactivationMoments.result() called before any update(); add token rows first.")
        n = float(self.n_tokens_)
        ss_a = np.maximum(self.sumsq_a_ - self.sum_a_**2 / n, 0.0)
        ss_b = np.maximum(self.sumsq_b_ - self.sum_b_**2 / n, 0.0)
        dead_a = ss_a <= dead_tolerance(self.sumsq_a_)
        dead_b = ss_b <= dead_tolerance(self.sumsq_b_)
        cross = self.cross_
        cross.sum_duplicates()
        cross.sort_indices()
        a_of = cross.indices
        b_of = segment_ids(cross.indptr)
        # r = (M - s_a s_b / T) / sqrt(SS_a SS_b), computed in place on one copy of M.
        r = cross.data - self.sum_a_[a_of] * (self.sum_b_ / n)[b_of]
        with np.errstate(divide="ignore", invalid="ignore"):
            r /= np.sqrt(ss_a[a_of] * ss_b[b_of])
        np.clip(r, -1.0, 1.0, out=r)
        r[dead_a[a_of] | dead_b[b_of]] = 0.0
        r_by_b = sp.csr_matrix((r, a_of.copy(), cross.indptr.copy()), shape=cross.shape)
        return CoactivationCorrelation(r_by_b=r_by_b, dead_a=dead_a, dead_b=dead_b, n_tokens=int(n))


def best_partners(
    codes_a,
    codes_b,
    *,
    compat: bool = False,
    m: int = DEFAULT_TOP_M,
    backend: Backend = "auto",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    block_size: int | None = None,
    device: str | None = None,
) -> BestPartners:
    """Find each latent's best-correlated partner in the other model.

    Parameters
    ----------
    codes_a : scipy.sparse matrix or ndarray, shape (n_tokens, n_a)
        Codes of model A (rows = token positions).
    codes_b : scipy.sparse matrix or ndarray, shape (n_tokens, n_b)
        Codes of model B on the same token rows.
    compat : bool, default False
        Reproduce the authors' ``batched_correlation`` (see module notes);
        runs on the dense path.
    m : int, default 8
        Candidates kept per latent in each direction (for 1-1 rules).
    backend : {"auto", "sparse", "dense"}, default "auto"
        "auto" takes the sparse path for non-negative sparse input without
        ``compat``, the dense path otherwise.
    chunk_rows : int, default 65536
        Token rows per sparse product on the sparse path (longer inputs are
        multiplied chunk by chunk and summed; the answer does not change).
    block_size : int, optional
        B latents per block. By default 1024 on the dense path and, on the
        sparse path, as many as make about ``DEFAULT_BLOCK_WORK`` co-firing
        multiply-adds. Any value gives the same answer.
    device : str, optional
        Torch device for the dense path; CUDA when available by default.

    Returns
    -------
    BestPartners

    Raises
    ------
    ValueError
        On mismatched rows, NaN/inf, non-2-D input, a non-positive
        ``chunk_rows`` or ``block_size``, or the sparse backend asked for
        codes with negative values.

    Warns
    -----
    DeadLatentWarning
        When some latents are dead (they get no partner).

    Notes
    -----
    Pearson ``r_ij = (S_ij - T mu_i mu_j) / (T sigma_i sigma_j)`` with
    ``S = A^T B``. On the sparse path only the stored (co-firing) entries of
    ``S`` are corrected and ranked: every other pair has
    ``r = -(mu_i/sigma_i)(mu_j/sigma_j) <= 0`` and can be nobody's partner,
    since partners need r > 0 (see the module notes). Ties go to the lower
    index; dead latents (zero variance) have and are no partner.
    ``compat=True`` instead keeps the authors' plain argmax (see the module
    notes).

    References
    ----------
    Lan et al., arXiv:2410.06981 (2024), Sec. 3.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> a = rng.exponential(size=(500, 4)) * (rng.random((500, 4)) < 0.2)
    >>> best = best_partners(a, a[:, [2, 0, 3, 1]] * 2.0, m=2)
    >>> best.index.tolist(), np.round(best.r, 6).tolist()
    ([2, 0, 3, 1], [1.0, 1.0, 1.0, 1.0])
    """
    codes_a = check_codes(codes_a, name="codes_a")
    codes_b = check_codes(codes_b, name="codes_b")
    check_same_rows(codes_a, codes_b, name_a="codes_a", name_b="codes_b")
    check_positive_int(m, "m", fix=f"Pass the candidates per latent, e.g. m={DEFAULT_TOP_M}.")
    if backend not in ("auto", "sparse", "dense"):
        raise ValueError(f"`backend` must be one of 'auto', 'sparse', 'dense'; got {backend!r}.")
    if codes_a.shape[0] == 0:
        raise ValueError("`codes_a` and `codes_b` have no token rows; extract codes on a non-empty TokenGrid.")
    sparse_ok = sp.issparse(codes_a) and sp.issparse(codes_b) and _nonnegative(codes_a) and _nonnegative(codes_b)
    if backend == "sparse" and compat:
        raise ValueError("`compat=True` runs on the dense path; use backend='auto' or 'dense'.")
    if backend == "sparse" and not (_nonnegative(codes_a) and _nonnegative(codes_b)):
        raise ValueError(
            "the sparse backend needs non-negative codes (SAE latents); these have negative values. "
            "Use backend='dense'."
        )
    check_positive_int(chunk_rows, "chunk_rows",
                       fix=f"Pass the token rows per sparse product, e.g. chunk_rows={DEFAULT_CHUNK_ROWS}.")
    if block_size is not None:
        check_positive_int(block_size, "block_size",
                           fix=f"Pass the B latents per block, e.g. block_size={DEFAULT_BLOCK}, or None.")
    use_sparse = backend == "sparse" or (backend == "auto" and sparse_ok and not compat)
    if use_sparse:
        result = _sparse_best_partners(codes_a, codes_b, m=m, block_size=block_size, chunk_rows=chunk_rows)
    else:
        result = _dense_best_partners(
            codes_a, codes_b, compat=compat, m=m, block_size=block_size or DEFAULT_BLOCK, device=device
        )
    n_dead_a, n_dead_b = int(result.dead_a.sum()), int(result.dead_b.sum())
    if n_dead_a or n_dead_b:
        warnings.warn(
            f"{n_dead_a} latents of A and {n_dead_b} of B are dead (zero variance over "
            f"{result.n_tokens} tokens); they get no partner"
            + (" (compat: they count as r = 0)." if compat else "."),
            DeadLatentWarning,
            stacklevel=2,
        )
    return result


def quiet_best_partners(codes_a, codes_b, **kwargs) -> BestPartners:
    """:func:`best_partners` without the :class:`DeadLatentWarning`: tidy records carry ``dead_a`` / ``dead_b`` instead."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeadLatentWarning)
        return best_partners(codes_a, codes_b, **kwargs)


# --------------------------------------------------------------------------- helpers


def _nonnegative(codes) -> bool:
    data = codes.data if sp.issparse(codes) else codes
    return bool(data.size == 0 or data.min() >= 0)


def _as_nonnegative_csr(codes, *, name: str) -> sp.csr_matrix:
    codes = check_codes(codes, name=name)
    if not sp.issparse(codes):
        codes = sp.csr_matrix(codes)
    if not _nonnegative(codes):
        raise ValueError(
            f"`{name}` has negative values; co-activation moments are exact only for non-negative "
            "codes. Use best_partners(..., backend='dense')."
        )
    return codes.astype(np.float64)


def _sparse_best_partners(codes_a, codes_b, *, m: int, block_size: int | None, chunk_rows: int) -> BestPartners:
    """Sparse path: scaled co-firing products in blocks of B latents, exact top-m both ways.

    For each block of B latents: ``S = (B v)_blk^T (A u)`` (stored entries are the
    co-firing pairs), ``r = S - (s_a u) (s_b v / T)`` on the stored entries, clip at 1,
    the block's B latents' top-m (complete: all their entries are in the block),
    and the A latents' running top-m updated with the entries that beat their
    current m-th value (blocks go in B order, so ties keep the earlier one).
    Dead latents have u = 0 and s u = 0, so all their r are 0: never a partner.
    """
    a, b = canonical_csr(codes_a), canonical_csr(codes_b)
    n_tokens, n_a = a.shape
    n_b = b.shape[1]
    sum_a, inv_a, dead_a = sparse_scales(a)
    sum_b, inv_b, dead_b = sparse_scales(b)
    shift_a = sum_a * inv_a  # s_i u_i
    shift_b = sum_b / n_tokens * inv_b  # s_j v_j / T
    a_scaled = sp.csr_matrix((a.data * inv_a[a.indices], a.indices, a.indptr), shape=a.shape)
    b_scaled = sp.csr_matrix((b.data * inv_b[b.indices], b.indices, b.indptr), shape=b.shape)
    chunks = [(a_scaled[lo:lo + chunk_rows], b_scaled[lo:lo + chunk_rows].T.tocsr())
              for lo in range(0, n_tokens, chunk_rows)]
    bounds = work_blocks(a, b, block_size, DEFAULT_BLOCK_WORK)
    del a, b, a_scaled, b_scaled
    coarse = _R_BINS // 16  # A side: fewer segments' worth of bins per block
    top_index = np.full((n_b, m), -1, dtype=np.int64)
    top_r = np.full((n_b, m), np.nan)
    top_index_a = np.full((n_a, m), -1, dtype=np.int64)
    top_r_a = np.full((n_a, m), np.nan)
    beat_a = np.zeros(n_a)  # an entry must exceed this to enter A latent i's top m (0 until it is full)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        cross = chunks[0][1][lo:hi] @ chunks[0][0]
        for chunk_a, chunk_bt in chunks[1:]:
            cross = cross + chunk_bt[lo:hi] @ chunk_a
        cross = sp.csr_matrix(cross)
        a_of = cross.indices
        r = cross.data
        r -= shift_a[a_of] * np.repeat(shift_b[lo:hi], np.diff(cross.indptr))
        np.minimum(r, 1.0, out=r)
        bins = r_bins(r, _R_BINS)
        top_index[lo:hi], top_r[lo:hi] = top_m_unsorted(
            None, a_of, r, bins, hi - lo, m, _R_BINS, indptr=cross.indptr
        )
        enter = np.flatnonzero(r > beat_a[a_of])
        if enter.size:
            b_of = np.searchsorted(cross.indptr, enter, side="right") - 1 + lo
            new_index, new_r = top_m_unsorted(
                a_of[enter], b_of, r[enter], (bins[enter] + 15) // 16, n_a, m, coarse
            )
            touched = np.flatnonzero(new_index[:, 0] >= 0)
            merge_top_m(top_index_a, top_r_a, new_index, new_r, touched)
            full = top_index_a[touched, -1] >= 0
            beat_a[touched[full]] = top_r_a[touched[full], -1]
    return BestPartners(
        index=top_index[:, 0].copy(),
        r=top_r[:, 0].copy(),
        index_a=top_index_a[:, 0].copy(),
        r_a=top_r_a[:, 0].copy(),
        dead_a=dead_a,
        dead_b=dead_b,
        top_index=top_index,
        top_r=top_r,
        top_index_a=top_index_a,
        top_r_a=top_r_a,
        n_tokens=int(n_tokens),
        compat=False,
        backend="sparse",
    )


def _torch_device(device: str | None):
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _dense_block(codes, start: int, stop: int, dtype, device):
    """Columns [start, stop) of a sparse or dense matrix as a dense torch tensor."""
    import torch

    block = codes[:, start:stop]
    block = block.toarray() if sp.issparse(block) else np.asarray(block)
    return torch.as_tensor(np.ascontiguousarray(block), dtype=dtype, device=device)


def _zscore(x, *, compat: bool):
    """Column z-scores; returns (z, dead). compat: ddof=1 std + 1e-8 (the authors')."""
    import torch

    mean = x.mean(dim=0, keepdim=True)
    centred = x - mean
    if compat:
        std = x.std(dim=0, unbiased=True, keepdim=True) if x.shape[0] > 1 else torch.zeros_like(mean)
        std = torch.nan_to_num(std, nan=0.0)
        dead = (std == 0).squeeze(0)
        return centred / (std + AUTHORS_EPS), dead
    ss = (centred * centred).sum(dim=0, keepdim=True)
    scale = (x * x).sum(dim=0, keepdim=True)
    dead = (ss <= 1e-12 * torch.clamp(scale, min=1e-300)).squeeze(0)
    norm = torch.sqrt(torch.where(dead.unsqueeze(0), torch.ones_like(ss), ss))
    z = torch.where(dead.unsqueeze(0), torch.zeros_like(centred), centred / norm)
    return z, dead


def _dense_best_partners(codes_a, codes_b, *, compat, m, block_size, device) -> BestPartners:
    """Dense torch path: blocks of B latents against all of A, running maxima only.

    Best partners use first-occurrence argmax (``torch.max``), exactly the
    authors' semantics under ``compat``; candidates use ``torch.topk``.
    """
    import torch

    device = _torch_device(device)
    # compat keeps the authors' fp32; otherwise fp64 on CPU, fp32 (no TF32) on GPU.
    dtype = torch.float32 if compat or device.type != "cpu" else torch.float64
    n_tokens, n_a = codes_a.shape
    n_b = codes_b.shape[1]
    z_a, dead_a = _zscore(_dense_block(codes_a, 0, n_a, dtype, device), compat=compat)
    # compat divides the z-score product by T; otherwise z columns have unit norm.
    scale = 1.0 / n_tokens if compat else 1.0
    m_b, m_a = min(m, n_a), min(m, n_b)
    index_b = np.empty(n_b, dtype=np.int64)
    r_b = np.empty(n_b)
    top_index = np.full((n_b, m), -1, dtype=np.int64)
    top_r = np.full((n_b, m), np.nan)
    best_r_a = torch.full((n_a,), -torch.inf, dtype=dtype, device=device)
    best_index_a = torch.zeros(n_a, dtype=torch.int64, device=device)
    run_r_a = torch.full((n_a, m_a), -torch.inf, dtype=dtype, device=device)
    run_index_a = torch.full((n_a, m_a), -1, dtype=torch.int64, device=device)
    dead_b = np.zeros(n_b, dtype=bool)
    for start in range(0, n_b, block_size):
        stop = min(start + block_size, n_b)
        z_b, dead_blk = _zscore(_dense_block(codes_b, start, stop, dtype, device), compat=compat)
        dead_b[start:stop] = dead_blk.cpu().numpy()
        corr = (z_a.T @ z_b) * scale  # (n_a, block)
        if not compat:  # dead latents are nobody's partner
            corr = corr.masked_fill(dead_a.unsqueeze(1), -torch.inf).masked_fill(dead_blk.unsqueeze(0), -torch.inf)
        values, indices = torch.max(corr, dim=0)
        index_b[start:stop] = indices.cpu().numpy()
        r_b[start:stop] = values.double().cpu().numpy()
        cand_values, cand_indices = torch.topk(corr, m_b, dim=0)
        top_index[start:stop, :m_b] = cand_indices.T.cpu().numpy()
        top_r[start:stop, :m_b] = cand_values.T.double().cpu().numpy()
        # A -> B: strict ">" keeps the first (lowest-index) maximum across blocks.
        row_values, row_indices = torch.max(corr, dim=1)
        better = row_values > best_r_a
        best_r_a = torch.where(better, row_values, best_r_a)
        best_index_a = torch.where(better, row_indices + start, best_index_a)
        k_blk = min(m_a, stop - start)
        blk_values, blk_indices = torch.topk(corr, k_blk, dim=1)
        merged_values = torch.cat([run_r_a, blk_values], dim=1)
        merged_indices = torch.cat([run_index_a, blk_indices + start], dim=1)
        run_r_a, order = torch.topk(merged_values, m_a, dim=1)
        run_index_a = torch.gather(merged_indices, 1, order)
    top_index_a = np.full((n_a, m), -1, dtype=np.int64)
    top_r_a = np.full((n_a, m), np.nan)
    top_index_a[:, :m_a] = run_index_a.cpu().numpy()
    top_r_a[:, :m_a] = run_r_a.double().cpu().numpy()
    index_a, r_a = best_index_a.cpu().numpy(), best_r_a.double().cpu().numpy()
    if not compat:  # only positive correlations make partners
        index_b, r_b = _positive_only(index_b, r_b)
        index_a, r_a = _positive_only(index_a, r_a)
        top_index, top_r = _positive_only(top_index, top_r)
        top_index_a, top_r_a = _positive_only(top_index_a, top_r_a)
    return BestPartners(
        index=index_b,
        r=r_b,
        index_a=index_a,
        r_a=r_a,
        dead_a=dead_a.cpu().numpy(),
        dead_b=dead_b,
        top_index=top_index,
        top_r=top_r,
        top_index_a=top_index_a,
        top_r_a=top_r_a,
        n_tokens=int(n_tokens),
        compat=compat,
        backend=f"dense:{device.type}",
    )


def _positive_only(index: np.ndarray, r: np.ndarray):
    """Replace entries with r <= 0 (or nan/-inf) by index -1 and r nan."""
    keep = np.nan_to_num(r, nan=-np.inf) > 0
    return np.where(keep, index, -1), np.where(keep, r, np.nan)
