"""Benchmark: the speed-ups behind the shorter `make book`, each beside the path it replaces.

* ``rsa_ranks``: the average ranks of a condensed RSM (RSA's preparation, run
  for every grid cell, bootstrap resample and sweep point) for n = 1 200 and
  2 800 paired rows (the offline 1-1 and many-to-1 sizes). Baseline:
  ``scipy.stats.rankdata(np.round(rsm, 12))``. New:
  ``saesim.compare.geometry._average_ranks`` (one packed uint64 sort). Must be equal.
* ``top_activations``: extraction's top-10 rows of every latent of TopK
  codes (158 000 x 4 096, k = 32). Baseline: one ``np.lexsort`` by (latent,
  -value, row). New: one sort of packed uint64 keys. Must be equal.
* ``training_stats``: a trained SAE's FVU, dead fraction and L0 on its
  64 000 training rows, when extraction then encodes all 158 000 rows anyway
  (offline shapes, 4 096 latents, synthetic activations). Baseline:
  ``train_topk_sae(evaluate=True)`` (a second encode of the training rows).
  New: ``evaluate=False`` and :func:`saesim.extract.saes.code_stats` on the first
  rows of the full encode. Must agree to float rounding.
* ``baseline_activations``: the raw-neuron baseline's activations of three
  MiniLM layers on a 200-document offline grid. Baseline: a forward pass
  (``raw_neuron_layers(reuse=False)``). New: reading what extraction kept
  (``reuse=True``). Must be equal.

BLAS and torch run single-threaded (``SAESIM_BENCH_THREADS``) for the first
two cases, as the offline workers do; the forward passes use every core, as extraction does.
Run: ``.venv/bin/python benchmarks/bench_book.py`` (about 3 minutes on 2
cores, with ``../shared/data``). Results go to ``benchmarks/results/book.json``.
"""

from __future__ import annotations

import os

THREADS = os.environ.get("SAESIM_BENCH_THREADS", "1")
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = THREADS
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse  # noqa: E402
import scipy.spatial  # noqa: E402
import scipy.stats  # noqa: E402
import torch  # noqa: E402

from saesim.compare import geometry  # noqa: E402
from saesim.experiments import baselines  # noqa: E402
from saesim.extract import saes  # noqa: E402
from saesim.config import load_profile  # noqa: E402
from saesim.extract.pipeline import extract  # noqa: E402
from _report import finish, header, timed  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "book.json"
SEED = 0


