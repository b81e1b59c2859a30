"""The experiments on the tiny profile: grids, resume, executors give identical tables."""

import numpy as np
import pandas as pd
import pytest

from saesim.compare.multitest import holm
from saesim.compare.effects import effect_sizes
from saesim.compare.geometry import MEASURES
from saesim.experiments.grid import (GRID_COLUMNS, METRICS, MIN_SUBSPACE, CompareSettings, GridPlan, run_grid,
                                     semantic_grid)

SETTINGS = CompareSettings(rules=("first_index", "many_to_one", "hungarian"), n_perm=30, seed=0)
SERIAL = GridPlan(executor="serial", progress=False)


@pytest.fixture(scope="module")
def serial_grid(tiny_profile, tiny_extraction, session_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("grid_serial")
    return run_grid(tiny_profile, plan=SERIAL, settings=SETTINGS, cache=session_cache, out=out)


class TestRunGrid:
    def test_table_and_parquet(self, serial_grid, tiny_profile):
        frame = serial_grid.frame
        n_cells = len(tiny_profile.layers("a")) * len(tiny_profile.layers("b"))
        assert len(frame) == n_cells * 3 and not serial_grid.failed
        assert set(GRID_COLUMNS) <= set(frame.columns)
        assert not any(c.endswith("_p_bh") for c in frame.columns)  # one procedure: Holm
        for metric in ("svcca", "rsa", "svcca_authors_k"):
            # the tail p-value never exceeds the permutation one, and Holm within each rule and direction
            assert (frame[f"{metric}_p_tail"] <= frame[f"{metric}_p"] + 1e-15).all()
            for _, family in frame.groupby(["rule", "direction"]):
                assert np.allclose(family[f"{metric}_p_holm"], holm(family[f"{metric}_p_tail"].to_numpy()))
        pd.testing.assert_frame_equal(pd.read_parquet(serial_grid.path), frame)

    def test_scores_counts_and_nulls_hold_their_values(self, serial_grid):
        """Every record is scored: each score lies in its measure's range, p in [1/(R+1), 1], z and the
        excess over the null agree with the null's mean and spread, and the stage counts only shrink."""
        frame = serial_grid.frame
        # the counts: each filter stage keeps a subset of the one before; a 1-1 rule uses each A latent once
        stages = ["n_choosers", "n_with_partner", "n_after_junk", "n_after_1to1", "n_pairs"]
        for wider, narrower in zip(stages, stages[1:]):
            assert (frame[narrower] <= frame[wider]).all(), (wider, narrower)
        assert (frame["n_pairs"] > MIN_SUBSPACE).all()  # so every record below is scored
        assert (frame["n_unique_a"] <= frame["n_pairs"]).all()
        one_to_one = frame["rule"] != "many_to_one"
        assert (frame.loc[one_to_one, "n_unique_a"] == frame.loc[one_to_one, "n_pairs"]).all()
        assert (frame.loc[~one_to_one, "n_unique_a"] < frame.loc[~one_to_one, "n_pairs"]).all()
        assert (frame["mean_r_filtered"] > SETTINGS.r_min).all() and (frame["mean_best_r"] <= 1).all()
        assert list(frame["null_kind"]) == ["group" if rule == "many_to_one" else "shuffle" for rule in frame["rule"]]
        assert (frame["n_perm"] == SETTINGS.n_perm).all()

        n_perm = SETTINGS.n_perm
        effects = effect_sizes(frame)
        for column, measure in [*((m, m) for m in METRICS), ("svcca_authors_k", "svcca")]:
            low, high = MEASURES[measure].value_range
            for suffix in ("", "_null_mean"):
                values = frame[column + suffix].to_numpy(dtype=float)
                assert np.isfinite(values).all() and (values >= low).all() and (values <= high).all(), column + suffix
            p = frame[f"{column}_p"].to_numpy(dtype=float)
            assert (p >= 1 / (n_perm + 1)).all() and (p <= 1).all(), column
            z = frame[f"{column}_z"].to_numpy(dtype=float)
            excess = frame[column].to_numpy(dtype=float) - frame[f"{column}_null_mean"].to_numpy(dtype=float)
            if f"{column}_null_std" in frame:  # the authors'-k SVCCA records no spread
                std = frame[f"{column}_null_std"].to_numpy(dtype=float)
                assert (std > 0).all() and np.isfinite(z).all(), column
                np.testing.assert_allclose(z * std, excess, rtol=1e-9, atol=1e-12)
                np.testing.assert_allclose(effects[f"{column}_effect"], excess, rtol=1e-12, atol=0)
                np.testing.assert_allclose(effects[f"{column}_effect_z"], z, rtol=1e-9)
            else:
                assert np.isfinite(z).all(), column
        assert ((frame["svcca_k_x"] >= 1) & (frame["svcca_k_x"] < frame["n_pairs"])).all()
        assert ((frame["svcca_k_y"] >= 1) & (frame["svcca_k_y"] < frame["n_pairs"])).all()
        assert (frame["svcca_authors_k_k_x"] == 1).all() and (frame["svcca_authors_k_k_y"] == 1).all()

    def test_two_processes_equal_one(self, serial_grid, tiny_profile, session_cache, tmp_path):
        local = run_grid(tiny_profile, plan=SERIAL.replace(executor="local", n_workers=2), settings=SETTINGS,
                         cache=session_cache, out=tmp_path)
        pd.testing.assert_frame_equal(local.frame, serial_grid.frame)
        # the plan is not in the cells' keys: the same cell files as the serial run's
        names = sorted(p.name for p in (tmp_path / "cells" / "full_space").glob("*.json"))
        assert names == sorted(p.name for p in (serial_grid.path.parent / "cells" / "full_space").glob("*.json"))

    def test_resume_reuses_cells_and_recomputes_missing(self, tiny_profile, session_cache, tmp_path):
        first = run_grid(tiny_profile, plan=SERIAL, settings=SETTINGS, cache=session_cache, out=tmp_path)
        cells = sorted((tmp_path / "cells" / "full_space").glob("*.json"))
        cells[0].unlink()  # as if the run had been interrupted before this cell
        cells[1].write_text("{not json")  # a damaged cell is recomputed, not trusted
        again = run_grid(tiny_profile, plan=SERIAL, settings=SETTINGS, cache=session_cache, out=tmp_path)
        assert (again.reused, again.computed) == (len(cells) - 2, 2)
        pd.testing.assert_frame_equal(again.frame, first.frame)

    def test_other_settings_are_not_reused(self, tiny_profile, session_cache, tmp_path):
        run_grid(tiny_profile, plan=SERIAL, settings=SETTINGS, cache=session_cache, out=tmp_path)
        other = run_grid(tiny_profile, plan=SERIAL, settings=SETTINGS.replace(seed=1), cache=session_cache,
                         out=tmp_path)
        assert other.reused == 0

    def test_failed_cell_is_reported_and_others_kept(self, tiny_profile, session_cache, tmp_path):
        bad = tiny_profile.layers("b")[-1] + 5  # a layer that was never extracted
        plan = SERIAL.replace(layers_b=(tiny_profile.layers("b")[0], bad))
        result = run_grid(tiny_profile, plan=plan, settings=SETTINGS, cache=session_cache, out=tmp_path)
        assert len(result.failed) == len(tiny_profile.layers("a"))
        assert set(result.frame["layer_b"]) == {tiny_profile.layers("b")[0]}

    @pytest.mark.slow
    def test_ray_equals_serial(self, serial_grid, tiny_profile, session_cache, tmp_path):
        ray_grid = run_grid(tiny_profile, plan=SERIAL.replace(executor="ray", n_workers=2), settings=SETTINGS,
                            cache=session_cache, out=tmp_path)
        pd.testing.assert_frame_equal(ray_grid.frame, serial_grid.frame)


class TestGridPlan:
    """A plan chooses the cells and how they run; neither the records nor the cells' files depend on it."""

    def test_frame_equals_every_cell_scored_on_its_own(self, serial_grid, tiny_profile, session_cache):
        """What the grid is: each cell of the profile's layers_a × layers_b through compare_pair, in order."""
        from saesim.experiments.grid import compare_pair
        from saesim.extract.pipeline import load_layer
        from saesim.io import to_jsonable

        records = []
        for la in tiny_profile.layers("a"):
            for lb in tiny_profile.layers("b"):
                a = load_layer(tiny_profile, "a", la, out=session_cache).to_sae_layer()
                b = load_layer(tiny_profile, "b", lb, out=session_cache).to_sae_layer()
                records += [to_jsonable(r) for r in compare_pair(a, b, SETTINGS)]
        expected = pd.DataFrame.from_records(records).sort_values(["layer_a", "layer_b", "direction", "rule"],
                                                                  kind="stable").reset_index(drop=True)
        pd.testing.assert_frame_equal(serial_grid.frame[list(expected.columns)], expected)
        assert serial_grid.frame[["profile", "slot_a", "slot_b"]].drop_duplicates().values.tolist() == [
            [tiny_profile.name, "a", "b"]]

    def test_cell_tags_ignore_executor_workers_and_progress(self, serial_grid, tiny_profile, session_cache,
                                                            tmp_path):
        import hashlib
        import shutil

        from saesim.experiments.grid import CELL_VERSION

        shutil.copytree(serial_grid.path.parent / "cells", tmp_path / "cells")
        n_cells = len(tiny_profile.layers("a")) * len(tiny_profile.layers("b"))
        for plan in (None, GridPlan(executor="local", n_workers=2, progress=True), SERIAL.replace(progress=True),
                     GridPlan(executor="ray", n_workers=1, progress=False)):
            result = run_grid(tiny_profile, plan=plan, settings=SETTINGS, cache=session_cache, out=tmp_path)
            assert (result.reused, result.computed) == (n_cells, 0), plan
            pd.testing.assert_frame_equal(result.frame, serial_grid.frame)
        # the tag hashes the profile, the settings, the kind and CELL_VERSION, and nothing else
        key = f"{tiny_profile.key()}|{SETTINGS.key()}|full_space|{CELL_VERSION}"
        tag = hashlib.sha256(key.encode()).hexdigest()[:12]
        names = {p.name for p in (tmp_path / "cells" / "full_space").glob("*.json")}
        assert names == {f"a{la}_b{lb}_{tag}.json" for la in tiny_profile.layers("a")
                         for lb in tiny_profile.layers("b")}

    def test_pairs_run_only_their_cells_with_the_grids_records(self, serial_grid, tiny_profile, session_cache,
                                                               tmp_path):
        import shutil

        la, lb = tiny_profile.layers("a")[-1], tiny_profile.layers("b")[0]
        plan = SERIAL.replace(pairs=[(la, lb)])
        fresh = run_grid(tiny_profile, plan=plan, settings=SETTINGS, cache=session_cache, out=tmp_path / "fresh")
        shutil.copytree(serial_grid.path.parent / "cells", tmp_path / "kept" / "cells")
        reused = run_grid(tiny_profile, plan=plan, settings=SETTINGS, cache=session_cache, out=tmp_path / "kept")
        assert (fresh.computed, fresh.reused, reused.computed, reused.reused) == (1, 0, 0, 1)
        whole = serial_grid.frame
        cell = whole[(whole["layer_a"] == la) & (whole["layer_b"] == lb)].reset_index(drop=True)
        for result in (fresh, reused):
            pd.testing.assert_frame_equal(result.frame[list(GRID_COLUMNS)], cell[list(GRID_COLUMNS)])

    def test_run_profile_keeps_each_comparisons_slots(self, tiny_profile):
        from saesim.experiments.grid import run_profile

        with pytest.raises(ValueError, match=r"leave `plan.slots` at \('a', 'b'\)"):
            run_profile(tiny_profile, plan=GridPlan(slots=("a", "control")))


def test_semantic_grid(tiny_profile, tiny_extraction, session_cache, tmp_path):
    result = semantic_grid(tiny_profile, plan=SERIAL, settings=SETTINGS, cache=session_cache, out=tmp_path)
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
