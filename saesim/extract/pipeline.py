"""Extraction: data → models → SAEs → codes → top contexts, cached on disk.

:func:`extract` runs the model side of the pipeline for every model slot of a
profile (A, B and the control) and every requested layer:

1. **data** — the profile's texts are tokenized by every model's tokenizer
   and the kept positions paired into one :class:`~saesim.extract.data.TokenGrid`
   with a view per tokenizer (the tokenizers must segment the text
   identically; ids and special tokens may differ);
2. **models** — each distinct model runs *once* over the grid, capturing the
   residual stream at every needed hook in the same forward (A and B of the
   offline profile are the same MiniLM, so it runs once for both);
3. **SAEs** — loaded (sparsify, SAELens, hub or disk) or, for
   ``source: train``, trained on the captured activations (TopK, sparsify's
   format) unless already on disk; tiny-profile SAEs are written on first use;
4. **codes** — the SAE's codes as CSR; the reconstruction FVU on the same
   activations is recorded and guarded (an SAE fed the wrong layer fails
   loudly, see below);
5. **tokens** — the top-activating rows of every latent with their top tokens
   and context windows, decoded once.

Everything lands in a content-addressed :class:`~saesim.extract.cache.ArtefactStore`
(key: model, revision, SAE, hook, data hash, codes mode, compat, ...). A
finished (model, layer) is never recomputed, so an interrupted run resumes
where it stopped; a stale or corrupt entry is rebuilt. :func:`load_layer`
reads one (model, layer) back for the analysis stages.

Hook guard
----------
Besides the absolute FVU limit of :func:`saesim.extract.saes.check_fvu`, every SAE
that saesim did not train itself is also evaluated on the residual streams
one block before and after its hook (the one before is what the authors'
``hidden_states[L]`` fed it). If it reconstructs a neighbour better than its
own hook's activations, the hook is off by one and extraction stops with
:class:`~saesim.extract.saes.SaeMismatchError`. Under ``compat`` (which reproduces the
off-by-one on purpose) both checks only warn.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.sparse as sp

from saesim.extract.cache import ArtefactStore, CacheMissError
from saesim.config import ModelSpec, Profile, load_profile
from saesim.extract.align import align_grids, alignment_report
from saesim.extract.data import TokenGrid, load_texts, require_hub, tokenize, tokenizer_name

__all__ = [
    "ExtractSummary",
    "FvuWarning",
    "LayerData",
    "LayerSummary",
    "extract",
    "load_activations",
    "load_grid",
    "load_layer",
    "sae_quality",
    "save_activations",
    "token_alignment",
]

logger = logging.getLogger(__name__)

Which = Literal["a", "b", "control"]

EXTRACT_VERSION = 1
"""Mixed into every key of this module; bump when what is stored changes."""

HELDOUT_FVU_TARGET = 0.40
"""Held-out FVU an SAE should reach; layers above it are flagged in the summary and the book."""

GRID_VERSION = 2
"""Version of the token grid's layout: 2 = one view per tokenizer, named by content (:func:`saesim.extract.data.tokenizer_name`)."""

KEEP_ACTIVATIONS_MAX_BYTES = 1 << 30
"""Extraction keeps the raw activations of the baseline layers only when one model's take at most this
(offline profile: MiniLM's three layers, 0.73 GB, are kept; MPNet's, 1.46 GB, are captured again when needed)."""

SUMMARY_COLUMNS = ("slot", "label", "layer", "hook", "n_tokens", "n_latents", "dead_fraction", "mean_l0",
                   "fvu_heldout", "fvu", "cache_mib", "reused")
"""Columns printed by ``saesim extract`` (the rows hold more)."""


class FvuWarning(UserWarning):
    """A poor reconstruction that is tolerated (``compat=True``)."""


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class LayerSummary:
    """One (model, layer) of an extraction.

    Attributes
    ----------
    slot : {"a", "b", "control"}
    label : str
        The model's label in the profile.
    layer : int
    hook : str
        Hook the activations were read at.
    sae_id : str
    sae_source : str
    n_tokens : int
        Kept token rows.
    n_latents : int
    dead_fraction : float
        Latents that never fire on these tokens.
    mean_l0 : float
        Mean active latents per token (of the stored codes).
    fvu : float
        Reconstruction FVU of the SAE's own codes on all the captured
        activations (a trained SAE's training rows included).
    fvu_heldout : float or None
        FVU on the rows the SAE was not trained on (the grid's rows after
        ``sae.train_tokens``: later documents); every row for an SAE saesim
        did not train; None when a trained SAE saw every row.
    n_heldout : int
        Rows behind ``fvu_heldout``.
    fvu_neighbour : float or None
        Lowest FVU of the SAE on the residual streams one block before and
        after its hook (the off-by-one guard); None when not checked (trained
        SAEs, non-block hooks, compat).
    cache_bytes : int
        Bytes on disk of this layer's artefacts (codes, decoder, labels).
    dense_bytes : int
        Bytes the same codes would take as a dense float32 matrix.
    reused : bool
        Loaded from the cache rather than computed in this run.
    codes : str
        Codes mode ("sae" or "relu_preact").
    train : dict or None
        Training report of a saesim-trained SAE (FVU, dead fraction, seconds...).
    seconds : float
        Wall-clock time of this layer's SAE work (training, encoding, labels).
    key : str
        The layer's cache key.
    """

    slot: str
    label: str
    layer: int
    hook: str
    sae_id: str
    sae_source: str
    n_tokens: int
    n_latents: int
    dead_fraction: float
    mean_l0: float
    fvu: float
    fvu_neighbour: float | None
    fvu_heldout: float | None
    n_heldout: int
    cache_bytes: int
    dense_bytes: int
    reused: bool
    codes: str
    train: dict | None
    seconds: float
    key: str

    def row(self) -> dict:
        """One tidy-table row (``cache_mib`` added)."""
        out = dataclasses.asdict(self)
        out["cache_mib"] = self.cache_bytes / 2**20
        out["dense_mib"] = self.dense_bytes / 2**20
        out.pop("train")
        return out


