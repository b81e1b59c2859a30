"""Pairing rules: from best partners to (A latent, B latent) pairs.

:func:`saesim.compare.corr.best_partners` gives every latent its best-correlated
partner in the other model. This module turns that into a set of pairs, with
the rule made explicit:

* ``"many_to_one"`` — the paper's pairing: every B latent keeps its best A
  latent (an A latent may be chosen by many B latents);
* ``"first_index"`` — the paper's "1-1": the authors' greedy first-occurrence
  de-duplication (each A latent keeps the chooser with the lowest index);
* ``"max_corr"`` — each A latent keeps the chooser it correlates with best;
* ``"mutual"`` — mutual nearest neighbours;
* ``"hungarian"`` — an optimal 1-1 assignment maximising the total r on the
  sparse top-m candidate graph.

Every function returns new frozen objects, so the filters of a pipeline
compose. The paper's order (authors_pipeline §2.4) is junk filter, then 1-1,
then the r cut; it is spelled out with the building blocks::

    pairs = pair(best, rule="many_to_one", r_min=-np.inf)   # every B latent
    pairs = filter_pairs(pairs, junk_mask, stage="junk")    # any boolean mask
    pairs = dedup(pairs, "first_index")                     # 1-1
    pairs = r_cut(pairs, r_min=0.1)                         # r > 0.1

``pair(best, rule="first_index")`` is exactly that chain without the junk
filter.

References
----------
Lan et al., "Sparse Autoencoders Reveal Universal Feature Spaces Across Large
Language Models", arXiv:2410.06981 (2024), Sec. 3.

Jonker and Volgenant, "A shortest augmenting path algorithm for dense and
sparse linear assignment problems", Computing 38 (1987), 325-340.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

from saesim.validation import check_positive_int

__all__ = [
    "DEDUP_RULES",
    "DEFAULT_R_MIN",
    "DIRECTIONS",
    "RULES",
    "HubCounts",
    "Pairs",
    "dedup",
    "filter_pairs",
    "hub_counts",
    "max_weight_matching",
    "pair",
    "r_cut",
]

Rule = Literal["many_to_one", "first_index", "max_corr", "mutual", "hungarian"]
DedupRule = Literal["first_index", "max_corr", "hungarian"]
Direction = Literal["b_to_a", "a_to_b"]

RULES: tuple[str, ...] = ("many_to_one", "first_index", "max_corr", "mutual", "hungarian")
"""The pairing rules of :func:`pair`."""

DEDUP_RULES: tuple[str, ...] = ("first_index", "max_corr", "hungarian")
"""The 1-1 rules of :func:`dedup` (the ones that need only the pairs)."""

DIRECTIONS: tuple[str, ...] = ("b_to_a", "a_to_b")
"""``"b_to_a"``: each B latent chooses an A latent (the paper's default)."""

DEFAULT_R_MIN = 0.1
"""The paper's low-correlation cut: pairs are kept only when r > 0.1."""

_COST_OFFSET = -1.0
"""Added to every edge cost of the assignment graph (``offset - r``) so none is zero
(the sparse solver needs non-zero weights); exact, as every full matching has as many edges."""


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, eq=False)
class Pairs:
    """A set of (A latent, B latent) pairs with their correlations.

    Pairs are sorted by B index, then A index. The arrays are read-only.

    Attributes
    ----------
    a : ndarray of int64, shape (n_pairs,)
        Latent indices of model A.
    b : ndarray of int64, shape (n_pairs,)
        Latent indices of model B.
    r : ndarray of float64, shape (n_pairs,)
        Pearson r of each pair (the chooser's best-partner r, or the
        candidate-edge r for ``"hungarian"``).
    rule : str
        The last pairing or de-duplication rule applied.
    direction : {"b_to_a", "a_to_b"}
        Which side chose: ``"b_to_a"`` means each B latent chose an A latent.
    r_min : float
        The r cut applied so far (pairs have r > r_min); -inf when none.
    n_a, n_b : int
        Number of latents of A and B (for fractions and for :meth:`rows`).
    stages : tuple of (str, int)
        The steps that produced the pairs, each with the number of pairs left
        after it, e.g. ``(("best_partners", 512), ("first_index", 300),
        ("r>0.1", 280))``.

    Examples
    --------
    >>> p = Pairs(a=[2, 0], b=[1, 0], r=[0.5, 0.8], rule="mutual", direction="b_to_a",
    ...           r_min=0.1, n_a=3, n_b=2)
    >>> p.a.tolist(), p.b.tolist(), p.n_pairs, p.is_one_to_one
    ([0, 2], [0, 1], 2, True)
    >>> X, Y = p.rows(np.eye(3), np.ones((2, 4)))
    >>> X.shape, Y.shape
    ((2, 3), (2, 4))
    """

    a: np.ndarray
    b: np.ndarray
    r: np.ndarray
    rule: str
    direction: str
    r_min: float
    n_a: int
    n_b: int
    stages: tuple[tuple[str, int], ...] = field(default=())

    def __post_init__(self):
        _validate_direction(self.direction)
        object.__setattr__(self, "n_a", int(self.n_a))
        object.__setattr__(self, "n_b", int(self.n_b))
        object.__setattr__(self, "r_min", float(self.r_min))
        a = np.array(self.a, dtype=np.int64).reshape(-1)
        b = np.array(self.b, dtype=np.int64).reshape(-1)
        r = np.array(self.r, dtype=np.float64).reshape(-1)
        if not (a.shape == b.shape == r.shape):
            raise ValueError(
                f"`a`, `b` and `r` must have the same length; got {a.shape[0]}, {b.shape[0]}, {r.shape[0]}."
            )
        order = np.lexsort((a, b))
        for name, arr in (("a", a), ("b", b), ("r", r)):
            arr = arr[order]
            arr.flags.writeable = False
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "stages", tuple((str(s), int(n)) for s, n in self.stages))

    # ----------------------------------------------------------------- derived
    @property
    def n_pairs(self) -> int:
        """Number of pairs."""
        return int(self.a.shape[0])

    @property
    def n_unique_a(self) -> int:
        """Number of distinct A latents among the pairs (``num_feat_A_unique``)."""
        return int(np.unique(self.a).size)

    @property
    def n_unique_b(self) -> int:
        """Number of distinct B latents among the pairs."""
        return int(np.unique(self.b).size)

    @property
    def is_one_to_one(self) -> bool:
        """Whether no A latent and no B latent appears twice."""
        return self.n_unique_a == self.n_pairs and self.n_unique_b == self.n_pairs

    def __len__(self) -> int:
        return self.n_pairs

    def mean_r(self) -> float:
        """Mean r over the pairs (``mean_actv_corr_filt``); nan when empty."""
        return float(np.mean(self.r)) if self.n_pairs else float("nan")

    def rows(self, W_a, W_b) -> tuple[np.ndarray, np.ndarray]:
        """Decoder rows of the pairs: ``(W_a[a], W_b[b])``, row i of each is pair i.

        Parameters
        ----------
        W_a : array_like, shape (n_a, d_a)
            Decoder of A, one row per latent.
        W_b : array_like, shape (n_b, d_b)
            Decoder of B.

        Returns
        -------
        X, Y : ndarray, shapes (n_pairs, d_a) and (n_pairs, d_b)
        """
        W_a, W_b = np.asarray(W_a), np.asarray(W_b)
        for name, W, n in (("W_a", W_a, self.n_a), ("W_b", W_b, self.n_b)):
            if W.ndim != 2 or W.shape[0] != n:
                raise ValueError(
                    f"`{name}` must be a 2-D decoder with one row per latent ({n} rows); got shape "
                    f"{W.shape}. Pass the decoder of the SAE the pairs were computed for (transpose "
                    "a (d, n) weight)."
                )
        return W_a[self.a], W_b[self.b]

    def to_frame(self):
        """The pairs as a pandas DataFrame with columns ``a``, ``b``, ``r``."""
        import pandas as pd

        return pd.DataFrame({"a": self.a, "b": self.b, "r": self.r})

    def summary(self) -> dict:
        """Counts for one tidy-table row (stage counts as ``n_after_<stage>``)."""
        row = {
            "rule": self.rule,
            "direction": self.direction,
            "r_min": self.r_min,
            "n_pairs": self.n_pairs,
            "n_unique_a": self.n_unique_a,
            "n_unique_b": self.n_unique_b,
            "mean_r": self.mean_r(),
        }
        for stage, n in self.stages:
            row[f"n_after_{stage}"] = n
        return row

    def __repr__(self) -> str:
        return (
            f"Pairs(n_pairs={self.n_pairs}, n_unique_a={self.n_unique_a}, rule={self.rule!r}, "
            f"direction={self.direction!r}, r_min={self.r_min}, stages={self.stages})"
        )


