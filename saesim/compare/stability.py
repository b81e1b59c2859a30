"""Seed stability of an SAE: how much of one layer's dictionary a second SAE of the same layer finds again.

Two SAEs trained on the same activations with different seeds share only part
of their latents (Paulo and Belrose, 2025). This module measures that share
for two SAEs of one model and layer, the quality figure that DESIGN.md asks
every result to carry beside held-out FVU, dead fraction and L0:

* **by decoder direction** — an optimal one-to-one (Hungarian) matching on the
  dense cosine matrix of the two decoders' rows, ``C = U_a U_b^T``:
  ``pw_mcc`` is the mean cosine of the matched pairs (the pairwise mean
  correlation coefficient), ``shared_dec`` the fraction of the smaller
  dictionary's latents matched at cosine >= 0.7, and ``shared_dec_enc`` the
  fraction whose decoder *and* encoder cosines are both >= 0.7 (Paulo and
  Belrose's criterion);
* **the chance level** — the same matching of random unit directions of the
  same shapes (seeded): what ``pw_mcc`` and ``shared_dec`` are with nothing
  shared;
* **by activation** — the same matching on the Pearson correlation of the two
  SAEs' codes over the same tokens: ``act_mcc`` and ``shared_act``.

The matching is exact: :func:`scipy.optimize.linear_sum_assignment` on the
dense similarity matrix (4096 x 4096 in float64 is 128 MiB and a few seconds).
Correlations come from :class:`saesim.compare.corr.CoactivationMoments`, which
never densifies the codes.

:func:`saesim.report.explore.seed_stability` (the explorer chapter) is a
different statistic: it matches only on the graph of pairs above the
threshold, so its shared count can exceed ``shared_dec`` (the full assignment
may trade one pair above the threshold for two below it), and it reports no
mean over the whole matching.

References
----------
Paulo and Belrose, "Sparse Autoencoders Trained on the Same Data Learn
Different Features", arXiv:2501.16615 (2025).

Song et al., "Position: Mechanistic Interpretability Should Prioritize Feature
Consistency in SAEs", arXiv:2505.20254 (2025).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

from saesim.compare.corr import DEFAULT_CHUNK_ROWS, CoactivationMoments
from saesim.validation import SeedLike, as_generator, check_codes, check_positive_int, check_same_rows

__all__ = [
    "SHARED_THRESHOLD",
    "ActivationStability",
    "StabilityResult",
    "activation_stability",
    "chance_level",
    "correlation_matrix",
    "cosine_matrix",
    "hungarian",
    "sae_stability",
]

SHARED_THRESHOLD = 0.7
"""Cosine (or correlation) at which a matched pair counts as shared (Paulo and Belrose, 2025)."""

_ZERO_NORM = 1e-12
"""A row with a smaller norm has no direction: its cosines are 0."""


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, eq=False)
class ActivationStability:
    """The Hungarian matching of two SAEs' latents by activation correlation (see :func:`activation_stability`).

    Attributes
    ----------
    act_mcc : float
        Mean Pearson r of the ``min(n_a, n_b)`` matched pairs (dead latents
        count as r = 0).
    shared_act : float
        Matched pairs with r >= ``threshold`` over ``min(n_a, n_b)``.
    n_shared_act : int
    n_a, n_b : int
        Latents of the two SAEs.
    n_tokens : int
        Token rows the correlations were computed over.
    n_dead_a, n_dead_b : int
        Latents that never vary over the tokens (r = 0 with everything).
    threshold : float
    a_index, b_index : ndarray of int64, shape (min(n_a, n_b),)
        The matching, sorted by ``a_index``.
    r : ndarray of float64, shape (min(n_a, n_b),)
        The matched pairs' correlations.
    """

    act_mcc: float
    shared_act: float
    n_shared_act: int
    n_a: int
    n_b: int
    n_tokens: int
    n_dead_a: int
    n_dead_b: int
    threshold: float
    a_index: np.ndarray = field(repr=False)
    b_index: np.ndarray = field(repr=False)
    r: np.ndarray = field(repr=False)

    def to_dict(self) -> dict:
        """One tidy-table row (the arrays left out)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("a_index", "b_index", "r")}