def rsa_ranks(d=384) -> dict:
    rng = np.random.default_rng(SEED)
    out = {}
    for n in (1200, 2800):
        rows = rng.standard_normal((n, d))
        rows[: n // 10] = rows[0]  # repeated rows (many-to-1) give exact ties
        centred = rows - rows.mean(axis=1, keepdims=True)
        unit = centred / np.linalg.norm(centred, axis=1, keepdims=True)
        condensed = scipy.spatial.distance.squareform(unit @ unit.T, checks=False)
        old_s, old = timed(lambda: scipy.stats.rankdata(np.round(condensed, geometry.RSM_DECIMALS)))
        new_s, new = timed(lambda: geometry._average_ranks(condensed, geometry.RSM_DECIMALS))
        out[str(n)] = {"entries": int(condensed.size), "seconds": {"scipy_rankdata": round(old_s, 3),
                                                                   "packed_sort": round(new_s, 3)},
                       "speedup": round(old_s / new_s, 2), "identical": bool(np.array_equal(old, new))}
    return out


def top_activations(n_tokens=158_000, n_latents=4096, k=32, top_k=10) -> dict:
    """Extraction's top-10 rows per latent of TopK codes (about 5M non-zeros)."""
    from saesim.extract import tokens

    rng = np.random.default_rng(SEED)
    columns = rng.integers(0, n_latents, (n_tokens, k))
    codes = scipy.sparse.csr_matrix((rng.random(n_tokens * k).astype(np.float32),
                                     (np.repeat(np.arange(n_tokens), k), columns.ravel())), shape=(n_tokens, n_latents))
    codes.sum_duplicates()
    packed = tokens._by_latent_value_row

    def lexsort(cols, rows, data, lo, hi, n_rows):
        order = np.lexsort((rows, -data, cols))
        return cols[order], rows[order], data[order]

    tokens._by_latent_value_row = lexsort
    try:
        old_s, old = timed(lambda: tokens.top_activations(codes, k=top_k))
    finally:
        tokens._by_latent_value_row = packed
    new_s, new = timed(lambda: tokens.top_activations(codes, k=top_k))
    return {"tokens": n_tokens, "latents": n_latents, "nnz": int(codes.nnz),
            "seconds": {"lexsort": round(old_s, 2), "packed_sort": round(new_s, 2)}, "speedup": round(old_s / new_s, 2),
            "identical": bool(np.array_equal(old.pos, new.pos) and np.array_equal(old.val, new.val, equal_nan=True))}


def training_stats(n_train=64_000, n_all=158_000, d=384, n_latents=4096, k=32) -> dict:
    rng = np.random.default_rng(SEED)
    dictionary = rng.standard_normal((2 * d, d)).astype(np.float32) / np.sqrt(d)
    weights = np.maximum(rng.standard_normal((n_all, 2 * d)).astype(np.float32) - 1.5, 0)
    acts = weights @ dictionary + 0.05 * rng.standard_normal((n_all, d)).astype(np.float32)
    options = dict(num_latents=n_latents, k=k, seed=0, epochs=1, batch_size=1024, hook="h", sae_id="h",
                   progress=False)

    def before():
        trained = saes.train_topk_sae(acts[:n_train], **options)
        saes.encode(trained.weights, acts, batch_size=1024, progress=False)
        return {"fvu": trained.fvu, "dead_fraction": trained.dead_fraction, "mean_l0": trained.mean_l0}

    def after():
        trained = saes.train_topk_sae(acts[:n_train], evaluate=False, **options)
        codes = saes.encode(trained.weights, acts, batch_size=1024, progress=False)
        return saes.code_stats(trained.weights, acts[:n_train], codes[:n_train])

    old_s, old = timed(before)
    new_s, new = timed(after)
    return {"train_rows": n_train, "encoded_rows": n_all, "latents": n_latents,
            "seconds": {"evaluate_in_training": round(old_s, 2), "stats_from_extraction_codes": round(new_s, 2)},
            "saved_seconds": round(old_s - new_s, 2), "speedup": round(old_s / new_s, 2),
            "stats": {"evaluate_in_training": old, "stats_from_extraction_codes": new},
            "max_relative_difference": max(abs(old[key] - new[key]) / max(abs(old[key]), 1e-12) for key in old)}


def baseline_activations(n_docs=200, layers=(0, 3, 5)) -> dict:
    profile = load_profile("encoders", layers_a=list(layers), layers_b=list(layers),
                           data={"n_docs": n_docs})
    with tempfile.TemporaryDirectory() as root:
        extract(profile, out=root, progress=False, slots=("a",))
        where = [("a", layer) for layer in layers]
        captured_s, captured = timed(lambda: baselines.raw_neuron_layers(profile, where, cache=root, reuse=False))
        read_s, read = timed(lambda: baselines.raw_neuron_layers(profile, where, cache=root))
        tokens = int(captured[where[0]].codes.shape[0])
        identical = all(np.array_equal(captured[w].codes, read[w].codes) for w in where)
    return {"documents": n_docs, "tokens": tokens, "layers": list(layers),
            "seconds": {"capture": round(captured_s, 2), "read_kept": round(read_s, 2)},
            "speedup": round(captured_s / read_s, 1), "identical": bool(identical),
            "offline_size_estimate_mb": round(158_541 * 384 * 4 * len(layers) / 1e6)}


def main() -> None:
    results = header("make book speed-ups (RSA ranks, top activations, training statistics from the "
                     "extraction codes, kept baseline activations), each beside the path it replaces", threads=int(THREADS), seed=SEED)
    torch.set_num_threads(int(THREADS))
    for name, case in (("rsa_ranks", rsa_ranks), ("top_activations", top_activations),
                       ("training_stats", training_stats)):
        print(f"bench_book: {name}", flush=True)
        results[name] = case()
    torch.set_num_threads(os.cpu_count() or 1)  # extraction's forward passes use every core
    print("bench_book: baseline_activations", flush=True)
    results["baseline_activations"] = baseline_activations()
    finish(results, RESULTS)


if __name__ == "__main__":
    main()
