"""The paper's experiments as tidy tables: full-space grid and semantic subspaces.

One *cell* is a (layer of A, layer of B) pair. For each cell the best partners
are computed once and reused for every pairing rule and direction; each
(rule, direction) gives one tidy record with the counts after each filter
stage, the correlations, the hub counts and, for each similarity measure, the
paired score, its null mean and spread, p-value and z-score. The null is the
shuffled pairing for 1-1 rules and, for ``many_to_one``, the group null that
permutes the distinct hub partners among the groups sharing one
(``null_kind`` "shuffle" or "group"; ``compat`` keeps the authors' shuffle).

The order of the filters follows the paper (authors_pipeline.md §2.4):
many-to-1 best partners → junk/overlap filter → 1-1 → r > r_min. Rules that
are 1-1 by construction (mutual, Hungarian) skip the de-duplication step.
Each filter is a mask from :mod:`saesim.compare.filters`, applied with
:func:`saesim.compare.match.filter_pairs`, so a filter's result can never be undone
(the authors' for-else bug); :func:`saesim.compare.stages.filter_stages` runs the chain.

Records and grids are plain dicts and pandas DataFrames; :func:`run_grid` and
:func:`semantic_grid` write parquet and reuse cells already computed.
"""

from __future__ import annotations

import hashlib
import json
import numbers
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from saesim.compare.concepts import CONCEPTS, CONTROL_CONCEPT, members
from saesim.compare.corr import DEFAULT_TOP_M, BestPartners, quiet_best_partners
from saesim.compare.filters import SaeLayer, TopTokens
from saesim.compare.match import RULES, hub_counts, pair
# The grids' historical name for the table-wide adjustment (notebooks import it from here).
from saesim.compare.multitest import adjust_columns as adjust_pvalues
from saesim.compare.nulls import p_value, permutation_tests
from saesim.compare.significance import holm_within_families, tail_p_value
from saesim.compare.stages import filtered_pairs
from saesim.experiments.executors import EXECUTORS, run_cells
from saesim.io import atomic_parquet, atomic_write_text, read_json_or_none, to_jsonable
from saesim.validation import check_positive_int

__all__ = [
    "GRID_COLUMNS",
    "CompareSettings",
    "GridPlan",
    "GridResult",
    "SaeLayer",
    "adjust_pvalues",
    "cached_best_partners",
    "compare_best",
    "compare_pair",
    "run_grid",
    "run_profile",
    "semantic_compare",
    "semantic_grid",
]

METRICS = ("svcca", "rsa", "linear_cka")
"""Measures scored in every record (each with its null)."""

BEST_PARTNERS_VERSION = 1
"""Bump when best partners change, so cached ones are recomputed."""

CELL_VERSION = 2
"""Bump when a grid cell's record changes (2: ``<metric>_p_tail``, the tail p-values of
:mod:`saesim.compare.significance`); cached cells of another version are recomputed, the best
partners and extracted layers they start from are not."""

_BEST_PARTNER_ARRAYS = tuple(f.name for f in fields(BestPartners)
                             if f.name not in ("n_tokens", "compat", "backend"))

MIN_SUBSPACE = 2
"""A concept needs more than this many members per side and pairs (the paper's rule)."""

GRID_COLUMNS = (
    "layer_a", "layer_b", "rule", "direction", "compat", "n_tokens", "n_latents_a", "n_latents_b",
    "dead_a", "dead_b", "n_choosers", "n_with_partner", "n_unique_a_before", "n_after_junk",
    "n_after_1to1", "n_pairs", "n_unique_a", "mean_best_r", "mean_r_filtered", "top_hubs",
    "svcca", "svcca_null_mean", "svcca_null_std", "svcca_p", "svcca_p_tail", "svcca_z", "svcca_k_x",
    "svcca_k_y", "svcca_authors_k", "svcca_authors_k_null_mean", "svcca_authors_k_p",
    "svcca_authors_k_p_tail", "svcca_authors_k_z", "svcca_authors_k_k_x", "svcca_authors_k_k_y",
    "rsa", "rsa_null_mean", "rsa_null_std", "rsa_p", "rsa_p_tail", "rsa_z",
    "linear_cka", "linear_cka_null_mean", "linear_cka_null_std", "linear_cka_p", "linear_cka_p_tail",
    "linear_cka_z",
    "null_kind", "n_perm", "seed",
)
"""Stable columns of ``full_space.parquet`` (documented in the book's method page)."""


