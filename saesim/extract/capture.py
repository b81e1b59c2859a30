"""Capture residual streams: resolve each SAE's hook name on a loaded model and record the kept
positions of every hook in one forward per batch (forward hooks, or TransformerLens).

Hook names follow the SAE libraries' conventions (see :mod:`saesim.extract.models` for the list);
the forward stops after the deepest hooked block, and only the grid's kept positions are stored,
as float32, in the grid's row order.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from saesim.errors import HookError
from saesim.extract.data import TokenGrid
from saesim.extract.models import ENCODER_FAMILIES, LoadedModel, resolve_device

__all__ = ["HookPoint", "capture", "hooked_transformer", "output_projection_rows", "raw_neuron_activations",
           "resolve_hook"]

CaptureBackend = Literal["hf_hooks", "transformer_lens"]


class _StopForward(Exception):
    """Raised inside a hook once the deepest requested activation is captured."""


@dataclass(frozen=True)
class HookPoint:
    """Where one hook name reads the model.

    Attributes
    ----------
    name : str
        The hook name as requested.
    module_path : str
        The module whose output (or input) is read.
    kind : {"output", "input"}
        Output of the module (forward hook) or its input (pre-hook).
    block : int or None
        Block index when the module is a block of the residual stream.
    lens_name : str or None
        The TransformerLens name of the same activation, when there is one.
    """

    name: str
    module_path: str
    kind: Literal["output", "input"]
    block: int | None
    lens_name: str | None


_LAYERS = re.compile(r"^layers\.(\d+)$")
_BLOCKS = re.compile(r"^blocks\.(\d+)\.(hook_resid_post|hook_resid_pre)$")
_LENS_ANY = re.compile(r"^blocks\.(\d+)\.")


def resolve_hook(loaded: LoadedModel, hook: str, *, compat: bool = False) -> HookPoint:
    """Resolve a hook name on ``loaded`` (see the module notes for the conventions).

    Parameters
    ----------
    loaded : LoadedModel
    hook : str
        ``layers.L``, ``blocks.L.hook_resid_post``, ``blocks.L.hook_resid_pre``
        or a module path (relative to the model or to ``model.base_model``).
    compat : bool, default False
        Read a block's *input* where its output is named (the authors'
        ``hidden_states[L]``). Hooks that are not block outputs are unchanged.

    Raises
    ------
    HookError
        The name does not resolve, or the layer is out of range.
    """
    n = loaded.n_layers
    block: int | None = None
    kind: Literal["output", "input"] = "output"
    match = _LAYERS.match(hook) or _BLOCKS.match(hook)
    if match:
        block = int(match.group(1))
        if block >= n:
            raise HookError(
                f"hook `{hook}` asks for block {block} but {loaded.name} has {n} blocks (0..{n - 1}); "
                "check the profile's layers."
            )
        if hook.endswith("hook_resid_pre"):
            kind = "input"
        module_path = f"{loaded.blocks_path}.{block}"
    elif _LENS_ANY.match(hook):
        raise HookError(
            f"hook `{hook}` is a TransformerLens name other than hook_resid_post/hook_resid_pre; the hf_hooks "
            "backend reads block outputs and module paths only. Use backend='transformer_lens' (causal models) "
            "or a module path."
        )
    else:
        module_path = _module_path(loaded, hook)
        block = _block_index(loaded, module_path)
    if compat and kind == "output" and block is not None:
        kind = "input"
    if block is not None:
        lens = f"blocks.{block}.hook_resid_{'post' if kind == 'output' else 'pre'}"
    else:
        lens = hook if _LENS_ANY.match(hook) else None
    return HookPoint(name=hook, module_path=module_path, kind=kind, block=block, lens_name=lens)


def _module_path(loaded: LoadedModel, hook: str) -> str:
    model = loaded.model
    base = model.base_model
    base_prefix = next((name for name, m in model.named_modules() if m is base), "")
    candidates = [hook]
    if base_prefix:
        candidates.append(f"{base_prefix}.{hook}")
    for path in candidates:
        try:
            model.get_submodule(path)
            return path
        except AttributeError:
            continue
    raise HookError(
        f"hook `{hook}` does not resolve on {loaded.name}; use `layers.L` (output of block L), "
        f"`blocks.L.hook_resid_post`, or a module path such as `{loaded.blocks_path}.0` "
        f"(blocks 0..{loaded.n_layers - 1})."
    )


def _block_index(loaded: LoadedModel, module_path: str) -> int | None:
    prefix = loaded.blocks_path + "."
    if module_path.startswith(prefix) and module_path[len(prefix):].isdigit():
        return int(module_path[len(prefix):])
    return None


# --------------------------------------------------------------------------- capture


def capture(
    loaded: LoadedModel,
    grid: TokenGrid,
    hooks,
    *,
    batch_size: int | None = None,
    device: str | None = "auto",
    compat: bool = False,
    backend: CaptureBackend | None = None,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Residual-stream activations at every hook, for the grid's kept positions.

    One forward per batch captures all hooks; the forward stops after the
    deepest hooked block (no LM head).

    Parameters
    ----------
    loaded : LoadedModel
    grid : TokenGrid
        Must have been made with ``loaded``'s tokenizer (same vocabulary).
    hooks : sequence of str
        Hook names (see :func:`resolve_hook`).
    batch_size : int, optional
        Sequences per forward (default ``loaded.spec.batch_size``).
    device : str, default "auto"
        Torch device (``"auto"``: CUDA when available).
    compat : bool, default False
        Read block inputs where outputs are named (the authors' off-by-one).
    backend : {"hf_hooks", "transformer_lens"}, optional
        Default ``loaded.spec.backend``.
    progress : bool, default True
        Show a tqdm progress bar.

    Returns
    -------
    dict of str to ndarray of float32, shape (grid.n_tokens, width)
        Rows in :meth:`TokenGrid.kept_flat_index` order.

    Raises
    ------
    HookError
        A hook does not resolve.
    ValueError
        The grid's ids do not fit the model's vocabulary.
    """
    hooks = list(dict.fromkeys(hooks))
    if not hooks:
        raise ValueError("`hooks` is empty; name at least one hook (e.g. 'layers.0').")
    backend = backend or loaded.spec.backend
    if backend not in ("hf_hooks", "transformer_lens"):
        raise ValueError(f"`backend` must be 'hf_hooks' or 'transformer_lens'; got {backend!r}.")
    batch_size = int(batch_size or loaded.spec.batch_size)
    vocab = int(getattr(loaded.model.config, "vocab_size", 0) or 0)
    if vocab and int(grid.ids.max(initial=0)) >= vocab:
        raise ValueError(
            f"the grid holds token id {int(grid.ids.max())} but {loaded.name} has a vocabulary of {vocab}; "
            f"the grid was made with another tokenizer ({grid.tokenizer})."
        )
    points = [resolve_hook(loaded, h, compat=compat) for h in hooks]
    device = resolve_device(device)
    if backend == "transformer_lens":
        runner = _LensRunner(loaded, points, device)
    else:
        runner = _HookRunner(loaded, points, device)
    outputs: dict[str, np.ndarray] = {}
    n_rows = grid.n_tokens
    cursor = 0
    from tqdm.auto import tqdm

    bar = tqdm(total=n_rows, unit="tok", desc=f"capture {loaded.name}", disable=not progress, leave=False)
    # Documents of similar length share a batch (a batch is as wide as its longest document, so
    # file order wasted about a quarter of the positions on padding); rows go back to grid order.
    used = grid.keep | (grid.attention_mask == 1)
    widths = np.where(used.any(axis=1), used.shape[1] - np.argmax(used[:, ::-1], axis=1), 0)
    kept_per_doc = grid.keep.sum(axis=1).astype(np.int64)
    first_row = np.concatenate([[0], np.cumsum(kept_per_doc)[:-1]]).astype(np.int64)
    by_width = np.argsort(widths, kind="stable")
    try:
        for start in range(0, grid.n_docs, batch_size):
            docs = by_width[start:start + batch_size]
            width = int(widths[docs].max(initial=0))
            if width == 0:
                continue
            keep = grid.keep[docs, :width]
            ids = torch.tensor(grid.ids[docs, :width])
            mask = torch.tensor(grid.attention_mask[docs, :width])
            acts = runner.run(ids, mask)
            counts = kept_per_doc[docs]
            count = int(counts.sum())
            # Kept rows come out document by document, positions ascending: their grid rows.
            within = np.arange(count, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
            dest = np.repeat(first_row[docs], counts) + within
            sel = torch.tensor(keep)
            for point in points:
                rows = acts[point.name][sel].to(torch.float32).cpu().numpy()
                if point.name not in outputs:
                    outputs[point.name] = np.empty((n_rows, rows.shape[1]), dtype=np.float32)
                outputs[point.name][dest] = rows
            cursor += count
            bar.update(count)
    finally:
        runner.close()
        bar.close()
    if cursor != n_rows:  # pragma: no cover - defensive
        raise RuntimeError(f"captured {cursor} rows but the grid keeps {n_rows}.")
    for point in points:
        outputs.setdefault(point.name, np.empty((0, loaded.d_model), dtype=np.float32))
    return {h: outputs[h] for h in hooks}


def raw_neuron_activations(loaded: LoadedModel, grid: TokenGrid, hooks, **kwargs) -> dict[str, np.ndarray]:
    """The raw residual (neuron) activations at ``hooks``: the baseline without SAEs.

    Same as :func:`capture` (kept for readability where a dense baseline is meant).
    """
    return capture(loaded, grid, hooks, **kwargs)


def _first_tensor(value):
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    if hasattr(value, "last_hidden_state"):
        return value.last_hidden_state
    raise TypeError(f"cannot find the activation tensor in a hook value of type {type(value).__name__}.")


class _HookRunner:
    """Forward hooks on the HF model, all hook points in one forward."""

    def __init__(self, loaded: LoadedModel, points, device: str):
        self.loaded = loaded
        self.model = loaded.model.to(device)
        self.device = device
        self.stash: dict[str, torch.Tensor] = {}
        self.handles = []
        # stop after the deepest point when every point is a block of the residual stream
        blocks = [(p.block + (0.5 if p.kind == "output" else 0.0)) for p in points if p.block is not None]
        self.stop_after = max(blocks) if blocks and len(blocks) == len(points) else None
        for point in points:
            module = self.model.get_submodule(point.module_path)
            order = (point.block + (0.5 if point.kind == "output" else 0.0)) if point.block is not None else None
            if point.kind == "output":
                handle = module.register_forward_hook(self._out_hook(point.name, order))
            else:
                handle = module.register_forward_pre_hook(self._in_hook(point.name, order), with_kwargs=True)
            self.handles.append(handle)
        self.causal = loaded.spec.family not in ENCODER_FAMILIES

    def _out_hook(self, name, order):
        def hook(module, args, output):
            self.stash[name] = _first_tensor(output).detach()
            self._maybe_stop(order)
        return hook

    def _in_hook(self, name, order):
        def hook(module, args, kwargs):
            value = args[0] if args else kwargs.get("hidden_states")
            self.stash[name] = _first_tensor(value).detach()
            self._maybe_stop(order)
        return hook

    def _maybe_stop(self, order):
        if self.stop_after is not None and order is not None and order >= self.stop_after:
            if len(self.stash) == len(self.handles):
                raise _StopForward

    def run(self, ids: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        self.stash = {}
        kwargs = {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}
        if self.causal:
            kwargs["use_cache"] = False
        with torch.inference_mode():
            try:
                self.model(**kwargs)
            except _StopForward:
                pass
        if len(self.stash) != len(self.handles):  # pragma: no cover - defensive
            raise RuntimeError("a hook did not fire during the forward pass.")
        return self.stash

    def close(self):
        for handle in self.handles:
            handle.remove()
        self.handles = []


class _LensRunner:
    """TransformerLens ``run_with_cache`` on a HookedTransformer built from the same weights."""

    def __init__(self, loaded: LoadedModel, points, device: str):
        missing = [p.name for p in points if p.lens_name is None]
        if missing:
            raise HookError(
                f"hooks {missing} have no TransformerLens name; use block hooks (`layers.L`, "
                "`blocks.L.hook_resid_post`) with backend='transformer_lens', or backend='hf_hooks'."
            )
        self.points = points
        self.lens = hooked_transformer(loaded).to(device)
        self.device = device
        deepest = max(p.block for p in points if p.block is not None) if any(
            p.block is not None for p in points) else None
        self.stop_at_layer = None if deepest is None or deepest + 1 >= loaded.n_layers else deepest + 1

    def run(self, ids, mask):
        names = sorted({p.lens_name for p in self.points})
        with torch.inference_mode():
            _, cache = self.lens.run_with_cache(
                ids.to(self.device), attention_mask=mask.to(self.device), names_filter=names,
                stop_at_layer=self.stop_at_layer, return_type=None,
            )
        return {p.name: cache[p.lens_name] for p in self.points}

    def close(self):
        pass


def hooked_transformer(loaded: LoadedModel):
    """A TransformerLens ``HookedTransformer`` holding ``loaded``'s weights, unprocessed.

    Built from the HF config and weights without folding layer norms or
    centring weights, so its residual stream equals the HF model's. Cached on
    ``loaded``. Causal families only (``gpt_neox``, ``gemma``, ``gemma2``).
    """
    if "hooked" in loaded._lens:
        return loaded._lens["hooked"]
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions import convert_gemma_weights, convert_neox_weights

    family = loaded.spec.family
    c = loaded.model.config
    dtype = next(loaded.model.parameters()).dtype
    if family == "gpt_neox":
        from transformer_lens.loading_from_pretrained import get_rotary_pct_from_config

        d_head = c.hidden_size // c.num_attention_heads
        cfg = HookedTransformerConfig(
            d_model=c.hidden_size, d_head=d_head, n_heads=c.num_attention_heads, d_mlp=c.intermediate_size,
            n_layers=c.num_hidden_layers, n_ctx=c.max_position_embeddings, eps=c.layer_norm_eps,
            d_vocab=c.vocab_size, act_fn=c.hidden_act, use_attn_scale=True, use_local_attn=False,
            scale_attn_by_inverse_layer_idx=False, parallel_attn_mlp=getattr(c, "use_parallel_residual", True),
            positional_embedding_type="rotary", rotary_adjacent_pairs=False,
            rotary_dim=round(get_rotary_pct_from_config(c) * d_head), rotary_base=_rope_theta(c),
            normalization_type="LN", original_architecture="GPTNeoXForCausalLM", default_prepend_bos=False,
            dtype=dtype, device="cpu",
        )
        convert = convert_neox_weights
    elif family in ("gemma", "gemma2"):
        gemma2 = family == "gemma2"
        extra = {}
        if gemma2:
            types = list(getattr(c, "layer_types", None) or ["sliding_attention", "full_attention"] * c.num_hidden_layers)
            extra = dict(
                window_size=c.sliding_window, use_local_attn=True,
                attn_types=["local" if t == "sliding_attention" else "global" for t in types[: c.num_hidden_layers]],
                attn_scores_soft_cap=c.attn_logit_softcapping or -1.0,
                output_logits_soft_cap=c.final_logit_softcapping or -1.0,
                use_normalization_before_and_after=True,
                attn_scale=float(c.query_pre_attn_scalar) ** 0.5,
            )
        cfg = HookedTransformerConfig(
            d_model=c.hidden_size, d_head=c.head_dim, n_heads=c.num_attention_heads, d_mlp=c.intermediate_size,
            n_layers=c.num_hidden_layers, n_ctx=c.max_position_embeddings, eps=c.rms_norm_eps,
            d_vocab=c.vocab_size, act_fn=getattr(c, "hidden_activation", None) or "gelu_pytorch_tanh",
            normalization_type="RMS", rotary_base=_rope_theta(c), rotary_dim=c.head_dim,
            positional_embedding_type="rotary", use_attn_scale=True, n_key_value_heads=c.num_key_value_heads,
            gated_mlp=True, final_rms=True, original_architecture="Gemma2ForCausalLM" if gemma2 else "GemmaForCausalLM",
            default_prepend_bos=False, dtype=dtype, device="cpu", **extra,
        )
        convert = convert_gemma_weights
    else:
        raise HookError(
            f"backend 'transformer_lens' supports the causal families gpt_neox, gemma and gemma2, not "
            f"{family!r}; use backend='hf_hooks'."
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lens = HookedTransformer(cfg, move_to_device=False)
        lens.load_and_process_state_dict(
            convert(loaded.model, cfg), fold_ln=False, center_writing_weights=False, center_unembed=False,
            fold_value_biases=False,
        )
    lens.eval()
    loaded._lens["hooked"] = lens
    return lens


def _rope_theta(config) -> float:
    params = getattr(config, "rope_parameters", None) or {}
    if isinstance(params, dict) and "rope_theta" in params:
        return float(params["rope_theta"])
    return float(getattr(config, "rope_theta", 10000.0))


def output_projection_rows(loaded: LoadedModel, layer: int) -> np.ndarray:
    """The weight of block ``layer``'s MLP output projection, shape (d_model, d_mlp), float32.

    Row i holds how the MLP's hidden units write into residual dimension i (the
    rows the authors' "compare LLMs" runs scored for raw neurons): BERT
    ``encoder.layer[L].output.dense``, GPT-NeoX ``layers[L].mlp.dense_4h_to_h``,
    Gemma / Gemma-2 / Gemma-3 and Llama ``layers[L].mlp.down_proj``.
    """
    relative = {"bert": "output.dense", "mpnet": "output.dense", "gpt_neox": "mlp.dense_4h_to_h", "gemma": "mlp.down_proj",
                "gemma2": "mlp.down_proj", "gemma3": "mlp.down_proj", "llama": "mlp.down_proj"}
    family = loaded.spec.family
    if family not in relative:
        raise HookError(f"no MLP output projection known for family {family!r}; known: {sorted(relative)}.")
    if not 0 <= int(layer) < loaded.n_layers:
        raise HookError(f"layer {layer} is out of range for {loaded.name} ({loaded.n_layers} blocks).")
    module = loaded.blocks[int(layer)].get_submodule(relative[family])
    weight = module.weight.detach().to(torch.float32).cpu().numpy()
    if weight.shape[0] != loaded.d_model:
        raise HookError(f"{relative[family]} of {loaded.name} has shape {weight.shape}; expected "
                        f"({loaded.d_model}, d_mlp).")
    return weight