@dataclass(frozen=True, eq=False)
class HubCounts:
    """How many latents chose each latent as their best partner.

    Attributes
    ----------
    counts : ndarray of int64, shape (n_targets,)
        For ``direction="b_to_a"``: for each A latent, the number of B
        latents whose best partner it is (the authors'
        ``Counter(max_corr_inds)``). For ``"a_to_b"`` the roles swap.
    n_choosers : int
        Number of latents that chose (n_b for ``"b_to_a"``), with or without
        a partner.
    direction : {"b_to_a", "a_to_b"}
    """

    counts: np.ndarray
    n_choosers: int
    direction: str

    def __post_init__(self):
        counts = np.array(self.counts, dtype=np.int64).reshape(-1)
        counts.flags.writeable = False
        object.__setattr__(self, "counts", counts)

    @property
    def n_unique(self) -> int:
        """Number of latents that are anyone's best partner."""
        return int(np.count_nonzero(self.counts))

    @property
    def unique_fraction(self) -> float:
        """The authors' "% unique": distinct partners / number of choosers (n_b)."""
        return self.n_unique / self.n_choosers if self.n_choosers else float("nan")

    @property
    def target_fraction(self) -> float:
        """Fraction of the target latents (A for ``"b_to_a"``) that are anyone's partner."""
        return self.n_unique / self.counts.size if self.counts.size else float("nan")

    def top(self, n: int = 20) -> list[tuple[int, int]]:
        """The ``n`` biggest hubs as ``(latent, count)``, count descending, ties to lower index.

        Like ``Counter(max_corr_inds).most_common(n)``, but deterministic;
        latents with count 0 are left out.
        """
        check_positive_int(n, "n", minimum=0)
        order = np.lexsort((np.arange(self.counts.size), -self.counts))
        order = order[self.counts[order] > 0][: int(n)]
        return [(int(i), int(self.counts[i])) for i in order]

    def to_frame(self):
        """Latents with count > 0 as a DataFrame (``latent``, ``count``), biggest first."""
        import pandas as pd

        top = self.top(self.counts.size)
        return pd.DataFrame(top, columns=["latent", "count"]).astype("int64")


