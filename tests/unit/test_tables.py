"""Tests for saesim.report.tables on small hand-built tidy tables."""

import numpy as np
import pandas as pd
import pytest

from saesim.report.tables import (
    page_style,
    MIN_HEADLINE_PAIRS,
    concept_family,
    concept_headline,
    authors_table,
    concept_table,
    counts_table,
    display_name,
    layer_table,
    side_by_side,
    styled,
)


def grid_frame(layers_a=(1, 2, 3), layers_b=(1, 2), **extra):
    """One row per (A, B) layer pair; svcca = 0.1 * a + 0.01 * b so each cell is recognisable."""
    rows = [{"layer_a": a, "layer_b": b, "svcca": 0.1 * a + 0.01 * b, **extra}
            for a in layers_a for b in layers_b]
    return pd.DataFrame(rows)


def subspace_frame(with_subset=True):
    rows = []
    for concept, n, score in (("Time", 228, 0.590), ("Calendar", 126, 0.649), ("Biology", 2, np.nan)):
        for layer_a in (1, 3):
            row = {"layer_a": layer_a, "layer_b": 5, "concept": concept, "rule": "first_index",
                   "n_pairs": n, "skipped": "too few pairs" if concept == "Biology" else "",
                   "svcca": score, "svcca_null_mean": 0.05, "svcca_p": 0.001,
                   "rsa": score / 6, "rsa_null_mean": 0.0, "rsa_p": 0.002}
            if with_subset:
                row.update(svcca_subset_null_mean=0.2, svcca_subset_p=0.01,
                           rsa_subset_null_mean=0.03, rsa_subset_p=0.02)
            rows.append(row)
    return pd.DataFrame(rows)


class TestLayerTable:
    def test_b_layers_descending_a_layers_ascending(self):
        table = layer_table(grid_frame(layers_b=(1, 2, 3)), "svcca")
        assert table.index.tolist() == [3, 2, 1]
        assert table.columns.tolist() == [1, 2, 3]
        assert table.index.name == "B layer" and table.columns.name == "A layer"  # human names (saesim.vocab)

    def test_cells_hold_their_pair(self):
        table = layer_table(grid_frame(), "svcca")
        for a in (1, 2, 3):
            for b in (1, 2):
                assert table.loc[b, a] == pytest.approx(0.1 * a + 0.01 * b)

    def test_fmt_gives_strings_and_blank_missing_cells(self):
        frame = grid_frame()
        frame = frame[~((frame.layer_a == 3) & (frame.layer_b == 1))]  # a missing cell
        frame.loc[frame.index[0], "svcca"] = np.nan                     # a NaN cell (A1, B1)
        table = layer_table(frame, "svcca", fmt=".3f")
        assert table.loc[2, 2] == "0.220"
        assert table.loc[1, 3] == ""
        assert table.loc[1, 1] == ""

    def test_integer_format_on_float_counts(self):
        frame = grid_frame()
        frame["n_pairs"] = np.arange(len(frame), dtype=float) * 1000
        assert layer_table(frame, "n_pairs", fmt="d").loc[2, 3] == "5000"

    def test_rows_and_cols_can_be_swapped(self):
        table = layer_table(grid_frame(), "svcca", rows="layer_a", cols="layer_b")
        assert table.index.tolist() == [3, 2, 1] and table.columns.tolist() == [1, 2]

    def test_duplicate_cells_name_the_setting_that_differs(self):
        frame = pd.concat([grid_frame(rule="first_index"), grid_frame(rule="many_to_one")])
        with pytest.raises(ValueError, match=r"differ in \['rule'\]"):
            layer_table(frame, "svcca")

    def test_missing_column_is_named(self):
        with pytest.raises(ValueError, match=r"no column\(s\) \['rsa'\]"):
            layer_table(grid_frame(), "rsa")

    def test_not_a_frame(self):
        with pytest.raises(TypeError, match="`frame` must be a pandas DataFrame"):
            layer_table({"layer_a": [1]}, "svcca")


