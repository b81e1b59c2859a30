"""Tests for saesim.report.plots_robust (the baselines and sweep figures, re-exported by saesim.report.plots)."""

import pandas as pd
import pytest

from saesim.experiments.baselines import control_comparison
from saesim.report import plots, plots_robust
from saesim.report.plots import plot_baselines, plot_sweep, policy_label
from tests.planted_layers import fake_record


class TestPlots:
    def test_plots_draw(self):
        pytest.importorskip("matplotlib")
        import matplotlib

        matplotlib.use("Agg")
        sae = pd.DataFrame([fake_record(0, 0, 0.8, 0.75, 0.85)])
        table = control_comparison(sae, control=pd.DataFrame([fake_record(0, 0, 0.4, 0.3, 0.5)]))
        assert plot_baselines(table, "svcca") is not None
        # A percentile CI entirely below the full-sample score (common after re-pairing) still draws.
        below = control_comparison(pd.DataFrame([fake_record(0, 0, 0.8, 0.6, 0.7)]))
        fig = plot_baselines(below, "svcca")
        vertical = [seg for c in fig.axes[0].collections if hasattr(c, "get_segments") for seg in c.get_segments()
                    if seg[0, 0] == seg[1, 0]]
        assert tuple(vertical[0][:, 1].round(6)) == (0.6, 0.7)
        sweep = pd.DataFrame({"fraction": [0.1, 1.0], "svcca": [0.5, 0.6], "svcca_null_mean": [0.3, 0.3]})
        assert plot_sweep(sweep, "fraction", metrics=("svcca",)) is not None

    def test_baselines_draw_the_null_band_the_caption_names(self):
        from matplotlib.collections import PolyCollection

        table = control_comparison(pd.DataFrame([fake_record(0, 0, 0.8, 0.75, 0.85)]))
        fig = plot_baselines(table, "svcca")
        null = table[table["comparison"] == "shuffle_null"].iloc[0]
        bands = [c for c in fig.axes[0].collections if isinstance(c, PolyCollection)]
        assert len(bands) == 1
        ys = bands[0].get_paths()[0].vertices[:, 1]
        assert ys.min() == pytest.approx(null["ci_low"]) and ys.max() == pytest.approx(null["ci_high"])
        labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        assert any("shuffled null" in t for t in labels)

    def test_plots_are_not_managed_by_pyplot(self):
        import matplotlib.pyplot as plt

        before = plt.get_fignums()
        table = control_comparison(pd.DataFrame([fake_record(0, 0, 0.8, 0.75, 0.85)]))
        plot_baselines(table, "svcca")
        sweep = pd.DataFrame({"policy": ["0.99", "10", "ratio:10"], "svcca": [0.5, 0.6, 0.55],
                              "svcca_null_mean": [0.3, 0.3, 0.3]})
        plot_sweep(sweep, "policy", metrics=("svcca",))
        assert plt.get_fignums() == before  # an inline backend would show them a second time, uncaptioned

    def test_categorical_sweep_points_are_not_joined_and_ticks_are_named(self):
        sweep = pd.DataFrame({"policy": ["0.5", "0.99", "1", "ratio:10", "ratio:50"],
                              "svcca": [0.5, 0.6, 0.55, 0.5, 0.4], "svcca_null_mean": [0.3] * 5})
        fig = plot_sweep(sweep, "policy", metrics=("svcca",))
        ax = fig.axes[0]
        assert all(line.get_linestyle() == "None" for line in ax.get_lines())
        assert [t.get_text() for t in ax.get_xticklabels()] == ["50% var", "99% var", "k=1", "k=n/10", "k=n/50"]

    def test_many_sweep_panels_wrap_with_one_legend(self):
        rows = [{"r_min": r, "svcca": 0.5, "svcca_null_mean": 0.3, "rule": rule, "direction": d, "setting": "x"}
                for r in (0.0, 0.1) for rule in ("a", "b", "c", "d", "e", "f") for d in ("b_to_a", "a_to_b")]
        fig = plot_sweep(pd.DataFrame(rows), "r_min", metrics=("svcca",), hue="setting", col="rule",
                         style="direction", ncols=3)
        visible = [ax for ax in fig.axes if ax.get_visible()]
        assert len(visible) == 6 and len(fig.legends) == 1

    def test_plots_module_is_the_entry_point(self):
        for name in ("plot_baselines", "plot_sweep", "policy_label"):
            assert getattr(plots, name) is getattr(plots_robust, name) and name in plots.__all__

    def test_policy_labels(self):
        assert [policy_label(p) for p in (0.99, "0.5", 1, 10, "ratio:50", "other")] == [
            "99% var", "50% var", "k=1", "k=10", "k=n/50", "other"]