# --------------------------------------------------------------------------- public functions


def pair(best, *, rule: Rule, r_min: float = DEFAULT_R_MIN, direction: Direction = "b_to_a") -> Pairs:
    """Pair the latents of two SAEs from their best partners.

    Parameters
    ----------
    best : saesim.compare.corr.BestPartners
        Best partners and top-m candidates (from :func:`saesim.compare.corr.best_partners`).
    rule : {"many_to_one", "first_index", "max_corr", "mutual", "hungarian"}
        How pairs are formed (each chooser is a B latent for
        ``direction="b_to_a"``):

        * ``"many_to_one"`` — the paper's pairing: every chooser with a
          partner keeps its best partner; a target may repeat.
        * ``"first_index"`` — the paper's "1-1" (authors' greedy rule):
          choosers are walked in increasing index and (target, chooser) is
          kept only if the target was not kept before. The de-duplication runs
          on the *unfiltered* best-partner list and the r cut comes after it
          (authors_pipeline §2.4, steps 2-3), so a target whose first chooser
          has r <= r_min is lost even if a later chooser has a high r.
        * ``"max_corr"`` — each target keeps the chooser with the highest r
          among those that chose it (ties to the lower chooser index).
        * ``"mutual"`` — mutual nearest neighbours: ``best.index[j] == i`` and
          ``best.index_a[i] == j``.
        * ``"hungarian"`` — an optimal 1-1 assignment maximising the total r
          over the candidate graph: the union of both directions' top-m
          candidates with r > max(r_min, 0). Latents left unmatched are left
          out (a maximum-weight, not a full, matching).
    r_min : float, default 0.1
        Keep pairs with r > r_min (strict). ``-inf`` keeps every pair (no cut).
    direction : {"b_to_a", "a_to_b"}, default "b_to_a"
        ``"b_to_a"``: each B latent chooses an A latent (the authors'
        ``batched_correlation(A, B)``). ``"a_to_b"``: each A latent chooses a
        B latent (``best.reversed()``). Pairs are reported as (A, B) indices
        either way. ``"mutual"`` and ``"hungarian"`` do not depend on it.

    Returns
    -------
    Pairs
        Sorted by B index, then A index, with the stage counts in
        ``Pairs.stages``.

    Raises
    ------
    ValueError
        Unknown ``rule`` or ``direction``; ``r_min`` NaN, +inf or not a
        number; ``"hungarian"`` asked of a result without candidates (m = 0).
    TypeError
        ``best`` is not a BestPartners-like result.

    Notes
    -----
    With ``best.compat`` (the authors' ``batched_correlation``), every B latent
    has a partner: dead latents point at A latent 0 with r = 0. The r cut
    (r > 0.1) removes them, but under ``"first_index"`` such a dead B latent
    with a low index still claims A latent 0 before the cut, as in the
    authors' code.

    For ``"hungarian"`` the candidate graph is made to have a full matching by
    giving every latent of the smaller side a private dummy partner whose edge
    is worth 0, so
    :func:`scipy.sparse.csgraph.min_weight_full_bipartite_matching` (LAPJVsp)
    returns a maximum-weight matching. Edges with r <= 0 can never raise the
    total and are not added. Ties between optimal matchings are broken by the
    solver, deterministically.

    Examples
    --------
    >>> import numpy as np
    >>> from saesim.compare.corr import best_partners
    >>> rng = np.random.default_rng(0)
    >>> a = rng.exponential(size=(400, 5)) * (rng.random((400, 5)) < 0.3)
    >>> b = a[:, [3, 3, 0, 1]] * rng.uniform(0.5, 1.5, size=(400, 4))
    >>> best = best_partners(a, b, m=3)
    >>> pair(best, rule="many_to_one").a.tolist()
    [3, 3, 0, 1]
    >>> p = pair(best, rule="first_index")
    >>> p.a.tolist(), p.b.tolist()
    ([3, 0, 1], [0, 2, 3])
    """
    _validate_rule(rule, RULES, name="rule")
    _validate_direction(direction)
    r_min = _validate_r_min(r_min)
    _validate_best(best)
    if rule == "hungarian":
        return _pair_hungarian(best, r_min=r_min, direction=direction)
    work = best.reversed() if direction == "a_to_b" else best
    chooser = np.flatnonzero(work.index >= 0)
    base = _from_chooser_target(chooser, work.index[chooser], work.r[chooser], best, rule="many_to_one",
                                direction=direction, r_min=-np.inf, stages=(("best_partners", chooser.size),))
    if rule == "mutual":
        # symmetric in the direction: B's best is a and A's best is b
        mutual = (best.index[base.b] == base.a) & (best.index_a[base.a] == base.b)
        base = _replace(filter_pairs(base, mutual, stage="mutual"), rule="mutual")
    elif rule in ("first_index", "max_corr"):
        base = dedup(base, rule)
    return r_cut(base, r_min=r_min)


