"""The experiment tables a book page reads: ``saesim run``'s parquet when it holds the cells asked for, else computed.

:func:`grid_frame` returns a :class:`GridTable`: the rows, where they came
from, and the settings and SAE-quality flags every caption repeats. The
notebooks reach it as ``saesim.report.book.grid_frame``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["GridTable", "grid_frame"]


@dataclass(frozen=True)
class GridTable:
    """An experiment table with the settings that produced it.

    Attributes
    ----------
    frame : pandas.DataFrame
        The requested rows.
    source : str
        The parquet read, or ``"computed: <folder>"``.
    settings : saesim.experiments.grid.CompareSettings
    profile : saesim.config.Profile
    slots : (str, str)
    pairs : tuple of (int, int), optional
        The (A layer, B layer) cells asked for, when they were listed rather
        than the product of two layer lists.
    fvu_flags : str
        The layers of either slot whose SAE misses the held-out FVU target
        (:data:`saesim.extract.pipeline.HELDOUT_FVU_TARGET`), in words; "" when none.
        Every caption built from :meth:`meta` repeats it.
    """

    frame: object
    source: str
    settings: object
    profile: object
    slots: tuple = ("a", "b")
    pairs: tuple | None = None
    fvu_flags: str = ""

    @property
    def label_a(self) -> str:
        return self.profile.model(self.slots[0]).label

    @property
    def label_b(self) -> str:
        return self.profile.model(self.slots[1]).label

    def meta(self, **extra) -> dict:
        """Settings for :func:`saesim.report.plots.caption` (profile, layers, rule, filters, null, mode)."""
        s = self.settings
        frame = self.frame
        meta = {
            "profile": self.profile.name,
            "label_a": self.label_a,
            "label_b": self.label_b,
            "layers_a": sorted(frame["layer_a"].unique().tolist()) if len(frame) else None,
            "layers_b": sorted(frame["layer_b"].unique().tolist()) if len(frame) else None,
            "rule": s.rules[0] if len(s.rules) == 1 else " / ".join(s.rules),
            "direction": s.directions[0] if len(s.directions) == 1 else " / ".join(s.directions),
            "junk_filter": s.junk_filter,
            "top_k": s.top_k,
            "require_overlap": s.require_overlap,
            "r_min": s.r_min,
            # "group" for many-to-1 records (saesim.experiments.grid.null_groups), "shuffle" otherwise
            "null_kind": (" / ".join(sorted(frame["null_kind"].dropna().unique()))
                          if len(frame) and "null_kind" in frame else "shuffle"),
            "n_perm": s.n_perm,
            "seed": s.seed,
            "compat": s.compat,
            "fvu_flags": self.fvu_flags,
            "svcca_dims": s.svcca_variance,
        }
        if s.junk_filter:
            meta["junk_list"] = s.junk_list
        if self.pairs is not None:
            # listed cells are not a layers_a x layers_b product: the caption's "layers A [..] x B [..]"
            # would say otherwise, so the notebook names the pairs itself
            meta["layers_a"] = meta["layers_b"] = None
        meta.update(extra)
        return meta


def grid_frame(profile, kind: str = "full_space", *, rules: Sequence[str] | None = None,
               directions: Sequence[str] = ("b_to_a",), layers_a=None, layers_b=None, pairs=None,
               slots=("a", "b"), cache_dir=None, results_dir=None, executor: str = "serial", **changes):
    """The experiment table a notebook needs, from ``saesim run``'s parquet or computed.

    Parameters
    ----------
    profile : str or Profile
    kind : {"full_space", "subspace"}
    rules, directions : sequence of str
        Rules and directions wanted (default: the profile's rule and
        many-to-1, each B latent picking an A latent).
    layers_a, layers_b : sequence of int, optional
        Default: the profile's layers of the two slots.
    pairs : sequence of (int, int), optional
        Explicit (A layer, B layer) cells instead of the product of
        ``layers_a`` and ``layers_b`` (which must then be left out), e.g.
        the diagonal ``[(0, 0), (1, 1)]``; ``kind="full_space"`` only.
    slots : (str, str)
        ("a", "b"), or ("a", "control") for the re-randomised-model control.
    cache_dir, results_dir : path, optional
        The artefact store and ``saesim run``'s results folder
        (default ``<cache>/results``).
    executor : str, default "serial"
        How missing cells are computed (see :func:`saesim.experiments.grid.run_grid`).
    **changes
        Other :class:`~saesim.experiments.grid.CompareSettings` fields
        (``n_perm``, ``seed``, ``compat``, ``r_min``, ...); None leaves the
        profile's value.

    Returns
    -------
    GridTable
        The rows for the requested layers (or pairs), rules and directions,
        and no others; where they came from (the parquet's path, or
        ``"computed: <folder>"``) and the settings.

    Notes
    -----
    The parquet written by ``saesim run`` is used when it has a row for
    every requested (layer pair, rule, direction) under the same ``compat``,
    ``n_perm`` and ``seed``, and every other setting is the profile's (the
    table does not record them). Otherwise the grid is computed with
    :func:`saesim.experiments.grid.run_grid` into
    ``<results>/custom/<settings key>`` (so ``saesim run``'s table is never
    overwritten; a rerun with the same parameters reuses those cells).
    """
    import pandas as pd

    from saesim.config import Profile, load_profile
    from saesim.experiments.grid import GridPlan, run_grid, semantic_grid, settings_from_profile

    if kind not in ("full_space", "subspace"):
        raise ValueError(f"`kind` must be 'full_space' or 'subspace'; got {kind!r}.")
    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    slot_a, slot_b = slots
    if pairs is not None:
        pairs = _check_pairs(pairs, profile, slots, kind, layers_a, layers_b)
        layers_a = tuple(dict.fromkeys(la for la, _ in pairs))
        layers_b = tuple(dict.fromkeys(lb for _, lb in pairs))
    layers_a = tuple(int(x) for x in (profile.layers(slot_a) if layers_a is None else layers_a))
    layers_b = tuple(int(x) for x in (profile.layers(slot_b) if layers_b is None else layers_b))
    cells = pairs if pairs is not None else tuple((la, lb) for la in layers_a for lb in layers_b)
    base = settings_from_profile(profile, directions=("b_to_a",))
    changes = {k: (tuple(v) if isinstance(v, list) else v) for k, v in changes.items() if v is not None}
    settings = base.replace(rules=tuple(rules) if rules else base.rules, directions=tuple(directions), **changes)
    if kind == "subspace":
        settings = settings.replace(rules=settings.rules[:1])
    cache = Path(cache_dir) if cache_dir is not None else Path(profile.cache_dir)
    results = Path(results_dir) if results_dir is not None else cache / "results"
    name = f"{kind}.parquet" if tuple(slots) == ("a", "b") else f"{kind}_{slot_a}_vs_{slot_b}.parquet"
    table = results / name
    unrecorded = [f for f in ("r_min", "junk_filter", "junk_list", "require_overlap", "top_k", "min_active",
                              "svcca_variance") if getattr(settings, f) != getattr(base, f)]
    if table.is_file() and not unrecorded:
        frame = pd.read_parquet(table)
        rows = _select(frame, kind, cells, settings)
        if rows is not None:
            return GridTable(rows, str(table), settings, profile, tuple(slots), pairs, _fvu_flags(profile, slots, cache))
    out = results / "custom" / settings.key()
    if pairs is not None:
        plan = GridPlan(slots=tuple(slots), pairs=pairs, executor=executor, progress=False)
    else:
        plan = GridPlan(slots=tuple(slots), layers_a=layers_a, layers_b=layers_b, executor=executor, progress=False)
    grid = semantic_grid if kind == "subspace" else run_grid
    result = grid(profile, plan=plan, settings=settings, out=out, cache=cache)
    if result.failed:
        first = next(iter(result.failed.items()))
        raise RuntimeError(f"{len(result.failed)} {kind} cells failed, e.g. {first[0]}:\n{first[1]}")
    rows = _select(result.frame, kind, cells, settings)
    if rows is None:
        raise RuntimeError(f"the computed {kind} grid in {out} lacks requested rows; this is a bug.")
    return GridTable(rows, f"computed: {out}", settings, profile, tuple(slots), pairs, _fvu_flags(profile, slots, cache))


def _check_pairs(pairs, profile, slots, kind, layers_a, layers_b) -> tuple[tuple[int, int], ...]:
    """``pairs`` as a tuple of distinct (int, int), each layer one the profile has in its slot."""
    if kind != "full_space":
        raise ValueError(f"`pairs` is supported for kind='full_space' only; got kind={kind!r}.")
    if layers_a is not None or layers_b is not None:
        raise ValueError("give either `pairs` or `layers_a` / `layers_b`, not both.")
    out = []
    for item in pairs:
        try:
            la, lb = (int(x) for x in item)
        except (TypeError, ValueError):
            raise ValueError(f"`pairs` must hold (layer_a, layer_b) pairs of integers, e.g. [[0, 0], [1, 1]]; "
                             f"got {item!r}.") from None
        out.append((la, lb))
    out = tuple(dict.fromkeys(out))
    if not out:
        raise ValueError("`pairs` is empty; give at least one (layer_a, layer_b) pair.")
    known_a, known_b = set(profile.layers(slots[0])), set(profile.layers(slots[1]))
    unknown = [p for p in out if p[0] not in known_a or p[1] not in known_b]
    if unknown:
        raise ValueError(f"`pairs` {unknown} name layers that profile {profile.name} does not have; its layers are "
                         f"{sorted(known_a)} ({slots[0]}) and {sorted(known_b)} ({slots[1]}).")
    return out


def _select(frame, kind, cells, settings):
    """Rows of ``frame`` for the (layer_a, layer_b) ``cells``, or None when some are missing or settings differ."""
    import pandas as pd

    if frame.empty or "layer_a" not in frame:
        return None
    wanted = set(cells)
    keep = pd.Series([(int(a), int(b)) in wanted for a, b in zip(frame["layer_a"], frame["layer_b"])],
                     index=frame.index, dtype=bool)
    keep &= frame["rule"].isin(settings.rules)
    if kind == "full_space":
        keep &= frame["direction"].isin(settings.directions)
        for column in ("n_perm", "seed"):
            keep &= frame[column] == getattr(settings, column)
    else:
        keep &= frame["seed"] == settings.seed
    keep &= frame["compat"].astype(bool) == bool(settings.compat)
    rows = frame[keep]
    need = len(wanted) * len(settings.rules)
    keys = ["layer_a", "layer_b", "rule"]
    if kind == "full_space":
        need *= len(settings.directions)
        keys.append("direction")
    if rows.drop_duplicates(keys).shape[0] != need:
        return None
    return rows.reset_index(drop=True)


def _fvu_flags(profile, slots, cache) -> str:
    """Which layers of the two slots miss the held-out FVU target, in words (for captions)."""
    from saesim.extract.pipeline import HELDOUT_FVU_TARGET, sae_quality

    quality = sae_quality(profile, out=cache)
    if quality.empty:
        return ""
    flagged = quality[quality["flag"] & quality["slot"].isin(slots)]
    if flagged.empty:
        return ""
    parts = [f"{profile.model(slot).label} layer{'s' if len(group) > 1 else ''} "
             f"{', '.join(str(int(x)) for x in group['layer'])}" for slot, group in flagged.groupby("slot", sort=False)]
    return (f"SAE quality: held-out FVU above {HELDOUT_FVU_TARGET:.2f} at " + "; ".join(parts)
            + " (read those cells with care)")
