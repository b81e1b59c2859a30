"""The experiments on the tiny profile: grids, resume, executors give identical tables."""

import numpy as np
import pandas as pd
import pytest

from saesim.experiments.grid import GRID_COLUMNS, CompareSettings, run_grid, semantic_grid

SETTINGS = CompareSettings(rules=("first_index", "many_to_one", "hungarian"), n_perm=30, seed=0)


@pytest.fixture(scope="module")
def serial_grid(tiny_profile, tiny_extraction, session_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("grid_serial")
    return run_grid(tiny_profile, settings=SETTINGS, cache=session_cache, out=out, executor="serial", progress=False)


class TestRunGrid:
    def test_table_and_parquet(self, serial_grid, tiny_profile):
        frame = serial_grid.frame
        n_cells = len(tiny_profile.layers("a")) * len(tiny_profile.layers("b"))
        assert len(frame) == n_cells * 3 and not serial_grid.failed
        assert set(GRID_COLUMNS) <= set(frame.columns)
        assert {"svcca_p_holm", "svcca_p_bh", "rsa_p_bh"} <= set(frame.columns)
        pd.testing.assert_frame_equal(pd.read_parquet(serial_grid.path), frame)

    def test_two_processes_equal_one(self, serial_grid, tiny_profile, session_cache, tmp_path):
        local = run_grid(tiny_profile, settings=SETTINGS, cache=session_cache, out=tmp_path, executor="local",
                         n_workers=2, progress=False)
        pd.testing.assert_frame_equal(local.frame, serial_grid.frame)

    def test_resume_reuses_cells_and_recomputes_missing(self, tiny_profile, session_cache, tmp_path):
        first = run_grid(tiny_profile, settings=SETTINGS, cache=session_cache, out=tmp_path, executor="serial",
                         progress=False)
        cells = sorted((tmp_path / "cells" / "full_space").glob("*.json"))
        cells[0].unlink()  # as if the run had been interrupted before this cell
        cells[1].write_text("{not json")  # a damaged cell is recomputed, not trusted
        again = run_grid(tiny_profile, settings=SETTINGS, cache=session_cache, out=tmp_path, executor="serial",
                         progress=False)
        assert (again.reused, again.computed) == (len(cells) - 2, 2)
        pd.testing.assert_frame_equal(again.frame, first.frame)

    def test_other_settings_are_not_reused(self, tiny_profile, session_cache, tmp_path):
        run_grid(tiny_profile, settings=SETTINGS, cache=session_cache, out=tmp_path, executor="serial", progress=False)
        other = run_grid(tiny_profile, settings=SETTINGS.replace(seed=1), cache=session_cache, out=tmp_path,
                         executor="serial", progress=False)
        assert other.reused == 0

    def test_failed_cell_is_reported_and_others_kept(self, tiny_profile, session_cache, tmp_path):
        bad = tiny_profile.layers("b")[-1] + 5  # a layer that was never extracted
        result = run_grid(tiny_profile, layers_b=(tiny_profile.layers("b")[0], bad), settings=SETTINGS,
                          cache=session_cache, out=tmp_path, executor="serial", progress=False)
        assert len(result.failed) == len(tiny_profile.layers("a"))
        assert set(result.frame["layer_b"]) == {tiny_profile.layers("b")[0]}

    @pytest.mark.slow
    def test_ray_equals_serial(self, serial_grid, tiny_profile, session_cache, tmp_path):
        ray_grid = run_grid(tiny_profile, settings=SETTINGS, cache=session_cache, out=tmp_path, executor="ray",
                            n_workers=2, progress=False)
        pd.testing.assert_frame_equal(ray_grid.frame, serial_grid.frame)


def test_semantic_grid(tiny_profile, tiny_extraction, session_cache, tmp_path):
    result = semantic_grid(tiny_profile, settings=SETTINGS, cache=session_cache, out=tmp_path, executor="serial",
                           progress=False)
    frame = result.frame
    assert {"concept", "n_members_a", "n_members_b", "n_pairs", "skipped"} <= set(frame.columns)
    assert set(frame["concept"]) >= {"Time", "Nature", "Control"}
    assert (tmp_path / "subspace.parquet").exists()


def test_best_partners_are_cached_once_per_layer_pair(tiny_profile, tiny_extraction, session_cache, tmp_path):
    from saesim.extract.cache import ArtefactStore
    from saesim.compare.corr import best_partners
    from saesim.experiments.grid import cached_best_partners
    from saesim.extract.pipeline import load_layer

    la, lb = tiny_profile.layers("a")[0], tiny_profile.layers("b")[0]
    data_a = load_layer(tiny_profile, "a", la, out=session_cache)
    data_b = load_layer(tiny_profile, "b", lb, out=session_cache)
    store = ArtefactStore(tmp_path / "store")
    first = cached_best_partners(data_a, data_b, cache=store)
    assert len(list((tmp_path / "store" / "arrays").rglob("manifest.json"))) == 1
    again = cached_best_partners(data_a, data_b, cache=store)  # read back, not recomputed
    direct = best_partners(data_a.codes, data_b.codes)
    for name in ("index", "r", "index_a", "r_a", "dead_a", "dead_b", "top_index", "top_r", "top_index_a", "top_r_a"):
        np.testing.assert_array_equal(getattr(first, name), getattr(direct, name))
        np.testing.assert_array_equal(getattr(again, name), getattr(direct, name))
    assert again.n_tokens == direct.n_tokens and again.compat == direct.compat
    assert cached_best_partners(data_a, data_b, compat=True, cache=store).compat  # compat has its own entry
    assert len(list((tmp_path / "store" / "arrays").rglob("manifest.json"))) == 2


def test_run_command_scores_the_chosen_metrics(tiny_profile, tiny_extraction, session_cache, tmp_path, capsys):
    from saesim.cli import main

    layer = str(tiny_profile.layers("a")[0])
    status = main(["run", "--profile", "tiny", "--cache", str(session_cache), "--out", str(tmp_path),
                   "--layers", layer, "--metrics", "svcca", "rsa", "--n-perm", "5", "--no-control", "--no-semantic",
                   "--executor", "serial", "--no-progress"])
    assert status == 0
    frame = pd.read_parquet(tmp_path / "full_space.parquet")
    assert frame["svcca_p"].notna().all() and frame["rsa_p"].notna().all()
    assert not any(column.startswith("linear_cka") for column in frame.columns)
    with pytest.raises(SystemExit):
        main(["run", "--profile", "tiny", "--metrics", "cka"])
    assert "invalid choice: 'cka'" in capsys.readouterr().err
