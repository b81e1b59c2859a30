"""Train tiny TopK SAEs on tiny-model activations and save them in the libraries' formats (test and CI fixtures).

The ``tiny`` profile's SAEs are made by :func:`make_tiny_saes` on first use
and then loaded through the same real loading code as any downloaded SAE.
The public name is re-exported by :mod:`saesim.extract.saes`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from saesim.extract._sae_encode import encode, jumprelu_thresholds, validate_acts
from saesim.extract._sae_formats import save_saelens, save_sparsify
from saesim.extract._sae_quality import fvu
from saesim.extract._sae_train import train_topk_sae

__all__ = ["make_tiny_saes"]

_TINY_FORMATS = ("sparsify", "saelens_topk", "saelens_jumprelu")


def _hook_seed(seed: int, hook: str) -> int:
    return (int(seed) * 1_000_003 + zlib.crc32(hook.encode("utf-8"))) % (2**31 - 1)


def make_tiny_saes(
    acts_by_hook: Mapping[str, np.ndarray],
    out_dir: str | os.PathLike,
    *,
    formats: Mapping[str, str],
    num_latents: int,
    k: int,
    seed: int,
    epochs: int = 30,
    batch_size: int | None = None,
) -> dict[str, Path]:
    """Train small TopK SAEs on tiny-model activations and save them in library formats.

    Parameters
    ----------
    acts_by_hook : mapping hook -> ndarray (n_tokens, d_in)
        Activations captured at each hook.
    out_dir : path
        SAEs go to ``out_dir/<hook>/`` (load with ``location=out_dir``,
        ``sae_id=<hook>``).
    formats : mapping hook -> {"sparsify", "saelens_topk", "saelens_jumprelu"}
        On-disk format per hook (every hook needs one).
    num_latents, k, seed, epochs : int
        Training settings (per hook the seed is derived from ``seed`` and the hook).
    batch_size : int, optional
        Default ``max(64, n_tokens // 16)`` (tiny data needs many steps).

    Returns
    -------
    dict hook -> Path
        Each SAE's folder. A ``saesim_train.json`` beside the library files
        records FVU, dead fraction and settings.
    """
    out_dir = Path(out_dir)
    missing = [h for h in acts_by_hook if h not in formats]
    if missing:
        raise ValueError(f"`formats` has no entry for hooks {missing}; give one of {_TINY_FORMATS} per hook.")
    paths = {}
    for hook, acts in acts_by_hook.items():
        fmt = formats[hook]
        if fmt not in _TINY_FORMATS:
            raise ValueError(f"`formats[{hook!r}]` must be one of {_TINY_FORMATS}; got {fmt!r}.")
        if not hook or "/" in hook or hook.startswith("."):
            raise ValueError(f"hook name {hook!r} cannot be used as a folder name.")
        acts = validate_acts(acts, None, name=f"acts_by_hook[{hook!r}]")
        bs = batch_size or max(64, acts.shape[0] // 16)
        trained = train_topk_sae(
            acts, num_latents=num_latents, k=k, seed=_hook_seed(seed, hook), epochs=epochs,
            batch_size=bs, hook=hook, sae_id=hook, num_threads=1, progress=False,
        )
        weights = dataclasses.replace(trained.weights, source="sparsify" if fmt == "sparsify" else "saelens")
        target = out_dir / hook
        if fmt == "sparsify":
            save_sparsify(weights, target)
        elif fmt == "saelens_topk":
            save_saelens(weights, target, architecture="topk")
        else:
            weights = jumprelu_thresholds(weights, acts)
            save_saelens(weights, target, architecture="jumprelu")
        report = dict(trained.summary(), format=fmt)
        if fmt == "saelens_jumprelu":
            report["fvu_jumprelu"] = fvu(weights, acts, encode(weights, acts, progress=False))
        (target / "saesim_train.json").write_text(json.dumps(report, indent=1, default=float))
        paths[hook] = target
    return paths