def dedup(pairs: Pairs, rule: DedupRule) -> Pairs:
    """Make a set of pairs 1-1, keeping the other filters' result.

    Use it after any filter, to follow the paper's order (junk filter, then
    1-1, then r cut)::

        pairs = pair(best, rule="many_to_one", r_min=-np.inf)
        pairs = dedup(filter_pairs(pairs, junk_mask, stage="junk"), "first_index")
        pairs = r_cut(pairs, r_min=0.1)

    Parameters
    ----------
    pairs : Pairs
        Pairs in which every chooser (B latent for ``direction="b_to_a"``)
        appears at most once, as from ``pair(..., rule="many_to_one")``, for
        ``"first_index"`` and ``"max_corr"``; any pairs for ``"hungarian"``.
    rule : {"first_index", "max_corr", "hungarian"}
        * ``"first_index"`` — the authors' greedy rule: walk the pairs in
          increasing chooser index and keep one only if its target (A latent
          for ``"b_to_a"``) was not kept before (``numpy.unique`` with
          ``return_index=True``: O(n log n), not the authors' O(n²) list
          membership test).
        * ``"max_corr"`` — each target keeps its highest-r pair (ties to the
          lower chooser index).
        * ``"hungarian"`` — a maximum-total-r 1-1 subset of the pairs (pairs
          with r <= 0 are never chosen).

    Returns
    -------
    Pairs
        A new 1-1 set, ``rule`` set to the dedup rule, the stage appended.

    Raises
    ------
    ValueError
        Unknown ``rule``; a chooser that appears twice under
        ``"first_index"`` / ``"max_corr"``.

    Examples
    --------
    >>> p = Pairs(a=[4, 4, 2], b=[0, 1, 2], r=[0.05, 0.9, 0.5], rule="many_to_one",
    ...           direction="b_to_a", r_min=-np.inf, n_a=5, n_b=3)
    >>> dedup(p, "first_index").b.tolist(), dedup(p, "max_corr").b.tolist()
    ([0, 2], [1, 2])
    """
    _validate_pairs(pairs)
    _validate_rule(rule, DEDUP_RULES, name="rule")
    chooser, target = _chooser_target(pairs)
    if rule == "hungarian":
        keep = np.zeros(pairs.n_pairs, dtype=bool)
        keep[max_weight_matching(chooser, target, pairs.r)] = True
        return _replace(filter_pairs(pairs, keep, stage="hungarian"), rule="hungarian")
    if np.unique(chooser).size != chooser.size:
        side = "B" if pairs.direction == "b_to_a" else "A"
        raise ValueError(
            f"`pairs` has {chooser.size - np.unique(chooser).size} repeated {side} latents (choosers); "
            f"dedup(..., {rule!r}) expects each chooser once, as from pair(..., rule='many_to_one'). "
            "Use dedup(..., 'hungarian') for a general set of pairs."
        )
    if rule == "first_index":
        order = np.argsort(chooser, kind="stable")
        _, first = np.unique(target[order], return_index=True)
        keep_rows = order[first]
    else:  # max_corr: per target, highest r first, then lowest chooser
        r = np.nan_to_num(pairs.r, nan=-np.inf)
        order = np.lexsort((chooser, -r, target))
        _, first = np.unique(target[order], return_index=True)
        keep_rows = order[first]
    keep = np.zeros(pairs.n_pairs, dtype=bool)
    keep[keep_rows] = True
    return _replace(filter_pairs(pairs, keep, stage=rule), rule=rule)


