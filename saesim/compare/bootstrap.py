"""The array side of a document bootstrap: document groups, candidate pairs, per-document moments, intervals.

What :func:`saesim.experiments.bootstrap.bootstrap_ci` needs from the codes. A
bootstrap resample takes whole documents with replacement; for sparse SAE
codes its correlations follow from per-document sums
(:class:`DocumentMoments`) over the full-sample candidate pairs
(:func:`candidate_pairs`), for dense codes (raw neurons) from every pair's
sums (:class:`DenseDocumentMoments`), so a resample costs a few sparse
matrix-vector products, not a pass over the token rows.
:func:`recentred_interval` turns the resamples' scores into an interval.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from saesim.compare.corr import DEFAULT_TOP_M, BestPartners, CoactivationMoments

__all__ = [
    "BOOT_CANDIDATES",
    "CI_METHOD",
    "CROSS_CHUNK_NNZ",
    "DenseDocumentMoments",
    "DocumentMoments",
    "candidate_pairs",
    "document_groups",
    "document_rows",
    "recentred_interval",
]

BOOT_CANDIDATES = 64
"""Full-sample candidate partners per latent among which a fast bootstrap resample re-chooses partners.

Long lists because weakly paired latents need them (see
:func:`saesim.experiments.bootstrap.bootstrap_ci`, Notes): with 8 candidates a
resample's first-index scores move by up to 0.005 (SVCCA) and 0.011 (RSA)
against the exact path on a planted pair of offline-profile size, with 64 by
at most 0.0012 and 0.0017.
"""

CROSS_CHUNK_NNZ = 20_000_000
"""Gathered code entries per chunk of candidate pairs when :class:`DocumentMoments` sums cross products."""

CI_METHOD = "percentile, recentred on the estimate (median-bias corrected)"
"""How :func:`saesim.experiments.bootstrap.bootstrap_ci` turns resamples into an interval (``ci_method``)."""


def document_groups(row_doc, n_tokens: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows sorted by document, and each document's start and length in that order.

    Parameters
    ----------
    row_doc : array_like of int, shape (n_tokens,)
        Document of every code row.
    n_tokens : int
        Rows of the codes ``row_doc`` must cover.

    Returns
    -------
    order, starts, lengths : ndarray of int
        ``order`` sorts the rows by document (stably); document ``d`` (in
        sorted order) holds ``order[starts[d]:starts[d] + lengths[d]]``.

    Raises
    ------
    ValueError
        If ``row_doc`` is not 1-D with one entry per row.
    """
    row_doc = np.asarray(row_doc)
    if row_doc.ndim != 1 or row_doc.size != n_tokens:
        raise ValueError(
            f"`row_doc` must give the document of every code row ({n_tokens} rows); got shape "
            f"{row_doc.shape}. Use row_documents(profile, cache=...) or grid.doc_pos(rows)[0]."
        )
    order = np.argsort(row_doc, kind="stable")
    _, starts, lengths = np.unique(row_doc[order], return_index=True, return_counts=True)
    return order, starts, lengths


def document_rows(draw, order, starts, lengths) -> np.ndarray:
    """The rows of the documents ``draw`` (indices into ``starts``), in draw order, repeats kept."""
    return np.concatenate([order[starts[d]:starts[d] + lengths[d]] for d in draw])


def candidate_pairs(best: BestPartners) -> tuple[np.ndarray, np.ndarray]:
    """Every (A, B) latent pair on a top-m candidate list of either side, once each.

    Parameters
    ----------
    best : BestPartners
        Full-sample best partners; ``top_index`` (each B latent's A
        candidates) and ``top_index_a`` (each A latent's B candidates) give
        the pairs, -1 padding left out.

    Returns
    -------
    pair_a, pair_b : ndarray of int64
        The pairs, sorted by B latent then A latent (the entry order of an
        (n_b, n_a) CSR matrix).
    """
    a = np.concatenate([best.top_index.ravel(), np.repeat(np.arange(best.n_a), best.top_index_a.shape[1])])
    b = np.concatenate([np.repeat(np.arange(best.n_b), best.top_index.shape[1]), best.top_index_a.ravel()])
    listed = (a >= 0) & (b >= 0)
    key = np.unique(b[listed] * best.n_a + a[listed])
    return key % best.n_a, key // best.n_a


