"""Steer a causal language model: add a vector to one block's output and read what the next token does.

With :mod:`~saesim.extract.models` and :mod:`~saesim.extract.capture` this is the only code that runs
a language model. :func:`steering_effects` adds ``alpha * v`` to the output of block L (the
residual stream an SAE of hook ``layers.L`` reads) at **every position** of a batch of prompts and
returns, per vector, scale and prompt,

* the **effect**: the change in the log-probability mass the next-token distribution puts on a set
  of token ids (``plus``), minus the change on a second set (``minus``, for a contrastive pair),
  averaged over the prompt's kept positions;
* the **side effect**: the KL divergence ``KL(p_unsteered || p_steered)`` of the whole next-token
  distribution, averaged over the same positions.

The blocks up to L are run once per prompt batch; every steered forward starts from that cached
output (the blocks before L are swapped for a stand-in that hands the cached tensor on), so a
steered forward costs only the blocks after L and the head. At ``alpha = 0`` the steered logits
equal the unsteered ones bit for bit (tested).

:func:`keyword_token_ids` turns words into a model's own token ids: the id of ``" word"`` (and of
``" Word"``) where the tokenizer writes it as one token, as the word reads inside running text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from saesim.extract.models import ENCODER_FAMILIES, LoadedModel, resolve_device

__all__ = ["SteeringEffects", "greedy_continuation", "keyword_token_ids", "steered_logits", "steering_effects"]


@dataclass(frozen=True)
class SteeringEffects:
    """What adding vectors at one block did to the next-token distributions.

    Attributes
    ----------
    effect : ndarray of float64, shape (n_vectors, n_alphas, n_prompts)
        Mean over kept positions of ``Δ log P(plus) - Δ log P(minus)`` (nats).
    side_effect : ndarray of float64, same shape
        Mean over kept positions of ``KL(p_unsteered || p_steered)`` (nats).
    alphas : ndarray of float64, shape (n_alphas,)
        The scales the (unit) vectors were multiplied by, in residual-stream units.
    base_log_mass : ndarray of float64, shape (n_prompts,)
        Unsteered mean ``log P(plus) - log P(minus)`` per prompt.
    """

    effect: np.ndarray
    side_effect: np.ndarray
    alphas: np.ndarray
    base_log_mass: np.ndarray


def keyword_token_ids(tokenizer, words: Iterable[str]) -> np.ndarray:
    """Token ids of ``" word"`` and ``" Word"`` for every word the tokenizer writes as one token.

    Words split into several tokens are left out (their first piece names other words too).

    Raises
    ------
    ValueError
        No word is a single token.
    """
    ids: set[int] = set()
    words = list(words)
    for word in words:
        for form in {f" {word}", f" {word[:1].upper()}{word[1:]}"}:
            pieces = tokenizer.encode(form, add_special_tokens=False)
            if len(pieces) == 1:
                ids.add(int(pieces[0]))
    if not ids:
        raise ValueError(f"none of the words {words[:8]}{' ...' if len(words) > 8 else ''} is one token of "
                         f"{type(tokenizer).__name__}; choose other words.")
    return np.array(sorted(ids), dtype=np.int64)


class _Handover(torch.nn.Module):
    """Stands in for a block before the steered one: hands on the cached block output (plus the vector)."""

    def __init__(self, value: torch.Tensor | None):
        super().__init__()
        self.value = value

    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states if self.value is None else self.value


def _log_mass(log_probs: torch.Tensor, plus: torch.Tensor, minus: torch.Tensor | None) -> torch.Tensor:
    mass = torch.logsumexp(log_probs[..., plus], dim=-1)
    if minus is not None:
        mass = mass - torch.logsumexp(log_probs[..., minus], dim=-1)
    return mass


def _check_block_output(loaded: LoadedModel, layer: int, ids, mask) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the model once with a hook on block ``layer``: that block's output (a tensor) and the logits."""
    stash = {}

    def hook(module, args, output):
        stash["out"] = output

    handle = loaded.blocks[layer].register_forward_hook(hook)
    try:
        logits = loaded.model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    finally:
        handle.remove()
    out = stash["out"]
    if not isinstance(out, torch.Tensor):
        raise TypeError(
            f"block {layer} of {loaded.name} returns a {type(out).__name__}, not a tensor; steering needs "
            "transformers >= 5 (blocks that return their hidden states)."
        )
    return out, logits


