"""Look at the paired features themselves: the explorer's tables, the decoder map, seed stability.

Three computations behind the book's explorer chapter (``notebooks/explorer.py``):

* :func:`seed_stability` — how many latents two SAEs of one model and layer
  share: a one-to-one (Hungarian) matching on decoder cosine similarity and
  the fraction matched at cosine >= 0.7 (Paulo and Belrose, 2025), the same
  fraction by activation correlation, and the mean best cosine (the pairwise
  max-cosine consistency of Song et al., 2025). Beside a cross-model pairing
  rate it is the noise floor: what two seeds of one model already give.
* :func:`pair_table` — one row per choosing latent of a layer pair (each B
  latent for ``direction="b_to_a"``): its partner, r and its rank, both
  latents' top tokens and context windows, activation frequencies, which
  filter stage kept or dropped the pair and why, and concept membership.
* :func:`decoder_map` — 2-D coordinates of the paired A decoder rows (PCA)
  with each pair's B row mapped into A's space by an orthogonal Procrustes
  fit, for an interactive map (:func:`map_figure`).

The presentation helpers (:func:`show_table`, :func:`map_html`,
:func:`saesim.report.book.ensure_plotly`) keep every script on the site itself: the table is
``itables`` in its offline mode (the DataTables bundle inlined in the page)
and the map is plotly with ``plotly.min.js`` served from the book's
``_static`` folder — no CDN.

References
----------
Lan et al., "Sparse Autoencoders Reveal Universal Feature Spaces Across Large
Language Models", arXiv:2410.06981 (2024).

Paulo and Belrose, "Sparse Autoencoders Trained on the Same Data Learn
Different Features", arXiv:2501.16615 (2025).

Song et al., "Position: Mechanistic Interpretability Should Prioritize Feature
Consistency in SAEs", arXiv:2505.20254 (2025).
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.sparse as sp

from saesim.validation import SeedLike, as_generator, check_codes, check_same_rows
from saesim.compare.corr import DEFAULT_TOP_M, best_partners
from saesim.compare.match import max_weight_matching, pair

__all__ = [
    "DEFAULT_MAX_ROWS",
    "SHARED_COSINE",
    "STAGES",
    "DecoderMap",
    "PairTable",
    "SeedStabilityResult",
    "ZeroDirectionWarning",
    "decoder_map",
    "map_figure",
    "map_html",
    "neuronpedia_id",
    "neuronpedia_url",
    "pair_table",
    "seed_floor",
    "seed_stability",
    "plotly_bytes",
    "show_table",
    "strongest_pair",
]

SHARED_COSINE = 0.7
"""Decoder cosine at which two latents count as shared (Paulo and Belrose, 2025)."""

DEFAULT_MAX_ROWS = 2000
"""Pairs embedded in the explorer's table: about 1 KB each, so the page stays well under 10 MB."""

DEFAULT_BLOCK_ROWS = 1024
"""Rows of the first decoder per block of the cosine product (memory ``block x n_y`` floats)."""

STAGES: tuple[str, ...] = ("kept", "junk/overlap", "1-1", "r cut", "no partner")
"""The outcome of each row of :func:`pair_table`, in the paper's order of filters."""

NEURONPEDIA = "https://www.neuronpedia.org"
"""Neuronpedia's site; a latent's page is ``<NEURONPEDIA>/<model>/<sae>/<index>``."""


_ZERO_NORM = 1e-12
"""A decoder row with a smaller norm has no direction (cosine undefined)."""


class ZeroDirectionWarning(UserWarning):
    """Some decoder rows are zero: they have no direction and are never shared."""


# --------------------------------------------------------------------------- seed stability


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
    _validate_positive_int(block_rows, "block_rows")
    dec_x, codes_x = _decoder_and_codes(layer_x, "layer_x")
    dec_y, codes_y = _decoder_and_codes(layer_y, "layer_y")
    if dec_x.shape[1] != dec_y.shape[1]:
        raise ValueError(
            f"`layer_x` has decoder rows of width {dec_x.shape[1]} but `layer_y` has {dec_y.shape[1]}; seed "
            "stability compares two SAEs of one model and layer (same residual width). For two models use "
            "saesim.experiments.grid.compare_pair."
        )
    ux, zero_x = _unit_rows(dec_x)
    uy, zero_y = _unit_rows(dec_y)
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
        mean_max_cosine=_nanmean(best_x),
        mean_max_cosine_y=_nanmean(best_y),
        mean_shared_cosine=float(cosine.mean()) if cosine.size else float("nan"),
        n_shared=int(x_index.size), n_shared_r=int(n_shared_r), n_x=int(n_x), n_y=int(n_y),
        n_candidates=int(rows.size), threshold=threshold, r_threshold=r_threshold, n_tokens=n_tokens,
        n_dead_x=dead_x, n_dead_y=dead_y, n_zero_x=int(zero_x.sum()), n_zero_y=int(zero_y.sum()),
        compat=bool(compat), x_index=x_index.astype(np.int64), y_index=y_index.astype(np.int64),
        cosine=cosine.astype(np.float64),
    )


