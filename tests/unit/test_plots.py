"""Tests for saesim.report.plots on small hand-built tidy tables."""

import io
import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import scipy.stats
from matplotlib.container import BarContainer
from matplotlib.figure import Figure

from saesim.report.plots import (
    FIGURE_NAMES,
    HeatmapStyle,
    caption,
    concept_heatmap_grid,
    control_bars,
    filter_stages,
    frequency_histogram,
    heatmap_panels,
    hub_histogram,
    layer_heatmap,
    method_diagram,
    multiple_testing_cutoffs,
    paired_vs_null_bars,
    paired_vs_null_panels,
    panel_axes,
    panel_style,
    panel_title,
    pvalue_histogram,
    rule_bars,
    rule_heatmaps,
    save_figure,
    toy_pairing_figure,
)

CONCEPTS = ("Time", "Calendar", "People/Roles", "Nature", "Emotions", "MonthNames", "Countries", "Biology")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def grid_frame(layers_a=(1, 2, 3), layers_b=(1, 2, 4)):
    """One row per (A, B) layer pair; svcca = 0.1 * a + 0.01 * b, so every cell is recognisable."""
    rows = []
    for a in layers_a:
        for b in layers_b:
            score = 0.1 * a + 0.01 * b
            rows.append({"layer_a": a, "layer_b": b, "svcca": score, "rsa": score / 2,
                         "svcca_null_mean": 0.01 * a, "svcca_null_std": 0.002, "svcca_p": 0.001 * b,
                         "rsa_p": 0.002, "mean_best_r": 0.5, "mean_r_filtered": 0.4,
                         "n_pairs": 1000 * a + b, "n_unique_a": 900 * a + b})
    return pd.DataFrame(rows)


def tick_labels_by_position(ax, axis):
    """{data coordinate of tick: label text} for the x or y axis."""
    ticks = ax.get_xticklabels() if axis == "x" else ax.get_yticklabels()
    index = 0 if axis == "x" else 1
    return {round(t.get_position()[index], 6): t.get_text() for t in ticks}


def cell_annotations(ax):
    """{(y label, x label): annotation text} read back from a heatmap's texts."""
    xs, ys = tick_labels_by_position(ax, "x"), tick_labels_by_position(ax, "y")
    out = {}
    for text in ax.texts:
        x, y = text.get_position()
        out[(ys[round(y, 6)], xs[round(x, 6)])] = text
    return out


def heatmap_mesh(ax):
    return ax.collections[0]


class TestLayerHeatmap:
    def test_lowest_b_layer_is_the_bottom_row(self):
        ax = layer_heatmap(grid_frame(), "svcca")
        ticks = ax.get_yticklabels()
        screen_y = [ax.transData.transform((0, t.get_position()[1]))[1] for t in ticks]
        bottom_to_top = [t.get_text() for _, t in sorted(zip(screen_y, ticks), key=lambda p: p[0])]
        assert bottom_to_top == ["1", "2", "4"]

    def test_a_layers_ascend_left_to_right(self):
        ax = layer_heatmap(grid_frame(), "svcca")
        ticks = ax.get_xticklabels()
        screen_x = [ax.transData.transform((t.get_position()[0], 0))[0] for t in ticks]
        assert [t.get_text() for _, t in sorted(zip(screen_x, ticks), key=lambda p: p[0])] == ["1", "2", "3"]

    def test_annotations_match_values_to_three_decimals(self):
        frame = grid_frame()
        ax = layer_heatmap(frame, "svcca")
        cells = cell_annotations(ax)
        assert len(cells) == len(frame)
        for row in frame.itertuples():
            assert cells[(str(row.layer_b), str(row.layer_a))].get_text() == f"{row.svcca:.3f}"

    def test_annotations_are_bold_14pt(self):
        ax = layer_heatmap(grid_frame(), "svcca")
        assert {t.get_fontweight() for t in ax.texts} == {"bold"}
        assert {t.get_fontsize() for t in ax.texts} == {14.0}

    def test_nan_and_missing_cells_are_blank(self):
        frame = grid_frame()
        frame.loc[(frame.layer_a == 2) & (frame.layer_b == 4), "svcca"] = np.nan
        frame = frame[~((frame.layer_a == 3) & (frame.layer_b == 1))]
        ax = layer_heatmap(frame, "svcca")
        cells = cell_annotations(ax)
        assert len(cells) == 9 - 2
        assert ("4", "2") not in cells and ("1", "3") not in cells
        assert np.ma.count_masked(heatmap_mesh(ax).get_array()) == 2

    def test_style_defaults_magma_and_limits(self):
        ax = layer_heatmap(grid_frame(), "svcca", style=HeatmapStyle(vmin=0.0, vmax=0.6))
        mesh = heatmap_mesh(ax)
        assert mesh.get_cmap().name == "magma"
        assert (mesh.norm.vmin, mesh.norm.vmax) == (0.0, 0.6)

    def test_titles_and_axis_labels(self):
        ax = layer_heatmap(grid_frame(), "svcca", label_a="Pythia-70m", label_b="Pythia-160m")
        assert ax.get_title() == "Paired SVCCA Scores"
        assert ax.get_xlabel() == "Pythia-70m layer" and ax.get_ylabel() == "Pythia-160m layer"

    def test_draws_into_a_given_axes_and_uses_no_pyplot_state(self):
        before = plt.get_fignums()
        fig = Figure()
        ax = fig.subplots()
        assert layer_heatmap(grid_frame(), "svcca", ax=ax, title="mine") is ax
        assert ax.get_title() == "mine"
        assert isinstance(layer_heatmap(grid_frame(), "rsa").figure, Figure)
        assert plt.get_fignums() == before

    def test_integer_format(self):
        ax = layer_heatmap(grid_frame(), "n_pairs", style=HeatmapStyle(fmt="d"))
        assert cell_annotations(ax)[("4", "3")].get_text() == "3004"

    def test_duplicated_cells_raise(self):
        frame = pd.concat([grid_frame().assign(direction="b_to_a"), grid_frame().assign(direction="a_to_b")])
        with pytest.raises(ValueError, match=r"differ in \['direction'\]"):
            layer_heatmap(frame, "svcca")


