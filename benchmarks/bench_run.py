"""Benchmark: ``saesim run --n-perm 1000 --metrics svcca rsa`` on the offline profile, stage by stage.

The target (issue 13): the A-vs-B grid under both rules plus the concept grid, each with the
paper's 1 000 permutations of SVCCA and RSA, in <= 15 min after extraction on 2 cores. The
stages run one after the other on the cached extraction (best partners cached too), into a
fresh results folder, with the run's own worker pool; ``--controls`` adds the seed and both
random-model grids.

Baseline, in the same run: the many-to-1 group null of one real cell (A3-B7, 3 306 pairs on
1 383 hub partners) drawn by the kernels this benchmark replaced -- the SVD of the weighted
hub rows for SVCCA (corrected and the authors' k = 1, each its own test) and the numpy RSA
kernel below -- against ``permutation_tests`` (covariance route, shared draws, compiled RSA
pass), on the same draws; the nulls must agree within 1e-9.

Run after ``saesim extract --profile offline``:
``.venv/bin/python benchmarks/bench_run.py [--cache .saesim_cache] [--controls]``
Results go to ``benchmarks/results/run.json``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # the kernel baseline runs as a grid worker does: one BLAS thread

import numpy as np  # noqa: E402
from _report import finish, header, timed  # noqa: E402

from saesim.config import load_profile  # noqa: E402
from saesim.experiments import (  # noqa: E402
    _filtered_pairs, _metric_kwargs, cached_best_partners, run_grid, semantic_grid, settings_from_profile,
)
from saesim.extract import load_layer  # noqa: E402
from saesim.nulls import _GroupNull, _validate_groups, permutation_tests  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "run.json"
BASELINE_CELL = (3, 7)
NULLS_AGREE = 1e-9


def numpy_rsa_draw(kernel: _GroupNull, perm: np.ndarray) -> float:
    """The group null's RSA draw as numpy computed it before the compiled pass (the baseline)."""
    w = kernel.sizes[perm]
    rows, cols = kernel.rows_sorted, kernel.cols_sorted
    multiplicity = np.where(rows == cols, w[rows] * (w[rows] - 1) / 2, w[rows] * w[cols])
    totals = np.add.reduceat(multiplicity, kernel.tie_starts)
    below = np.cumsum(totals) - totals
    n_entries = kernel.n * (kernel.n - 1) / 2
    centred = below + (totals + 1) / 2 - (n_entries + 1) / 2
    norm = np.sqrt(np.sum(totals * centred**2))
    ranks = np.repeat(centred, np.diff(np.r_[kernel.tie_starts, rows.size]))
    blocks = kernel.blocks_flat[perm[rows] * kernel.n_groups + perm[cols]]
    return float(ranks @ blocks / (norm * kernel.other_norm))


def kernel_baseline(profile, settings, cache, n_draws: int) -> dict:
    """Per-draw seconds of the many-to-1 group null: the replaced kernels against the new ones.

    Both sides include building their kernels (the new one also scores the observed pairs), so
    the per-draw figure is the test's time over its draws."""
    la, lb = BASELINE_CELL
    data_a, data_b = load_layer(profile, "a", la, out=cache), load_layer(profile, "b", lb, out=cache)
    best = cached_best_partners(data_a, data_b, cache=cache)
    layer_a, layer_b = data_a.to_sae_layer(), data_b.to_sae_layer()
    pairs, _ = _filtered_pairs(best, layer_a, layer_b, settings, rule="many_to_one", direction="b_to_a")
    x, y = (np.asarray(rows, dtype=np.float64) for rows in pairs.rows(layer_a.decoder, layer_b.decoder))
    labels = _validate_groups(pairs.a, "x", x, y)
    measures = [("svcca", _metric_kwargs("svcca", settings)), ("rsa", {}), ("svcca", {"compat": True})]
    n_groups = int(labels.max()) + 1
    rng = np.random.default_rng(settings.seed)
    perms = [rng.permutation(n_groups) for _ in range(n_draws)]

    def old():  # one test per measure, as before: each builds its kernel and draws on its own
        kernels = [_GroupNull(x, y, labels, "x", metric, options) for metric, options in measures]
        svcca = [[k._svcca_svd(p, k.sizes[p]) for p in perms] for k in (kernels[0], kernels[2])]
        return [svcca[0], [numpy_rsa_draw(kernels[1], p) for p in perms], svcca[1]]

    permutation_tests(x, y, measures, n_perm=2, seed=0, groups=pairs.a)  # compile / load the kernel
    old_seconds, old_nulls = timed(old)
    new_seconds, tests = timed(lambda: permutation_tests(x, y, measures, n_perm=n_draws, seed=settings.seed,
                                                         groups=pairs.a))
    differences = {f"{m}{'(k=1)' if o.get('compat') else ''}": float(np.max(np.abs(np.array(old_null) - t.null)))
                   for (m, o), old_null, t in zip(measures, old_nulls, tests)}
    return {"cell": f"A{la}-B{lb}", "n_pairs": int(pairs.n_pairs), "n_hub_partners": n_groups,
            "n_draws": n_draws, "measures": [f"{m}{'(k=1)' if o.get('compat') else ''}" for m, o in measures],
            "baseline_ms_per_draw": round(1e3 * old_seconds / n_draws, 1),
            "new_ms_per_draw": round(1e3 * new_seconds / n_draws, 1),
            "speedup": round(old_seconds / new_seconds, 2), "max_null_difference": differences,
            "nulls_agree": bool(max(differences.values()) <= NULLS_AGREE)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=".saesim_cache")
    parser.add_argument("--n-perm", type=int, default=1000)
    parser.add_argument("--controls", action="store_true", help="also time the seed and random-model grids")
    parser.add_argument("--baseline-draws", type=int, default=200)
    args = parser.parse_args()
    profile = load_profile("offline")
    settings = settings_from_profile(profile, n_perm=args.n_perm, metrics=("svcca", "rsa"))
    results = header("run", threads=1, seed=settings.seed)
    results.update(n_perm=args.n_perm, metrics=["svcca", "rsa"], rules=list(settings.rules), workers=os.cpu_count(),
                   stages={})
    results["group_null_kernels"] = kernel_baseline(profile, settings, args.cache, args.baseline_draws)
    comparisons = profile.comparisons()
    if not args.controls:
        comparisons = {"full_space": comparisons["full_space"]}
    with tempfile.TemporaryDirectory(prefix="saesim-bench-run-") as out:
        target = 0.0
        for name, slots in comparisons.items():
            seconds, grid = timed(lambda: run_grid(profile, slots=slots, settings=settings, out=out, cache=args.cache,
                                                   progress=False))
            results["stages"][name] = {"seconds": round(seconds, 1), "cells": len(grid.frame) // len(settings.rules),
                                       "records": len(grid.frame), "failed": len(grid.failed)}
            target += seconds if name == "full_space" else 0.0
        seconds, grid = timed(lambda: semantic_grid(profile, settings=settings, out=out, cache=args.cache,
                                                    progress=False))
        results["stages"]["subspace"] = {"seconds": round(seconds, 1), "records": len(grid.frame),
                                         "failed": len(grid.failed)}
        target += seconds
    results["target_minutes"] = round(target / 60, 2)
    results["target_met"] = bool(target <= 15 * 60)
    results["total_minutes"] = round(sum(s["seconds"] for s in results["stages"].values()) / 60, 2)
    finish(results, RESULTS)


if __name__ == "__main__":
    main()
