"""Tests for the heatmaps' colour scales, number formats and one-value panels (saesim.report.plots.HeatmapStyle).

Each test states a figure defect it guards against: a colour bar that clips the values, a diverging
map for values on one side of 0, a tiny spread stretched over the whole colour range, a panel of one
colour, a "-0.000" in a cell.
"""

import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import QuadMesh

from saesim.report.frames import fmt_number, format_cell
from saesim.report.plots import (
    CONSTANT_LABEL,
    HeatmapStyle,
    comparison_heatmaps,
    concept_heatmap_grid,
    constant_text,
    constant_value,
    heatmap_panels,
    layer_heatmap,
    panel_axes,
    shared_style,
)

LAYERS_A, LAYERS_B = (0, 3, 7), (0, 6, 12)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def layer_frame(values, **columns) -> pd.DataFrame:
    """One row per (A, B) layer pair, ``values`` (any callable of (a, b) or 9 numbers) in column ``value``."""
    cells = [(a, b) for a in LAYERS_A for b in LAYERS_B]
    numbers = [values(a, b) for a, b in cells] if callable(values) else list(values)
    frame = pd.DataFrame({"layer_a": [a for a, _ in cells], "layer_b": [b for _, b in cells], "value": numbers})
    for name, column in columns.items():
        frame[name] = [column(a, b) for a, b in cells] if callable(column) else column
    return frame


def mesh(ax) -> QuadMesh:
    meshes = [c for c in ax.collections if isinstance(c, QuadMesh)]
    assert len(meshes) == 1, f"panel {ax.get_title()!r} has {len(meshes)} heatmaps"
    return meshes[0]


def limits(ax) -> tuple[float, float]:
    return mesh(ax).norm.vmin, mesh(ax).norm.vmax


def colorbar_label(ax) -> str:
    return mesh(ax).colorbar.ax.get_ylabel()


def assert_contains(ax, values):
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    vmin, vmax = limits(ax)
    assert vmin <= finite.min() and finite.max() <= vmax, (vmin, vmax, finite.min(), finite.max())


class TestColourRangeContainsTheData:
    """Colour limits come from the data: no panel's colour bar clips its values (the paper's fixed vmax 0.6)."""

    @pytest.mark.parametrize("column, values", [
        ("svcca_null_mean", lambda a, b: 0.7 + 0.01 * a + 0.001 * b),   # above the old fixed vmax 0.6
        ("svcca_p", lambda a, b: 0.5 + 0.03 * a + 0.001 * b),           # p-values up to 0.72
        ("rsa_p_bh", lambda a, b: 0.9 + 0.01 * a),
        ("mean_best_r", lambda a, b: -0.2 + 0.05 * a),                  # a correlation below 0
        ("svcca", lambda a, b: 0.3 + 0.02 * a + 0.001 * b),
    ])
    def test_every_panel_function(self, column, values):
        frame = layer_frame(values).rename(columns={"value": column})
        drawn = [layer_heatmap(frame, column), panel_axes(heatmap_panels(frame, [column, "layer_a"]))[0],
                 panel_axes(concept_heatmap_grid(frame.assign(concept="Time"), column, counts=None))[0]]
        for ax in drawn:
            assert_contains(ax, frame[column])
            assert mesh(ax).colorbar.extend == "neither"

    def test_given_limits_are_kept_and_the_colour_bar_says_where_they_clip(self):
        frame = layer_frame(lambda a, b: 0.1 * a)
        ax = layer_heatmap(frame, "value", style=HeatmapStyle(vmin=0.1, vmax=0.5))
        assert limits(ax) == (0.1, 0.5)
        assert mesh(ax).colorbar.extend == "both"