# --------------------------------------------------------------------------- the pair table


@dataclass(frozen=True, eq=False)
class PairTable:
    """One layer pair's pairs, one row per choosing latent (see :func:`pair_table`).

    Attributes
    ----------
    frame : pandas.DataFrame
        The rows kept (the ``max_rows`` highest r), sorted by r, highest first.
    n_rows : int
        Rows before truncation (one per choosing latent).
    stage_counts : dict of str to int
        Rows per outcome (:data:`STAGES`) before truncation.
    rule, direction : str
    r_min : float
    layer_a, layer_b : int
    """

    frame: object
    n_rows: int
    stage_counts: dict
    rule: str
    direction: str
    r_min: float
    layer_a: int
    layer_b: int

    @property
    def n_left_out(self) -> int:
        """Rows left out of :attr:`frame` by ``max_rows``."""
        return self.n_rows - len(self.frame)

    def row(self) -> dict:
        """Counts for one tidy-table row."""
        return {"layer_a": self.layer_a, "layer_b": self.layer_b, "rule": self.rule, "direction": self.direction,
                "r_min": self.r_min, "n_rows": self.n_rows, "n_shown": len(self.frame),
                **{f"n_{k.replace('/', '_').replace(' ', '_').replace('-', 'to')}": v
                   for k, v in self.stage_counts.items()}}