@dataclass(frozen=True)
class ExtractSummary:
    """What :func:`extract` did: one row per (model, layer), plus timings.

    Attributes
    ----------
    profile : str
    root : str
        The artefact store.
    grid_hash : str
    n_docs, n_tokens : int
        Documents and kept token rows of the grid.
    masked_fraction : float
        Fraction of grid positions dropped (padding, special tokens).
    layers : tuple of LayerSummary
    captures : tuple of dict
        One per model forward: label, hooks, tokens, seconds, tokens per second.
    seconds : float
        Total wall-clock time.
    """

    profile: str
    root: str
    grid_hash: str
    n_docs: int
    n_tokens: int
    masked_fraction: float
    layers: tuple[LayerSummary, ...]
    captures: tuple[dict, ...] = ()
    seconds: float = 0.0

    def to_frame(self):
        """The rows as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame([layer.row() for layer in self.layers])

    def row(self, slot: str, layer: int) -> LayerSummary:
        """The summary of ``(slot, layer)``."""
        for item in self.layers:
            if item.slot == slot and item.layer == layer:
                return item
        raise KeyError(f"no row for slot {slot!r}, layer {layer} in this extraction.")

    def table(self) -> str:
        """A fixed-width text table (what ``saesim extract`` prints)."""
        head = f"{'model':<11} {'layer':>5} {'hook':<26} {'tokens':>8} {'latents':>7} {'dead':>6} {'L0':>6} " \
               f"{'FVU held-out':>12} {'FVU all':>7} {'cache MiB':>9} {'':>6}"
        lines = [head, "-" * len(head)]
        for r in self.layers:
            heldout = "n/a" if r.fvu_heldout is None else f"{r.fvu_heldout:.3f}"
            flag = " !" if r.fvu_heldout is not None and r.fvu_heldout > HELDOUT_FVU_TARGET else "  "
            lines.append(
                f"{r.slot:<11} {r.layer:>5} {r.hook[:26]:<26} {r.n_tokens:>8} {r.n_latents:>7} "
                f"{r.dead_fraction:>6.1%} {r.mean_l0:>6.1f} {heldout:>10}{flag} {r.fvu:>7.3f} "
                f"{r.cache_bytes / 2**20:>9.1f} {'cached' if r.reused else '':>6}"
            )
        if any(r.fvu_heldout is not None and r.fvu_heldout > HELDOUT_FVU_TARGET for r in self.layers):
            lines.append(f"! held-out FVU above the target {HELDOUT_FVU_TARGET} (the book flags these layers)")
        for c in self.captures:
            lines.append(f"forward {c['label']}: {c['n_tokens']} tokens x {len(c['hooks'])} hooks in "
                         f"{c['seconds']:.1f} s ({c['tokens_per_s']:.0f} tokens/s)")
        total = sum(r.cache_bytes for r in self.layers)
        dense = sum(r.dense_bytes for r in self.layers)
        lines.append(f"profile {self.profile}: {self.n_docs} docs, {self.n_tokens} tokens kept "
                     f"({self.masked_fraction:.1%} of positions dropped); cache {total / 2**20:.1f} MiB "
                     f"(dense fp32 codes would be {dense / 2**20:.1f} MiB) in {self.root}; {self.seconds:.1f} s")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


@dataclass(frozen=True, eq=False)
class LayerData:
    """One (model, layer) as the analysis stages use it (see :func:`load_layer`).

    Attributes
    ----------
    slot : str
        "a", "b" or "control".
    label : str
    layer : int
    hook, sae_id : str
    codes : scipy.sparse.csr_matrix of float32, shape (n_tokens, n_latents)
    decoder : ndarray of float32, shape (n_latents, d_model)
        ``W_dec`` rows (latent directions).
    top : saesim.extract.tokens.TopActivations
    contexts : saesim.extract.tokens.TopContexts
    fvu : float
    dead : ndarray of bool, shape (n_latents,)
        Latents that never fire on these tokens.
    special_ids : tuple of int
        The tokenizer's special ids (for the corrected junk filter).
    summary : LayerSummary
    key : str
        The layer's content key in the artefact store (results derived from
        two layers, such as best partners, are cached under both keys).
    """

    slot: str
    label: str
    layer: int
    hook: str
    sae_id: str
    codes: sp.csr_matrix
    decoder: np.ndarray
    top: object
    contexts: object
    fvu: float
    dead: np.ndarray
    special_ids: tuple[int, ...]
    summary: LayerSummary
    key: str = ""

    @property
    def n_tokens(self) -> int:
        return int(self.codes.shape[0])

    @property
    def n_latents(self) -> int:
        return int(self.codes.shape[1])

    def to_sae_layer(self):
        """The :class:`saesim.compare.filters.SaeLayer` of this layer."""
        from saesim.compare.filters import SaeLayer

        return SaeLayer(model=self.slot, layer=self.layer, codes=self.codes, decoder=self.decoder,
                        top=self.contexts.to_top_tokens(), windows=self.contexts.windows,
                        special_ids=self.special_ids)


# --------------------------------------------------------------------------- keys


def _store(profile: Profile, out) -> ArtefactStore:
    return ArtefactStore(Path(out) if out is not None else Path(profile.cache_dir))


def _tokenizer_identity(spec: ModelSpec) -> dict:
    source = spec.base_source if spec.source == "random_copy" else spec.source
    return {"source": source, "model": spec.model if source != "tiny" else "tiny",
            "tokenizer": spec.tokenizer, "revision": spec.revision if source == "hf" else None}


ALIGNMENT_REPORT = "token_alignment.json"
"""File name of the span alignment's report (:func:`saesim.extract.align.alignment_report`) under ``<cache>/results``."""