class TestHeatmapPanels:
    def test_fig3_layout_svcca_and_rsa_side_by_side(self):
        fig = heatmap_panels(grid_frame(), ["svcca", "rsa"])
        axes = panel_axes(fig)
        assert [ax.get_title() for ax in axes] == ["(a) Paired SVCCA Scores", "(b) Paired RSA Scores"]
        (x0, y0), (x1, y1) = (ax.get_position().p0 for ax in axes)
        assert x1 > x0 and y1 == pytest.approx(y0)

    def test_column_defaults_per_panel(self):
        frame = grid_frame().assign(mean_best_r=lambda f: 0.2 + 0.01 * f.layer_a)
        fig = heatmap_panels(frame, ["svcca_null_mean", "svcca_p", "mean_best_r", "n_pairs"])
        null, p, corr, counts = panel_axes(fig)
        assert (heatmap_mesh(null).norm.vmin, heatmap_mesh(null).norm.vmax) == pytest.approx((0.01, 0.03))
        assert (heatmap_mesh(p).norm.vmin, heatmap_mesh(p).norm.vmax) == pytest.approx((0.0, 0.004))
        assert heatmap_mesh(corr).norm.vmin == 0.0
        assert cell_annotations(counts)[("2", "1")].get_text() == "1002"

    def test_two_columns_of_panels(self):
        fig = heatmap_panels(grid_frame(), ["svcca", "rsa", "svcca_p"], ncols=2)
        axes = panel_axes(fig)
        assert len(axes) == 3
        assert len({round(ax.get_position().x0, 3) for ax in axes}) == 2
        assert len({round(ax.get_position().y0, 3) for ax in axes}) == 2

    def test_per_panel_options_and_titles(self):
        fig = heatmap_panels(grid_frame(), ["svcca", "rsa"], titles=["A", "B"], panel_labels=False,
                             style=[HeatmapStyle(fmt=".2f"), HeatmapStyle(fmt=".1f", vmax=1.0)], label_a="70m")
        left, right = panel_axes(fig)
        assert [left.get_title(), right.get_title()] == ["A", "B"]
        assert heatmap_mesh(right).norm.vmax == 1.0
        assert cell_annotations(left)[("1", "1")].get_text() == "0.11"
        assert cell_annotations(right)[("1", "1")].get_text() == "0.1"
        assert left.get_xlabel() == "70m layer"

    def test_titles_length_checked(self):
        with pytest.raises(ValueError, match="`titles` has 1 entries but `values` has 2"):
            heatmap_panels(grid_frame(), ["svcca", "rsa"], titles=["only one"])


