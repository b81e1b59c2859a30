"""Benchmark: permutation nulls, batched float32 against the float64 loops they replace.

Part 1, ``offline``: the shapes of the offline profile, d_x = d_y = 384,
unit-norm rows with a power-law spectrum (99 % variance keeps k ~ 340 per
side, as on the real decoders):

* ``one_to_one``: n = 1 353 pairs, every row distinct;
* ``many_to_one``: n = 3 003 pairs whose x side takes only 1 400 distinct rows
  (a many-to-1 pairing repeats the chosen partner).

For SVCCA, RSA and linear CKA, the old null (prepare, then ``score(perm)`` in
float64 per permutation, as ``permutation_test`` did before the batched path)
and the new one (``permutation_test``: ``scores`` on float32 batches) run on
the same 200 permutations. ``speedup`` is old seconds / new seconds (prepare
included), ``speedup_per_perm`` compares the permutation phases alone, and
``max_abs_diff`` compares the two nulls.

Part 2, the prepared (reuse) nulls against recomputing every permutation:

* ``svcca_planted``: SVCCA null, 1 000 permutations, n = 5 000 pairs,
  d = 512 vs 768; unit-norm rows sharing a planted 64-dim latent plus noise
  (99 % variance keeps k_x, k_y in the low hundreds). Target: reuse >= 20x
  faster than recomputing with :func:`saesim.compare.geometry.svcca`.
* ``svcca_isotropic``: the same sizes with no structure (k close to d, the
  worst case for reuse: each permutation still costs an n x k_x x k_y product
  and a k_x x k_y SVD). 100 permutations.
* ``svcca_compat``: the authors' k = 1 SVCCA; a permutation is one dot product.
* ``rsa``: RSA null, 1 000 permutations at n = 3 000 (reuse re-indexes the
  ranked RSMs; recompute re-ranks 4.5 M values per permutation).

Recomputation is timed on the first few permutations of the same seed (the
``recompute.n_perm_timed`` field) and extrapolated linearly to the full
count; its values are checked against the reused null. Peak memory of a
phase is reported twice: ``peak_mib``, the tracemalloc peak (NumPy buffers,
not torch's), and ``peak_rss_mib``, the growth of the resident set over the
phase sampled every 5 ms (torch included); ``max_rss_mib`` is the process
maximum. BLAS and torch run single-threaded by default
(``SAESIM_BENCH_THREADS``), as the offline workers do: on a shared 2-core
machine, multithreaded OpenBLAS LAPACK slowed the SVDs 10-20x under
contention.

Run: ``.venv/bin/python benchmarks/bench_nulls.py`` (about 5 minutes on 2
cores). Results go to ``benchmarks/results/nulls.json``.
"""

from __future__ import annotations

import os

THREADS = os.environ.get("SAESIM_BENCH_THREADS", "1")
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = THREADS

import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy  # noqa: E402
import torch  # noqa: E402

from saesim.compare.geometry import prepare, similarity  # noqa: E402
from saesim.compare.nulls import permutation_test  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "nulls.json"
SEED = 0
TARGET_SPEEDUP = 20
OFFLINE_CASES = {
    "one_to_one": dict(n=1353, d=384, distinct_x=None, n_perm=200),
    "many_to_one": dict(n=3003, d=384, distinct_x=1400, n_perm=200),
}
OFFLINE_METRICS = ("svcca", "rsa", "linear_cka")
CASES = {
    "svcca_planted": dict(metric="svcca", options={}, n=5000, d_x=512, d_y=768, shared=64, noise=1.0,
                          n_perm=1000, n_recompute=8),
    "svcca_isotropic": dict(metric="svcca", options={}, n=5000, d_x=512, d_y=768, shared=0, noise=1.0,
                            n_perm=100, n_recompute=5),
    "svcca_compat": dict(metric="svcca", options={"compat": True}, n=5000, d_x=512, d_y=768, shared=64,
                         noise=1.0, n_perm=1000, n_recompute=5),
    "rsa": dict(metric="rsa", options={}, n=3000, d_x=512, d_y=768, shared=64, noise=1.0, n_perm=1000,
                n_recompute=2),
}


