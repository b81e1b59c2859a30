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
from saesim.io import atomic_parquet, atomic_write_text, read_json_or_none, to_jsonable

__all__ = [
    "GRID_COLUMNS",
    "CompareSettings",
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


def run_grid(profile, *, layers_a=None, layers_b=None, settings: CompareSettings | None = None,
             slots=("a", "b"), out=None, cache=None, executor="local", n_workers=None, ray_address=None,
             progress=True, pairs=None) -> GridResult:
    """The full-space layer grid of a profile: one cell per (layer of A, layer of B).

    Parameters
    ----------
    profile : Profile or str
        The profile (its layers, filters and nulls give the defaults).
    layers_a, layers_b : sequence of int, optional
        Layers to compare (default: the profile's).
    settings : CompareSettings, optional
        Default: built from the profile (:func:`settings_from_profile`).
    slots : (str, str), default ("a", "b")
        Which models to compare; ("a", "control") compares against the
        SAEs of the re-randomised model.
    out : path, optional
        Results folder: ``full_space.parquet`` and per-cell JSON files that
        make a rerun resume (default ``<cache>/results``).
    cache : path, optional
        Root of the artefact store holding the extracted layers.
    executor, n_workers, ray_address
        See :func:`saesim.experiments.executors.run_cells`.
    pairs : sequence of (int, int), optional
        Explicit (layer of A, layer of B) cells instead of the full product.

    Returns
    -------
    GridResult
    """
    return _run_cells_grid("full_space", profile, layers_a, layers_b, settings, slots, out, cache,
                           executor, n_workers, ray_address, progress, pairs)


def semantic_grid(profile, *, layers_a=None, layers_b=None, settings: CompareSettings | None = None,
                  slots=("a", "b"), out=None, cache=None, executor="local", n_workers=None,
                  ray_address=None, progress=True) -> GridResult:
    """Concept subspaces for every layer pair (``subspace.parquet``); see :func:`run_grid`."""
    return _run_cells_grid("subspace", profile, layers_a, layers_b, settings, slots, out, cache,
                           executor, n_workers, ray_address, progress, None)


def run_profile(profile, *, cache=None, out=None, settings: CompareSettings | None = None, layers_a=None,
                layers_b=None, control: bool = True, semantic: bool = True, executor="local", n_workers=None,
                ray_address=None, progress=True) -> dict[str, GridResult]:
    """Extraction (through the cache), the full-space grid, the control grids and the semantic grid.

    Returns the :class:`GridResult` of each grid, keyed by the names of
    :meth:`saesim.config.Profile.comparisons` — "full_space" (A against B)
    and, when the profile defines them, "seed" (A against a second SAE set
    of A), "control" and "control_all" (the re-randomised copies of A in A's
    place against B) — each under every rule of the settings, and "subspace".
    """
    from saesim.config import Profile, load_profile
    from saesim.extract.pipeline import extract

    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    extract(profile, out=cache, progress=progress)
    common = dict(settings=settings, out=out, cache=cache, executor=executor, n_workers=n_workers,
                  ray_address=ray_address, progress=progress)
    results = {"full_space": run_grid(profile, layers_a=layers_a, layers_b=layers_b, **common)}
    if control:
        base = settings or settings_from_profile(profile)
        for name, slots in profile.comparisons().items():
            if name == "full_space":
                continue
            results[name] = run_grid(profile, slots=slots, **{**common, "settings": base})
    if semantic:
        results["subspace"] = semantic_grid(profile, layers_a=layers_a, layers_b=layers_b, **common)
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


def _run_cells_grid(kind, profile, layers_a, layers_b, settings, slots, out, cache, executor, n_workers,
                    ray_address, progress, pairs) -> GridResult:
    from saesim.config import Profile, load_profile
    from saesim.experiments.executors import run_cells

    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    settings = settings or settings_from_profile(profile)
    if kind == "subspace":
        settings = settings.replace(rules=settings.rules[:1])
    slot_a, slot_b = slots
    layers_a = tuple(profile.layers(slot_a) if layers_a is None else layers_a)
    layers_b = tuple(profile.layers(slot_b) if layers_b is None else layers_b)
    cache = Path(cache) if cache is not None else Path(profile.cache_dir)
    out = Path(out) if out is not None else cache / "results"
    cell_dir = out / "cells" / kind
    cell_dir.mkdir(parents=True, exist_ok=True)
    tag = hashlib.sha256(f"{profile.key()}|{settings.key()}|{kind}|{CELL_VERSION}".encode()).hexdigest()[:12]
    cells, records, reused = [], [], 0
    pairs = [(la, lb) for la in layers_a for lb in layers_b] if pairs is None else list(pairs)
    for la, lb in pairs:
        path = cell_dir / f"{slot_a}{la}_{slot_b}{lb}_{tag}.json"
        kept = read_json_or_none(path)
        if kept is not None:
            records.extend(kept)
            reused += 1
            continue
        cells.append((kind, profile, slot_a, la, slot_b, lb, settings, str(cache), str(path)))
    outcomes = run_cells(_grid_cell, cells, executor=executor, n_workers=n_workers, ray_address=ray_address,
                         progress=progress, description=f"{kind} cells")
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
