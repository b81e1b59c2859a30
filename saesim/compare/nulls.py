"""Null distributions and p-values for paired similarity scores.

* :func:`permutation_test`: the paper's null. Shuffle the pairing (permute the
  rows of ``y``) and rescore. Each measure is prepared once
  (:func:`saesim.compare.geometry.prepare`), so a permutation costs one small product
  (SVCCA: the singular values of a k_x x k_y matrix) instead of a full
  recomputation, and permutations are scored in float32 batches
  (:meth:`saesim.compare.geometry.PreparedMeasure.scores`).
* ``permutation_test(..., groups=...)``: the many-to-1 null. A many-to-1
  pairing repeats its hub partners (several B latents share one A latent);
  shuffling rows breaks those repeats and makes the null too low. The group
  null keeps them: the distinct hub partners are permuted among the groups of
  pairs that share one, the other side stays fixed. The fixed side is
  prepared once; a draw recomputes only the hub side, on its distinct rows
  weighted by the size of the group they land in.
* :func:`random_subset_null`: score ``n`` random, unpaired latents drawn from
  each full dictionary (the authors' ``score_rand``).
* :func:`p_value`: the Phipson-Smyth estimator ``(1 + b) / (1 + P)``, which is
  never 0; ``compat=True`` gives the authors' ``mean(null >= score)``.

All randomness comes from ``numpy.random.default_rng(seed)`` (or a Generator
you pass): the same seed gives the same null.

References
----------
Phipson and Smyth, "Permutation p-values should never be zero: calculating
exact p-values when permutations are randomly drawn", Stat. Appl. Genet. Mol.
Biol. 9 (2010).

Lan et al., "Sparse Autoencoders Reveal Universal Feature Spaces Across Large
Language Models", arXiv:2410.06981 (2024), Sec. 3.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from tqdm.auto import tqdm

from saesim.validation import SeedLike, as_generator, check_paired_rows, check_positive_int
from saesim.compare._group_null import GroupNull, validate_groups
from saesim.compare.geometry import (
    MEASURES,
    MeasureName,
    SimilarityResult,
    check_measure,
    prepare,
)

__all__ = [
    "NULL_ATOL",
    "PERM_CHUNK",
    "TIE_RTOL",
    "GroupSide",
    "NullDistribution",
    "PermutationResult",
    "p_value",
    "permutation_test",
    "permutation_tests",
    "random_subset_null",
]

TIE_RTOL = 1e-12
"""Null values within this relative distance below the score count as ties (>=)."""

NULL_ATOL = 1e-5
"""Null values computed in float32 are within this (absolute) of float64 recomputation."""

PERM_CHUNK = 64
"""Permutations drawn and scored per batch by :func:`permutation_test`."""

GroupSide = Literal["x", "y"]
"""Which point cloud of :func:`permutation_test` holds the hub partners that ``groups`` label."""


def p_value(score: float, null, *, compat: bool = False) -> float:
    """One-sided p-value of an observed score against a null sample.

    Parameters
    ----------
    score : float
        The observed statistic (higher = more similar, as for every measure
        in :data:`saesim.compare.geometry.MEASURES`).
    null : array_like, shape (P,)
        Statistics drawn under the null.
    compat : bool, default False
        Use the authors' estimator ``mean(null >= score)``.

    Returns
    -------
    float
        ``(1 + b) / (1 + P)`` with ``b = #{null >= score}``, in
        ``[1 / (1 + P), 1]``, never 0. With ``compat=True``, ``b / P``, which
        is 0 when no null value reaches the score. NaN when ``score`` is NaN.

    Raises
    ------
    ValueError
        If ``null`` is not 1-D, is empty, or has no finite value.

    Notes
    -----
    Null values that are NaN (a degenerate draw) are dropped before counting,
    so P is the number of finite values; ``compat=True`` keeps the authors'
    arithmetic on the whole array. A null value counts as reaching the score
    when ``null >= score - TIE_RTOL * |score|``, so rounding in the last
    digits does not break exact ties (e.g. the identity permutation).

    Examples
    --------
    >>> p_value(0.9, [0.1, 0.2, 0.3])
    0.25
    >>> p_value(0.9, [0.1, 0.2, 0.3], compat=True)
    0.0
    """
    null = np.asarray(null, dtype=np.float64)
    if null.ndim != 1 or null.size == 0:
        raise ValueError(
            f"`null` must be a non-empty 1-D array of null statistics; got shape {null.shape}. "
            "Draw at least one permutation."
        )
    if np.isnan(score):
        return float("nan")
    if compat:
        return float(np.mean(null >= score))
    finite = null[np.isfinite(null)]
    if finite.size == 0:
        raise ValueError(
            "`null` has no finite values (every draw was degenerate); check the inputs for "
            "constant rows."
        )
    hits = int(np.count_nonzero(finite >= score - TIE_RTOL * abs(score)))
    return (1 + hits) / (1 + finite.size)


def _summary(null: np.ndarray) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; NaN for fewer than 2 draws)."""
    mean = float(np.mean(null))
    std = float(np.std(null, ddof=1)) if null.size > 1 else float("nan")
    return mean, std


