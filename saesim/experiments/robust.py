"""How robust is the universality verdict? Effect sizes, bootstrap CIs, baselines, sweeps.

Everything here reuses the pipeline of :mod:`saesim.experiments.grid`: best
partners (:func:`saesim.compare.corr.best_partners`), then
:func:`saesim.experiments.grid.compare_best` (pairing rule, junk/overlap filter,
1-1, r cut, scores and nulls), so a bootstrap resample, a baseline or a sweep
point is scored exactly like a cell of the grid.

* :func:`bootstrap_ci` resamples *documents* with replacement (the kept token
  rows of a document stay together), recomputes correlations, pairing and
  filters from the cached codes and rescores: a percentile CI of each paired
  score. The filters' top tokens are those of the full data (labels, not
  resampled). For sparse SAE codes a resample's correlations come from
  per-document sums (:class:`DocumentMoments`) and partners are re-chosen
  among each latent's full-sample top candidates (:func:`candidate_pairs`),
  so a resample costs a few sparse matrix-vector products, not a pass over
  the token rows.
* :func:`effect_sizes` adds value - null mean and z for every metric.
* :func:`raw_neuron_baseline` pairs residual-stream neurons directly (no SAE)
  and scores the rows of the blocks' MLP output projections, as the authors'
  "compare LLMs" runs; :func:`control_comparison` lines up SAE score, random-
  model control, raw-neuron baseline and the shuffled null in one tidy table;
  :func:`verdict` turns it into sentences that follow from the numbers.
* ``sweep_*`` return tidy DataFrames (the caller writes parquet).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from saesim.compare.corr import DEFAULT_TOP_M, BestPartners, CoactivationMoments, quiet_best_partners
from saesim.experiments.grid import CompareSettings, SaeLayer, compare_best
from saesim.compare.filters import TopTokens
from saesim.compare.match import RULES
from saesim.io import atomic_parquet, atomic_write_text, read_json_or_none, to_jsonable

__all__ = [
    "BOOT_CANDIDATES",
    "BootstrapResult",
    "CI_METHOD",
    "COMPARISONS",
    "N_BOOT",
    "cached_top_k",
    "recentred_interval",
    "findings",
    "DenseDocumentMoments",
    "DocumentMoments",
    "bootstrap_ci",
    "bootstrap_many",
    "bootstrap_raw_neurons",
    "candidate_pairs",
    "control_comparison",
    "default_sweep_pair",
    "effect_sizes",
    "family_p_value",
    "kept_table",
    "plot_baselines",
    "plot_sweep",
    "raw_neuron_baseline",
    "raw_neuron_layers",
    "row_documents",
    "sweep_filters",
    "sweep_svcca_dimension",
    "sweep_token_budget",
    "verdict",
    "verdict_table",
]

BOOT_METRICS = ("svcca", "rsa")
"""Metrics bootstrapped by default."""

N_BOOT = 200
"""Default bootstrap resamples of :func:`bootstrap_ci` (enough for stable 2.5 % / 97.5 % quantiles)."""

COMPARISONS = ("sae", "seed", "control", "control_all", "raw_neuron", "shuffle_null")
"""Rows of a :func:`control_comparison` table: the SAE pairs, the SAE-seed control (two SAEs of model A), the
random-model controls (authors' and every-tensor), the raw-neuron baseline and the shuffled null."""

BASELINE_LABELS = {"seed": "the SAE-seed control", "control": "the random-model control (authors')",
                   "control_all": "the random-model control (every tensor)", "raw_neuron": "the raw-neuron baseline",
                   "shuffle_null": "the shuffled-pairing null"}
"""How the verdict names each baseline."""
"""Values of the ``comparison`` column of :func:`control_comparison`."""

NULL_Z = 1.959963984540054
"""Half-width, in null standard deviations, of the shuffled null's 95 % band (normal approximation)."""

SVCCA_POLICIES = (0.5, 0.9, 0.99, 1, 10, 50, "ratio:10", "ratio:50")
"""Default dimension policies of :func:`sweep_svcca_dimension`."""

BOOT_CANDIDATES = 64
"""Full-sample candidate partners per latent among which a fast bootstrap resample re-chooses partners.

Long lists because weakly paired latents need them (see :func:`bootstrap_ci`,
Notes): with 8 candidates a resample's first-index scores move by up to 0.005
(SVCCA) and 0.011 (RSA) against the exact path on a planted pair of
offline-profile size, with 64 by at most 0.0012 and 0.0017.
"""

CROSS_CHUNK_NNZ = 20_000_000
"""Gathered code entries per chunk of candidate pairs when :class:`DocumentMoments` sums cross products."""


# --------------------------------------------------------------------------- helpers


def _quiet_best(codes_a, codes_b, *, compat: bool, dense: bool = False, m: int = DEFAULT_TOP_M):
    kwargs = {"backend": "dense"} if dense else {}
    return quiet_best_partners(codes_a, codes_b, compat=compat, m=m, **kwargs)


def _is_dense(layer: SaeLayer) -> bool:
    return isinstance(layer.codes, np.ndarray)


def _best(layer_a: SaeLayer, layer_b: SaeLayer, settings: CompareSettings, rows=None, m: int = DEFAULT_TOP_M):
    codes_a, codes_b = layer_a.codes, layer_b.codes
    if rows is not None:
        codes_a, codes_b = codes_a[rows], codes_b[rows]
    return _quiet_best(codes_a, codes_b, compat=settings.compat, dense=_is_dense(layer_a) or _is_dense(layer_b),
                       m=m)


def _first_candidates(best: BestPartners, m: int) -> BestPartners:
    """The same best partners with only the first ``m`` candidates per latent (those of a top-m search)."""
    return replace(best, top_index=best.top_index[:, :m], top_r=best.top_r[:, :m],
                   top_index_a=best.top_index_a[:, :m], top_r_a=best.top_r_a[:, :m])


def _metric_names(record: dict) -> list[str]:
    # A scored metric has a null mean and spread (the authors'-k SVCCA beside SVCCA has no spread column).
    return [key[: -len("_null_mean")] for key in record if key.endswith("_null_mean")
            and not key.endswith("_subset_null_mean") and f"{key[: -len('_null_mean')]}_null_std" in record]


def _doc_groups(row_doc, n_tokens: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows sorted by document, and each document's start and length in that order."""
    row_doc = np.asarray(row_doc)
    if row_doc.ndim != 1 or row_doc.size != n_tokens:
        raise ValueError(
            f"`row_doc` must give the document of every code row ({n_tokens} rows); got shape "
            f"{row_doc.shape}. Use row_documents(profile, cache=...) or grid.doc_pos(rows)[0]."
        )
    order = np.argsort(row_doc, kind="stable")
    _, starts, lengths = np.unique(row_doc[order], return_index=True, return_counts=True)
    return order, starts, lengths


def _rows_of(draw, order, starts, lengths) -> np.ndarray:
    return np.concatenate([order[starts[d]:starts[d] + lengths[d]] for d in draw])


def row_documents(profile, *, cache=None) -> np.ndarray:
    """The document of every kept token row of a profile's cached grid (the rows of the codes)."""
    from saesim.extract.pipeline import load_grid

    grid = load_grid(profile, out=cache)
    return grid.doc_pos(np.arange(grid.n_tokens))[0]


def default_sweep_pair(profile) -> tuple[int, int]:
    """The sweeps' layer pair: the middle one of :meth:`saesim.config.Profile.baseline_layer_pairs`."""
    from saesim.config import Profile, load_profile

    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    pairs = profile.baseline_layer_pairs()
    return pairs[len(pairs) // 2]


# --------------------------------------------------------------------------- bootstrap


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


@dataclass(frozen=True)
class BootstrapResult:
    """Percentile bootstrap CIs of the paired scores of one (layer pair, rule, direction).

    Attributes
    ----------
    observed : dict
        The record of :func:`saesim.experiments.grid.compare_best` on all documents
        (scores, nulls, p, z, counts).
    samples : pandas.DataFrame
        One row per resample: ``boot``, ``n_tokens``, ``n_pairs``, each metric.
    metrics : tuple of str
    level : float
    n_boot, seed : int
    ci : dict
        metric -> (low, high); NaN when fewer than two resamples had a score.
    """

    observed: dict
    samples: pd.DataFrame = field(repr=False)
    metrics: tuple[str, ...]
    level: float
    n_boot: int
    seed: int
    ci: dict

    def to_record(self) -> dict:
        """The observed record plus ``<metric>_ci_low``, ``_ci_high``, ``_boot_se`` and effect sizes."""
        record = dict(self.observed)
        for metric in self.metrics:
            low, high = self.ci[metric]
            values = self.samples[metric].to_numpy(dtype=float)
            record[f"{metric}_ci_low"] = low
            record[f"{metric}_ci_high"] = high
            enough = np.isfinite(values).sum() > 1
            record[f"{metric}_boot_se"] = float(np.nanstd(values, ddof=1)) if enough else np.nan
            record[f"{metric}_boot_mean"] = float(np.nanmean(values)) if enough else np.nan
        for metric in self.metrics:
            values = self.samples[metric].to_numpy(dtype=float)
            record[f"{metric}_boot_bias"] = (float(np.nanmedian(values)) - _num(record.get(metric))
                                             if np.isfinite(values).any() else np.nan)
        record.update({"n_boot": self.n_boot, "boot_seed": self.seed, "ci_level": self.level,
                       "ci_method": CI_METHOD, "boot_n_pairs_median": float(self.samples["n_pairs"].median())})
        return effect_sizes(record)


def bootstrap_ci(layer_a: SaeLayer, layer_b: SaeLayer, row_doc, settings: CompareSettings, *, rule: str,
                 direction: str = "b_to_a", metrics=BOOT_METRICS, n_boot: int = N_BOOT, seed: int = 0,
                 level: float = 0.95, candidates: int = BOOT_CANDIDATES, exact: bool = False) -> BootstrapResult:
    """Bootstrap CI of each paired score over documents.

    Parameters
    ----------
    layer_a, layer_b : SaeLayer
        The two layers (codes on the same token rows). Dense codes (raw
        neurons) work too; then ``settings.junk_filter`` must be False.
    row_doc : array_like of int, shape (n_tokens,)
        Document of every code row (:func:`row_documents`).
    settings : CompareSettings
        Filters and nulls; ``rules``, ``directions`` and ``metrics`` are
        replaced by ``rule``, ``direction`` and ``metrics``.
    rule, direction : str
        Pairing rule and direction.
    metrics : sequence of str, default ("svcca", "rsa")
    n_boot : int, default :data:`N_BOOT` (200)
        Resamples. The interval's ends are quantiles of the resamples: with
        20 they move by about a bootstrap standard error from one seed to
        the next, with 200 by about a third of one.
    seed : int, default 0
        Resample ``b`` draws its documents from ``default_rng([seed, b])``:
        same seed, same CIs; more resamples extend, not change, the first ones.
    level : float, default 0.95
    candidates : int, default :data:`BOOT_CANDIDATES` (64)
        Full-sample candidate partners per latent and direction among which a
        resample re-chooses partners (fast path).
    exact : bool, default False
        Recompute best partners from the resampled token rows over all
        latents (:func:`saesim.compare.corr.best_partners`), as the fast path's
        reference. ``settings.compat`` always takes this path.

    Returns
    -------
    BootstrapResult

    Notes
    -----
    Pairing takes a maximum over noisy correlations, so the paired score is
    not a smooth function of the data: a resample (about 63 % distinct
    documents) pairs less accurately than the full data, and a plain
    percentile interval tends to sit *below* the observed score, even
    excluding it. The interval is therefore the percentile interval
    recentred on the observed score (:func:`recentred_interval`: the
    resamples' median bias, ``<metric>_boot_bias`` in
    :meth:`BootstrapResult.to_record`, removed), so it always contains the
    estimate; ``ci_method`` names the method.

    *Dense codes* (raw neurons; ``compat`` and ``exact`` off) need no
    candidates: :class:`DenseDocumentMoments` keeps every pair's
    per-document cross sums, so each resample's correlations are exact.

    *Fast path* (sparse non-negative codes, ``compat`` and ``exact`` off).
    Every resample still recomputes the correlations and re-chooses the
    partners, but each latent chooses among the pairs on the full-sample
    top-``candidates`` lists (:func:`candidate_pairs`: its own list and the
    lists that name it), not among every latent of the other model.
    Per-document sums of those pairs are computed once
    (:class:`DocumentMoments`); a resample's r of a candidate pair follows
    from them exactly, and its partners follow from
    :meth:`saesim.compare.corr.CoactivationCorrelation.best_partners` (the
    conventions of :func:`saesim.compare.corr.best_partners`).

    The two paths agree whenever every latent's resampled top partners lie
    among its candidates. For a paired latent they do: dropping and
    repeating documents moves its correlations far less than the gap between
    its partner and the rest, and a pair that never fires together in the
    full data cannot correlate positively in any resample. Weakly paired
    latents (best r of a few hundredths, from chance co-firings) are the
    exception: a resample re-picks their partner almost at random among many
    co-firings, and under the first-index rule such a chooser can take a
    target before the r cut and block a strong pair, so these choices move
    the score. Hence the long default lists (:data:`BOOT_CANDIDATES`). Pairs
    with a full-sample r <= 0 are never candidates (best partners keep
    r > 0 only), yet one can become a resample's weak best partner, so even
    lists as long as the other model only match the exact path when that
    does not happen.

    On a planted pair of offline-profile size (150 000 rows in 1 600
    documents, 4 096 × 6 144 latents, about 26 and 39 non-zeros per row;
    4 resamples) the fast path's best partner equals the exact path's for
    98.3-99.2 % of the B latents with 64 candidates (84 % with 8, 96-97 %
    with 32, 99.4-99.9 % with 128), and for all with r > 0.1; the resample's
    first-index SVCCA and RSA differ by at most 0.0012 and 0.0017 (their
    resample-to-resample spread is about 0.004 and 0.01). A resample's
    partners take about 0.15 s instead of 10 s; the one-off cost is a top-64
    instead of a top-8 full-sample search (about 25 s instead of 10 s there)
    and the per-document sums (about 10 s). Scoring a resample
    (:func:`saesim.experiments.grid.compare_best`) costs the same on both paths.
    """
    if not isinstance(n_boot, int) or n_boot < 1:
        raise ValueError(f"`n_boot` must be a positive integer; got {n_boot!r}.")
    if not 0 < level < 1:
        raise ValueError(f"`level` must lie in (0, 1); got {level!r}.")
    if not isinstance(candidates, int) or isinstance(candidates, bool) or candidates < 1:
        raise ValueError(f"`candidates` must be a positive integer; got {candidates!r}.")
    metrics = tuple(metrics)
    base = settings.replace(rules=(rule,), directions=(direction,), metrics=metrics)
    order, starts, lengths = _doc_groups(row_doc, layer_a.codes.shape[0])
    pool = _best(layer_a, layer_b, base, m=DEFAULT_TOP_M if exact else max(candidates, DEFAULT_TOP_M))
    best = _first_candidates(pool, DEFAULT_TOP_M)  # the grid's best partners
    observed = compare_best(best, layer_a, layer_b, base)[0]
    quick = base.replace(n_perm=1)  # resamples need the paired score only
    # The sparse backend ran iff the codes are sparse, non-negative and compat is off: the fast path's terms.
    moments = None
    documents = np.unique(np.asarray(row_doc), return_inverse=True)[1]
    if not exact and pool.backend == "sparse":
        moments = DocumentMoments(layer_a.codes, layer_b.codes, documents,
                                  *candidate_pairs(_first_candidates(pool, candidates)))
    elif not exact and not base.compat and _is_dense(layer_a) and _is_dense(layer_b):
        moments = DenseDocumentMoments(layer_a.codes, layer_b.codes, documents)
    rows = []
    for b in range(n_boot):
        draw = np.random.default_rng([seed, b]).integers(0, starts.size, size=starts.size)
        if moments is not None:
            resampled = moments.best_partners(np.bincount(draw, minlength=starts.size), m=best.m)
            record = compare_best(resampled, layer_a, layer_b, quick)[0]
        else:
            take = _rows_of(draw, order, starts, lengths)
            sub_a, sub_b = replace(layer_a, codes=layer_a.codes[take]), replace(layer_b, codes=layer_b.codes[take])
            record = compare_best(_best(sub_a, sub_b, quick), sub_a, sub_b, quick)[0]
        rows.append({"boot": b, "n_tokens": int(record["n_tokens"]), "n_pairs": record["n_pairs"],
                     **{m: record.get(m, np.nan) for m in metrics},
                     **({"svcca_k_x": record.get("svcca_k_x"), "svcca_k_y": record.get("svcca_k_y")}
                        if "svcca" in metrics else {})})
    samples = pd.DataFrame(rows)
    ci = {metric: recentred_interval(samples[metric].to_numpy(dtype=float), _num(observed.get(metric)), level)
          for metric in metrics}
    return BootstrapResult(observed=observed, samples=samples, metrics=metrics, level=level, n_boot=n_boot,
                           seed=seed, ci=ci)


CI_METHOD = "percentile, recentred on the estimate (median-bias corrected)"
"""How :func:`bootstrap_ci` turns resamples into an interval (recorded as ``ci_method``)."""


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


def bootstrap_many(profile, comparisons, row_doc, settings: CompareSettings, *, rule: str,
                   direction: str = "b_to_a", metrics=BOOT_METRICS, n_boot: int = N_BOOT, seed: int = 0,
                   level: float = 0.95, candidates: int = BOOT_CANDIDATES, cache=None, out=None,
                   executor: str = "local", n_workers: int | None = None, progress: bool = False) -> list[dict]:
    """:func:`bootstrap_ci` records of several comparisons of cached SAE layers, in parallel and kept on disk.

    Parameters
    ----------
    profile : Profile or str
    comparisons : sequence of ((slot_a, layer_a), (slot_b, layer_b))
        Layers of the profile's artefact store, e.g. ``(("a", 3), ("control", 3))``.
    row_doc, settings, rule, direction, metrics, n_boot, seed, level, candidates
        As :func:`bootstrap_ci`.
    cache : path, optional
        The artefact store (default: the profile's ``cache_dir``).
    out : path, optional
        Where each finished record is written (``cells/bootstrap/`` below
        it; default ``<cache>/results/robustness``). A record computed under
        the same profile and parameters is read back, not recomputed, so an
        interrupted chapter resumes and a rebuild costs nothing.
    executor, n_workers, progress
        As :func:`saesim.experiments.executors.run_cells`; each worker loads its layers
        and runs one BLAS/torch thread.

    Returns
    -------
    list of dict
        :meth:`BootstrapResult.to_record` of each comparison, in order.

    Raises
    ------
    RuntimeError
        If a comparison failed (its traceback is in the message).
    """
    from pathlib import Path

    from saesim.config import Profile, load_profile
    from saesim.experiments.executors import run_cells

    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    cache = Path(cache) if cache is not None else Path(profile.cache_dir)
    options = dict(rule=rule, direction=direction, metrics=tuple(metrics), n_boot=n_boot, seed=seed, level=level,
                   candidates=candidates)
    folder, tag = _bootstrap_store(profile, cache, out, settings, options)
    row_doc = np.asarray(row_doc)
    records, cells = {}, []
    for i, ((slot_a, layer_a), (slot_b, layer_b)) in enumerate(comparisons):
        path = folder / f"{slot_a}{layer_a}_{slot_b}{layer_b}_{tag}.json"
        kept = read_json_or_none(path)
        if kept is not None:
            records[i] = kept
            continue
        cells.append((i, profile, (slot_a, int(layer_a)), (slot_b, int(layer_b)), row_doc, settings, options,
                      str(cache), str(path)))
    outcomes = run_cells(_bootstrap_cell, cells, executor=executor, n_workers=n_workers, progress=progress,
                         description="bootstraps")
    for outcome in outcomes:
        if not outcome.ok:
            _, _, (slot_a, layer_a), (slot_b, layer_b), *_ = outcome.cell
            raise RuntimeError(f"bootstrap of {slot_a}{layer_a} vs {slot_b}{layer_b} failed:\n{outcome.error}")
        records[outcome.cell[0]] = outcome.value
    return [records[i] for i in range(len(comparisons))]


def _bootstrap_cell(cell) -> dict:
    """One comparison of :func:`bootstrap_many`, run in a worker: load, bootstrap, save."""
    from pathlib import Path

    from saesim.extract.pipeline import load_layer

    _, profile, (slot_a, layer_a), (slot_b, layer_b), row_doc, settings, options, cache, path = cell
    layer_a = load_layer(profile, slot_a, layer_a, out=cache).to_sae_layer()
    layer_b = load_layer(profile, slot_b, layer_b, out=cache).to_sae_layer()
    record = to_jsonable(bootstrap_ci(layer_a, layer_b, row_doc, settings, **options).to_record())
    atomic_write_text(Path(path), json.dumps(record))
    return record


def bootstrap_raw_neurons(profile, layer_pairs, row_doc, settings: CompareSettings, *, rule: str,
                          direction: str = "b_to_a", metrics=BOOT_METRICS, n_boot: int = N_BOOT, seed: int = 0,
                          level: float = 0.95, candidates: int = BOOT_CANDIDATES, cache=None, out=None,
                          progress: bool = False) -> list[dict]:
    """:func:`bootstrap_ci` of the raw-neuron baseline at each (layer of A, layer of B), kept on disk.

    Like :func:`bootstrap_many` (same folder, same resume rule), for the
    models' residual neurons (:func:`raw_neuron_layers`, without the junk
    filter). The models are loaded only when some pair is not kept yet, so
    a cached rebuild needs neither a model nor a capture.

    Returns
    -------
    list of dict
        :meth:`BootstrapResult.to_record` of each layer pair, in order.
    """
    from pathlib import Path

    from saesim.config import Profile, load_profile

    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    cache = Path(cache) if cache is not None else Path(profile.cache_dir)
    settings = settings.replace(junk_filter=False)
    options = dict(rule=rule, direction=direction, metrics=tuple(metrics), n_boot=n_boot, seed=seed, level=level,
                   candidates=candidates)
    folder, tag = _bootstrap_store(profile, cache, out, settings, options)
    pairs = [(int(la), int(lb)) for la, lb in layer_pairs]
    paths = {pair: folder / f"a{pair[0]}_raw_b{pair[1]}_raw_{tag}.json" for pair in pairs}
    records = {pair: read_json_or_none(path) for pair, path in paths.items()}
    missing = [pair for pair in pairs if records[pair] is None]
    if missing:
        layers = raw_neuron_layers(profile, sorted({("a", la) for la, _ in missing} | {("b", lb) for _, lb in missing}),
                                   cache=cache, progress=progress)
        for la, lb in missing:
            record = to_jsonable(bootstrap_ci(layers[("a", la)], layers[("b", lb)], row_doc, settings,
                                              **options).to_record())
            atomic_write_text(paths[(la, lb)], json.dumps(record))
            records[(la, lb)] = record
    return [records[pair] for pair in pairs]


def kept_table(folder, name: str, key: dict, compute) -> pd.DataFrame:
    """``compute()``'s table, kept in ``folder`` under ``name`` and a hash of ``key``; read back when kept.

    For the sweeps chapter, whose sweeps take minutes: a rebuild with the same
    key (profile, settings, layer pair, sweep parameters) reads the parquet
    file instead of recomputing; any change of the key recomputes. Written
    atomically, so an interrupted sweep leaves nothing that looks finished.
    """
    import hashlib
    from pathlib import Path

    tag = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
    path = Path(folder) / "kept" / f"{name}_{tag}.parquet"
    if path.exists():
        try:
            return pd.read_parquet(path)
        except (OSError, ValueError):
            pass  # damaged: recompute and overwrite
    table = compute()
    atomic_parquet(table, path)
    return table


def _bootstrap_store(profile, cache, out, settings: CompareSettings, options: dict):
    """``(folder, tag)`` of kept bootstrap records: the tag hashes the profile, settings and options."""
    import hashlib
    from pathlib import Path

    out = Path(out) if out is not None else Path(cache) / "results" / "robustness"
    blob = json.dumps({"profile": profile.key(), "settings": settings.key(), **options}, sort_keys=True)
    return out / "cells" / "bootstrap", hashlib.sha256(blob.encode()).hexdigest()[:12]


def effect_sizes(record):
    """Value - null mean (``<m>_effect``) and z (``<m>_effect_z``) for every metric with a null.

    Accepts one tidy record (dict) or a table (DataFrame) and returns the same
    kind with the columns added. Where a bootstrap CI is present the effect's
    CI (``<m>_effect_ci_low`` / ``_high``: the score's CI minus the null mean)
    is added; where a random-subset null is present, ``<m>_subset_effect``.
    """
    if isinstance(record, pd.DataFrame):
        if record.empty:
            return record.copy()
        rows = [effect_sizes(row) for row in record.to_dict("records")]
        return pd.DataFrame.from_records(rows, index=record.index)
    out = dict(record)
    for metric in _metric_names(record):
        value, mean = _num(record.get(metric)), _num(record.get(f"{metric}_null_mean"))
        std = _num(record.get(f"{metric}_null_std"))
        out[f"{metric}_effect"] = value - mean
        out[f"{metric}_effect_z"] = (value - mean) / std if std > 0 else np.nan
        if f"{metric}_ci_low" in record:
            out[f"{metric}_effect_ci_low"] = _num(record[f"{metric}_ci_low"]) - mean
            out[f"{metric}_effect_ci_high"] = _num(record[f"{metric}_ci_high"]) - mean
        if f"{metric}_subset_null_mean" in record:
            out[f"{metric}_subset_effect"] = value - _num(record[f"{metric}_subset_null_mean"])
    return out


def _num(value) -> float:
    try:
        return float(value) if value is not None else np.nan
    except (TypeError, ValueError):
        return np.nan


# --------------------------------------------------------------------------- raw-neuron baseline


def raw_neuron_layers(profile, layers, *, cache=None, progress: bool = False,
                      reuse: bool = True) -> dict[tuple[str, int], SaeLayer]:
    """Raw residual neurons as :class:`SaeLayer` s: dense activations and MLP output-projection rows.

    Parameters
    ----------
    profile : Profile or str
    layers : iterable of (slot, layer)
        E.g. ``[("a", 3), ("b", 3)]``; each slot's model is loaded and run once.
    cache : path, optional
        The artefact store holding the profile's grid (and tiny models).
    reuse : bool, default True
        Read activations extraction kept (:func:`saesim.extract.pipeline.load_activations`)
        instead of capturing them again; what is captured is kept for next time
        when it fits in :data:`saesim.extract.pipeline.KEEP_ACTIVATIONS_MAX_BYTES`.

    Returns
    -------
    dict
        ``(slot, layer) -> SaeLayer`` whose ``codes`` are the dense
        (n_tokens, d_model) activations at the SAE's hook (captured through
        :func:`saesim.extract.models.capture` on the profile's grid) and whose
        ``decoder`` is the (d_model, d_mlp) weight of block L's MLP output
        projection: row i is what the MLP writes into residual dimension i.
    """
    from pathlib import Path

    from saesim.config import Profile, load_profile
    from saesim.extract.pipeline import KEEP_ACTIVATIONS_MAX_BYTES, capture_group, load_activations, load_grid, save_activations
    from saesim.extract.models import capture, load_model, output_projection_rows

    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    root = Path(cache) if cache is not None else Path(profile.cache_dir)
    grid = load_grid(profile, out=root)
    # Slots that run the same model (offline: A and B) share one forward pass, as in extraction.
    by_model: dict[str, dict[tuple[str, int], str]] = {}
    for slot, layer in layers:
        spec = profile.model(slot)
        by_model.setdefault(capture_group(spec), {})[(slot, int(layer))] = spec.sae.hook_for(int(layer))
    out = {}
    for hooks in by_model.values():
        spec = profile.model(next(iter(hooks))[0])
        loaded = load_model(spec, root=root, what=f"profile `{profile.name}` (raw-neuron baseline)")
        view = grid.for_tokenizer(loaded.tokenizer)
        first = {}
        for where, hook in hooks.items():
            first.setdefault(hook, where)
        kept = {hook: load_activations(profile, *where, out=root) for hook, where in first.items()} if reuse else {}
        missing = [hook for hook in first if kept.get(hook) is None]
        acts = capture(loaded, view, missing, device=profile.device, compat=profile.compat,
                       progress=progress) if missing else {}
        if reuse and acts and sum(a.nbytes for a in acts.values()) <= KEEP_ACTIVATIONS_MAX_BYTES:
            for hook, values in acts.items():
                save_activations(profile, *first[hook], values, out=root)
        acts.update({hook: values for hook, values in kept.items() if values is not None})
        for (slot, layer), hook in hooks.items():
            weight = np.asarray(output_projection_rows(loaded, layer), dtype=np.float32)
            d_model = weight.shape[0]
            empty = TopTokens(strings=np.empty((d_model, 0), dtype=object), ids=np.empty((d_model, 0), np.int64),
                              active=np.empty((d_model, 0), bool))
            out[(slot, layer)] = SaeLayer(model=f"{slot}_raw", layer=layer, codes=acts[hook],
                                          decoder=weight, top=empty, windows=np.empty((d_model, 0), dtype=object),
                                          special_ids=view.special_ids)
    return out


def raw_neuron_baseline(profile, layer_a: int, layer_b: int, *, cache=None, settings: CompareSettings | None = None,
                        layers: dict | None = None) -> list[dict]:
    """Pair the two models' residual neurons directly (no SAE) and score their output-projection rows.

    Neurons are paired by activation correlation over the profile's kept
    tokens (dense path of :func:`saesim.compare.corr.best_partners`), then every rule
    and direction of ``settings`` runs through
    :func:`saesim.experiments.grid.compare_best` without the junk/overlap filter
    (neurons have no top tokens); the r cut and the nulls are those of
    ``settings``. Pass ``layers`` (from :func:`raw_neuron_layers`) to reuse
    captured activations across layer pairs.

    Returns
    -------
    list of dict
        Tidy records (:data:`saesim.experiments.grid.GRID_COLUMNS`) with
        ``comparison="raw_neuron"``.
    """
    from saesim.experiments.grid import settings_from_profile

    if layers is None or ("a", layer_a) not in layers or ("b", layer_b) not in layers:
        layers = raw_neuron_layers(profile, [("a", layer_a), ("b", layer_b)], cache=cache)
    if settings is None:
        from saesim.config import Profile, load_profile

        settings = settings_from_profile(profile if isinstance(profile, Profile) else load_profile(profile))
    settings = settings.replace(junk_filter=False)
    la, lb = layers[("a", layer_a)], layers[("b", layer_b)]
    records = compare_best(_best(la, lb, settings), la, lb, settings)
    return [{**r, "comparison": "raw_neuron"} for r in records]


# --------------------------------------------------------------------------- control table


def control_comparison(sae: pd.DataFrame, *, control: pd.DataFrame | None = None,
                       raw: pd.DataFrame | None = None, seed: pd.DataFrame | None = None,
                       control_all: pd.DataFrame | None = None, metrics=None, level: float = 0.95) -> pd.DataFrame:
    """Paired SAE score vs random-model control vs raw-neuron baseline vs shuffled null, per layer pair.

    Parameters
    ----------
    sae : DataFrame
        Tidy records of the SAE comparison (``full_space.parquet`` or
        :meth:`BootstrapResult.to_record` rows); ``<m>_ci_low/high`` columns
        are used where present.
    control : DataFrame, optional
        The same for model A against the re-randomised model's SAEs
        (``run_grid(..., slots=("a", "control"))``), lined up on
        ``(layer_a, layer_b, direction)`` and the rule when it has it (else
        its first rule, named in ``baseline_rule``).
    raw : DataFrame, optional
        Raw-neuron records (:func:`raw_neuron_baseline`), lined up likewise.
    seed : DataFrame, optional
        Model A against its second SAE set (slots ``("a", "seed")``), lined up
        on the SAE record's A layer on both sides: the noise floor of two SAEs
        of one model at that layer.
    control_all : DataFrame, optional
        The every-tensor re-randomised model against B, lined up like ``control``.
    metrics : sequence of str, optional
        Default: every metric with a null in ``sae``.
    level : float
        Level of the shuffled null's band (mean ± z·std, normal approximation).

    Returns
    -------
    DataFrame
        Long table: ``layer_a, layer_b, rule, direction, metric, comparison``
        (one of :data:`COMPARISONS`), ``value, ci_low, ci_high, null_mean,
        null_std, p, p_holm, z, effect, n_pairs, baseline_rule``.
    """
    from scipy.stats import norm

    if sae.empty:
        return pd.DataFrame()
    metrics = list(metrics or _metric_names(sae.iloc[0].to_dict()))
    half = norm.ppf(0.5 + level / 2)
    rows = []
    for record in sae.to_dict("records"):
        key = {k: record[k] for k in ("layer_a", "layer_b", "rule", "direction")}
        for metric in metrics:
            rows.append({**key, "metric": metric, "comparison": "sae", **_values(record, metric),
                         "baseline_rule": record["rule"]})
            mean, std = _num(record.get(f"{metric}_null_mean")), _num(record.get(f"{metric}_null_std"))
            rows.append({**key, "metric": metric, "comparison": "shuffle_null", "value": mean,
                         "ci_low": mean - half * std, "ci_high": mean + half * std, "n_pairs": record.get("n_pairs"),
                         "baseline_rule": record["rule"]})
            for name, frame in (("seed", seed), ("control", control), ("control_all", control_all),
                                ("raw_neuron", raw)):
                match = _line_up(frame, record, same_layer=name == "seed")
                if match is not None:
                    rows.append({**key, "metric": metric, "comparison": name, **_values(match, metric),
                                 "baseline_rule": match["rule"]})
    table = pd.DataFrame(rows)
    for column in ("ci_low", "ci_high", "null_mean", "null_std", "p", "p_holm", "z", "effect", "k_x", "k_y", "mean_r"):
        if column not in table:
            table[column] = np.nan
    return table


def _values(record: dict, metric: str) -> dict:
    value, mean = _num(record.get(metric)), _num(record.get(f"{metric}_null_mean"))
    return {"value": value, "ci_low": _num(record.get(f"{metric}_ci_low")),
            "ci_high": _num(record.get(f"{metric}_ci_high")), "null_mean": mean,
            "null_std": _num(record.get(f"{metric}_null_std")), "p": _num(record.get(f"{metric}_p")),
            "p_holm": _num(record.get(f"{metric}_p_holm")), "z": _num(record.get(f"{metric}_z")),
            "effect": value - mean, "n_pairs": record.get("n_pairs"),
            "k_x": _num(record.get(f"{metric}_k_x")), "k_y": _num(record.get(f"{metric}_k_y")),
            "mean_r": _num(record.get("mean_r_filtered"))}


def _line_up(frame: pd.DataFrame | None, record: dict, *, same_layer: bool = False):
    if frame is None or frame.empty:
        return None
    layer_b = record["layer_a"] if same_layer else record["layer_b"]
    same = frame[(frame["layer_a"] == record["layer_a"]) & (frame["layer_b"] == layer_b)
                 & (frame["direction"] == record["direction"])]
    if same.empty:
        return None
    exact = same[same["rule"] == record["rule"]]
    return (exact if not exact.empty else same).iloc[0].to_dict()


# --------------------------------------------------------------------------- verdict


def verdict(table: pd.DataFrame, *, metrics=None, alpha: float = 0.05) -> list[str]:
    """One plain-language verdict per (layer pair, rule, direction, metric) of a :func:`control_comparison` table.

    "Beats" a baseline means the SAE score's CI lies entirely above the
    baseline's CI (where a CI is missing, its point value is used and the
    sentence says so). Each sentence also gives both effects over their own
    shuffled nulls, and flags a CCA score computed with fewer than
    :data:`SATURATION_RATIO` pairs per kept dimension (near 1 whatever the
    data). The sentences are generated from the numbers only.
    """
    if table is None or table.empty:
        return ["No comparisons to judge: the table is empty."]
    metrics = metrics or list(dict.fromkeys(table["metric"]))
    lines = []
    keys = ["layer_a", "layer_b", "rule", "direction", "metric"]
    for key, group in table[table["metric"].isin(metrics)].groupby(keys, sort=True):
        la, lb, rule, direction, metric = key
        by = {row["comparison"]: row for row in group.to_dict("records")}
        sae = by.get("sae")
        if sae is None or not np.isfinite(sae["value"]):
            lines.append(f"Layers A{la}–B{lb}, {metric} ({rule}, {direction}): no SAE score (too few pairs).")
            continue
        parts, beaten, judged = [], [], []
        floor = by.get("seed")
        if floor is not None and np.isfinite(floor["value"]) and np.isfinite(floor.get("effect", np.nan)):
            share = (f"; the SAE pairs' effect is {sae['effect'] / floor['effect']:.0%} of it"
                     if floor["effect"] > 0 and np.isfinite(sae["effect"]) else "")
            parts.append(f"two SAEs of model A at layer {la} score {_fmt(floor)}, effect {floor['effect']:+.3f} "
                         f"over their null (the seed noise floor, a ceiling for cross-model agreement){share}")
        for name in ("control", "control_all", "raw_neuron", "shuffle_null"):
            label = BASELINE_LABELS[name]
            base = by.get(name)
            if base is None or not np.isfinite(base["value"]):
                continue
            judged.append(label)
            wins, missing = _beats(sae, base)
            if wins:
                beaten.append(label)
            how = ("beats" if wins else "does not clearly beat")
            gap = ("by more than their CIs" if wins else "(the intervals overlap)" if sae["value"] > base["value"]
                   else "(it scores lower or equal)")
            note = " [a CI is missing; point value used]" if missing else ""
            if name != "shuffle_null" and np.isfinite(base.get("effect", np.nan)) and np.isfinite(sae["effect"]):
                note += (f"; over their own nulls the SAE gains {sae['effect']:+.3f}, "
                         f"{label.split(' ', 1)[1]} {base['effect']:+.3f}")
            if name == "raw_neuron" and _num(base.get("mean_r")) >= IDENTICAL_R:
                note += (" (the raw neurons pair with mean r ≈ 1: both slots run the same model, so this "
                         "baseline is a ceiling, not a bar to clear)")
            if _saturated(base):
                note += (f" (caution: {label.split(' ', 1)[1]} keeps k = {int(max(base['k_x'], base['k_y']))} "
                         f"dimensions for {int(base['n_pairs'])} pairs, so its CCA score is near 1 by construction)")
            parts.append(f"it {how} {label} {_fmt(base)} {gap}{note}")
        head = f"Layers A{la}–B{lb}, {metric} ({rule}, {direction}): SAE score {_fmt(sae)}"
        p = sae.get("p_holm") if np.isfinite(sae.get("p_holm", np.nan)) else sae.get("p")
        ptxt = "" if not np.isfinite(p) else (
            f"; shuffled-null {'Holm-adjusted ' if np.isfinite(sae.get('p_holm', np.nan)) else ''}p = {p:.3g}"
            f" ({'significant' if p < alpha else 'not significant'} at {alpha:g}), effect {sae['effect']:+.3f}")
        if not judged:
            summary = "no baseline to judge against"
        elif len(beaten) == len(judged):
            summary = "beats every baseline"
        elif not beaten:
            summary = "beats none of the baselines"
        else:
            summary = "beats " + ", ".join(beaten) + " only"
        lines.append(f"{head}; " + "; ".join(parts) + f"{ptxt}. Verdict: {summary}.")
    return lines


def _beats(sae: dict, base: dict) -> tuple[bool, bool]:
    """``(wins, missing)``: the SAE score's CI lies above the baseline's (points where a CI is missing)."""
    sae_low = sae["ci_low"] if np.isfinite(sae["ci_low"]) else sae["value"]
    base_high = base["ci_high"] if np.isfinite(base["ci_high"]) else base["value"]
    return bool(sae_low > base_high), not (np.isfinite(sae["ci_low"]) and np.isfinite(base["ci_high"]))


VERDICT_COLUMNS = {"seed": "SAE-seed floor", "control": "random model (authors')",
                   "control_all": "random model (every tensor)", "raw_neuron": "raw neurons",
                   "shuffle_null": "shuffled null"}
"""Column of :func:`verdict_table` for each baseline."""


def verdict_table(table: pd.DataFrame, *, family: pd.DataFrame | None = None, metrics=None,
                  alpha: float = 0.05) -> pd.DataFrame:
    """The verdict as a table: one row per (layer pair, rule, direction, metric) of :func:`control_comparison`.

    Columns: the SAE score with its interval, its effect over the shuffled
    null, its p-value adjusted over the page's family, one column per
    baseline ("above" when the SAE interval lies entirely above the
    baseline's, "overlaps" or "below" otherwise, with the baseline's score
    and interval; a "*" marks a point used for a missing interval), the SAE
    effect as a share of the seed floor's, and the verdict in a few words.

    ``family`` is the tidy grid whose Holm-adjusted ``<metric>_p_holm`` is the
    page's one multiple-testing family (e.g. every cell and rule of
    ``full_space.parquet``); the SAE p-value of a row is looked up there.
    Without it, the table's own ``p_holm`` is used.
    """
    if table is None or table.empty:
        return pd.DataFrame()
    metrics = metrics or list(dict.fromkeys(table["metric"]))
    rows = []
    keys = ["layer_a", "layer_b", "rule", "direction", "metric"]
    for (la, lb, rule, direction, metric), group in table[table["metric"].isin(metrics)].groupby(keys, sort=True):
        by = {row["comparison"]: row for row in group.to_dict("records")}
        sae = by.get("sae")
        row = {"layer pair": f"A{la}–B{lb}", "rule": rule, "measure": metric}
        if sae is None or not np.isfinite(sae["value"]):
            rows.append({**row, "verdict": "no SAE score (too few pairs)"})
            continue
        p = family_p_value(family, la, lb, rule, direction, metric) if family is not None else sae.get("p_holm")
        row.update({"SAE score [CI]": _fmt(sae), "effect over null": sae["effect"], "p (Holm)": _num(p)})
        beaten, judged = [], []
        for name, column in VERDICT_COLUMNS.items():
            base = by.get(name)
            if base is None or not np.isfinite(base["value"]):
                continue
            wins, missing = _beats(sae, base)
            judged.append(column)
            beaten += [column] if wins else []
            place = "above" if wins else "overlaps" if sae["value"] > base["value"] else "below"
            row[column] = f"{place}: {_fmt(base)}{'*' if missing else ''}"
        floor = by.get("seed")
        if floor is not None and np.isfinite(floor.get("effect", np.nan)) and floor["effect"] > 0:
            row["share of seed floor"] = sae["effect"] / floor["effect"]
        significant = np.isfinite(row["p (Holm)"]) and row["p (Holm)"] < alpha
        unreachable = _holm_floor(family, metric) if family is not None else None
        beyond = [c for c in beaten if c not in ("SAE-seed floor",)]
        others = [c for c in judged if c not in ("SAE-seed floor",)]
        row["verdict"] = ((("above every baseline" if len(beyond) == len(others) else
                            "above none" if not beyond else "above " + ", ".join(beyond) + " only")
                           if others else "no baseline")
                          + ("" if significant else
                             f"; Holm over {unreachable[0]} tests cannot reach {alpha:g} with {unreachable[1]} "
                             f"permutations" if unreachable and unreachable[2] > alpha else
                             f"; not significant at {alpha:g} after Holm"))
        rows.append(row)
    columns = ["layer pair", "rule", "measure", "SAE score [CI]", "effect over null", "p (Holm)",
               *VERDICT_COLUMNS.values(), "share of seed floor", "verdict"]
    out = pd.DataFrame(rows)
    return out[[c for c in columns if c in out]]


def _holm_floor(family: pd.DataFrame, metric: str):
    """``(m, R, floor)``: Holm over m tests of R permutations each cannot go below m / (R + 1)."""
    p = pd.to_numeric(family.get(f"{metric}_p"), errors="coerce") if f"{metric}_p" in family else None
    if p is None or "n_perm" not in family or not p.notna().any():
        return None
    m, n_perm = int(p.notna().sum()), int(pd.to_numeric(family["n_perm"]).max())
    return m, n_perm, min(1.0, m / (n_perm + 1))


def family_p_value(family: pd.DataFrame, layer_a, layer_b, rule, direction, metric) -> float:
    """The Holm-adjusted p-value of one cell of ``family`` (a tidy grid with ``<metric>_p_holm``), NaN if absent."""
    column = f"{metric}_p_holm"
    if column not in family:
        return float("nan")
    cell = family[(family["layer_a"] == layer_a) & (family["layer_b"] == layer_b) & (family["rule"] == rule)
                  & (family["direction"] == direction)]
    return float(cell[column].iloc[0]) if len(cell) else float("nan")


IDENTICAL_R = 0.999
"""Raw-neuron pairs with a mean correlation this high come from one model in both slots."""

SATURATION_RATIO = 2.0
"""A CCA score with fewer than this many pairs per kept dimension is flagged as saturated."""


def _saturated(row) -> bool:
    k = max(_num(row.get("k_x")), _num(row.get("k_y")))
    n = _num(row.get("n_pairs"))
    return bool(np.isfinite(k) and np.isfinite(n) and k > 0 and n / k < SATURATION_RATIO)


def _fmt(row) -> str:
    if np.isfinite(row.get("ci_low", np.nan)) and np.isfinite(row.get("ci_high", np.nan)):
        return f"{row['value']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
    return f"{row['value']:.3f}"


# --------------------------------------------------------------------------- sweeps


def sweep_svcca_dimension(layer_a: SaeLayer, layer_b: SaeLayer, settings: CompareSettings, *,
                          policies=SVCCA_POLICIES, pwcca: bool = True) -> pd.DataFrame:
    """SVCCA (and PWCCA) under each dimension policy, for every rule and direction of ``settings``.

    ``policies``: variance fractions (floats), fixed k (ints), ``"ratio:R"``.
    Best partners are computed once. Rows carry ``policy``, ``svcca_k_x``,
    ``svcca_k_y``, ``n_pairs`` and the scores with their nulls. The corrected
    computation only (``settings.compat`` must be False; the authors' SVCCA is
    the fixed k = 1 row up to its variance rule).
    """
    if settings.compat:
        raise ValueError("sweep_svcca_dimension needs settings.compat=False (the authors' SVCCA fixes k).")
    best = _best(layer_a, layer_b, settings)
    frames = []
    for policy in policies:
        rows = compare_best(best, layer_a, layer_b, settings.replace(svcca_variance=policy, metrics=("svcca",)))
        if pwcca:
            # PWCCA with the same policy, scored on the same pairs
            extra = _pwcca_with_policy(best, layer_a, layer_b, settings, policy)
            rows = [{**r, **e} for r, e in zip(rows, extra)]
        frames.append(pd.DataFrame(rows).assign(policy=str(policy)))
    return effect_sizes(pd.concat(frames, ignore_index=True))


def _pwcca_with_policy(best, layer_a, layer_b, settings, policy) -> list[dict]:
    from saesim.compare.nulls import p_value, permutation_test
    from saesim.compare.stages import filtered_pairs
    from saesim.experiments import grid

    out = []
    for direction in settings.directions:
        for rule in settings.rules:
            pairs, _ = filtered_pairs(best, layer_a, layer_b, settings, rule=rule, direction=direction)
            if pairs.n_pairs <= grid.MIN_SUBSPACE:
                out.append({})
                continue
            x, y = pairs.rows(layer_a.decoder, layer_b.decoder)
            groups = grid.null_groups(pairs, settings)  # many-to-1: the group null
            null = {} if groups is None else {"groups": groups[0], "group_side": groups[1]}
            test = permutation_test(x, y, "pwcca", n_perm=settings.n_perm, seed=settings.seed, variance=policy,
                                    **null)
            out.append({"pwcca": test.score, "pwcca_null_mean": test.null_mean, "pwcca_null_std": test.null_std,
                        "pwcca_p": p_value(test.score, test.null), "pwcca_z": test.z,
                        "pwcca_k_x": test.observed.k_x, "pwcca_k_y": test.observed.k_y})
    return out


def sweep_filters(layer_a: SaeLayer, layer_b: SaeLayer, settings: CompareSettings, *, junk=(True, False),
                  top_k=(5, 10, 20), r_min=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5), rules=RULES,
                  directions=("b_to_a", "a_to_b")) -> pd.DataFrame:
    """Filter strictness: junk filter on/off × top-k tokens × r_min × every rule × both directions.

    Best partners are computed once. With the junk filter off, ``top_k`` plays
    no part and is reported as 0. A ``top_k`` larger than the top tokens the
    layers cache gives one row per r_min with ``skipped`` naming the limit
    (the profiles cache 10 top tokens, so 20 is skipped unless re-extracted).
    ``kept_fraction`` is ``n_pairs / n_choosers``.
    """
    best = _best(layer_a, layer_b, settings)
    available = min(layer_a.top.strings.shape[1], layer_b.top.strings.shape[1])
    frames = []
    for use_junk in junk:
        for k in (top_k if use_junk else (0,)):
            for r in r_min:
                point = {"junk_filter": bool(use_junk), "top_k": int(k), "r_min": float(r)}
                if use_junk and k > available:
                    frames.append(pd.DataFrame([{**point, "skipped": f"layers cache only {available} top tokens"}]))
                    continue
                changes = dict(junk_filter=bool(use_junk), r_min=float(r), rules=tuple(rules),
                               directions=tuple(directions))
                if use_junk:
                    changes["top_k"] = int(k)
                rows = compare_best(best, layer_a, layer_b, settings.replace(**changes))
                frame = pd.DataFrame(rows).drop(columns=["r_min", "top_k", "junk_filter"], errors="ignore")
                frames.append(frame.assign(**point, skipped=""))
    table = pd.concat(frames, ignore_index=True)
    table["kept_fraction"] = table["n_pairs"] / table["n_choosers"]
    return effect_sizes(table)


def sweep_token_budget(layer_a: SaeLayer, layer_b: SaeLayer, row_doc, settings: CompareSettings, *,
                       fractions=(0.1, 0.25, 0.5, 1.0), seed: int = 0) -> pd.DataFrame:
    """Scores and p-values on a growing share of the documents (nested random subsets).

    The documents are shuffled once (``seed``) and the first ``fraction``
    of them kept, so each budget contains the smaller ones. Correlations,
    pairing, filters, scores and nulls are recomputed at every budget.
    """
    order, starts, lengths = _doc_groups(row_doc, layer_a.codes.shape[0])
    docs = np.random.default_rng(seed).permutation(starts.size)
    frames = []
    for fraction in fractions:
        if not 0 < fraction <= 1:
            raise ValueError(f"`fractions` must lie in (0, 1]; got {fraction!r}.")
        n_docs = max(1, int(round(fraction * starts.size)))
        take = np.sort(_rows_of(docs[:n_docs], order, starts, lengths))
        sub_a, sub_b = replace(layer_a, codes=layer_a.codes[take]), replace(layer_b, codes=layer_b.codes[take])
        rows = compare_best(_best(sub_a, sub_b, settings), sub_a, sub_b, settings)
        frames.append(pd.DataFrame(rows).assign(fraction=float(fraction), n_docs=n_docs))
    return effect_sizes(pd.concat(frames, ignore_index=True))


def cached_top_k(layer_a: SaeLayer, layer_b: SaeLayer) -> int:
    """How many top tokens per latent both layers cache: the largest ``top_k`` the junk filter can use."""
    return int(min(layer_a.top.strings.shape[1], layer_b.top.strings.shape[1]))


# --------------------------------------------------------------------------- plots


_COMPARISON_LABELS = {"sae": "SAE pairs", "seed": "SAE-seed control", "control": "random model (authors')",
                      "control_all": "random model (every tensor)", "raw_neuron": "raw neurons",
                      "shuffle_null": "shuffled null (mean ± 1.96 sd)"}


def plot_baselines(table: pd.DataFrame, metric: str, *, ax=None):
    """Paired SAE score and each baseline, with CIs, per layer pair (one metric, first rule/direction).

    Each comparison is a point with its interval (``ci_low``..``ci_high``);
    the shuffled null is drawn as a grey band (its ``ci_low``..``ci_high``,
    mean ± 1.96 sd in :func:`control_comparison`) with its mean as a line,
    behind the points of the same layer pair. The legend sits below the axes.
    Returns a :class:`matplotlib.figure.Figure` that pyplot does not manage
    (a notebook shows it only through :func:`saesim.report.book.show_figure`).
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    sub = table[table["metric"] == metric]
    if sub.empty:
        raise ValueError(f"no rows for metric {metric!r} in the table.")
    first = sub.iloc[0]
    sub = sub[(sub["rule"] == first["rule"]) & (sub["direction"] == first["direction"])]
    pairs = list(dict.fromkeys(zip(sub["layer_a"], sub["layer_b"])))
    if ax is None:
        fig = Figure(figsize=(max(8.0, 1.6 * len(pairs) + 3), 4.6), layout="constrained")
        ax = fig.subplots()
    present = set(sub["comparison"])
    comparisons = [c for c in COMPARISONS if c in present and c != "shuffle_null"]
    width = 0.8 / max(len(comparisons), 1)
    handles = []
    if "shuffle_null" in present:
        rows = sub[sub["comparison"] == "shuffle_null"].set_index(["layer_a", "layer_b"])
        for i, pair_ in enumerate(pairs):
            if pair_ not in rows.index:
                continue
            row = rows.loc[pair_]
            row = row.iloc[0] if isinstance(row, pd.DataFrame) else row
            ax.fill_between([i - 0.45, i + 0.45], row["ci_low"], row["ci_high"], color="0.6", alpha=0.35,
                            linewidth=0, zorder=1)
            ax.hlines(row["value"], i - 0.45, i + 0.45, color="0.35", linewidth=1.2, zorder=2)
        handles.append(Patch(facecolor="0.6", alpha=0.35, label=_COMPARISON_LABELS["shuffle_null"]))
    for j, comparison in enumerate(comparisons):
        rows = sub[sub["comparison"] == comparison].set_index(["layer_a", "layer_b"])
        xs, ys, lo, hi = [], [], [], []
        for i, pair_ in enumerate(pairs):
            if pair_ not in rows.index:
                continue
            row = rows.loc[pair_]
            row = row.iloc[0] if isinstance(row, pd.DataFrame) else row
            xs.append(i + (j - (len(comparisons) - 1) / 2) * width)
            ys.append(row["value"])
            lo.append(row["ci_low"])
            hi.append(row["ci_high"])
        points = ax.plot(xs, ys, "o", label=_COMPARISON_LABELS.get(comparison, comparison), zorder=3)[0]
        ax.vlines(xs, lo, hi, color=points.get_color(), linewidth=1.5, zorder=3)
        handles.insert(len(handles) - ("shuffle_null" in present), points)
    ax.set_xticks(range(len(pairs)))
    ax.set_xticklabels([f"A{a}–B{b}" for a, b in pairs])
    ax.set_xlim(-0.6, len(pairs) - 0.4)
    ax.set_xlabel("layer pair")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric}: SAE pairs vs baselines ({first['rule']}, {first['direction']})")
    ax.legend(handles=handles, fontsize="small", frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.14),
              ncols=min(3, len(handles)))
    return ax.figure


def policy_label(policy) -> str:
    """A dimension policy in words: ``"0.99"`` -> ``"99% var"``, ``"10"`` -> ``"k=10"``, ``"ratio:50"`` -> ``"k=n/50"``."""
    text = str(policy)
    if text.startswith("ratio:"):
        return f"k=n/{text.split(':', 1)[1]}"
    try:
        value = float(text)
    except ValueError:
        return text
    if "." in text and value < 1:
        return f"{100 * value:g}% var"
    return f"k={int(value)}"


_LINESTYLES = ("-", "--", "-.", (0, (1, 1)))


def plot_sweep(table: pd.DataFrame, x: str, metrics=("svcca", "rsa"), *, hue: str | None = None,
               col: str | None = None, style: str | None = None, ncols: int = 5):
    """Small multiples of a sweep: one panel per (metric, ``col`` value), score vs ``x`` with its null mean.

    Parameters
    ----------
    table : DataFrame
        A ``sweep_*`` table; rows with a non-empty ``skipped`` are left out.
    x : str
        The swept setting. A numeric column is drawn as lines; a categorical
        one (strings, e.g. ``policy``) as separate points on evenly spaced,
        labelled ticks, never joined by lines.
    metrics : sequence of str
        One row of panels each.
    hue, style : str, optional
        Columns told apart by colour and by line style (or marker) within a
        panel.
    col : str, optional
        One panel per value (wrapped after ``ncols`` panels).
    ncols : int, default 5

    Returns
    -------
    matplotlib.figure.Figure
        Not managed by pyplot; one legend for the whole figure, below the
        panels. The shuffled-null mean of each line is dotted in its colour.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    if "skipped" in table:
        table = table[table["skipped"].fillna("") == ""]
    metrics = [m for m in metrics if m in table]
    cols = list(dict.fromkeys(table[col])) if col else [None]
    per_row = max(1, min(ncols, len(cols)))
    blocks = -(-len(cols) // per_row)
    n_rows = len(metrics) * blocks
    fig = Figure(figsize=(max(8.0, 3.4 * per_row), 3.0 * n_rows + 0.8), layout="constrained")
    axes = fig.subplots(n_rows, per_row, squeeze=False)
    categorical = table[x].dtype == object or isinstance(table[x].dtype, pd.StringDtype)
    levels = list(dict.fromkeys(table[x].astype(str))) if categorical else None
    hues = list(dict.fromkeys(table[hue])) if hue else [None]
    styles = list(dict.fromkeys(table[style])) if style else [None]
    colours = {h: f"C{i % 10}" for i, h in enumerate(hues)}
    dashes = {v: _LINESTYLES[i % len(_LINESTYLES)] for i, v in enumerate(styles)}
    markers = {v: "osD^v"[i % 5] for i, v in enumerate(styles)}
    for i, metric in enumerate(metrics):
        for j, value in enumerate(cols):
            ax = axes[i * blocks + j // per_row][j % per_row]
            sub = table if col is None else table[table[col] == value]
            for h in hues:
                for v in styles:
                    g = sub
                    if hue:
                        g = g[g[hue] == h]
                    if style:
                        g = g[g[style] == v]
                    if g.empty:
                        continue
                    if categorical:
                        g = g.assign(_x=[levels.index(t) for t in g[x].astype(str)]).sort_values("_x")
                        offset = (hues.index(h) * len(styles) + styles.index(v)
                                  - (len(hues) * len(styles) - 1) / 2) * 0.08
                        xs = g["_x"].to_numpy(dtype=float) + offset
                        ax.plot(xs, g[metric], linestyle="none", marker=markers[v], color=colours[h])
                        if f"{metric}_null_mean" in g:
                            ax.plot(xs, g[f"{metric}_null_mean"], linestyle="none", marker="_", markersize=12,
                                    color=colours[h], alpha=0.7)
                    else:
                        g = g.sort_values(x)
                        ax.plot(g[x], g[metric], marker=markers[v], markersize=4, linestyle=dashes[v],
                                color=colours[h])
                        if f"{metric}_null_mean" in g:
                            ax.plot(g[x], g[f"{metric}_null_mean"], linestyle=":", color=colours[h], alpha=0.7)
            if categorical:
                labels = [policy_label(t) if x == "policy" else t for t in levels]
                ax.set_xticks(range(len(levels)), labels, rotation=35, ha="right", fontsize="small")
            ax.set_title(f"{metric}" + (f" · {value}" if col else ""), fontsize="small")
            ax.set_xlabel(x)
            if j % per_row == 0:
                ax.set_ylabel(metric)
        for j in range(len(cols), blocks * per_row):
            axes[i * blocks + j // per_row][j % per_row].set_visible(False)
    handles = []
    for h in hues:
        for v in styles:
            name = " · ".join(str(t) for t in (h, v) if t is not None) or "score"
            handles.append(Line2D([], [], color=colours[h], marker=markers[v],
                                  linestyle="none" if categorical else dashes[v], label=name))
    null_style = dict(linestyle="none", marker="_", markersize=12) if categorical else dict(linestyle=":")
    handles.append(Line2D([], [], color="0.4", label="shuffled-null mean", **null_style))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(4, len(handles)), fontsize="small",
               frameon=False)
    return fig
# --------------------------------------------------------------------------- findings


FINDING_NAMES = {"full_space": "A against B", "seed": "two SAEs of model A", "control": "the authors' random model",
                 "control_all": "the every-tensor random model"}
"""How :func:`findings` names each comparison of :meth:`saesim.config.Profile.comparisons`."""


def findings(frames, metric: str = "rsa", *, alpha: float = 0.05, baselines: pd.DataFrame | None = None,
             depth: tuple[tuple[int, ...], tuple[int, ...]] | None = None) -> tuple[list[str], pd.DataFrame]:
    """What the run found, in sentences generated from its tables (not written for one outcome).

    Parameters
    ----------
    frames : mapping of comparison name -> tidy grid table
        One rule and direction each; ``"full_space"`` must be present, the
        controls (``"seed"``, ``"control"``, ``"control_all"``) are used when
        given. Holm-adjusted p-values (``<metric>_p_holm``) are used where present.
    metric : str
        ``"rsa"``, ``"svcca"``, ``"svcca_authors_k"`` or ``"linear_cka"``.
    alpha : float
        Level of the Holm-adjusted tests (one family per comparison: its grid).
    baselines : DataFrame, optional
        A :func:`control_comparison` table (bootstrap CIs, raw-neuron rows).
    depth : (layers of A, layers of B), optional
        The layer lists, to place the peak at a relative depth.

    Returns
    -------
    sentences : list of str
    table : DataFrame
        One row per comparison: cells, cells above the null (Holm), median
        and max excess, the peak cell and its z.
    """
    if "full_space" not in frames:
        raise ValueError("`frames` needs the 'full_space' comparison (A against B).")
    rows = []
    for name, frame in frames.items():
        if frame is None or frame.empty:
            continue
        excess = frame[metric] - frame[f"{metric}_null_mean"]
        p = frame[f"{metric}_p_holm"] if f"{metric}_p_holm" in frame else frame[f"{metric}_p"]
        peak = frame.loc[excess.idxmax()]
        n_perm = int(frame["n_perm"].iloc[0]) if "n_perm" in frame and frame["n_perm"].notna().any() else None
        floor = 1.0 / (n_perm + 1) if n_perm else np.nan
        raw_p = frame[f"{metric}_p"]
        rows.append({"comparison": name, "what": FINDING_NAMES.get(name, name), "cells": len(frame),
                     "cells_above_null": int(((p <= alpha) & (excess > 0)).sum()),
                     "cells_beating_every_draw": int(((raw_p <= floor * (1 + 1e-9)) & (excess > 0)).sum())
                     if n_perm else np.nan,
                     "cells_z_above_3": int((frame[f"{metric}_z"] > 3).sum()), "n_perm": n_perm,
                     "median_excess": float(excess.median()), "max_excess": float(excess.max()),
                     "peak_layer_a": int(peak["layer_a"]), "peak_layer_b": int(peak["layer_b"]),
                     "peak_z": float(peak[f"{metric}_z"]), "median_pairs": float(frame["n_pairs"].median())})
    table = pd.DataFrame(rows)
    by = table.set_index("comparison")
    main = by.loc["full_space"]
    name = metric.upper() if metric in ("rsa", "svcca") else metric
    lines = [f"{name}, A against B: {_significance(main, alpha)}; the median excess over the null is "
             f"{main['median_excess']:+.3f}, the largest {main['max_excess']:+.3f} at A layer {main['peak_layer_a']} – "
             f"B layer {main['peak_layer_b']} (z = {main['peak_z']:.1f})."]
    if depth is not None:
        layers_a, layers_b = (list(x) for x in depth)
        ra = layers_a.index(main["peak_layer_a"]) / max(len(layers_a) - 1, 1)
        rb = layers_b.index(main["peak_layer_b"]) / max(len(layers_b) - 1, 1)
        where = ("in the middle layers of both models" if 0 < ra < 1 and 0 < rb < 1 else
                 "at the first or last layer of one model, not in the middle")
        lines.append(f"The peak sits {where} (relative depth {ra:.2f} in A, {rb:.2f} in B); the paper reports a "
                     f"middle-layer peak for Pythia (authors' finding).")
    main_frame = frames["full_space"].assign(_excess=lambda f: f[metric] - f[f"{metric}_null_mean"])
    for control in ("seed", "control", "control_all"):
        if control not in by.index:
            continue
        row = by.loc[control]
        other = frames[control].assign(_excess=lambda f: f[metric] - f[f"{metric}_null_mean"])
        if control == "seed":
            diagonal = other[other["layer_a"] == other["layer_b"]]["_excess"]
            floor = float(diagonal.median()) if len(diagonal) else float("nan")
            share = main["median_excess"] / floor if floor > 0 else float("nan")
            lines.append(f"Two SAEs of model A at the same layer exceed their null by a median {floor:+.3f}: the "
                         f"seed noise floor. The cross-model median excess is "
                         + (f"{share:.0%} of it." if np.isfinite(share) else "not comparable (the floor is not above 0)."))
            continue
        merged = main_frame.merge(other, on=["layer_a", "layer_b"], suffixes=("", "_ctl"))
        wins = int((merged["_excess"] > merged["_excess_ctl"]).sum())
        lines.append(f"{FINDING_NAMES[control].capitalize()} in A's place: {_significance(row, alpha)}; median "
                     f"excess {row['median_excess']:+.3f} "
                     f"(largest {row['max_excess']:+.3f}, z = {row['peak_z']:.1f}); A against B exceeds it in {wins} "
                     f"of the {len(merged)} layer pairs both cover.")
    if {"control", "control_all"} <= set(by.index):
        gap = by.loc["control", "median_excess"] - by.loc["control_all", "median_excess"]
        lines.append(f"Keeping the embeddings and norms (the authors' control) changes the control's median excess "
                     f"by {gap:+.3f} against resampling every tensor: that much of a random model's similarity to "
                     f"B comes from token-embedding structure alone.")
    if baselines is not None and not baselines.empty:
        sub = baselines[(baselines["metric"] == metric)]
        raw = sub[sub["comparison"] == "raw_neuron"]
        sae = sub[sub["comparison"] == "sae"]
        if len(raw) and len(sae):
            merged = sae.merge(raw, on=["layer_a", "layer_b", "rule", "direction"], suffixes=("", "_raw"))
            beats = int((merged["ci_low"] > merged["ci_high_raw"]).sum())
            lines.append(f"Against the raw-neuron baseline (neurons paired directly, no SAE): the SAE pairs' interval "
                         f"lies wholly above the raw neurons' in {beats} of {len(merged)} baseline layer pairs; "
                         f"median effects {merged['effect'].median():+.3f} (SAE) against "
                         f"{merged['effect_raw'].median():+.3f} (raw).")
    return lines, table


def _significance(row, alpha: float) -> str:
    """How many cells lie above their null, and whether the permutation count lets Holm say so at all."""
    cells, above = int(row["cells"]), int(row["cells_above_null"])
    text = f"{above} of {cells} layer pairs lie above their null (Holm over the grid, alpha {alpha:g})"
    n_perm = row.get("n_perm")
    if n_perm is None or not np.isfinite(n_perm):
        return text
    n_perm = int(n_perm)
    every = int(row["cells_beating_every_draw"])
    text += (f"; {every} beat every one of their {n_perm} permutations (the smallest p a permutation test can "
             f"give, 1/{n_perm + 1}) and {int(row['cells_z_above_3'])} have z > 3")
    if cells / (n_perm + 1) >= alpha:
        needed = int(np.ceil(cells / alpha)) - 1
        text += (f" — with {n_perm} permutations Holm over {cells} tests cannot reject at {alpha:g} whatever the "
                 f"data (it needs at least {needed}; `saesim run --n-perm {needed}`)")
    return text
