"""Tests for what the book's pages compute (saesim.report.pages, prose.control_lines) and glue (book.glue_fields).

Every function is checked on a small planted grid whose answers are known or
recomputed directly (pandas, scipy), so a page quotes the numbers of its tables.
"""

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from saesim.compare.match import Pairs, hub_counts
from saesim.report import book, build, pages, prose
from saesim.report.tables import page_family


def planted_grid(shift: float = 0.0, n_pairs=(40, 10, 25, 60), seed: int = 0) -> pd.DataFrame:
    """A 2 x 2 full-space grid (one rule, one direction) with every column the pages read."""
    rng = np.random.default_rng(seed)
    cells = [(0, 0), (0, 1), (1, 0), (1, 1)]
    n = len(cells)
    svcca = np.array([0.62, 0.70, 0.55, 0.81]) + shift
    rsa = np.array([0.20, 0.35, 0.05, 0.30]) + shift
    frame = pd.DataFrame({
        "layer_a": [a for a, _ in cells], "layer_b": [b for _, b in cells], "rule": "first_index",
        "direction": "b_to_a", "null_kind": "shuffle", "n_perm": 99,
        "n_pairs": list(n_pairs), "n_choosers": [100, 100, 50, 200], "n_unique_a": list(n_pairs),
        "svcca": svcca, "svcca_null_mean": [0.60, 0.50, 0.58, 0.65], "svcca_p": [0.30, 0.01, 0.60, 0.02],
        "svcca_z": [0.5, 4.0, -0.6, 3.5], "svcca_k_x": [3, 2, 3, 5], "svcca_k_y": [3, 2, 4, 5],
        "rsa": rsa, "rsa_null_mean": [0.01, 0.02, 0.00, 0.01], "rsa_p": [0.01, 0.01, 0.40, 0.03],
        "rsa_z": [5.0, 7.0, 1.0, 6.0],
        "svcca_authors_k": [0.90, 0.95, 0.70, 0.85], "svcca_authors_k_null_mean": [0.20, 0.30, 0.25, 0.10],
        "svcca_authors_k_p": [0.01, 0.02, 0.20, 0.04], "svcca_authors_k_z": [3.0, 2.5, 1.0, 4.0],
        "svcca_authors_k_k_x": 1, "svcca_authors_k_k_y": 1,
        "top_hubs": [json.dumps([[3, 7], [1, 2]]), json.dumps([[0, 12]]), json.dumps([]), json.dumps([[5, 4]])],
        "dead_a": [3, 3, 5, 5], "n_latents_a": 64, "dead_b": [1, 2, 1, 2], "n_latents_b": 32,
        "mean_best_r": rng.uniform(0.2, 0.4, n),
    })
    for metric in ("svcca", "rsa", "svcca_authors_k"):  # the book's p: the tail fit's, here a tenth of the raw
        frame[f"{metric}_p_tail"] = frame[f"{metric}_p"] / 10
    return frame