def _z(score: float, mean: float, std: float) -> float:
    return (score - mean) / std if std > 0 else float("nan")


def _recorded_seed(seed: SeedLike) -> int | None:
    return int(seed) if isinstance(seed, numbers.Integral) else None


class _AgainstNull:
    """p-value and z of any score against the ``null`` of a result."""

    null: np.ndarray
    null_mean: float
    null_std: float

    def p_value_for(self, score: float, *, compat: bool = False) -> float:
        """p-value of ``score`` against this null (see :func:`p_value`)."""
        return p_value(score, self.null, compat=compat)

    def z_for(self, score: float) -> float:
        """``(score - null_mean) / null_std``; NaN when the null has no spread."""
        return _z(score, self.null_mean, self.null_std)


@dataclass(frozen=True)
class PermutationResult(_AgainstNull):
    """Observed score, its permutation null (shuffled pairings or permuted hubs) and p-value.

    Attributes
    ----------
    metric : str
        Key of :data:`saesim.compare.geometry.MEASURES`.
    score : float
        The observed (paired) statistic.
    null : ndarray of float64, shape (n_perm,)
        Statistics of the permuted pairings, in draw order.
    null_mean, null_std : float
        Mean and sample standard deviation (ddof = 1) of ``null``.
    p_value : float
        Phipson-Smyth p-value ``(1 + #{null >= score}) / (1 + n_perm)``;
        ``p_value_for(score, compat=True)`` gives the authors' estimator.
    z : float
        ``(score - null_mean) / null_std``; NaN when ``null_std`` is 0.
    n_perm : int
        Number of permutations.
    seed : int or None
        The integer seed; None when a Generator or None was passed.
    n_pairs : int
        Number of paired rows.
    observed : SimilarityResult
        The full observed result (SVCCA's k_x, k_y, canonical correlations...).
    kind : {"shuffle", "group"}
        ``"shuffle"``: rows of ``y`` permuted; ``"group"``: distinct hub
        partners permuted among their groups (``groups`` given).
    n_groups : int or None
        Number of distinct hub partners (groups) of a ``"group"`` null; None
        for ``"shuffle"``.
    """

    metric: str
    score: float
    null: np.ndarray = field(repr=False, compare=False)
    null_mean: float
    null_std: float
    p_value: float
    z: float
    n_perm: int
    seed: int | None
    n_pairs: int
    observed: SimilarityResult = field(repr=False)
    kind: str = "shuffle"
    n_groups: int | None = None

    def to_dict(self) -> dict:
        """One tidy-table row: the test's summary plus the observed result's fields."""
        row = {
            "metric": self.metric,
            "kind": self.kind,
            "score": self.score,
            "null_mean": self.null_mean,
            "null_std": self.null_std,
            "p_value": self.p_value,
            "z": self.z,
            "n_perm": self.n_perm,
            "seed": self.seed,
            "n_pairs": self.n_pairs,
            "n_groups": self.n_groups,
        }
        observed = self.observed.to_dict()
        for key in ("measure", "statistic", "n_pairs"):
            observed.pop(key)
        row.update(observed)
        return row