def pair_table(layer_a, layer_b, settings, *, best=None, max_rows: int | None = DEFAULT_MAX_ROWS, k: int = 5,
               n_windows: int = 3, concepts: dict | None = None, neuronpedia_a: str | None = None,
               neuronpedia_b: str | None = None) -> PairTable:
    """Every choosing latent of a layer pair with its partner, its contexts and its fate in the filters.

    Parameters
    ----------
    layer_a, layer_b : saesim.compare.filters.SaeLayer
        The two layers (``load_layer(...).to_sae_layer()``).
    settings : saesim.experiments.grid.CompareSettings
        Its first rule and direction, r cut and filters are used.
    best : saesim.compare.corr.BestPartners, optional
        Best partners of the two layers if already computed
        (:func:`saesim.experiments.grid.cached_best_partners`).
    max_rows : int or None, default 2000
        Rows kept, the highest r first; None keeps all.
    k : int, default 5
        Top tokens shown per latent.
    n_windows : int, default 3
        Context windows shown per latent.
    concepts : dict of str to keywords, optional
        Default: the paper's eight concepts and the control list.
    neuronpedia_a, neuronpedia_b : str, optional
        Neuronpedia ids of the two SAEs (:func:`neuronpedia_id`); when given,
        a column with a link to each latent's page.

    Returns
    -------
    PairTable
        Columns: ``A latent``, ``B latent``, ``r``, ``r rank`` (1 = highest
        of all rows), ``stage`` (one of :data:`STAGES`), ``why``, ``A top
        tokens``, ``B top tokens``, ``A contexts``, ``B contexts``, ``A
        freq``, ``B freq`` (fraction of tokens where the latent fires), ``A
        concepts``, ``B concepts``, and ``links`` when Neuronpedia ids are
        given.

    Raises
    ------
    ValueError
        ``max_rows``, ``k`` or ``n_windows`` not a positive integer; layers
        on different token rows.

    Notes
    -----
    The stages are those of :func:`saesim.experiments.grid.compare_best`: for
    ``many_to_one``, ``first_index`` and ``max_corr`` each chooser's best
    partner goes through the junk/overlap filter, then the 1-1 rule, then
    the r cut; ``mutual`` and ``hungarian`` pair first (a chooser they leave
    out is dropped at "1-1" and shown with its best partner), then the junk
    filter and the r cut. A chooser without a positive correlation (a dead
    latent) is "no partner".
    """
    import pandas as pd

    from saesim.compare.concepts import concept_members
    from saesim.compare.corr import quiet_best_partners
    from saesim.compare.filters import junk_overlap_mask
    from saesim.compare.stages import PAIR_FIRST_RULES, filter_stages
    from saesim.extract.tokens import activation_frequency

    for name, value in (("k", k), ("n_windows", n_windows)):
        _validate_positive_int(value, name)
    if max_rows is not None:
        _validate_positive_int(max_rows, "max_rows")
    check_same_rows(layer_a.codes, layer_b.codes, name_a="layer_a.codes", name_b="layer_b.codes")
    rule, direction = settings.rules[0], settings.directions[0]
    if best is None:
        best = quiet_best_partners(layer_a.codes, layer_b.codes, compat=settings.compat)
    work = best.reversed() if direction == "a_to_b" else best
    stages = filter_stages(best, layer_a, layer_b, settings, rule=rule, direction=direction)
    final = stages.final
    # Every chooser with its best partner: the stages' candidates, except for the rules that pair first.
    every = pair(best, rule="many_to_one", r_min=-np.inf, direction=direction) if rule in PAIR_FIRST_RULES \
        else stages.candidates
    b_side = direction == "b_to_a"
    chooser_of = (lambda p: p.b) if b_side else (lambda p: p.a)  # noqa: E731
    target_of = (lambda p: p.a) if b_side else (lambda p: p.b)  # noqa: E731

    # Per-latent junk verdicts (a latent against itself, no overlap), to say why a pair failed.
    if settings.junk_filter:
        top_a, top_b = layer_a.top_k(settings.top_k), layer_b.top_k(settings.top_k)
        opts = dict(compat=settings.compat, junk_list=settings.junk_list,
                    special_ids=set(layer_a.special_ids) | set(layer_b.special_ids), min_active=settings.min_active)
        ia, ib = np.arange(top_a.n_latents), np.arange(top_b.n_latents)
        bad_a = ~junk_overlap_mask(ia, ia, top_a, top_a, require_overlap=False, **opts)
        bad_b = ~junk_overlap_mask(ib, ib, top_b, top_b, require_overlap=False, **opts)

        def junk_why(a, b):
            reasons = []
            if bad_a[a]:
                reasons.append(f"A {a} is non-concept (a junk top token or < {settings.min_active} firing)")
            if bad_b[b]:
                reasons.append(f"B {b} is non-concept (a junk top token or < {settings.min_active} firing)")
            return "; ".join(reasons) or f"no shared top-{settings.top_k} token"
    else:
        def junk_why(a, b):  # pragma: no cover - the junk filter is off, so it never fails
            return ""

    n_choosers = work.n_b
    partner_a = np.full(n_choosers, -1, np.int64)
    partner_b = np.full(n_choosers, -1, np.int64)
    r = np.full(n_choosers, np.nan)
    stage = np.empty(n_choosers, dtype=object)
    why = np.empty(n_choosers, dtype=object)
    stage[:], why[:] = "no partner", "never fires, or no positive correlation"
    ch = chooser_of(every)
    partner_a[ch], partner_b[ch], r[ch] = every.a, every.b, every.r
    kept_keys = set(zip(final.a.tolist(), final.b.tolist()))
    if rule in PAIR_FIRST_RULES:
        paired, ok = stages.candidates, stages.junk_ok
        in_rule = np.zeros(n_choosers, dtype=bool)
        ch = chooser_of(paired)
        in_rule[ch] = True
        partner_a[ch], partner_b[ch], r[ch] = paired.a, paired.b, paired.r
        for c, a, b, rr, good in zip(ch.tolist(), paired.a.tolist(), paired.b.tolist(), paired.r.tolist(),
                                     ok.tolist()):
            if (a, b) in kept_keys:
                stage[c], why[c] = "kept", ""
            elif not good:
                stage[c], why[c] = "junk/overlap", junk_why(a, b)
            else:
                stage[c], why[c] = "r cut", f"r = {rr:.3f} <= {settings.r_min:g}"
        for c in chooser_of(every).tolist():
            if not in_rule[c]:
                t = partner_a[c] if b_side else partner_b[c]
                stage[c] = "1-1"
                if rule == "mutual":
                    back = int(best.index_a[t]) if b_side else int(best.index[t])
                    why[c] = f"not mutual: {'A' if b_side else 'B'} {t}'s best partner is {'B' if b_side else 'A'} {back}"
                else:
                    why[c] = f"left unmatched by the optimal assignment (r > {settings.r_min:g} candidates)"
    else:
        ok, after_dedup = stages.junk_ok, stages.after_1to1
        dedup_keys = set(zip(after_dedup.a.tolist(), after_dedup.b.tolist()))
        winner = dict(zip(target_of(after_dedup).tolist(), chooser_of(after_dedup).tolist()))
        for c, a, b, rr, good in zip(chooser_of(every).tolist(), every.a.tolist(), every.b.tolist(),
                                     every.r.tolist(), ok.tolist()):
            t = a if b_side else b
            if (a, b) in kept_keys:
                stage[c], why[c] = "kept", ""
            elif not good:
                stage[c], why[c] = "junk/overlap", junk_why(a, b)
            elif (a, b) not in dedup_keys:
                w = winner.get(t)
                side_t, side_c = ("A", "B") if b_side else ("B", "A")
                stage[c], why[c] = "1-1", f"{side_t} {t} kept for {side_c} {w} ({rule})"
            else:
                stage[c], why[c] = "r cut", f"r = {rr:.3f} <= {settings.r_min:g}"

    freq_a, freq_b = activation_frequency(layer_a.codes), activation_frequency(layer_b.codes)
    concepts_a = _concept_labels(concept_members(layer_a.top, layer_a.windows, compat=settings.compat,
                                                 concepts=concepts), layer_a.top.n_latents)
    concepts_b = _concept_labels(concept_members(layer_b.top, layer_b.windows, compat=settings.compat,
                                                 concepts=concepts), layer_b.top.n_latents)
    frame = pd.DataFrame({
        "A latent": partner_a if b_side else np.arange(n_choosers),
        "B latent": np.arange(n_choosers) if b_side else partner_b,
        "r": r,
    })
    frame["r rank"] = frame["r"].rank(ascending=False, method="min").astype("Int64")
    frame["stage"] = stage
    frame["why"] = why

    def text(layer, idx, fn):
        return [fn(layer, int(i)) if i >= 0 else "" for i in idx]

    frame["A top tokens"] = text(layer_a, frame["A latent"], lambda L, i: _top_tokens(L, i, k))
    frame["B top tokens"] = text(layer_b, frame["B latent"], lambda L, i: _top_tokens(L, i, k))
    frame["A contexts"] = text(layer_a, frame["A latent"], lambda L, i: _contexts(L, i, n_windows))
    frame["B contexts"] = text(layer_b, frame["B latent"], lambda L, i: _contexts(L, i, n_windows))
    frame["A freq"] = [float(freq_a[i]) if i >= 0 else np.nan for i in frame["A latent"]]
    frame["B freq"] = [float(freq_b[i]) if i >= 0 else np.nan for i in frame["B latent"]]
    frame["A concepts"] = [concepts_a[i] if i >= 0 else "" for i in frame["A latent"]]
    frame["B concepts"] = [concepts_b[i] if i >= 0 else "" for i in frame["B latent"]]
    if neuronpedia_a or neuronpedia_b:
        frame["links"] = [" ".join(x for x in (
            _link(neuronpedia_a, a, "A") if a >= 0 else "", _link(neuronpedia_b, b, "B") if b >= 0 else "") if x)
            for a, b in zip(frame["A latent"], frame["B latent"])]
    counts = {s: int((frame["stage"] == s).sum()) for s in STAGES}
    frame = frame.sort_values(["r", "B latent" if b_side else "A latent"], ascending=[False, True],
                              na_position="last", kind="stable")
    n_rows = len(frame)
    if max_rows is not None:
        frame = frame.head(int(max_rows))
    frame = frame.reset_index(drop=True)
    return PairTable(frame=frame, n_rows=n_rows, stage_counts=counts, rule=rule, direction=direction,
                     r_min=float(settings.r_min), layer_a=int(layer_a.layer), layer_b=int(layer_b.layer))