def _grid_key(profile: Profile) -> str:
    data = dataclasses.asdict(profile.data)
    data.pop("min_aligned")  # a threshold on the grid, not part of it
    data["texts"] = hashlib.sha256(json.dumps(list(profile.data.texts)).encode()).hexdigest()
    return ArtefactStore.key(
        role="grid", version=EXTRACT_VERSION, grid_version=GRID_VERSION, data=data, compat=profile.compat,
        tokenizers=[_tokenizer_identity(profile.model(s)) for s in profile.slots],
    )


def _texts_hash(texts) -> str:
    return hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest()


def _sub(store: ArtefactStore, key: str, role: str) -> str:
    return store.key(role=role, parent=key)


def _codes_mode(profile: Profile, spec: ModelSpec) -> str:
    """The authors used ReLU pre-activations for sparsify SAEs; compat reproduces it."""
    if profile.compat and spec.sae.source == "sparsify":
        return "relu_preact"
    return spec.sae.codes


def _train_key(profile: Profile, spec: ModelSpec, layer: int, grid_hash: str) -> str:
    sae = spec.sae
    return ArtefactStore.key(
        role="train", version=EXTRACT_VERSION, model=spec.identity, hook=sae.hook_for(layer), grid=grid_hash,
        compat=profile.compat, backend=spec.backend, num_latents=sae.num_latents, k=sae.k, seed=sae.seed,
        epochs=sae.epochs, train_tokens=sae.train_tokens, batch_size=sae.batch_size,
        **({} if sae.lr is None else {"lr": sae.lr}),  # keys of SAEs trained at the default stay valid
    )


def _train_root(store: ArtefactStore, train_key: str) -> Path:
    return store.root / "trained" / train_key[:20]


def _local_sae_dir(spec: ModelSpec, layer: int, root: Path) -> Path | None:
    """The local folder of a non-trained SAE, or None for a hub SAE."""
    location = Path(spec.sae.location).expanduser()
    if location.is_absolute():
        base = location
    elif (root / location).exists() or spec.source == "tiny":
        base = root / location
    elif location.exists():
        base = location
    else:
        return None
    return base / spec.sae.id_for(layer)


def _folder_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".json", ".safetensors")):
        if path.name == "saesim_train.json":
            continue
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _sae_identity(profile: Profile, spec: ModelSpec, layer: int, grid_hash: str, root: Path) -> dict | None:
    """What decides the SAE's weights; None when a local SAE is not on disk yet."""
    sae = spec.sae
    if sae.source == "train":
        return {"source": "train", "train": _train_key(profile, spec, layer, grid_hash)}
    local = _local_sae_dir(spec, layer, root)
    if local is not None:
        if not local.is_dir():
            return None
        return {"source": sae.source, "local": _folder_digest(local), "sae_id": sae.id_for(layer)}
    return {"source": sae.source, "location": sae.location, "sae_id": sae.id_for(layer)}


def _layer_key(profile: Profile, spec: ModelSpec, layer: int, grid: TokenGrid, sae_identity: dict) -> str:
    return ArtefactStore.key(
        role="layer", version=EXTRACT_VERSION, model=spec.identity, sae=sae_identity,
        hook=spec.sae.hook_for(layer), grid=grid.hash, codes=_codes_mode(profile, spec), compat=profile.compat,
        backend=spec.backend, labels=dataclasses.asdict(profile.labels),
    )


_LAYER_PARTS = (("codes", "codes"), ("decoder", "array"), ("top_int", "array"), ("top_val", "array"),
                ("n_active", "array"), ("strings", "json"))


def _layer_done(store: ArtefactStore, key: str) -> bool:
    if not store.has(key, "json"):
        return False
    return all(store.has(_sub(store, key, role), kind) for role, kind in _LAYER_PARTS)


