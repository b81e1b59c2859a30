"""SAE quality as one tidy table: every SAE of a run with its reconstruction, sparsity and seed stability.

DESIGN.md ("SAE quality is part of every result"): an SAE feature is worth
pairing across models only if it is a reproducible feature of its layer.
:func:`sae_quality_table` gives one row per SAE that the run trained or loaded
(:func:`saesim.extract.pipeline.sae_quality`: held-out FVU, dead fraction,
L0) with the profile's SAE settings and, where the layer has a second SAE of
the same width, its seed stability (:func:`saesim.compare.stability.sae_stability`).

In the profiles the second SAE of a layer is slot ``"seed"``: a second SAE set
on model A (``profile.comparisons()["seed"]``). Rows of slots ``"a"`` and
``"seed"`` at the same layer are partners when their widths are equal; both
rows carry the same numbers (the measures are symmetric), and ``partner``
names the other slot. Everywhere else the stability columns are NaN and
``partner`` says why.

The stability of a layer is computed once per set of inputs and kept as a
JSON cell under ``<cache>/results/cells/sae_quality`` (the layout of
:mod:`saesim.experiments.grid`); the table is written to
``<cache>/results/sae_quality.parquet`` on every call (cheap).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from saesim.compare.stability import SHARED_THRESHOLD, sae_stability
from saesim.io import atomic_parquet, atomic_write_text, read_json_or_none, to_jsonable

__all__ = [
    "QUALITY_COLUMNS",
    "STABILITY_COLUMNS",
    "quality_text",
    "sae_quality_table",
]

logger = logging.getLogger(__name__)

STABILITY_VERSION = 1
"""Mixed into every cell's key; bump when the stability computation changes."""

STABILITY_COLUMNS = ("pw_mcc", "shared_dec", "shared_dec_enc", "chance_pw_mcc", "chance_shared_dec", "act_mcc",
                     "shared_act")
"""The seed-stability columns (NaN where the layer has no partner SAE)."""

QUALITY_COLUMNS = ("model", "slot", "layer", "width", "k", "seed", "train_tokens", "epochs", "n_heldout",
                   "fvu_heldout", "fvu", "flag", "dead_fraction", "mean_l0") + STABILITY_COLUMNS + ("partner",)
"""Columns of :func:`sae_quality_table`, in order."""

PARTNER_SLOTS = ("a", "seed")
"""The slots whose SAEs share a model and a layer: model A and its second SAE set."""

_INT_COLUMNS = ("k", "seed", "train_tokens", "epochs", "n_heldout")


def sae_quality_table(profile, *, cache=None, threshold: float = SHARED_THRESHOLD, seed: int = 0,
                      write: bool = True) -> pd.DataFrame:
    """One row per SAE of the run: held-out FVU, dead fraction, L0, settings and seed stability.

    Parameters
    ----------
    profile : saesim.config.Profile or str
    cache : path, optional
        Root of the artefact store (default ``profile.cache_dir``); the table is
        written to ``<cache>/results/sae_quality.parquet``.
    threshold : float, default 0.7
        Cosine (and correlation) at which a matched pair counts as shared.
    seed : int, default 0
        Seed of the chance level's random directions.
    write : bool, default True
        Write the table to ``<cache>/results/sae_quality.parquet``. False for a table of a
        variant of the run's profile (some of its layers, another SAE recipe), which must not
        replace the run's own.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`QUALITY_COLUMNS`: ``model`` (the profile's label),
        ``slot``, ``layer``, ``width`` (latents), ``k``, ``seed``,
        ``train_tokens``, ``epochs`` (the profile's SAE settings, ``sae.gpu_budget``'s
        epochs where it applied; ``seed`` and ``epochs`` are <NA> for SAEs saesim
        did not train), ``n_heldout``,
        ``fvu_heldout``, ``fvu``, ``flag``, ``dead_fraction``, ``mean_l0``
        (:func:`saesim.extract.pipeline.sae_quality`), the stability columns
        :data:`STABILITY_COLUMNS` (:class:`saesim.compare.stability.StabilityResult`)
        and ``partner``: the partner slot and layer (``"seed L3"``), or why
        there is none. Layers not extracted yet are left out.

    Notes
    -----
    A layer's stability is recomputed only when its inputs change: the cell's
    key holds the two SAEs' layer keys when the pipeline reports them, else
    the two models' specifications, the data and the layers' recorded
    quality, plus ``threshold``, ``seed`` and :data:`STABILITY_VERSION`.
    Encoder weights are read from the SAE folders (see
    :func:`saesim.extract.saes.load_sae`); when one is unavailable,
    ``shared_dec_enc`` is NaN and ``partner`` says so.
    """
    from saesim.config import Profile, load_profile
    from saesim.extract.pipeline import sae_quality

    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    cache = Path(cache) if cache is not None else Path(profile.cache_dir)
    quality = sae_quality(profile, out=cache)
    rows = {(r["slot"], int(r["layer"])): r for r in quality.to_dict("records")}
    stability, partner = _layer_stability(profile, cache, rows, threshold=threshold, seed=seed)

    records = []
    for (slot, layer), row in rows.items():
        spec = profile.model(slot).sae
        trained = spec.source == "train" or profile.model(slot).source == "tiny"
        stab = stability.get(layer, {}) if slot in PARTNER_SLOTS else {}
        records.append({
            "model": row["label"], "slot": slot, "layer": layer, "width": int(row["n_latents"]),
            "k": spec.k, "seed": spec.seed if trained else None, "train_tokens": int(row["train_tokens"]),
            "epochs": _epochs(profile, slot) if trained else None, "n_heldout": int(row["n_heldout"]),
            "fvu_heldout": _float(row["fvu_heldout"]), "fvu": _float(row["fvu"]), "flag": bool(row["flag"]),
            "dead_fraction": _float(row["dead_fraction"]), "mean_l0": _float(row["mean_l0"]),
            **{c: _float(stab.get(c)) for c in STABILITY_COLUMNS},
            "partner": partner[(slot, layer)],
        })
    frame = pd.DataFrame.from_records(records, columns=list(QUALITY_COLUMNS))
    for column in _INT_COLUMNS:
        frame[column] = frame[column].astype("Int64")
    for column in ("fvu_heldout", "fvu", "dead_fraction", "mean_l0") + STABILITY_COLUMNS:
        frame[column] = frame[column].astype("float64")
    frame["flag"] = frame["flag"].astype(bool)
    frame["layer"] = frame["layer"].astype("int64")
    frame["width"] = frame["width"].astype("int64")
    frame["model"] = frame["model"].astype(str)
    frame["slot"] = frame["slot"].astype(str)
    frame["partner"] = frame["partner"].astype(str)
    if write:
        atomic_parquet(frame, cache / "results" / "sae_quality.parquet")
    return frame


