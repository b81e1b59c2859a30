"""The extraction's content keys (grid, SAE training, layer, activations) and a layer's entry in the artefact store.

Private to :mod:`saesim.extract`; import the public names from :mod:`saesim.extract.pipeline`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from saesim.config import ModelSpec, Profile, SaeTrainingPlan, sae_training_plan, torch_sees_cuda
from saesim.extract._extract_records import LayerSummary
from saesim.extract.cache import ArtefactStore
from saesim.extract.data import TokenGrid


EXTRACT_VERSION = 1
"""Mixed into every key of this module; bump when what is stored changes."""

GRID_VERSION = 2
"""Version of the token grid's layout: 2 = one view per tokenizer, named by content (:func:`saesim.extract.data.tokenizer_name`)."""


def artefact_store(profile: Profile, out) -> ArtefactStore:
    """The artefact store at ``out``, else at the profile's ``cache_dir``."""
    return ArtefactStore(Path(out) if out is not None else Path(profile.cache_dir))


def tokenizer_identity(spec: ModelSpec) -> dict:
    """What decides a slot's tokenizer (source, model, tokenizer, revision), as the grid's key records it."""
    source = spec.base_source if spec.source == "random_copy" else spec.source
    return {"source": source, "model": spec.model if source != "tiny" else "tiny",
            "tokenizer": spec.tokenizer, "revision": spec.revision if source == "hf" else None}


def grid_key(profile: Profile) -> str:
    """Key of the profile's token grid: its data settings (texts hashed), compat and every slot's tokenizer."""
    data = dataclasses.asdict(profile.data)
    data.pop("min_aligned")  # a threshold on the grid, not part of it
    data["texts"] = hashlib.sha256(json.dumps(list(profile.data.texts)).encode()).hexdigest()
    return ArtefactStore.key(
        role="grid", version=EXTRACT_VERSION, grid_version=GRID_VERSION, data=data, compat=profile.compat,
        tokenizers=[tokenizer_identity(profile.model(s)) for s in profile.slots],
    )


def texts_hash(texts) -> str:
    """SHA-256 of the corpus texts (a cached grid is rebuilt when a local corpus changed)."""
    return hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest()


def sub_key(store: ArtefactStore, key: str, role: str) -> str:
    """Key of the part ``role`` of the entry ``key`` (a layer's codes, one of a grid's arrays)."""
    return store.key(role=role, parent=key)


def codes_mode(profile: Profile, spec: ModelSpec) -> str:
    """The authors used ReLU pre-activations for sparsify SAEs; compat reproduces it."""
    if profile.compat and spec.sae.source == "sparsify":
        return "relu_preact"
    return spec.sae.codes


def training_plan(profile: Profile, spec: ModelSpec, *, cuda_available: bool | None = None) -> SaeTrainingPlan:
    """Where ``spec``'s SAEs train and on how much (:func:`saesim.config.sae_training_plan`); None asks torch."""
    cuda = torch_sees_cuda() if cuda_available is None else bool(cuda_available)
    return sae_training_plan(spec.sae, cuda_available=cuda, profile_device=profile.device)


def training_key(profile: Profile, spec: ModelSpec, layer: int, grid_hash: str, *,
                 cuda_available: bool | None = None) -> str:
    """Key of a saesim-trained SAE: the model, hook, grid and every setting of its training recipe.

    The tokens and epochs are the budget the SAE trains with on this machine
    (:func:`training_plan`: ``sae.gpu_budget`` on CUDA when set, else
    ``sae.train_tokens`` and ``sae.epochs``, which give the keys SAEs had
    before the GPU budget existed). With ``sae.train_text`` the training
    text's identity (corpora, hash of the documents) is part of it, and so is
    ``sae.trainer`` when it is not ``"reference"``. The device is not part of the key: the
    same budget on the CPU and a GPU is the same SAE up to float rounding
    (see :func:`saesim.config.sae_training_plan`), so either reuses the other's.
    ``cuda_available`` None asks torch.
    """
    sae = spec.sae
    plan = training_plan(profile, spec, cuda_available=cuda_available)
    extra = {} if sae.lr is None else {"lr": sae.lr}  # keys of SAEs trained at the default stay valid
    if sae.trainer != "reference":  # likewise for the trainer and the training text at their defaults
        extra["trainer"] = sae.trainer
    if sae.train_text:
        from saesim.extract._extract_train_text import train_text_identity

        extra["train_text"] = train_text_identity(profile, spec)
    return ArtefactStore.key(
        role="train", version=EXTRACT_VERSION, model=spec.identity, hook=sae.hook_for(layer), grid=grid_hash,
        compat=profile.compat, backend=spec.backend, num_latents=sae.num_latents, k=sae.k, seed=sae.seed,
        epochs=plan.epochs, train_tokens=plan.train_tokens, batch_size=sae.batch_size, **extra,
    )