def _layer_bytes(store: ArtefactStore, key: str) -> int:
    total = store.size_bytes(key, "json")
    for role, kind in _LAYER_PARTS:
        total += store.size_bytes(_sub(store, key, role), kind)
    return total


# --------------------------------------------------------------------------- grid


def load_grid(profile: Profile | str, *, out=None) -> TokenGrid:
    """The profile's cached :class:`TokenGrid` (made by :func:`extract`).

    Raises
    ------
    CacheMissError
        The grid is not in the store; run ``saesim extract`` first.
    """
    profile = load_profile(profile) if not isinstance(profile, Profile) else profile
    store = _store(profile, out)
    grid = _cached_grid(profile, store)
    if grid is None:
        raise CacheMissError(
            f"no token grid of profile `{profile.name}` in {store.root}; run "
            f"`saesim extract --profile {profile.name} --out {store.root}` first."
        )
    return grid


def _cached_grid(profile: Profile, store: ArtefactStore) -> TokenGrid | None:
    key = _grid_key(profile)
    if not store.has(key, "json"):
        return None
    try:
        meta = store.load_json(key)
        others = tuple(meta.get("other_tokenizers", ()))
        names = ["ids", "attention_mask", "keep"]
        names += [f"view{i}.{part}" for i in range(len(others)) for part in ("ids", "attention_mask", "keep")]
        arrays = {name: store.load_array(_sub(store, key, name)) for name in names}
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


