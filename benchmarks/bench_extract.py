"""Benchmark: the offline profile's extraction stages on this machine.

Measured, one stage after the other in one process (peak RSS after each):

* capture: MiniLM forward with all six hooks, tokens/s (baseline: the same
  forward with ``output_hidden_states=True``, the authors' one-forward-per-layer
  way run once, i.e. its best case);
* SAE training: one TopK SAE (4 096 latents, k = 32) for one epoch, seconds and FVU;
* encoding the layer to sparse codes, seconds;
* caching: writing the CSR codes to the artefact store, seconds, and the size
  on disk against dense fp32 storage of the same codes.

Results go to ``benchmarks/results/extract.json``. Run:
``.venv/bin/python benchmarks/bench_extract.py [--docs N]`` (about 2-4 min at 400 docs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time

import numpy as np
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "extract.json"


def peak_rss_gib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=400, help="WikiText paragraphs (128 tokens max each)")
    parser.add_argument("--layer", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from saesim.extract.cache import ArtefactStore
    from saesim.config import load_profile
    from saesim.extract.data import load_texts, tokenize
    from saesim.extract.models import load_model
    from saesim.extract.capture import capture
    from saesim.extract.saes import encode, fvu, train_topk_sae

    torch.set_num_threads(os.cpu_count() or 1)
    profile = load_profile("encoders", **{"data.n_docs": args.docs})
    spec = profile.model_a
    loaded = load_model(spec)
    grid = tokenize(loaded.tokenizer, load_texts(profile.data), max_length=profile.data.max_length)
    hooks = [spec.sae.hook_for(layer) for layer in range(6)]
    out = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__},
           "docs": args.docs, "tokens_kept": int(grid.n_tokens), "positions": int(grid.ids.size)}

    start = time.perf_counter()
    acts = capture(loaded, grid, hooks, progress=False)
    seconds = time.perf_counter() - start
    out["capture"] = {"seconds": round(seconds, 2), "tokens_per_s": round(grid.ids.size / seconds),
                      "hooks": len(hooks), "peak_rss_gib": peak_rss_gib()}

    ids = torch.as_tensor(np.array(grid.ids))
    mask = torch.as_tensor(np.array(grid.attention_mask))
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, ids.shape[0], spec.batch_size):
            loaded.model(input_ids=ids[i:i + spec.batch_size], attention_mask=mask[i:i + spec.batch_size],
                         output_hidden_states=True)
    seconds = time.perf_counter() - start
    out["baseline_hidden_states_forward"] = {"seconds": round(seconds, 2),
                                             "tokens_per_s": round(grid.ids.size / seconds),
                                             "note": "one forward with all hidden states; the authors ran one per layer"}

    x = acts[hooks[args.layer]]
    start = time.perf_counter()
    trained = train_topk_sae(x, num_latents=4096, k=32, seed=0, epochs=1, hook=hooks[args.layer], progress=False)
    out["train_one_epoch"] = {"seconds": round(time.perf_counter() - start, 2), "fvu": round(trained.fvu, 4),
                              "dead_fraction": round(trained.dead_fraction, 4), "n_tokens": int(x.shape[0]),
                              "tokens_per_s": round(x.shape[0] / (time.perf_counter() - start)),
                              "peak_rss_gib": peak_rss_gib()}

    start = time.perf_counter()
    codes = encode(trained.weights, x, progress=False)
    out["encode"] = {"seconds": round(time.perf_counter() - start, 2), "nnz": int(codes.nnz),
                     "fvu": round(fvu(trained.weights, x, codes), 4), "peak_rss_gib": peak_rss_gib()}

    with tempfile.TemporaryDirectory() as tmp:
        store = ArtefactStore(tmp)
        key = store.key(bench="extract", layer=args.layer)
        start = time.perf_counter()
        store.save_codes(key, codes)
        seconds = time.perf_counter() - start
        size = store.size_bytes(key)
    dense = codes.shape[0] * codes.shape[1] * 4
    out["cache"] = {"seconds": round(seconds, 3), "bytes": int(size), "dense_fp32_bytes": int(dense),
                    "dense_over_sparse": round(dense / size, 1)}
    out["speedup_capture_vs_hidden_states_forward"] = round(
        out["capture"]["tokens_per_s"] / out["baseline_hidden_states_forward"]["tokens_per_s"], 2)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = RESULTS.with_suffix(".json.tmp")
    tmp_path.write_text(json.dumps(out, indent=2))
    os.replace(tmp_path, RESULTS)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