class TestSharedScale:
    """Panels compared side by side are on one colour scale that holds every panel's values."""

    def test_comparison_panels_share_one_scale_holding_every_value(self):
        main = layer_frame(lambda a, b: 0.02 + 0.01 * a).rename(columns={"value": "rsa_excess"})
        control = layer_frame(lambda a, b: 0.001 * b).rename(columns={"value": "rsa_excess"})
        axes = panel_axes(comparison_heatmaps([("A vs B", main, "A", "B"), ("control", control, "A", "B")],
                                              "rsa_excess"))
        assert limits(axes[0]) == limits(axes[1])
        for ax, frame in zip(axes, (main, control)):
            assert_contains(ax, frame["rsa_excess"])
        assert limits(axes[0]) == pytest.approx((0.0, 0.09))  # from the null level (0) up, not ±0.09

    def test_heatmap_panels_groups(self):
        frame = layer_frame(lambda a, b: 0.3 + 0.01 * a, svcca_null_mean=lambda a, b: 0.1 + 0.01 * b,
                            rsa=lambda a, b: 0.5 + 0.01 * a)
        frame = frame.rename(columns={"value": "svcca"})
        raw, null, rsa = panel_axes(heatmap_panels(frame, ["svcca", "svcca_null_mean", "rsa"],
                                                   shared_scale=[["svcca", "svcca_null_mean"]]))
        assert limits(raw) == limits(null) == pytest.approx((0.1, 0.37))
        assert limits(rsa) == pytest.approx((0.5, 0.57))
        everything = panel_axes(heatmap_panels(frame, ["svcca", "svcca_null_mean", "rsa"], shared_scale=True))
        assert all(limits(ax) == pytest.approx((0.1, 0.57)) for ax in everything)

    def test_shared_style_for_panels_placed_by_hand(self):
        left = layer_frame(lambda a, b: 0.3 + 0.01 * a).rename(columns={"value": "svcca"})
        right = layer_frame(lambda a, b: 0.5 + 0.01 * b).rename(columns={"value": "svcca"})
        style = shared_style([left, right], "svcca")
        axes = [layer_heatmap(frame, "svcca", style=style) for frame in (left, right)]
        assert limits(axes[0]) == limits(axes[1]) == pytest.approx((0.3, 0.62))

    def test_unknown_column_in_a_group_is_named(self):
        frame = layer_frame(lambda a, b: a + b)
        with pytest.raises(ValueError, match=r"`shared_scale` names \['rsa'\]"):
            heatmap_panels(frame, ["value"], shared_scale=[["value", "rsa"]])


class TestColourMaps:
    """Sequential for values on one side of 0; diverging, centred at 0, only for values on both sides."""

    def test_all_positive_excess_is_sequential_from_zero(self):
        frame = layer_frame(lambda a, b: 0.01 + 0.01 * a).rename(columns={"value": "rsa_excess"})
        for fig in (comparison_heatmaps([("A vs B", frame, "A", "B")], "rsa_excess"),
                    heatmap_panels(frame, ["rsa_excess"])):
            ax = panel_axes(fig)[0]
            assert mesh(ax).get_cmap().name == "Reds"
            assert limits(ax) == pytest.approx((0.0, 0.08))

    def test_all_positive_scores_are_sequential(self):
        frame = layer_frame(lambda a, b: 0.2 + 0.01 * a)
        assert mesh(layer_heatmap(frame, "value")).get_cmap().name == "magma"

    def test_values_on_both_sides_of_zero_diverge_symmetrically(self):
        frame = layer_frame(lambda a, b: 0.01 * a - 0.02).rename(columns={"value": "svcca_excess"})
        ax = panel_axes(comparison_heatmaps([("A vs B", frame, "A", "B")], "svcca_excess"))[0]
        assert mesh(ax).get_cmap().name == "RdBu_r"
        assert limits(ax) == pytest.approx((-0.05, 0.05))

    def test_all_negative_excess_runs_up_to_zero(self):
        frame = layer_frame(lambda a, b: -0.01 - 0.01 * a).rename(columns={"value": "svcca_excess"})
        ax = layer_heatmap(frame, "svcca_excess")
        assert mesh(ax).get_cmap().name == "Blues_r"
        assert limits(ax) == pytest.approx((-0.08, 0.0))


class TestSmallSpread:
    """A spread under min_spread of the level is not stretched over the whole colour range, and the panel says so."""

    def test_null_means_within_a_hair_reach_zero_and_state_their_range(self):
        frame = layer_frame(lambda a, b: 0.269 + 0.0002 * a + 0.00005 * b).rename(columns={"value": "svcca_null_mean"})
        for ax in (layer_heatmap(frame, "svcca_null_mean"), panel_axes(heatmap_panels(frame, ["svcca_null_mean"]))[0]):
            assert limits(ax)[0] == 0.0
            assert_contains(ax, frame["svcca_null_mean"])
            assert colorbar_label(ax) == "all cells 0.269–0.271"

    def test_without_a_colour_bar_the_range_goes_under_the_title(self):
        frame = layer_frame(lambda a, b: 0.269 + 0.0002 * a)
        ax = layer_heatmap(frame, "value", title="null", style=HeatmapStyle(cbar=False))
        assert ax.get_title() == "null\n(all cells 0.269–0.270)"

    def test_a_real_spread_keeps_its_scale_and_no_note(self):
        frame = layer_frame(lambda a, b: 0.3 + 0.02 * a)
        ax = layer_heatmap(frame, "value")
        assert limits(ax) == pytest.approx((0.3, 0.44))
        assert colorbar_label(ax) == ""

    def test_counts_state_their_range_as_integers(self):
        frame = layer_frame(lambda a, b: 1000.0 + a).rename(columns={"value": "n_pairs"})
        ax = layer_heatmap(frame, "n_pairs")
        assert colorbar_label(ax) == "all cells 1000–1007"
        assert limits(ax)[0] == 0.0

    def test_rule_can_be_turned_off(self):
        frame = layer_frame(lambda a, b: 0.269 + 0.0002 * a)
        ax = layer_heatmap(frame, "value", style=HeatmapStyle(min_spread=0.0))
        assert limits(ax) == pytest.approx((0.269, 0.2704))