@dataclass(frozen=True)
class NullDistribution(_AgainstNull):
    """A null sample with no observed score (e.g. random unpaired subsets).

    Attributes
    ----------
    metric : str
        Key of :data:`saesim.compare.geometry.MEASURES`.
    null : ndarray of float64, shape (n_draw,)
        The null statistics, in draw order.
    null_mean, null_std : float
        Mean and sample standard deviation (ddof = 1) of ``null``.
    n_draw : int
        Number of draws.
    seed : int or None
        The integer seed; None when a Generator or None was passed.
    n_pairs : int
        Rows per side in each draw.
    options : dict
        The metric's options (``variance``, ``compat`` for SVCCA).
    kind : str
        ``"random_subset"``.

    Use ``p_value_for(score)`` and ``z_for(score)`` for an observed score.
    """

    metric: str
    null: np.ndarray = field(repr=False, compare=False)
    null_mean: float
    null_std: float
    n_draw: int
    seed: int | None
    n_pairs: int
    options: dict = field(default_factory=dict)
    kind: str = "random_subset"

    def to_dict(self) -> dict:
        """One tidy-table row (the null array left out; ``options`` flattened)."""
        row = {
            "metric": self.metric,
            "kind": self.kind,
            "null_mean": self.null_mean,
            "null_std": self.null_std,
            "n_draw": self.n_draw,
            "seed": self.seed,
            "n_pairs": self.n_pairs,
        }
        row.update(self.options)
        return row


def _check_dictionary(w, name: str) -> np.ndarray:
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2:
        raise ValueError(f"`{name}` must be 2-D (latents x dims); got shape {w.shape}.")
    if not np.all(np.isfinite(w)):
        raise ValueError(f"`{name}` contains NaN or infinite values; pass finite decoder rows.")
    return w