@dataclass(frozen=True)
class CompareSettings:
    """Settings of one comparison (every field ends up in the record or its key).

    Attributes
    ----------
    rules : tuple of str
        Pairing rules to score (see :data:`saesim.compare.match.RULES`).
    directions : tuple of str
        "b_to_a" (each B latent picks an A latent; the paper's) and/or "a_to_b".
    r_min : float
        Correlation cut (pairs need r > r_min); the paper's 0.1.
    junk_filter : bool
        Apply the non-concept and top-token overlap filter.
    junk_list : str
        Which junk list (see :data:`saesim.compare.filters.JUNK_LISTS`).
    require_overlap : bool
        Require a shared top token.
    top_k : int
        Top tokens per latent used by the filters (the paper's 5).
    min_active : int
        Corrected filter: firing positions a latent needs.
    metrics : tuple of str
        Similarity measures to score.
    n_perm : int
        Permutations of the null (row shuffle; group null for many-to-1).
    seed : int
        Seed of the nulls.
    compat : bool
        The authors' computation throughout (correlation, filters, SVCCA k = 1,
        p-value estimator).
    svcca_variance : float, int or str
        Dimension policy of corrected SVCCA (and PWCCA): a fraction of the
        variance kept per side, a fixed k, or "ratio:R" (k = distinct rows / R
        per side; a many-to-1 hub side counts each partner once).
    subspace_svcca_variance : float, int or str
        The same for concept subspaces (default "ratio:10"). A concept has
        tens of pairs, so keeping 99 % of the variance keeps k_x + k_y >= n
        components and every canonical correlation is 1 for paired and
        shuffled rows alike; ten distinct rows per kept dimension keeps the test
        informative. Ignored under ``compat`` (the authors' k = 1).
    """

    rules: tuple[str, ...] = ("first_index", "many_to_one")
    directions: tuple[str, ...] = ("b_to_a",)
    r_min: float = 0.1
    junk_filter: bool = True
    junk_list: str = "authors_gemma"
    require_overlap: bool = True
    top_k: int = 5
    min_active: int = 2
    metrics: tuple[str, ...] = METRICS
    n_perm: int = 1000
    seed: int = 0
    compat: bool = False
    svcca_variance: float | int | str = "ratio:10"
    subspace_svcca_variance: float | int | str = "ratio:10"

    def __post_init__(self):
        unknown = sorted(set(self.rules) - set(RULES))
        if unknown:
            raise ValueError(f"`rules` has unknown rules {unknown}; choose from {list(RULES)}.")
        bad = sorted(set(self.directions) - {"b_to_a", "a_to_b"})
        if bad:
            raise ValueError(f"`directions` has {bad}; choose 'b_to_a' and/or 'a_to_b'.")
        if not isinstance(self.n_perm, int) or self.n_perm < 1:
            raise ValueError(f"`n_perm` must be a positive integer; got {self.n_perm!r}.")
        if not isinstance(self.top_k, int) or self.top_k < 1:
            raise ValueError(f"`top_k` must be a positive integer; got {self.top_k!r}.")
        object.__setattr__(self, "rules", tuple(self.rules))
        object.__setattr__(self, "directions", tuple(self.directions))
        object.__setattr__(self, "metrics", tuple(self.metrics))

    def key(self) -> str:
        """A short hash of the settings (cells computed under other settings are not reused)."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]

    def replace(self, **changes) -> "CompareSettings":
        return replace(self, **changes)


def compare_pair(layer_a: SaeLayer, layer_b: SaeLayer, settings: CompareSettings = CompareSettings()) -> list[dict]:
    """Score one layer pair under every rule and direction of ``settings``.

    Returns one tidy record (dict with :data:`GRID_COLUMNS`) per (rule, direction).
    """
    best = quiet_best_partners(layer_a.codes, layer_b.codes, compat=settings.compat)
    return compare_best(best, layer_a, layer_b, settings)


def compare_best(best: BestPartners, layer_a: SaeLayer, layer_b: SaeLayer, settings: CompareSettings) -> list[dict]:
    """Like :func:`compare_pair`, from best partners already computed."""
    records = []
    for direction in settings.directions:
        work = best.reversed() if direction == "a_to_b" else best
        hubs = hub_counts(best, direction=direction)  # depends on the direction only
        for rule in settings.rules:
            pairs, counts = filtered_pairs(best, layer_a, layer_b, settings, rule=rule, direction=direction)
            record = {
                "layer_a": layer_a.layer,
                "layer_b": layer_b.layer,
                "rule": rule,
                "direction": direction,
                "compat": settings.compat,
                "n_tokens": best.n_tokens,
                "n_latents_a": best.n_a,
                "n_latents_b": best.n_b,
                "dead_a": int(best.dead_a.sum()),
                "dead_b": int(best.dead_b.sum()),
                "n_choosers": work.n_b,
                "n_with_partner": int((work.index >= 0).sum()),
                "n_unique_a_before": hubs.n_unique,
                **counts,
                "n_pairs": pairs.n_pairs,
                "n_unique_a": int(np.unique(pairs.a).size),
                "mean_best_r": work.mean_r(),
                "mean_r_filtered": pairs.mean_r(),
                "top_hubs": json.dumps(hubs.top(5)),
            }
            record.update(_score(pairs, layer_a.decoder, layer_b.decoder, settings))
            records.append(record)
    return records


def semantic_compare(
    layer_a: SaeLayer,
    layer_b: SaeLayer,
    settings: CompareSettings = CompareSettings(rules=("first_index",)),
    *,
    concepts: dict | None = None,
    n_subset_draws: int = 100,
    best: BestPartners | None = None,
) -> list[dict]:
    """Score every concept subspace of one layer pair.

    Members of each concept are found independently in A and B
    (:func:`saesim.compare.concepts.members`); best partners are searched among the
    members only; pairs are made 1-1 with the first rule of ``settings``; no
    junk filter and no r cut (as the paper). A concept with <= 2 members on a
    side, or <= 2 pairs, is reported with ``skipped`` set and no scores.

    Besides the permutation null (shuffled pairings; the group null for a
    many-to-1 rule outside ``compat``), each concept gets the random-subset
    null of the arXiv version ("corr from full subsets"): ``n_pairs`` random B
    latents with their global best partners, scored ``n_subset_draws`` times.
    Under ``compat`` the shuffle null has the paper's size: 100 permutations
    above 100 pairs, else 1 000. Corrected SVCCA uses
    ``settings.subspace_svcca_variance`` (recorded as ``svcca_policy``).
    ``best`` are the layers' global best partners, if already computed.
    """
    concepts = dict(CONCEPTS, Control=CONTROL_CONCEPT) if concepts is None else concepts
    rule = settings.rules[0]
    global_best = best if best is not None else quiet_best_partners(layer_a.codes, layer_b.codes,
                                                                    compat=settings.compat)
    if not settings.compat:
        settings = settings.replace(svcca_variance=settings.subspace_svcca_variance)
    global_pairs = pair(global_best, rule="many_to_one", r_min=-np.inf)
    records = []
    for name, keywords in concepts.items():
        members_a = members(layer_a.top, layer_a.windows, keywords, compat=settings.compat)
        members_b = members(layer_b.top, layer_b.windows, keywords, compat=settings.compat)
        record = {
            "layer_a": layer_a.layer, "layer_b": layer_b.layer, "concept": name, "rule": rule,
            "compat": settings.compat, "n_members_a": int(members_a.size), "n_members_b": int(members_b.size),
        }
        if members_a.size <= MIN_SUBSPACE or members_b.size <= MIN_SUBSPACE:
            records.append({**record, "n_pairs": 0, "skipped": "too few members"})
            continue
        sub_best = quiet_best_partners(layer_a.codes[:, members_a], layer_b.codes[:, members_b],
                                       compat=settings.compat, m=min(8, members_a.size))
        sub_pairs = pair(sub_best, rule=rule, r_min=-np.inf)
        if sub_pairs.n_pairs <= MIN_SUBSPACE:
            records.append({**record, "n_pairs": sub_pairs.n_pairs, "skipped": "too few pairs"})
            continue
        a_idx, b_idx = members_a[sub_pairs.a], members_b[sub_pairs.b]
        n_perm = settings.n_perm
        if settings.compat:
            n_perm = 100 if sub_pairs.n_pairs > 100 else 1000
        sub_settings = settings.replace(n_perm=n_perm)
        x, y = layer_a.decoder[a_idx], layer_b.decoder[b_idx]
        record.update({"n_pairs": sub_pairs.n_pairs, "skipped": "", "mean_r": sub_pairs.mean_r(),
                       "svcca_policy": "authors" if settings.compat else str(settings.svcca_variance)})
        record.update(_score_rows(x, y, sub_settings, groups=null_groups(sub_pairs, settings)))
        record.update(_subset_null(global_pairs, layer_a.decoder, layer_b.decoder, sub_pairs.n_pairs,
                                   {m: record[m] for m in settings.metrics}, sub_settings, n_subset_draws))
        records.append(record)
    return records


@dataclass(frozen=True)
class GridResult:
    """A grid's table plus what happened to its cells.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per record, sorted; p-values adjusted across the grid.
    path : Path or None
        Where the parquet was written.
    computed, reused : int
        Cells computed in this run and cells read back from earlier runs.
    failed : dict
        Cell name -> traceback, for cells that raised.
    """

    frame: pd.DataFrame
    path: Path | None
    computed: int
    reused: int
    failed: dict = field(default_factory=dict)

    def summary(self) -> str:
        return (f"{len(self.frame)} rows from {self.computed + self.reused} cells "
                f"({self.computed} computed, {self.reused} reused, {len(self.failed)} failed)"
                + (f" -> {self.path}" if self.path else ""))


@dataclass(frozen=True)
class GridPlan:
    """Which cells of a grid to run, and how to run them (nothing here changes a result).

    :class:`CompareSettings` says *what* each cell computes and is hashed into
    the cells' cache keys; a plan only chooses the cells and the executor. A
    cell computed under one plan is therefore reused under any other: its file
    tag hashes the profile's key, the settings' key, the grid's kind and
    :data:`CELL_VERSION`, never a field of the plan, and the executors give
    identical records (:func:`saesim.experiments.executors.run_cells`).

    Attributes
    ----------
    slots : (str, str), default ("a", "b")
        Which models to compare: the slot whose latents are the partners and
        the slot that picks; ("a", "control") compares against the SAEs of the
        re-randomised model (see :meth:`saesim.config.Profile.comparisons`).
    layers_a, layers_b : tuple of int, optional
        Layers of each slot (default: the profile's); the grid is their product.
    pairs : tuple of (int, int), optional
        Explicit (layer of the first slot, layer of the second) cells instead
        of a product; give either ``pairs`` or ``layers_a`` / ``layers_b``.
    executor : {"serial", "local", "ray"}, default "local"
        "serial" in this process, "local" in a pool of processes, "ray" as Ray
        tasks (see :func:`saesim.experiments.executors.run_cells`).
    n_workers : int, optional
        Processes for "local", CPUs of a local Ray instance (default: all cores).
    ray_address : str, optional
        An existing Ray cluster, e.g. "ray://head:10001" (needs ``executor="ray"``;
        default: start a local instance).
    progress : bool, default True
        Show a progress bar over the cells.

    Raises
    ------
    ValueError
        On an unknown executor, a count that is not a positive integer, pairs
        that are not pairs of integers, or conflicting fields; the message
        names the field and the fix.

    Examples
    --------
    >>> plan = GridPlan(pairs=[(0, 0), (1, 1)], executor="serial")
    >>> plan.pairs
    ((0, 0), (1, 1))
    >>> plan.replace(executor="local", n_workers=2).n_workers
    2
    """

    slots: tuple[str, str] = ("a", "b")
    layers_a: tuple[int, ...] | None = None
    layers_b: tuple[int, ...] | None = None
    pairs: tuple[tuple[int, int], ...] | None = None
    executor: str = "local"
    n_workers: int | None = None
    ray_address: str | None = None
    progress: bool = True

    def __post_init__(self):
        slots = tuple(self.slots) if isinstance(self.slots, (tuple, list)) else ()
        if len(slots) != 2 or not all(isinstance(s, str) for s in slots):
            raise ValueError(f"`slots` must be two slot names, e.g. ('a', 'b') or ('a', 'control'); "
                             f"got {self.slots!r}.")
        object.__setattr__(self, "slots", slots)
        for name in ("layers_a", "layers_b"):
            layers = getattr(self, name)
            if layers is not None:
                items = _items(layers)
                if items is None or not items or not all(_is_layer(x) for x in items):
                    raise ValueError(f"`{name}` must be a non-empty sequence of layer numbers (non-negative "
                                     f"integers), e.g. (0, 1), or None for the profile's; got {layers!r}.")
                object.__setattr__(self, name, tuple(int(x) for x in items))
        if self.pairs is not None:
            if self.layers_a is not None or self.layers_b is not None:
                raise ValueError("give either `pairs` or `layers_a` / `layers_b`, not both "
                                 "(pairs name their own layers).")
            object.__setattr__(self, "pairs", _check_pairs(self.pairs))
        if self.executor not in EXECUTORS:
            raise ValueError(f"`executor` must be one of {EXECUTORS}; got {self.executor!r}. Use 'serial' for "
                             "this process, 'local' for a process pool or 'ray' for Ray tasks.")
        if self.n_workers is not None:
            object.__setattr__(self, "n_workers",
                               check_positive_int(self.n_workers, "n_workers", fix="Pass None for all cores."))
        if self.ray_address is not None and self.executor != "ray":
            raise ValueError(f"`ray_address` needs executor='ray'; got executor={self.executor!r}. "
                             "Pass executor='ray' or drop ray_address.")
        if not isinstance(self.progress, bool):
            raise ValueError(f"`progress` must be True or False; got {self.progress!r}.")

    def cells(self, profile) -> tuple[tuple[int, int], ...]:
        """The (layer of the first slot, layer of the second) cells of this plan for ``profile``."""
        if self.pairs is not None:
            return self.pairs
        slot_a, slot_b = self.slots
        layers_a = profile.layers(slot_a) if self.layers_a is None else self.layers_a
        layers_b = profile.layers(slot_b) if self.layers_b is None else self.layers_b
        return tuple((int(la), int(lb)) for la in layers_a for lb in layers_b)

    def replace(self, **changes) -> "GridPlan":
        """A copy with ``changes`` applied (and validated again)."""
        return replace(self, **changes)


def _items(value) -> tuple | None:
    """``value`` as a tuple if it is a sequence (not a string), else None."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        return None
    return tuple(value)


def _is_layer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 0


def _check_pairs(pairs) -> tuple[tuple[int, int], ...]:
    """``pairs`` as distinct (int, int) pairs in their order, or a ValueError naming ``pairs``."""
    example = "e.g. ((0, 0), (1, 1))"
    items = _items(pairs)
    if items is None:
        raise ValueError(f"`pairs` must be a sequence of (layer_a, layer_b) pairs of integers, {example}; "
                         f"got {pairs!r}.")
    if not items:
        raise ValueError("`pairs` is empty; give at least one (layer_a, layer_b) pair, or None for the product "
                         "of layers_a and layers_b.")
    out = []
    for item in items:
        pair_ = _items(item)
        if pair_ is None or len(pair_) != 2 or not all(_is_layer(x) for x in pair_):
            raise ValueError(f"`pairs` must hold (layer_a, layer_b) pairs of non-negative integers, {example}; "
                             f"got {item!r}.")
        out.append((int(pair_[0]), int(pair_[1])))
    return tuple(dict.fromkeys(out))  # a cell named twice is run once


def run_grid(profile, *, plan: GridPlan | None = None, settings: CompareSettings | None = None, out=None,
             cache=None) -> GridResult:
    """The full-space layer grid of a profile: one cell per (layer of A, layer of B).

    Parameters
    ----------
    profile : Profile or str
        The profile (its layers, filters and nulls give the defaults).
    plan : GridPlan, optional
        Which cells (slots, layers or explicit pairs) and how they run
        (executor, workers, progress bar); default ``GridPlan()``: A against B
        over the profile's layers in local processes. Not part of any cache key.
    settings : CompareSettings, optional
        What each cell computes (hashed into the cells' keys). Default: built
        from the profile (:func:`settings_from_profile`).
    out : path, optional
        Results folder: ``full_space.parquet`` and per-cell JSON files that
        make a rerun resume (default ``<cache>/results``).
    cache : path, optional
        Root of the artefact store holding the extracted layers.

    Returns
    -------
    GridResult
    """
    return _run_cells_grid("full_space", profile, plan, settings, out, cache)


def semantic_grid(profile, *, plan: GridPlan | None = None, settings: CompareSettings | None = None, out=None,
                  cache=None) -> GridResult:
    """Concept subspaces for every cell of ``plan`` (``subspace.parquet``); see :func:`run_grid`.

    Only the first rule of ``settings`` is used.
    """
    return _run_cells_grid("subspace", profile, plan, settings, out, cache)


def run_profile(profile, *, plan: GridPlan | None = None, settings: CompareSettings | None = None, out=None,
                cache=None, control: bool = True, semantic: bool = True) -> dict[str, GridResult]:
    """Extraction (through the cache), the full-space grid, the control grids and the semantic grid.

    Returns the :class:`GridResult` of each grid, keyed by the names of
    :meth:`saesim.config.Profile.comparisons` — "full_space" (A against B)
    and, when the profile defines them, "seed" (A against a second SAE set
    of A), "control" and "control_all" (the re-randomised copies of A in A's
    place against B) — each under every rule of the settings, and "subspace".

    ``plan`` (see :class:`GridPlan`) runs every grid; its layers or pairs
    choose the cells of the full-space and subspace grids, and each control
    grid runs over its two slots' layers. Its ``slots`` must stay ("a", "b"):
    every comparison names its own. ``control`` and ``semantic`` switch the
    control grids and the subspace grid off.
    """
    from saesim.config import Profile, load_profile
    from saesim.extract.pipeline import extract

    plan = GridPlan() if plan is None else plan
    if plan.slots != ("a", "b"):
        raise ValueError(f"run_profile runs every comparison of the profile with its own slots; leave "
                         f"`plan.slots` at ('a', 'b') (got {plan.slots!r}), or call run_grid for one comparison.")
    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    extract(profile, out=cache, progress=plan.progress)
    settings = settings or settings_from_profile(profile)
    common = dict(settings=settings, out=out, cache=cache)
    results = {"full_space": run_grid(profile, plan=plan, **common)}
    if control:
        every_layer = plan.replace(layers_a=None, layers_b=None, pairs=None)
        for name, slots in profile.comparisons().items():
            if name == "full_space":
                continue
            results[name] = run_grid(profile, plan=every_layer.replace(slots=slots), **common)
    if semantic:
        results["subspace"] = semantic_grid(profile, plan=plan, **common)
    return results


def settings_from_profile(profile, **changes) -> CompareSettings:
    """Comparison settings from a profile's filters and nulls (overridable)."""
    filters, nulls = profile.filters, profile.nulls
    junk = filters.junk
    base = CompareSettings(
        rules=(filters.rule, "many_to_one") if filters.rule != "many_to_one" else ("many_to_one",),
        r_min=filters.r_min,
        junk_filter=junk != "off",
        junk_list=junk if junk.startswith("authors") else "authors_gemma",
        require_overlap=filters.require_overlap,
        top_k=filters.top_k,
        min_active=filters.min_active,
        svcca_variance=filters.svcca_dims,
        subspace_svcca_variance=filters.svcca_dims,
        n_perm=nulls.n_perm,
        seed=nulls.seed,
        compat=profile.compat,
    )
    return base.replace(**changes)


# --------------------------------------------------------------------------- helpers


def _run_cells_grid(kind, profile, plan, settings, out, cache) -> GridResult:
    from saesim.config import Profile, load_profile

    plan = GridPlan() if plan is None else plan
    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    settings = settings or settings_from_profile(profile)
    if kind == "subspace":
        settings = settings.replace(rules=settings.rules[:1])
    slots = plan.slots
    slot_a, slot_b = slots
    cache = Path(cache) if cache is not None else Path(profile.cache_dir)
    out = Path(out) if out is not None else cache / "results"
    cell_dir = out / "cells" / kind
    cell_dir.mkdir(parents=True, exist_ok=True)
    tag = _cell_tag(profile, settings, kind)
    cells, records, reused = [], [], 0
    for la, lb in plan.cells(profile):
        path = cell_dir / f"{slot_a}{la}_{slot_b}{lb}_{tag}.json"
        kept = read_json_or_none(path)
        if kept is not None:
            records.extend(kept)
            reused += 1
            continue
        cells.append((kind, profile, slot_a, la, slot_b, lb, settings, str(cache), str(path)))
    outcomes = run_cells(_grid_cell, cells, executor=plan.executor, n_workers=plan.n_workers,
                         ray_address=plan.ray_address, progress=plan.progress, description=f"{kind} cells")
    failed = {}
    for outcome in outcomes:
        if outcome.ok:
            records.extend(outcome.value)
        else:
            _, _, sa, la, sb, lb, *_ = outcome.cell
            failed[f"{sa}{la}-{sb}{lb}"] = outcome.error
    frame = pd.DataFrame.from_records(records)
    if not frame.empty:
        keys = ["layer_a", "layer_b"] + (["concept"] if kind == "subspace" else ["direction", "rule"])
        frame = frame.sort_values(keys, kind="stable").reset_index(drop=True)
        # The book's one family: a rule and direction of the grid (a concept page adjusts over its
        # own family of concepts, see saesim.report.tables.concept_family).
        frame = holm_within_families(frame, keys=() if kind == "subspace" else ("rule", "direction"))
        frame.insert(0, "slot_b", slot_b)
        frame.insert(0, "slot_a", slot_a)
        frame.insert(0, "profile", profile.name)
    path = out / (f"{kind}.parquet" if slots == ("a", "b") else f"{kind}_{slot_a}_vs_{slot_b}.parquet")
    atomic_parquet(frame, path)
    return GridResult(frame=frame, path=path, computed=len(outcomes) - len(failed), reused=reused, failed=failed)


def _cell_tag(profile, settings: CompareSettings, kind: str) -> str:
    """The tag in a cell's file name: what the cell's records depend on, and nothing of the plan."""
    return hashlib.sha256(f"{profile.key()}|{settings.key()}|{kind}|{CELL_VERSION}".encode()).hexdigest()[:12]


def _grid_cell(cell) -> list[dict]:
    """One (layer A, layer B) cell, run in a worker: load from the cache, compare, save."""
    from saesim.extract.pipeline import load_layer

    kind, profile, slot_a, la, slot_b, lb, settings, cache, path = cell
    data_a, data_b = load_layer(profile, slot_a, la, out=cache), load_layer(profile, slot_b, lb, out=cache)
    best = cached_best_partners(data_a, data_b, compat=settings.compat, cache=cache)
    layer_a, layer_b = data_a.to_sae_layer(), data_b.to_sae_layer()
    if kind == "subspace":
        records = semantic_compare(layer_a, layer_b, settings, best=best)
    else:
        records = compare_best(best, layer_a, layer_b, settings)
    records = [to_jsonable(r) for r in records]
    atomic_write_text(Path(path), json.dumps(records))
    return records


def cached_best_partners(data_a, data_b, *, compat: bool = False, cache=None) -> BestPartners:
    """Best partners of two extracted layers, computed once and kept in the artefact store.

    The full-space, control and subspace grid cells (also those a notebook
    computes through :func:`run_grid`) start from the same best partners of a
    layer pair (about 8 s on the offline profile); they are stored under the
    two layers' keys.

    Parameters
    ----------
    data_a, data_b : saesim.extract.pipeline.LayerData
        From :func:`saesim.extract.pipeline.load_layer` (their ``key`` names the codes).
    compat : bool, default False
        The authors' correlation semantics.
    cache : path or ArtefactStore
        The artefact store the layers came from.
    """
    from saesim.extract.cache import ArtefactStore, CacheMissError

    if cache is None or not data_a.key or not data_b.key:
        return quiet_best_partners(data_a.codes, data_b.codes, compat=compat)
    store = cache if isinstance(cache, ArtefactStore) else ArtefactStore(cache)
    key = store.key(role="best_partners", version=BEST_PARTNERS_VERSION, a=data_a.key, b=data_b.key,
                    compat=bool(compat), m=DEFAULT_TOP_M)
    if store.has(key, "arrays"):
        try:
            meta = store.manifest(key, "arrays")["meta"]
            return BestPartners(**store.load_arrays(key), n_tokens=int(meta["n_tokens"]), compat=bool(compat),
                                backend=meta["backend"])
        except (CacheMissError, KeyError, TypeError):
            pass  # damaged entry: recompute and overwrite
    best = quiet_best_partners(data_a.codes, data_b.codes, compat=compat)
    arrays = {name: getattr(best, name) for name in _BEST_PARTNER_ARRAYS}
    store.save_arrays(key, arrays, meta={"n_tokens": best.n_tokens, "backend": best.backend,
                                         "a": f"{data_a.slot}{data_a.layer}", "b": f"{data_b.slot}{data_b.layer}"})
    return best


def _score(pairs, decoder_a, decoder_b, settings) -> dict:
    groups = null_groups(pairs, settings)
    if pairs.n_pairs <= MIN_SUBSPACE:
        return {"null_kind": "shuffle" if groups is None else "group", "n_perm": settings.n_perm,
                "seed": settings.seed}
    x, y = pairs.rows(decoder_a, decoder_b)
    return _score_rows(x, y, settings, groups=groups)


def null_groups(pairs, settings) -> tuple[np.ndarray, str] | None:
    """``(groups, group_side)`` of the many-to-1 group null, or None for the row shuffle.

    A many-to-1 pairing repeats the chosen side's partners (``pairs.a`` for
    "b_to_a", ``pairs.b`` for "a_to_b"); its null permutes those distinct
    partners among their groups (:func:`saesim.compare.nulls.permutation_test`,
    ``groups``). 1-1 rules, and ``compat`` (the authors' row shuffle), keep
    the shuffle.
    """
    if settings.compat or pairs.rule != "many_to_one":
        return None
    return (pairs.a, "x") if pairs.direction == "b_to_a" else (pairs.b, "y")


def _metric_kwargs(metric: str, settings) -> dict:
    if metric == "svcca":
        if settings.compat:  # the authors' rule is fixed (0.99 of the variance, k = 1 in effect)
            return {"compat": True}
        return {"compat": False, "variance": settings.svcca_variance}
    if metric == "pwcca":
        return {"variance": settings.svcca_variance}
    return {}


def _score_rows(x, y, settings, *, groups: tuple[np.ndarray, str] | None = None) -> dict:
    """Paired score, null mean/std, p-value and z for every metric.

    The null is the row shuffle, or the group null of ``groups`` =
    ``(labels, side)`` (see :func:`null_groups`); ``null_kind`` says which.
    Every metric, and the authors' k = 1 SVCCA beside the corrected one, is
    scored on the same draws (:func:`saesim.compare.nulls.permutation_tests`).
    """
    null = {} if groups is None else {"groups": groups[0], "group_side": groups[1]}
    measures = [(metric, _metric_kwargs(metric, settings)) for metric in settings.metrics]
    if "svcca" in settings.metrics:
        # The authors' dimension rule (k = 1) on the same pairs and the same shuffles, so the
        # book can show what their SVCCA measured beside the corrected one.
        measures.append(("svcca", {"compat": True}))
    tests = permutation_tests(x, y, measures, n_perm=settings.n_perm, seed=settings.seed, **null)
    out = {"null_kind": "shuffle" if groups is None else "group", "n_perm": settings.n_perm, "seed": settings.seed}
    for metric, test in zip(settings.metrics, tests):
        out[metric] = test.score
        out[f"{metric}_null_mean"] = test.null_mean
        out[f"{metric}_null_std"] = test.null_std
        out[f"{metric}_p"] = p_value(test.score, test.null, compat=settings.compat)
        out[f"{metric}_p_tail"] = tail_p_value(test.score, test.null)
        out[f"{metric}_z"] = test.z
        if metric == "svcca":
            out["svcca_k_x"] = test.observed.k_x
            out["svcca_k_y"] = test.observed.k_y
    if "svcca" in settings.metrics:
        test = tests[-1]
        out["svcca_authors_k"] = test.score
        out["svcca_authors_k_null_mean"] = test.null_mean
        out["svcca_authors_k_p"] = p_value(test.score, test.null, compat=settings.compat)
        out["svcca_authors_k_p_tail"] = tail_p_value(test.score, test.null)
        out["svcca_authors_k_z"] = test.z
        out["svcca_authors_k_k_x"] = test.observed.k_x
        out["svcca_authors_k_k_y"] = test.observed.k_y
    return out


def _subset_null(global_pairs, decoder_a, decoder_b, n, observed, settings, n_draws) -> dict:
    """Random subsets of the global many-to-1 pairing of the same size (score_rand_corr)."""
    rng = np.random.default_rng(settings.seed)
    out = {"subset_null_draws": n_draws}
    if global_pairs.n_pairs < n:
        return out
    draws = [np.sort(rng.choice(global_pairs.n_pairs, size=n, replace=False)) for _ in range(n_draws)]
    for metric in settings.metrics:
        from saesim.compare.geometry import similarity

        null = np.array([
            similarity(decoder_a[global_pairs.a[d]], decoder_b[global_pairs.b[d]], metric,
                       **_metric_kwargs(metric, settings)).statistic
            for d in draws
        ])
        out[f"{metric}_subset_null_mean"] = float(null.mean())
        out[f"{metric}_subset_p"] = p_value(observed[metric], null, compat=settings.compat)
        out[f"{metric}_subset_p_tail"] = tail_p_value(observed[metric], null)
    return out