class TestConceptTable:
    def test_one_row_per_concept_in_frame_order(self):
        table = concept_table(subspace_frame(), layer_a=3, layer_b=5)
        assert table.index.tolist() == ["Time", "Calendar", "Biology"]
        assert table.index.name == "concept"

    def test_columns_per_metric_with_subset_null(self):
        table = concept_table(subspace_frame(), layer_a=3, layer_b=5)
        assert table.columns.tolist() == [
            "pairs kept",
            "SVCCA paired", "SVCCA null mean", "SVCCA p", "SVCCA subset-null mean", "SVCCA subset p",
            "RSA paired", "RSA null mean", "RSA p", "RSA subset-null mean", "RSA subset p",
            "skipped",
        ]
        assert table.loc["Time", "pairs kept"] == 228
        assert table.loc["Calendar", "SVCCA paired"] == pytest.approx(0.649)
        assert table.loc["Time", "SVCCA subset p"] == pytest.approx(0.01)

    def test_without_subset_columns_and_one_metric(self):
        table = concept_table(subspace_frame(with_subset=False), layer_a=1, layer_b=5, metrics=("svcca",))
        assert table.columns.tolist() == ["pairs kept", "SVCCA paired", "SVCCA null mean", "SVCCA p", "skipped"]

    def test_skipped_concept_has_blank_scores_and_reason(self):
        table = concept_table(subspace_frame(), layer_a=3, layer_b=5)
        assert np.isnan(table.loc["Biology", "SVCCA paired"])
        assert table.loc["Biology", "skipped"] == "too few pairs"
        assert table.loc["Time", "skipped"] == ""

    def test_no_skipped_column_when_nothing_skipped(self):
        frame = subspace_frame()
        frame = frame[frame.concept != "Biology"]
        assert "skipped" not in concept_table(frame, layer_a=3, layer_b=5).columns

    def test_unknown_layer_pair_lists_the_pairs_present(self):
        with pytest.raises(ValueError, match=r"no rows for layer_a=2, layer_b=5.*\(1, 5\), \(3, 5\)"):
            concept_table(subspace_frame(), layer_a=2, layer_b=5)

    def test_several_rules_must_be_filtered(self):
        frame = subspace_frame()
        other = frame.assign(rule="hungarian")
        with pytest.raises(ValueError, match=r"differ in \['rule'\]"):
            concept_table(pd.concat([frame, other]), layer_a=3, layer_b=5)


class TestCountsTable:
    def frame(self):
        rows = []
        for rule in ("first_index", "many_to_one"):
            for a, b in ((2, 1), (1, 2), (1, 1)):
                kept = 100 if rule == "first_index" else 400
                rows.append({"layer_a": a, "layer_b": b, "rule": rule, "direction": "b_to_a",
                             "n_latents_b": 1000, "n_choosers": 800, "n_with_partner": 790,
                             "n_unique_a_before": 300, "n_after_junk": 500,
                             "n_after_1to1": 120 if rule == "first_index" else 500,
                             "n_pairs": kept, "n_unique_a": kept if rule == "first_index" else 90})
        return pd.DataFrame(rows)

    def test_stage_columns_in_pipeline_order(self):
        table = counts_table(self.frame())
        assert table.columns.tolist() == ["B latents", "choosers", "with partner", "unique A latents before filters",
                                          "after junk filter", "after 1-1", "pairs kept", "unique A latents kept",
                                          "kept %"]
        assert str(table["pairs kept"].dtype) == "Int64"

    def test_index_sorted_and_includes_rule_when_several(self):
        table = counts_table(self.frame())
        assert table.index.names == ["A layer", "B layer", "rule"]
        assert table.index.tolist()[:3] == [(1, 1, "first_index"), (1, 1, "many_to_one"), (1, 2, "first_index")]

    def test_single_rule_not_in_index(self):
        frame = self.frame()
        table = counts_table(frame[frame.rule == "first_index"])
        assert table.index.names == ["A layer", "B layer"]
        assert table.loc[(2, 1), "pairs kept"] == 100

    def test_kept_percent_of_choosers(self):
        frame = self.frame()
        table = counts_table(frame[frame.rule == "many_to_one"])
        assert table.loc[(1, 2), "kept %"] == pytest.approx(50.0)

    def test_missing_required_column(self):
        with pytest.raises(ValueError, match="n_pairs"):
            counts_table(self.frame().drop(columns="n_pairs"))