class TestPanelNames:
    @pytest.mark.parametrize("value, title", [
        ("svcca", "Paired SVCCA Scores"), ("rsa", "Paired RSA Scores"), ("svcca_p", "SVCCA P-Values"),
        ("rsa_null_mean", "Mean Null RSA Scores"), ("svcca_p_bh", "SVCCA P-Values (BH)"),
        ("n_pairs", "Pairs Kept"), ("mean_r_filtered", "Mean Correlation After Filtering"),
    ])
    def test_titles(self, value, title):
        assert panel_title(value) == title

    @pytest.mark.parametrize("value, style", [
        ("svcca_p", HeatmapStyle(include=0.0, fmt=".2g")), ("rsa_p_holm", HeatmapStyle(include=0.0, fmt=".2g")),
        ("svcca_null_mean", HeatmapStyle()), ("mean_best_r", HeatmapStyle(include=0.0)),
        ("n_unique_a", HeatmapStyle(fmt="d")), ("svcca", HeatmapStyle()), ("rsa_excess", HeatmapStyle(center=0.0)),
        ("svcca_z", HeatmapStyle(center=0.0)),
    ])
    def test_styles(self, value, style):
        assert panel_style(value) == style


def subspace(concepts=CONCEPTS, layers_a=(1, 2, 3), layers_b=(3, 5)):
    rows = []
    for i, concept in enumerate(concepts):
        for a in layers_a:
            for b in layers_b:
                skipped = "too few pairs" if (concept == "Biology" and a == 3 and b == 5) else ""
                rows.append({"concept": concept, "layer_a": a, "layer_b": b, "skipped": skipped,
                             "svcca": np.nan if skipped else 0.05 * i + 0.01 * a + 0.001 * b,
                             "svcca_p": 0.5})
    return pd.DataFrame(rows)


class TestConceptHeatmapGrid:
    def test_one_panel_per_concept_two_columns_four_rows(self):
        fig = concept_heatmap_grid(subspace(), "svcca")
        axes = panel_axes(fig)
        assert len(axes) == 8
        assert [ax.get_label() for ax in axes] == [f"concept:{c}" for c in CONCEPTS]
        assert len({round(ax.get_position().x0, 3) for ax in axes}) == 2
        assert len({round(ax.get_position().y0, 3) for ax in axes}) == 4
        assert axes[0].get_title() == "Paired SVCCA Scores: Time"

    def test_skipped_cells_are_blank(self):
        axes = panel_axes(concept_heatmap_grid(subspace(), "svcca"))
        biology = cell_annotations(axes[-1])
        assert len(biology) == 5 and ("5", "3") not in biology
        assert len(cell_annotations(axes[0])) == 6

    def test_skipped_flag_blanks_even_a_stale_value(self):
        frame = subspace()
        frame.loc[frame.skipped != "", "svcca"] = 0.9
        biology = cell_annotations(panel_axes(concept_heatmap_grid(frame, "svcca"))[-1])
        assert ("5", "3") not in biology

    def test_shared_colour_scale_and_p_defaults(self):
        axes = panel_axes(concept_heatmap_grid(subspace(), "svcca"))
        assert len({(heatmap_mesh(ax).norm.vmin, heatmap_mesh(ax).norm.vmax) for ax in axes}) == 1
        frame = subspace().assign(svcca_p=lambda f: 0.1 + 0.1 * f.layer_a)
        p_axes = panel_axes(concept_heatmap_grid(frame, "svcca_p"))
        assert (heatmap_mesh(p_axes[0]).norm.vmin, heatmap_mesh(p_axes[0]).norm.vmax) == pytest.approx((0.0, 0.4))

    def test_a_constant_value_is_a_sentence_not_a_block_of_colour(self):
        axes = panel_axes(concept_heatmap_grid(subspace(), "svcca_p"))  # svcca_p is 0.5 everywhere
        assert all(not ax.collections for ax in axes)
        assert all("0.5 in all" in " ".join(t.get_text() for t in ax.texts) for ax in axes)
        assert [ax.get_label() for ax in axes] == [f"concept:{c}" for c in CONCEPTS]

    def test_every_text_is_legible_at_the_page_width(self):
        # Shown PAGE_WIDTH_PX wide, every title, tick label and cell number is at least MIN_TEXT_PX high.
        from saesim.report.plots import MIN_TEXT_PX, PAGE_WIDTH_PX

        frame = subspace(layers_a=range(6), layers_b=range(6)).assign(n_pairs=120)
        fig = concept_heatmap_grid(frame, "svcca")
        pixels_per_point = PAGE_WIDTH_PX / (fig.get_figwidth() * 72)
        texts = [t for ax in panel_axes(fig) for t in (ax.texts + ax.get_xticklabels() + ax.get_yticklabels()
                                                       + [ax.title]) if t.get_text()]
        assert len(texts) > 8 * 36
        smallest = min(t.get_fontsize() for t in texts) * pixels_per_point
        assert smallest >= 0.7 * MIN_TEXT_PX  # the cell numbers may shrink a little to fit their cells
        assert min(t.get_fontsize() for t in texts if t not in sum((ax.texts for ax in fig.axes), [])) \
            * pixels_per_point >= MIN_TEXT_PX - 1e-9

    def test_choose_concepts(self):
        fig = concept_heatmap_grid(subspace(), "svcca", concepts=["Emotions", "Time"], ncols=2)
        assert [ax.get_label() for ax in panel_axes(fig)] == ["concept:Emotions", "concept:Time"]
        with pytest.raises(ValueError, match=r"`concepts` \['Math'\] are not in"):
            concept_heatmap_grid(subspace(), "svcca", concepts=["Math"])


