"""Benchmark: calibration, accuracy and cost of the tail p-values of ``saesim.compare.significance``.

For synthetic nulls of known distribution (normal: the shape the shuffled-pairing nulls of the
book take; gamma: a right-skewed null; beta(2, 5): a bounded one) and R = 100 (the book's) and
1 000 draws, side by side in one run:

* calibration under the null: scores drawn from the null itself, the share of p-values at or
  below 0.05, 0.01 and 0.001 (a calibrated test gives the level) — for the tail p-values and for
  the plain permutation p-value ``(1 + b) / (1 + R)``;
* accuracy in the far tail: scores at true p = 1e-3 and 1e-4, the median and interquartile
  range of log10(estimate / truth) (positive = conservative);
* cost: milliseconds per tail p-value (a GPD fit where fewer than 10 draws reach the score).

Results: ``benchmarks/results/tail_pvalue.json``. Run: ``.venv/bin/python benchmarks/bench_tail_pvalue.py``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import finish, header  # noqa: E402

from saesim.compare.nulls import p_value  # noqa: E402
from saesim.compare.significance import tail_p_value  # noqa: E402

NULLS = {"normal": stats.norm(), "gamma(2)": stats.gamma(2.0), "beta(2,5)": stats.beta(2.0, 5.0)}
LEVELS = (0.05, 0.01, 0.001)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2000, help="null scores per calibration cell")
    parser.add_argument("--far-reps", type=int, default=100, help="nulls per far-tail cell")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "tail_pvalue.json")
    args = parser.parse_args()
    results = header("tail_pvalue", threads=1, seed=1)
    rng = np.random.default_rng(1)
    rows = []
    for n_draws in (100, 1000):
        for name, dist in NULLS.items():
            tail, perm, seconds = [], [], 0.0
            for _ in range(args.reps):
                score, null = dist.rvs(random_state=rng), dist.rvs(n_draws, random_state=rng)
                started = time.perf_counter()
                tail.append(tail_p_value(score, null))
                seconds += time.perf_counter() - started
                perm.append(p_value(score, null))
            tail, perm = np.array(tail), np.array(perm)
            row = {"null": name, "n_draws": n_draws,
                   "tail_rate": {str(a): float(np.mean(tail <= a)) for a in LEVELS},
                   "permutation_rate": {str(a): float(np.mean(perm <= a)) for a in LEVELS},
                   "ms_per_p_under_null": round(1e3 * seconds / args.reps, 2), "far": {}}
            for truth in (1e-3, 1e-4):
                started = time.perf_counter()
                estimates = np.array([tail_p_value(dist.isf(truth), dist.rvs(n_draws, random_state=rng))
                                      for _ in range(args.far_reps)])
                ms = 1e3 * (time.perf_counter() - started) / args.far_reps
                ratio = np.log10(estimates / truth)
                row["far"][str(truth)] = {"median_log10_ratio": round(float(np.median(ratio)), 3),
                                          "iqr_log10_ratio": [round(float(q), 3) for q in np.percentile(ratio, [25, 75])],
                                          "permutation_floor": 1 / (n_draws + 1), "ms_per_p": round(ms, 1)}
            rows.append(row)
            print(row, flush=True)
    results["rows"] = rows
    finish(results, args.out)


if __name__ == "__main__":
    main()
