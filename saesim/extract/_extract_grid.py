"""A profile's token grid: every model's tokens paired by character span, cached, read back, and its alignment report.

Private to :mod:`saesim.extract`; import the public names from :mod:`saesim.extract.pipeline`.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import numpy as np

from saesim.config import Profile, load_profile
from saesim.extract._extract_keys import artefact_store, grid_key, sub_key, texts_hash
from saesim.extract.align import align_grids, alignment_report
from saesim.extract.cache import ArtefactStore, CacheMissError
from saesim.extract.data import TokenGrid, load_texts, tokenize, tokenizer_name
from saesim.io import atomic_write_text

logger = logging.getLogger("saesim.extract.pipeline")  # the extraction logs under one name, as before the split


ALIGNMENT_REPORT = "token_alignment.json"
"""File name of the span alignment's report (:func:`saesim.extract.align.alignment_report`) under ``<cache>/results``."""


def load_grid(profile: Profile | str, *, out=None) -> TokenGrid:
    """The profile's cached :class:`TokenGrid` (made by :func:`extract`).

    Raises
    ------
    CacheMissError
        The grid is not in the store; run ``saesim extract`` first.
    """
    profile = load_profile(profile) if not isinstance(profile, Profile) else profile
    store = artefact_store(profile, out)
    grid = cached_grid(profile, store)
    if grid is None:
        raise CacheMissError(
            f"no token grid of profile `{profile.name}` in {store.root}; run "
            f"`saesim extract --profile {profile.name} --out {store.root}` first."
        )
    return grid


def cached_grid(profile: Profile, store: ArtefactStore) -> TokenGrid | None:
    """The profile's token grid from ``store``; None when absent, incomplete or failing its hash (warns)."""
    key = grid_key(profile)
    if not store.has(key, "json"):
        return None
    try:
        meta = store.load_json(key)
        others = tuple(meta.get("other_tokenizers", ()))
        names = ["ids", "attention_mask", "keep"]
        names += [f"view{i}.{part}" for i in range(len(others)) for part in ("ids", "attention_mask", "keep")]
        arrays = {name: store.load_array(sub_key(store, key, name)) for name in names}
    except CacheMissError:
        return None
    arrays["special_ids"] = np.asarray(meta["special_ids"], dtype=np.int64)
    for i, special in enumerate(meta.get("other_special_ids", ())):
        arrays[f"view{i}.special_ids"] = np.asarray(special, dtype=np.int64)
    grid = TokenGrid.from_arrays(arrays, tokenizer=meta["tokenizer"], compat=meta["compat"], other_tokenizers=others)
    if grid.hash != meta["hash"]:
        warnings.warn(f"cached token grid of profile `{profile.name}` fails its hash; rebuilding it.", stacklevel=3)
        return None
    return grid


def _slot_name(profile: Profile, slot: str) -> str:
    return f"{slot} ({profile.model(slot).model})"


def build_grid(profile: Profile, store: ArtefactStore, progress: bool) -> tuple[TokenGrid, object]:
    """Tokenise the texts with every slot's tokenizer and pair their tokens by character span."""
    texts = load_texts(profile.data)
    tokenizers = _tokenizers(profile, store)
    grids: dict[str, tuple[TokenGrid, object, str]] = {}  # tokenizer name -> (grid, tokenizer, first slot)
    for slot, tokenizer in tokenizers.items():
        name = tokenizer_name(tokenizer)
        if name not in grids:
            grids[name] = (tokenize(tokenizer, texts, max_length=profile.data.max_length, compat=profile.compat),
                           tokenizer, slot)
    first, *rest = grids.values()
    grid = align_grids(first[0], first[1], [(g, tok) for g, tok, _ in rest], texts=texts,
                       max_length=profile.data.max_length, min_kept=profile.data.min_aligned,
                       names=tuple(_slot_name(profile, slot) for _, _, slot in (first, *rest)))
    key = grid_key(profile)
    for name, arr in grid.to_arrays().items():
        if not name.endswith("special_ids"):
            store.save_array(sub_key(store, key, name), arr, {"grid": key, "part": name})
    store.save_json(key, {"hash": grid.hash, "tokenizer": grid.tokenizer, "special_ids": list(grid.special_ids),
                          "other_tokenizers": [o.tokenizer for o in grid.others],
                          "other_special_ids": [list(o.special_ids) for o in grid.others],
                          "compat": grid.compat, "texts_sha256": texts_hash(texts), "n_docs": grid.n_docs,
                          "shape": list(grid.shape), "n_tokens": grid.n_tokens},
                    {"profile": profile.name, "role": "grid"})
    logger.info("cached token grid %s: %d docs, %d tokens kept, views of %s", grid.hash[:12], grid.n_docs,
                grid.n_tokens, list(grid.tokenizers))
    _write_alignment_report(profile, grid, tokenizers, store.root)
    return grid, tokenizers["a"]


def _tokenizers(profile: Profile, store: ArtefactStore) -> dict:
    from saesim.extract.models import load_tokenizer

    what = f"profile `{profile.name}`"
    return {slot: load_tokenizer(profile.model(slot), what=what, root=store.root) for slot in profile.slots}


def _write_alignment_report(profile: Profile, grid: TokenGrid, tokenizers: dict, root: Path) -> Path:
    """``<root>/results/token_alignment.json``: what the token pairing kept and dropped, per model."""
    by_name = {tokenizer_name(tok): tok for tok in tokenizers.values()}
    models = {}
    for slot, tok in tokenizers.items():
        models.setdefault(tokenizer_name(tok), profile.model(slot).model)
    report = {"profile": profile.name, "grid": grid.hash, "rule": "identical character span",
              "min_aligned": profile.data.min_aligned,
              **alignment_report(grid, by_name, names=models)}
    path = root / "results" / ALIGNMENT_REPORT
    atomic_write_text(path, json.dumps(report, indent=1, ensure_ascii=False))
    return path


def token_alignment(profile: Profile | str, *, out=None) -> dict:
    """The profile's token-alignment report (written by :func:`extract`; rebuilt here when absent)."""
    profile = load_profile(profile) if not isinstance(profile, Profile) else profile
    store = artefact_store(profile, out)
    path = store.root / "results" / ALIGNMENT_REPORT
    grid = load_grid(profile, out=out)
    if path.is_file():
        report = json.loads(path.read_text())
        if report.get("grid") == grid.hash:
            return report
    return json.loads(_write_alignment_report(profile, grid, _tokenizers(profile, store), store.root).read_text())
