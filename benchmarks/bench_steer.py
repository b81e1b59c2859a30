"""The steering stage's unit of work: one steered forward of B on the prompt batch, skipped prefix vs plain hook.

``saesim.extract.steer.steering_effects`` runs the blocks up to the steered one once per prompt batch and
starts every steered forward from that cached output. The baseline is the plain forward hook
(``steered_logits``, the whole model every time) plus the same readout. Both run alternately in one
process on SmolLM2-135M (the offline profile's B) at three depths, on the stage's default prompt batch
(12 prompts x 20 tokens); the record has seconds per steered forward, the ratio, and the peak RSS.
Also: what the default stage costs, as forwards x seconds per forward at each depth.

Run: ``.venv/bin/python benchmarks/bench_steer.py`` (needs the model packages and the offline grid in
``.saesim_cache`` or ``SAESIM_CACHE``) -> ``benchmarks/results/steer.json``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from _report import finish, header

ROOT = Path(__file__).resolve().parent
REPEATS = 3


def _plain(loaded, ids, mask, keep, layer, vectors, alphas, plus):
    """The reference: one full forward per (vector, scale), through the plain hook."""
    from saesim.extract.steer import steered_logits

    base = torch.log_softmax(torch.tensor(steered_logits(loaded, ids, mask, layer)), -1)
    out = []
    for vector in vectors:
        for alpha in alphas:
            steered = torch.log_softmax(torch.tensor(steered_logits(loaded, ids, mask, layer, vector, alpha)), -1)
            out.append((torch.logsumexp(steered[..., plus], -1) - torch.logsumexp(base[..., plus], -1)).mean())
    return out


def main() -> None:
    from saesim.config import load_profile
    from saesim.experiments.steering import SteeringSettings
    from saesim.extract.models import load_model
    from saesim.extract.pipeline import load_grid
    from saesim.extract.steer import steering_effects

    threads = torch.get_num_threads()
    results = header("steer", threads=threads, seed=0)
    profile = load_profile("offline")
    cache = os.environ.get("SAESIM_CACHE", ".saesim_cache")
    loaded = load_model(profile.model("b"), root=cache)
    view = load_grid(profile, out=cache).for_tokenizer(loaded.tokenizer)
    docs = [d for d in range(view.n_docs - 1, 0, -1) if view.attention_mask[d, :20].sum() == 20][:12]
    ids, mask, keep = view.ids[docs, :20], view.attention_mask[docs, :20], view.keep[docs, :20]
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((2, loaded.d_model)).astype(np.float32)
    alphas = (5.0, 10.0)
    plus = np.array([1, 2, 3])
    rows = []
    for layer in (0, 17, 29):
        skip, plain = [], []
        for _ in range(REPEATS):
            t = time.perf_counter()
            steering_effects(loaded, ids, mask, keep, layer, vectors, alphas, plus, batch_size=12)
            skip.append((time.perf_counter() - t) / (len(vectors) * len(alphas)))
            t = time.perf_counter()
            _plain(loaded, ids, mask, keep, layer, vectors, alphas, plus)
            plain.append((time.perf_counter() - t) / (len(vectors) * len(alphas)))
        rows.append({"layer_b": layer, "seconds_per_forward_skip": round(float(np.median(skip)), 3),
                     "seconds_per_forward_plain": round(float(np.median(plain)), 3),
                     "ratio_plain_over_skip": round(float(np.median(plain) / np.median(skip)), 2)})
        print(rows[-1], flush=True)
    settings = SteeringSettings()
    vectors_per_cell = 6 + settings.n_null + 2 * settings.n_random  # natives, maps, nulls
    forwards = vectors_per_cell * len(settings.alphas)
    results.update({
        "prompts": [len(docs), 20], "vectors": len(vectors), "alphas": list(alphas), "rows": rows,
        "default_stage": {"forwards_per_cell": forwards, "cells": "6 pairs x 2 concepts + 3 control pairs x 2",
                          "estimated_seconds": round(forwards * 18 * float(np.mean(
                              [r["seconds_per_forward_skip"] for r in rows])), 0)},
    })
    finish(results, ROOT / "results" / "steer.json")


if __name__ == "__main__":
    main()