def r_cut(pairs: Pairs, *, r_min: float = DEFAULT_R_MIN) -> Pairs:
    """Keep the pairs with r > r_min (strict); NaN r is dropped.

    Parameters
    ----------
    pairs : Pairs
    r_min : float, default 0.1
        The cut; ``-inf`` keeps everything (and records no stage).

    Returns
    -------
    Pairs
        ``r_min`` set to the larger of the old and the new cut, the stage
        ``"r>{r_min}"`` appended.

    Examples
    --------
    >>> p = Pairs(a=[0, 1], b=[0, 1], r=[0.1, 0.3], rule="mutual", direction="b_to_a",
    ...           r_min=-np.inf, n_a=2, n_b=2)
    >>> r_cut(p, r_min=0.1).a.tolist()
    [1]
    """
    _validate_pairs(pairs)
    r_min = _validate_r_min(r_min)
    if r_min == -np.inf:
        return pairs
    cut = filter_pairs(pairs, pairs.r > r_min, stage=f"r>{r_min:g}")
    return _replace(cut, r_min=max(pairs.r_min, r_min))


def filter_pairs(pairs: Pairs, mask, *, stage: str) -> Pairs:
    """Keep the pairs where ``mask`` is True.

    Any filter (junk tokens, token overlap, ...) that returns a boolean mask
    over the pairs composes through this function.

    Parameters
    ----------
    pairs : Pairs
    mask : array_like of bool, shape (n_pairs,)
        True for the pairs to keep, in the order of ``pairs.a`` / ``pairs.b``.
    stage : str
        Name of the filter, recorded in ``Pairs.stages`` with the count left.

    Returns
    -------
    Pairs
        A new object; ``pairs`` is unchanged.

    Examples
    --------
    >>> p = Pairs(a=[3, 1], b=[0, 1], r=[0.5, 0.6], rule="many_to_one", direction="b_to_a",
    ...           r_min=0.1, n_a=4, n_b=2)
    >>> q = filter_pairs(p, [True, False], stage="junk")
    >>> q.a.tolist(), q.stages
    ([3], (('junk', 1),))
    """
    _validate_pairs(pairs)
    if not isinstance(stage, str) or not stage:
        raise ValueError(f"`stage` must be a non-empty string naming the filter; got {stage!r}.")
    mask = np.asarray(mask)
    if mask.dtype != np.bool_ or mask.shape != (pairs.n_pairs,):
        raise ValueError(
            f"`mask` must be a boolean array of shape ({pairs.n_pairs},), one entry per pair in "
            f"the order of `pairs.a`; got dtype {mask.dtype} and shape {mask.shape}."
        )
    return Pairs(
        a=pairs.a[mask],
        b=pairs.b[mask],
        r=pairs.r[mask],
        rule=pairs.rule,
        direction=pairs.direction,
        r_min=pairs.r_min,
        n_a=pairs.n_a,
        n_b=pairs.n_b,
        stages=pairs.stages + ((stage, int(mask.sum())),),
    )