class TestAuthorsTable:
    def test_headers_say_they_are_the_authors(self):
        table = authors_table({"svcca": {"Time": 0.590, "Calendar": 0.649}, "n_pairs": {"Time": 228,
                                                                                      "Calendar": 126}},
                              index_names="concept")
        assert table.columns.tolist() == ["SVCCA (authors' paper)", "pairs kept (authors' paper)"]
        assert table.index.name == "concept"
        assert table.loc["Calendar", "SVCCA (authors' paper)"] == pytest.approx(0.649)
        assert pd.api.types.is_numeric_dtype(table["SVCCA (authors' paper)"])

    def test_layer_pairs_make_a_multiindex(self):
        table = authors_table({"svcca": {(2, 5): 0.678, (3, 5): 0.661}}, index_names=("layer_a", "layer_b"))
        assert table.index.names == ["layer_a", "layer_b"]
        assert table.loc[(2, 5), "SVCCA (authors' paper)"] == pytest.approx(0.678)

    def test_custom_source(self):
        table = authors_table({"rsa": {"Time": 0.097}}, source="authors' notebook")
        assert table.columns.tolist() == ["RSA (authors' notebook)"]

    def test_rejects_flat_mapping(self):
        with pytest.raises(TypeError, match="`reported` must map each column name"):
            authors_table({"svcca": 0.5})


class TestSideBySide:
    def test_columns_values_and_difference(self):
        ours = pd.DataFrame({"svcca": [0.60, 0.50], "rsa": [0.1, 0.2]},
                            index=pd.Index(["Time", "Calendar"], name="concept"))
        authors = authors_table({"svcca": {"Time": 0.590, "Calendar": 0.649}})
        table = side_by_side(ours, authors)
        assert table.columns.tolist() == ["SVCCA (ours)", "SVCCA (authors' paper)", "SVCCA Δ (ours − authors)"]
        assert table.index.tolist() == ["Time", "Calendar"]
        assert table.index.name == "concept"
        np.testing.assert_allclose(table["SVCCA Δ (ours − authors)"], [0.01, -0.149])

    def test_rows_only_the_authors_have_are_appended(self):
        ours = pd.DataFrame({"svcca": [0.6]}, index=["Time"])
        table = side_by_side(ours, {"svcca": {"Time": 0.59, "Emotions": 0.828}})
        assert table.index.tolist() == ["Time", "Emotions"]
        assert np.isnan(table.loc["Emotions", "SVCCA (ours)"])
        assert table.loc["Emotions", "SVCCA (authors' paper)"] == pytest.approx(0.828)

    def test_layer_grid_from_a_tidy_frame(self):
        ours = grid_frame().set_index(["layer_a", "layer_b"])[["svcca"]]
        authors = authors_table({"svcca": {(1, 1): 0.2, (3, 2): 0.3}})
        table = side_by_side(ours, authors, difference=False)
        assert table.index.names == ["layer_a", "layer_b"]
        assert table.loc[(3, 2), "SVCCA (ours)"] == pytest.approx(0.32)
        assert table.loc[(3, 2), "SVCCA (authors' paper)"] == pytest.approx(0.3)
        assert "SVCCA Δ (ours − authors)" not in table

    def test_no_matching_column(self):
        with pytest.raises(ValueError, match="No column of `authors`"):
            side_by_side(pd.DataFrame({"rsa": [0.1]}), {"svcca": {0: 0.2}})


class TestStyledAndNames:
    def test_styler_when_jinja2_present(self):
        pytest.importorskip("jinja2")
        view = styled(layer_table(grid_frame(), "svcca"))
        assert type(view).__name__ == "Styler"
        assert "0.320" in view.to_html()

    def test_display_names(self):
        assert display_name("svcca") == "SVCCA"
        assert display_name("linear_cka") == "linear CKA"
        assert display_name("something_else") == "something_else"


