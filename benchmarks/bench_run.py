"""Benchmark: ``saesim run --n-perm 1000 --metrics svcca rsa`` on the offline profile, stage by stage.

What the cross-model profile asks of a run after extraction: the A-vs-B grid
(both rules), the SAE-seed control, both random-model controls, and the
concept grid, each with the paper's 1 000 permutations of SVCCA and RSA. The
stages are timed one after the other on the cached extraction, into a fresh
results folder (the book's tables are not touched).

Baseline, in the same run: a sample of full-space cells scored with the
99 %-variance SVCCA rule (the previous default) against the same cells at
``ratio:10`` (the default now), so the ratio says what the dimension policy
saves per cell.

Run after ``saesim extract --profile offline``:
``.venv/bin/python benchmarks/bench_run.py [--cache .saesim_cache] [--sample 4]``
(about 15 minutes on 2 cores). Results go to ``benchmarks/results/run.json``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _report import finish, header, timed  # noqa: E402

from saesim.config import load_profile  # noqa: E402
from saesim.experiments import run_grid, semantic_grid, settings_from_profile  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "run.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=".saesim_cache")
    parser.add_argument("--n-perm", type=int, default=1000)
    parser.add_argument("--sample", type=int, default=4, help="full-space cells of the dimension-policy baseline")
    args = parser.parse_args()
    profile = load_profile("offline")
    settings = settings_from_profile(profile, n_perm=args.n_perm, metrics=("svcca", "rsa"))
    results = header("run", threads=os.cpu_count() or 1, seed=settings.seed)
    results.update(n_perm=args.n_perm, metrics=["svcca", "rsa"], rules=list(settings.rules), stages={})
    with tempfile.TemporaryDirectory(prefix="saesim-bench-run-") as out:
        total = 0.0
        for name, slots in profile.comparisons().items():
            seconds, grid = timed(lambda: run_grid(profile, slots=slots, settings=settings, out=out, cache=args.cache,
                                                   progress=False))
            results["stages"][name] = {"seconds": round(seconds, 1), "cells": len(grid.frame) // len(settings.rules),
                                       "records": len(grid.frame), "failed": len(grid.failed)}
            total += seconds
        seconds, grid = timed(lambda: semantic_grid(profile, settings=settings, out=out, cache=args.cache,
                                                    progress=False))
        results["stages"]["subspace"] = {"seconds": round(seconds, 1), "records": len(grid.frame),
                                         "failed": len(grid.failed)}
        total += seconds
        results["total_seconds"] = round(total, 1)
        results["total_minutes"] = round(total / 60, 2)
        # The dimension policy's cost per cell: the same cells at 99 % variance and at ratio:10.
        cells = [(la, lb) for la, lb in profile.baseline_layer_pairs()][: args.sample]
        baseline = {}
        for label, policy in (("variance_0.99", 0.99), ("ratio_10", "ratio:10")):
            sub = settings.replace(svcca_variance=policy, metrics=("svcca",))
            with tempfile.TemporaryDirectory(prefix="saesim-bench-policy-") as folder:
                seconds, grid = timed(lambda: run_grid(profile, pairs=cells, settings=sub, out=folder,
                                                       cache=args.cache, progress=False))
            frame = grid.frame
            baseline[label] = {"seconds": round(seconds, 1), "cells": cells,
                               "k_x_median": float(frame["svcca_k_x"].median()),
                               "k_y_median": float(frame["svcca_k_y"].median()),
                               "n_pairs_median": float(frame["n_pairs"].median()),
                               "svcca_median": float(frame["svcca"].median()),
                               "svcca_null_median": float(frame["svcca_null_mean"].median())}
        baseline["speedup"] = round(baseline["variance_0.99"]["seconds"] / max(baseline["ratio_10"]["seconds"], 1e-9), 2)
        results["dimension_policy"] = baseline
    finish(results, RESULTS)


if __name__ == "__main__":
    main()