def trained_sae_root(store: ArtefactStore, train_key: str) -> Path:
    """Folder of the SAEs trained under ``train_key``."""
    return store.root / "trained" / train_key[:20]


def trained_sae_folder(store: ArtefactStore, train_key: str, spec: ModelSpec, layer: int) -> Path:
    """Folder of the saesim-trained SAE of ``(spec, layer)`` trained under ``train_key``."""
    return trained_sae_root(store, train_key) / spec.sae.location / spec.sae.id_for(layer)


def local_sae_dir(spec: ModelSpec, layer: int, root: Path) -> Path | None:
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


def folder_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".json", ".safetensors")):
        if path.name == "saesim_train.json":
            continue
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def sae_identity(profile: Profile, spec: ModelSpec, layer: int, grid_hash: str, root: Path) -> dict | None:
    """What decides the SAE's weights; None when a local SAE is not on disk yet."""
    sae = spec.sae
    if sae.source == "train":
        return {"source": "train", "train": training_key(profile, spec, layer, grid_hash)}
    local = local_sae_dir(spec, layer, root)
    if local is not None:
        if not local.is_dir():
            return None
        return {"source": sae.source, "local": folder_digest(local), "sae_id": sae.id_for(layer)}
    return {"source": sae.source, "location": sae.location, "sae_id": sae.id_for(layer)}


def layer_key(profile: Profile, spec: ModelSpec, layer: int, grid: TokenGrid, sae_identity: dict) -> str:
    """Key of one extracted (model, layer): model, SAE identity, hook, grid, codes mode, compat, backend, labels."""
    return ArtefactStore.key(
        role="layer", version=EXTRACT_VERSION, model=spec.identity, sae=sae_identity,
        hook=spec.sae.hook_for(layer), grid=grid.hash, codes=codes_mode(profile, spec), compat=profile.compat,
        backend=spec.backend, labels=dataclasses.asdict(profile.labels),
    )


def activations_key(profile: Profile, spec: ModelSpec, hook: str, grid_hash: str) -> str:
    """Key of one model's raw activations at ``hook`` on the grid ``grid_hash``."""
    return ArtefactStore.key(role="activations", version=EXTRACT_VERSION, model=spec.identity, backend=spec.backend,
                             hook=hook, grid=grid_hash, compat=profile.compat)


LAYER_PARTS = (("codes", "codes"), ("decoder", "array"), ("top_int", "array"), ("top_val", "array"),
                ("n_active", "array"), ("strings", "json"))
"""The parts of a layer's entry, ``(role, kind)``, each stored under :func:`sub_key`."""


def layer_done(store: ArtefactStore, key: str) -> bool:
    """Whether the layer entry ``key`` is complete: its record (written last) and every part."""
    if not store.has(key, "json"):
        return False
    return all(store.has(sub_key(store, key, role), kind) for role, kind in LAYER_PARTS)


def _layer_bytes(store: ArtefactStore, key: str) -> int:
    total = store.size_bytes(key, "json")
    for role, kind in LAYER_PARTS:
        total += store.size_bytes(sub_key(store, key, role), kind)
    return total


def read_summary(store: ArtefactStore, key: str, *, reused: bool) -> LayerSummary:
    """The :class:`LayerSummary` of the layer entry ``key``."""
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