def permutation_test(
    x,
    y,
    metric: MeasureName,
    *,
    n_perm: int = 1000,
    seed: SeedLike = 0,
    groups=None,
    group_side: GroupSide = "x",
    progress: bool = False,
    **metric_kwargs,
) -> PermutationResult:
    """Score paired rows and compare the score with permuted pairings.

    Parameters
    ----------
    x : array_like, shape (n, d_x)
        One point cloud; row ``i`` pairs with row ``i`` of ``y``.
    y : array_like, shape (n, d_y)
        The other point cloud; its rows are permuted for the shuffle null.
    metric : {"svcca", "pwcca", "rsa", "linear_cka", "procrustes"}
        The similarity measure.
    n_perm : int, default 1000
        Number of permuted pairings.
    seed : int, numpy.random.Generator or None, default 0
        Source of the permutations; the same seed gives the same null.
    groups : array_like of int, shape (n,), optional
        The hub partner of each pair, on side ``group_side`` (for a many-to-1
        pairing with direction "b_to_a", ``pairs.a``): pairs with the same
        label share that side's row. Given, the null is the group null
        (``kind="group"``): the distinct partners are permuted among the
        groups, each group of pairs getting, as a group, another partner's
        row, and the other side stays fixed. None (default): the row shuffle
        (``kind="shuffle"``).
    group_side : {"x", "y"}, default "x"
        Which side ``groups`` labels, i.e. which side repeats its rows
        ("x" = A for "b_to_a", "y" = B for "a_to_b"). Ignored without
        ``groups``.
    progress : bool, default False
        Show a tqdm progress bar over the permutations.
    **metric_kwargs
        Options of the measure, e.g. ``variance`` and ``compat`` for SVCCA.

    Returns
    -------
    PermutationResult
        The observed score, the null, its mean/std, the p-value and z.

    Raises
    ------
    ValueError
        If ``metric`` is unknown (the message lists the valid names), the rows
        are invalid (mismatched counts, NaN, too few), ``n_perm < 1``,
        ``groups`` is not one integer label per pair, two pairs with one label
        have different rows on ``group_side``, or ``group_side`` is not "x"
        or "y".
    TypeError
        If ``n_perm`` is not an int, ``seed`` is of the wrong type, or an
        option does not belong to ``metric``.

    Warns
    -----
    DegenerateInputWarning
        If the measure is undefined on the input (score, null and p are NaN).

    Notes
    -----
    Permutation ``i`` is the ``i``-th call of ``rng.permutation(n)`` on
    ``rng = as_generator(seed)``, and ``null[i]`` is the statistic of
    ``(x, y[perm_i])``. What a row permutation leaves unchanged is computed
    once (see :func:`saesim.compare.geometry.prepare`), and the permutations are
    scored in batches of ``PERM_CHUNK`` by
    :meth:`~saesim.compare.geometry.PreparedMeasure.scores`. The null is computed in
    float32 for SVCCA, PWCCA, RSA, linear CKA and Procrustes: each value is
    within ``NULL_ATOL`` = 1e-5 (absolute) of brute-force float64
    recomputation (typically within 1e-6). Null values within ``NULL_ATOL``
    of the observed score are recomputed in float64 (``score(perm)``), so
    ties with the score (the identity permutation, a statistic no
    permutation changes) and hence the p-value are those of a float64 null;
    a statistic that barely varies pays float64 cost for such values. The
    observed score is float64. The p-value is
    ``(1 + #{null >= score}) / (1 + n_perm)``; the authors used
    ``mean(null >= score)`` with 1-1000 unseeded shuffles
    (``result.p_value_for(result.score, compat=True)``). With the authors'
    k = 1 SVCCA (``compat=True``) the null tests only whether the first
    principal-component scores correlate.

    The group null (``groups`` given; the many-to-1 null). Number the m
    distinct labels in order of first appearance, let ``c_j`` be the
    ``group_side`` row of partner ``j`` and ``g_i`` the partner of pair ``i``.
    Draw ``i`` takes ``perm = rng.permutation(m)`` (the same calls as the
    shuffle) and gives group ``perm[j]`` the row of partner ``j``: row ``i``
    of the hub side becomes ``c[argsort(perm)[g_i]]``, the other side is
    unchanged. Group sizes are kept, and so is the repetition of hub rows
    that a row shuffle destroys: under no correspondence, pairs sharing a hub
    partner are near-duplicates on the other side too (they were chosen for
    correlating with the same latent), which a shuffle scores as chance while
    the group null does not. With every group of size 1 (a 1-1 pairing) the
    group null is the row shuffle: the same seed gives the same null, within
    ``NULL_ATOL``. The hub side changes its multiset of rows with the draw
    (partner ``j`` appears as often as the group it lands in is large), so
    its PCA basis, centring, norms or RSM ranks are recomputed per draw, on
    the m distinct rows with those weights (SVCCA: the eigendecomposition of
    their weighted covariance, or the SVD of the m x min(m, d) rows when the
    covariance cannot resolve the kept part; RSA: weighted average ranks of
    the m(m+1)/2 distinct RSM entries, sorted once); the other side is
    prepared once and summed per group. PWCCA recomputes each draw from
    scratch. Each metric runs over a chunk of ``PERM_CHUNK`` draws on its
    own (its working set then stays in cache). The group null is float64
    (RSA's scattered ranks are float32, exact below about 5 800 pairs);
    values within ``NULL_ATOL`` of the score are recomputed from scratch, as
    for the shuffle.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((100, 5))
    >>> q, _ = np.linalg.qr(rng.standard_normal((7, 7)))
    >>> y = x @ q[:5] + 0.1 * rng.standard_normal((100, 7))  # a noisy rotated copy
    >>> res = permutation_test(x, y, "linear_cka", n_perm=99, seed=0)
    >>> res.score > 0.95, res.p_value, res.p_value_for(res.score, compat=True)
    (True, 0.01, 0.0)

    A many-to-1 pairing: 30 B rows share 10 A partners (``groups``).

    >>> hubs = np.repeat(np.arange(10), 3)
    >>> a_rows, b_rows = rng.standard_normal((10, 5))[hubs], rng.standard_normal((30, 6))
    >>> res = permutation_test(a_rows, b_rows, "linear_cka", n_perm=20, seed=0, groups=hubs)
    >>> res.kind, res.n_groups, res.null.shape
    ('group', 10, (20,))
    """
    return permutation_tests(x, y, [(metric, metric_kwargs)], n_perm=n_perm, seed=seed, groups=groups,
                             group_side=group_side, progress=progress)[0]


