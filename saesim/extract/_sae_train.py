"""Train a sparsify TopK SAE on cached activations with a plain, seeded torch loop.

:class:`TopKTrainConfig` holds one training recipe (a frozen dataclass, one
docstring per field, as sparsify's ``TrainConfig``); :class:`TopKTrainer`
fits it scikit-learn style (``TopKTrainer(config).fit(acts).weights_``), and
:func:`train_topk_sae` is the functional form the pipeline calls. The public
names are re-exported by :mod:`saesim.extract.saes`.

References
----------
Gao et al., "Scaling and evaluating sparse autoencoders", arXiv:2406.04093
(2024) — TopK SAEs, AuxK loss.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np

from saesim.extract._sae_encode import DEFAULT_BATCH, encode, progress_bar, validate_acts
from saesim.extract._sae_formats import import_sparsify, weights_from_sparsify
from saesim.extract._sae_quality import code_stats
from saesim.extract._sae_weights import SaeWeights
from saesim.validation import SeedLike, as_generator, check_positive_int

__all__ = ["DEFAULT_AUXK_ALPHA", "TopKTrainConfig", "TopKTrainer", "TrainedSae", "default_lr", "train_topk_sae"]

# The public module's name, so that logging configured for it keeps applying.
logger = logging.getLogger("saesim.extract.saes")

DEFAULT_AUXK_ALPHA = 1 / 32
"""Weight of the AuxK loss for dead latents (Gao et al. 2024)."""


@dataclass(frozen=True)
class TrainedSae:
    """A TopK SAE trained by :func:`train_topk_sae`, with its quality on the training activations.

    Attributes
    ----------
    weights : SaeWeights
    fvu : float
        FVU of the final SAE on all training activations.
    dead_fraction : float
        Fraction of latents that never fire on the training activations.
    mean_l0 : float
        Mean active latents per token (k, less where fewer than k are positive).
    seconds : float
        Wall-clock training time (final evaluation included).
    n_tokens : int
    epochs, seed : int
    lr : float
    optimizer : str
    history : tuple of float
        Mean training FVU of each epoch.
    device : str
        The torch device it trained on.
    """

    weights: SaeWeights
    fvu: float
    dead_fraction: float
    mean_l0: float
    seconds: float
    n_tokens: int
    epochs: int
    seed: int
    lr: float
    optimizer: str = "signum"
    history: tuple[float, ...] = ()
    device: str = "cpu"

    def summary(self) -> dict:
        """One tidy-table row."""
        return {
            "hook": self.weights.hook,
            "n_latents": self.weights.n_latents,
            "k": self.weights.k,
            "n_tokens": self.n_tokens,
            "epochs": self.epochs,
            "seed": self.seed,
            "lr": self.lr,
            "optimizer": self.optimizer,
            "fvu": self.fvu,
            "dead_fraction": self.dead_fraction,
            "mean_l0": self.mean_l0,
            "seconds": self.seconds,
            "device": self.device,
        }


def _int_seed(seed: SeedLike) -> int:
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return int(seed)
    return int(as_generator(seed).integers(0, 2**63 - 1))


def default_lr(num_latents: int, optimizer: Literal["signum", "adam"] = "signum") -> float:
    """sparsify's learning-rate rule for ``num_latents`` latents.

    ``"signum"``: ``5e-3 / sqrt(n / 2**14)`` (sparsify's default optimizer);
    ``"adam"``: ``2e-4 / sqrt(n / 2**14)``, doubled for short runs.
    """
    base = 5e-3 if optimizer == "signum" else 2 * 2e-4
    return base / math.sqrt(num_latents / 2**14)


@dataclass(frozen=True, kw_only=True)
class TopKTrainConfig:
    """One TopK SAE training recipe: sparsify's, run as a plain seeded torch loop.

    A frozen settings object in the style of sparsify's ``TrainConfig``; it is
    fitted by :class:`TopKTrainer`. ``num_latents``, ``k``, ``epochs`` and
    ``seed`` have no default. The values are checked when
    :meth:`TopKTrainer.fit` runs, together with the activations (so
    :func:`train_topk_sae` reports the first bad input exactly as it always
    has).

    Examples
    --------
    >>> cfg = TopKTrainConfig(num_latents=128, k=8, epochs=2, seed=0, num_threads=1)
    >>> cfg.optimizer, cfg.batch_size, cfg.lr is None
    ('signum', 4096, True)
    """

    num_latents: int
    """Dictionary size: the number of latents."""

    k: int
    """Active latents per token (at most ``num_latents``)."""

    epochs: int
    """Passes over the training activations."""

    batch_size: int = DEFAULT_BATCH
    """Tokens per step (capped at the number of training tokens)."""

    optimizer: Literal["signum", "adam"] = "signum"
    """``"signum"``: sparsify's default, schedule-free SignSGD with momentum 0.95 (best in few
    steps: one epoch of 168k MiniLM tokens reaches the FVU that Adam needs three epochs for).
    ``"adam"``: Adam with a linear decay to 0 over the last 20 % of steps."""

    lr: float | None = None
    """Learning rate; None: :func:`default_lr` for ``num_latents`` and ``optimizer``."""

    auxk_alpha: float = DEFAULT_AUXK_ALPHA
    """Weight of sparsify's AuxK loss, which lets latents that have not fired for ``dead_tokens``
    tokens predict the residual. 0 disables it."""

    dead_tokens: int | None = None
    """Tokens without firing after which a latent counts as dead; None:
    ``min(n_tokens // 4, 10_000_000)``, at least one batch."""

    seed: SeedLike
    """Seeds the initialisation and the batch order (an int, a ``numpy.random.Generator``, from
    which one int is drawn per fit, or None). The torch RNG is forked, so the global torch
    state is untouched. Same seed, same data, same thread count -> identical weights on CPU."""

    num_threads: int | None = None
    """torch CPU threads during training (restored afterwards); None leaves torch's setting.
    Use 1 for tiny SAEs: their steps are too small to split, and on a busy machine OpenMP's
    spinning threads can make them tens of times slower."""

    device: str = "cpu"
    """torch device of training: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``. The activations are moved
    there once and the weights come back to the CPU. The initialisation and the batch order are
    drawn on the CPU, so one seed gives the same recipe on every device; the weights agree up to
    float rounding (sparsify's forward runs under bf16 autocast on GPUs that support it)."""


_FITTED = ("result_", "weights_", "summary_", "history_")


class TopKTrainer:
    """Fit a sparsify TopK SAE to cached activations (scikit-learn style).

    ``__init__`` only stores its arguments; :meth:`fit` validates them with
    the activations, trains, and sets the fitted attributes (trailing ``_``).
    A second :meth:`fit` replaces the first; no reference to the training
    activations is kept.

    Parameters
    ----------
    config : TopKTrainConfig
        The training recipe.
    hook, sae_id : str, default ""
        Recorded in the fitted weights.
    progress : bool, default True
        Show a ``tqdm`` bar while training.
    evaluate : bool, default True
        Encode the activations once more with the final weights for the
        FVU, dead fraction and mean L0 of :attr:`result_`. A caller that
        encodes these rows anyway (extraction encodes every token) passes
        False and fills them in with :func:`code_stats`; they are NaN until
        then.

    Attributes
    ----------
    result_ : TrainedSae
        The weights with their quality on the training activations.
    weights_ : SaeWeights
        The trained SAE (``source="train"``; decoder rows of unit norm).
    summary_ : dict
        ``result_.summary()``: one tidy-table row.
    history_ : tuple of float
        Mean training FVU of each epoch.

    See Also
    --------
    train_topk_sae : The same, as one function call.

    Examples
    --------
    >>> import numpy as np
    >>> acts = np.random.default_rng(0).normal(size=(256, 16)).astype(np.float32)
    >>> cfg = TopKTrainConfig(num_latents=32, k=4, epochs=1, seed=0, num_threads=1)
    >>> trainer = TopKTrainer(cfg, progress=False).fit(acts)
    >>> trainer.weights_.n_latents, trainer.summary_["k"]
    (32, 4)
    """

    def __init__(
        self,
        config: TopKTrainConfig,
        *,
        hook: str = "",
        sae_id: str = "",
        progress: bool = True,
        evaluate: bool = True,
    ):
        self.config = config
        self.hook = hook
        self.sae_id = sae_id
        self.progress = progress
        self.evaluate = evaluate

    def __getattr__(self, name: str):
        # Only reached when normal lookup fails, i.e. for fitted attributes before `fit`.
        if name in _FITTED:
            raise AttributeError(
                f"This {type(self).__name__} instance is not fitted yet, so it has no `{name}`; "
                "call `fit(acts)` first."
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def fit(self, acts) -> TopKTrainer:
        """Train the SAE on ``acts`` and set the fitted attributes.

        Parameters
        ----------
        acts : ndarray, shape (n_tokens, d_in)
            Training activations (copied once to fp32).

        Returns
        -------
        TopKTrainer
            ``self``, fitted.

        Raises
        ------
        TypeError
            ``config`` is not a :class:`TopKTrainConfig`, or ``acts`` is not
            floating point.
        ValueError
            A setting is out of range (the message names it), ``device`` is
            CUDA but torch sees no GPU, or ``acts`` is not 2-D, has fewer than
            2 rows or non-finite values.
        """
        cfg = self.config
        if not isinstance(cfg, TopKTrainConfig):
            raise TypeError(f"`config` must be a TopKTrainConfig; got {type(cfg).__name__}.")
        num_latents, k, epochs, batch_size = cfg.num_latents, cfg.k, cfg.epochs, cfg.batch_size
        optimizer, lr, dead_tokens = cfg.optimizer, cfg.lr, cfg.dead_tokens
        sparsify = import_sparsify()
        acts = validate_acts(acts, None)
        n_tokens, d_in = acts.shape
        for name, value in (("num_latents", num_latents), ("k", k), ("epochs", epochs), ("batch_size", batch_size)):
            check_positive_int(value, name)
        if k > num_latents:
            raise ValueError(f"`k` ({k}) cannot exceed `num_latents` ({num_latents}).")
        if n_tokens < 2:
            raise ValueError(f"`acts` has {n_tokens} rows; training needs at least 2 tokens.")
        if not np.all(np.isfinite(acts)):
            raise ValueError("`acts` contains NaN or infinite values; check the captured activations.")
        seed_int = _int_seed(cfg.seed)
        batch = min(int(batch_size), n_tokens)
        steps_per_epoch = math.ceil(n_tokens / batch)
        total_steps = steps_per_epoch * int(epochs)
        if optimizer not in ("signum", "adam"):
            raise ValueError(f"`optimizer` must be 'signum' or 'adam'; got {optimizer!r}.")
        lr = default_lr(num_latents, optimizer) if lr is None else float(lr)
        dead_tokens = min(max(n_tokens // 4, batch), 10_000_000) if dead_tokens is None else int(dead_tokens)
        device = _check_device(cfg.device)

        started = time.perf_counter()
        with _torch_threads(cfg.num_threads):
            result = _train_loop(
                acts, sparsify, num_latents=int(num_latents), k=int(k), seed_int=seed_int, epochs=int(epochs),
                batch=batch, optimizer=optimizer, lr=lr, auxk_alpha=float(cfg.auxk_alpha), dead_tokens=dead_tokens,
                total_steps=total_steps, hook=self.hook, sae_id=self.sae_id, progress=self.progress,
                started=started, evaluate=bool(self.evaluate), device=device,
            )
        self.result_ = result
        self.weights_ = result.weights
        self.summary_ = result.summary()
        self.history_ = result.history
        return self


def train_topk_sae(
    acts,
    *,
    num_latents: int,
    k: int,
    seed: SeedLike,
    epochs: int,
    batch_size: int = DEFAULT_BATCH,
    optimizer: Literal["signum", "adam"] = "signum",
    lr: float | None = None,
    auxk_alpha: float = DEFAULT_AUXK_ALPHA,
    dead_tokens: int | None = None,
    hook: str = "",
    sae_id: str = "",
    num_threads: int | None = None,
    progress: bool = True,
    evaluate: bool = True,
    device: str = "cpu",
) -> TrainedSae:
    """Train a sparsify TopK SAE on cached activations with a plain, seeded torch loop.

    Parameters
    ----------
    acts : ndarray, shape (n_tokens, d_in)
        Training activations (copied once to fp32).
    num_latents, k : int
        Dictionary size and active latents per token.
    seed : int, numpy Generator or None
        Seeds the initialisation and the batch order (torch RNG forked, so the
        global torch state is untouched). Same seed, same data, same thread
        count -> identical weights on CPU.
    epochs : int
        Passes over ``acts``.
    batch_size : int, default 4096
        Tokens per step (capped at ``n_tokens``).
    optimizer : {"signum", "adam"}, default "signum"
        ``"signum"``: sparsify's default, schedule-free SignSGD with momentum
        0.95 (best in few steps: one epoch of 168k MiniLM tokens reaches the
        FVU that Adam needs three epochs for). ``"adam"``: Adam with a linear
        decay to 0 over the last 20 % of steps.
    lr : float, optional
        Default :func:`default_lr`.
    auxk_alpha : float, default 1/32
        Weight of sparsify's AuxK loss, which lets latents that have not fired
        for ``dead_tokens`` tokens predict the residual. 0 disables it.
    dead_tokens : int, optional
        Default ``min(n_tokens // 4, 10_000_000)`` (at least one batch).
    hook, sae_id : str
        Recorded in the returned weights.
    num_threads : int, optional
        torch CPU threads during training (restored afterwards); default: leave
        torch's setting. Use 1 for tiny SAEs: their steps are too small to
        split, and on a busy machine OpenMP's spinning threads can make them
        tens of times slower.
    progress : bool, default True
    evaluate : bool, default True
        Encode ``acts`` once more with the final weights for the returned FVU,
        dead fraction and mean L0. A caller that encodes these rows anyway
        (extraction encodes every token) passes False and fills them in with
        :func:`code_stats`; they are NaN until then.
    device : str, default "cpu"
        torch device of training (``"cuda"``, ``"cuda:N"``); the weights come
        back to the CPU. See :attr:`TopKTrainConfig.device`.

    Returns
    -------
    TrainedSae

    Notes
    -----
    sparsify's recipe: ``b_dec`` starts at the mean activation; each step
    computes ``fvu + auxk_alpha * auxk_loss`` from ``Sae.forward(x,
    dead_mask=...)``, back-propagates, removes the gradient component parallel
    to each decoder row, steps the optimizer and renormalises the decoder rows
    to unit norm. With the schedule-free optimizer the averaged weights are
    taken at the end (``optimizer.eval()``, as sparsify's Trainer saves them)
    and the decoder row norms are folded into the encoder, so the saved
    decoder rows have unit norm and reconstructions are unchanged.

    See Also
    --------
    TopKTrainConfig, TopKTrainer : The same recipe as a settings object and a
        scikit-learn style trainer (this function builds both and calls ``fit``).
    """
    config = TopKTrainConfig(
        num_latents=num_latents, k=k, epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
        auxk_alpha=auxk_alpha, dead_tokens=dead_tokens, seed=seed, num_threads=num_threads, device=device,
    )
    trainer = TopKTrainer(config, hook=hook, sae_id=sae_id, progress=progress, evaluate=evaluate)
    return trainer.fit(acts).result_


def _check_device(device) -> str:
    """``device`` as a string if it is the CPU or a CUDA device torch can use; ValueError naming the fix otherwise."""
    import torch

    text = str(device)
    if text == "cpu":
        return text
    if not (text == "cuda" or text.startswith("cuda:")):
        raise ValueError(f"`device` must be 'cpu', 'cuda' or 'cuda:N'; got {device!r}.")
    if not torch.cuda.is_available():
        raise ValueError(f"`device` is {text!r} but torch sees no CUDA device; pass device='cpu'.")
    return text


@contextlib.contextmanager
def _torch_threads(num_threads: int | None):
    import torch

    if num_threads is None:
        yield
        return
    check_positive_int(num_threads, "num_threads", fix="Pass None to leave torch's thread count alone.")
    before = torch.get_num_threads()
    torch.set_num_threads(int(num_threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train_loop(
    acts, sparsify, *, num_latents, k, seed_int, epochs, batch, optimizer, lr, auxk_alpha, dead_tokens,
    total_steps, hook, sae_id, progress, started, evaluate, device="cpu",
) -> TrainedSae:
    import torch

    n_tokens, d_in = acts.shape
    decay_from = 0.8
    dev = torch.device(device)
    x_all = torch.from_numpy(np.ascontiguousarray(acts, dtype=np.float32))
    history = []
    # manual_seed also seeds every CUDA device: fork their states too, so the caller's are untouched
    forked = list(range(torch.cuda.device_count())) if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=forked):
        torch.manual_seed(seed_int)
        generator = torch.Generator().manual_seed(seed_int)
        # Initialised on the CPU whatever the device, so one seed draws the same SAE everywhere.
        sae = sparsify.Sae(d_in, sparsify.SaeConfig(num_latents=int(num_latents), k=int(k)), device="cpu")
        with torch.no_grad():
            sae.b_dec.copy_(x_all.mean(dim=0))
        if dev.type != "cpu":
            sae = sae.to(dev)
            x_all = x_all.to(dev)  # once: n_tokens x d_in floats on the GPU
        if optimizer == "signum":
            from schedulefree import ScheduleFreeWrapper
            from sparsify.sign_sgd import SignSGD

            opt = ScheduleFreeWrapper(SignSGD(sae.parameters(), lr=lr), momentum=0.95)
            opt.train()
        else:
            opt = torch.optim.Adam(sae.parameters(), lr=lr)
        since_fired = torch.zeros(int(num_latents), dtype=torch.long, device=dev)
        step = 0
        bar = progress_bar(total_steps * batch, f"train SAE {hook or sae_id}", progress)
        with bar:
            for _ in range(int(epochs)):
                order = torch.randperm(n_tokens, generator=generator).to(dev)  # drawn on the CPU
                fvu_sum = 0.0
                for start in range(0, n_tokens, batch):
                    x = x_all[order[start : start + batch]]
                    dead = since_fired > dead_tokens if auxk_alpha > 0 else None
                    out = sae(x, dead_mask=dead)
                    loss = out.fvu + auxk_alpha * out.auxk_loss if auxk_alpha > 0 else out.fvu
                    loss.backward()
                    sae.remove_gradient_parallel_to_decoder_directions()
                    if optimizer == "adam":
                        frac = step / total_steps
                        scale = 1.0 if frac < decay_from else max(0.0, (1.0 - frac) / (1.0 - decay_from))
                        for group in opt.param_groups:
                            group["lr"] = lr * scale
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                    sae.set_decoder_norm_to_unit_norm()
                    with torch.no_grad():
                        fired = torch.zeros(int(num_latents), dtype=torch.bool, device=dev)
                        fired[out.latent_indices.flatten()] = True
                        since_fired += x.shape[0]
                        since_fired[fired] = 0
                    fvu_sum += float(out.fvu.detach()) * x.shape[0]
                    step += 1
                    bar.update(x.shape[0])
                history.append(fvu_sum / n_tokens)
        if optimizer == "signum":
            opt.eval()  # the schedule-free average
        with torch.no_grad():  # unit-norm decoder rows, same reconstructions
            norms = sae.W_dec.norm(dim=1).clamp_min(torch.finfo(sae.W_dec.dtype).tiny)
            sae.W_dec.div_(norms[:, None])
            sae.encoder.weight.mul_(norms[:, None])
            sae.encoder.bias.mul_(norms)
    sae = sae.to("cpu")
    weights = weights_from_sparsify(sae, hook=hook or sae_id, sae_id=sae_id, source="train")
    nan = float("nan")
    stats = code_stats(weights, acts, encode(weights, acts, progress=False)) if evaluate else \
        {"fvu": nan, "dead_fraction": nan, "mean_l0": nan}
    seconds = time.perf_counter() - started
    result = TrainedSae(
        weights=weights,
        **stats,
        seconds=float(seconds),
        n_tokens=int(n_tokens),
        epochs=int(epochs),
        seed=seed_int,
        lr=lr,
        optimizer=optimizer,
        history=tuple(float(h) for h in history),
        device=str(dev),
    )
    logger.info(
        "trained TopK SAE %s on %s: %d tokens, %d latents, k=%d, FVU %.3f, dead %.1f%%, %.1fs",
        hook or sae_id, dev, n_tokens, num_latents, k, result.fvu, 100 * result.dead_fraction, seconds,
    )
    return result
