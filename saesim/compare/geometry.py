"""Similarity of two paired point clouds: SVCCA, PWCCA, RSA, linear CKA, Procrustes.

Row ``i`` of ``x`` (n x d_x) and row ``i`` of ``y`` (n x d_y) describe the same
pair, typically the decoder rows of a pair of matched SAE latents; the widths
may differ. Every measure returns a :class:`SimilarityResult`, and
:data:`MEASURES` says for each one whether higher means more similar and what
its range is.

Each measure is computed by a *prepared* object (see :func:`prepare`) that does
once everything a permutation of the rows of ``y`` leaves unchanged (PCA bases,
centring, norms, RSM ranks) and then scores any row permutation cheaply. The
plain functions (:func:`svcca`, :func:`rsa`, ...) are that same object scored
at the identity, so the observed score and the null scores of
:func:`saesim.compare.nulls.permutation_test` share one formula; the null evaluates
it on batches of permutations in float32, within 1e-5
(:meth:`PreparedMeasure.scores`).

``svcca(..., compat=True)`` reproduces the authors' ReSi-derived SVCCA, which
keeps one principal component per side for realistic inputs (see
:func:`svcca`, Notes).

Dimension policy of the CCA family (SVCCA, PWCCA), the ``variance`` option:

* a float in (0, 1]: per side, the fewest principal components reaching that
  fraction of the variance;
* an int k >= 1: k components per side;
* a string ``"ratio:R"`` (R > 0): k = floor(n_distinct / R) components per
  side (at least 1), n_distinct the side's distinct rows, so that there are at
  least R distinct points per kept dimension — CCA on k dimensions with few
  points per dimension finds large canonical correlations even between
  unrelated clouds. In a 1-1 pairing n_distinct is n_pairs; the hub side of a
  many-to-1 pairing counts each partner once.

Every policy is capped at the numerical rank and at n_pairs - 1; the result
always reports ``k_x``, ``k_y`` and ``n_pairs``.

The measures themselves live in private modules of :mod:`saesim.compare`,
one each, in the style of netrep's metrics (import from here, not there):

* ``_measure`` — what every measure shares: :data:`MEASURES`,
  :class:`MeasureInfo`, :class:`SimilarityResult`, :class:`PreparedMeasure`,
  :class:`DegenerateInputWarning`;
* ``_permuted`` — the batched float32 kernels of permuted pairings;
* ``_svcca``, ``_pwcca``, ``_rsa``, ``_cka``, ``_procrustes`` — one measure
  each: its prepared object and its function.

This module dispatches by name (:func:`prepare`, :func:`similarity`). The
expensive per-side factors (a side's centred SVD, RSA's RSM ranks) are
remembered by content in one :class:`~saesim.compare.subspace.FactorCache`:
pass your own as ``prepare(..., cache=...)``, or let every measure and null
share :data:`~saesim.compare.subspace.FACTOR_CACHE` (``FACTOR_CACHE.clear()``
empties it). A cached factor is what recomputing it gives, so the cache never
changes a score.

References
----------
Lan et al., "Sparse Autoencoders Reveal Universal Feature Spaces Across Large
Language Models", arXiv:2410.06981 (2024), Sec. 3.

Raghu, Gilmer, Yosinski and Sohl-Dickstein, "SVCCA: Singular Vector Canonical
Correlation Analysis for Deep Learning Dynamics and Interpretability",
NeurIPS 2017.

Kriegeskorte, Mur and Bandettini, "Representational similarity analysis",
Front. Syst. Neurosci. 2 (2008).

Kornblith, Norouzi, Lee and Hinton, "Similarity of Neural Network
Representations Revisited", ICML 2019.

Morcos, Raghu and Bengio, "Insights on representational similarity in neural
networks with canonical correlation", NeurIPS 2018 (PWCCA).

Klabunde, Schumacher, Strohmaier and Lemmerich, "Similarity of Neural Network
Models: A Survey of Functional and Representational Measures",
arXiv:2305.06329 (2023).
"""

from __future__ import annotations

from saesim.compare._cka import PreparedCKA, linear_cka
from saesim.compare._measure import (
    MEASURES,
    DegenerateInputWarning,
    MeasureInfo,
    MeasureName,
    PreparedMeasure,
    SimilarityResult,
    check_measure,
    checked_rows,
)
from saesim.compare._procrustes import PreparedProcrustes, procrustes
from saesim.compare._pwcca import PWCCA_DEFAULT_VARIANCE, PreparedPWCCA, pwcca
from saesim.compare._rsa import RSM_DECIMALS, PreparedRSA, centred_rsm_ranks, rsa
from saesim.compare._rsa import average_ranks as _average_ranks  # noqa: F401  (old name, used by tests)
from saesim.compare._svcca import DEFAULT_VARIANCE, PreparedSVCCA, svcca

# The tolerances, the dimension policy and the factor cache live in saesim.compare.subspace (shared with the
# nulls); the constants stay importable from here, as before.
from saesim.compare.subspace import (
    AUTHORS_VARIANCE,
    CONSTANT_RTOL,
    FACTOR_CACHE,
    GRAM_RANK_RTOL,
    RANK_RTOL,
    VARIANCE_RTOL,
    FactorCache,
)