def hub_counts(best, *, direction: Direction = "b_to_a") -> HubCounts:
    """Count how many latents chose each latent as their best partner.

    Parameters
    ----------
    best : saesim.compare.corr.BestPartners or Pairs
        Best partners (every chooser with a partner counts; under ``compat``
        dead B latents count for A latent 0, as in the authors' ``Counter``),
        or pairs after filtering (each pair counts once for its target).
    direction : {"b_to_a", "a_to_b"}, default "b_to_a"
        ``"b_to_a"``: count, for each A latent, the B latents that chose it.

    Returns
    -------
    HubCounts
        ``counts`` per target latent, ``top(n)`` hubs, ``unique_fraction``
        (the authors' "% unique" = distinct partners / n choosers).

    Examples
    --------
    >>> p = Pairs(a=[2, 2, 2, 0], b=[0, 1, 2, 3], r=[0.5] * 4, rule="many_to_one",
    ...           direction="b_to_a", r_min=0.1, n_a=3, n_b=4)
    >>> h = hub_counts(p)
    >>> h.counts.tolist(), h.top(1), h.unique_fraction
    ([1, 0, 3], [(2, 3)], 0.5)
    """
    _validate_direction(direction)
    if isinstance(best, Pairs):
        targets, n_targets, n_choosers = (
            (best.a, best.n_a, best.n_b) if direction == "b_to_a" else (best.b, best.n_b, best.n_a)
        )
    else:
        _validate_best(best)
        work = best.reversed() if direction == "a_to_b" else best
        targets = work.index[work.index >= 0]
        n_targets, n_choosers = work.n_a, work.n_b
    counts = np.bincount(targets, minlength=n_targets).astype(np.int64)
    return HubCounts(counts=counts, n_choosers=int(n_choosers), direction=direction)


# --------------------------------------------------------------------------- hungarian