class TestConceptFamily:
    def test_family_is_the_scored_real_concepts_adjusted_over_themselves(self):
        frame = subspace_frame()
        frame = frame.assign(svcca_p_tail=frame["svcca_p"] / 10)  # the book's p: the tail's
        control = frame[frame["concept"] == "Time"].assign(concept="Control", svcca_p_tail=0.00001)
        frame = pd.concat([frame, control], ignore_index=True).assign(svcca_p_holm=9.0, svcca_p_bh=9.0)
        family = concept_family(frame, ["Time", "Calendar", "Biology"])
        assert sorted(set(family["concept"])) == ["Calendar", "Time"]  # Biology skipped, Control apart
        assert len(family) == 4
        np.testing.assert_allclose(family["svcca_p_holm"], np.minimum(4 * 0.0001, 1.0))  # Holm over the 4
        assert "svcca_p_bh" not in family  # one procedure
        np.testing.assert_allclose(family["svcca_excess"], family["svcca"] - 0.05)

    def test_headline_needs_enough_pairs(self):
        frame = subspace_frame().assign(svcca_z=lambda f: np.where(f["concept"] == "Time", 9.0, 4.0))
        family = concept_family(frame, ["Time", "Calendar"])
        assert concept_headline(family, "svcca", by="excess")["concept"] == "Calendar"  # the largest excess
        assert concept_headline(family, "svcca")["concept"] == "Time"  # the largest z
        assert concept_headline(family, "svcca", by="excess", min_pairs=200)["concept"] == "Time"
        assert concept_headline(family, "svcca", min_pairs=1000) is None
        with pytest.raises(ValueError, match="`by` must be 'z' or 'excess'"):
            concept_headline(family, by="p")
        assert MIN_HEADLINE_PAIRS >= 10


class TestComparisonTable:
    @staticmethod
    def _grid(excess, p):
        n = len(p)
        return pd.DataFrame({"layer_a": range(n), "layer_b": 0, "rule": "first_index", "direction": "b_to_a",
                             "n_pairs": 100, "rsa": 0.1 + np.array(excess), "rsa_null_mean": 0.1, "rsa_p_tail": p,
                             "rsa_z": 5.0})

    def test_holm_within_each_comparison_and_human_columns(self):
        from saesim.report.tables import comparison_style, comparison_table

        table = comparison_table({"full_space": self._grid([0.05, 0.05, -1e-5], [1e-6, 0.04, 0.5]),
                                  "control_all": self._grid([0.01], [0.3])}, "rsa")
        assert table["comparison"].tolist() == ["A against B"] * 3 + ["random model (every tensor)"]
        assert table["p (Holm)"].round(8).tolist() == [3e-6, 0.08, 0.5, 0.3]  # Holm over 3, then over 1
        assert table["above null"].tolist() == ["yes", "no", "no", "no"]
        assert table["layer pair"].tolist()[:2] == ["A0–B0", "A1–B0"]
        html = comparison_style(table).to_html()
        assert "-0.000" not in html and "0.000" in html

    def test_page_style_never_prints_negative_zero(self):
        frame = pd.DataFrame({"a": [-1e-5, -0.25], "b": ["x", "y"]})
        assert "-0.000" not in page_style(frame).to_html()
        html = page_style(frame.style.format({"a": "{:.1%}"})).to_html()
        assert "-0.0%" not in html and "-25.0%" in html


def test_page_style_prints_counts_stored_as_floats_as_whole_numbers():
    frame = pd.DataFrame({"latents": [4096.0, np.nan, 62.0], "score": [0.5, 1.0, 0.25]})
    html = page_style(frame).to_html()
    assert "4096.000" not in html and ">4096<" in html and ">62<" in html
    assert "0.500" in html and "1.000" in html  # a score column with a whole value stays a score