class TestGlueFields:
    def test_glues_a_mapping_a_dataclass_and_keywords_under_one_prefix(self, monkeypatch):
        calls = []
        monkeypatch.setattr(book, "glue_value", lambda name, value, display=False: calls.append((name, value)))
        assert book.glue_fields({"n": np.int64(3), "x": np.float64(0.25)}, prefix="fs_", rule="mutual") is None
        assert calls == [("fs_n", 3), ("fs_x", 0.25), ("fs_rule", "mutual")] and type(calls[0][1]) is int
        assert book.glued_fields({"n": np.int64(3)}, prefix="fs_", rule="mutual") == {"fs_n": 3, "fs_rule": "mutual"}
        rows = np.random.default_rng(0).normal(size=(5, 3))
        toy = pages.toy_pairing(rows, rows[[2, 0, 1, 4, 3]])
        calls.clear()
        book.glue_fields(toy, prefix="t_")  # a dataclass: its fields in order
        assert [name for name, _ in calls] == ["t_corr", "t_order", "t_rearranged", "t_scores"]

    def test_rejects_other_values_repeated_and_bad_names(self, monkeypatch):
        monkeypatch.setattr(book, "glue_value", lambda *a, **k: None)
        with pytest.raises(TypeError, match="mapping or a dataclass"):
            book.glue_fields([1, 2])
        with pytest.raises(ValueError, match="both in `values` and as keywords"):
            book.glue_fields({"a": 1}, a=2)
        with pytest.raises(ValueError, match="identifiers"):
            book.glue_fields({"a b": 1})

    def test_really_glues_for_myst_nb(self, capsys):
        book.glue_fields({"value": 1.5}, prefix="unit_")  # outside a kernel: no error, nothing shown

    def test_a_cell_of_glue_fields_shows_no_code(self):
        assert build._glue_only('book.glue_fields(pages.full_space_numbers(frame), prefix="fs_", rule=rule)')
        assert build._glue_only('from saesim.report.book import glue_fields\nglue_fields({"a": 1}, prefix="x_")')
        assert not build._glue_only('numbers = pages.many_to_one_numbers(m, o)\nbook.glue_fields(numbers)')


