"""The SAE settings of a profile's model (:class:`SaeSpec`), and where a saesim-trained SAE trains and on how much.

Part of :mod:`saesim.config`, which re-exports every public name here; import them from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from saesim.errors import ProfileError
from saesim.validation import check_positive_fields
from saesim.vocab import and_join

__all__ = ["SaeBudget", "SaeSpec", "SaeTrainingPlan", "sae_training_plan", "torch_sees_cuda", "train_text_words"]

SaeSource = Literal["sparsify", "saelens", "train"]
Codes = Literal["sae", "relu_preact"]
Device = Literal["auto", "cpu", "cuda", "mps"]
SaeDevice = Literal["auto", "cpu", "cuda"]
Trainer = Literal["reference", "sparse"]
TrainCorpus = Literal["wikitext2", "brown"]
TRAIN_CORPORA = ("wikitext2", "brown")
"""The local corpora an SAE may train on besides the grid's own text (``sae.train_text``)."""

TRAIN_TEXT_NAMES = {"wikitext2": "WikiText-2", "brown": "the Brown corpus"}
"""How pages name the corpora of ``sae.train_text``."""


def train_text_words(corpora) -> str:
    """The corpora of ``sae.train_text`` in words: ``"WikiText-2 and the Brown corpus"``."""
    return and_join(TRAIN_TEXT_NAMES.get(c, c) for c in corpora)


@dataclass(frozen=True)
class SaeBudget:
    """What a saesim-trained SAE trains on when it trains on a GPU (``sae.gpu_budget``).

    Attributes
    ----------
    train_tokens : int, "all" or None
        Cap on the training tokens, as ``sae.train_tokens`` (the first N kept
        tokens; the later ones are the held-out set). ``"all"``: every kept
        token (no held-out set). None: ``sae.train_tokens``.
    epochs : int or None
        Passes over them; None: ``sae.epochs``.
    """

    train_tokens: int | Literal["all"] | None = None
    epochs: int | None = None

    def __post_init__(self):
        check_positive_fields(self, ("epochs",), optional=True)
        if self.train_tokens != "all":
            check_positive_fields(self, ("train_tokens",), optional=True)


