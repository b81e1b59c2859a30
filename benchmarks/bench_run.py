"""Benchmark: ``saesim run --n-perm 1000 --metrics svcca rsa`` on the offline profile, stage by stage.

The target (issue 13): the A-vs-B grid under both rules plus the concept grid, each with the
paper's 1 000 permutations of SVCCA and RSA, in <= 15 min after extraction on 2 cores. The
stages run one after the other on the cached extraction (best partners cached too), into a
fresh results folder, with the run's own worker pool; ``--controls`` adds the seed and both
random-model grids.

Baseline, in the same run: the many-to-1 group null of one real cell (A3-B7) drawn by saesim as
it was at ``BASELINE_COMMIT`` (the previous release, unpacked from git into a temporary folder and
run in a subprocess) against the working tree, on the same pairs and seed, each timed twice in
turn (the faster kept), for the run's measures and for an identical statistic (SVCCA at a fixed
k); the nulls that the two versions define alike must agree within 1e-9 (``kernel_baseline``).

Run after ``saesim extract --profile offline``:
``.venv/bin/python benchmarks/bench_run.py [--cache .saesim_cache] [--controls]``
Results go to ``benchmarks/results/run.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # the kernel baseline runs as a grid worker does: one BLAS thread

import numpy as np  # noqa: E402
from _report import finish, header, timed  # noqa: E402

from saesim.config import load_profile  # noqa: E402
from saesim.compare.stages import filtered_pairs  # noqa: E402
from saesim.experiments.grid import (  # noqa: E402
    GridPlan, _metric_kwargs, cached_best_partners, run_grid, semantic_grid, settings_from_profile,
)
from saesim.extract.pipeline import load_layer  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "run.json"
REPO = Path(__file__).resolve().parent.parent
BASELINE_COMMIT = "4f55e46f25a2717ff1f9967a54bcd8742f810f12"
"""saesim before the group-null kernels were regrouped (draws interleaved across measures, numpy's
LAPACK, RSA gathering the other side's block sums in rank order)."""
BASELINE_CELL = (3, 7)
NULLS_AGREE = 1e-9


BASELINE_SCRIPT = """
import importlib.util, pathlib, sys, time
import numpy as np
# The package from the folder given, not the editable install (whose finder outranks PYTHONPATH).
root = pathlib.Path(sys.argv[3]) / "saesim"
spec = importlib.util.spec_from_file_location("saesim", root / "__init__.py", submodule_search_locations=[str(root)])
package = importlib.util.module_from_spec(spec)
sys.modules["saesim"] = package
spec.loader.exec_module(package)
import saesim.compare.nulls
from saesim.compare.nulls import permutation_tests
data = np.load(sys.argv[1], allow_pickle=True)
measures = list(data["measures"])
permutation_tests(data["x"][:40], data["y"][:40], measures, n_perm=2, seed=0, groups=data["groups"][:40])
def run(n_perm):
    return permutation_tests(data["x"], data["y"], measures, n_perm=n_perm, seed=int(data["seed"]),
                             groups=data["groups"])
started = time.perf_counter()
run(1)  # cold: builds what the draws share (and fills the content memos, as a run's first cell does)
seconds = [time.perf_counter() - started]
for n_perm in (1, int(data["n_draws"])):  # warm, so their difference is the draws alone
    started = time.perf_counter()
    tests = run(n_perm)
    seconds.append(time.perf_counter() - started)
np.savez(sys.argv[2], seconds=np.array(seconds), nulls=np.array([t.null for t in tests]),
         source=str(pathlib.Path(saesim.compare.nulls.__file__).resolve()))
"""
"""Times one cell's group null in the saesim of a folder: cold with one draw, then warm with one and with
``n_draws`` draws (their difference is the draws alone)."""


def group_null_timing(sources: Path, inputs: Path) -> tuple[float, float, np.ndarray]:
    """``(cold setup seconds, seconds per draw, nulls)`` of the saesim in ``sources``, in a fresh process."""
    with tempfile.TemporaryDirectory(prefix="saesim-bench-null-") as work:
        output = Path(work) / "out.npz"
        subprocess.run([sys.executable, "-c", BASELINE_SCRIPT, str(inputs), str(output), str(sources)], check=True)
        result = np.load(output)
        expected = (Path(sources) / "saesim" / "nulls.py").resolve()
        if Path(str(result["source"])) != expected:
            raise RuntimeError(f"the timing ran {result['source']}, not {expected}")
        cold, one, many = result["seconds"]
        n_draws = result["nulls"].shape[1]
        return float(cold), float((many - one) / (n_draws - 1)), result["nulls"]


def kernel_baseline(profile, settings, cache, n_draws: int) -> dict:
    """Per-draw milliseconds of the many-to-1 group null: the previous release against this tree.

    Two sets of measures, each timed twice in turn: the run's own (corrected SVCCA under the ratio
    rule, RSA, the authors' k = 1 SVCCA; the ratio rule now counts the hub side's distinct rows, so
    its corrected SVCCA is another statistic and only RSA and k = 1 must agree), and the same with
    corrected SVCCA at a fixed k (the B side's ratio k on both sides), an identical statistic in
    both versions, so every null must agree."""
    la, lb = BASELINE_CELL
    data_a, data_b = load_layer(profile, "a", la, out=cache), load_layer(profile, "b", lb, out=cache)
    best = cached_best_partners(data_a, data_b, cache=cache)
    layer_a, layer_b = data_a.to_sae_layer(), data_b.to_sae_layer()
    pairs, _ = filtered_pairs(best, layer_a, layer_b, settings, rule="many_to_one", direction="b_to_a")
    x, y = (np.asarray(rows, dtype=np.float64) for rows in pairs.rows(layer_a.decoder, layer_b.decoder))
    fixed_k = int(pairs.n_pairs // 10)
    sets = {
        "run_measures": [("svcca", _metric_kwargs("svcca", settings)), ("rsa", {}), ("svcca", {"compat": True})],
        "same_statistic": [("svcca", {"variance": fixed_k}), ("rsa", {}), ("svcca", {"compat": True})],
    }
    out = {"cell": f"A{la}-B{lb}", "n_pairs": int(pairs.n_pairs), "n_hub_partners": int(np.unique(pairs.a).size),
           "n_draws": n_draws, "baseline": BASELINE_COMMIT[:12]}
    with tempfile.TemporaryDirectory(prefix="saesim-bench-baseline-") as work:
        work = Path(work)
        archive = subprocess.run(["git", "archive", BASELINE_COMMIT, "saesim"], cwd=REPO, check=True,
                                 capture_output=True).stdout
        (work / "baseline").mkdir()
        subprocess.run(["tar", "-x", "-C", str(work / "baseline")], input=archive, check=True)
        for label, measures in sets.items():
            names = [f"{m}{'(k=1)' if o.get('compat') else ''}" for m, o in measures]
            inputs = work / f"{label}.npz"
            np.savez(inputs, x=x, y=y, groups=pairs.a, measures=np.array(measures, dtype=object), n_draws=n_draws,
                     seed=settings.seed)
            timings = {"baseline": [], "new": []}
            for _ in range(2):
                timings["baseline"].append(group_null_timing(work / "baseline", inputs))
                timings["new"].append(group_null_timing(REPO, inputs))
            (old_setup, old_draw, old_nulls), (new_setup, new_draw, new_nulls) = (
                min(runs, key=lambda run: run[1]) for runs in (timings["baseline"], timings["new"]))
            differences = {name: float(np.max(np.abs(a - b))) for name, a, b in zip(names, old_nulls, new_nulls)}
            must_agree = [n for n in names if label == "same_statistic" or n != "svcca"]
            out[label] = {"measures": names, "options": [dict(o) for _, o in measures],
                          "baseline_ms_per_draw": round(1e3 * old_draw, 1), "new_ms_per_draw": round(1e3 * new_draw, 1),
                          "baseline_setup_s": round(old_setup, 2), "new_setup_s": round(new_setup, 2),
                          "speedup": round(old_draw / new_draw, 2), "max_null_difference": differences,
                          "must_agree": must_agree,
                          "nulls_agree": bool(max(differences[n] for n in must_agree) <= NULLS_AGREE)}
    out["nulls_agree"] = all(out[label]["nulls_agree"] for label in sets)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=".saesim_cache")
    parser.add_argument("--n-perm", type=int, default=1000)
    parser.add_argument("--controls", action="store_true", help="also time the seed and random-model grids")
    parser.add_argument("--baseline-draws", type=int, default=200)
    parser.add_argument("--kernels-only", action="store_true",
                        help="re-measure the group-null kernels only, into the existing results")
    args = parser.parse_args()
    profile = load_profile("encoders")
    settings = settings_from_profile(profile, n_perm=args.n_perm, metrics=("svcca", "rsa"))
    results = header("run", threads=1, seed=settings.seed)
    results.update(n_perm=args.n_perm, metrics=["svcca", "rsa"], rules=list(settings.rules), workers=os.cpu_count(),
                   stages={})
    if args.kernels_only:  # keep the stages of the last full run, measured on a quiet machine
        kept = json.loads(RESULTS.read_text())
        kept.setdefault("machine", results["machine"])  # a record without one gets this run's
        kept["group_null_kernels"] = kernel_baseline(profile, settings, args.cache, args.baseline_draws)
        kept["group_null_kernels"]["measured"] = results["created"]
        kept["machine"]["load_average_kernels"] = list(os.getloadavg())
        finish(kept, RESULTS)
        return
    results["group_null_kernels"] = kernel_baseline(profile, settings, args.cache, args.baseline_draws)
    comparisons = profile.comparisons()
    if not args.controls:
        comparisons = {"full_space": comparisons["full_space"]}
    with tempfile.TemporaryDirectory(prefix="saesim-bench-run-") as out:
        target = 0.0
        for name, slots in comparisons.items():
            plan = GridPlan(slots=slots, progress=False)
            seconds, grid = timed(lambda: run_grid(profile, plan=plan, settings=settings, out=out, cache=args.cache))
            results["stages"][name] = {"seconds": round(seconds, 1), "cells": len(grid.frame) // len(settings.rules),
                                       "records": len(grid.frame), "failed": len(grid.failed)}
            target += seconds if name == "full_space" else 0.0
        seconds, grid = timed(lambda: semantic_grid(profile, plan=GridPlan(progress=False), settings=settings,
                                                    out=out, cache=args.cache))
        results["stages"]["subspace"] = {"seconds": round(seconds, 1), "records": len(grid.frame),
                                         "failed": len(grid.failed)}
        target += seconds
    results["target_minutes"] = round(target / 60, 2)
    results["target_met"] = bool(target <= 15 * 60)
    results["total_minutes"] = round(sum(s["seconds"] for s in results["stages"].values()) / 60, 2)
    finish(results, RESULTS)


if __name__ == "__main__":
    main()