class TestFullSpace:
    def test_numbers_are_the_planted_cells(self):
        frame = page_family(planted_grid())
        numbers = pages.full_space_numbers(frame)
        assert numbers["n_cells"] == 4
        assert (numbers["best_svcca"], numbers["best_svcca_a"], numbers["best_svcca_b"]) == (0.81, 1, 1)
        assert (numbers["best_rsa"], numbers["best_rsa_a"], numbers["best_rsa_b"]) == (0.35, 0, 1)
        assert (numbers["top_rsa_a"], numbers["top_rsa_b"]) == (0, 1)
        assert numbers["top_rsa_excess"] == pytest.approx(0.33) and numbers["top_rsa_z"] == 7.0
        assert (numbers["top_svcca_a"], numbers["top_svcca_b"]) == (0, 1)
        assert numbers["top_svcca_excess"] == pytest.approx(0.20)
        top_k1 = (numbers["top_k1"], numbers["top_k1_a"], numbers["top_k1_b"], numbers["top_k1_null"])
        assert top_k1 == (0.95, 0, 1, 0.30)
        assert numbers["sig_svcca"] == 2 and numbers["sig_rsa"] == 3
        assert numbers["median_svcca_null"] == pytest.approx(0.59)
        assert numbers["kept_min"] == pytest.approx(10.0) and numbers["kept_max"] == pytest.approx(50.0)
        # above their null: Holm over the 4 cells on the tail p-values, and a positive excess
        assert (numbers["above_svcca"], numbers["above_rsa"], numbers["above_authors"]) == (2, 4, 4)
        assert numbers["n_perm"] == 99 and numbers["perm_floor"] == pytest.approx(0.01)
        assert all(type(v) in (int, float, str) for v in numbers.values())

    def test_svcca_modes_numbers_and_the_missing_column_message(self):
        frame = page_family(planted_grid())
        numbers = pages.svcca_modes_numbers(frame, compat=False)
        assert numbers["k_x_median"] == 3 and numbers["authors_k_max"] == 1
        assert (numbers["authors_best"], numbers["authors_best_a"], numbers["authors_best_b"]) == (0.95, 0, 1)
        assert numbers["authors_median_null"] == pytest.approx(0.225) and numbers["sig_authors"] == 3
        assert numbers["n_differ"] == 4 and "corrected one" in numbers["modes_note"]
        assert "coincide" in pages.svcca_modes_numbers(frame, compat=True)["modes_note"]
        with pytest.raises(RuntimeError, match=r"saesim run --profile tiny"):
            pages.svcca_modes_numbers(frame.drop(columns="svcca_authors_k_z"), compat=False, profile="tiny")
        table = pages.svcca_modes_table(frame, "k=n/10")
        assert table.full.data.shape == (4, 12) and ("authors' k = 1", "k A") in table.full.data.columns
        assert ("k=n/10", "SVCCA") in table.full.data.columns  # the run's rule names the header, not a fixed "99 %"
        assert table.full.data.index.name == "layer pair" and table.full.data.index[0] == "A0–B1"
        # at the page's width: the run's k of both sides in one column, the authors' k (always 1) one click away
        assert table.shown.data.shape == (4, 8) and ("authors' k = 1", "k A") not in table.shown.data.columns
        assert table.shown.data[("k=n/10", "k A, B")].tolist()[0] == "2, 2"
        assert table.hidden == [("k=n/10", "k A"), ("k=n/10", "k B"), ("authors' k = 1", "k A"),
                                ("authors' k = 1", "k B")]
        assert "(k=n/10)" in table.shown.caption

    def test_control_lines_quote_the_medians_and_scipy_spearman(self):
        main = page_family(planted_grid())
        seed = page_family(planted_grid(shift=0.1, n_pairs=(5, 80, 30, 12), seed=1))
        lines, numbers = prose.control_lines({"full_space": main, "seed": seed})
        every = pd.concat([main, seed], ignore_index=True)
        assert numbers["null_cells"] == 8
        assert numbers["null_min"] == pytest.approx(every["svcca_null_mean"].min())
        assert numbers["null_max"] == pytest.approx(every["svcca_null_mean"].max())
        assert numbers["null_rho_n"] == pytest.approx(spearmanr(every["n_pairs"], every["svcca_null_mean"]).statistic)
        assert numbers["null_rho_k"] == pytest.approx(spearmanr(every["svcca_k_x"], every["svcca_null_mean"]).statistic)
        assert len(lines) == 2 and lines[0].startswith("Two SAEs of model A: raw SVCCA 0.650–0.910")
        assert f"median {seed['svcca'].median():.3f}, above A against B's {main['svcca'].median():.3f}" in lines[0]
        excess = seed["svcca_excess"].median(), main["svcca_excess"].median()
        assert f"{excess[0]:+.3f}, above A against B's {excess[1]:+.3f}" in lines[0]
        assert lines[1].startswith("Two SAEs of model A: raw RSA")

    def test_control_lines_print_no_negative_zero(self):
        main = page_family(planted_grid())
        seed = page_family(planted_grid(shift=0.1, n_pairs=(5, 80, 30, 12), seed=1))
        seed.loc[seed.index[0], "rsa"] = -1e-5  # a raw score that rounds to zero
        lines, _ = prose.control_lines({"full_space": main, "seed": seed})
        assert "-0.000" not in " ".join(lines) and "raw RSA 0.000–" in lines[1]

    def test_control_lines_without_controls_or_cells(self):
        main = page_family(planted_grid()).head(2)
        lines, numbers = prose.control_lines({"full_space": main})
        assert lines == [] and np.isnan(numbers["null_rho_n"]) and numbers["null_cells"] == 2
        assert prose.bulleted(lines, lead="**x**") == ""
        assert prose.bulleted(["a", "b"], lead="**x**") == "**x**\n\n- a\n- b"
        with pytest.raises(ValueError, match="full_space"):
            prose.control_lines({"seed": main})

    def test_control_panels_title_each_comparison(self):
        grid = SimpleNamespace(frame=planted_grid(), label_a="A model", label_b="B model")
        frames, panels = pages.control_panels({"full_space": grid, "control": grid})
        assert [p[0] for p in panels] == ["A against B", "random model (authors')"]
        assert "rsa_excess" in frames["control"] and panels[0][2:] == ("A model", "B model")