def _top_tokens(layer, latent: int, k: int) -> str:
    tokens = [repr(t) for t, on in zip(layer.top.strings[latent][:k], layer.top.active[latent][:k]) if on]
    return " ".join(tokens) if tokens else "(never fires)"


def _contexts(layer, latent: int, n: int) -> str:
    windows = [str(w).strip() for w, on in zip(layer.windows[latent], layer.top.active[latent]) if on][:n]
    return " | ".join(windows)


def _concept_labels(members: dict, n_latents: int) -> list[str]:
    labels = [[] for _ in range(n_latents)]
    for name, idx in members.items():
        for i in idx.tolist():
            labels[i].append(name)
    return [", ".join(x) for x in labels]


def _link(np_id: str | None, latent: int, side: str) -> str:
    url = neuronpedia_url(np_id, int(latent))
    return f'<a href="{url}" target="_blank" rel="noopener">{side} {int(latent)}</a>' if url else ""


# --------------------------------------------------------------------------- Neuronpedia


def neuronpedia_id(profile, slot: str, layer: int) -> str | None:
    """The Neuronpedia id of one SAE of a profile (``"gemma-2b/6-res-jb"``), or None when it has no page.

    Only SAELens releases carry one: the id is read from the ``neuronpedia``
    field of the release's entry in SAELens's registry
    (``sae_lens/pretrained_saes.yaml``, installed with ``sae-lens``).
    Locally trained or locally saved SAEs (the offline and tiny profiles)
    and sparsify SAEs get None, so the book shows no dead links.
    """
    import importlib.util

    import yaml

    spec = profile.model(slot)
    sae = spec.sae
    if sae.source != "saelens" or not sae.location or "/" in sae.location or Path(sae.location).exists():
        return None
    found = importlib.util.find_spec("sae_lens")  # located, not imported (importing sae_lens takes seconds)
    registry = Path(next(iter(found.submodule_search_locations))) / "pretrained_saes.yaml" if found else None
    if registry is None or not registry.is_file():  # pragma: no cover - sae-lens is a requirement
        return None
    text = registry.read_text()
    head = f"\n{sae.location}:\n"
    start = text.find(head)
    if start < 0:
        return None
    end = text.find("\n", start + len(head))
    while end >= 0 and end + 1 < len(text) and text[end + 1] in " \t#\n":
        end = text.find("\n", end + 1)
    block = yaml.safe_load(text[start:end if end >= 0 else None])[sae.location]
    wanted = sae.sae_id.format(layer=int(layer))
    for entry in block.get("saes", []):
        if entry.get("id") == wanted and entry.get("neuronpedia"):
            return str(entry["neuronpedia"])
    return None


