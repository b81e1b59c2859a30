"""Bootstrap confidence intervals of a layer pair's paired scores, resampling documents and re-pairing each time.

:func:`bootstrap_ci` resamples *documents* with replacement (the kept token
rows of a document stay together), recomputes correlations, pairing and
filters from the cached codes and rescores through the grid's pipeline
(:func:`saesim.experiments.grid.compare_best`), so a resample is scored
exactly like a cell of the grid: a percentile CI of each paired score,
recentred on the estimate. The filters' top tokens are those of the full
data (labels, not resampled). The per-document sums that make a resample
cheap live in :mod:`saesim.compare.bootstrap`; :class:`BootstrapOptions`
holds the resampling settings, which kept bootstraps hash
(:mod:`saesim.experiments.baselines`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np
import pandas as pd

from saesim.compare.bootstrap import (
    BOOT_CANDIDATES,
    CI_METHOD,
    DenseDocumentMoments,
    DocumentMoments,
    candidate_pairs,
    document_groups,
    document_rows,
    recentred_interval,
)
from saesim.compare.corr import DEFAULT_TOP_M, BestPartners, quiet_best_partners
from saesim.compare.effects import as_float, effect_sizes
from saesim.experiments.grid import CompareSettings, SaeLayer, compare_best
from saesim.validation import check_positive_int

__all__ = [
    "BOOT_METRICS",
    "BootstrapOptions",
    "BootstrapResult",
    "N_BOOT",
    "bootstrap_ci",
    "layer_best_partners",
    "row_documents",
]

BOOT_METRICS = ("svcca", "rsa")
"""Metrics bootstrapped by default."""

N_BOOT = 200
"""Default bootstrap resamples of :class:`BootstrapOptions` (enough for stable 2.5 % / 97.5 % quantiles)."""


@dataclass(frozen=True)
class BootstrapOptions:
    """How :func:`bootstrap_ci` resamples one comparison; every field is hashed into a kept bootstrap's name.

    Attributes
    ----------
    rule : str
        Pairing rule (one of :data:`saesim.compare.match.RULES`); replaces the
        rules of the comparison's :class:`~saesim.experiments.grid.CompareSettings`.
    direction : {"b_to_a", "a_to_b"}, default "b_to_a"
        Which model's latents choose partners; replaces the settings' directions.
    metrics : tuple of str, default :data:`BOOT_METRICS` (``("svcca", "rsa")``)
        Scores to bootstrap; any sequence is stored as a tuple. Replaces the
        settings' metrics.
    n_boot : int, default :data:`N_BOOT` (200)
        Resamples. The interval's ends are quantiles of the resamples: with
        20 they move by about a bootstrap standard error from one seed to
        the next, with 200 by about a third of one.
    seed : int, default 0
        Resample ``b`` draws its documents from ``default_rng([seed, b])``:
        same seed, same CIs; more resamples extend, not change, the first ones.
    level : float, default 0.95
        Coverage of the interval, in (0, 1).
    candidates : int, default :data:`saesim.compare.bootstrap.BOOT_CANDIDATES` (64)
        Full-sample candidate partners per latent and direction among which a
        resample re-chooses partners (fast path).

    Raises
    ------
    ValueError
        If ``n_boot`` or ``candidates`` is not a positive integer or ``level``
        is not in (0, 1).

    Notes
    -----
    :meth:`to_dict` is the plain dict of the fields in this order, the form
    the kept bootstraps' tag hashes (:func:`saesim.experiments.baselines.bootstrap_many`).
    """

    rule: str
    direction: str = "b_to_a"
    metrics: tuple[str, ...] = BOOT_METRICS
    n_boot: int = N_BOOT
    seed: int = 0
    level: float = 0.95
    candidates: int = BOOT_CANDIDATES

    def __post_init__(self):
        n_boot, level, candidates = self.n_boot, self.level, self.candidates
        check_positive_int(n_boot, "n_boot")
        if not 0 < level < 1:
            raise ValueError(f"`level` must lie in (0, 1); got {level!r}.")
        check_positive_int(candidates, "candidates")
        object.__setattr__(self, "metrics", tuple(self.metrics))

    def to_dict(self) -> dict:
        """The fields as a plain dict (field order, values as stored): what a kept bootstrap's tag hashes."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def replace(self, **changes) -> "BootstrapOptions":
        return replace(self, **changes)


def row_documents(profile, *, cache=None) -> np.ndarray:
    """The document of every kept token row of a profile's cached grid (the rows of the codes)."""
    from saesim.extract.pipeline import load_grid

    grid = load_grid(profile, out=cache)
    return grid.doc_pos(np.arange(grid.n_tokens))[0]