def bar_containers(ax):
    return [c for c in ax.containers if isinstance(c, BarContainer)]


class TestPairedVsNullBars:
    def test_default_layer_is_the_best_and_bars_follow_b_layers(self):
        frame = grid_frame()
        ax = paired_vs_null_bars(frame, "svcca")
        paired, null = bar_containers(ax)
        rows = frame[frame.layer_a == 3].sort_values("layer_b")
        np.testing.assert_allclose([b.get_height() for b in paired], rows.svcca)
        np.testing.assert_allclose([b.get_height() for b in null], rows.svcca_null_mean)
        assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "4"]
        assert "layer 3" in ax.get_title()
        assert null.errorbar is not None

    def test_no_error_bars_without_std(self):
        ax = paired_vs_null_bars(grid_frame().drop(columns="svcca_null_std"), "svcca", layer_a=1)
        assert bar_containers(ax)[1].errorbar is None
        assert "layer 1" in ax.get_title()

    def test_unknown_layer(self):
        with pytest.raises(ValueError, match="no rows for layer_a=9"):
            paired_vs_null_bars(grid_frame(), "svcca", layer_a=9)

    def test_needs_the_null_column(self):
        with pytest.raises(ValueError, match="rsa_null_mean"):
            paired_vs_null_bars(grid_frame(), "rsa")


class TestHistograms:
    def test_hub_histogram_counts_chosen_latents(self):
        counts = np.array([0, 0, 1, 1, 1, 2, 5, 300])
        ax = hub_histogram(counts)
        assert sum(p.get_height() for p in ax.patches) == 6
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        assert "largest hub: 300" in ax.get_legend().get_texts()[0].get_text()

    def test_hub_histogram_linear_and_bad_input(self):
        ax = hub_histogram(np.array([1, 2, 2, 3]), log=False)
        assert ax.get_xscale() == "linear"
        with pytest.raises(ValueError, match="`counts` must be non-negative"):
            hub_histogram(np.array([1, -1]))
        with pytest.raises(ValueError, match="`counts` must be 1-D"):
            hub_histogram(np.ones((2, 2)))

    def test_frequency_histogram_log_x_and_dead_latents_counted(self):
        rng = np.random.default_rng(0)
        freq = np.concatenate([np.zeros(3), 10 ** rng.uniform(-4, -1, 50)])
        ax = frequency_histogram({"A": freq, "B": freq[3:]})
        assert ax.get_xscale() == "log"
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels == ["A (3 dead not shown)", "B (0 dead not shown)"]

    def test_frequency_must_be_a_fraction(self):
        with pytest.raises(ValueError, match=r"in \[0, 1\]"):
            frequency_histogram(np.array([0.5, 3.0]))


def holm_oracle(p, alpha):
    order = np.sort(p)
    m = len(order)
    k = 0
    while k < m and order[k] <= alpha / (m - k):
        k += 1
    return k


class TestMultipleTestingCutoffs:
    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_matches_bh_and_holm_adjusted_p(self, seed):
        rng = np.random.default_rng(seed)
        p = np.concatenate([rng.uniform(0, 0.01, 8), rng.uniform(size=30)])
        cut = multiple_testing_cutoffs(p, alpha=0.05)
        bh_rejected = scipy.stats.false_discovery_control(p, method="bh") <= 0.05
        assert cut.n_bh == bh_rejected.sum()
        assert cut.bh == pytest.approx(p[bh_rejected].max())
        assert cut.n_holm == holm_oracle(p, 0.05)
        assert cut.m == 38

    def test_nothing_rejected_and_nan_left_out(self):
        cut = multiple_testing_cutoffs([0.5, np.nan, 0.9])
        assert (cut.m, cut.n_bh, cut.n_holm) == (2, 0, 0)
        assert np.isnan(cut.bh) and np.isnan(cut.holm)

    def test_alpha_checked(self):
        with pytest.raises(ValueError, match="`alpha` must be in"):
            multiple_testing_cutoffs([0.1], alpha=1.5)