def quality_text(frame: pd.DataFrame) -> str:
    """The table's key columns as fixed-width text (what ``saesim extract`` prints after its summary).

    Examples
    --------
    >>> frame = pd.DataFrame([{"slot": "a", "layer": 0, "width": 256, "fvu_heldout": 0.2, "dead_fraction": 0.1,
    ...                        "mean_l0": 8.0, **{c: float("nan") for c in STABILITY_COLUMNS},
    ...                        "partner": "no seed slot in the profile"}])
    >>> line = quality_text(frame).splitlines()[2]
    >>> line.split()[:7], line.endswith("no seed slot in the profile")
    (['a', '0', '256', '0.200', '10.0%', '8.0', '--'], True)
    """
    head = (f"{'SAE':<9} {'layer':>5} {'width':>6} {'FVU h-o':>8} {'dead':>6} {'L0':>6} {'PW-MCC':>8} "
            f"{'shared':>8} {'dec+enc':>8} {'chance':>8} {'act MCC':>8} {'act sh.':>8}  partner")
    lines = ["SAE quality (seed stability: Hungarian matching of two SAEs of one layer; shared at >= 0.7)",
             head]

    def num(value, fmt="{:8.3f}"):
        return f"{'--':>8}" if value is None or (isinstance(value, float) and math.isnan(value)) else fmt.format(value)

    for r in frame.to_dict("records"):
        lines.append(
            f"{r['slot']:<9} {r['layer']:>5} {r['width']:>6} {num(r['fvu_heldout'])} {r['dead_fraction']:>6.1%} "
            f"{r['mean_l0']:>6.1f} {num(r['pw_mcc'])} {num(r['shared_dec'])} {num(r['shared_dec_enc'])} "
            f"{num(r['chance_pw_mcc'])} {num(r['act_mcc'])} {num(r['shared_act'])}  {r['partner']}"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- partners and cells


def _layer_stability(profile, cache: Path, rows: dict, *, threshold: float, seed: int):
    """Stability per partner layer ({layer: record}) and the partner note of every row."""
    has_seed = "seed" in profile.slots
    partner, todo = {}, []
    for slot, layer in rows:
        if slot not in PARTNER_SLOTS:
            partner[(slot, layer)] = "none: no second SAE of this model"
        elif not has_seed:
            partner[(slot, layer)] = "none: no seed slot in the profile"
        else:
            other = "seed" if slot == "a" else "a"
            if (other, layer) not in rows:
                partner[(slot, layer)] = f"none: no {other} SAE at layer {layer}"
            elif rows[(other, layer)]["n_latents"] != rows[(slot, layer)]["n_latents"]:
                partner[(slot, layer)] = (f"none: {other} width {rows[(other, layer)]['n_latents']} "
                                          f"!= {rows[(slot, layer)]['n_latents']}")
            else:
                partner[(slot, layer)] = f"{other} L{layer}"
                if slot == "a":
                    todo.append(layer)
    cell_dir = cache / "results" / "cells" / "sae_quality"
    out = {}
    for layer in todo:
        tag = _cell_tag(profile, rows[("a", layer)], rows[("seed", layer)], threshold=threshold, seed=seed)
        path = cell_dir / f"L{layer}_{tag}.json"
        record = read_json_or_none(path)
        if record is None:
            record = _compute_cell(profile, cache, layer, threshold=threshold, seed=seed)
            atomic_write_text(path, json.dumps(to_jsonable(record)))
        out[layer] = record
        if record.get("encoder_note"):
            for slot, other in (("a", "seed"), ("seed", "a")):
                partner[(slot, layer)] = f"{other} L{layer} (no encoder: {record['encoder_note']})"
    return out, partner


def _epochs(profile, slot: str) -> int:
    """The epochs slot ``slot``'s SAEs trained for here: ``sae.gpu_budget``'s on CUDA when set, else ``sae.epochs``."""
    spec = profile.model(slot).sae
    return profile.sae_plan(slot).epochs if spec.source == "train" and spec.gpu_budget is not None else spec.epochs


def _cell_tag(profile, row_a: dict, row_seed: dict, *, threshold: float, seed: int) -> str:
    def identity(slot, row):
        if row.get("key"):  # the layer's cache key, when the pipeline reports it
            return {"key": row["key"]}
        out = {"spec": profile.model(slot).to_dict(), "row": row}  # sae.device/gpu_budget only when set
        if profile.model(slot).sae.gpu_budget is not None:  # the budget used here (GPU or CPU)
            plan = profile.sae_plan(slot)
            out["budget"] = [plan.train_tokens, plan.epochs]
        return out

    blob = {"version": STABILITY_VERSION, "threshold": float(threshold), "seed": int(seed),
            "data": dataclasses.asdict(profile.data), "compat": profile.compat,
            "a": identity("a", row_a), "seed_slot": identity("seed", row_seed)}
    text = json.dumps(to_jsonable(blob), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _compute_cell(profile, cache: Path, layer: int, *, threshold: float, seed: int) -> dict:
    from saesim.extract.pipeline import load_layer

    data_a = load_layer(profile, "a", layer, out=cache)
    data_s = load_layer(profile, "seed", layer, out=cache)
    enc_a, note_a = _encoder_rows(profile, "a", layer, data_a, cache)
    enc_s, note_s = _encoder_rows(profile, "seed", layer, data_s, cache)
    note = "; ".join(n for n in (note_a, note_s) if n)
    if note:
        logger.warning("layer %d: shared_dec_enc left NaN (%s)", layer, note)
        enc_a = enc_s = None
    result = sae_stability(data_a.decoder, data_s.decoder, encoder_a=enc_a, encoder_b=enc_s, codes_a=data_a.codes,
                           codes_b=data_s.codes, threshold=threshold, seed=seed)
    return {**result.to_dict(), "layer": int(layer), "key_a": data_a.key, "key_seed": data_s.key,
            "encoder_note": note}


def _encoder_rows(profile, slot: str, layer: int, data, cache: Path) -> tuple[np.ndarray | None, str]:
    """Encoder rows ``W_enc.T`` (n_latents, d) of the SAE behind a cached layer, or None and why not.

    An SAE saesim trained (``source: train``) lives under ``<cache>/trained/<train key>/<location>/<sae_id>``;
    the folder is found by the ``train_key`` of its ``saesim_train.json``, which the layer's summary
    repeats. Other SAEs load as extraction loaded them (relative locations under the cache root). The
    loaded decoder must equal the cached one, so a wrong folder can never be used.
    """
    from saesim.extract.saes import load_sae

    sae_spec = profile.model(slot).sae
    try:
        if sae_spec.source == "train":
            train_key = (data.summary.train or {}).get("train_key")
            if not train_key:
                return None, f"{slot}: no training record"
            sub = Path(sae_spec.location) / sae_spec.id_for(layer)
            roots = [root for root in sorted((cache / "trained").glob("*"))
                     if (read_json_or_none(root / sub / "saesim_train.json") or {}).get("train_key") == train_key]
            if not roots:
                return None, f"{slot}: trained SAE folder not found"
            weights = load_sae(sae_spec, layer, root=roots[0])
        else:
            weights = load_sae(sae_spec, layer, root=cache)
    except Exception as exc:  # a hub SAE offline, a damaged folder: the encoder criterion is left out
        return None, f"{slot}: {type(exc).__name__}: {exc}"[:200]
    if weights.W_dec.shape != data.decoder.shape or not np.array_equal(weights.W_dec, data.decoder):
        return None, f"{slot}: the SAE on disk is not the one the layer was extracted with"
    return np.asarray(weights.W_enc).T, ""


def _float(value) -> float:
    if value is None:
        return float("nan")
    return float(value)