def _quiet_best(codes_a, codes_b, *, compat: bool, dense: bool = False, m: int = DEFAULT_TOP_M):
    kwargs = {"backend": "dense"} if dense else {}
    return quiet_best_partners(codes_a, codes_b, compat=compat, m=m, **kwargs)


def _is_dense(layer: SaeLayer) -> bool:
    return isinstance(layer.codes, np.ndarray)


def layer_best_partners(layer_a: SaeLayer, layer_b: SaeLayer, settings: CompareSettings, *,
                        m: int = DEFAULT_TOP_M) -> BestPartners:
    """Best partners of two layers' codes as the grid pairs them (dense search when either side is dense).

    Quiet :func:`saesim.compare.corr.best_partners` (dead latents are
    recorded, not warned about) under ``settings.compat``, keeping the top
    ``m`` candidates per latent.
    """
    codes_a, codes_b = layer_a.codes, layer_b.codes
    return _quiet_best(codes_a, codes_b, compat=settings.compat, dense=_is_dense(layer_a) or _is_dense(layer_b),
                       m=m)


def _first_candidates(best: BestPartners, m: int) -> BestPartners:
    """The same best partners with only the first ``m`` candidates per latent (those of a top-m search)."""
    return replace(best, top_index=best.top_index[:, :m], top_r=best.top_r[:, :m],
                   top_index_a=best.top_index_a[:, :m], top_r_a=best.top_r_a[:, :m])


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
            record[f"{metric}_boot_bias"] = (float(np.nanmedian(values)) - as_float(record.get(metric))
                                             if np.isfinite(values).any() else np.nan)
        record.update({"n_boot": self.n_boot, "boot_seed": self.seed, "ci_level": self.level,
                       "ci_method": CI_METHOD, "boot_n_pairs_median": float(self.samples["n_pairs"].median())})
        return effect_sizes(record)


def bootstrap_ci(layer_a: SaeLayer, layer_b: SaeLayer, row_doc, settings: CompareSettings,
                 options: BootstrapOptions, *, exact: bool = False) -> BootstrapResult:
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
        replaced by the options' ``rule``, ``direction`` and ``metrics``.
    options : BootstrapOptions
        Rule, direction, metrics, resamples, seed, level and candidates.
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
    recentred on the observed score (:func:`saesim.compare.bootstrap.recentred_interval`: the
    resamples' median bias, ``<metric>_boot_bias`` in
    :meth:`BootstrapResult.to_record`, removed), so it always contains the
    estimate; ``ci_method`` names the method.

    *Dense codes* (raw neurons; ``compat`` and ``exact`` off) need no
    candidates: :class:`~saesim.compare.bootstrap.DenseDocumentMoments` keeps every pair's
    per-document cross sums, so each resample's correlations are exact.

    *Fast path* (sparse non-negative codes, ``compat`` and ``exact`` off).
    Every resample still recomputes the correlations and re-chooses the
    partners, but each latent chooses among the pairs on the full-sample
    top-``candidates`` lists (:func:`~saesim.compare.bootstrap.candidate_pairs`: its own list and the
    lists that name it), not among every latent of the other model.
    Per-document sums of those pairs are computed once
    (:class:`~saesim.compare.bootstrap.DocumentMoments`); a resample's r of a candidate pair follows
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
    the score. Hence the long default lists
    (:data:`saesim.compare.bootstrap.BOOT_CANDIDATES`). Pairs
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
    rule, direction, metrics = options.rule, options.direction, options.metrics
    n_boot, seed, level, candidates = options.n_boot, options.seed, options.level, options.candidates
    base = settings.replace(rules=(rule,), directions=(direction,), metrics=metrics)
    order, starts, lengths = document_groups(row_doc, layer_a.codes.shape[0])
    pool = layer_best_partners(layer_a, layer_b, base, m=DEFAULT_TOP_M if exact else max(candidates, DEFAULT_TOP_M))
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
            take = document_rows(draw, order, starts, lengths)
            sub_a, sub_b = replace(layer_a, codes=layer_a.codes[take]), replace(layer_b, codes=layer_b.codes[take])
            record = compare_best(layer_best_partners(sub_a, sub_b, quick), sub_a, sub_b, quick)[0]
        rows.append({"boot": b, "n_tokens": int(record["n_tokens"]), "n_pairs": record["n_pairs"],
                     **{m: record.get(m, np.nan) for m in metrics},
                     **({"svcca_k_x": record.get("svcca_k_x"), "svcca_k_y": record.get("svcca_k_y")}
                        if "svcca" in metrics else {})})
    samples = pd.DataFrame(rows)
    ci = {metric: recentred_interval(samples[metric].to_numpy(dtype=float), as_float(observed.get(metric)), level)
          for metric in metrics}
    return BootstrapResult(observed=observed, samples=samples, metrics=metrics, level=level, n_boot=n_boot,
                           seed=seed, ci=ci)