def steering_effects(
    loaded: LoadedModel,
    ids: np.ndarray,
    mask: np.ndarray,
    keep: np.ndarray,
    layer: int,
    vectors: np.ndarray,
    alphas: Sequence[float],
    plus: np.ndarray,
    minus: np.ndarray | None = None,
    *,
    batch_size: int = 16,
    device: str | None = "cpu",
) -> SteeringEffects:
    """Add ``alpha * v`` to block ``layer``'s output for every vector and scale; measure the next token.

    Parameters
    ----------
    loaded : LoadedModel
        A causal language model.
    ids, mask : ndarray of int, shape (n_prompts, S)
        Prompt token ids and attention mask (the model's own tokenisation).
    keep : ndarray of bool, shape (n_prompts, S)
        Positions whose next-token distribution is measured (real, non-special tokens).
    layer : int
        Block whose output is steered (hook ``layers.L``).
    vectors : ndarray, shape (n_vectors, d_model)
        Steering directions (used as given; normalise them first for norm-matched scales).
    alphas : sequence of float
        Scales; ``0`` gives the unsteered distribution (effect and side effect 0).
    plus, minus : ndarray of int
        Token ids whose log-probability mass is read (``minus`` optional).
    batch_size : int, default 16
        Prompts per forward.
    device : str, default "cpu"

    Returns
    -------
    SteeringEffects
    """
    if loaded.spec.family in ENCODER_FAMILIES:
        raise ValueError(f"{loaded.name} is a bidirectional encoder; steering reads next-token predictions of a "
                         "causal language model.")
    if not 0 <= layer < loaded.n_layers:
        raise ValueError(f"`layer` {layer} is outside {loaded.name}'s blocks 0..{loaded.n_layers - 1}.")
    vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    if vectors.shape[1] != loaded.d_model:
        raise ValueError(f"`vectors` have {vectors.shape[1]} dimensions but {loaded.name}'s residual stream has "
                         f"{loaded.d_model}.")
    alphas = np.asarray(list(alphas), dtype=np.float64)
    ids, mask = np.array(ids, dtype=np.int64), np.array(mask, dtype=np.int64)
    keep = np.array(keep, dtype=bool)
    device = resolve_device(device)
    model = loaded.model.to(device)
    plus_t = torch.as_tensor(np.asarray(plus, dtype=np.int64), device=device)
    minus_t = None if minus is None else torch.as_tensor(np.asarray(minus, dtype=np.int64), device=device)
    n_prompts = ids.shape[0]
    effect = np.zeros((len(vectors), alphas.size, n_prompts))
    side = np.zeros_like(effect)
    base_mass = np.zeros(n_prompts)
    vec_t = torch.as_tensor(vectors, device=device)
    blocks = loaded.blocks
    originals = [blocks[i] for i in range(layer + 1)]
    with torch.inference_mode():
        for start in range(0, n_prompts, batch_size):
            sl = slice(start, start + batch_size)
            ids_t = torch.as_tensor(ids[sl], device=device)
            mask_t = torch.as_tensor(mask[sl], device=device)
            keep_t = torch.as_tensor(keep[sl], device=device)
            counts = keep_t.sum(dim=1).clamp(min=1)
            cached, logits = _check_block_output(loaded, layer, ids_t, mask_t)
            base = torch.log_softmax(logits.float(), dim=-1)
            base_p = base.exp()
            base_m = _log_mass(base, plus_t, minus_t)
            base_mass[sl] = ((base_m * keep_t).sum(dim=1) / counts).double().cpu().numpy()
            stand_ins = [_Handover(None) for _ in range(layer)] + [_Handover(cached)]
            try:
                for i, stand_in in enumerate(stand_ins):
                    blocks[i] = stand_in
                for v, vector in enumerate(vec_t):
                    for a, alpha in enumerate(alphas):
                        if alpha == 0.0:
                            continue
                        stand_ins[-1].value = cached + float(alpha) * vector.to(cached.dtype)
                        out = model(input_ids=ids_t, attention_mask=mask_t, use_cache=False).logits
                        steered = torch.log_softmax(out.float(), dim=-1)
                        kl = (base_p * (base - steered)).sum(dim=-1)
                        delta = _log_mass(steered, plus_t, minus_t) - base_m
                        effect[v, a, sl] = ((delta * keep_t).sum(dim=1) / counts).double().cpu().numpy()
                        side[v, a, sl] = ((kl * keep_t).sum(dim=1) / counts).double().cpu().numpy()
            finally:
                for i, block in enumerate(originals):
                    blocks[i] = block
    return SteeringEffects(effect=effect, side_effect=side, alphas=alphas, base_log_mass=base_mass)


def steered_logits(loaded: LoadedModel, ids: np.ndarray, mask: np.ndarray, layer: int, vector=None,
                   alpha: float = 0.0, *, device: str | None = "cpu") -> np.ndarray:
    """Logits of one batch with ``alpha * vector`` added to block ``layer``'s output by a forward hook.

    The plain-hook reference of :func:`steering_effects` (which skips the blocks before the
    steered one); with ``alpha = 0`` or no vector the hook returns the block's output untouched.
    """
    device = resolve_device(device)
    model = loaded.model.to(device)
    add = None if vector is None or alpha == 0 else float(alpha) * torch.as_tensor(
        np.asarray(vector, dtype=np.float32), device=device)

    def hook(module, args, output):
        return output if add is None else output + add.to(output.dtype)

    handle = loaded.blocks[layer].register_forward_hook(hook)
    try:
        with torch.inference_mode():
            out = model(input_ids=torch.as_tensor(ids, device=device),
                        attention_mask=torch.as_tensor(mask, device=device), use_cache=False).logits
    finally:
        handle.remove()
    return out.float().cpu().numpy()


def greedy_continuation(loaded: LoadedModel, prompt_ids: Sequence[int], layer: int, vector=None,
                        alpha: float = 0.0, *, n_new: int = 12, device: str | None = "cpu") -> str:
    """Greedy continuation of one prompt with ``alpha * vector`` added at block ``layer`` (every position).

    An illustration only: one prompt, one draw.
    """
    ids = list(int(i) for i in prompt_ids)
    start = len(ids)
    for _ in range(int(n_new)):
        arr = np.asarray([ids], dtype=np.int64)
        logits = steered_logits(loaded, arr, np.ones_like(arr), layer, vector, alpha, device=device)
        ids.append(int(np.argmax(logits[0, -1])))
    return loaded.tokenizer.decode(ids[start:], skip_special_tokens=True)