class DocumentMoments:
    """Per-document sums from which the Pearson r of candidate pairs follows for any document resample.

    A bootstrap resample takes document d ``c[d]`` times, so every moment of
    its Pearson r is a count-weighted sum of per-document sums: the token
    count ``c @ doc_tokens``, each latent's ``c @ S`` (sum) and ``c @ Q``
    (sum of squares) on both sides, and each candidate pair's cross sum
    ``c @ X[:, p]`` with ``X[d, p] = sum over the rows t of d of x_ta x_tb``.
    The sums are computed once, sparse and in fp64; a resample then costs a
    few sparse matrix-vector products instead of a pass over every token
    row.

    Parameters
    ----------
    codes_a, codes_b : scipy.sparse matrix, shapes (n_tokens, n_a) and (n_tokens, n_b)
        Non-negative codes on the same token rows.
    documents : array_like of int, shape (n_tokens,)
        Document number (0 to n_docs - 1) of every row.
    pair_a, pair_b : array_like of int
        Candidate pairs sorted by B latent then A latent
        (:func:`candidate_pairs`).
    chunk_nnz : int, default :data:`CROSS_CHUNK_NNZ`
        Bound on the code entries gathered at once for the cross sums.

    Attributes
    ----------
    n_a, n_b : int
        Latents of A and B.
    doc_tokens : ndarray of int64, shape (n_docs,)
        Token rows of each document.
    sum_a, sumsq_a : scipy.sparse.csc_matrix, shape (n_docs, n_a)
        Per-document sum and sum of squares of every A latent.
    sum_b, sumsq_b : scipy.sparse.csc_matrix, shape (n_docs, n_b)
        The same for B.
    cross : scipy.sparse.csc_matrix, shape (n_docs, n_pairs)
        Per-document cross sum of every candidate pair.
    pair_a, pair_b : ndarray of int64, shape (n_pairs,)
    """

    def __init__(self, codes_a, codes_b, documents, pair_a, pair_b, *, chunk_nnz: int = CROSS_CHUNK_NNZ):
        documents = np.asarray(documents, dtype=np.int64)
        self.pair_a = np.asarray(pair_a, dtype=np.int64)
        self.pair_b = np.asarray(pair_b, dtype=np.int64)
        self.n_a, self.n_b = codes_a.shape[1], codes_b.shape[1]
        n_tokens = documents.size
        self.doc_tokens = np.bincount(documents)
        n_docs = self.doc_tokens.size
        indicator = sp.csr_matrix((np.ones(n_tokens), (documents, np.arange(n_tokens))), shape=(n_docs, n_tokens))
        a = sp.csc_matrix(codes_a, dtype=np.float64)
        b = sp.csc_matrix(codes_b, dtype=np.float64)
        self.sum_a, self.sumsq_a = sp.csc_matrix(indicator @ a), sp.csc_matrix(indicator @ a.power(2))
        self.sum_b, self.sumsq_b = sp.csc_matrix(indicator @ b), sp.csc_matrix(indicator @ b.power(2))
        # Chunks of pairs whose gathered columns hold about chunk_nnz entries.
        gathered = np.cumsum(np.diff(a.indptr)[self.pair_a] + np.diff(b.indptr)[self.pair_b])
        total = int(gathered[-1]) if gathered.size else 0
        cuts = np.searchsorted(gathered, np.arange(chunk_nnz, total, chunk_nnz))
        bounds = np.unique(np.concatenate([[0], cuts, [self.pair_a.size]]))
        blocks = [indicator @ a[:, self.pair_a[lo:hi]].multiply(b[:, self.pair_b[lo:hi]])
                  for lo, hi in zip(bounds[:-1], bounds[1:])]
        self.cross = sp.hstack(blocks, format="csc") if blocks else sp.csc_matrix((n_docs, 0))
        self._indptr = np.zeros(self.n_b + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.pair_b, minlength=self.n_b), out=self._indptr[1:])

    @property
    def n_docs(self) -> int:
        """Number of documents."""
        return int(self.doc_tokens.size)

    def weighted(self, counts) -> CoactivationMoments:
        """The Pearson moments of the resample that takes document d ``counts[d]`` times.

        Returned as :class:`saesim.compare.corr.CoactivationMoments` (cross moment
        over the candidate pairs only), so that correlations, dead latents
        and partners follow :mod:`saesim.compare.corr`'s formulas exactly.
        """
        counts = np.asarray(counts)
        if counts.shape != (self.n_docs,):
            raise ValueError(f"`counts` must give a count for each of the {self.n_docs} documents; "
                             f"got shape {counts.shape}.")
        weights = counts.astype(np.float64)
        moments = CoactivationMoments(self.n_a, self.n_b)
        moments.n_tokens_ = int(counts.astype(np.int64) @ self.doc_tokens)
        moments.sum_a_ = self.sum_a.T @ weights
        moments.sumsq_a_ = self.sumsq_a.T @ weights
        moments.sum_b_ = self.sum_b.T @ weights
        moments.sumsq_b_ = self.sumsq_b.T @ weights
        moments.cross_ = sp.csr_matrix((self.cross.T @ weights, self.pair_a, self._indptr),
                                       shape=(self.n_b, self.n_a))
        return moments

    def best_partners(self, counts, *, m: int = DEFAULT_TOP_M) -> BestPartners:
        """Best partners of the resample ``counts``, each latent choosing among its candidate pairs.

        Same conventions as :func:`saesim.compare.corr.best_partners`: r > 0 only,
        dead (zero-variance) latents left out, top-m candidates sorted by r
        with ties to the lower index, -1 / nan padding; ``n_tokens`` is the
        resample's token count.
        """
        return self.weighted(counts).result().best_partners(m=m)


