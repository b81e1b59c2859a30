"""Run independent grid cells serially, in local processes, or as Ray tasks.

A cell is a picklable argument; the function is a picklable module-level
callable. Every executor returns one :class:`CellOutcome` per cell, in the
order the cells were given, so results are identical whatever ran them. A
cell that raises is reported (its traceback kept) and does not stop the
others.

Process pools use the ``spawn`` start method (safe with torch) and limit each
worker's BLAS/torch threads to one, so two workers on two cores do not fight.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Literal

from tqdm.auto import tqdm

from saesim.validation import check_positive_int

__all__ = ["CellOutcome", "EXECUTORS", "run_cells"]

EXECUTORS = ("serial", "local", "ray")
Executor = Literal["serial", "local", "ray"]

RAY_OBJECT_STORE_BYTES = 1 << 30
"""Object store for a Ray instance started here (the default takes ~30 % of /dev/shm)."""


@dataclass(frozen=True)
class CellOutcome:
    """What happened to one cell: its value, or the error that stopped it."""

    cell: Any
    value: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _limit_threads() -> None:
    """Worker initialiser: one BLAS and one torch thread per process."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # threadpoolctl ships with scikit-learn; env vars still apply
        pass
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def _guarded(fn: Callable, cell) -> CellOutcome:
    try:
        return CellOutcome(cell=cell, value=fn(cell))
    except Exception:  # noqa: BLE001 - a failed cell is reported, the grid goes on
        return CellOutcome(cell=cell, error=traceback.format_exc())


def run_cells(
    fn: Callable,
    cells: Iterable,
    *,
    executor: Executor = "local",
    n_workers: int | None = None,
    ray_address: str | None = None,
    progress: bool = True,
    description: str = "cells",
) -> list[CellOutcome]:
    """Apply ``fn`` to every cell and collect the outcomes in cell order.

    Parameters
    ----------
    fn : callable
        A module-level function of one cell (picklable).
    cells : iterable
        Picklable cell descriptions.
    executor : {"serial", "local", "ray"}, default "local"
        "serial" runs in this process; "local" in a pool of ``n_workers``
        spawned processes; "ray" as Ray tasks on the cluster at
        ``ray_address`` (a local Ray instance when None).
    n_workers : int, optional
        Process count for "local" (default: number of CPUs) and CPUs for a
        local Ray instance.
    ray_address : str, optional
        Address of an existing Ray cluster, e.g. "ray://head:10001" or "auto".
    progress : bool, default True
        Show a tqdm progress bar.

    Returns
    -------
    list of CellOutcome
    """
    cells = list(cells)
    if executor not in EXECUTORS:
        raise ValueError(f"`executor` must be one of {EXECUTORS}; got {executor!r}.")
    if n_workers is not None:
        check_positive_int(n_workers, "n_workers", fix="Pass None for all cores.")
    if not cells:
        return []
    bar = tqdm(total=len(cells), desc=description, disable=not progress)
    try:
        if executor == "serial" or (executor == "local" and (n_workers or os.cpu_count() or 1) == 1):
            outcomes = []
            for cell in cells:
                outcomes.append(_guarded(fn, cell))
                bar.update()
            return outcomes
        if executor == "local":
            return _run_local(fn, cells, n_workers or os.cpu_count() or 1, bar)
        return _run_ray(fn, cells, n_workers, ray_address, bar)
    finally:
        bar.close()


def _run_local(fn, cells, n_workers, bar) -> list[CellOutcome]:
    import multiprocessing

    outcomes: list[CellOutcome | None] = [None] * len(cells)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(n_workers, len(cells)), mp_context=context,
                             initializer=_limit_threads) as pool:
        futures = {pool.submit(_guarded, fn, cell): i for i, cell in enumerate(cells)}
        for future in as_completed(futures):
            i = futures[future]
            try:
                outcomes[i] = future.result()
            except Exception:  # noqa: BLE001 - e.g. a worker killed by the OS
                outcomes[i] = CellOutcome(cell=cells[i], error=traceback.format_exc())
            bar.update()
    return outcomes  # type: ignore[return-value]


def _run_ray(fn, cells, n_workers, ray_address, bar) -> list[CellOutcome]:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        if ray_address:
            ray.init(address=ray_address, log_to_driver=False)
        else:
            # A local instance sees the driver's import path, so any importable fn works.
            env = {"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}}
            ray.init(num_cpus=n_workers or os.cpu_count() or 1, include_dashboard=False,
                     object_store_memory=RAY_OBJECT_STORE_BYTES, log_to_driver=False, runtime_env=env)
    try:
        remote = ray.remote(num_cpus=1)(_ray_task)
        refs = [remote.remote(fn, cell) for cell in cells]
        index = {ref: i for i, ref in enumerate(refs)}
        outcomes: list[CellOutcome | None] = [None] * len(cells)
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                i = index[ref]
                try:
                    outcomes[i] = ray.get(ref)
                except Exception:  # noqa: BLE001 - a task or worker failure
                    outcomes[i] = CellOutcome(cell=cells[i], error=traceback.format_exc())
                bar.update()
        return outcomes  # type: ignore[return-value]
    finally:
        if started_here:
            ray.shutdown()


def _ray_task(fn, cell) -> CellOutcome:
    _limit_threads()
    return _guarded(fn, cell)