class TestNoNegativeZero:
    """A number that rounds to zero prints as 0, never "-0.000"."""

    def test_no_annotation_reads_minus_zero(self):
        frame = layer_frame([-1e-5, 0.0, 0.25, -0.25, 1e-5, -4e-4, 0.1, -0.1, 0.0]).rename(
            columns={"value": "svcca_excess"})
        figures = [layer_heatmap(frame, "svcca_excess").figure, heatmap_panels(frame, ["svcca_excess"]),
                   comparison_heatmaps([("A vs B", frame, "A", "B")], "svcca_excess"),
                   concept_heatmap_grid(frame.assign(concept="Time"), "svcca_excess", counts=None)]
        for fig in figures:
            texts = [t.get_text() for ax in panel_axes(fig) for t in ax.texts]
            assert "0.000" in texts and "-0.250" in texts
            assert not [t for t in texts if re.search(r"[-\u2212]0\.0+\b(?![0-9]*[1-9])", t)], texts

    @pytest.mark.parametrize("value, fmt, text", [
        (-1e-5, ".3f", "0.000"), (-0.0, ".1f", "0.0"), (-0.0004, ".1%", "0.0%"), (-0.0, "g", "0"),
        (-0.25, ".3f", "-0.250"), (-1e-5, ".2e", "-1.00e-05"), (-3, "d", "-3"), (-1e-5, ">8.3f", "   0.000"),
    ])
    def test_fmt_number(self, value, fmt, text):
        assert fmt_number(value, fmt) == text

    def test_table_cells_too(self):
        assert format_cell(-1e-5, ".3f") == "0.000"
        assert format_cell(np.float64(-1e-7), ".2f") == "0.00"


class TestConstantPanels:
    """A column with one value in every cell is a sentence, not a block of one colour."""

    def test_constant_value(self):
        assert constant_value(layer_frame(lambda a, b: 1 / 101), "value") == pytest.approx(1 / 101)
        assert constant_value(layer_frame(lambda a, b: 1 / 101 + (1e-3 if a == 7 else 0)), "value") is None
        assert constant_value(layer_frame([0.5] + [np.nan] * 8), "value") is None  # one cell is not a pattern
        with pytest.raises(ValueError, match="`frame` has no column 'svcca_p'"):
            constant_value(layer_frame(lambda a, b: 1.0), "svcca_p")

    def test_the_permutation_floor_is_explained(self):
        frame = layer_frame(lambda a, b: 1 / 101, n_perm=100).rename(columns={"value": "svcca_p"})
        text = constant_text(frame, "svcca_p")
        assert text.startswith("SVCCA")
        assert "0.009901 in all 9 cells" in text
        assert "the smallest p-value 100 permutations can give (1/(100+1))" in text
        assert constant_text(frame.assign(svcca_p=0.5), "svcca_p", title="").startswith("0.5 in all 9 cells")
        assert constant_text(frame.assign(svcca_p=lambda f: 0.1 * f.layer_a), "svcca_p") is None

    def test_constant_panels_are_drawn_as_their_sentence(self):
        frame = layer_frame(lambda a, b: 0.3 + 0.01 * a, svcca_p=1 / 101, n_perm=100).rename(
            columns={"value": "svcca"})
        scores, p = panel_axes(heatmap_panels(frame, ["svcca", "svcca_p"]))
        assert len(scores.collections) == 1
        assert p.get_label() == CONSTANT_LABEL and not p.collections
        assert p.get_title().startswith("(b) ") and "permutations" in p.texts[0].get_text()
        single = layer_heatmap(frame, "svcca_p")
        assert not single.collections and "0.009901" in single.texts[0].get_text()

    def test_comparison_of_one_value_everywhere(self):
        frame = layer_frame(lambda a, b: 0.0).rename(columns={"value": "rsa_excess"})
        axes = panel_axes(comparison_heatmaps([("A vs B", frame, "A", "B"), ("seed", frame, "A", "A")], "rsa_excess"))
        assert all(not ax.collections and "0 in all 9 cells" in ax.texts[0].get_text() for ax in axes)


class TestHeatmapStyle:
    def test_frozen_and_filled_from_defaults(self):
        style = HeatmapStyle(fmt=".2f")
        with pytest.raises(AttributeError):
            style.fmt = ".1f"
        assert style.filled(HeatmapStyle(fmt="d", center=0.0)) == HeatmapStyle(fmt=".2f", center=0.0)

    def test_limits_in_order(self):
        with pytest.raises(ValueError, match=r"`vmin` \(1.0\) must be below `vmax` \(0.5\)"):
            HeatmapStyle(vmin=1.0, vmax=0.5)

    def test_bad_style_argument_is_named(self):
        with pytest.raises(ValueError, match="`style` must be a HeatmapStyle"):
            heatmap_panels(layer_frame(lambda a, b: a + b), ["value"], style="magma")