class DenseDocumentMoments(DocumentMoments):
    """:class:`DocumentMoments` of dense codes (raw neurons) over every (A, B) pair.

    Each document's cross sums are one small matrix product; all
    ``n_a x n_b`` pairs are kept (fp64, ``n_docs x n_a x n_b`` values: 1.9 GB
    for 1 600 documents and 384 neurons a side), so a resample's Pearson r of
    every pair, and hence its best partners, follow exactly from
    :meth:`weighted` without a pass over the token rows.

    Parameters
    ----------
    codes_a, codes_b : array_like, shapes (n_tokens, n_a) and (n_tokens, n_b)
        Dense codes on the same token rows (any sign).
    documents : array_like of int, shape (n_tokens,)
        Document number (0 to n_docs - 1) of every row.
    """

    def __init__(self, codes_a, codes_b, documents):
        documents = np.asarray(documents, dtype=np.int64)
        a, b = np.asarray(codes_a), np.asarray(codes_b)
        self.n_a, self.n_b = a.shape[1], b.shape[1]
        self.doc_tokens = np.bincount(documents)
        n_docs = self.doc_tokens.size
        order = np.argsort(documents, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(self.doc_tokens)])
        self.sum_a, self.sumsq_a = np.zeros((n_docs, self.n_a)), np.zeros((n_docs, self.n_a))
        self.sum_b, self.sumsq_b = np.zeros((n_docs, self.n_b)), np.zeros((n_docs, self.n_b))
        self.cross = np.zeros((n_docs, self.n_b * self.n_a))  # pairs B-major, as an (n_b, n_a) CSR
        for d in range(n_docs):
            rows = order[bounds[d]:bounds[d + 1]]
            x, y = a[rows].astype(np.float64), b[rows].astype(np.float64)
            self.sum_a[d], self.sumsq_a[d] = x.sum(axis=0), (x * x).sum(axis=0)
            self.sum_b[d], self.sumsq_b[d] = y.sum(axis=0), (y * y).sum(axis=0)
            self.cross[d] = (y.T @ x).ravel()
        self.pair_b, self.pair_a = (g.ravel() for g in np.meshgrid(np.arange(self.n_b), np.arange(self.n_a),
                                                                   indexing="ij"))
        self._indptr = np.arange(0, (self.n_b + 1) * self.n_a, self.n_a, dtype=np.int64)



def recentred_interval(values, estimate: float, level: float = 0.95) -> tuple[float, float]:
    """The percentile interval of ``values`` shifted by their median bias, so that it is centred where ``estimate`` is.

    Parameters
    ----------
    values : array_like of float
        Bootstrap replicates of the statistic (NaN ignored).
    estimate : float
        The statistic on the full sample.
    level : float, default 0.95

    Returns
    -------
    (float, float)
        ``(q_lo - b, q_hi - b)`` with ``q`` the ``(1 - level) / 2`` and
        ``(1 + level) / 2`` quantiles of ``values`` and ``b = median(values)
        - estimate`` the bootstrap's estimate of the median bias; NaN when
        fewer than two replicates or no finite estimate. The interval always
        contains ``estimate`` (``q_lo <= median <= q_hi``).

    Notes
    -----
    A paired score takes a maximum over noisy correlations; a resample holds
    about 63 % distinct documents and pairs less accurately, so its scores
    sit below the full-sample score and the plain percentile interval can
    exclude the estimate it is meant to bracket. The bootstrap still measures
    the spread; its location is moved back to the estimate (the median bias
    is removed, as in the bias-corrected percentile method, Efron & Tibshirani
    1993, ch. 14, without the acceleration term).
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size < 2 or not np.isfinite(estimate):
        return (np.nan, np.nan)
    alpha = (1 - level) / 2
    low, mid, high = np.quantile(values, [alpha, 0.5, 1 - alpha])
    bias = mid - estimate
    return (float(low - bias), float(high - bias))
