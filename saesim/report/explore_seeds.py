"""Seed stability for the explorer chapter: the latents two SAEs of one model and layer share.

:func:`seed_stability` matches the two decoders one-to-one (Hungarian) on the
graph of pairs whose decoder cosine is at least the threshold and counts the
matched pairs (Paulo and Belrose, 2025); it also gives the same count by
activation correlation and the mean best cosine (the pairwise max-cosine
consistency of Song et al., 2025). Beside a cross-model pairing rate it is
the noise floor: what two seeds of one model already give. The full-matching
measure DESIGN.md asks every result to carry (PW-MCC over the whole
dictionaries, the shared fraction and its chance level) is
:func:`saesim.compare.stability.sae_stability`.

References
----------
Paulo and Belrose, "Sparse Autoencoders Trained on the Same Data Learn
Different Features", arXiv:2501.16615 (2025).

Song et al., "Position: Mechanistic Interpretability Should Prioritize Feature
Consistency in SAEs", arXiv:2505.20254 (2025).
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.sparse as sp

from saesim.compare.corr import DEFAULT_TOP_M, best_partners
from saesim.compare.match import max_weight_matching, pair
from saesim.report._explorer import finite_2d, nanmean, unit_rows, validate_positive_int
from saesim.validation import check_codes, check_same_rows

__all__ = ["DEFAULT_BLOCK_ROWS", "SHARED_COSINE", "SeedStabilityResult", "ZeroDirectionWarning", "seed_stability"]

SHARED_COSINE = 0.7
"""Decoder cosine at which two latents count as shared (Paulo and Belrose, 2025)."""

DEFAULT_BLOCK_ROWS = 1024
"""Rows of the first decoder per block of the cosine product (memory ``block x n_y`` floats)."""


class ZeroDirectionWarning(UserWarning):
    """Some decoder rows are zero: they have no direction and are never shared."""


@dataclass(frozen=True, eq=False)
class SeedStabilityResult:
    """How many latents two SAEs of one model and layer share (see :func:`seed_stability`).

    Attributes
    ----------
    statistic : float
        Fraction shared by decoder cosine: ``n_shared / min(n_x, n_y)``, the
        matched pairs with cosine >= ``threshold`` over the most a one-to-one
        matching can hold.
    shared_fraction_r : float
        The same by activation correlation: ``n_shared_r / min(n_x, n_y)``;
        NaN when no codes were given.
    mean_max_cosine : float
        Mean over the latents of X of their best cosine with any latent of Y
        (Song et al.'s max-cosine consistency, X to Y); zero rows left out.
    mean_max_cosine_y : float
        The same from Y to X.
    mean_shared_cosine : float
        Mean cosine of the shared pairs (NaN when none).
    n_shared, n_shared_r : int
        Pairs shared by cosine and by correlation.
    n_x, n_y : int
        Latents of X and Y.
    n_candidates : int
        Edges of the cosine graph (pairs with cosine >= ``threshold``).
    threshold, r_threshold : float
        The cosine and correlation thresholds.
    n_tokens : int or None
        Token rows of the codes (None without codes).
    n_dead_x, n_dead_y : int
        Latents that never fire (they get no correlation partner).
    n_zero_x, n_zero_y : int
        Zero decoder rows (no direction).
    compat : bool
        The authors' correlation semantics for the activation side.
    x_index, y_index : ndarray of int64, shape (n_shared,)
        The shared pairs (sorted by ``x_index``).
    cosine : ndarray of float64, shape (n_shared,)
        Their cosines.
    """

    statistic: float
    shared_fraction_r: float
    mean_max_cosine: float
    mean_max_cosine_y: float
    mean_shared_cosine: float
    n_shared: int
    n_shared_r: int
    n_x: int
    n_y: int
    n_candidates: int
    threshold: float
    r_threshold: float
    n_tokens: int | None
    n_dead_x: int
    n_dead_y: int
    n_zero_x: int
    n_zero_y: int
    compat: bool
    x_index: np.ndarray = field(repr=False)
    y_index: np.ndarray = field(repr=False)
    cosine: np.ndarray = field(repr=False)

    @property
    def shared_fraction(self) -> float:
        """Alias of :attr:`statistic`."""
        return self.statistic

    def fraction(self, of: Literal["min", "x", "y"] = "min", *, by: Literal["cosine", "r"] = "cosine") -> float:
        """Shared pairs over the latents of the smaller side (``"min"``), of X or of Y."""
        if of not in ("min", "x", "y"):
            raise ValueError(f"`of` must be 'min', 'x' or 'y'; got {of!r}.")
        if by not in ("cosine", "r"):
            raise ValueError(f"`by` must be 'cosine' or 'r'; got {by!r}.")
        n = {"min": min(self.n_x, self.n_y), "x": self.n_x, "y": self.n_y}[of]
        if by == "r" and np.isnan(self.shared_fraction_r):
            return float("nan")
        return (self.n_shared if by == "cosine" else self.n_shared_r) / n if n else float("nan")

    def row(self) -> dict:
        """One tidy-table row (the arrays left out)."""
        skip = ("x_index", "y_index", "cosine")
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in skip}


def seed_stability(layer_x, layer_y, *, threshold: float = SHARED_COSINE, r_threshold: float | None = None,
                   m: int = DEFAULT_TOP_M, compat: bool = False, block_rows: int = DEFAULT_BLOCK_ROWS,
                   best=None) -> SeedStabilityResult:
    """Latents two SAEs of the same model and layer share, by decoder direction and by activation.

    Parameters
    ----------
    layer_x, layer_y : SaeLayer, LayerData, (decoder, codes) tuple or decoder array
        The two SAE sets: anything with ``decoder`` (n_latents, d) and
        ``codes`` (n_tokens, n_latents) attributes, a ``(decoder, codes)``
        pair, or a bare decoder (then the activation side is skipped). Both
        decoders must have the same width d (one model's residual stream),
        and codes the same token rows.
    threshold : float, default 0.7
        Decoder cosine at which a matched pair counts as shared, in (0, 1]
        (Paulo and Belrose's 0.7).
    r_threshold : float, optional
        Activation correlation at which a matched pair counts as shared, in
        (0, 1]; default ``threshold``.
    m : int, default 8
        Correlation candidates kept per latent (:func:`saesim.compare.corr.best_partners`).
    compat : bool, default False
        The authors' correlation semantics (dense path) for the activation side.
    block_rows : int, default 1024
        Rows of X per block of the cosine product; any value gives the same answer.
    best : saesim.compare.corr.BestPartners, optional
        Best partners of the two code matrices (X as A, Y as B) if already
        computed (:func:`saesim.experiments.grid.cached_best_partners`); ``m`` and
        ``compat`` are then those it was computed with.

    Returns
    -------
    SeedStabilityResult
        ``statistic`` is the shared fraction by cosine.

    Raises
    ------
    ValueError
        Decoders of different widths, non-finite values, codes whose latent
        count differs from the decoder's, codes on different token rows, or a
        threshold outside (0, 1].
    TypeError
        A layer that is neither a decoder, a pair nor has ``decoder``.

    Warns
    -----
    ZeroDirectionWarning
        Some decoder rows are zero (never shared; left out of the means).
    DeadLatentWarning
        Some latents never fire (no correlation partner), from best_partners.

    See Also
    --------
    saesim.compare.stability.sae_stability : The more complete seed-stability
        measure (the one DESIGN.md asks every result to report). It matches
        the two full dictionaries with the Hungarian algorithm on the dense
        decoder cosine matrix and reads everything off that one matching:
        ``pw_mcc`` (mean cosine of all ``min(n_x, n_y)`` matched pairs),
        ``shared_dec`` (matched pairs at cosine >= 0.7), ``shared_dec_enc``
        (decoder and encoder both >= 0.7), their chance level, and the same by
        activation. This function differs: it matches only the pairs already
        above ``threshold`` (a matching on the thresholded graph), so its
        shared count can exceed ``n_shared_dec`` (the full matching may trade
        one pair above the threshold for two below it), and it has no mean
        over a full matching (``mean_max_cosine`` is each latent's best
        cosine, not a matched pair's). Its numbers are the explorer
        chapter's and are kept as they are; use ``sae_stability`` for PW-MCC.

    Notes
    -----
    Decoder rows are scaled to unit norm and ``C = X Y^T`` is computed in
    blocks, never kept whole. The matching is a maximum-weight one-to-one
    matching (the Hungarian rule; LAPJVsp on a sparse graph, as
    :func:`saesim.compare.match.pair` with ``rule="hungarian"``) over the candidate
    graph of every pair with ``C_ij >= threshold``; that graph holds every
    pair that could count, so the count is exact — identical to
    ``scipy.optimize.linear_sum_assignment`` on ``C`` with the entries below
    the threshold set to 0. (Paulo and Belrose assign on the whole of ``C``;
    there a pair above the threshold may be traded for two below it, which
    this rule never does.) The activation side is the same rule on Pearson
    r, ``pair(best, rule="hungarian")`` over the top-m candidates of both
    directions with r >= ``r_threshold``; it is exact unless a latent has
    more than m partners above the threshold. Max-cosine consistency is
    ``mean_i max_j C_ij`` (Song et al.).

    References
    ----------
    Paulo and Belrose, arXiv:2501.16615 (2025). Song et al., arXiv:2505.20254
    (2025). Jonker and Volgenant, Computing 38 (1987), 325-340.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> w = rng.standard_normal((50, 16))
    >>> res = seed_stability(w, w[::-1] + 0.01 * rng.standard_normal((50, 16)))
    >>> res.statistic, res.n_shared, round(res.mean_max_cosine, 3)
    (1.0, 50, 1.0)
    """
    threshold = _validate_threshold(threshold, "threshold")
    r_threshold = threshold if r_threshold is None else _validate_threshold(r_threshold, "r_threshold")
    validate_positive_int(block_rows, "block_rows")
    dec_x, codes_x = _decoder_and_codes(layer_x, "layer_x")
    dec_y, codes_y = _decoder_and_codes(layer_y, "layer_y")
    if dec_x.shape[1] != dec_y.shape[1]:
        raise ValueError(
            f"`layer_x` has decoder rows of width {dec_x.shape[1]} but `layer_y` has {dec_y.shape[1]}; seed "
            "stability compares two SAEs of one model and layer (same residual width). For two models use "
            "saesim.experiments.grid.compare_pair."
        )
    ux, zero_x = unit_rows(dec_x)
    uy, zero_y = unit_rows(dec_y)
    n_zero = int(zero_x.sum() + zero_y.sum())
    if n_zero:
        warnings.warn(f"{int(zero_x.sum())} decoder rows of `layer_x` and {int(zero_y.sum())} of `layer_y` are "
                      "zero; they have no direction and are never shared.", ZeroDirectionWarning, stacklevel=2)
    n_x, n_y = ux.shape[0], uy.shape[0]
    best_x = np.full(n_x, np.nan)
    best_y = np.full(n_y, -np.inf)
    rows, cols, weights = [], [], []
    for start in range(0, n_x, int(block_rows)):
        block = ux[start:start + block_rows] @ uy.T
        if n_y:
            best_x[start:start + block.shape[0]] = block.max(axis=1)
            best_y = np.maximum(best_y, block.max(axis=0)) if block.shape[0] else best_y
        i, j = np.nonzero(block >= threshold)
        rows.append(i + start)
        cols.append(j)
        weights.append(block[i, j])
    rows = np.concatenate(rows) if rows else np.empty(0, np.int64)
    cols = np.concatenate(cols) if cols else np.empty(0, np.int64)
    weights = np.concatenate(weights) if weights else np.empty(0)
    chosen = max_weight_matching(rows, cols, weights)
    x_index, y_index, cosine = rows[chosen], cols[chosen], weights[chosen]
    order = np.argsort(x_index, kind="stable")
    x_index, y_index, cosine = x_index[order], y_index[order], cosine[order]
    n_min = min(n_x, n_y)
    best_x[zero_x] = np.nan
    best_y = np.where(np.isinf(best_y), np.nan, best_y)
    best_y[zero_y] = np.nan

    n_shared_r, fraction_r, n_tokens, dead_x, dead_y = 0, float("nan"), None, 0, 0
    if codes_x is not None and codes_y is not None:
        check_same_rows(codes_x, codes_y, name_a="layer_x.codes", name_b="layer_y.codes")
        if best is None:
            best = best_partners(codes_x, codes_y, compat=compat, m=m)
        elif (best.n_a, best.n_b) != (n_x, n_y):
            raise ValueError(f"`best` pairs {best.n_a} x {best.n_b} latents but the layers have {n_x} x {n_y}; "
                             "pass the best partners of these two layers (X as A, Y as B).")
        # pair() keeps r > r_min; the largest float below the threshold makes that r >= r_threshold
        matched = pair(best, rule="hungarian", r_min=float(np.nextafter(r_threshold, -np.inf)))
        n_shared_r = matched.n_pairs
        fraction_r = n_shared_r / n_min if n_min else float("nan")
        n_tokens, dead_x, dead_y = best.n_tokens, int(best.dead_a.sum()), int(best.dead_b.sum())
    for arr in (x_index, y_index, cosine):
        arr.flags.writeable = False
    return SeedStabilityResult(
        statistic=x_index.size / n_min if n_min else float("nan"),
        shared_fraction_r=float(fraction_r),
        mean_max_cosine=nanmean(best_x),
        mean_max_cosine_y=nanmean(best_y),
        mean_shared_cosine=float(cosine.mean()) if cosine.size else float("nan"),
        n_shared=int(x_index.size), n_shared_r=int(n_shared_r), n_x=int(n_x), n_y=int(n_y),
        n_candidates=int(rows.size), threshold=threshold, r_threshold=r_threshold, n_tokens=n_tokens,
        n_dead_x=dead_x, n_dead_y=dead_y, n_zero_x=int(zero_x.sum()), n_zero_y=int(zero_y.sum()),
        compat=bool(compat), x_index=x_index.astype(np.int64), y_index=y_index.astype(np.int64),
        cosine=cosine.astype(np.float64),
    )


# --------------------------------------------------------------------------- helpers


def _decoder_and_codes(layer, name: str):
    if isinstance(layer, tuple):
        if len(layer) != 2:
            raise TypeError(f"`{name}` as a tuple must be (decoder, codes); got a tuple of {len(layer)}.")
        decoder, codes = layer
    elif hasattr(layer, "decoder"):
        decoder, codes = layer.decoder, getattr(layer, "codes", None)
    elif isinstance(layer, np.ndarray) or isinstance(layer, list):
        decoder, codes = layer, None
    else:
        raise TypeError(f"`{name}` must be an SaeLayer (or anything with `decoder` and `codes`), a (decoder, codes) "
                        f"tuple or a decoder array; got {type(layer).__name__}.")
    decoder = finite_2d(decoder, f"{name}.decoder")
    if codes is not None:
        codes = check_codes(codes, name=f"{name}.codes")
        if codes.shape[1] != decoder.shape[0]:
            raise ValueError(f"`{name}.codes` has {codes.shape[1]} latents (columns) but `{name}.decoder` has "
                             f"{decoder.shape[0]} rows; pass the codes and decoder of the same SAE.")
        if sp.issparse(codes):
            codes = sp.csr_matrix(codes)
    return decoder, codes


def _validate_threshold(value, name: str) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not (0 < float(value) <= 1):
        raise ValueError(f"`{name}` must be a number in (0, 1], such as 0.7 (Paulo and Belrose); got {value!r}.")
    return float(value)