class TestPvalueHistogram:
    def test_lines_at_the_holm_cutoff_only(self):
        frame = pd.DataFrame({"svcca_p": [0.001, 0.002, 0.003, 0.04, 0.5, 0.9],
                              "rsa_p": [0.3, 0.4, 0.5, 0.6, 0.7, 0.8]})
        fig = pvalue_histogram(frame, ["svcca_p", "rsa_p"], alpha=0.05)
        left, right = panel_axes(fig)
        lines = {line.get_label().split(" ")[0]: line for line in left.get_lines()}
        cut = multiple_testing_cutoffs(frame.svcca_p)
        assert set(lines) == {"α", "Holm"}  # the book's one procedure: no BH line
        assert lines["Holm"].get_xdata()[0] == pytest.approx(cut.holm) == 0.003
        assert lines["Holm"].get_label() == "Holm cut-off p ≤ 0.003 (3/6 rejected)"
        assert sum(p.get_height() for p in left.patches) == 6
        assert left.get_title() == "SVCCA P-Values"
        right_labels = [line.get_label() for line in right.get_lines()]
        assert len(right_labels) == 2 and right_labels[1].startswith("Holm: none rejected")
        assert right.get_lines()[1].get_linestyle() == ":"
        assert right.get_lines()[1].get_xdata()[0] == pytest.approx(0.05 / 6)

    def test_rejects_values_outside_unit_interval(self):
        with pytest.raises(ValueError, match="must hold p-values"):
            pvalue_histogram(pd.DataFrame({"svcca_p": [0.1, 1.2]}), "svcca_p")


M1 = [[2.48, 5.24, 1.24], [5.95, 0.67, 1.8], [0.1, 7.4, 4.1], [3.15, 6.48, 9.28]]
M2 = [[0.55, 6.13, 3.56], [0.91, 5.89, 4.26], [6.48, 7.44, 5.36], [5.78, 2.22, 4.54]]
M2_REARRANGED = [[6.48, 7.44, 5.36], [5.78, 2.22, 4.54], [0.55, 6.13, 3.56], [0.91, 5.89, 4.26]]


class TestToyPairingFigure:
    def test_three_annotated_panels_with_scores_in_titles(self):
        fig = toy_pairing_figure(M1, M2, M2_REARRANGED, {"unpaired": {"SVCCA": 0.1234},
                                                        "paired": {"SVCCA": 0.9876, "RSA": 0.5}})
        axes = panel_axes(fig)
        assert len(axes) == 3
        assert "SVCCA = 0.123" in axes[1].get_title()
        assert "SVCCA = 0.988" in axes[2].get_title() and "RSA = 0.500" in axes[2].get_title()
        assert sorted(t.get_text() for t in axes[0].texts) == sorted(f"{v:.2f}" for row in M1 for v in row)
        assert [t.get_text() for t in axes[2].get_yticklabels()] == [
            "B feature 3", "B feature 4", "B feature 1", "B feature 2"]

    def test_shapes_and_scores_checked(self):
        with pytest.raises(ValueError, match="same shape"):
            toy_pairing_figure(M1, M2[:3], M2_REARRANGED, {})
        with pytest.raises(ValueError, match="`scores` must look like"):
            toy_pairing_figure(M1, M2, M2_REARRANGED, {"paired": 0.9})


class TestMethodDiagram:
    def test_boxes_name_the_steps_and_it_renders(self):
        fig = method_diagram()
        text = " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
        for step in ("LLM A", "LLM B", "SAE A codes", "activation correlation", "decoder rows", "SVCCA / RSA",
                     "Shuffled pairings"):
            assert step in text
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=40)
        assert buffer.getvalue()[:4] == b"\x89PNG"