def _pair_hungarian(best, *, r_min: float, direction: str) -> Pairs:
    if best.top_index.shape[1] == 0 or best.top_index_a.shape[1] == 0:
        raise ValueError(
            "`best` holds no top-m candidates (m = 0), so the 'hungarian' rule has no graph to "
            "match on; recompute with saesim.compare.corr.best_partners(..., m=8) or larger."
        )
    # Candidate edges as (B latent, A latent, r), from both directions.
    n_b, m_b = best.top_index.shape
    n_a, m_a = best.top_index_a.shape
    b_1 = np.repeat(np.arange(n_b), m_b)
    a_1 = best.top_index.ravel()
    r_1 = best.top_r.ravel()
    a_2 = np.repeat(np.arange(n_a), m_a)
    b_2 = best.top_index_a.ravel()
    r_2 = best.top_r_a.ravel()
    b_all = np.concatenate([b_1, b_2])
    a_all = np.concatenate([a_1, a_2])
    r_all = np.concatenate([r_1, r_2]).astype(np.float64)
    threshold = max(r_min, 0.0)
    valid = (a_all >= 0) & (b_all >= 0) & (np.nan_to_num(r_all, nan=-np.inf) > threshold)
    b_all, a_all, r_all = b_all[valid], a_all[valid], r_all[valid]
    n_edges = int(np.unique(b_all * np.int64(max(n_a, 1)) + a_all).size)
    chosen = max_weight_matching(b_all, a_all, r_all)
    return Pairs(
        a=a_all[chosen],
        b=b_all[chosen],
        r=r_all[chosen],
        rule="hungarian",
        direction=direction,
        r_min=r_min,
        n_a=best.n_a,
        n_b=best.n_b,
        stages=(("candidates", n_edges), ("hungarian", chosen.size)),
    )


def max_weight_matching(rows, cols, weights) -> np.ndarray:
    """Maximum-weight bipartite matching (not necessarily full) on a sparse edge list.

    Returns the sorted positions in the input arrays of the matched edges (of
    duplicate (row, col) edges, the one with the largest weight). Only edges
    with weight > 0 are used: the others can never raise the total.

    Construction: the side with fewer nodes (R "rows") is matched into the C
    nodes of the other side plus R dummy nodes, one private dummy per row. A
    row matched to its dummy stays unmatched (gain 0). Every full matching of
    this graph matches each row exactly once, so with costs
    ``_COST_OFFSET - w`` (real edges) and ``_COST_OFFSET`` (dummy edges) its
    cost is ``R * _COST_OFFSET - sum(w)`` over the real edges it uses, and the
    minimum-cost full matching (LAPJVsp) is a maximum-weight matching. A full
    matching always exists (every row to its dummy).

    The problem is deliberately rectangular. For square input LAPJVsp first
    runs the Jonker-Volgenant initialisation (column reduction and augmenting
    row reduction), which is faster on easy inputs, but the augmenting row
    reduction can crawl or stall on (near-)tied costs: a square symmetric
    reduction took seconds on 300-node problems with tied r. For rectangular
    input scipy skips it and runs one shortest augmenting path per row, whose
    run time is bounded.
    """
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    candidates = np.flatnonzero(np.nan_to_num(weights, nan=-np.inf) > 0)
    if candidates.size == 0:
        return np.empty(0, dtype=np.int64)
    row_labels, ri = np.unique(rows[candidates], return_inverse=True)
    col_labels, ci = np.unique(cols[candidates], return_inverse=True)
    n_r, n_c = row_labels.size, col_labels.size
    # Duplicate edges: keep the largest weight (then the first position).
    key = ri * np.int64(n_c) + ci
    order = np.lexsort((candidates, -weights[candidates], key))
    _, first = np.unique(key[order], return_index=True)
    sel = order[first]  # positions into `candidates`, sorted by key
    ri, ci, w = ri[sel], ci[sel], weights[candidates[sel]]
    if n_r <= n_c:
        small, large, n_small, n_large = ri, ci, n_r, n_c
    else:
        small, large, n_small, n_large = ci, ri, n_c, n_r
    src = np.concatenate([small, np.arange(n_small)])
    dst = np.concatenate([large, n_large + np.arange(n_small)])
    cost = np.concatenate([_COST_OFFSET - w, np.full(n_small, _COST_OFFSET)])
    graph = sp.csr_matrix((cost, (src, dst)), shape=(n_small, n_large + n_small))
    matched_small, matched_large = min_weight_full_bipartite_matching(graph)
    real = matched_large < n_large
    matched_small, matched_large = matched_small[real].astype(np.int64), matched_large[real].astype(np.int64)
    if n_r <= n_c:
        matched_key = matched_small * np.int64(n_c) + matched_large
    else:
        matched_key = matched_large * np.int64(n_c) + matched_small
    pos = np.searchsorted(key[sel], matched_key)
    return np.sort(candidates[sel[pos]])


