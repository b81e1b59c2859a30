"""Benchmark: prepared (reuse) permutation nulls against recomputing every permutation.

Side by side, in one run:

* ``svcca_planted``: SVCCA null, 1 000 permutations, n = 5 000 pairs,
  d = 512 vs 768; unit-norm rows sharing a planted 64-dim latent plus noise
  (99 % variance keeps k_x, k_y in the low hundreds). Target: reuse >= 20x
  faster than recomputing with :func:`saesim.geometry.svcca`.
* ``svcca_isotropic``: the same sizes with no structure (k close to d, the
  worst case for reuse: each permutation still costs an n x k_x x k_y product
  and a k_x x k_y SVD). 200 permutations, extrapolated per permutation.
* ``svcca_compat``: the authors' k = 1 SVCCA; a permutation is one dot product.
* ``rsa``: RSA null, 1 000 permutations at n = 3 000 (reuse re-indexes the
  ranked RSMs; recompute re-ranks 4.5 M values per permutation).

Recomputation is timed on the first few permutations of the same seed (the
``recompute.n_perm_timed`` field) and extrapolated linearly to the full
count; its values are checked against the reused null. Peak memory is the
tracemalloc peak (NumPy buffers included) of each phase; ``max_rss_mib`` is
the process maximum. BLAS runs single-threaded by default
(``SAESIM_BENCH_THREADS``): on a shared 2-core machine, multithreaded
OpenBLAS LAPACK slowed the SVDs 10-20x under contention.

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
import time  # noqa: E402
import tracemalloc  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy  # noqa: E402

from saesim.geometry import prepare, similarity  # noqa: E402
from saesim.nulls import permutation_test  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "nulls.json"
SEED = 0
TARGET_SPEEDUP = 20
CASES = {
    "svcca_planted": dict(metric="svcca", options={}, n=5000, d_x=512, d_y=768, shared=64, noise=1.0,
                          n_perm=1000, n_recompute=20),
    "svcca_isotropic": dict(metric="svcca", options={}, n=5000, d_x=512, d_y=768, shared=0, noise=1.0,
                            n_perm=200, n_recompute=10),
    "svcca_compat": dict(metric="svcca", options={"compat": True}, n=5000, d_x=512, d_y=768, shared=64,
                         noise=1.0, n_perm=1000, n_recompute=10),
    "rsa": dict(metric="rsa", options={}, n=3000, d_x=512, d_y=768, shared=64, noise=1.0, n_perm=1000,
                n_recompute=3),
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


def measured(function):
    """Run ``function()``; return its value, wall seconds and tracemalloc peak (MiB)."""
    tracemalloc.start()
    start = time.perf_counter()
    value = function()
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return value, seconds, peak / 2**20


def run_case(name: str, cfg: dict) -> dict:
    metric, options, n_perm, n_recompute = cfg["metric"], cfg["options"], cfg["n_perm"], cfg["n_recompute"]
    x, y = decoder_like(cfg["n"], cfg["d_x"], cfg["d_y"], cfg["shared"], cfg["noise"], SEED)

    _, prepare_s, _ = measured(lambda: prepare(x, y, metric, **options))
    test, reuse_s, reuse_peak = measured(
        lambda: permutation_test(x, y, metric, n_perm=n_perm, seed=SEED, **options))

    rng = np.random.default_rng(SEED)  # the same permutations as the test's first draws
    perms = [rng.permutation(cfg["n"]) for _ in range(n_recompute)]
    recomputed, recompute_s, recompute_peak = measured(
        lambda: np.array([similarity(x, y[perm], metric, **options).statistic for perm in perms]))
    per_perm_recompute = recompute_s / n_recompute
    per_perm_reuse = (reuse_s - prepare_s) / n_perm
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
        },
        "recompute": {
            "n_perm_timed": n_recompute,
            "per_perm_s": round(per_perm_recompute, 3),
            "extrapolated_total_s": round(per_perm_recompute * n_perm, 1),
            "peak_mib": round(recompute_peak, 1),
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
    cases = {}
    for name, cfg in CASES.items():
        print(f"[bench_nulls] {name} ...", file=sys.stderr, flush=True)
        cases[name] = run_case(name, cfg)
        print(json.dumps({name: cases[name]}), file=sys.stderr, flush=True)
    summary = {
        "benchmark": "saesim.nulls.permutation_test: prepared reuse vs recompute per permutation",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "blas_threads": int(THREADS),
            "load_average_before": [round(v, 2) for v in load_before],
            "load_average_after": [round(v, 2) for v in os.getloadavg()],
        },
        "seed": SEED,
        "target_speedup": TARGET_SPEEDUP,
        "headline_case": "svcca_planted",
        "meets_target": cases["svcca_planted"]["speedup"] >= TARGET_SPEEDUP,
        "cases": cases,
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10, 1),
        "total_runtime_s": round(time.perf_counter() - started, 1),
        "notes": (
            "speedup = (recompute seconds per permutation x n_perm) / (reuse total seconds, prepare and "
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
    print(json.dumps({k: v for k, v in summary.items() if k != "cases"}, indent=2))


if __name__ == "__main__":
    main()