class TestSaveFigure:
    def small_figure(self):
        fig = Figure(figsize=(2, 1.5))
        fig.subplots().plot([0, 1], [1, 0])
        return fig

    def test_writes_pdf_svg_png_and_no_temporary_files(self, tmp_path):
        written = save_figure(self.small_figure(), FIGURE_NAMES["fig3"], tmp_path / "figures")
        assert set(written) == {"pdf", "svg", "png"}
        assert written["pdf"].name == "fig3_full_space_svcca_rsa.pdf"
        assert written["pdf"].read_bytes()[:5] == b"%PDF-"
        assert b"<svg" in written["svg"].read_bytes()[:2000]
        assert written["png"].read_bytes()[:4] == b"\x89PNG"
        assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == sorted(p.name for p in written.values())

    def test_same_figure_same_bytes(self, tmp_path):
        fig = self.small_figure()
        first = {k: v.read_bytes() for k, v in save_figure(fig, "x", tmp_path / "a").items()}
        second = {k: v.read_bytes() for k, v in save_figure(fig, "x", tmp_path / "b").items()}
        assert first == second

    def test_png_at_150_dpi(self, tmp_path):
        png = save_figure(self.small_figure(), "x", tmp_path, formats=("png",))["png"].read_bytes()
        chunk = png.index(b"pHYs")
        pixels_per_metre = int.from_bytes(png[chunk + 4:chunk + 8], "big")
        assert pixels_per_metre == round(150 / 0.0254)

    @pytest.mark.parametrize("name", ["fig3.pdf", "../escape", "", "with space"])
    def test_bad_names(self, tmp_path, name):
        with pytest.raises(ValueError, match="`name`"):
            save_figure(self.small_figure(), name, tmp_path)


META = {"profile": "pythia", "rule": "first_index", "direction": "b_to_a", "junk_filter": True,
        "junk_list": "authors_pythia", "top_k": 5, "r_min": 0.1, "n_perm": 1000, "seed": 7, "compat": False}


class TestCaption:
    def test_names_every_setting(self):
        text = caption(META, "Paired SVCCA and RSA")
        assert text.startswith("Paired SVCCA and RSA. Profile pythia")
        for piece in ("1-1 by first occurrence", "each B latent picks its best A latent", "top-5 tokens",
                      "the authors' non-concept list for Pythia, 12 tokens", "r > 0.1", "shuffled pairings, 1000 draws",
                      "seed 7", "compat=False"):
            assert piece in text, piece
        assert "<|endoftext|>" not in text and "{" not in text  # plain text: no token list, no Python set

    def test_compat_mode_and_no_junk_filter(self):
        text = caption({**META, "compat": True, "junk_filter": False}, "x")
        assert "compat=True" in text and "SVCCA with k = 1" in text
        assert "no junk filter" in text and "authors_pythia" not in text

    def test_missing_settings_are_left_out(self):
        assert caption({"seed": 3}, "Fig. 3") == "Fig. 3. Null: seed 3."

    def test_settings_read_from_a_tidy_frame(self):
        frame = grid_frame().assign(rule="many_to_one", direction="a_to_b", compat=True, null_kind="shuffle",
                                    n_perm=100, seed=0)
        text = caption(frame, "Fig. A6", meta={"profile": "pythia"})
        assert "layers A 1–3 × B 1, 2, 4" in text
        assert "many-to-1" in text and "each A latent picks its best B latent" in text
        assert "100 draws" in text and "Profile pythia" in text

    def test_rejects_other_types(self):
        with pytest.raises(TypeError, match="`frame_or_meta` must be a dict"):
            caption(["pythia"], "x")


def test_figure_names_are_valid_file_stems():
    assert all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", name) for name in FIGURE_NAMES.values())
    assert FIGURE_NAMES["fig3"] == "fig3_full_space_svcca_rsa"


class TestControlBars:
    def test_bars_hold_the_same_layer_scores_and_nulls(self):
        trained = grid_frame(layers_a=(1, 2), layers_b=(1, 2))
        control = grid_frame(layers_a=(1, 2, 3), layers_b=(1, 2, 3)).assign(svcca=0.05)
        ax = control_bars(trained, control, "svcca")
        bars = [c for c in ax.containers if isinstance(c, BarContainer)]
        heights = [[round(p.get_height(), 6) for p in c.patches] for c in bars]
        assert heights == [[0.11, 0.22], [0.01, 0.02], [0.05, 0.05], [0.01, 0.02]]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2"]

    def test_no_shared_same_layer_row_is_an_error(self):
        with pytest.raises(ValueError, match="share no same-layer row"):
            control_bars(grid_frame(layers_a=(1,), layers_b=(2,)), grid_frame(layers_a=(1,), layers_b=(1,)), "svcca")