def decoder_like(n: int, d_x: int, d_y: int, shared: int, noise: float, seed: int):
    """Unit-norm paired rows: a shared ``shared``-dim latent mapped into each space, plus noise."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, shared))
    sides = []
    for d in (d_x, d_y):
        rows = latent @ rng.standard_normal((shared, d)) + noise * rng.standard_normal((n, d))
        sides.append(rows / np.linalg.norm(rows, axis=1, keepdims=True))
    return sides


def offline_rows(n: int, d: int, distinct_x: int | None, seed: int):
    """Unit-norm paired rows, power-law spectrum ``j ** -0.5`` (99 % variance keeps k ~ 340 of 384).

    y is a rotated noisy copy of x. With ``distinct_x``, x takes only that many distinct rows
    (each repeated for several y rows), as in a many-to-1 pairing.
    """
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((distinct_x or n, d)) * np.arange(1, d + 1) ** -0.5
    if distinct_x is not None:  # every distinct row at least once, the rest drawn at random
        rows = np.r_[np.arange(distinct_x), rng.integers(0, distinct_x, n - distinct_x)]
        latent = latent[rng.permutation(rows)]
    sides = []
    for noise in (0.0, 0.05):
        rotation, _ = np.linalg.qr(rng.standard_normal((d, d)))
        rows = (latent + noise * rng.standard_normal(latent.shape)) @ rotation
        sides.append(rows / np.linalg.norm(rows, axis=1, keepdims=True))
    return sides


def resident_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measured(function):
    """Run ``function()``; return its value, wall seconds, tracemalloc peak and peak RSS growth (MiB)."""
    start_rss, peak_rss, done = resident_mib(), [0.0], threading.Event()

    def sample():
        while not done.wait(0.005):
            peak_rss[0] = max(peak_rss[0], resident_mib())

    sampler = threading.Thread(target=sample)
    sampler.start()
    tracemalloc.start()
    start = time.perf_counter()
    value = function()
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    done.set()
    sampler.join()
    return value, seconds, peak / 2**20, max(0.0, max(peak_rss[0], resident_mib()) - start_rss)


def run_offline_case(cfg: dict, metric: str) -> dict:
    """The old float64 loop and the new batched null on the same permutations."""
    x, y = offline_rows(cfg["n"], cfg["d"], cfg["distinct_x"], SEED)
    n_perm = cfg["n_perm"]
    rng = np.random.default_rng(SEED)  # the permutations permutation_test draws
    perms = [rng.permutation(cfg["n"]) for _ in range(n_perm)]
    prepared, prepare_s, _, _ = measured(lambda: prepare(x, y, metric))
    old, loop_s, old_peak, old_rss = measured(lambda: np.array([prepared.score(perm) for perm in perms]))
    new, new_s, new_peak, new_rss = measured(
        lambda: permutation_test(x, y, metric, n_perm=n_perm, seed=SEED))
    old_s = prepare_s + loop_s
    new_null_s = new_s - prepare_s
    result = {
        "metric": metric,
        "n_pairs": cfg["n"],
        "distinct_x_rows": int(np.unique(x, axis=0).shape[0]),
        "d": cfg["d"],
        "n_perm": n_perm,
        "score": new.score,
        "null_mean": new.null_mean,
        "null_std": new.null_std,
        "prepare_s": round(prepare_s, 3),
        "old_float64_loop": {"total_s": round(old_s, 3), "per_perm_ms": round(1e3 * loop_s / n_perm, 2),
                             "peak_mib": round(old_peak, 1), "peak_rss_mib": round(old_rss, 1)},
        "new_batched": {"total_s": round(new_s, 3), "per_perm_ms": round(1e3 * new_null_s / n_perm, 2),
                        "peak_mib": round(new_peak, 1), "peak_rss_mib": round(new_rss, 1)},
        "speedup": round(old_s / new_s, 2),
        "speedup_per_perm": round(loop_s / new_null_s, 2),
        "max_abs_diff": float(np.max(np.abs(new.null - old))),
    }
    if metric == "svcca":
        result["k_x"], result["k_y"] = new.observed.k_x, new.observed.k_y
    return result


def run_case(name: str, cfg: dict) -> dict:
    metric, options, n_perm, n_recompute = cfg["metric"], cfg["options"], cfg["n_perm"], cfg["n_recompute"]
    x, y = decoder_like(cfg["n"], cfg["d_x"], cfg["d_y"], cfg["shared"], cfg["noise"], SEED)

    _, prepare_s, _, _ = measured(lambda: prepare(x, y, metric, **options))
    test, reuse_s, reuse_peak, reuse_rss = measured(
        lambda: permutation_test(x, y, metric, n_perm=n_perm, seed=SEED, **options))

    rng = np.random.default_rng(SEED)  # the same permutations as the test's first draws
    perms = [rng.permutation(cfg["n"]) for _ in range(n_recompute)]
    recomputed, recompute_s, recompute_peak, recompute_rss = measured(
        lambda: np.array([similarity(x, y[perm], metric, **options).statistic for perm in perms]))
    per_perm_recompute = recompute_s / n_recompute
    per_perm_reuse = max(0.0, reuse_s - prepare_s) / n_perm  # 0: below the noise of timing prepare
    speedup = per_perm_recompute * n_perm / reuse_s
    result = {
        "metric": metric,
        "options": options,
        "n_pairs": cfg["n"],
        "d_x": cfg["d_x"],
        "d_y": cfg["d_y"],
        "planted_shared_dims": cfg["shared"],
        "noise": cfg["noise"],
        "score": test.score,
        "null_mean": test.null_mean,
        "null_std": test.null_std,
        "p_value": test.p_value,
        "reuse": {
            "n_perm": n_perm,
            "total_s": round(reuse_s, 3),
            "prepare_s": round(prepare_s, 3),
            "per_perm_ms": round(1e3 * per_perm_reuse, 3),
            "peak_mib": round(reuse_peak, 1),
            "peak_rss_mib": round(reuse_rss, 1),
        },
        "recompute": {
            "n_perm_timed": n_recompute,
            "per_perm_s": round(per_perm_recompute, 3),
            "extrapolated_total_s": round(per_perm_recompute * n_perm, 1),
            "peak_mib": round(recompute_peak, 1),
            "peak_rss_mib": round(recompute_rss, 1),
            "note": f"timed on the first {n_recompute} permutations, extrapolated linearly to {n_perm}",
        },
        "speedup": round(speedup, 1),
        "max_abs_diff_reuse_vs_recompute": float(np.max(np.abs(test.null[:n_recompute] - recomputed))),
    }
    if metric == "svcca":
        result["k_x"], result["k_y"] = test.observed.k_x, test.observed.k_y
    return result


def main() -> None:
    started = time.perf_counter()
    load_before = os.getloadavg()
    offline = {}
    for shape, cfg in OFFLINE_CASES.items():
        for metric in OFFLINE_METRICS:
            name = f"{shape}_{metric}"
            print(f"[bench_nulls] {name} ...", file=sys.stderr, flush=True)
            offline[name] = run_offline_case(cfg, metric)
            print(json.dumps({name: offline[name]}), file=sys.stderr, flush=True)
    cases = {}
    for name, cfg in CASES.items():
        print(f"[bench_nulls] {name} ...", file=sys.stderr, flush=True)
        cases[name] = run_case(name, cfg)
        print(json.dumps({name: cases[name]}), file=sys.stderr, flush=True)
    summary = {
        "benchmark": ("saesim.compare.nulls.permutation_test: batched float32 vs the float64 loop at the offline "
                      "shapes; prepared reuse vs recompute per permutation"),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "torch": torch.__version__,
            "blas_threads": int(THREADS),
            "torch_threads": torch.get_num_threads(),
            "load_average_before": [round(v, 2) for v in load_before],
            "load_average_after": [round(v, 2) for v in os.getloadavg()],
        },
        "seed": SEED,
        "target_speedup": TARGET_SPEEDUP,
        "headline_case": "svcca_planted",
        "meets_target": cases["svcca_planted"]["speedup"] >= TARGET_SPEEDUP,
        "offline_speedups_per_perm": {name: case["speedup_per_perm"] for name, case in offline.items()},
        "offline_speedups_total": {name: case["speedup"] for name, case in offline.items()},
        "offline_max_abs_diff": max(case["max_abs_diff"] for case in offline.values()),
        "offline": offline,
        "cases": cases,
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10, 1),
        "total_runtime_s": round(time.perf_counter() - started, 1),
        "notes": (
            "offline: speedup = old seconds (prepare + float64 score(perm) loop) / new seconds "
            "(permutation_test, prepare and observed score included), on the same permutations; "
            "speedup_per_perm compares the permutation phases only (new: total - prepare_s; the new phase "
            "includes building its float32 structures). max_abs_diff is the largest |new - old| null value. "
            "cases: speedup = (recompute seconds per permutation x n_perm) / (reuse total seconds, prepare and "
            "observed score included). SVCCA reuse costs an n x k_x x k_y product plus a k_x x k_y SVD per "
            "permutation, recompute costs two n x d SVDs: the ratio grows as k shrinks relative to d, so "
            "svcca_isotropic (k ~ d) is the least favourable case. The machine was shared with other jobs; "
            "see load_average_*."
        ),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(tmp, RESULTS)
    print(json.dumps({k: v for k, v in summary.items() if k not in ("cases", "offline")}, indent=2))


if __name__ == "__main__":
    main()