# --------------------------------------------------------------------------- helpers


def _from_chooser_target(chooser, target, r, best, *, rule, direction, r_min, stages) -> Pairs:
    a, b = (target, chooser) if direction == "b_to_a" else (chooser, target)
    return Pairs(a=a, b=b, r=r, rule=rule, direction=direction, r_min=r_min, n_a=best.n_a,
                 n_b=best.n_b, stages=stages)


def _chooser_target(pairs: Pairs) -> tuple[np.ndarray, np.ndarray]:
    return (pairs.b, pairs.a) if pairs.direction == "b_to_a" else (pairs.a, pairs.b)


def _replace(pairs: Pairs, **changes) -> Pairs:
    fields = dict(a=pairs.a, b=pairs.b, r=pairs.r, rule=pairs.rule, direction=pairs.direction,
                  r_min=pairs.r_min, n_a=pairs.n_a, n_b=pairs.n_b, stages=pairs.stages)
    fields.update(changes)
    return Pairs(**fields)


def _validate_rule(rule, valid: tuple[str, ...], *, name: str) -> None:
    if not isinstance(rule, str) or rule not in valid:
        raise ValueError(f"`{name}` must be one of {', '.join(map(repr, valid))}; got {rule!r}.")


def _validate_direction(direction) -> None:
    if not isinstance(direction, str) or direction not in DIRECTIONS:
        raise ValueError(
            f"`direction` must be one of {', '.join(map(repr, DIRECTIONS))}; got {direction!r}. "
            "'b_to_a' = each B latent chooses an A latent (the paper's default)."
        )


def _validate_r_min(r_min) -> float:
    if not isinstance(r_min, numbers.Real) or isinstance(r_min, bool):
        raise ValueError(f"`r_min` must be a real number such as 0.1 (or -inf for no cut); got {r_min!r}.")
    r_min = float(r_min)
    if np.isnan(r_min) or r_min == np.inf:
        raise ValueError(
            f"`r_min` must be finite (or -inf for no cut); got {r_min!r}. The paper's cut is r_min=0.1."
        )
    return r_min


_BEST_FIELDS = ("index", "r", "index_a", "r_a", "dead_a", "dead_b", "top_index", "top_r",
                "top_index_a", "top_r_a")


def _validate_best(best) -> None:
    missing = [f for f in _BEST_FIELDS if not hasattr(best, f)]
    if missing:
        raise TypeError(
            f"`best` must be a saesim.compare.corr.BestPartners (from best_partners(codes_a, codes_b)); "
            f"got {type(best).__name__}, which lacks {', '.join(missing)}."
        )
    n_a, n_b = len(best.dead_a), len(best.dead_b)
    shapes = {
        "index": (best.index.shape, (n_b,)),
        "r": (best.r.shape, (n_b,)),
        "index_a": (best.index_a.shape, (n_a,)),
        "r_a": (best.r_a.shape, (n_a,)),
    }
    for name, (got, want) in shapes.items():
        if tuple(got) != want:
            raise ValueError(f"`best.{name}` has shape {tuple(got)} but {want} was expected from dead_a/dead_b.")
    for name, n in (("top_index", n_b), ("top_r", n_b), ("top_index_a", n_a), ("top_r_a", n_a)):
        arr = getattr(best, name)
        if arr.ndim != 2 or arr.shape[0] != n:
            raise ValueError(f"`best.{name}` must have shape ({n}, m); got {arr.shape}.")


def _validate_pairs(pairs) -> None:
    if not isinstance(pairs, Pairs):
        raise TypeError(
            f"`pairs` must be a saesim.compare.match.Pairs (from pair(best, rule=...)); got {type(pairs).__name__}."
        )