def stage_frame():
    """Two layer pairs whose counts fall by known fractions at each filter stage."""
    return pd.DataFrame([
        {"layer_a": 2, "layer_b": 1, "n_latents_b": 300, "n_choosers": 200, "n_with_partner": 150,
         "n_after_junk": 100, "n_after_1to1": 50, "n_pairs": 20},
        {"layer_a": 1, "layer_b": 3, "n_latents_b": 300, "n_choosers": 100, "n_with_partner": 100,
         "n_after_junk": 80, "n_after_1to1": 40, "n_pairs": 10},
    ])


class TestFilterStages:
    def test_one_line_per_layer_pair_at_stage_over_choosers(self):
        fig = filter_stages(stage_frame())
        assert isinstance(fig, Figure)
        (ax,) = fig.axes
        lines = ax.get_lines()
        # counts_table order: A layer, then B layer
        assert [line.get_label() for line in lines] == ["A1·B3", "A2·B1"]
        np.testing.assert_allclose(lines[0].get_ydata(), [100, 100, 80, 40, 10])
        np.testing.assert_allclose(lines[1].get_ydata(), 100 * np.array([200, 150, 100, 50, 20]) / 200)
        np.testing.assert_array_equal(lines[0].get_xdata(), np.arange(5))
        assert [t.get_text() for t in ax.get_xticklabels()] == [
            "choosers", "with partner", "after junk filter", "after 1-1", "pairs kept"]
        assert ax.get_ylabel() == "% of choosing latents"
        assert ax.get_title() == "Pairs left after each filter stage"
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["A1·B3", "A2·B1"]

    def test_no_legend_past_twelve_lines_and_no_point_without_choosers(self):
        rows = [{"layer_a": a, "layer_b": 0, "n_choosers": a, "n_with_partner": a, "n_after_junk": a,
                 "n_after_1to1": a, "n_pairs": a} for a in range(13)]
        (ax,) = filter_stages(pd.DataFrame(rows)).axes
        assert len(ax.get_lines()) == 13 and ax.get_legend() is None
        assert np.isnan(ax.get_lines()[0].get_ydata()).all()

    def test_needs_every_stage(self):
        with pytest.raises(ValueError, match="n_after_1to1"):
            filter_stages(stage_frame().drop(columns="n_after_1to1"))


def rules_frame():
    """Two rules × two directions × two layer pairs; svcca = 0.1 * rule + 0.01 * direction + 0.001 * a."""
    rows = []
    for i, rule in enumerate(["first_index", "many_to_one"]):
        for j, direction in enumerate(["b_to_a", "a_to_b"]):
            for a in (1, 2):
                rows.append({"rule": rule, "direction": direction, "layer_a": a, "layer_b": a,
                             "svcca": 0.1 * (i + 1) + 0.01 * j + 0.001 * a, "svcca_null_mean": 0.002 * a})
    return pd.DataFrame(rows)


class TestRuleBars:
    def test_one_panel_per_direction_one_bar_group_per_rule(self):
        frame = rules_frame()
        fig = rule_bars(frame, pairs=[(1, 1), (2, 2)], rules=["many_to_one", "first_index"],
                        directions=["b_to_a", "a_to_b"], label_a="Pythia", label_b="Gemma")
        assert len(fig.axes) == 2
        for ax, (j, direction) in zip(fig.axes, enumerate(["b_to_a", "a_to_b"])):
            bars = bar_containers(ax)
            assert len(bars) == 2 and all(len(b) == 2 for b in bars)
            heights = [[round(p.get_height(), 6) for p in b] for b in bars]
            assert heights == [[round(0.2 + 0.01 * j + 0.001 * a, 6) for a in (1, 2)],
                               [round(0.1 + 0.01 * j + 0.001 * a, 6) for a in (1, 2)]]
            ticks = [c.get_offsets()[:, 1].tolist() for c in ax.collections]
            np.testing.assert_allclose(ticks, [[0.002, 0.004]] * 2)
            assert [t.get_text() for t in ax.get_xticklabels()] == ["A1–B1", "A2–B2"]
            assert ax.get_xlabel() == "layer pair (Pythia – Gemma)"
            assert ax.get_ylabel() == "paired SVCCA"
        assert fig.axes[0].get_title() == "direction: B picks A"
        legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        assert legend == ["null mean", "many-to-1", "1-1 (first occurrence)"]
        assert fig.axes[1].get_legend() is None

    def test_defaults_and_a_missing_pair_leaves_a_gap(self):
        frame = rules_frame()
        frame = frame[~((frame.rule == "many_to_one") & (frame.layer_a == 2))]
        fig = rule_bars(frame)
        ax = fig.axes[0]
        first, many = bar_containers(ax)
        assert first.get_label() == "1-1 (first occurrence)"
        assert np.isnan(many.patches[1].get_height())

    def test_needs_one_row_per_cell(self):
        with pytest.raises(ValueError):
            rule_bars(pd.concat([rules_frame(), rules_frame()]))