def permutation_tests(
    x,
    y,
    measures,
    *,
    n_perm: int = 1000,
    seed: SeedLike = 0,
    groups=None,
    group_side: GroupSide = "x",
    progress: bool = False,
) -> list[PermutationResult]:
    """:func:`permutation_test` of several measures on the same draws, sharing their work.

    ``measures`` is a sequence of ``(metric, options)``, e.g.
    ``[("svcca", {"variance": "ratio:10"}), ("svcca", {"compat": True}), ("rsa", {})]``.
    Result ``i`` equals ``permutation_test(x, y, *measures[i], n_perm=n_perm, seed=seed, ...)``
    for an int ``seed`` (a Generator is drawn from once, for all measures): every measure sees
    the same permutations, so the group null's SVCCA variants share each draw's weighted
    covariance and its eigendecomposition.
    """
    measures = [(metric, dict(options)) for metric, options in measures]
    if not measures:
        raise ValueError("`measures` is empty; pass e.g. [('svcca', {}), ('rsa', {})].")
    for metric, options in measures:
        check_measure(metric, options, name="metric")
    n_perm = check_positive_int(n_perm, "n_perm", fix="Use e.g. n_perm=1000.")
    rng = as_generator(seed)
    min_rows = max(MEASURES[metric].min_rows for metric, _ in measures)
    x, y = check_paired_rows(x, y, name_x="x", name_y="y", min_rows=min_rows)
    labels = None if groups is None else validate_groups(groups, group_side, x, y)
    prepared = [prepare(x, y, metric, **options) for metric, options in measures]
    observed = [measure.result() for measure in prepared]
    scores = [result.statistic for result in observed]
    n = prepared[0].n_pairs
    nulls = [np.empty(n_perm) for _ in measures]
    description = "/".join(metric for metric, _ in measures) + " null"
    with tqdm(total=n_perm, desc=description, disable=not progress) as bar:
        if labels is None:
            for start in range(0, n_perm, PERM_CHUNK):
                perms = np.stack([rng.permutation(n) for _ in range(min(PERM_CHUNK, n_perm - start))])
                for measure, score, null in zip(prepared, scores, nulls):
                    chunk = measure.scores(perms)
                    for i in np.flatnonzero(np.abs(chunk - score) <= NULL_ATOL):
                        chunk[i] = measure.score(perms[i])
                    null[start:start + len(perms)] = chunk
                bar.update(len(perms))
        else:
            kernels = [None if measure.degenerate else GroupNull(x, y, labels, group_side, metric, options)
                       for measure, (metric, options) in zip(prepared, measures)]
            for null, kernel in zip(nulls, kernels):
                if kernel is None:
                    null[:] = np.nan
            live = [(kernel, score, null) for kernel, score, null in zip(kernels, scores, nulls) if kernel]
            # Measures of one metric share a draw's work (SVCCA variants: the weighted covariance
            # and its eigendecomposition); each metric then runs over a chunk of draws on its own,
            # which keeps its working set in cache (interleaving SVCCA with RSA's pass over a
            # million entries per draw made both about 1.7x slower).
            families = {}
            for entry in live:
                families.setdefault(entry[0].metric, []).append(entry)
            n_groups = int(labels.max()) + 1
            for start in range(0, n_perm, PERM_CHUNK):
                perms = [rng.permutation(n_groups) for _ in range(min(PERM_CHUNK, n_perm - start))]
                for family in families.values():
                    for i, perm in enumerate(perms, start=start):
                        shared: dict = {}  # this draw's work that several measures need
                        for kernel, score, null in family:
                            null[i] = kernel.score(perm, shared)
                            if abs(null[i] - score) <= NULL_ATOL:
                                null[i] = kernel.recompute(perm)
                bar.update(len(perms))
    results = []
    for (metric, _), result, score, null in zip(measures, observed, scores, nulls):
        mean, std = _summary(null)
        results.append(PermutationResult(
            metric=metric,
            score=score,
            null=null,
            null_mean=mean,
            null_std=std,
            p_value=p_value(score, null),
            z=_z(score, mean, std),
            n_perm=n_perm,
            seed=_recorded_seed(seed),
            n_pairs=n,
            observed=result,
            kind="shuffle" if labels is None else "group",
            n_groups=None if labels is None else int(labels.max()) + 1,
        ))
    return results