class TestManyToOne:
    def test_numbers_of_the_two_rules(self):
        many = page_family(planted_grid(shift=0.05))
        one = page_family(planted_grid())
        numbers = pages.many_to_one_numbers(many, one)
        assert numbers["biggest_hub"] == 12
        assert (numbers["top_one_a"], numbers["top_one_b"]) == (0, 1) and numbers["top_one"] == pytest.approx(0.33)
        assert numbers["best_many"] == pytest.approx(0.86) and numbers["best_one"] == pytest.approx(0.81)
        assert numbers["pairs_one"] == int(one["n_pairs"].median())
        assert numbers["svcca_excess_many"] == pytest.approx(one["svcca_excess"].median() + 0.05)
        # above the null: Holm over each grid's 4 layer pairs on the tail p-values (RSA 0.001, 0.001, 0.04,
        # 0.003 -> all; SVCCA 0.03, 0.001, 0.06, 0.002 -> the 2nd and 4th), and a positive excess
        assert (numbers["n_cells_many"], numbers["n_cells_one"]) == (4, 4)
        assert (numbers["rsa_above_many"], numbers["rsa_above_one"]) == (4, 4)
        assert (numbers["svcca_above_many"], numbers["svcca_above_one"]) == (2, 2)
        below = page_family(planted_grid(shift=-0.5))  # same p-values, every score under its null mean
        assert pages.many_to_one_numbers(below, one)["rsa_above_many"] == 0

    def test_hub_null_table_rows_comparison_then_rule(self):
        grid = planted_grid()
        table = pages.hub_null_table({"many_to_one": {"full_space": grid, "seed": grid},
                                      "mutual": {"full_space": grid, "seed": grid}})
        assert list(zip(table["comparison"], table["rule"]))[:4] == [("A against B", "many-to-1")] * 2 + [
            ("A against B", "mutual nearest neighbours")] * 2
        assert table["comparison"].iloc[4] == "two SAEs of model A"
        assert list(table.columns) == ["comparison", "rule", "measure", "null", "layer pairs",
                                       "median effect over null", "median z", "raw p ≤ 0.05", "above null (Holm)"]
        assert not any("BH" in c for c in table.columns)
        rsa, svcca = table.iloc[0], table.iloc[1]
        assert rsa["measure"] == "RSA" and rsa["layer pairs"] == 4 and rsa["raw p ≤ 0.05"] == 3
        assert rsa["above null (Holm)"] == 4 and svcca["above null (Holm)"] == 2  # Holm over the 4 tail p-values
        assert rsa["median effect over null"] == pytest.approx((grid["rsa"] - grid["rsa_null_mean"]).median())

    def test_rule_summary_best_rule_first(self):
        a, b = planted_grid(), planted_grid(shift=0.1).assign(rule="hungarian")
        summary, numbers = pages.rule_summary(pd.concat([a, b]), [(0, 0), (1, 1)])
        assert numbers == {"rule_pairs": "A0–B0, A1–B1", "best_rule": "1-1 (Hungarian)",
                           "best_rule_direction": "B picks A"}
        assert summary.index[0] == ("1-1 (Hungarian)", "B picks A")
        assert summary.iloc[0]["mean SVCCA"] == pytest.approx(b["svcca"].mean())
        assert summary.iloc[1]["layer pairs with SVCCA p ≤ 0.05"] == 2 and "mean_svcca" not in summary
        assert list(summary["layer pairs with SVCCA above null (Holm)"]) == [2, 2]  # Holm within each rule
        below = planted_grid(shift=-0.5).assign(svcca_p_tail=1e-6)  # tiny p, but under the null mean
        assert pages.rule_summary(below, [(0, 0)])[0]["layer pairs with SVCCA above null (Holm)"].iloc[0] == 0


