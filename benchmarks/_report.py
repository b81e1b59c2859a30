"""What every benchmark script records: timing, the machine, peak memory, an atomic JSON write."""

from __future__ import annotations

import json
import os
import platform
import resource
import time
from datetime import datetime, timezone
from pathlib import Path


def timed(function):
    """``(seconds, value)`` of one call."""
    started = time.perf_counter()
    value = function()
    return time.perf_counter() - started, value


def header(benchmark: str, *, threads: int, seed: int) -> dict:
    """The start of a results record: what ran, when, where, with how many BLAS threads."""
    import numpy as np
    import torch

    return {"benchmark": benchmark, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                        "numpy": np.__version__, "torch": torch.__version__, "blas_threads": int(threads),
                        "load_average_before": list(os.getloadavg())},
            "seed": seed}


def finish(results: dict, path: Path) -> None:
    """Add the load after and the peak RSS, write ``path`` atomically and print the record."""
    results["machine"]["load_average_after"] = list(os.getloadavg())
    results["max_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    os.replace(tmp, path)
    print(json.dumps({k: v for k, v in results.items() if k != "machine"}, indent=1))