def random_subset_null(
    w_a,
    w_b,
    n: int,
    metric: MeasureName,
    *,
    n_draw: int = 100,
    seed: SeedLike = 0,
    progress: bool = False,
    **metric_kwargs,
) -> NullDistribution:
    """Scores of ``n`` random latents drawn independently from each full dictionary.

    Parameters
    ----------
    w_a : array_like, shape (n_latents_a, d_a)
        Full decoder matrix of SAE A (one row per latent).
    w_b : array_like, shape (n_latents_b, d_b)
        Full decoder matrix of SAE B.
    n : int
        Rows drawn per side and draw (without replacement), typically the
        number of pairs of the observed score.
    metric : {"svcca", "rsa", "linear_cka", "procrustes"}
        The similarity measure.
    n_draw : int, default 100
        Number of random subsets.
    seed : int, numpy.random.Generator or None, default 0
        Source of the draws; the same seed gives the same null.
    progress : bool, default False
        Show a tqdm progress bar over the draws.
    **metric_kwargs
        Options of the measure, e.g. ``variance`` and ``compat`` for SVCCA.

    Returns
    -------
    NullDistribution
        ``kind="random_subset"``; ``p_value_for(score)`` and ``z_for(score)``
        judge an observed score against it.

    Raises
    ------
    ValueError
        If ``metric`` is unknown, a dictionary is not 2-D or not finite,
        ``n`` exceeds either dictionary or is below the measure's minimum, or
        ``n_draw < 1``.
    TypeError
        If ``n`` or ``n_draw`` is not an int, or an option does not belong to
        ``metric``.

    Notes
    -----
    Draw ``i`` takes ``rows_a = rng.choice(n_latents_a, n, replace=False)``
    then ``rows_b = rng.choice(n_latents_b, n, replace=False)`` and scores
    ``(w_a[rows_a], w_b[rows_b])``: row j of one subset is "paired" with row j
    of the other by chance only. Unlike the authors' ``score_rand``, a draw
    that fails is not silently redrawn; a degenerate draw gives NaN (dropped
    by :func:`p_value`).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> w_a, w_b = rng.standard_normal((500, 8)), rng.standard_normal((400, 6))
    >>> null = random_subset_null(w_a, w_b, 50, "linear_cka", n_draw=20, seed=1)
    >>> null.kind, null.null.shape, 0.0 < null.null_mean < 1.0
    ('random_subset', (20,), True)
    """
    check_measure(metric, metric_kwargs, name="metric")
    w_a, w_b = _check_dictionary(w_a, "w_a"), _check_dictionary(w_b, "w_b")
    n = check_positive_int(n, "n", minimum=MEASURES[metric].min_rows,
                           fix=f"{metric!r} needs at least {MEASURES[metric].min_rows} rows per draw.")
    n_draw = check_positive_int(n_draw, "n_draw", fix="Use e.g. n_draw=100.")
    if n > min(w_a.shape[0], w_b.shape[0]):
        raise ValueError(
            f"`n`={n} rows cannot be drawn without replacement from `w_a` ({w_a.shape[0]} rows) "
            f"and `w_b` ({w_b.shape[0]} rows); use n <= {min(w_a.shape[0], w_b.shape[0])}."
        )
    rng = as_generator(seed)
    null = np.empty(n_draw)
    for i in tqdm(range(n_draw), desc=f"{metric} subset null", disable=not progress):
        rows_a = rng.choice(w_a.shape[0], size=n, replace=False)
        rows_b = rng.choice(w_b.shape[0], size=n, replace=False)
        null[i] = prepare(w_a[rows_a], w_b[rows_b], metric, **metric_kwargs).score()
    finite = null[np.isfinite(null)]
    mean, std = _summary(finite) if finite.size else (float("nan"), float("nan"))
    return NullDistribution(
        metric=metric,
        null=null,
        null_mean=mean,
        null_std=std,
        n_draw=n_draw,
        seed=_recorded_seed(seed),
        n_pairs=n,
        options=dict(metric_kwargs),
    )