class TestFeatureCounts:
    def test_peak_pair_and_dead_latents(self):
        frame = page_family(planted_grid())
        assert pages.peak_pair(frame) == (0, 1)
        assert pages.peak_pair(frame, 1, None) == (1, 1) and pages.peak_pair(frame, 0, 0) == (0, 0)
        dead = pages.dead_latents(frame, "A model", "B model")
        assert dead.loc[("A model", 1), "dead"] == 5 and dead.loc[("A model", 1), "dead %"] == pytest.approx(500 / 64)
        assert len(dead) == 4

    def test_numbers_of_one_layer_pair(self):
        import scipy.sparse as sp

        pairs = Pairs(a=[2, 2, 2, 0], b=[0, 1, 2, 3], r=[0.5] * 4, rule="many_to_one", direction="b_to_a",
                      r_min=0.1, n_a=3, n_b=4)
        codes = sp.csr_matrix(np.array([[1.0, 0, 0], [0, 0, 0], [1.0, 0, 2.0], [0, 0, 1.0]]))
        contexts = SimpleNamespace(top_tokens=[["a"], ["b"], [" the", "\n", "x"]],
                                   active=[[True], [True], [True, True, False]])
        layer = SimpleNamespace(codes=codes, contexts=contexts, dead=np.array([False, True, False]), n_latents=3)
        other = SimpleNamespace(dead=np.array([True, False, False, False]), n_latents=4)
        numbers = pages.feature_count_numbers(hub_counts(pairs), layer, other, page_family(planted_grid()),
                                              layer_a=1, layer_b=0)
        assert (numbers["top_hub"], numbers["top_hub_latent"], numbers["n_unique"]) == (3, 2, 2)
        assert numbers["top_hub_tokens"] == "' the' '\\n'"
        assert numbers["unique_pct"] == pytest.approx(50.0) and (numbers["dead_a"], numbers["dead_b"]) == (1, 1)
        assert numbers["median_freq_a"] == pytest.approx(0.5)  # latents 0 and 2 fire on 2 of 4 tokens each
        assert numbers["kept_min"] == pytest.approx(10.0) and numbers["kept_max"] == pytest.approx(50.0)


def planted_subspace() -> pd.DataFrame:
    rows = []
    for la, lb in [(0, 0), (1, 1)]:
        for concept, n_pairs, svcca, p in [("Time", 30, 0.7, 0.01), ("Nature", 5, 0.9, 0.5),
                                           ("Control", 50, 0.6, 0.02)]:
            rows.append({"layer_a": la, "layer_b": lb, "concept": concept, "n_pairs": n_pairs + la, "skipped": "",
                         "svcca": svcca + 0.1 * la, "svcca_null_mean": 0.5, "svcca_p": p, "svcca_z": 2.0 + la,
                         "rsa": 0.3, "rsa_null_mean": 0.1, "rsa_p": p, "rsa_z": 1.0,
                         "svcca_p_tail": p / 10, "rsa_p_tail": p / 10,
                         "svcca_authors_k": 0.8 + 0.05 * la, "svcca_authors_k_null_mean": 0.2,
                         "n_members_a": 9, "n_members_b": 9})
    return pd.DataFrame(rows)


