"""The extraction loop: plan what the cache lacks, run each model once over the grid, hand each layer on, report.

Private to :mod:`saesim.extract`; import the public names from :mod:`saesim.extract.pipeline`.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np

from saesim.config import ModelSpec, Profile, load_profile
from saesim.extract._extract_activations import activations_to_keep, keep_captured
from saesim.extract._extract_grid import build_grid, cached_grid
from saesim.extract._extract_keys import (
    artefact_store,
    grid_key,
    layer_done,
    layer_key,
    read_summary,
    sae_identity,
    texts_hash,
    trained_sae_folder,
    training_key,
    training_plan,
)
from saesim.extract._extract_train_text import train_activations_key, train_grid
from saesim.extract._extract_layer import check_width, ensure_tiny_saes, neighbour_streams, process_layer
from saesim.extract._extract_records import ExtractSummary, LayerSummary
from saesim.extract.cache import ArtefactStore
from saesim.extract.data import TokenGrid, load_texts, require_hub
from saesim.io import atomic_write_text

logger = logging.getLogger("saesim.extract.pipeline")  # the extraction logs under one name, as before the split


def extract(
    profile: Profile | str,
    *,
    out=None,
    progress: bool = True,
    max_fvu: float | None = None,
    slots: tuple[str, ...] | None = None,
    keep_activations=None,
) -> ExtractSummary:
    """Run data → models → SAEs → codes → top contexts for a profile, reusing the cache.

    Parameters
    ----------
    profile : Profile or str
        A profile or the name of a shipped one.
    out : path, optional
        Root of the artefact store (default ``profile.cache_dir``).
    progress : bool, default True
        Progress bars for the forward passes, training and encoding.
    max_fvu : float, optional
        FVU limit of the guard (default :data:`saesim.extract.saes.DEFAULT_MAX_FVU`).
    slots : tuple of str, optional
        Restrict to some model slots (default: all of the profile).
    keep_activations : iterable of (slot, layer), optional
        Whose raw activations to store (:func:`load_activations`) while they
        are captured for their SAEs anyway. Default: A's and B's layers of
        :meth:`saesim.config.Profile.baseline_layer_pairs` (the raw-neuron
        baseline's), when they fit in :data:`KEEP_ACTIVATIONS_MAX_BYTES`;
        ``()`` keeps none.

    Returns
    -------
    ExtractSummary
        One row per (model, layer): tokens kept, latents, dead fraction, mean
        L0, FVU, cache size, whether it was reused.

    Raises
    ------
    saesim.extract.saes.SaeMismatchError
        An SAE does not fit its hook's activations (FVU above the limit, a
        better fit one block earlier, or another width).
    saesim.extract.data.HubUnavailableError
        The profile needs the hub and it cannot be used.
    saesim.extract.data.TokenizerMismatchError
        The models' tokenizers disagree.
    """
    from saesim.extract import saes

    started = time.perf_counter()
    profile = load_profile(profile) if not isinstance(profile, Profile) else profile
    max_fvu = saes.DEFAULT_MAX_FVU if max_fvu is None else float(max_fvu)
    slots = tuple(slots) if slots is not None else profile.slots
    for slot in slots:
        profile.model(slot)  # validates the slot names
    store = artefact_store(profile, out)
    root = store.root
    _warn_gpu(profile)
    grid = cached_grid(profile, store)
    if grid is None or profile.data.corpus in ("wikitext2", "brown", "texts"):
        # a local corpus is cheap to re-read: rebuild the grid when its text changed
        if grid is not None:
            meta = store.load_json(grid_key(profile))
            if meta.get("texts_sha256") != texts_hash(load_texts(profile.data)):
                logger.warning("the corpus changed since the token grid was cached; rebuilding it")
                grid = None
    pending_any = grid is None
    if grid is not None:
        done, pending = plan(profile, slots, grid, store)
        pending_any = bool(pending)
    if pending_any and profile.needs_hub:
        require_hub(f"profile `{profile.name}`")  # fail fast, before any work
    if grid is None:
        grid, _ = build_grid(profile, store, progress)
        done, pending = plan(profile, slots, grid, store)
    keep, limited = activations_to_keep(profile, slots, keep_activations)

    captures = []
    groups: dict[str, list[str]] = {}
    for slot in slots:
        if any(s == slot for s, _ in pending):
            spec = profile.model(slot)
            groups.setdefault(capture_group(spec), []).append(slot)

    for group_slots in groups.values():
        spec0 = profile.model(group_slots[0])
        hooks: dict[str, None] = {}
        neighbours: dict[str, list[str]] = {}
        for slot in group_slots:
            spec = profile.model(slot)
            for layer in profile.layers(slot):
                if (slot, layer) not in pending:
                    continue
                hook = spec.sae.hook_for(layer)
                hooks[hook] = None
                if spec.sae.source != "train" and not profile.compat:
                    neighbours[hook] = []
        loaded = _load(spec0, profile, root)
        for hook in neighbours:
            neighbours[hook] = neighbour_streams(loaded, hook)
            for name in neighbours[hook]:
                hooks[name] = None
        view = grid.for_tokenizer(loaded.tokenizer)  # this model's ids; rows paired with every other view
        row_doc, row_pos = view.doc_pos(np.arange(view.n_tokens))
        # the SAEs' own training text first: too little text is an error before the grid's capture
        train_acts = _capture_train_text(profile, group_slots, pending, loaded, store, grid.hash, keep, progress,
                                         captures)
        acts, info = _capture(loaded, view, list(hooks), profile, progress)
        captures.append(dict(info, label=spec0.label if len(group_slots) == 1 else
                             " + ".join(profile.model(s).label for s in group_slots)))
        keep_captured(profile, group_slots, keep, limited, acts, root, grid.hash)
        decode_cache: dict[int, str] = {}
        for slot in group_slots:
            spec = profile.model(slot)
            layers = [layer for layer in profile.layers(slot) if (slot, layer) in pending]
            if spec.source == "tiny" and spec.sae.source in ("sparsify", "saelens"):
                ensure_tiny_saes(spec, layers, acts, root)
            for layer in layers:
                hook = spec.sae.hook_for(layer)
                nb = {name: acts[name] for name in neighbours.get(hook, ())}
                summary = process_layer(
                    profile, slot, spec, layer, grid, view, row_doc, row_pos, acts[hook],
                    nb, loaded.tokenizer, decode_cache, store,
                    max_fvu=max_fvu, progress=progress, train_acts=train_acts.get((slot, hook)),
                )
                done[(slot, layer)] = summary
        del acts, loaded, train_acts

    rows = tuple(done[(slot, layer)] for slot in slots for layer in profile.layers(slot))
    summary = ExtractSummary(
        profile=profile.name, root=str(root), grid_hash=grid.hash, n_docs=grid.n_docs, n_tokens=grid.n_tokens,
        masked_fraction=grid.masked_fraction, layers=rows, captures=tuple(captures),
        seconds=time.perf_counter() - started,
    )
    _write_report(summary, profile, root)
    return summary


def _capture_train_text(profile: Profile, group_slots, pending, loaded, store: ArtefactStore, grid_hash: str, keep,
                        progress: bool, captures: list) -> dict:
    """Capture the training text of the group's SAEs that train on their own text and are not on disk yet.

    Returns ``(slot, hook) -> activations`` (the first ``sae.train_tokens`` rows of the slot's
    training text). The kept layers' (``keep``) are also stored, for the SAE frontier of the sweeps
    chapter (:func:`load_train_activations`), as float32: Gemma's residual stream exceeds float16's range.
    """
    from saesim.extract import saes

    wanted: dict[tuple, dict] = {}  # corpora -> {(slot, hook): n_tokens}
    for slot in group_slots:
        spec = profile.model(slot)
        if not spec.sae.train_text:
            continue
        n_tokens = int(training_plan(profile, spec).train_tokens)
        for layer in profile.layers(slot):
            if (slot, layer) not in pending:
                continue
            folder = trained_sae_folder(store, training_key(profile, spec, layer, grid_hash), spec, layer)
            if not saes.sae_folder_ready(folder):
                wanted.setdefault(tuple(spec.sae.train_text), {})[(slot, spec.sae.hook_for(layer))] = n_tokens
    out: dict = {}
    for corpora, needs in wanted.items():
        grid = train_grid(profile, loaded.tokenizer, corpora, max(needs.values()))
        hooks = list(dict.fromkeys(hook for _, hook in needs))
        acts, info = _capture(loaded, grid, hooks, profile, progress)
        captures.append(dict(info, label=f"{loaded.name}: SAE training text ({'+'.join(corpora)})"))
        for (slot, hook), n_tokens in needs.items():
            out[(slot, hook)] = acts[hook][:n_tokens]
            layer = next(layer for layer in profile.layers(slot) if profile.model(slot).sae.hook_for(layer) == hook)
            if (slot, layer) in keep:
                key = train_activations_key(profile, profile.model(slot), hook, n_tokens)
                if not store.has(key, "array"):
                    store.save_array(key, np.ascontiguousarray(acts[hook][:n_tokens], dtype=np.float32),
                                     {"profile": profile.name, "slot": slot, "layer": int(layer), "hook": hook,
                                      "model": profile.model(slot).model, "role": "train_text"})
    return out


def capture_group(spec: ModelSpec) -> str:
    """Key shared by the slots whose activations one forward pass gives (same model and backend)."""
    return json.dumps({"m": spec.identity, "b": spec.backend}, sort_keys=True)


def plan(profile: Profile, slots, grid: TokenGrid, store: ArtefactStore):
    """Split the (slot, layer) pairs into finished ones (summaries) and pending ones."""
    done: dict[tuple[str, int], LayerSummary] = {}
    pending: dict[tuple[str, int], None] = {}
    for slot in slots:
        spec = profile.model(slot)
        for layer in profile.layers(slot):
            identity = sae_identity(profile, spec, layer, grid.hash, store.root)
            if identity is not None:
                key = layer_key(profile, spec, layer, grid, identity)
                if layer_done(store, key):
                    row = read_summary(store, key, reused=True)
                    check_width(spec, row.n_latents, what=f"profile `{profile.name}`, {spec.label}, layer {layer}: "
                                                           f"SAE `{row.sae_id}` (cached)")
                    done[(slot, layer)] = row
                    continue
            pending[(slot, layer)] = None
    return done, pending


def _warn_gpu(profile: Profile) -> None:
    from saesim.extract.models import resolve_device

    if profile.needs_gpu and resolve_device(profile.device) == "cpu":
        warnings.warn(
            f"profile `{profile.name}` is meant for a GPU but runs on the CPU; expect it to be slow "
            "(set device: cuda on a GPU machine).", RuntimeWarning, stacklevel=3,
        )


def _load(spec: ModelSpec, profile: Profile, root: Path):
    from saesim.extract.models import load_model

    return load_model(spec, root=root, what=f"profile `{profile.name}`")


def _capture(loaded, grid, hooks, profile: Profile, progress: bool):
    from saesim.extract.capture import capture

    t0 = time.perf_counter()
    acts = capture(loaded, grid, hooks, device=profile.device, compat=profile.compat, progress=progress)
    seconds = time.perf_counter() - t0
    info = {"hooks": list(hooks), "n_tokens": grid.n_tokens, "n_positions": grid.n_positions,
            "seconds": seconds, "tokens_per_s": grid.n_tokens / max(seconds, 1e-9)}
    logger.info("captured %d hooks of %s: %d tokens in %.1f s", len(hooks), loaded.name, grid.n_tokens, seconds)
    return acts, info


def _write_report(summary: ExtractSummary, profile: Profile, root: Path) -> None:
    """A human-readable record of the run beside the store (``<root>/extract-<profile>.json``)."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        payload = {
            "profile": profile.to_dict(), "grid_hash": summary.grid_hash, "n_docs": summary.n_docs,
            "n_tokens": summary.n_tokens, "masked_fraction": summary.masked_fraction,
            "seconds": summary.seconds, "captures": list(summary.captures),
            "layers": [dict(layer.row(), train=layer.train) for layer in summary.layers],
        }
        path = root / f"extract-{profile.name}.json"
        atomic_write_text(path, json.dumps(payload, indent=1, default=float))
    except OSError as exc:  # the report is a convenience; the store holds the data
        logger.warning("could not write the extraction report: %s", exc)
