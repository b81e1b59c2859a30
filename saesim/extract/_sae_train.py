"""Train a sparsify TopK SAE on cached activations with a plain, seeded torch loop.

:class:`TopKTrainConfig` holds one training recipe (a frozen dataclass, one
docstring per field, as sparsify's ``TrainConfig``); :class:`TopKTrainer`
fits it scikit-learn style (``TopKTrainer(config).fit(acts).weights_``), and
:func:`train_topk_sae` is the functional form the pipeline calls. The public
names are re-exported by :mod:`saesim.extract.saes`.

Two trainers run the same recipe: ``"reference"`` calls sparsify's
``Sae.forward`` and autograd; ``"sparse"`` computes the same loss and
gradients by hand, touching only the k active latents of each token past the
dense encoder product, and steps the schedule-free optimizer without its byte
swaps (see :func:`_sparse_backward`). On 2 busy AVX2 cores it trains the
offline profile's 640 x 4 096 and 576 x 4 096 SAEs about 2x faster (1.6x
where many latents are dead) with the same held-out FVU
(``benchmarks/results/sae_train.json``).

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

__all__ = ["DEFAULT_AUXK_ALPHA", "TRAINERS", "TopKTrainConfig", "TopKTrainer", "TrainedSae", "default_lr",
           "train_topk_sae"]

# The public module's name, so that logging configured for it keeps applying.
logger = logging.getLogger("saesim.extract.saes")

DEFAULT_AUXK_ALPHA = 1 / 32
"""Weight of the AuxK loss for dead latents (Gao et al. 2024)."""

TRAINERS = ("reference", "sparse")
"""The two implementations of the recipe (:attr:`TopKTrainConfig.trainer`)."""


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
    trainer : {"reference", "sparse"}
        Which implementation trained it (:attr:`TopKTrainConfig.trainer`).
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
    trainer: str = "reference"

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
            "trainer": self.trainer,
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
    >>> cfg.optimizer, cfg.batch_size, cfg.lr is None, cfg.trainer
    ('signum', 4096, True, 'reference')
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

    trainer: Literal["reference", "sparse"] = "reference"
    """``"reference"``: sparsify's ``Sae.forward`` and autograd. ``"sparse"``: the same loss and
    gradients computed by hand (gradients of the decoder and encoder rows summed per active
    latent, no dense gradient of the pre-activations, no token x k x d products; the AuxK top-k
    over the dead latents only; the schedule-free step without byte swaps), about 2x faster on 2
    CPU cores and ~40 % less peak memory. Same initialisation, batch order and optimizer arithmetic; the gradients differ
    from autograd's by float summation order only (~1e-7 relative). With SignSGD a run stays
    bit-identical to the reference until the sign of some near-zero gradient element flips;
    from then on the two drift apart as two reference runs on inputs one ulp apart (or on
    another thread count) do: the same held-out FVU (within 3e-4 on the offline shapes), not
    the same bits (decoder rows of equal index at mean cosine 0.90, against 0.85 for the
    reference on inputs one ulp apart, after the offline recipe's 125 steps on Gemma). Deterministic for a seed and thread count. fp32 on every device (no bf16
    autocast)."""


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
        if cfg.trainer not in TRAINERS:
            raise ValueError(f"`trainer` must be 'reference' or 'sparse'; got {cfg.trainer!r}.")
        lr = default_lr(num_latents, optimizer) if lr is None else float(lr)
        dead_tokens = min(max(n_tokens // 4, batch), 10_000_000) if dead_tokens is None else int(dead_tokens)
        device = _check_device(cfg.device)

        started = time.perf_counter()
        with _torch_threads(cfg.num_threads):
            result = _train_loop(
                acts, sparsify, num_latents=int(num_latents), k=int(k), seed_int=seed_int, epochs=int(epochs),
                batch=batch, optimizer=optimizer, lr=lr, auxk_alpha=float(cfg.auxk_alpha), dead_tokens=dead_tokens,
                total_steps=total_steps, hook=self.hook, sae_id=self.sae_id, progress=self.progress,
                started=started, evaluate=bool(self.evaluate), device=device, trainer=cfg.trainer,
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
    trainer: Literal["reference", "sparse"] = "reference",
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
    trainer : {"reference", "sparse"}, default "reference"
        ``"sparse"``: the same recipe with hand-written sparse gradients,
        about 2x faster on 2 CPU cores, the same held-out FVU; the weights
        agree with the reference's about as closely as the reference's own
        do across thread counts. See :attr:`TopKTrainConfig.trainer`.

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
        trainer=trainer,
    )
    estimator = TopKTrainer(config, hook=hook, sae_id=sae_id, progress=progress, evaluate=evaluate)
    return estimator.fit(acts).result_


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
    total_steps, hook, sae_id, progress, started, evaluate, device="cpu", trainer="reference",
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
        sparse = trainer == "sparse"
        if optimizer == "signum" and sparse:
            opt = _ScheduleFreeSignSGD(list(sae.parameters()), lr=lr, momentum=0.95)
        elif optimizer == "signum":
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
                    if sparse:
                        fvu, indices = _sparse_backward(sae, x, int(k), dead, auxk_alpha)
                    else:
                        out = sae(x, dead_mask=dead)
                        loss = out.fvu + auxk_alpha * out.auxk_loss if auxk_alpha > 0 else out.fvu
                        loss.backward()
                        fvu, indices = out.fvu.detach(), out.latent_indices
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
                        fired[indices.flatten()] = True
                        since_fired += x.shape[0]
                        since_fired[fired] = 0
                    fvu_sum += float(fvu) * x.shape[0]
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
        trainer=str(trainer),
    )
    logger.info(
        "trained TopK SAE %s on %s (%s trainer): %d tokens, %d latents, k=%d, FVU %.3f, dead %.1f%%, %.1fs",
        hook or sae_id, dev, trainer, n_tokens, num_latents, k, result.fvu, 100 * result.dead_fraction, seconds,
    )
    return result


class _ScheduleFreeSignSGD:
    """sparsify's optimizer, ``ScheduleFreeWrapper(SignSGD(params, lr), momentum)``, without its byte swaps.

    The wrapper swaps the ``x`` and ``z`` buffers bit by bit (three XOR passes, twice a step)
    so that the base optimizer steps ``z`` in place; this runs the same float operations on
    ``z`` directly, so every parameter gets the wrapper's bits (tested). Starts in train mode.
    """

    def __init__(self, params, *, lr: float, momentum: float):
        self.params, self.lr, self.momentum = params, float(lr), float(momentum)
        self.z = None  # created at the first step, as the wrapper does
        self.weight_sum, self.lr_max = 0.0, 0.0
        self.param_groups = [{"lr": self.lr}]  # read only

    def step(self):
        import torch

        with torch.no_grad():
            if self.z is None:
                self.z = [torch.clone(p, memory_format=torch.preserve_format) for p in self.params]
            for p, z in zip(self.params, self.z):
                p.lerp_(end=z, weight=1 - 1 / self.momentum)  # y -> x
                z.add_(torch.sign(p.grad, out=p.grad), alpha=-self.lr)  # SignSGD's step on z (grad spent)
            self.lr_max = max(self.lr, self.lr_max)  # the wrapper's weights (r = 0, weight_lr_power = 2)
            weight = self.lr_max**2
            self.weight_sum += weight
            ckp1 = weight / self.weight_sum
            for p, z in zip(self.params, self.z):
                p.lerp_(end=z, weight=ckp1)  # update x
                p.lerp_(end=z, weight=1 - self.momentum)  # x -> y

    def zero_grad(self, set_to_none: bool = True):
        for p in self.params:
            p.grad = None

    def eval(self):
        import torch

        with torch.no_grad():
            for p, z in zip(self.params, self.z or ()):
                p.lerp_(end=z, weight=1 - 1 / self.momentum)  # y -> x, the schedule-free average


_AUX_DENSE_FROM = 0.2
"""Density (positive AuxK codes / (tokens x dead latents)) from which the AuxK reconstruction and its
decoder gradient are dense matrix products rather than bags (the measured crossover: 1 024 tokens, d = 640, one AVX2 core)."""


def _bag_sum(latents, weights, rows, row_of, num_latents: int):
    """``out[j] = sum of weights[e] * rows[row_of[e]]`` over the entries ``e`` with ``latents[e] == j``.

    A sparse ``G.T @ rows`` (G: tokens x latents, nnz = entries) as one ``embedding_bag`` over
    the entries sorted by latent: no entries x d intermediate, a fixed summation order.
    """
    import torch
    import torch.nn.functional as F

    if latents.device.type == "cpu" and num_latents <= 2**16:  # numpy's radix sort, ~100x torch's int64 sort
        order = torch.from_numpy(np.argsort(latents.numpy().astype(np.uint16), kind="stable"))
    else:  # torch sorts int32 ~15x faster than int64 on the CPU
        order = torch.argsort(latents.to(torch.int32), stable=True)
    counts = torch.bincount(latents, minlength=num_latents)
    offsets = counts.cumsum(0) - counts
    return F.embedding_bag(row_of[order], rows, offsets, mode="sum", per_sample_weights=weights[order])


def _sparse_backward(sae, x, k: int, dead, auxk_alpha: float):
    """sparsify's TopK loss ``fvu + auxk_alpha * auxk_loss`` and its gradients, set as the parameters' ``.grad``.

    The forward is ``Sae.forward``'s (``relu((x - b_dec) @ W_enc.T + b_enc)``, top-k, decode with
    ``embedding_bag``, AuxK on the top ``d // 2`` dead latents scaled by ``min(n_dead / (d // 2),
    1)``) and the gradients are those autograd gives it, including sparsify's choices: the
    top-k values pass their gradient to the encoder without a ReLU mask (``FusedEncoder``) and
    the AuxK loss trains the decoder only (``FusedEncoder`` drops the pre-activations'
    gradient). Past the dense encoder product every operation touches the ``k`` active latents
    of a token only. Returns ``(fvu, latent_indices)``, both detached.
    """
    import torch
    import torch.nn.functional as F

    W_enc, b_enc, W_dec, b_dec = sae.encoder.weight, sae.encoder.bias, sae.W_dec, sae.b_dec
    n_rows, d_in = x.shape
    num_latents = W_enc.shape[0]
    with torch.no_grad():
        xc = x - b_dec
        pre = torch.addmm(b_enc, xc, W_enc.T).clamp_min_(0)  # F.linear + relu, in place
        values, indices = pre.topk(k, sorted=False)
    # Decode with autograd on the values only: the per-sample-weight gradient kernel of
    # embedding_bag is the cheapest <W_dec[idx], g> there is (no tokens x k x d gather).
    leaf = values.detach().requires_grad_(True)
    with torch.enable_grad():
        recon = F.embedding_bag(indices, W_dec.detach(), per_sample_weights=leaf, mode="sum")
    with torch.no_grad():
        e = x - (recon.detach() + b_dec)
        total_variance = (x - x.mean(0)).pow(2).sum()
        fvu = e.pow(2).sum() / total_variance
        g = e.mul(-2.0 / total_variance)  # d fvu / d reconstruction
    (grad_values,) = torch.autograd.grad(recon, leaf, g)
    with torch.no_grad():
        flat = indices.flatten()
        token_of = torch.arange(n_rows, device=x.device).repeat_interleave(k)
        dec_latents, dec_weights, dec_token, dec_rows = flat, values.flatten(), token_of, g
        n_dead = int(dead.sum()) if dead is not None else 0
        dense_aux = None
        if n_dead > 0:
            k_aux = d_in // 2
            scale = min(n_dead / k_aux, 1.0)
            dead_latents = dead.nonzero().flatten()
            aux = pre.index_select(1, dead_latents)  # tokens x dead; ReLU'd, so >= 0
            positive = aux > 0
            if n_dead > k_aux:  # keep the top k_aux of the rows with more positive codes than that
                over = (positive.sum(1) > k_aux).nonzero().flatten()
                if len(over):
                    top, pos = aux[over].topk(k_aux, sorted=False)
                    aux[over] = torch.zeros_like(aux[over]).scatter_(1, pos, top)
                    positive[over] = aux[over] > 0
            # Zero codes add nothing: the kept codes are the top k_aux dead codes of each token,
            # up to zeros. Few of them (dead latents rarely fire): bags of them, as the decoder's.
            # Many (e.g. Gemma's layer 0: ~40 % dead, hundreds positive per token): dense products.
            n_positive = int(positive.sum())
            g_scale = 2.0 * auxk_alpha * scale / total_variance
            if n_positive >= _AUX_DENSE_FROM * n_rows * n_dead:
                e_hat = aux @ W_dec.index_select(0, dead_latents)
                g_aux = (e_hat - e).mul_(g_scale)
                dense_aux = (dead_latents, aux.T @ g_aux)
            else:
                token, column = positive.nonzero(as_tuple=True)  # grouped by token
                aux_latents, aux_weights = dead_latents[column], aux[token, column]
                per_token = torch.bincount(token, minlength=n_rows)
                e_hat = F.embedding_bag(aux_latents, W_dec, per_token.cumsum(0) - per_token, mode="sum",
                                        per_sample_weights=aux_weights)
                g_aux = (e_hat - e).mul_(g_scale)
                dec_latents = torch.cat([flat, aux_latents])
                dec_weights = torch.cat([dec_weights, aux_weights])
                dec_token = torch.cat([token_of, token + n_rows])
                dec_rows = torch.cat([g, g_aux])
        del pre
        W_dec.grad = _bag_sum(dec_latents, dec_weights, dec_rows, dec_token, num_latents)
        if dense_aux is not None:
            W_dec.grad.index_add_(0, *dense_aux)
        W_enc.grad = _bag_sum(flat, grad_values.flatten(), xc, token_of, num_latents)
        b_enc.grad = torch.zeros_like(b_enc).index_add_(0, flat, grad_values.flatten())
        # xc = x - b_dec feeds the encoder: its gradient there is -sum_tokens sum_j gv * W_enc[idx],
        # i.e. -(b_enc's gradient) @ W_enc.
        b_dec.grad = g.sum(0) - b_enc.grad @ W_enc
    return fvu, indices