class TestSubspace:
    def test_numbers_the_table_pair_and_the_control(self):
        from saesim.report.tables import concept_family, with_effects

        frame = with_effects(planted_subspace())
        family = concept_family(frame, ["Time", "Nature"])
        pair = pages.concept_table_pair(family, frame, "tiny")
        assert pair == (1, 1)  # both pairs have one headline-sized concept; (1, 1) has the larger mean excess
        assert pages.concept_table_pair(family, frame, "tiny", 0, 0) == (0, 0)
        numbers = pages.subspace_numbers(frame, family, ["Time", "Nature"], layer_a=1, layer_b=1)
        assert numbers["n_scored"] == 4 and numbers["n_rows"] == 4 and numbers["n_enough"] == 2
        assert numbers["n_control"] == 2 and numbers["n_control_sig"] == 2 and numbers["n_sig"] == 2
        # Holm over the family's 4 tail p-values (Time 0.001 twice, Nature 0.05 twice): Time only
        assert (numbers["n_sig_holm"], numbers["n_sig_rsa_holm"], numbers["n_subset_sig_holm"]) == (2, 2, 0)
        assert family["svcca_p_holm"].tolist() == pytest.approx([0.004, 0.1, 0.004, 0.1])
        # the Control judged apart: Holm over its own 2 layer pairs (0.002 each -> 0.004)
        assert (numbers["n_control_above"], numbers["n_control_above_rsa"]) == (2, 2)
        assert not any(k.endswith("_bh") for k in numbers)
        assert numbers["control_reading"].startswith("At a raw p ≤ 0.05, the Control passes at 100% of its layer "
                                                     "pairs and the concepts at 50%")
        assert numbers["top_text"].startswith("Time at A 1 – B 1 (31 pairs): 0.800 against a null mean of 0.500")
        assert numbers["top_text"].endswith("Holm-adjusted p = 0.004 over the 4 concept subspaces)")
        quiet = frame.assign(svcca_p=0.5)
        reading = pages.subspace_numbers(quiet, concept_family(quiet, ["Time"]), ["Time"], layer_a=1,
                                         layer_b=1)["control_reading"]
        assert reading.endswith("neither the Control nor any concept subspace stands out from its shuffled null")
        assert numbers["k1_min"] == pytest.approx(0.85) and numbers["k1_null"] == pytest.approx(0.2)
        assert len(pages.control_subspace(frame)) == 2

    def test_concept_pair_table_headers_from_vocab_and_holm_p(self):
        from saesim import vocab
        from saesim.report.tables import concept_family, with_effects

        frame = with_effects(planted_subspace())
        family = concept_family(frame, ["Time", "Nature"])
        table = pages.concept_pair_table(frame, family, layer_a=1, layer_b=1)
        assert list(table.columns) == [c for c in pages.CONCEPT_PAIR_COLUMNS if c != "skipped"]
        assert table.columns[0] == vocab.column_label("n_pairs") == "pairs kept"
        assert table.loc["Time", "pairs kept"] == 31 and table.loc["Control", "pairs kept"] == 51
        assert table.loc["Time", "SVCCA p (Holm)"] == pytest.approx(0.004)
        assert table.loc["Nature", "RSA p (Holm)"] == pytest.approx(0.1)
        assert np.isnan(table.loc["Control", "SVCCA p (Holm)"])  # judged apart, not in the family
        assert table.loc["Time", vocab.column_label("svcca_authors_k")] == pytest.approx(0.85)
        assert not any("BH" in c for c in table.columns)


class TestRobustnessAndFindings:
    def test_verdict_views_one_per_measure_and_rule(self):
        verdicts = pd.DataFrame({"measure": ["svcca", "svcca", "rsa"], "rule": "first_index",
                                 "layer pair": ["A0–B0", "A1–B1", "A0–B0"], "effect over null": [0.1, -0.02, 0.3],
                                 "p (Holm)": [0.01, 0.5, 0.001]})
        views = pages.verdict_views(verdicts)
        assert [(m, r) for m, r, _ in views] == [("SVCCA", "1-1 (first occurrence)"), ("RSA", "1-1 (first occurrence)")]
        assert views[0][2].loc["effect over null", "A1–B1"] == "-0.020"

    def test_robustness_effects_read_the_family_decision(self):
        grid = planted_grid()  # tail p of RSA: 0.001, 0.001, 0.04, 0.003 -> Holm 0.004, 0.004, 0.04, 0.006
        sae = grid.iloc[[0, 2]].assign(rsa_ci_low=0.1, rsa_ci_high=0.4, rsa_effect=[0.19, 0.05], rsa_effect_z=2.0)
        out = pages.robustness_effects(sae, grid, ["rsa"])
        assert out.index.tolist() == [("A0–B0", "RSA"), ("A1–B0", "RSA")]
        assert out["p (Holm)"].tolist() == pytest.approx([0.004, 0.04])
        assert out["above null"].tolist() == ["yes", "yes"]
        assert out.loc[("A0–B0", "RSA"), "score [95 % CI]"] == "0.200 [0.100, 0.400]"

    def test_findings_view_names_measures_and_peaks(self):
        table = pd.DataFrame({"comparison": ["full_space"], "what": ["A against B"], "cells": [4],
                              "cells_above_null": [2], "median_excess": [0.1], "max_excess": [0.3],
                              "peak_layer_a": [1], "peak_layer_b": [2], "peak_z": [4.0], "median_pairs": [30.0]})
        split = pages.findings_view({"rsa": table, "svcca_authors_k": table.assign(what="the random model (authors')")})
        view = split.full.data
        assert view["measure"].tolist() == ["RSA", "SVCCA, k = 1 (authors')"]
        assert view["peak"].tolist() == ["A1–B2"] * 2
        assert "above null (Holm)" in view and "cells_above_null" not in view
        # a comparison reads as its table label, not its in-sentence phrase
        assert view["comparison"].tolist() == ["A against B", "random model (authors')"]
        # the z at the peak and the median pairs are one click away; the rest fits the page
        assert split.hidden == ["z at peak", "median pairs kept"]
        assert "z at peak" not in split.shown.data and "+0.300" in split.shown.to_html()
        near_zero = table.assign(median_excess=[1e-5])
        assert ">0.000<" in pages.findings_view({"rsa": near_zero}).shown.to_html()  # never "+0.000"