def neuronpedia_url(np_id: str | None, latent: int) -> str | None:
    """``https://www.neuronpedia.org/<np_id>/<latent>``, or None without an id."""
    if not np_id:
        return None
    return f"{NEURONPEDIA}/{np_id}/{int(latent)}"


# --------------------------------------------------------------------------- the decoder map


@dataclass(frozen=True, eq=False)
class DecoderMap:
    """2-D coordinates of paired decoder directions (see :func:`decoder_map`).

    Attributes
    ----------
    a, b : ndarray of int64, shape (n_points,)
        The pairs drawn.
    xy_a : ndarray of float64, shape (n_points, 2)
        PCA coordinates of the unit A rows.
    xy_b : ndarray of float64, shape (n_points, 2)
        The unit B rows mapped into A's space by the Procrustes fit, in the
        same PCA coordinates.
    explained_variance : ndarray of float64, shape (2,)
        Fraction of the A rows' variance on each axis.
    mean_mapped_cosine : float
        Mean cosine between each A row and its mapped B row (1 = the fit
        superposes the pairs).
    n_pairs : int
        Pairs before subsampling.
    seed : int or None
    """

    a: np.ndarray
    b: np.ndarray
    xy_a: np.ndarray
    xy_b: np.ndarray
    explained_variance: np.ndarray
    mean_mapped_cosine: float
    n_pairs: int
    seed: int | None

    @property
    def n_points(self) -> int:
        return int(self.a.size)

    def to_frame(self):
        """One row per point: ``a``, ``b``, ``x_a``, ``y_a``, ``x_b``, ``y_b``."""
        import pandas as pd

        return pd.DataFrame({"a": self.a, "b": self.b, "x_a": self.xy_a[:, 0], "y_a": self.xy_a[:, 1],
                             "x_b": self.xy_b[:, 0], "y_b": self.xy_b[:, 1]})