@dataclass(frozen=True)
class SaeSpec:
    """Where the SAEs of one model come from and how to read their codes.

    Attributes
    ----------
    source : {"sparsify", "saelens", "train"}
        ``"sparsify"``: EleutherAI sparsify format (``cfg.json`` +
        ``sae.safetensors`` per hook, on disk or a hub repo). ``"saelens"``: a
        SAELens release/id or a local SAELens folder. ``"train"``: TopK SAEs
        trained by saesim on the captured activations, saved in sparsify format
        under the cache and loaded back through the sparsify loader.
    location : str
        Hub repo (sparsify), SAELens release name, or a local directory — a
        relative path is taken relative to the run's cache root, an absolute
        path as is. For ``"train"`` the folder (under the cache root) that
        receives the trained SAEs.
    sae_id : str
        Template of the SAE's id inside ``location``, with ``{layer}``; e.g.
        ``"layers.{layer}"`` (sparsify) or ``"layer_{layer}/width_16k/canonical"``
        (SAELens). The folder name of a trained or local SAE.
    hook : str
        Template, with ``{layer}``, of the hook point whose activations the SAE
        reads: sparsify ``"layers.{layer}"`` (output of block L), a module path
        such as ``"encoder.layer.{layer}"``, or TransformerLens/SAELens
        ``"blocks.{layer}.hook_resid_post"`` (also output of block L).
    codes : {"sae", "relu_preact"}
        ``"sae"``: the SAE's real codes (TopK / JumpReLU). ``"relu_preact"``:
        ReLU of the encoder pre-activation, what the authors used for sparsify
        SAEs (compat only).
    num_latents : int or None
        Width. Required for ``"train"``; for loaded SAEs a check (None: any).
    k : int or None
        Active latents per token of a TopK SAE. Required for ``"train"``.
    seed : int
        Seed of training (``"train"``), so two sets differ only by seed/width.
    epochs : int
        Training epochs over the captured tokens (``"train"``).
    train_tokens : int or None
        Cap on the tokens used to train (None: every kept token).
    batch_size : int
        Tokens per encode / training batch.
    lr : float or None
        Learning rate of training (``"train"``); None: sparsify's default for
        the width (:func:`saesim.extract.saes.default_lr`).
    device : {"auto", "cpu", "cuda"}
        Where ``"train"`` SAEs train. ``"auto"``: CUDA when torch sees a GPU,
        unless the profile's ``device`` is ``"cpu"``; ``"cuda"`` without a GPU
        is an error. Not part of any cache key (see :func:`sae_training_plan`).
    gpu_budget : SaeBudget or None
        Training tokens and epochs used instead of ``train_tokens`` and
        ``epochs`` when the SAE trains on CUDA; None: the same budget as on
        the CPU. The budget used is part of the training key.
    trainer : {"reference", "sparse"}
        The training loop of ``"train"`` SAEs (:func:`saesim.extract.saes.train_topk_sae`):
        ``"reference"`` (autograd through sparsify's loss) or ``"sparse"`` (the same loss and
        gradients computed by hand on the k active latents; about 2x faster on the CPU, held-out
        FVU within 3e-4 of the reference, ``benchmarks/results/sae_train.json``). Part of the
        training key when not ``"reference"``.
    train_text : tuple of {"wikitext2", "brown"}
        Text the SAE trains on *instead of* the grid's rows: documents of these local corpora
        that are not in the grid (WikiText-2 paragraphs after the grid's first ``data.n_docs``,
        then the Brown corpus, whose licence is non-commercial), tokenised by the model's own
        tokenizer; the SAE trains on their first ``train_tokens`` kept tokens, and every grid
        row is held out. Empty (default): the first ``train_tokens`` rows of the grid.
    """

    source: SaeSource = "sparsify"
    location: str = ""
    sae_id: str = "layers.{layer}"
    hook: str = "layers.{layer}"
    codes: Codes = "sae"
    num_latents: int | None = None
    k: int | None = None
    seed: int = 0
    epochs: int = 1
    train_tokens: int | None = None
    batch_size: int = 4096
    lr: float | None = None
    device: SaeDevice = "auto"
    gpu_budget: SaeBudget | None = None
    trainer: Trainer = "reference"
    train_text: tuple[TrainCorpus, ...] = ()

    def __post_init__(self):
        for name in ("sae_id", "hook"):
            value = getattr(self, name)
            if "{layer}" not in value:
                raise ProfileError(
                    f"`{name}` must contain the placeholder '{{layer}}'; got {value!r} "
                    f"(e.g. 'layers.{{layer}}')."
                )
        if self.source == "train" and (self.num_latents is None or self.k is None):
            raise ProfileError(
                "`source` is 'train' but `num_latents` or `k` is missing; "
                "set both (e.g. num_latents: 4096, k: 32)."
            )
        check_positive_fields(self, ("epochs", "batch_size"))
        check_positive_fields(self, ("num_latents", "k", "train_tokens"), optional=True)
        if isinstance(self.lr, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                object.__setattr__(self, "lr", float(self.lr))
            except ValueError:
                pass
        if isinstance(self.train_text, str):
            object.__setattr__(self, "train_text", (self.train_text,))
        object.__setattr__(self, "train_text", tuple(self.train_text))
        unknown = [c for c in self.train_text if c not in TRAIN_CORPORA]
        if unknown or len(set(self.train_text)) != len(self.train_text):
            raise ProfileError(f"`sae.train_text` lists corpora from {list(TRAIN_CORPORA)}, each once; "
                               f"got {list(self.train_text)}.")
        if self.train_text and self.source != "train":
            raise ProfileError(f"`sae.train_text` is set but `sae.source` is {self.source!r}; only SAEs that "
                               "saesim trains (source: train) have training text.")
        if self.train_text and self.train_tokens is None:
            raise ProfileError("`sae.train_text` is set but `sae.train_tokens` is not; say how many tokens of "
                               f"{'+'.join(self.train_text)} the SAE trains on (e.g. train_tokens: 256000).")
        if self.train_text and self.gpu_budget is not None and self.gpu_budget.train_tokens == "all":
            raise ProfileError("`sae.gpu_budget.train_tokens` is 'all' but the SAE trains on its own text "
                               "(`sae.train_text`), which has no end to take all of; give a number of tokens.")
        if self.lr is not None and (isinstance(self.lr, bool) or not isinstance(self.lr, (int, float))
                                    or not 0 < self.lr < 1):
            raise ProfileError(f"`sae.lr` must be a learning rate in (0, 1) or null (the width's default); "
                               f"got {self.lr!r}.")

    def hook_for(self, layer: int) -> str:
        """The hook name of ``layer`` (the ``hook`` template filled in)."""
        return self.hook.format(layer=int(layer))

    def id_for(self, layer: int) -> str:
        """The SAE id of ``layer`` (the ``sae_id`` template filled in)."""
        return self.sae_id.format(layer=int(layer))


@dataclass(frozen=True)
class SaeTrainingPlan:
    """Where a saesim-trained SAE trains and on how much: the answer of :func:`sae_training_plan`.

    Attributes
    ----------
    device : {"cpu", "cuda"}
        The torch device of training.
    train_tokens : int or None
        Cap on the training tokens (the first N kept tokens); None: every kept token.
    epochs : int
        Passes over them.
    budget_field : str
        The profile field the budget came from, for messages: ``"sae"`` (``sae.train_tokens``,
        ``sae.epochs``) or ``"sae.gpu_budget"``.
    """

    device: Literal["cpu", "cuda"]
    train_tokens: int | None
    epochs: int
    budget_field: str = "sae"


def sae_training_plan(sae: SaeSpec, *, cuda_available: bool, profile_device: Device = "auto") -> SaeTrainingPlan:
    """Decide where an SAE trains and its budget (tokens, epochs), from its settings and whether CUDA is present.

    The device: ``sae.device`` ``"cpu"`` or ``"cuda"`` as given; ``"auto"``
    is CUDA when ``cuda_available``, except that a profile pinned to the
    CPU (``profile_device="cpu"``, e.g. ``tiny``) trains there too. The
    budget: ``sae.gpu_budget`` on CUDA when it is set (a None field of it
    keeps the CPU's value), else ``sae.train_tokens`` and ``sae.epochs``.

    Only the budget enters the SAE's cache key
    (:func:`saesim.extract._extract_keys.training_key`), not the device: the
    same budget on the CPU and on a GPU is the same recipe (init drawn on the
    CPU, same batch order), so a cached SAE is reused whichever device made
    it. The weights are not bit-identical across devices: float reductions
    run in another order, and sparsify's forward runs under bf16 autocast on
    GPUs that support it.

    Parameters
    ----------
    sae : SaeSpec
    cuda_available : bool
        Whether torch sees a CUDA device (:func:`torch_sees_cuda`); a
        parameter so the rule is tested without a GPU.
    profile_device : {"auto", "cpu", "cuda", "mps"}, default "auto"
        The profile's ``device`` (of the forward passes).

    Returns
    -------
    SaeTrainingPlan

    Raises
    ------
    ProfileError
        ``sae.device`` is ``"cuda"`` but ``cuda_available`` is False.

    Examples
    --------
    >>> sae = SaeSpec(source="train", num_latents=64, k=4, epochs=2, gpu_budget=SaeBudget(epochs=8))
    >>> sae_training_plan(sae, cuda_available=False)
    SaeTrainingPlan(device='cpu', train_tokens=None, epochs=2, budget_field='sae')
    >>> sae_training_plan(sae, cuda_available=True).epochs
    8
    """
    if sae.device == "cuda" and not cuda_available:
        raise ProfileError(
            "`sae.device` is 'cuda' but torch sees no CUDA device; set sae.device to 'auto' (the GPU when "
            "present, else the CPU) or 'cpu' (e.g. --set model_a.sae.device=auto), or install a CUDA build "
            "of torch."
        )
    if sae.device == "auto":
        device = "cuda" if cuda_available and profile_device != "cpu" else "cpu"
    else:
        device = sae.device
    budget = sae.gpu_budget
    if device != "cuda" or budget is None:
        return SaeTrainingPlan(device=device, train_tokens=sae.train_tokens, epochs=sae.epochs)
    tokens = sae.train_tokens if budget.train_tokens is None else budget.train_tokens
    return SaeTrainingPlan(
        device=device, train_tokens=None if tokens == "all" else tokens,
        epochs=sae.epochs if budget.epochs is None else budget.epochs, budget_field="sae.gpu_budget",
    )


def torch_sees_cuda() -> bool:
    """``torch.cuda.is_available()``, torch imported on the first call (for :func:`sae_training_plan`)."""
    import torch

    return bool(torch.cuda.is_available())