class TestToy:
    def test_the_papers_toy_pairs_as_the_paper(self):
        m1 = np.array([[2.48, 5.24, 1.24], [5.95, 0.67, 1.8], [0.1, 7.4, 4.1], [3.15, 6.48, 9.28]])
        m2 = np.array([[0.55, 6.13, 3.56], [0.91, 5.89, 4.26], [6.48, 7.44, 5.36], [5.78, 2.22, 4.54]])
        paper = np.array([[6.48, 7.44, 5.36], [5.78, 2.22, 4.54], [0.55, 6.13, 3.56], [0.91, 5.89, 4.26]])
        toy = pages.toy_pairing(m1, m2)
        np.testing.assert_allclose(toy.corr, np.corrcoef(m1, m2)[:4, 4:])
        numbers = toy.numbers(paper_order=paper)
        assert numbers["order"] == "3, 4, 1, 2" and numbers["matches"] == "yes"
        assert numbers["rsa_moves"] in {"rises", "falls", "stays"}
        assert numbers["rsa_paired"] == toy.scores["paired"]["RSA"]
        assert toy.scores_frame().shape == (4, 2) and toy.correlation_frame().shape == (4, 4)


class TestDrivers:
    def test_read_baselines_is_none_until_written(self, tmp_path):
        from saesim.experiments.baselines import read_baselines
        from saesim.io import atomic_parquet

        assert read_baselines(tmp_path) is None
        atomic_parquet(pd.DataFrame({"x": [1]}), tmp_path / "robustness" / "baselines.parquet")
        assert read_baselines(tmp_path)["x"].tolist() == [1]

    def test_kept_table_writes_the_latest_copy(self, tmp_path):
        from saesim.experiments.sweeps import kept_table

        kept_table(tmp_path, "sweep", {"k": 1}, lambda: pd.DataFrame({"x": [1]}))
        assert pd.read_parquet(tmp_path / "sweep.parquet")["x"].tolist() == [1]
        kept_table(tmp_path, "other", {"k": 1}, lambda: pd.DataFrame({"x": [2]}), latest=False)
        assert not (tmp_path / "other.parquet").exists()


def test_intro_summary_without_results_says_how_to_get_them(tiny_profile, tmp_path):
    text = pages.intro_summary(tiny_profile, cache_dir=tmp_path, results_dir=tmp_path / "results")
    assert text.startswith("*No results yet for profile `tiny`") and "saesim run --profile tiny" in text


def test_tail_calibration_is_near_the_level_and_deterministic():
    first = pages.tail_calibration(100, reps=200, seed=1)
    assert first.equals(pages.tail_calibration(100, reps=200, seed=1))
    assert first["null"].nunique() == 3 and set(first["level"]) == {0.05, 0.01}
    at05 = first[first["level"] == 0.05]
    assert ((at05["tail p ≤ level"] > 0.01) & (at05["tail p ≤ level"] < 0.1)).all()
    assert (first["tail p ≤ level"] >= first["permutation p ≤ level"]).all()  # tail p never above permutation p