@dataclass(frozen=True, eq=False)
class StabilityResult:
    """How reproducible one layer's SAE dictionary is across two SAEs (see :func:`sae_stability`).

    Attributes
    ----------
    pw_mcc : float
        Mean decoder cosine of the ``min(n_a, n_b)`` pairs of the optimal
        one-to-one matching.
    shared_dec : float
        Matched pairs with decoder cosine >= ``threshold`` over ``min(n_a, n_b)``.
    shared_dec_enc : float
        Matched pairs with decoder *and* encoder cosine >= ``threshold`` over
        ``min(n_a, n_b)``; NaN without encoders.
    chance_pw_mcc, chance_shared_dec : float
        ``pw_mcc`` and ``shared_dec`` of random unit directions of the same
        shapes (:func:`chance_level`); NaN when not computed.
    act_mcc, shared_act : float
        The activation matching (:class:`ActivationStability`); NaN without codes.
    n_a, n_b : int
        Latents of the two SAEs.
    d : int
        Width of the decoder rows (the residual stream).
    n_shared_dec : int
    n_shared_dec_enc, n_shared_act : int or None
        None when not measured.
    n_zero_a, n_zero_b : int
        Decoder rows with no direction (zero); their cosines are 0.
    n_tokens : int or None
        Token rows of the codes (None without codes).
    n_dead_a, n_dead_b : int or None
        Latents that never vary over the tokens (None without codes).
    threshold : float
    seed : int or None
        Seed of the chance level (None when a Generator was passed or no
        chance level was computed).
    a_index, b_index : ndarray of int64, shape (min(n_a, n_b),)
        The decoder matching, sorted by ``a_index``.
    cosine : ndarray of float64, shape (min(n_a, n_b),)
        Decoder cosine of each matched pair.
    encoder_cosine : ndarray of float64 or None
        Encoder cosine of each matched pair (None without encoders).
    activation : ActivationStability or None
        The activation matching (None without codes).
    """

    pw_mcc: float
    shared_dec: float
    shared_dec_enc: float
    chance_pw_mcc: float
    chance_shared_dec: float
    act_mcc: float
    shared_act: float
    n_a: int
    n_b: int
    d: int
    n_shared_dec: int
    n_shared_dec_enc: int | None
    n_shared_act: int | None
    n_zero_a: int
    n_zero_b: int
    n_tokens: int | None
    n_dead_a: int | None
    n_dead_b: int | None
    threshold: float
    seed: int | None
    a_index: np.ndarray = field(repr=False)
    b_index: np.ndarray = field(repr=False)
    cosine: np.ndarray = field(repr=False)
    encoder_cosine: np.ndarray | None = field(default=None, repr=False)
    activation: ActivationStability | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        """One tidy-table row (the arrays and the activation object left out)."""
        skip = ("a_index", "b_index", "cosine", "encoder_cosine", "activation")
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in skip}


# --------------------------------------------------------------------------- building blocks


def cosine_matrix(x, y, *, name_x: str = "x", name_y: str = "y") -> np.ndarray:
    """Dense cosine similarity of every row of ``x`` with every row of ``y``.

    Parameters
    ----------
    x : array_like, shape (n_x, d)
    y : array_like, shape (n_y, d)
    name_x, name_y : str
        Names used in error messages.

    Returns
    -------
    ndarray of float64, shape (n_x, n_y)
        Rows with no direction (norm below 1e-12) have cosine 0 with everything.

    Raises
    ------
    ValueError
        Not 2-D, non-finite values, or rows of different widths.

    Examples
    --------
    >>> cosine_matrix([[1.0, 0.0], [0.0, 2.0]], [[3.0, 3.0]]).round(4).tolist()
    [[0.7071], [0.7071]]
    """
    ux, _ = _unit_rows(x, name_x)
    uy, _ = _unit_rows(y, name_y)
    _check_width(ux, uy, name_x, name_y)
    return ux @ uy.T


