"""Extracted layers read back from the cache: one layer for the analysis stages, and the SAE quality table.

Private to :mod:`saesim.extract`; import the public names from :mod:`saesim.extract.pipeline`.
"""

from __future__ import annotations

import numpy as np

from saesim.config import Profile, load_profile
from saesim.extract._extract_grid import cached_grid
from saesim.extract._extract_keys import artefact_store, layer_done, layer_key, read_summary, sae_identity, sub_key
from saesim.extract._extract_records import HELDOUT_FVU_TARGET, LayerData, Which
from saesim.extract._extract_run import plan
from saesim.extract.cache import CacheMissError


def sae_quality(profile: Profile | str, *, out=None):
    """One row per extracted (slot, layer): the SAE's held-out FVU, FVU on every row, dead fraction, L0, tokens.

    Read from the cache (no computation); layers not extracted yet are left
    out. ``flag`` is True where the held-out FVU exceeds
    :data:`HELDOUT_FVU_TARGET`. ``train_tokens`` is the number of rows the
    SAE was trained on (its training report's; with ``sae.train_text`` they are
    not grid rows) and 0 for an SAE saesim did not train.

    Returns
    -------
    pandas.DataFrame
        Columns ``slot, label, layer, n_latents, train_tokens, n_heldout,
        fvu_heldout, fvu, dead_fraction, mean_l0, flag``.
    """
    import pandas as pd

    profile = load_profile(profile) if not isinstance(profile, Profile) else profile
    store = artefact_store(profile, out)
    grid = cached_grid(profile, store)
    columns = ["slot", "label", "layer", "n_latents", "train_tokens", "n_heldout", "fvu_heldout", "fvu",
               "dead_fraction", "mean_l0", "flag"]
    rows = []
    if grid is not None:
        done, _ = plan(profile, profile.slots, grid, store)
        for (slot, layer), row in done.items():
            rows.append({"slot": slot, "label": row.label, "layer": layer, "n_latents": row.n_latents,
                         "train_tokens": _train_tokens(row),
                         "n_heldout": row.n_heldout, "fvu_heldout": row.fvu_heldout, "fvu": row.fvu,
                         "dead_fraction": row.dead_fraction, "mean_l0": row.mean_l0,
                         "flag": row.fvu_heldout is not None and row.fvu_heldout > HELDOUT_FVU_TARGET})
    return pd.DataFrame(rows, columns=columns)


def load_layer(profile: Profile | str, which: Which, layer: int, *, out=None) -> LayerData:
    """Read one extracted (model, layer) back from the cache.

    Parameters
    ----------
    profile : Profile or str
    which : {"a", "b", "control"}
    layer : int
    out : path, optional
        Root of the artefact store (default ``profile.cache_dir``).

    Returns
    -------
    LayerData
        Codes (CSR float32, grid rows), decoder rows, top activations and
        contexts, FVU, dead mask.

    Raises
    ------
    CacheMissError
        The layer has not been extracted (the message gives the command).
    """
    from saesim.extract.tokens import TopActivations, TopContexts

    profile = load_profile(profile) if not isinstance(profile, Profile) else profile
    spec = profile.model(which)
    if layer not in profile.layers(which):
        raise ValueError(
            f"layer {layer} is not among the layers of slot {which!r} in profile `{profile.name}` "
            f"({list(profile.layers(which))})."
        )
    store = artefact_store(profile, out)
    hint = (f"run `saesim extract --profile {profile.name} --out {store.root}` (with the same overrides) first")
    grid = cached_grid(profile, store)
    if grid is None:
        raise CacheMissError(f"profile `{profile.name}` has no cached token grid in {store.root}; {hint}.")
    identity = sae_identity(profile, spec, layer, grid.hash, store.root)
    key = None if identity is None else layer_key(profile, spec, layer, grid, identity)
    if key is None or not layer_done(store, key):
        raise CacheMissError(
            f"layer {layer} of {spec.label} (slot {which}) is not in the cache {store.root}; {hint}."
        )
    summary = read_summary(store, key, reused=True)
    record = store.load_json(key)
    codes = store.load_codes(sub_key(store, key, "codes"))
    decoder = store.load_array(sub_key(store, key, "decoder"))
    ints = store.load_array(sub_key(store, key, "top_int"))
    val = store.load_array(sub_key(store, key, "top_val"))
    n_active = store.load_array(sub_key(store, key, "n_active"))
    strings = store.load_json(sub_key(store, key, "strings"))
    top = TopActivations(pos=ints[0], val=val, n_active=n_active, n_tokens=int(strings["n_tokens"]),
                         compat=bool(strings["compat"]))
    ctx = TopContexts(
        top_tokens=_object_array(strings["top_tokens"], ints[0].shape),
        token_ids=ints[1], windows=_object_array(strings["windows"], ints[0].shape), active=top.active,
        doc=ints[2], position=ints[3], left=int(strings["left"]), right=int(strings["right"]),
    )
    return LayerData(
        slot=which, label=spec.label, layer=int(layer), hook=summary.hook, sae_id=summary.sae_id,
        codes=codes, decoder=decoder, top=top, contexts=ctx, fvu=summary.fvu, dead=n_active == 0,
        special_ids=tuple(int(i) for i in record.get("special_ids", ())), summary=summary, key=key,
    )


def _object_array(nested, shape) -> np.ndarray:
    out = np.empty(shape, dtype=object)
    for i, row in enumerate(nested):
        out[i, :] = row
    return out


def _train_tokens(row) -> int:
    """The rows an SAE saesim trained was trained on: its training report's count, else the grid rows not held out."""
    if row.sae_source != "train":
        return 0
    if row.train and row.train.get("n_tokens") is not None:
        return int(row.train["n_tokens"])
    return int(row.n_tokens - row.n_heldout)