def _build_grid(profile: Profile, store: ArtefactStore, progress: bool) -> tuple[TokenGrid, object]:
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
    key = _grid_key(profile)
    for name, arr in grid.to_arrays().items():
        if not name.endswith("special_ids"):
            store.save_array(_sub(store, key, name), arr, {"grid": key, "part": name})
    store.save_json(key, {"hash": grid.hash, "tokenizer": grid.tokenizer, "special_ids": list(grid.special_ids),
                          "other_tokenizers": [o.tokenizer for o in grid.others],
                          "other_special_ids": [list(o.special_ids) for o in grid.others],
                          "compat": grid.compat, "texts_sha256": _texts_hash(texts), "n_docs": grid.n_docs,
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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    tmp.replace(path)
    return path


def token_alignment(profile: Profile | str, *, out=None) -> dict:
    """The profile's token-alignment report (written by :func:`extract`; rebuilt here when absent)."""
    profile = load_profile(profile) if not isinstance(profile, Profile) else profile
    store = _store(profile, out)
    path = store.root / "results" / ALIGNMENT_REPORT
    grid = load_grid(profile, out=out)
    if path.is_file():
        report = json.loads(path.read_text())
        if report.get("grid") == grid.hash:
            return report
    return json.loads(_write_alignment_report(profile, grid, _tokenizers(profile, store), store.root).read_text())


# --------------------------------------------------------------------------- extract


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
    store = _store(profile, out)
    root = store.root
    _warn_gpu(profile)
    grid = _cached_grid(profile, store)
    if grid is None or profile.data.corpus in ("wikitext2", "brown", "texts"):
        # a local corpus is cheap to re-read: rebuild the grid when its text changed
        if grid is not None:
            meta = store.load_json(_grid_key(profile))
            if meta.get("texts_sha256") != _texts_hash(load_texts(profile.data)):
                logger.warning("the corpus changed since the token grid was cached; rebuilding it")
                grid = None
    pending_any = grid is None
    if grid is not None:
        done, pending = _plan(profile, slots, grid, store)
        pending_any = bool(pending)
    if pending_any and profile.needs_hub:
        require_hub(f"profile `{profile.name}`")  # fail fast, before any work
    if grid is None:
        grid, _ = _build_grid(profile, store, progress)
        done, pending = _plan(profile, slots, grid, store)
    keep, limited = _activations_to_keep(profile, slots, keep_activations)

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
            neighbours[hook] = _neighbour_streams(loaded, hook)
            for name in neighbours[hook]:
                hooks[name] = None
        view = grid.for_tokenizer(loaded.tokenizer)  # this model's ids; rows paired with every other view
        row_doc, row_pos = view.doc_pos(np.arange(view.n_tokens))
        acts, info = _capture(loaded, view, list(hooks), profile, progress)
        captures.append(dict(info, label=spec0.label if len(group_slots) == 1 else
                             " + ".join(profile.model(s).label for s in group_slots)))
        _keep_captured(profile, group_slots, keep, limited, acts, root, grid.hash)
        decode_cache: dict[int, str] = {}
        for slot in group_slots:
            spec = profile.model(slot)
            layers = [layer for layer in profile.layers(slot) if (slot, layer) in pending]
            if spec.source == "tiny" and spec.sae.source in ("sparsify", "saelens"):
                _ensure_tiny_saes(spec, layers, acts, root)
            for layer in layers:
                hook = spec.sae.hook_for(layer)
                nb = {name: acts[name] for name in neighbours.get(hook, ())}
                summary = _process_layer(
                    profile, slot, spec, layer, grid, view, row_doc, row_pos, acts[hook],
                    nb, loaded.tokenizer, decode_cache, store,
                    max_fvu=max_fvu, progress=progress,
                )
                done[(slot, layer)] = summary
        del acts, loaded

    rows = tuple(done[(slot, layer)] for slot in slots for layer in profile.layers(slot))
    summary = ExtractSummary(
        profile=profile.name, root=str(root), grid_hash=grid.hash, n_docs=grid.n_docs, n_tokens=grid.n_tokens,
        masked_fraction=grid.masked_fraction, layers=rows, captures=tuple(captures),
        seconds=time.perf_counter() - started,
    )
    _write_report(summary, profile, root)
    return summary


def _activations_to_keep(profile: Profile, slots, keep_activations) -> tuple[list[tuple[str, int]], bool]:
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


def _keep_captured(profile: Profile, group_slots, keep, limited: bool, acts: dict, root: Path, grid_hash: str) -> None:
    """Store the kept activations one forward pass captured (all of them or, over the limit, none)."""
    hooks = {(slot, layer): profile.model(slot).sae.hook_for(layer) for slot, layer in keep if slot in group_slots}
    hooks = {where: hook for where, hook in hooks.items() if hook in acts}
    size = sum(acts[hook].nbytes for hook in set(hooks.values()))
    if limited and size > KEEP_ACTIVATIONS_MAX_BYTES:
        logger.info("not keeping %.2f GB of raw activations (over KEEP_ACTIVATIONS_MAX_BYTES)", size / 1e9)
        return
    store = ArtefactStore(root)
    for (slot, layer), hook in hooks.items():
        key = _activations_key(profile, profile.model(slot), hook, grid_hash)
        if not store.has(key, "array"):
            _save_activations(store, key, profile, slot, layer, acts[hook])


def _activations_key(profile: Profile, spec: ModelSpec, hook: str, grid_hash: str) -> str:
    return ArtefactStore.key(role="activations", version=EXTRACT_VERSION, model=spec.identity, backend=spec.backend,
                             hook=hook, grid=grid_hash, compat=profile.compat)


def save_activations(profile: Profile | str, which: Which, layer: int, acts: np.ndarray, *, out=None) -> None:
    """Store the raw activations of ``(which, layer)`` on the profile's cached grid (float32, grid rows).

    Slots that run the same model share the entry (offline: A and B).
    """
    profile = load_profile(profile) if not isinstance(profile, Profile) else profile
    store = _store(profile, out)
    grid = load_grid(profile, out=store.root)
    acts = np.asarray(acts, dtype=np.float32)
    if acts.ndim != 2 or acts.shape[0] != grid.n_tokens:
        raise ValueError(f"`acts` must have one row per kept token of the grid ({grid.n_tokens}); got shape "
                         f"{acts.shape}.")
    spec = profile.model(which)
    _save_activations(store, _activations_key(profile, spec, spec.sae.hook_for(int(layer)), grid.hash), profile,
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
    store = _store(profile, out)
    grid = _cached_grid(profile, store)
    if grid is None:
        return None
    spec = profile.model(which)
    key = _activations_key(profile, spec, spec.sae.hook_for(int(layer)), grid.hash)
    if not store.has(key, "array"):
        return None
    try:
        return store.load_array(key)
    except CacheMissError:
        return None


def capture_group(spec: ModelSpec) -> str:
    """Key shared by the slots whose activations one forward pass gives (same model and backend)."""
    return json.dumps({"m": spec.identity, "b": spec.backend}, sort_keys=True)


def _plan(profile: Profile, slots, grid: TokenGrid, store: ArtefactStore):
    """Split the (slot, layer) pairs into finished ones (summaries) and pending ones."""
    done: dict[tuple[str, int], LayerSummary] = {}
    pending: dict[tuple[str, int], None] = {}
    for slot in slots:
        spec = profile.model(slot)
        for layer in profile.layers(slot):
            identity = _sae_identity(profile, spec, layer, grid.hash, store.root)
            if identity is not None:
                key = _layer_key(profile, spec, layer, grid, identity)
                if _layer_done(store, key):
                    row = _read_summary(store, key, reused=True)
                    _check_width(spec, row.n_latents, what=f"profile `{profile.name}`, {spec.label}, layer {layer}: "
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


def _resolve(loaded, hook):
    from saesim.extract.capture import resolve_hook

    return resolve_hook(loaded, hook)


def _capture(loaded, grid, hooks, profile: Profile, progress: bool):
    from saesim.extract.capture import capture

    t0 = time.perf_counter()
    acts = capture(loaded, grid, hooks, device=profile.device, compat=profile.compat, progress=progress)
    seconds = time.perf_counter() - t0
    info = {"hooks": list(hooks), "n_tokens": grid.n_tokens, "n_positions": grid.n_positions,
            "seconds": seconds, "tokens_per_s": grid.n_tokens / max(seconds, 1e-9)}
    logger.info("captured %d hooks of %s: %d tokens in %.1f s", len(hooks), loaded.name, grid.n_tokens, seconds)
    return acts, info


def _ensure_tiny_saes(spec: ModelSpec, layers, acts, root: Path) -> None:
    """Write the tiny profile's SAEs (sparsify / SAELens formats) on first use, or again when damaged."""
    from saesim.extract import saes
    from saesim.extract.saes import make_tiny_saes

    todo = {}
    formats = {}
    for layer in layers:
        folder = _local_sae_dir(spec, layer, root)
        hook = spec.sae.hook_for(layer)
        if folder is None or saes.sae_folder_ready(folder):
            continue
        if spec.sae.id_for(layer) != hook:
            raise ValueError(
                f"tiny SAEs are written under their hook name, so `sae.sae_id` must equal `sae.hook` "
                f"for {spec.label}; got {spec.sae.sae_id!r} and {spec.sae.hook!r}."
            )
        todo[hook] = acts[hook]
        if spec.sae.source == "sparsify":
            formats[hook] = "sparsify"
        else:  # SAELens: JumpReLU on even layers, TopK on odd ones
            formats[hook] = "saelens_jumprelu" if layer % 2 == 0 else "saelens_topk"
    if todo:
        if spec.sae.num_latents is None or spec.sae.k is None:
            raise ValueError(f"tiny SAEs of {spec.label} need `sae.num_latents` and `sae.k` in the profile.")
        out_dir = root / spec.sae.location
        make_tiny_saes(todo, out_dir, formats=formats, num_latents=spec.sae.num_latents, k=spec.sae.k,
                       seed=spec.sae.seed, epochs=spec.sae.epochs)
        logger.info("wrote tiny SAEs %s to %s", sorted(todo), out_dir)


def _get_sae(profile: Profile, spec: ModelSpec, layer: int, acts: np.ndarray, grid: TokenGrid,
             store: ArtefactStore, progress: bool):
    """Load the SAE of (spec, layer), training it first when ``source: train`` and not on disk."""
    from saesim.extract import saes

    sae_spec = spec.sae
    train_report = unsaved_report = None
    if sae_spec.source == "train":
        train_key = _train_key(profile, spec, layer, grid.hash)
        train_root = _train_root(store, train_key)
        folder = train_root / sae_spec.location / sae_spec.id_for(layer)
        report_path = folder / "saesim_train.json"
        if not saes.sae_folder_ready(folder):  # absent, or a damaged saesim-made folder (removed)
            x = acts if sae_spec.train_tokens is None else acts[: sae_spec.train_tokens]
            # Not evaluated here: the layer's codes of every token include the training rows
            # (_finish_train_report), which saves one encode of them.
            trained = saes.train_topk_sae(
                x, num_latents=sae_spec.num_latents, k=sae_spec.k, seed=sae_spec.seed, epochs=sae_spec.epochs,
                batch_size=sae_spec.batch_size, lr=sae_spec.lr, hook=sae_spec.hook_for(layer),
                sae_id=sae_spec.id_for(layer), progress=progress, evaluate=False,
            )
            saes.save_sparsify(trained.weights, folder)
            train_report = dict(trained.summary(), train_key=train_key)
            unsaved_report = report_path
        elif report_path.is_file():
            train_report = json.loads(report_path.read_text())
        sae = saes.load_sae(sae_spec, layer, root=train_root)
    else:
        sae = saes.load_sae(sae_spec, layer, root=store.root)
        local = _local_sae_dir(spec, layer, store.root)
        if local is not None and (local / "saesim_train.json").is_file():
            train_report = json.loads((local / "saesim_train.json").read_text())
    return sae, train_report, unsaved_report


def _finish_train_report(train_report: dict, path: Path, sae, acts: np.ndarray, codes) -> dict:
    """Fill a fresh training report's FVU, dead fraction and L0 from its training rows' codes; save it at ``path``."""
    from saesim.extract.saes import code_stats

    n = int(train_report["n_tokens"])
    report = {**train_report, **code_stats(sae, acts[:n], codes[:n])}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1, default=float))
    tmp.replace(path)
    return report


def _process_layer(profile, slot, spec, layer, grid, view, row_doc, row_pos, acts, neighbour_acts: dict, tokenizer,
                   decode_cache, store, *, max_fvu, progress) -> LayerSummary:
    from saesim.extract import saes, tokens

    t0 = time.perf_counter()
    hook = spec.sae.hook_for(layer)
    what = f"profile `{profile.name}`, {spec.label} (slot {slot}), layer {layer}"
    sae, train_report, unsaved_report = _get_sae(profile, spec, layer, acts, grid, store, progress)
    saes.check_d_in(sae, acts, what=f"activations of {spec.label} at `{hook}`")
    _check_width(spec, sae.n_latents, what=f"{what}: SAE `{sae.sae_id}`")
    sae_codes = saes.encode(sae, acts, codes="sae", batch_size=spec.sae.batch_size, progress=progress)
    if unsaved_report is not None:  # trained just now, not yet evaluated
        train_report = _finish_train_report(train_report, unsaved_report, sae, acts, sae_codes)
    value = saes.fvu(sae, acts, sae_codes)
    n_train = 0 if spec.sae.source != "train" else min(spec.sae.train_tokens or acts.shape[0], acts.shape[0])
    heldout = saes.fvu(sae, acts[n_train:], sae_codes[n_train:]) if n_train < acts.shape[0] else None
    neighbour_fvu = {
        name: saes.fvu(sae, x, saes.encode(sae, x, batch_size=spec.sae.batch_size, progress=False))
        for name, x in neighbour_acts.items()
    }
    value_nb = min(neighbour_fvu.values()) if neighbour_fvu else None
    _guard(value, neighbour_fvu, what=f"{what}: SAE `{sae.sae_id}` on hook `{hook}`", compat=profile.compat,
           max_fvu=max_fvu)
    mode = _codes_mode(profile, spec)
    codes = sae_codes if mode == "sae" else saes.encode(sae, acts, codes=mode, batch_size=spec.sae.batch_size,
                                                        progress=progress)
    codes = sp.csr_matrix(codes, dtype=np.float32)
    top = tokens.top_activations(codes, k=profile.labels.k, compat=profile.compat)

    ctx = tokens.contexts(
        top, view.ids, token_decoder(tokenizer), row_doc=row_doc, row_pos=row_pos, left=profile.labels.left,
        right=profile.labels.right, valid=None if profile.compat else view.attention_mask == 1,
        decode_cache=decode_cache,
    )
    identity = _sae_identity(profile, spec, layer, grid.hash, store.root)
    key = _layer_key(profile, spec, layer, grid, identity)
    meta = {"profile": profile.name, "slot": slot, "layer": layer, "hook": hook, "sae_id": sae.sae_id,
            "model": spec.model}
    store.save_codes(_sub(store, key, "codes"), codes, meta)
    store.save_array(_sub(store, key, "decoder"), np.asarray(sae.W_dec, dtype=np.float32), meta)
    store.save_array(_sub(store, key, "top_int"),
                     np.stack([top.pos, ctx.token_ids, ctx.doc, ctx.position]).astype(np.int64), meta)
    store.save_array(_sub(store, key, "top_val"), np.asarray(top.val, dtype=np.float32), meta)
    store.save_array(_sub(store, key, "n_active"), np.asarray(top.n_active, dtype=np.int64), meta)
    store.save_json(_sub(store, key, "strings"),
                    {"top_tokens": ctx.top_tokens.tolist(), "windows": ctx.windows.tolist(),
                     "left": ctx.left, "right": ctx.right, "compat": top.compat, "n_tokens": top.n_tokens},
                    meta)
    dead = top.n_active == 0
    record = {
        "slot": slot, "label": spec.label, "layer": int(layer), "hook": hook, "sae_id": sae.sae_id,
        "sae_source": spec.sae.source, "n_tokens": int(codes.shape[0]), "n_latents": int(codes.shape[1]),
        "dead_fraction": float(dead.mean()), "mean_l0": float(codes.nnz / max(codes.shape[0], 1)),
        "fvu": float(value), "fvu_neighbour": None if value_nb is None else float(value_nb),
        "fvu_heldout": None if heldout is None else float(heldout), "n_heldout": int(acts.shape[0] - n_train),
        "codes": mode, "train": train_report, "seconds": time.perf_counter() - t0,
        "special_ids": list(view.special_ids), "sae": sae.describe(), "grid": grid.hash,
    }
    store.save_json(key, record, meta)  # the layer's commit marker, written last
    logger.info("cached %s layer %d (%s): FVU %.3f, dead %.1f%%", spec.label, layer, hook, value,
                100 * record["dead_fraction"])
    return _read_summary(store, key, reused=False)


def _check_width(spec: ModelSpec, n_latents: int, *, what: str) -> None:
    from saesim.extract.saes import SaeMismatchError

    if spec.sae.num_latents is not None and n_latents != spec.sae.num_latents:
        raise SaeMismatchError(
            f"{what} has {n_latents} latents but the profile says sae.num_latents = {spec.sae.num_latents}; "
            "fix the profile or point it at the intended SAE."
        )


def _neighbour_streams(loaded, hook: str) -> list[str]:
    """The residual streams one block before and after ``hook`` (empty for non-residual hooks).

    Stream ``i`` is the input of block ``i`` (``hidden_states[i]``); the
    output of block L is stream ``L + 1``.
    """
    point = _resolve(loaded, hook)
    if point.block is None:
        return []
    n = loaded.n_layers
    stream = point.block + (1 if point.kind == "output" else 0)

    def name(i: int) -> str:
        return f"blocks.{i}.hook_resid_pre" if i < n else f"layers.{n - 1}"

    return [name(i) for i in (stream - 1, stream + 1) if 0 <= i <= n]


def _guard(value: float, neighbours: dict[str, float], *, what: str, compat: bool, max_fvu: float) -> None:
    from saesim.extract import saes

    try:
        saes.check_fvu(value, what=what, max_fvu=max_fvu)
        better = {k: v for k, v in neighbours.items() if math.isfinite(v) and v < value}
        if better:
            name, best = min(better.items(), key=lambda kv: kv[1])
            raise saes.SaeMismatchError(
                f"{what}: the SAE reconstructs the neighbouring residual stream `{name}` (FVU {best:.3f}) better "
                f"than the hook's own activations (FVU {value:.3f}), so the hook is probably off by one layer. "
                "Check the hook template of the profile (`layers.L` and `blocks.L.hook_resid_post` are the OUTPUT "
                "of block L; HF hidden_states[L] is its input)."
            )
    except saes.SaeMismatchError as exc:
        if not compat:
            raise
        warnings.warn(f"(compat, tolerated) {exc}", FvuWarning, stacklevel=3)


def token_decoder(tokenizer):
    """A one-token decoder whose strings concatenate back into readable text.

    Byte-level BPE and SentencePiece tokens (Pythia, Gemma) carry their own
    leading space, so ``tokenizer.decode([id])`` is used as is. WordPiece
    tokens (BERT, MiniLM) do not: a word-initial piece gets a leading space,
    a ``##`` continuation loses its ``##``, and punctuation stays attached,
    so windows read ``" the European lobster,"`` rather than
    ``"theeuropeanlobster,"`` and the whole-word concept rule works.
    """
    import unicodedata

    special = set(int(i) for i in getattr(tokenizer, "all_special_ids", ()))
    wordpiece = type(tokenizer).__name__.startswith(("Bert", "DistilBert", "Electra", "MPNet")) or (
        getattr(getattr(getattr(tokenizer, "backend_tokenizer", None), "model", None), "__class__", type(None))
        .__name__ == "WordPiece"
    )

    if not wordpiece:
        def decode(token_id: int) -> str:
            return tokenizer.decode([int(token_id)])
        return decode

    def decode_piece(token_id: int) -> str:
        piece = tokenizer.convert_ids_to_tokens(int(token_id))
        if int(token_id) in special:
            return piece
        if piece.startswith("##"):
            return piece[2:]
        if piece and all(unicodedata.category(ch)[0] == "P" for ch in piece) and piece not in "([{\"'":
            return piece
        return " " + piece
    return decode_piece


def _read_summary(store: ArtefactStore, key: str, *, reused: bool) -> LayerSummary:
    record = store.load_json(key)
    dense = int(record["n_tokens"]) * int(record["n_latents"]) * 4
    return LayerSummary(
        slot=record["slot"], label=record["label"], layer=int(record["layer"]), hook=record["hook"],
        sae_id=record["sae_id"], sae_source=record["sae_source"], n_tokens=int(record["n_tokens"]),
        n_latents=int(record["n_latents"]), dead_fraction=float(record["dead_fraction"]),
        mean_l0=float(record["mean_l0"]), fvu=float(record["fvu"]),
        fvu_neighbour=None if record["fvu_neighbour"] is None else float(record["fvu_neighbour"]),
        fvu_heldout=None if record.get("fvu_heldout") is None else float(record["fvu_heldout"]),
        n_heldout=int(record.get("n_heldout", 0)),
        cache_bytes=_layer_bytes(store, key), dense_bytes=dense, reused=reused, codes=record["codes"],
        train=record.get("train"), seconds=float(record["seconds"]), key=key,
    )


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
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(payload, indent=1, default=float))
        tmp.replace(path)
    except OSError as exc:  # the report is a convenience; the store holds the data
        logger.warning("could not write the extraction report: %s", exc)


# --------------------------------------------------------------------------- loading back


def sae_quality(profile: Profile | str, *, out=None):
    """One row per extracted (slot, layer): the SAE's held-out FVU, FVU on every row, dead fraction, L0, tokens.

    Read from the cache (no computation); layers not extracted yet are left
    out. ``flag`` is True where the held-out FVU exceeds
    :data:`HELDOUT_FVU_TARGET`. ``train_tokens`` is the number of rows the
    SAE was trained on (0 for an SAE saesim did not train).

    Returns
    -------
    pandas.DataFrame
        Columns ``slot, label, layer, n_latents, train_tokens, n_heldout,
        fvu_heldout, fvu, dead_fraction, mean_l0, flag``.
    """
    import pandas as pd

    profile = load_profile(profile) if not isinstance(profile, Profile) else profile
    store = _store(profile, out)
    grid = _cached_grid(profile, store)
    columns = ["slot", "label", "layer", "n_latents", "train_tokens", "n_heldout", "fvu_heldout", "fvu",
               "dead_fraction", "mean_l0", "flag"]
    rows = []
    if grid is not None:
        done, _ = _plan(profile, profile.slots, grid, store)
        for (slot, layer), row in done.items():
            rows.append({"slot": slot, "label": row.label, "layer": layer, "n_latents": row.n_latents,
                         "train_tokens": row.n_tokens - row.n_heldout if row.sae_source == "train" else 0,
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
    store = _store(profile, out)
    hint = (f"run `saesim extract --profile {profile.name} --out {store.root}` (with the same overrides) first")
    grid = _cached_grid(profile, store)
    if grid is None:
        raise CacheMissError(f"profile `{profile.name}` has no cached token grid in {store.root}; {hint}.")
    identity = _sae_identity(profile, spec, layer, grid.hash, store.root)
    key = None if identity is None else _layer_key(profile, spec, layer, grid, identity)
    if key is None or not _layer_done(store, key):
        raise CacheMissError(
            f"layer {layer} of {spec.label} (slot {which}) is not in the cache {store.root}; {hint}."
        )
    summary = _read_summary(store, key, reused=True)
    record = store.load_json(key)
    codes = store.load_codes(_sub(store, key, "codes"))
    decoder = store.load_array(_sub(store, key, "decoder"))
    ints = store.load_array(_sub(store, key, "top_int"))
    val = store.load_array(_sub(store, key, "top_val"))
    n_active = store.load_array(_sub(store, key, "n_active"))
    strings = store.load_json(_sub(store, key, "strings"))
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