class TestPairedVsNullPanels:
    def test_one_panel_per_metric_at_one_a_layer(self):
        frame = grid_frame().assign(rsa_null_mean=0.001)
        fig = paired_vs_null_panels(frame, ["svcca", "rsa"], layer_a=2, label_a="A", label_b="B")
        assert len(fig.axes) == 2 and tuple(fig.get_size_inches()) == (11.0, 3.8)
        rows = frame[frame.layer_a == 2].sort_values("layer_b")
        for ax, metric in zip(fig.axes, ["svcca", "rsa"]):
            paired, null = bar_containers(ax)
            np.testing.assert_allclose([b.get_height() for b in paired], rows[metric])
            np.testing.assert_allclose([b.get_height() for b in null], rows[f"{metric}_null_mean"])
            assert "layer 2" in ax.get_title()
        assert [ax.get_ylabel() for ax in fig.axes] == ["SVCCA", "RSA"]

    def test_default_layer_is_the_best_of_the_first_metric(self):
        frame = grid_frame().assign(rsa_null_mean=0.001, rsa=lambda f: -f.svcca)
        fig = paired_vs_null_panels(frame)
        assert all("layer 3" in ax.get_title() for ax in fig.axes)


class TestRuleHeatmaps:
    def test_rows_are_values_columns_are_rules_on_one_scale_per_value(self):
        many, one = grid_frame(), grid_frame().assign(svcca=lambda f: f.svcca / 2, rsa=lambda f: f.rsa / 4)
        fig = rule_heatmaps([("many_to_one", many), ("max_corr", one)], ["svcca", "rsa"], label_a="P", label_b="G")
        axes = panel_axes(fig)
        assert [ax.get_title() for ax in axes] == ["SVCCA, many-to-1", "SVCCA, 1-1 (best correlation)",
                                                   "RSA, many-to-1", "RSA, 1-1 (best correlation)"]
        for ax, frame, value in zip(axes, [many, one, many, one], ["svcca", "svcca", "rsa", "rsa"]):
            cells = cell_annotations(ax)
            assert len(cells) == len(frame)
            row = frame[(frame.layer_a == 3) & (frame.layer_b == 4)].iloc[0]
            assert cells[("4", "3")].get_text() == f"{row[value]:.3f}"
            assert ax.get_xlabel() == "P layer" and ax.get_ylabel() == "G layer"
        for top, bottom in [(axes[0], axes[1]), (axes[2], axes[3])]:
            assert heatmap_mesh(top).get_clim() == heatmap_mesh(bottom).get_clim()
        assert heatmap_mesh(axes[0]).get_clim() != heatmap_mesh(axes[2]).get_clim()
        assert tuple(fig.get_size_inches()) == pytest.approx((12.0, 2 * (0.55 * 3 + 2.0)))

    def test_a_mapping_and_a_missing_column(self):
        assert len(panel_axes(rule_heatmaps({"many_to_one": grid_frame()}, "svcca"))) == 1
        with pytest.raises(ValueError, match="rsa_excess"):
            rule_heatmaps({"many_to_one": grid_frame()}, ["rsa_excess"])


class TestPageSizedHistograms:
    def test_without_ax_the_figure_is_the_pages(self):
        assert tuple(hub_histogram(np.array([1, 2, 3])).figure.get_size_inches()) == (5.5, 3.8)
        assert tuple(frequency_histogram(np.array([0.1, 0.2])).figure.get_size_inches()) == (5.5, 3.8)


def test_captions_name_joined_rules_and_rule_lists_by_their_labels():
    from saesim.report import plots
    from saesim.report._plot_captions import caption

    text = caption({"rule": "many_to_one / first_index", "direction": "b_to_a"}, "X")
    assert "many_to_one" not in text and "first_index" not in text and "b_to_a" not in text
    assert "many-to-1" in text and "first occurrence" in text
    assert plots.labels_text("direction", ["b_to_a", "a_to_b"]) == "B picks A, A picks B"


def test_captions_name_the_junk_list_by_its_label():
    from saesim.report._plot_captions import caption

    text = caption({"junk_list": "authors_gemma", "top_k": 5, "junk_filter": True}, "X")
    assert "authors_gemma" not in text and "the authors' non-concept list for Gemma, 13 tokens" in text
