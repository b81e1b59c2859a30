"""One (model, layer) of an extraction: its SAE loaded or trained, codes, the FVU guards, top tokens, stored.

Private to :mod:`saesim.extract`; import the public names from :mod:`saesim.extract.pipeline`.
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from saesim.config import ModelSpec, Profile
from saesim.extract._extract_keys import (
    codes_mode,
    layer_key,
    local_sae_dir,
    read_summary,
    sae_identity,
    sub_key,
    trained_sae_folder,
    trained_sae_root,
    training_key,
    training_plan,
)
from saesim.extract._extract_records import FvuWarning, LayerSummary
from saesim.extract.cache import ArtefactStore
from saesim.extract.data import TokenGrid
from saesim.io import atomic_write_text

logger = logging.getLogger("saesim.extract.pipeline")  # the extraction logs under one name, as before the split


def ensure_tiny_saes(spec: ModelSpec, layers, acts, root: Path) -> None:
    """Write the tiny profile's SAEs (sparsify / SAELens formats) on first use, or again when damaged."""
    from saesim.extract import saes
    from saesim.extract.saes import make_tiny_saes

    todo = {}
    formats = {}
    for layer in layers:
        folder = local_sae_dir(spec, layer, root)
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
             store: ArtefactStore, progress: bool, train_acts: np.ndarray | None = None):
    """Load the SAE of (spec, layer), training it first when ``source: train`` and not on disk.

    It trains on the first ``sae.train_tokens`` rows of ``acts`` (the grid's), or, with
    ``sae.train_text``, on those of ``train_acts`` (the activations of its training text).
    """
    from saesim.extract import saes

    sae_spec = spec.sae
    train_report = unsaved_report = None
    if sae_spec.source == "train":
        train_key = training_key(profile, spec, layer, grid.hash)
        train_root = trained_sae_root(store, train_key)
        folder = trained_sae_folder(store, train_key, spec, layer)
        report_path = folder / "saesim_train.json"
        if not saes.sae_folder_ready(folder):  # absent, or a damaged saesim-made folder (removed)
            plan = training_plan(profile, spec)
            if sae_spec.train_text:
                if train_acts is None or train_acts.shape[0] < int(plan.train_tokens):
                    raise RuntimeError(f"{spec.label}, layer {layer}: the activations of the SAE's training text "
                                       f"({'+'.join(sae_spec.train_text)}, {plan.train_tokens} tokens) were not "
                                       "captured.")  # pragma: no cover - the extraction loop captures them
                x = train_acts[: int(plan.train_tokens)]
            else:
                x = acts[: training_rows(spec, plan, acts.shape[0], what=f"{spec.label}, layer {layer}")]
            # Not evaluated here: the layer's codes of every token include the training rows
            # (_finish_train_report), which saves one encode of them.
            trained = saes.train_topk_sae(
                x, num_latents=sae_spec.num_latents, k=sae_spec.k, seed=sae_spec.seed, epochs=plan.epochs,
                batch_size=sae_spec.batch_size, lr=sae_spec.lr, hook=sae_spec.hook_for(layer),
                sae_id=sae_spec.id_for(layer), progress=progress, evaluate=False, device=plan.device,
                trainer=sae_spec.trainer,
            )
            saes.save_sparsify(trained.weights, folder)
            train_report = dict(trained.summary(), train_key=train_key, trainer=sae_spec.trainer,
                                train_text=list(sae_spec.train_text))
            if sae_spec.train_text:  # the report's FVU, dead fraction and L0: on a sample of the training rows
                n_stats = min(int(x.shape[0]), TRAIN_STATS_ROWS)
                train_report.update(saes.code_stats(trained.weights, x[:n_stats],
                                                    saes.encode(trained.weights, x[:n_stats], codes="sae",
                                                                batch_size=sae_spec.batch_size, progress=False)),
                                    n_stats=n_stats)
                atomic_write_text(report_path, json.dumps(train_report, indent=1, default=float))
                unsaved_report = None
            else:
                unsaved_report = report_path
        elif report_path.is_file():
            train_report = json.loads(report_path.read_text())
        sae = saes.load_sae(sae_spec, layer, root=train_root)
    else:
        sae = saes.load_sae(sae_spec, layer, root=store.root)
        local = local_sae_dir(spec, layer, store.root)
        if local is not None and (local / "saesim_train.json").is_file():
            train_report = json.loads((local / "saesim_train.json").read_text())
    return sae, train_report, unsaved_report


TRAIN_STATS_ROWS = 32768
"""A training report's FVU, dead fraction and L0 are measured on at most this many of its training rows
when the SAE trains on its own text (``sae.train_text``; the grid's rows are all held out)."""


def training_rows(spec: ModelSpec, plan, n_tokens: int, *, what: str | None = None) -> int:
    """How many of the ``n_tokens`` kept tokens train the SAE: the plan's cap, clamped to ``n_tokens``.

    A budget that asks for more tokens than the grid has trains on every
    token (then no token is held out). With ``what``, that is logged as a
    warning naming the budget's field and the fix.
    """
    if plan.train_tokens is None or plan.train_tokens <= n_tokens:
        return n_tokens if plan.train_tokens is None else int(plan.train_tokens)
    if what is not None:
        logger.warning(
            "%s: `%s.train_tokens` asks for %d training tokens but the grid has %d; training on all %d, "
            "so no token is held out. Raise `data.n_docs` to extract more tokens, or lower `%s.train_tokens`.",
            what, plan.budget_field, plan.train_tokens, n_tokens, n_tokens, plan.budget_field,
        )
    return n_tokens


