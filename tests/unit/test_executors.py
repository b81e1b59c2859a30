"""Tests for saesim.experiments.executors: same outcomes whatever runs the cells."""

import numpy as np
import pytest

from saesim.experiments.executors import run_cells


def seeded_statistic(cell):
    """A deterministic, CPU-bound cell: mean of a seeded draw; cell 3 fails."""
    seed, size = cell
    if seed == 3:
        raise RuntimeError("cell 3 always fails")
    return float(np.random.default_rng(seed).normal(size=size).mean())


CELLS = [(seed, 1000) for seed in range(6)]


class TestRunCells:
    def test_serial_results_in_order_and_failures_reported(self):
        outcomes = run_cells(seeded_statistic, CELLS, executor="serial", progress=False)
        assert [o.cell for o in outcomes] == CELLS
        assert [o.ok for o in outcomes] == [True, True, True, False, True, True]
        assert "cell 3 always fails" in outcomes[3].error
        assert outcomes[0].value == seeded_statistic(CELLS[0])

    def test_local_processes_equal_serial(self):
        serial = run_cells(seeded_statistic, CELLS, executor="serial", progress=False)
        local = run_cells(seeded_statistic, CELLS, executor="local", n_workers=2, progress=False)
        assert [o.value for o in local] == [o.value for o in serial]
        assert [o.ok for o in local] == [o.ok for o in serial]

    @pytest.mark.slow
    def test_ray_equals_serial(self):
        pytest.importorskip("ray")
        serial = run_cells(seeded_statistic, CELLS, executor="serial", progress=False)
        ray_out = run_cells(seeded_statistic, CELLS, executor="ray", n_workers=2, progress=False)
        assert [o.value for o in ray_out] == [o.value for o in serial]
        assert not ray_out[3].ok and "cell 3 always fails" in ray_out[3].error

    def test_empty_and_bad_options(self):
        assert run_cells(seeded_statistic, [], progress=False) == []
        with pytest.raises(ValueError, match=r"`executor` must be one of"):
            run_cells(seeded_statistic, CELLS, executor="dask", progress=False)
        with pytest.raises(ValueError, match=r"`n_workers` must be a positive integer"):
            run_cells(seeded_statistic, CELLS, n_workers=0, progress=False)