class TestSplitTable:
    """A wide table: its informative columns at the page's width, every column one click away."""

    FRAME = pd.DataFrame({"r": [0.5, -1e-5], "A top tokens": ["' on'", "' a'"], "A contexts": ["x | y", "z"],
                          "count": [4096.0, 12.0]}, index=pd.Index([3, 7], name="A latent"))

    def test_shown_columns_first_and_every_column_behind_a_toggle(self):
        from saesim.report.citable import reset_tables
        from saesim.report.tables import split_table

        reset_tables()
        table = split_table(self.FRAME, ["r", "A top tokens"], "Pairs and their tokens", name="pairs")
        assert list(table.shown.data.columns) == ["r", "A top tokens"]
        assert list(table.full.data.columns) == list(self.FRAME.columns)
        assert table.hidden == ["A contexts", "count"]
        html = table._repr_html_()
        before, details = html.split("<details", 1)
        # the shown table is the page's numbered, anchored table; the full one is in the closed toggle
        assert 'id="T_pairs"' in before and ">Table 1</a>" in before and "A contexts" not in before
        assert details.startswith(' class="saesim-more-columns"><summary>Every column of Table 1, with A contexts '
                                  'and count</summary>')
        assert 'id="T_pairs-all"' in details and "A contexts" in details and ">Table 2" not in html
        assert "-0.000" not in html and "4096.000" not in html and ">4096<" in details

    def test_formats_apply_to_both_tables_and_bad_columns_are_named(self):
        from saesim.report.tables import split_table

        table = split_table(self.FRAME, ["r", "count"], formats={"r": ".1f"})
        assert ">0.5<" in table.shown.to_html() and ">0.5<" in table.full.to_html()
        with pytest.raises(ValueError, match="no such"):
            split_table(self.FRAME, ["r", "no such"])

    def test_counts_view_shows_the_stages_that_drop_pairs_and_kept_percent_to_one_decimal(self):
        from saesim.report.tables import counts_view

        frame = pd.DataFrame({"layer_a": [0], "layer_b": [1], "n_latents_b": [256], "n_choosers": [256],
                              "n_with_partner": [252], "n_unique_a_before": [130], "n_after_junk": [140],
                              "n_after_1to1": [82], "n_pairs": [81], "n_unique_a": [81]})
        view = counts_view(frame, "Pairs left")
        assert list(view.shown.data.columns) == ["choosers", "after junk filter", "after 1-1", "pairs kept", "kept %"]
        assert "B latents" in view.hidden and "with partner" in view.hidden
        assert ">31.6<" in view.shown.to_html() and "31.641" not in view.to_html()

    def test_labelled_with_shown_columns_splits(self):
        from saesim.report.tables import labelled

        frame = pd.DataFrame({"n_docs": [5], "fraction": [0.1], "svcca": [0.2], "svcca_p_holm": [0.5]})
        view = labelled(frame, ["fraction", "n_docs", "svcca", "svcca_p_holm"], "Budgets",
                        shown=["n_docs", "svcca_p_holm"])
        assert list(view.shown.data.columns) == ["documents", "SVCCA p (Holm)"]  # names from the vocabulary
        assert view.hidden == ["share of the documents", "SVCCA"]
        with pytest.raises(ValueError, match="not in `columns`"):
            labelled(frame, ["n_docs"], shown=["svcca"])

    def test_numbers_and_short_texts_never_wrap_and_1_1_holds_together(self):
        import re

        from saesim.report.tables import NUMBER_CELL

        frame = pd.DataFrame({"p": [0.476], "peak": ["A0–B1"], "tokens": ["' on' ' on' ' on' ' on'"],
                              "after 1-1": [3]})
        html = page_style(frame, "Widths", name="wrap").to_html()
        nowrap = re.findall(r"#T_wrap td\.col(\d+) \{\s*" + re.escape(NUMBER_CELL.split(";")[0]), html)
        assert sorted(nowrap) == ["0", "1", "3"]  # p, the layer pair and the count; the long text may wrap
        assert "after 1\u20111" in html  # a wrapped header never reads "after 1-" over "1"
