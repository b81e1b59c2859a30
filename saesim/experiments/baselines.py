"""Baselines of the paired SAE score, bootstrapped and kept on disk, lined up in one control table.

The baselines: the SAE-seed control (two SAEs of model A) and the
random-model controls (SAEs of re-randomised copies of A in A's place),
bootstrapped like the SAE pairs in a pool of workers
(:func:`bootstrap_many`), and the raw-neuron baseline
(:func:`raw_neuron_layers`, :func:`raw_neuron_baseline`,
:func:`bootstrap_raw_neurons`): residual-stream neurons paired directly (no
SAE) with the rows of the blocks' MLP output projections scored, as the
authors' "compare LLMs" runs. Each finished bootstrap is written under a tag
that hashes the profile, the settings and the
:class:`~saesim.experiments.bootstrap.BootstrapOptions`
(:func:`bootstrap_store`), so an interrupted chapter resumes.
:func:`control_comparison` lines up SAE score, controls, raw-neuron baseline
and the shuffled null in one tidy table. :func:`run_baselines` is the
robustness chapter's driver: it plans every bootstrap of the baseline layer
pairs, runs them, and writes the chapter's tables (``bootstrap_<name>.parquet``,
``baselines.parquet``), which :func:`read_baselines` reads back.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from saesim.compare.effects import as_float, scored_metrics
from saesim.compare.filters import TopTokens
from saesim.experiments.bootstrap import BootstrapOptions, bootstrap_ci, layer_best_partners
from saesim.experiments.grid import CompareSettings, SaeLayer, compare_best
from saesim.io import atomic_write_text, read_json_or_none, to_jsonable

__all__ = [
    "COMPARISONS",
    "NULL_Z",
    "bootstrap_many",
    "bootstrap_raw_neurons",
    "bootstrap_store",
    "control_comparison",
    "raw_neuron_baseline",
    "raw_neuron_layers",
    "read_baselines",
    "run_baselines",
]

COMPARISONS = ("sae", "seed", "control", "control_all", "raw_neuron", "shuffle_null")
"""Rows of a :func:`control_comparison` table: the SAE pairs, the SAE-seed control (two SAEs of model A), the
random-model controls (authors' and every-tensor), the raw-neuron baseline and the shuffled null: the values of its
``comparison`` column."""

NULL_Z = 1.959963984540054
"""Half-width, in null standard deviations, of the shuffled null's 95 % band (normal approximation)."""


def bootstrap_many(profile, comparisons, row_doc, settings: CompareSettings, options: BootstrapOptions, *,
                   cache=None, out=None, executor: str = "local", n_workers: int | None = None,
                   progress: bool = False) -> list[dict]:
    """Bootstrap records of several comparisons of cached SAE layers, in parallel and kept on disk.

    Each is :func:`saesim.experiments.bootstrap.bootstrap_ci`'s record.

    Parameters
    ----------
    profile : Profile or str
    comparisons : sequence of ((slot_a, layer_a), (slot_b, layer_b))
        Layers of the profile's artefact store, e.g. ``(("a", 3), ("control", 3))``.
    row_doc, settings, options
        As :func:`saesim.experiments.bootstrap.bootstrap_ci`.
    cache : path, optional
        The artefact store (default: the profile's ``cache_dir``).
    out : path, optional
        Where each finished record is written (``cells/bootstrap/`` below
        it; default ``<cache>/results/robustness``). A record computed under
        the same profile and parameters is read back, not recomputed, so an
        interrupted chapter resumes and a rebuild costs nothing.
    executor, n_workers, progress
        As :func:`saesim.experiments.executors.run_cells`; each worker loads its layers
        and runs one BLAS/torch thread.

    Returns
    -------
    list of dict
        :meth:`~saesim.experiments.bootstrap.BootstrapResult.to_record` of each comparison, in order.

    Raises
    ------
    RuntimeError
        If a comparison failed (its traceback is in the message).
    """
    from pathlib import Path

    from saesim.config import Profile, load_profile
    from saesim.experiments.executors import run_cells

    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    cache = Path(cache) if cache is not None else Path(profile.cache_dir)
    folder, tag = bootstrap_store(profile, cache, out, settings, options)
    row_doc = np.asarray(row_doc)
    records, cells = {}, []
    for i, ((slot_a, layer_a), (slot_b, layer_b)) in enumerate(comparisons):
        path = folder / f"{slot_a}{layer_a}_{slot_b}{layer_b}_{tag}.json"
        kept = read_json_or_none(path)
        if kept is not None:
            records[i] = kept
            continue
        cells.append((i, profile, (slot_a, int(layer_a)), (slot_b, int(layer_b)), row_doc, settings, options,
                      str(cache), str(path)))
    outcomes = run_cells(_bootstrap_cell, cells, executor=executor, n_workers=n_workers, progress=progress,
                         description="bootstraps")
    for outcome in outcomes:
        if not outcome.ok:
            _, _, (slot_a, layer_a), (slot_b, layer_b), *_ = outcome.cell
            raise RuntimeError(f"bootstrap of {slot_a}{layer_a} vs {slot_b}{layer_b} failed:\n{outcome.error}")
        records[outcome.cell[0]] = outcome.value
    return [records[i] for i in range(len(comparisons))]


def _bootstrap_cell(cell) -> dict:
    """One comparison of :func:`bootstrap_many`, run in a worker: load, bootstrap, save."""
    from pathlib import Path

    from saesim.extract.pipeline import load_layer

    _, profile, (slot_a, layer_a), (slot_b, layer_b), row_doc, settings, options, cache, path = cell
    layer_a = load_layer(profile, slot_a, layer_a, out=cache).to_sae_layer()
    layer_b = load_layer(profile, slot_b, layer_b, out=cache).to_sae_layer()
    record = to_jsonable(bootstrap_ci(layer_a, layer_b, row_doc, settings, options).to_record())
    atomic_write_text(Path(path), json.dumps(record))
    return record


def bootstrap_raw_neurons(profile, layer_pairs, row_doc, settings: CompareSettings, options: BootstrapOptions, *,
                          cache=None, out=None, progress: bool = False) -> list[dict]:
    """Bootstrap records of the raw-neuron baseline at each (layer of A, layer of B), kept on disk.

    Like :func:`bootstrap_many` (same folder, same resume rule), for the
    models' residual neurons (:func:`raw_neuron_layers`, without the junk
    filter). The models are loaded only when some pair is not kept yet, so
    a cached rebuild needs neither a model nor a capture.

    Returns
    -------
    list of dict
        :meth:`~saesim.experiments.bootstrap.BootstrapResult.to_record` of each layer pair, in order.
    """
    from pathlib import Path

    from saesim.config import Profile, load_profile

    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    cache = Path(cache) if cache is not None else Path(profile.cache_dir)
    settings = settings.replace(junk_filter=False)
    folder, tag = bootstrap_store(profile, cache, out, settings, options)
    pairs = [(int(la), int(lb)) for la, lb in layer_pairs]
    paths = {pair: folder / f"a{pair[0]}_raw_b{pair[1]}_raw_{tag}.json" for pair in pairs}
    records = {pair: read_json_or_none(path) for pair, path in paths.items()}
    missing = [pair for pair in pairs if records[pair] is None]
    if missing:
        layers = raw_neuron_layers(profile, sorted({("a", la) for la, _ in missing} | {("b", lb) for _, lb in missing}),
                                   cache=cache, progress=progress)
        for la, lb in missing:
            record = to_jsonable(bootstrap_ci(layers[("a", la)], layers[("b", lb)], row_doc, settings,
                                              options).to_record())
            atomic_write_text(paths[(la, lb)], json.dumps(record))
            records[(la, lb)] = record
    return [records[pair] for pair in pairs]


def bootstrap_store(profile, cache, out, settings: CompareSettings, options: BootstrapOptions):
    """``(folder, tag)`` of kept bootstrap records: the tag hashes the profile, settings and options.

    ``folder`` is ``<out>/cells/bootstrap`` (``out`` defaults to
    ``<cache>/results/robustness``); ``tag`` is the first 12 hex digits of
    the SHA-256 of the sorted-key JSON of ``{"profile": profile.key(),
    "settings": settings.key(), **options.to_dict()}``.
    """
    import hashlib
    from pathlib import Path

    out = Path(out) if out is not None else Path(cache) / "results" / "robustness"
    blob = json.dumps({"profile": profile.key(), "settings": settings.key(), **options.to_dict()}, sort_keys=True)
    return out / "cells" / "bootstrap", hashlib.sha256(blob.encode()).hexdigest()[:12]


def raw_neuron_layers(profile, layers, *, cache=None, progress: bool = False,
                      reuse: bool = True) -> dict[tuple[str, int], SaeLayer]:
    """Raw residual neurons as :class:`SaeLayer` s: dense activations and MLP output-projection rows.

    Parameters
    ----------
    profile : Profile or str
    layers : iterable of (slot, layer)
        E.g. ``[("a", 3), ("b", 3)]``; each slot's model is loaded and run once.
    cache : path, optional
        The artefact store holding the profile's grid (and tiny models).
    reuse : bool, default True
        Read activations extraction kept (:func:`saesim.extract.pipeline.load_activations`)
        instead of capturing them again; what is captured is kept for next time
        when it fits in :data:`saesim.extract.pipeline.KEEP_ACTIVATIONS_MAX_BYTES`.

    Returns
    -------
    dict
        ``(slot, layer) -> SaeLayer`` whose ``codes`` are the dense
        (n_tokens, d_model) activations at the SAE's hook (captured through
        :func:`saesim.extract.models.capture` on the profile's grid) and whose
        ``decoder`` is the (d_model, d_mlp) weight of block L's MLP output
        projection: row i is what the MLP writes into residual dimension i.
    """
    from pathlib import Path

    from saesim.config import Profile, load_profile
    from saesim.extract.pipeline import (
        KEEP_ACTIVATIONS_MAX_BYTES,
        capture_group,
        load_activations,
        load_grid,
        save_activations,
    )
    from saesim.extract.models import load_model
    from saesim.extract.capture import capture, output_projection_rows

    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    root = Path(cache) if cache is not None else Path(profile.cache_dir)
    grid = load_grid(profile, out=root)
    # Slots that run the same model (offline: A and B) share one forward pass, as in extraction.
    by_model: dict[str, dict[tuple[str, int], str]] = {}
    for slot, layer in layers:
        spec = profile.model(slot)
        by_model.setdefault(capture_group(spec), {})[(slot, int(layer))] = spec.sae.hook_for(int(layer))
    out = {}
    for hooks in by_model.values():
        spec = profile.model(next(iter(hooks))[0])
        loaded = load_model(spec, root=root, what=f"profile `{profile.name}` (raw-neuron baseline)")
        view = grid.for_tokenizer(loaded.tokenizer)
        first = {}
        for where, hook in hooks.items():
            first.setdefault(hook, where)
        kept = {hook: load_activations(profile, *where, out=root) for hook, where in first.items()} if reuse else {}
        missing = [hook for hook in first if kept.get(hook) is None]
        acts = capture(loaded, view, missing, device=profile.device, compat=profile.compat,
                       progress=progress) if missing else {}
        if reuse and acts and sum(a.nbytes for a in acts.values()) <= KEEP_ACTIVATIONS_MAX_BYTES:
            for hook, values in acts.items():
                save_activations(profile, *first[hook], values, out=root)
        acts.update({hook: values for hook, values in kept.items() if values is not None})
        for (slot, layer), hook in hooks.items():
            weight = np.asarray(output_projection_rows(loaded, layer), dtype=np.float32)
            d_model = weight.shape[0]
            empty = TopTokens(strings=np.empty((d_model, 0), dtype=object), ids=np.empty((d_model, 0), np.int64),
                              active=np.empty((d_model, 0), bool))
            out[(slot, layer)] = SaeLayer(model=f"{slot}_raw", layer=layer, codes=acts[hook],
                                          decoder=weight, top=empty, windows=np.empty((d_model, 0), dtype=object),
                                          special_ids=view.special_ids)
    return out


def raw_neuron_baseline(profile, layer_a: int, layer_b: int, *, cache=None, settings: CompareSettings | None = None,
                        layers: dict | None = None) -> list[dict]:
    """Pair the two models' residual neurons directly (no SAE) and score their output-projection rows.

    Neurons are paired by activation correlation over the profile's kept
    tokens (dense path of :func:`saesim.compare.corr.best_partners`), then every rule
    and direction of ``settings`` runs through
    :func:`saesim.experiments.grid.compare_best` without the junk/overlap filter
    (neurons have no top tokens); the r cut and the nulls are those of
    ``settings``. Pass ``layers`` (from :func:`raw_neuron_layers`) to reuse
    captured activations across layer pairs.

    Returns
    -------
    list of dict
        Tidy records (:data:`saesim.experiments.grid.GRID_COLUMNS`) with
        ``comparison="raw_neuron"``.
    """
    from saesim.experiments.grid import settings_from_profile

    if layers is None or ("a", layer_a) not in layers or ("b", layer_b) not in layers:
        layers = raw_neuron_layers(profile, [("a", layer_a), ("b", layer_b)], cache=cache)
    if settings is None:
        from saesim.config import Profile, load_profile

        settings = settings_from_profile(profile if isinstance(profile, Profile) else load_profile(profile))
    settings = settings.replace(junk_filter=False)
    la, lb = layers[("a", layer_a)], layers[("b", layer_b)]
    records = compare_best(layer_best_partners(la, lb, settings), la, lb, settings)
    return [{**r, "comparison": "raw_neuron"} for r in records]


def control_comparison(sae: pd.DataFrame, *, control: pd.DataFrame | None = None,
                       raw: pd.DataFrame | None = None, seed: pd.DataFrame | None = None,
                       control_all: pd.DataFrame | None = None, metrics=None, level: float = 0.95) -> pd.DataFrame:
    """Paired SAE score vs random-model control vs raw-neuron baseline vs shuffled null, per layer pair.

    Parameters
    ----------
    sae : DataFrame
        Tidy records of the SAE comparison (``full_space.parquet`` or
        :meth:`~saesim.experiments.bootstrap.BootstrapResult.to_record` rows); ``<m>_ci_low/high`` columns
        are used where present.
    control : DataFrame, optional
        The same for model A against the re-randomised model's SAEs
        (``run_grid(..., plan=GridPlan(slots=("a", "control")))``), lined up on
        ``(layer_a, layer_b, direction)`` and the rule when it has it (else
        its first rule, named in ``baseline_rule``).
    raw : DataFrame, optional
        Raw-neuron records (:func:`raw_neuron_baseline`), lined up likewise.
    seed : DataFrame, optional
        Model A against its second SAE set (slots ``("a", "seed")``), lined up
        on the SAE record's A layer on both sides: the noise floor of two SAEs
        of one model at that layer.
    control_all : DataFrame, optional
        The every-tensor re-randomised model against B, lined up like ``control``.
    metrics : sequence of str, optional
        Default: every metric with a null in ``sae``.
    level : float
        Level of the shuffled null's band (mean ± z·std, normal approximation).

    Returns
    -------
    DataFrame
        Long table: ``layer_a, layer_b, rule, direction, metric, comparison``
        (one of :data:`COMPARISONS`), ``value, ci_low, ci_high, null_mean,
        null_std, p, p_holm, z, effect, n_pairs, baseline_rule``.
    """
    from scipy.stats import norm

    if sae.empty:
        return pd.DataFrame()
    metrics = list(metrics or scored_metrics(sae.iloc[0].to_dict()))
    half = norm.ppf(0.5 + level / 2)
    rows = []
    for record in sae.to_dict("records"):
        key = {k: record[k] for k in ("layer_a", "layer_b", "rule", "direction")}
        for metric in metrics:
            rows.append({**key, "metric": metric, "comparison": "sae", **_values(record, metric),
                         "baseline_rule": record["rule"]})
            mean, std = as_float(record.get(f"{metric}_null_mean")), as_float(record.get(f"{metric}_null_std"))
            rows.append({**key, "metric": metric, "comparison": "shuffle_null", "value": mean,
                         "ci_low": mean - half * std, "ci_high": mean + half * std, "n_pairs": record.get("n_pairs"),
                         "baseline_rule": record["rule"]})
            for name, frame in (("seed", seed), ("control", control), ("control_all", control_all),
                                ("raw_neuron", raw)):
                match = _line_up(frame, record, same_layer=name == "seed")
                if match is not None:
                    rows.append({**key, "metric": metric, "comparison": name, **_values(match, metric),
                                 "baseline_rule": match["rule"]})
    table = pd.DataFrame(rows)
    for column in ("ci_low", "ci_high", "null_mean", "null_std", "p", "p_holm", "z", "effect", "k_x", "k_y", "mean_r"):
        if column not in table:
            table[column] = np.nan
    return table


def _values(record: dict, metric: str) -> dict:
    value, mean = as_float(record.get(metric)), as_float(record.get(f"{metric}_null_mean"))
    return {"value": value, "ci_low": as_float(record.get(f"{metric}_ci_low")),
            "ci_high": as_float(record.get(f"{metric}_ci_high")), "null_mean": mean,
            "null_std": as_float(record.get(f"{metric}_null_std")), "p": as_float(record.get(f"{metric}_p")),
            "p_holm": as_float(record.get(f"{metric}_p_holm")), "z": as_float(record.get(f"{metric}_z")),
            "effect": value - mean, "n_pairs": record.get("n_pairs"),
            "k_x": as_float(record.get(f"{metric}_k_x")), "k_y": as_float(record.get(f"{metric}_k_y")),
            "mean_r": as_float(record.get("mean_r_filtered"))}


def _line_up(frame: pd.DataFrame | None, record: dict, *, same_layer: bool = False):
    if frame is None or frame.empty:
        return None
    layer_b = record["layer_a"] if same_layer else record["layer_b"]
    same = frame[(frame["layer_a"] == record["layer_a"]) & (frame["layer_b"] == layer_b)
                 & (frame["direction"] == record["direction"])]
    if same.empty:
        return None
    exact = same[same["rule"] == record["rule"]]
    return (exact if not exact.empty else same).iloc[0].to_dict()



BASELINES_TABLE = "baselines.parquet"
"""The file :func:`run_baselines` writes its :func:`control_comparison` table to."""


def run_baselines(profile, layer_pairs, row_doc, settings: CompareSettings, options: BootstrapOptions, *, out,
                  cache=None, executor: str = "local", metrics=None) -> tuple[dict, pd.DataFrame]:
    """The robustness chapter's bootstraps, run and written: the SAE pairs, every control, the raw neurons.

    For each baseline layer pair ``(la, lb)``: the SAE pairs (A ``la`` against
    B ``lb``); the SAE-seed control (A ``la`` against A's second SAE set at
    ``la``, once per A layer); each random-model control the profile defines
    (its layer ``la`` in A's place against B ``lb``); and the raw-neuron
    baseline. The SAE and control bootstraps run in parallel
    (:func:`bootstrap_many`; finished ones are kept under ``out``).

    Returns
    -------
    frames : dict
        ``"sae"``, ``"seed"``, ``"control"``, ``"control_all"``, ``"raw_neuron"``
        -> the bootstrap records as a table with adjusted p-values (over that
        table), or None where the profile has no such comparison; each
        written to ``out/bootstrap_<name>.parquet``.
    table : DataFrame
        :func:`control_comparison` of them, written to ``out/baselines.parquet``.
    """
    from pathlib import Path

    from saesim.config import Profile, load_profile
    from saesim.experiments.grid import adjust_pvalues
    from saesim.io import atomic_parquet

    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    out = Path(out)
    controls = [slot for slot in ("seed", "control", "control_all") if slot in profile.slots]
    jobs = [("sae", (("a", la), ("b", lb))) for la, lb in layer_pairs]
    jobs += [("seed", (("a", la), ("seed", la))) for la, _ in dict.fromkeys(layer_pairs)
             if "seed" in controls and la in profile.layers("seed")]
    jobs += [(slot, ((slot, la), ("b", lb))) for slot in ("control", "control_all") if slot in controls
             for la, lb in layer_pairs if la in profile.layers(slot)]
    done = bootstrap_many(profile, [comparison for _, comparison in jobs], row_doc, settings, options, cache=cache,
                          out=out, executor=executor)
    records = {"sae": [], "seed": [], "control": [], "control_all": [], "raw_neuron": []}
    for (name, _), record in zip(jobs, done):
        records[name].append(record)
    records["raw_neuron"] = bootstrap_raw_neurons(profile, layer_pairs, row_doc, settings, options, cache=cache,
                                                  out=out)
    frames = {k: adjust_pvalues(pd.DataFrame(v)) if v else None for k, v in records.items()}
    for name, frame in frames.items():
        if frame is not None:
            atomic_parquet(frame, out / f"bootstrap_{name}.parquet")
    table = control_comparison(frames["sae"], seed=frames["seed"], control=frames["control"],
                               control_all=frames["control_all"], raw=frames["raw_neuron"], metrics=metrics)
    atomic_parquet(table, out / BASELINES_TABLE)
    return frames, table


def read_baselines(results) -> pd.DataFrame | None:
    """The table :func:`run_baselines` wrote under ``results/robustness``, or None when the chapter has not run."""
    from pathlib import Path

    path = Path(results) / "robustness" / BASELINES_TABLE
    return pd.read_parquet(path) if path.is_file() else None
