"""The steering chapter's numbers and sentences follow the table (saesim.report.steering)."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from saesim.experiments.steering import STEERING_COLUMNS, headline_cells, pooled_test
from saesim.report import steering as report


def _table(efficiency, null, comparison="full_space", pairs=((0, 0), (1, 2), (2, 4)), native_effect=1.0):
    """A steering table: per cell one Procrustes row with ``efficiency`` and ``null`` shuffled draws."""
    rows = []
    for (la, lb), eff in zip(pairs, efficiency):
        common = dict(comparison=comparison, layer_a=la, layer_b=lb, concept="Time", n_pairs=50, n_concept_rows=9,
                      n_prompts=4, prompt_keywords=0, p=np.nan, p_holm=np.nan, ci_low=eff - 0.1, ci_high=eff + 0.1)
        for alpha in (0.25, 0.5):
            rows.append({**common, "recipe": "mean_diff", "map": "native", "draw": 0, "alpha": alpha,
                         "effect": native_effect * alpha, "side_effect": alpha, "efficiency": 1.0})
            rows.append({**common, "recipe": "mean_diff", "map": "procrustes", "draw": 0, "alpha": alpha,
                         "effect": eff * alpha, "side_effect": alpha, "efficiency": eff, "p": 0.05, "p_holm": 0.15})
            for d, value in enumerate(null):
                rows.append({**common, "recipe": "mean_diff", "map": "shuffled", "draw": d, "alpha": alpha,
                             "effect": value * alpha, "side_effect": alpha, "efficiency": value})
    return pd.DataFrame(rows)[list(STEERING_COLUMNS)]


META = {"settings": {"reference_alpha": 0.25, "n_null": 19}, "seconds": 12.0}


def test_pooled_test_is_the_median_against_the_draw_medians():
    table = _table([0.5, 0.7, 0.9], np.linspace(-0.2, 0.2, 19))
    test = pooled_test(table, "full_space")
    assert test["median"] == pytest.approx(0.7) and test["n_cells"] == 3
    np.testing.assert_allclose(test["null"], np.linspace(-0.2, 0.2, 19))
    assert test["p"] == pytest.approx(1 / 20)
    weak = pooled_test(_table([0.0, 0.0, 0.0], np.linspace(-0.2, 0.2, 19)), "full_space")
    assert weak["p"] > 0.4


def test_headline_cells_read_the_native_effect_at_the_reference_scale():
    cells = headline_cells(_table([0.5, 0.7, 0.9], [0.0] * 19, native_effect=2.0), 0.5)
    assert list(cells["native_effect"]) == [1.0, 1.0, 1.0] and list(cells["null_median"]) == [0.0] * 3


def test_sentences_follow_the_numbers():
    strong = report.steering_numbers(_table([0.5, 0.7, 0.9], np.linspace(-0.2, 0.2, 19)), META)
    lines = report.steering_lines(strong)
    assert "transfers better than the shuffled-pairing null" in lines[0] and "0.70" in lines[0]
    assert "it would need 59 draws" in " ".join(lines)  # 3 cells, 19 draws: Holm's smallest p is 0.15
    assert "nan" not in " ".join(lines)  # maps the table lacks are left out, not printed as nan
    one = report.steering_numbers(_table([0.5], np.linspace(-0.2, 0.2, 19), pairs=((0, 0),)), META)
    assert "it would need" not in " ".join(report.steering_lines(one))  # one cell: 1/20 can reach 0.05
    weak = report.steering_numbers(_table([0.0, 0.05, -0.1], np.linspace(-0.2, 0.2, 19)), META)
    assert "does not transfer measurably better" in report.steering_lines(weak)[0]
    many = dataclasses.replace(strong, n_cells=12)
    assert "it would need" in " ".join(report.steering_lines(many))
    assert "cannot answer" in report.steering_lines(dataclasses.replace(strong, n_cells=0))[0]


def test_a_control_that_transfers_as_well_is_said_to_undercut_the_claim():
    table = pd.concat([_table([0.5, 0.7, 0.9], np.linspace(-0.2, 0.2, 19)),
                       _table([0.8, 0.8, 0.9], np.linspace(-0.2, 0.2, 19), comparison="control")])
    lines = " ".join(report.steering_lines(report.steering_numbers(table, META)))
    assert "not by itself evidence" in lines and "does not show that the paired features are shared" in lines
    table = pd.concat([_table([0.5, 0.7, 0.9], np.linspace(-0.2, 0.2, 19)),
                       _table([0.0, 0.1, 0.0], np.linspace(-0.2, 0.2, 19), comparison="control")])
    assert "lower, as shared features predict" in " ".join(report.steering_lines(report.steering_numbers(table, META)))


def test_page_table_shows_intervals_only_where_efficiency_is_defined():
    table = _table([0.5, np.nan, 0.9], [0.0] * 19)
    view = report.steering_table(table, 0.25)
    assert list(view["95 % interval"]) == ["[0.40, 0.60]", "", "[0.80, 1.00]"]
    assert set(report.steering_shown(view)) <= set(view.columns)


def test_summary_lines_say_how_to_compute_a_missing_table_and_skip_encoders(tmp_path):
    lines = report.summary_lines("tiny", cache_dir=tmp_path, results_dir=tmp_path)
    assert lines and "saesim run --profile tiny" in lines[0]
    assert report.summary_lines("encoders", cache_dir=tmp_path, results_dir=tmp_path) == []


def test_summary_lines_lead_with_the_answer(tmp_path):
    import json

    table = pd.concat([_table([0.5, 0.7, 0.9], np.linspace(-0.2, 0.2, 19)),
                       _table([0.0, 0.1, 0.0], np.linspace(-0.2, 0.2, 19), comparison="control")])
    table.to_parquet(tmp_path / "steering_transfer.parquet")
    (tmp_path / "steering_transfer.json").write_text(json.dumps(META))
    lines = report.summary_lines("tiny", cache_dir=tmp_path, results_dir=tmp_path)
    assert lines[0].startswith("**Steering transfer ({ref}`steering`): ") and "0.70" in lines[0]
    assert "lower, as shared features predict" in lines[1]


def test_similarity_of_pairs_reads_one_rule_and_the_b_picks_a_direction():
    frame = pd.DataFrame({"layer_a": [0, 0, 0, 1], "layer_b": [0, 0, 0, 2],
                          "rule": ["first_index", "first_index", "many_to_one", "first_index"],
                          "direction": ["b_to_a", "a_to_b", "b_to_a", "b_to_a"],
                          "rsa": [0.5, 0.9, 0.7, 0.4], "rsa_null_mean": [0.1, 0.1, 0.1, 0.1]})
    sim = report.similarity_of_pairs(frame, "first_index")
    assert sim.index.is_unique and sim.to_dict() == pytest.approx({(0, 0): 0.4, (1, 2): 0.3})