def hungarian(similarity) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The one-to-one matching of rows to columns with the largest total similarity.

    Parameters
    ----------
    similarity : array_like, shape (n_rows, n_cols)
        Finite values; rectangular input matches ``min(n_rows, n_cols)`` pairs.

    Returns
    -------
    rows, cols : ndarray of int64, shape (min(n_rows, n_cols),)
        The matched pairs, sorted by row.
    values : ndarray of float64
        Their similarities.

    Raises
    ------
    ValueError
        Not 2-D, empty, or non-finite values.

    Notes
    -----
    :func:`scipy.optimize.linear_sum_assignment` with ``maximize=True`` (the
    shortest augmenting path algorithm of Crouse, 2016): an exact optimum.

    Examples
    --------
    >>> rows, cols, values = hungarian([[0.9, 0.8], [0.85, 0.1]])
    >>> rows.tolist(), cols.tolist(), values.tolist()
    ([0, 1], [1, 0], [0.8, 0.85])
    """
    sim = np.asarray(similarity, dtype=np.float64)
    if sim.ndim != 2 or 0 in sim.shape:
        raise ValueError(f"`similarity` must be a non-empty 2-D matrix; got shape {sim.shape}.")
    if not np.all(np.isfinite(sim)):
        raise ValueError("`similarity` contains NaN or infinite values; the matching needs finite weights.")
    rows, cols = linear_sum_assignment(sim, maximize=True)
    rows, cols = rows.astype(np.int64), cols.astype(np.int64)
    return rows, cols, sim[rows, cols]


def correlation_matrix(codes_a, codes_b, *, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> tuple[np.ndarray, np.ndarray,
                                                                                            np.ndarray]:
    """Dense Pearson correlation of every latent of A with every latent of B over the same tokens.

    Parameters
    ----------
    codes_a : scipy.sparse matrix or ndarray, shape (n_tokens, n_a)
    codes_b : scipy.sparse matrix or ndarray, shape (n_tokens, n_b)
        Codes on the same token rows.
    chunk_rows : int, default 65536
        Token rows per sparse product (any value gives the same answer).

    Returns
    -------
    r : ndarray of float64, shape (n_a, n_b)
        Pearson r; 0 for every pair with a dead (constant) latent.
    dead_a, dead_b : ndarray of bool
        Latents that never vary over the tokens.

    Raises
    ------
    ValueError
        Codes that are not 2-D, non-finite, on different rows, or without rows.

    Notes
    -----
    Non-negative sparse codes (SAE latents) go through
    :class:`saesim.compare.corr.CoactivationMoments`: the exact r of every
    co-firing pair, and for every other pair the closed form
    ``r_ij = -(mu_i / sigma_i)(mu_j / sigma_j)``; the codes are never
    densified, only the ``n_a x n_b`` result is. Other input is z-scored
    densely (population standard deviation).

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[1.0, 0.0], [2.0, 1.0], [0.0, 3.0], [0.0, 0.0]])
    >>> r, dead_a, dead_b = correlation_matrix(a, a[:, ::-1])
    >>> np.allclose(r, np.corrcoef(a.T, a[:, ::-1].T)[:2, 2:])
    True
    """
    codes_a = check_codes(codes_a, name="codes_a")
    codes_b = check_codes(codes_b, name="codes_b")
    check_same_rows(codes_a, codes_b, name_a="codes_a", name_b="codes_b")
    n_tokens = codes_a.shape[0]
    if n_tokens == 0:
        raise ValueError("`codes_a` and `codes_b` have no token rows; correlations need tokens.")
    check_positive_int(chunk_rows, "chunk_rows")
    if _nonnegative_sparse(codes_a) and _nonnegative_sparse(codes_b):
        return _sparse_correlation(codes_a, codes_b, int(chunk_rows))
    return _dense_correlation(codes_a, codes_b)


def chance_level(n_a: int, n_b: int, d: int, *, threshold: float = SHARED_THRESHOLD,
                 seed: SeedLike = 0) -> tuple[float, float]:
    """``pw_mcc`` and ``shared_dec`` of two dictionaries of random unit directions.

    Parameters
    ----------
    n_a, n_b : int
        Latents of the two dictionaries.
    d : int
        Width of the directions.
    threshold : float, default 0.7
    seed : int, Generator or None, default 0

    Returns
    -------
    pw_mcc, shared_dec : float
        Mean cosine of the optimal matching and the fraction of
        ``min(n_a, n_b)`` matched at cosine >= ``threshold``.

    Notes
    -----
    The rows are standard normal vectors scaled to unit norm (uniform on the
    sphere). One draw: at the sizes of real SAEs the spread between draws is
    far below the gap to real dictionaries.

    Examples
    --------
    >>> mcc, shared = chance_level(256, 256, 64, seed=0)
    >>> bool(mcc < 0.5), shared
    (True, 0.0)
    """
    for name, value in (("n_a", n_a), ("n_b", n_b), ("d", d)):
        check_positive_int(value, name)
    threshold = _check_threshold(threshold)
    rng = as_generator(seed)
    x = rng.standard_normal((int(n_a), int(d)))
    y = rng.standard_normal((int(n_b), int(d)))
    _, _, values = hungarian(cosine_matrix(x, y))
    return float(values.mean()), float(np.count_nonzero(values >= threshold) / values.size)


# --------------------------------------------------------------------------- the measurements


def activation_stability(codes_a, codes_b, *, threshold: float = SHARED_THRESHOLD,
                         chunk_rows: int = DEFAULT_CHUNK_ROWS) -> ActivationStability:
    """Match two SAEs' latents one-to-one by the correlation of their codes over the same tokens.

    Parameters
    ----------
    codes_a : scipy.sparse matrix or ndarray, shape (n_tokens, n_a)
    codes_b : scipy.sparse matrix or ndarray, shape (n_tokens, n_b)
        The two SAEs' codes on the same token rows (rows = tokens).
    threshold : float, default 0.7
        Correlation at which a matched pair counts as shared, in (0, 1].
    chunk_rows : int, default 65536
        Token rows per sparse product (:func:`correlation_matrix`).

    Returns
    -------
    ActivationStability

    Raises
    ------
    ValueError
        See :func:`correlation_matrix`; a threshold outside (0, 1].

    Notes
    -----
    Hungarian (:func:`hungarian`) on the dense ``n_a x n_b`` Pearson matrix
    (:func:`correlation_matrix`); a dead latent has r = 0 with everything, so
    it lowers ``act_mcc`` and is never shared.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> rng = np.random.default_rng(0)
    >>> a = sp.random(400, 20, density=0.2, random_state=rng, format="csr")
    >>> res = activation_stability(a, a[:, rng.permutation(20)] * 3.0)
    >>> round(res.act_mcc, 6), res.shared_act
    (1.0, 1.0)
    """
    threshold = _check_threshold(threshold)
    r, dead_a, dead_b = correlation_matrix(codes_a, codes_b, chunk_rows=chunk_rows)
    rows, cols, values = hungarian(r)
    n_shared = int(np.count_nonzero(values >= threshold))
    for arr in (rows, cols, values):
        arr.flags.writeable = False
    return ActivationStability(
        act_mcc=float(values.mean()), shared_act=n_shared / values.size, n_shared_act=n_shared,
        n_a=int(r.shape[0]), n_b=int(r.shape[1]), n_tokens=int(np.shape(codes_a)[0]),
        n_dead_a=int(dead_a.sum()), n_dead_b=int(dead_b.sum()), threshold=threshold,
        a_index=rows, b_index=cols, r=values,
    )


def sae_stability(decoder_a, decoder_b, *, encoder_a=None, encoder_b=None, codes_a=None, codes_b=None,
                  threshold: float = SHARED_THRESHOLD, seed: SeedLike = 0, chance: bool = True) -> StabilityResult:
    """Seed stability of two SAEs of one layer: decoder matching, encoder criterion, chance level, activations.

    Parameters
    ----------
    decoder_a : array_like, shape (n_a, d)
    decoder_b : array_like, shape (n_b, d)
        Decoder rows (latent directions) of the two SAEs; the same width d.
    encoder_a : array_like, shape (n_a, d), optional
    encoder_b : array_like, shape (n_b, d), optional
        Encoder rows, one per latent (``SaeWeights.W_enc.T``); both or neither.
    codes_a : scipy.sparse matrix or ndarray, shape (n_tokens, n_a), optional
    codes_b : scipy.sparse matrix or ndarray, shape (n_tokens, n_b), optional
        The two SAEs' codes on the same tokens; both or neither.
    threshold : float, default 0.7
        Cosine (and correlation) at which a matched pair counts as shared, in (0, 1].
    seed : int, Generator or None, default 0
        Seed of the chance level's random directions.
    chance : bool, default True
        Compute the chance level (:func:`chance_level`; one more matching).

    Returns
    -------
    StabilityResult

    Raises
    ------
    ValueError
        Decoders of different widths, non-finite values, encoders or codes
        whose shapes do not fit the decoders, one encoder or one code matrix
        without the other, or a threshold outside (0, 1].

    Notes
    -----
    The decoder rows are scaled to unit norm and matched one-to-one by
    :func:`hungarian` on the dense cosine matrix; every statistic of the
    decoder side (``pw_mcc``, ``shared_dec``, ``shared_dec_enc``) is read off
    that one matching, as Paulo and Belrose do. Fractions are over
    ``min(n_a, n_b)``, the most pairs a one-to-one matching holds. The
    activation side is :func:`activation_stability`, matched on its own.

    References
    ----------
    Paulo and Belrose, arXiv:2501.16615 (2025), Sec. 3.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> w = rng.standard_normal((64, 32))
    >>> res = sae_stability(w, w[::-1] + 0.01 * rng.standard_normal((64, 32)), seed=0)
    >>> round(res.pw_mcc, 3), res.shared_dec, res.chance_shared_dec
    (1.0, 1.0, 0.0)
    """
    threshold = _check_threshold(threshold)
    ua, zero_a = _unit_rows(decoder_a, "decoder_a")
    ub, zero_b = _unit_rows(decoder_b, "decoder_b")
    _check_width(ua, ub, "decoder_a", "decoder_b")
    n_a, n_b, d = ua.shape[0], ub.shape[0], ua.shape[1]
    if 0 in (n_a, n_b, d):
        raise ValueError(f"the decoders must be non-empty; got shapes {ua.shape} and {ub.shape}.")
    rows, cols, cosine = hungarian(ua @ ub.T)
    n_min = cosine.size
    n_shared = int(np.count_nonzero(cosine >= threshold))

    if (encoder_a is None) != (encoder_b is None):
        raise ValueError("pass both `encoder_a` and `encoder_b`, or neither.")
    enc_cos, n_shared_enc, shared_enc = None, None, float("nan")
    if encoder_a is not None:
        ea, _ = _unit_rows(encoder_a, "encoder_a")
        eb, _ = _unit_rows(encoder_b, "encoder_b")
        for name, enc, dec in (("encoder_a", ea, ua), ("encoder_b", eb, ub)):
            if enc.shape != dec.shape:
                raise ValueError(f"`{name}` has shape {enc.shape} but its decoder {dec.shape}; pass one encoder "
                                 "row per latent (SaeWeights.W_enc.T).")
        enc_cos = np.einsum("ij,ij->i", ea[rows], eb[cols])
        n_shared_enc = int(np.count_nonzero((cosine >= threshold) & (enc_cos >= threshold)))
        shared_enc = n_shared_enc / n_min

    if (codes_a is None) != (codes_b is None):
        raise ValueError("pass both `codes_a` and `codes_b`, or neither.")
    act = None
    if codes_a is not None:
        for name, codes, n in (("codes_a", codes_a, n_a), ("codes_b", codes_b, n_b)):
            if np.ndim(codes) != 2 or np.shape(codes)[1] != n:
                raise ValueError(f"`{name}` has shape {np.shape(codes)} but its decoder has {n} latents; pass the "
                                 "codes of the same SAE (tokens x latents).")
        act = activation_stability(codes_a, codes_b, threshold=threshold)

    chance_mcc = chance_shared = float("nan")
    if chance:
        chance_mcc, chance_shared = chance_level(n_a, n_b, d, threshold=threshold, seed=seed)
    for arr in (rows, cols, cosine) + (() if enc_cos is None else (enc_cos,)):
        arr.flags.writeable = False
    return StabilityResult(
        pw_mcc=float(cosine.mean()), shared_dec=n_shared / n_min, shared_dec_enc=shared_enc,
        chance_pw_mcc=chance_mcc, chance_shared_dec=chance_shared,
        act_mcc=float("nan") if act is None else act.act_mcc,
        shared_act=float("nan") if act is None else act.shared_act,
        n_a=int(n_a), n_b=int(n_b), d=int(d), n_shared_dec=n_shared, n_shared_dec_enc=n_shared_enc,
        n_shared_act=None if act is None else act.n_shared_act,
        n_zero_a=int(zero_a.sum()), n_zero_b=int(zero_b.sum()),
        n_tokens=None if act is None else act.n_tokens,
        n_dead_a=None if act is None else act.n_dead_a, n_dead_b=None if act is None else act.n_dead_b,
        threshold=threshold,
        seed=int(seed) if chance and isinstance(seed, numbers.Integral) and not isinstance(seed, bool) else None,
        a_index=rows, b_index=cols, cosine=cosine, encoder_cosine=enc_cos, activation=act,
    )


# --------------------------------------------------------------------------- helpers


def _check_threshold(threshold) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0 < threshold <= 1:
        raise ValueError(f"`threshold` must be a number in (0, 1]; got {threshold!r} (Paulo and Belrose use 0.7).")
    return float(threshold)


def _unit_rows(x, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows scaled to unit norm (float64) and the mask of zero rows (left at 0)."""
    if sp.issparse(x):
        x = x.toarray()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"`{name}` must be 2-D (latents x width); got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` contains NaN or infinite values; the SAE's weights are damaged.")
    norm = np.linalg.norm(arr, axis=1)
    zero = norm < _ZERO_NORM
    return arr / np.where(zero, 1.0, norm)[:, None] * ~zero[:, None], zero


