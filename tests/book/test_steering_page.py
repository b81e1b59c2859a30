"""The steering chapter executed on the tiny profile: the stage runs once, the page reads it back."""

from pathlib import Path

import nbformat
import pandas as pd
import pytest

from saesim.experiments.steering import STEERING_COLUMNS, SteeringSettings, run_steering, steering_meta

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_steering(tmp_path_factory):
    from saesim.config import load_profile
    from saesim.experiments.grid import GridPlan, run_profile

    cache = tmp_path_factory.mktemp("steer_cache")
    profile = load_profile("tiny")
    run_profile(profile, plan=GridPlan(executor="serial", progress=False), cache=cache, semantic=False)
    table = run_steering(profile, SteeringSettings(comparisons=("full_space", "control"), n_boot=200), cache=cache)
    return profile, cache, table


@pytest.mark.slow
class TestSteeringStage:
    def test_table_has_the_issue_columns_and_every_vector(self, tiny_steering):
        _, _, table = tiny_steering
        assert list(table.columns) == list(STEERING_COLUMNS)
        assert {"native", "procrustes", "lstsq", "activation", "shuffled", "random_orthogonal",
                "random_vector"} <= set(table["map"])
        native = table[table["map"] == "native"]
        # B's own vector against itself: 1, or undefined where it does not raise its keywords
        assert native["efficiency"].notna().any() and (native["efficiency"].dropna() == 1.0).all()
        head = table[(table["map"] == "procrustes") & (table["recipe"] == "mean_diff")]
        assert head["p"].between(0, 1).all() and head["p_holm"].ge(head["p"] - 1e-12).all()

    def test_rerun_reads_the_table_back_and_other_settings_recompute(self, tiny_steering, monkeypatch):
        profile, cache, table = tiny_steering
        import saesim.experiments.steering as stage

        def refuse(*args, **kwargs):
            raise RuntimeError("recomputed a cached table")

        monkeypatch.setattr(stage, "_run_comparison", refuse)
        again = run_steering(profile, SteeringSettings(comparisons=("full_space", "control"), n_boot=200), cache=cache)
        pd.testing.assert_frame_equal(again, table)
        with pytest.raises(RuntimeError, match="recomputed"):
            run_steering(profile, SteeringSettings(comparisons=("full_space", "control"), n_boot=201), cache=cache)

    def test_same_seed_same_table(self, tiny_steering, tmp_path):
        profile, cache, table = tiny_steering
        again = run_steering(profile, SteeringSettings(comparisons=("full_space", "control"), n_boot=200), cache=cache,
                             out=tmp_path)
        pd.testing.assert_frame_equal(again, table)

    def test_bad_settings_are_explained(self, tiny_steering):
        profile, cache, _ = tiny_steering
        with pytest.raises(ValueError, match="not comparisons of profile"):
            run_steering(profile, SteeringSettings(comparisons=("nope",)), cache=cache)
        with pytest.raises(ValueError, match="unknown"):
            SteeringSettings(concepts=("Weather",))
        with pytest.raises(ValueError, match="reference_alpha"):
            SteeringSettings(alphas=(0.5, 1.0), reference_alpha=0.25)

    def test_page_executes_and_quotes_its_numbers(self, tiny_steering, tmp_path):
        import jupytext
        import papermill

        profile, cache, _ = tiny_steering
        source = jupytext.read(ROOT / "notebooks" / "steering.py", fmt="py:percent")
        nbformat.write(source, tmp_path / "steering.ipynb")
        papermill.execute_notebook(str(tmp_path / "steering.ipynb"), str(tmp_path / "out.ipynb"),
                                   parameters={"profile": "tiny", "cache_dir": str(cache), "n_boot": 200,
                                               "figures_dir": str(tmp_path / "figures")},
                                   cwd=str(ROOT), progress_bar=False, kernel_name="python3")
        out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
        text = "\n".join(str(o.get("data", {}).get("text/markdown", "")) + str(o.get("data", {}).get("text/html", ""))
                         for c in out.cells if c.cell_type == "code" for o in c.get("outputs", []))
        assert "median transfer efficiency" in text and "shuffled-pairing" in text
        meta = steering_meta(profile, cache=cache)
        assert meta["settings"]["n_boot"] == 200
        for name in ("fig_steering_method", "fig_steering_depth", "fig_steering_curves"):
            assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 0, name