__all__ = [
    "AUTHORS_VARIANCE",
    "CONSTANT_RTOL",
    "DEFAULT_VARIANCE",
    "FACTOR_CACHE",
    "MEASURES",
    "RANK_RTOL",
    "RSM_DECIMALS",
    "VARIANCE_RTOL",
    "DegenerateInputWarning",
    "FactorCache",
    "MeasureInfo",
    "MeasureName",
    "PreparedMeasure",
    "SimilarityResult",
    "linear_cka",
    "prepare",
    "procrustes",
    "pwcca",
    "rsa",
    "similarity",
    "svcca",
]

# Also public here, as before the split: GRAM_RANK_RTOL, PWCCA_DEFAULT_VARIANCE, check_measure and
# centred_rsm_ranks (imported above; the nulls use the last two).

_PREPARED = {
    "svcca": PreparedSVCCA,
    "pwcca": PreparedPWCCA,
    "rsa": PreparedRSA,
    "linear_cka": PreparedCKA,
    "procrustes": PreparedProcrustes,
}


def prepare(x, y, measure: MeasureName, *, cache: FactorCache | None = None, **options) -> PreparedMeasure:
    """Do once what a row permutation of ``y`` leaves unchanged, for repeated scoring.

    Parameters
    ----------
    x : array_like, shape (n, d_x)
        One point cloud; row ``i`` pairs with row ``i`` of ``y``.
    y : array_like, shape (n, d_y)
        The other point cloud.
    measure : {"svcca", "pwcca", "rsa", "linear_cka", "procrustes"}
        Which measure.
    cache : FactorCache, optional
        Where the per-side factors (centred SVDs, RSM ranks) are remembered;
        the shared :data:`~saesim.compare.subspace.FACTOR_CACHE` by default.
        It changes the time a score takes, never the score.
    **options
        The measure's options (``variance``, ``compat`` for SVCCA; ``variance``
        for PWCCA).

    Returns
    -------
    PreparedMeasure
        ``score(perm)`` gives the statistic of ``(x, y[perm])`` and
        ``result()`` the observed :class:`SimilarityResult`.

    Raises
    ------
    ValueError
        If ``measure`` is unknown or the rows are invalid (see the measures).
    TypeError
        If an option does not belong to ``measure``.

    Notes
    -----
    What each prepared measure keeps, and what a permutation costs:

    * SVCCA: orthonormal PC-score bases ``U_x`` (n x k_x), ``U_y``; the
      singular values of ``U_x^T P U_y`` (k_x x k_y). In compat mode k = 1,
      so one dot product.
    * PWCCA: the same bases plus the projections of the weighted side's
      centred columns onto its basis; a permutation costs the SVD of the
      k_x x k_y matrix and one (k x d) product for the weights.
    * RSA: the centred ranks of both condensed RSMs; permuting ``y``'s rows
      permutes the RSM's indices, so the ranks are re-indexed, not recomputed.
    * linear CKA: centred factors and the denominator; ``||Xc^T P Yc||_F``.
    * Procrustes: normalised factors; the nuclear norm of ``X^T P Y``.

    ``scores(perms)`` scores a batch of permutations in float32 (torch
    products, batched; for RSA, and for linear CKA when n is small against
    d_x d_y, re-indexed n x n matrices), within 1e-5 of ``score`` (see
    :func:`saesim.compare.nulls.permutation_test`). When one side repeats rows (a
    many-to-1 pairing), the products run over its distinct rows only.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.standard_normal((30, 4)), rng.standard_normal((30, 5))
    >>> prepared = prepare(x, y, "linear_cka")
    >>> perm = rng.permutation(30)
    >>> bool(np.isclose(prepared.score(perm), linear_cka(x, y[perm]).statistic))
    True
    """
    measure = check_measure(measure, options)
    x, y = checked_rows(x, y, measure)
    return _PREPARED[measure](x, y, cache=cache, **options)


def similarity(x, y, measure: MeasureName, *, cache: FactorCache | None = None, **options) -> SimilarityResult:
    """Any measure by name: ``similarity(x, y, "svcca", compat=True)``.

    Parameters
    ----------
    x : array_like, shape (n, d_x)
        One point cloud; row ``i`` pairs with row ``i`` of ``y``.
    y : array_like, shape (n, d_y)
        The other point cloud.
    measure : {"svcca", "pwcca", "rsa", "linear_cka", "procrustes"}
        Which measure.
    cache : FactorCache, optional
        Where the per-side factors (centred SVDs, RSM ranks) are remembered;
        the shared :data:`~saesim.compare.subspace.FACTOR_CACHE` by default.
        It changes the time a score takes, never the score.
    **options
        The measure's options (``variance``, ``compat`` for SVCCA; ``variance``
        for PWCCA).

    Returns
    -------
    SimilarityResult
        As returned by the named function.

    Raises
    ------
    ValueError
        If ``measure`` is unknown or the rows are invalid.
    TypeError
        If an option does not belong to ``measure``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).standard_normal((40, 3))
    >>> round(similarity(x, x, "procrustes").statistic, 6)
    1.0
    """
    return prepare(x, y, measure, cache=cache, **options).result()