def _check_width(x: np.ndarray, y: np.ndarray, name_x: str, name_y: str) -> None:
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"`{name_x}` has rows of width {x.shape[1]} but `{name_y}` has {y.shape[1]}; seed stability compares "
            "two SAEs of one model and layer (the same residual width)."
        )


def _nonnegative_sparse(codes) -> bool:
    return sp.issparse(codes) and (codes.nnz == 0 or codes.data.min() >= 0)


def _sparse_correlation(codes_a: sp.csr_matrix, codes_b: sp.csr_matrix, chunk_rows: int):
    n_tokens, n_a = codes_a.shape
    n_b = codes_b.shape[1]
    moments = CoactivationMoments(n_a, n_b)
    for start in range(0, n_tokens, chunk_rows):
        moments.update(codes_a[start:start + chunk_rows], codes_b[start:start + chunk_rows])
    result = moments.result()
    n = float(moments.n_tokens_)

    def z(total, sumsq, dead):  # mu / sigma, with sigma the population standard deviation
        ss = np.maximum(sumsq - total**2 / n, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = total / np.sqrt(n * ss)
        out[dead] = 0.0
        return out

    z_a = z(moments.sum_a_, moments.sumsq_a_, result.dead_a)
    z_b = z(moments.sum_b_, moments.sumsq_b_, result.dead_b)
    r = -np.outer(z_a, z_b)  # every pair that never fires together
    by_b = result.r_by_b.tocoo()  # (n_b, n_a): the co-firing pairs, exact (dead ones already 0)
    r[by_b.col, by_b.row] = by_b.data
    return r, result.dead_a.copy(), result.dead_b.copy()


def _dense_correlation(codes_a, codes_b):
    def zscore(codes):
        x = (codes.toarray() if sp.issparse(codes) else np.asarray(codes)).astype(np.float64)
        scale = np.abs(x).max(axis=0, initial=0.0)
        x -= x.mean(axis=0)
        sd = np.sqrt((x**2).mean(axis=0))
        dead = sd <= 1e-12 * np.maximum(scale, 1.0)
        x /= np.where(dead, 1.0, sd)
        x[:, dead] = 0.0
        return x, dead

    za, dead_a = zscore(codes_a)
    zb, dead_b = zscore(codes_b)
    r = np.clip(za.T @ zb / za.shape[0], -1.0, 1.0)
    return r, dead_a, dead_b
