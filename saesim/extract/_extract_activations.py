"""Raw activations kept beside the codes (the raw-neuron baseline's): which ones, stored, read back.

Private to :mod:`saesim.extract`; import the public names from :mod:`saesim.extract.pipeline`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from saesim.config import Profile, load_profile
from saesim.extract._extract_grid import cached_grid, load_grid
from saesim.extract._extract_keys import activations_key, artefact_store
from saesim.extract._extract_records import Which
from saesim.extract.cache import ArtefactStore, CacheMissError

logger = logging.getLogger("saesim.extract.pipeline")  # the extraction logs under one name, as before the split


KEEP_ACTIVATIONS_MAX_BYTES = 1 << 30
"""Extraction keeps the raw activations of the baseline layers only when one model's take at most this
(offline profile: MiniLM's three layers, 0.73 GB, are kept; MPNet's, 1.46 GB, are captured again when needed)."""


def activations_to_keep(profile: Profile, slots, keep_activations) -> tuple[list[tuple[str, int]], bool]:
    """The (slot, layer) pairs whose activations to store, and whether the size limit applies (the default)."""
    if keep_activations is None:
        try:
            pairs = profile.baseline_layer_pairs()
        except ValueError:
            return [], True
        return [(slot, layer) for la, lb in pairs for slot, layer in (("a", la), ("b", lb)) if slot in slots], True
    keep = [(str(slot), int(layer)) for slot, layer in keep_activations]
    for slot, layer in keep:
        if layer not in profile.layers(slot):
            raise ValueError(f"`keep_activations` names layer {layer} of slot {slot!r}, which profile "
                             f"`{profile.name}` does not extract ({list(profile.layers(slot))}).")
    return [(slot, layer) for slot, layer in keep if slot in slots], False


def keep_captured(profile: Profile, group_slots, keep, limited: bool, acts: dict, root: Path, grid_hash: str) -> None:
    """Store the kept activations one forward pass captured (all of them or, over the limit, none)."""
    hooks = {(slot, layer): profile.model(slot).sae.hook_for(layer) for slot, layer in keep if slot in group_slots}
    hooks = {where: hook for where, hook in hooks.items() if hook in acts}
    size = sum(acts[hook].nbytes for hook in set(hooks.values()))
    if limited and size > KEEP_ACTIVATIONS_MAX_BYTES:
        logger.info("not keeping %.2f GB of raw activations (over KEEP_ACTIVATIONS_MAX_BYTES)", size / 1e9)
        return
    store = ArtefactStore(root)
    for (slot, layer), hook in hooks.items():
        key = activations_key(profile, profile.model(slot), hook, grid_hash)
        if not store.has(key, "array"):
            _save_activations(store, key, profile, slot, layer, acts[hook])


def save_activations(profile: Profile | str, which: Which, layer: int, acts: np.ndarray, *, out=None) -> None:
    """Store the raw activations of ``(which, layer)`` on the profile's cached grid (float32, grid rows).

    Slots that run the same model share the entry (offline: A and B).
    """
    profile = load_profile(profile) if not isinstance(profile, Profile) else profile
    store = artefact_store(profile, out)
    grid = load_grid(profile, out=store.root)
    acts = np.asarray(acts, dtype=np.float32)
    if acts.ndim != 2 or acts.shape[0] != grid.n_tokens:
        raise ValueError(f"`acts` must have one row per kept token of the grid ({grid.n_tokens}); got shape "
                         f"{acts.shape}.")
    spec = profile.model(which)
    _save_activations(store, activations_key(profile, spec, spec.sae.hook_for(int(layer)), grid.hash), profile,
                      which, layer, acts)


def _save_activations(store: ArtefactStore, key: str, profile: Profile, which: Which, layer: int, acts) -> None:
    spec = profile.model(which)
    store.save_array(key, acts, {"profile": profile.name, "slot": which, "layer": int(layer),
                                 "hook": spec.sae.hook_for(int(layer)), "model": spec.model})


def load_activations(profile: Profile | str, which: Which, layer: int, *, out=None) -> np.ndarray | None:
    """The stored raw activations of ``(which, layer)`` at its SAE's hook, or None when not stored.

    Returns
    -------
    ndarray of float32, shape (n_tokens, d_model) or None
        Rows in the order of the codes (the grid's kept tokens).
    """
    profile = load_profile(profile) if not isinstance(profile, Profile) else profile
    store = artefact_store(profile, out)
    grid = cached_grid(profile, store)
    if grid is None:
        return None
    spec = profile.model(which)
    return _stored_array(store, activations_key(profile, spec, spec.sae.hook_for(int(layer)), grid.hash))


def _stored_array(store: ArtefactStore, key: str) -> np.ndarray | None:
    """The array stored under ``key``, or None when it is absent or damaged (then rebuilt by its producer)."""
    if not store.has(key, "array"):
        return None
    try:
        return store.load_array(key)
    except CacheMissError:
        return None


def load_train_activations(profile: Profile | str, which: Which, layer: int, *, out=None) -> np.ndarray | None:
    """The stored activations of ``(which, layer)``'s SAE training text (``sae.train_text``), or None.

    Extraction stores them for the kept layers (A's and B's of
    :meth:`saesim.config.Profile.baseline_layer_pairs`) when it captures them to train
    their SAEs; :func:`train_activations` captures them when they are not stored. None when
    the slot's SAE trains on the grid's rows or nothing is stored.

    Returns
    -------
    ndarray of float32, shape (sae.train_tokens, d_model) or None
        Rows in training order.
    """
    profile = load_profile(profile) if not isinstance(profile, Profile) else profile
    spec = profile.model(which)
    if not spec.sae.train_text:
        return None
    return _stored_array(artefact_store(profile, out), _train_key(profile, which, layer))


def train_activations(profile: Profile | str, which: Which, layer: int, *, out=None,
                      progress: bool = False) -> np.ndarray | None:
    """:func:`load_train_activations`, captured through the model and stored first when they are not stored.

    None when the slot's SAE trains on the grid's rows (no ``sae.train_text``).
    """
    from saesim.extract._extract_train_text import train_grid
    from saesim.extract.capture import capture
    from saesim.extract.models import load_model

    profile = load_profile(profile) if not isinstance(profile, Profile) else profile
    spec = profile.model(which)
    if not spec.sae.train_text:
        return None
    kept = load_train_activations(profile, which, layer, out=out)
    if kept is not None:
        return kept
    store = artefact_store(profile, out)
    n_tokens = int(_plan(profile, which).train_tokens)
    hook = spec.sae.hook_for(int(layer))
    loaded = load_model(spec, root=store.root, what=f"profile `{profile.name}` (the SAE's training text)")
    grid = train_grid(profile, loaded.tokenizer, spec.sae.train_text, n_tokens)
    acts = capture(loaded, grid, [hook], device=profile.device, compat=profile.compat, progress=progress)[hook]
    acts = np.ascontiguousarray(acts[:n_tokens], dtype=np.float32)
    store.save_array(_train_key(profile, which, layer), acts,
                     {"profile": profile.name, "slot": which, "layer": int(layer), "hook": hook, "model": spec.model,
                      "role": "train_text"})
    return acts


def _plan(profile: Profile, which: Which):
    from saesim.extract._extract_keys import training_plan

    return training_plan(profile, profile.model(which))


def _train_key(profile: Profile, which: Which, layer: int) -> str:
    from saesim.extract._extract_train_text import train_activations_key

    spec = profile.model(which)
    return train_activations_key(profile, spec, spec.sae.hook_for(int(layer)), int(_plan(profile, which).train_tokens))