def decoder_map(decoder_a, decoder_b, pairs, *, max_points: int | None = DEFAULT_MAX_ROWS,
                seed: SeedLike = 0) -> DecoderMap:
    """Project paired decoder directions to 2-D: PCA of the A rows, B rows mapped by orthogonal Procrustes.

    Parameters
    ----------
    decoder_a : array_like, shape (n_a, d_a)
    decoder_b : array_like, shape (n_b, d_b)
        Decoder rows of the two SAEs; the widths may differ.
    pairs : saesim.compare.match.Pairs or (a, b) tuple of int arrays
        The pairs to draw (row i of ``a`` with row i of ``b``).
    max_points : int or None, default 2000
        Pairs drawn at most; larger sets are subsampled (seeded). The fit
        uses all pairs.
    seed : int, numpy.random.Generator or None, default 0
        Seed of the subsample.

    Returns
    -------
    DecoderMap

    Raises
    ------
    ValueError
        Fewer than 2 pairs, indices outside the decoders, non-finite rows,
        a width below 2, or ``max_points`` not a positive integer.

    Notes
    -----
    Rows are scaled to unit norm (a latent is a direction). The map is
    ``R = U V^T`` from the thin SVD ``Y^T X = U S V^T`` of the paired rows,
    the (semi-)orthogonal ``R`` minimising ``||Y R - X||_F`` (when the widths
    differ, the narrower side is zero-padded; :func:`saesim.compare.geometry.procrustes`
    scores the same fit). The axes are the first two principal components
    of the A rows, signed so that each axis's largest loading is positive.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> wa = rng.standard_normal((30, 8))
    >>> q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    >>> m = decoder_map(wa, wa @ q, (np.arange(30), np.arange(30)))
    >>> round(m.mean_mapped_cosine, 6), bool(np.allclose(m.xy_a, m.xy_b))
    (1.0, True)
    """
    wa = _finite_2d(decoder_a, "decoder_a")
    wb = _finite_2d(decoder_b, "decoder_b")
    if hasattr(pairs, "a") and hasattr(pairs, "b"):
        a, b = np.asarray(pairs.a, dtype=np.int64), np.asarray(pairs.b, dtype=np.int64)
    else:
        try:
            a, b = (np.asarray(x, dtype=np.int64).reshape(-1) for x in pairs)
        except (TypeError, ValueError):
            raise ValueError("`pairs` must be a saesim.compare.match.Pairs or an (a, b) tuple of latent index arrays; "
                             f"got {type(pairs).__name__}.") from None
    if a.shape != b.shape:
        raise ValueError(f"`pairs` has {a.size} A indices but {b.size} B indices; they must pair up.")
    if a.size < 2:
        raise ValueError(f"`pairs` holds {a.size} pairs; a map needs at least 2 (relax the filters or pick "
                         "another layer pair).")
    for name, idx, w in (("a", a, wa), ("b", b, wb)):
        if idx.min() < 0 or idx.max() >= w.shape[0]:
            raise ValueError(f"`pairs.{name}` holds indices outside [0, {w.shape[0]}) of `decoder_{name}`; pass the "
                             "decoders the pairs were computed for.")
    for name, w in (("decoder_a", wa), ("decoder_b", wb)):
        if w.shape[1] < 2:
            raise ValueError(f"`{name}` has width {w.shape[1]}; a 2-D map needs width >= 2.")
    if max_points is not None:
        _validate_positive_int(max_points, "max_points")
    rng = as_generator(seed)
    x, _ = _unit_rows(wa[a])
    y, _ = _unit_rows(wb[b])
    u, _, vt = np.linalg.svd(y.T @ x, full_matrices=False)
    mapped = y @ (u @ vt)
    norms = np.linalg.norm(mapped, axis=1) * np.linalg.norm(x, axis=1)
    cos = np.sum(mapped * x, axis=1) / np.where(norms > _ZERO_NORM, norms, np.nan)
    mean = x.mean(axis=0)
    _, s, comps = np.linalg.svd(x - mean, full_matrices=False)
    comps = comps[:2]
    signs = np.sign(comps[np.arange(comps.shape[0]), np.argmax(np.abs(comps), axis=1)])
    comps = comps * np.where(signs == 0, 1.0, signs)[:, None]
    total = float(np.sum(s ** 2))
    explained = (s[:2] ** 2 / total) if total > 0 else np.full(2, np.nan)
    keep = np.arange(a.size)
    if max_points is not None and a.size > max_points:
        keep = np.sort(rng.choice(a.size, size=int(max_points), replace=False))
    xy_a = (x[keep] - mean) @ comps.T
    xy_b = (mapped[keep] - mean) @ comps.T
    return DecoderMap(a=a[keep], b=b[keep], xy_a=xy_a, xy_b=xy_b, explained_variance=np.asarray(explained),
                      mean_mapped_cosine=_nanmean(cos), n_pairs=int(a.size),
                      seed=seed if isinstance(seed, numbers.Integral) else None)


def map_figure(dmap: DecoderMap, *, hover_a=None, hover_b=None, color=None, color_label: str = "r",
               title: str = ""):
    """A plotly figure of a :class:`DecoderMap`: A points, mapped B points, a segment per pair.

    Parameters
    ----------
    dmap : DecoderMap
    hover_a, hover_b : sequence of str, optional
        Hover text of each point (e.g. the latents' top tokens), in the order of ``dmap.a``.
    color : sequence of float, optional
        Colour of the A points (e.g. r); default one colour.
    color_label : str, default "r"
    title : str
    """
    import plotly.graph_objects as go

    n = dmap.n_points
    hover_a = [f"A {i}" for i in dmap.a] if hover_a is None else list(hover_a)
    hover_b = [f"B {j}" for j in dmap.b] if hover_b is None else list(hover_b)
    if len(hover_a) != n or len(hover_b) != n:
        raise ValueError(f"`hover_a` and `hover_b` need one text per point ({n}); got {len(hover_a)} and "
                         f"{len(hover_b)}.")
    seg_x = np.column_stack([dmap.xy_a[:, 0], dmap.xy_b[:, 0], np.full(n, np.nan)]).ravel()
    seg_y = np.column_stack([dmap.xy_a[:, 1], dmap.xy_b[:, 1], np.full(n, np.nan)]).ravel()
    marker = dict(size=7, line=dict(width=0.5, color="white"))
    if color is not None:
        marker.update(color=np.asarray(color, dtype=float), colorscale="Magma", showscale=True,
                      colorbar=dict(title=color_label))
    fig = go.Figure([
        go.Scatter(x=seg_x, y=seg_y, mode="lines", line=dict(color="rgba(120,120,120,0.35)", width=1),
                   hoverinfo="skip", name="pair"),
        go.Scatter(x=dmap.xy_b[:, 0], y=dmap.xy_b[:, 1], mode="markers", name="B (mapped)",
                   marker=dict(size=6, symbol="x", color="rgba(40,120,180,0.7)"), text=hover_b,
                   hovertemplate="%{text}<extra></extra>"),
        go.Scatter(x=dmap.xy_a[:, 0], y=dmap.xy_a[:, 1], mode="markers", name="A", marker=marker, text=hover_a,
                   hovertemplate="%{text}<extra></extra>"),
    ])
    ev = dmap.explained_variance
    fig.update_layout(title=title or None, template="plotly_white", height=560, hovermode="closest",
                      xaxis_title=f"PC 1 of the A rows ({ev[0]:.0%})", yaxis_title=f"PC 2 ({ev[1]:.0%})",
                      legend=dict(orientation="h", y=-0.15), margin=dict(l=40, r=20, t=40, b=40))
    return fig