def _finish_train_report(train_report: dict, path: Path, sae, acts: np.ndarray, codes) -> dict:
    """Fill a fresh training report's FVU, dead fraction and L0 from its training rows' codes; save it at ``path``."""
    from saesim.extract.saes import code_stats

    n = int(train_report["n_tokens"])
    report = {**train_report, **code_stats(sae, acts[:n], codes[:n])}
    atomic_write_text(path, json.dumps(report, indent=1, default=float))
    return report


def process_layer(profile, slot, spec, layer, grid, view, row_doc, row_pos, acts, neighbour_acts: dict, tokenizer,
                   decode_cache, store, *, max_fvu, progress, train_acts=None) -> LayerSummary:
    """Get the SAE of one (model, layer), encode, guard, label and store it all; the record is written last.

    ``train_acts``: the activations of the SAE's training text at its hook (``sae.train_text``), else None.
    """
    from saesim.extract import saes, tokens

    t0 = time.perf_counter()
    hook = spec.sae.hook_for(layer)
    what = f"profile `{profile.name}`, {spec.label} (slot {slot}), layer {layer}"
    sae, train_report, unsaved_report = _get_sae(profile, spec, layer, acts, grid, store, progress, train_acts)
    saes.check_d_in(sae, acts, what=f"activations of {spec.label} at `{hook}`")
    check_width(spec, sae.n_latents, what=f"{what}: SAE `{sae.sae_id}`")
    sae_codes = saes.encode(sae, acts, codes="sae", batch_size=spec.sae.batch_size, progress=progress)
    if unsaved_report is not None:  # trained just now, not yet evaluated
        train_report = _finish_train_report(train_report, unsaved_report, sae, acts, sae_codes)
    value = saes.fvu(sae, acts, sae_codes)
    n_train = 0 if spec.sae.source != "train" or spec.sae.train_text else training_rows(
        spec, training_plan(profile, spec), acts.shape[0])  # with train_text no grid row trains it
    heldout = saes.fvu(sae, acts[n_train:], sae_codes[n_train:]) if n_train < acts.shape[0] else None
    neighbour_fvu = {
        name: saes.fvu(sae, x, saes.encode(sae, x, batch_size=spec.sae.batch_size, progress=False))
        for name, x in neighbour_acts.items()
    }
    value_nb = min(neighbour_fvu.values()) if neighbour_fvu else None
    _guard(value, neighbour_fvu, what=f"{what}: SAE `{sae.sae_id}` on hook `{hook}`", compat=profile.compat,
           max_fvu=max_fvu)
    mode = codes_mode(profile, spec)
    codes = sae_codes if mode == "sae" else saes.encode(sae, acts, codes=mode, batch_size=spec.sae.batch_size,
                                                        progress=progress)
    codes = sp.csr_matrix(codes, dtype=np.float32)
    top = tokens.top_activations(codes, k=profile.labels.k, compat=profile.compat)

    ctx = tokens.contexts(
        top, view.ids, token_decoder(tokenizer), row_doc=row_doc, row_pos=row_pos, left=profile.labels.left,
        right=profile.labels.right, valid=None if profile.compat else view.attention_mask == 1,
        decode_cache=decode_cache,
    )
    identity = sae_identity(profile, spec, layer, grid.hash, store.root)
    key = layer_key(profile, spec, layer, grid, identity)
    meta = {"profile": profile.name, "slot": slot, "layer": layer, "hook": hook, "sae_id": sae.sae_id,
            "model": spec.model}
    store.save_codes(sub_key(store, key, "codes"), codes, meta)
    store.save_array(sub_key(store, key, "decoder"), np.asarray(sae.W_dec, dtype=np.float32), meta)
    store.save_array(sub_key(store, key, "top_int"),
                     np.stack([top.pos, ctx.token_ids, ctx.doc, ctx.position]).astype(np.int64), meta)
    store.save_array(sub_key(store, key, "top_val"), np.asarray(top.val, dtype=np.float32), meta)
    store.save_array(sub_key(store, key, "n_active"), np.asarray(top.n_active, dtype=np.int64), meta)
    store.save_json(sub_key(store, key, "strings"),
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
    return read_summary(store, key, reused=False)


def check_width(spec: ModelSpec, n_latents: int, *, what: str) -> None:
    """Raise SaeMismatchError when an SAE's width is not the profile's ``sae.num_latents``."""
    from saesim.extract.saes import SaeMismatchError

    if spec.sae.num_latents is not None and n_latents != spec.sae.num_latents:
        raise SaeMismatchError(
            f"{what} has {n_latents} latents but the profile says sae.num_latents = {spec.sae.num_latents}; "
            "fix the profile or point it at the intended SAE."
        )


def _resolve(loaded, hook):
    from saesim.extract.capture import resolve_hook

    return resolve_hook(loaded, hook)


def neighbour_streams(loaded, hook: str) -> list[str]:
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