def map_html(fig, *, static_prefix: str = "../../_static", div_id: str = "decoder-map") -> str:
    """The figure as an HTML fragment whose plotly.js comes from ``<static_prefix>/plotly.min.js``.

    ``static_prefix`` is the site's ``_static`` folder relative to the page
    (book pages live in ``book/generated/``); :func:`saesim.report.book.build_book`
    puts the file there (:func:`saesim.report.book.ensure_plotly`).
    """
    from saesim.report.book import PLOTLY_FILE

    return fig.to_html(full_html=False, include_plotlyjs=f"{static_prefix}/{PLOTLY_FILE}", div_id=div_id,
                       config={"displaylogo": False, "responsive": True})


def show_table(frame, *, caption: str = "", table_id: str = "explorer-table", html_columns=(),
               init: bool = True) -> int:
    """Display ``frame`` as an interactive DataTable, offline (itables' bundle inlined in the page).

    Sortable columns, one search box over every column, and a filter box
    under each column (e.g. the ``stage`` column). Cells of ``html_columns``
    are rendered as HTML (links); all others are escaped. ``init`` displays
    the DataTables bundle first (once per page: pass False for a second
    table). Returns the bytes of HTML displayed.
    """
    import itables
    from IPython.display import HTML, display
    from itables.javascript import generate_init_offline_itables_html

    size = 0
    if init:
        itables.init_notebook_mode(all_interactive=False, connected=False)
        size += len(generate_init_offline_itables_html(itables.options.dt_bundle).encode())
    html = set(html_columns)
    frame = frame.copy()
    for column in frame.columns:
        if column not in html and frame[column].dtype == object:
            frame[column] = [_html_escape(str(v)) for v in frame[column]]
    fragment = itables.to_html_datatable(frame, caption=caption or None, table_id=table_id, allow_html=True,
                                         maxBytes=0, column_filters="footer", order=[],
                                         lengthMenu=[10, 25, 100, 500], pageLength=10, classes="display compact nowrap",
                                         scrollX=True,  # every column, scrolled sideways in the page width
                                         showIndex=False, connected=False)
    display(HTML(fragment))
    return size + len(fragment.encode())


def plotly_bytes() -> int:
    """Size of the installed ``plotly.min.js`` (what :func:`saesim.report.book.ensure_plotly` copies)."""
    import plotly

    from saesim.report.book import PLOTLY_FILE

    return (Path(plotly.__file__).parent / "package_data" / PLOTLY_FILE).stat().st_size


def _html_escape(text: str) -> str:
    import html

    return html.escape(text, quote=False)


# --------------------------------------------------------------------------- book helpers


def strongest_pair(frame, *, metric: str = "rsa", rule: str | None = None) -> tuple[int, int]:
    """The (A layer, B layer) whose ``metric`` most exceeds its null mean (``metric - metric_null_mean``).

    Parameters
    ----------
    frame : pandas.DataFrame
        A full-space grid (``full_space.parquet`` or :func:`saesim.report.book.grid_frame`'s ``frame``).
    metric : str, default "rsa"
    rule : str, optional
        Only rows of this rule (default: all rows given).

    Raises
    ------
    ValueError
        The frame lacks ``metric`` or its null mean, or has no finite effect.
    """
    need = [metric, f"{metric}_null_mean", "layer_a", "layer_b"]
    missing = [c for c in need if c not in frame]
    if missing:
        raise ValueError(f"`frame` lacks the columns {missing}; pass a full-space grid (full_space.parquet).")
    rows = frame if rule is None else frame[frame["rule"] == rule]
    effect = (rows[metric] - rows[f"{metric}_null_mean"]).astype(float)
    if not np.isfinite(effect).any():
        raise ValueError(f"`frame` has no finite {metric} effect (rule {rule!r}); every cell was skipped.")
    best = rows.loc[effect.idxmax()]
    return int(best["layer_a"]), int(best["layer_b"])


def seed_floor(profile, *, rule: str | None = None, cache_dir=None, results_dir=None, pairs=None,
               threshold: float = SHARED_COSINE):
    """Cross-model pairing rates beside the seed noise floor, one row per A layer.

    For each A layer: the fraction of B latents paired (after the filters
    and the r cut) with the A layer of the cross-model pair (the B layer
    with the largest RSA effect, or ``pairs``), the same fraction between A
    and the profile's second SAE set of A at the same layer (slot
    ``"seed"``), and :func:`seed_stability` of those two SAE sets.

    Parameters
    ----------
    profile : Profile
        Must have ``seed_control`` (else a ValueError says so).
    rule : str, optional
        Pairing rule (default: the profile's).
    cache_dir, results_dir : path, optional
        As :func:`saesim.report.book.grid_frame`.
    pairs : sequence of (int, int), optional
        Cross-model (A layer, B layer) pairs; default the strongest B layer per A layer.
    threshold : float, default 0.7

    Returns
    -------
    pandas.DataFrame
    """
    import pandas as pd

    from saesim.report.book import grid_frame
    from saesim.experiments.grid import cached_best_partners
    from saesim.extract.pipeline import load_layer

    if profile.seed_control is None:
        raise ValueError(f"profile `{profile.name}` has no `seed_control` (a second SAE set of model A); the seed "
                         "floor needs one (see the offline profile).")
    cache = Path(cache_dir) if cache_dir is not None else Path(profile.cache_dir)
    rules = [rule] if rule else None
    cross = grid_frame(profile, rules=rules, cache_dir=cache, results_dir=results_dir).frame
    rule = rule or cross["rule"].iloc[0]
    cross = cross[cross["rule"] == rule]
    if pairs is None:
        pairs = [strongest_pair(cross[cross["layer_a"] == la]) for la in sorted(cross["layer_a"].unique())]
    seed_layers = set(profile.layers("seed"))
    same = [(la, la) for la, _ in pairs if la in seed_layers]
    seed = grid_frame(profile, rules=[rule], slots=("a", "seed"), pairs=same, cache_dir=cache,
                      results_dir=results_dir).frame if same else cross.iloc[:0]
    out = []
    for la, lb in pairs:
        c = cross[(cross["layer_a"] == la) & (cross["layer_b"] == lb)].iloc[0]
        row = {"layer_a": la, "layer_b": lb, "rule": rule,
               "cross_paired_fraction": c["n_pairs"] / c["n_latents_b"]}
        s = seed[(seed["layer_a"] == la) & (seed["layer_b"] == la)] if len(seed) else seed
        if len(s):
            row["seed_paired_fraction"] = s.iloc[0]["n_pairs"] / s.iloc[0]["n_latents_b"]
            data_a, data_s = load_layer(profile, "a", la, out=cache), load_layer(profile, "seed", la, out=cache)
            best = cached_best_partners(data_a, data_s, compat=profile.compat, cache=cache)
            res = seed_stability(data_a, data_s, threshold=threshold, best=best, compat=profile.compat)
            row.update({f"seed_{k}": v for k, v in res.row().items()
                        if k in ("statistic", "shared_fraction_r", "mean_max_cosine", "mean_max_cosine_y",
                                 "n_shared", "n_shared_r", "n_x", "n_y")})
        out.append(row)
    return pd.DataFrame(out)


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
    decoder = _finite_2d(decoder, f"{name}.decoder")
    if codes is not None:
        codes = check_codes(codes, name=f"{name}.codes")
        if codes.shape[1] != decoder.shape[0]:
            raise ValueError(f"`{name}.codes` has {codes.shape[1]} latents (columns) but `{name}.decoder` has "
                             f"{decoder.shape[0]} rows; pass the codes and decoder of the same SAE.")
        if sp.issparse(codes):
            codes = sp.csr_matrix(codes)
    return decoder, codes


def _finite_2d(w, name: str) -> np.ndarray:
    arr = np.asarray(w, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"`{name}` must be a 2-D decoder (n_latents, d); got shape {arr.shape}. Transpose a "
                         "(d, n_latents) weight.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` contains {int(np.count_nonzero(~np.isfinite(arr)))} NaN or infinite values; "
                         "decoder rows must be finite.")
    return arr


def _unit_rows(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    norms = np.linalg.norm(w, axis=1)
    zero = norms < _ZERO_NORM
    return w / np.where(zero, 1.0, norms)[:, None] * (~zero)[:, None], zero


def _nanmean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=float)
    return float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")


def _validate_threshold(value, name: str) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not (0 < float(value) <= 1):
        raise ValueError(f"`{name}` must be a number in (0, 1], such as 0.7 (Paulo and Belrose); got {value!r}.")
    return float(value)


def _validate_positive_int(value, name: str) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer; got {value!r}.")
