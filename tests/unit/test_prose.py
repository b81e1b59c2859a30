"""Tests for saesim.report.prose: verdict sentences and the verdict table follow the numbers."""

import re

import numpy as np
import pandas as pd
import pytest

from saesim import vocab
from saesim.experiments.baselines import control_comparison
from saesim.report.prose import verdict, verdict_table
from tests.planted_layers import fake_record
from tests.planted_layers import verdict_cell as cell

_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")
"""The numbers a sentence quotes (the checks read numbers, not wording)."""


def column(name):
    """The verdict table's column of a control table's comparison (headers come from saesim.vocab)."""
    return vocab.label("comparison", name)


EFFECT, P_HOLM, SEED_SHARE = (vocab.column_label(c) for c in ("effect", "p_holm", "seed_share"))


class TestVerdict:
    def test_verdict_follows_the_numbers_both_ways(self):
        sae = pd.DataFrame([fake_record(0, 0, 0.8, 0.75, 0.85), fake_record(1, 1, 0.5, 0.40, 0.60)])
        control = pd.DataFrame([fake_record(0, 0, 0.4, 0.35, 0.45), fake_record(1, 1, 0.45, 0.40, 0.50)])
        raw = pd.DataFrame([fake_record(0, 0, 0.6, 0.55, 0.65), fake_record(1, 1, 0.7, 0.65, 0.75)])
        table = control_comparison(sae, control=control, raw=raw)
        out = verdict_table(table).set_index("layer pair")
        assert list(out.index) == ["A0–B0", "A1–B1"]
        # A0–B0's interval [0.75, 0.85] clears both baselines; A1–B1's [0.40, 0.60] overlaps the random
        # model's [0.40, 0.50] from above and lies wholly below the raw neurons' [0.65, 0.75]
        assert cell(out.loc["A0–B0", column("control")]) == ("above", 0.4, 0.35, 0.45, False)
        assert cell(out.loc["A0–B0", column("raw_neuron")]) == ("above", 0.6, 0.55, 0.65, False)
        assert cell(out.loc["A1–B1", column("control")]) == ("overlaps", 0.45, 0.4, 0.5, False)
        assert cell(out.loc["A1–B1", column("raw_neuron")]) == ("below", 0.7, 0.65, 0.75, False)
        for pair in out.index:  # the shuffled null (mean 0.3, sd 0.01) is below both
            place, value, *_ = cell(out.loc[pair, column("shuffle_null")])
            assert (place, value) == ("above", 0.3)
        assert out[EFFECT].tolist() == pytest.approx([0.8 - 0.3, 0.5 - 0.3])  # score - null mean
        assert out["SAE score [CI]"].tolist() == ["0.800 [0.750, 0.850]", "0.500 [0.400, 0.600]"]
        # one sentence per row, quoting the same numbers
        lines = verdict(table)
        assert len(lines) == 2
        for line, (pair, row) in zip(lines, out.iterrows()):
            for name in ("control", "raw_neuron", "shuffle_null"):
                place, value, low, high, _ = cell(row[column(name)])
                assert f"{value:.3f} [{low:.3f}, {high:.3f}]" in line, (pair, name)

    def test_every_baseline_is_judged(self):
        sae = pd.DataFrame([fake_record(0, 1, 0.5, 0.45, 0.55)])
        seed = pd.DataFrame([fake_record(0, 0, 0.9, 0.85, 0.95), fake_record(0, 1, 0.1, 0.05, 0.15)])
        control = pd.DataFrame([fake_record(0, 1, 0.3, 0.25, 0.35)])
        control_all = pd.DataFrame([fake_record(0, 1, 0.2, 0.15, 0.25)])
        table = control_comparison(sae, seed=seed, control=control, control_all=control_all)
        ((_, row),) = verdict_table(table).iterrows()
        assert cell(row[column("control")]) == ("above", 0.3, 0.25, 0.35, False)
        assert cell(row[column("control_all")]) == ("above", 0.2, 0.15, 0.25, False)
        assert cell(row[column("shuffle_null")])[:2] == ("above", 0.3)
        # the seed control is two SAEs of model A at A's layer (0.9 at A0–A0, not 0.1 at A0–B1):
        # the SAE effect 0.5 - 0.3 is a third of its 0.9 - 0.3
        assert row[SEED_SHARE] == pytest.approx((0.5 - 0.3) / (0.9 - 0.3))
        assert row[EFFECT] == pytest.approx(0.2)
        numbers = _NUMBER.findall(verdict(table)[0])
        assert {"0.900", "0.850", "0.950"} <= set(numbers) and "0.100" not in numbers

    def test_missing_ci_is_marked(self):
        rec = fake_record(0, 0, 0.8, np.nan, np.nan)
        table = control_comparison(pd.DataFrame([rec]), control=pd.DataFrame([fake_record(0, 0, 0.2, 0.1, 0.3)]))
        ((_, row),) = verdict_table(table).iterrows()
        assert row["SAE score [CI]"] == "0.800"  # no interval to show
        assert cell(row[column("control")]) == ("above", 0.2, 0.1, 0.3, True)  # the SAE point stood in
        with_ci = control_comparison(pd.DataFrame([fake_record(0, 0, 0.8, 0.7, 0.9)]),
                                     control=pd.DataFrame([fake_record(0, 0, 0.2, 0.1, 0.3)]))
        assert cell(verdict_table(with_ci).iloc[0][column("control")]) == ("above", 0.2, 0.1, 0.3, False)

    def test_saturated_cca_baseline_is_flagged(self):
        def line_for(k):
            raw = dict(fake_record(0, 0, 1.0, 0.99, 1.0, null=0.98), svcca_k_x=k, svcca_k_y=k, n_pairs=64)
            table = control_comparison(pd.DataFrame([fake_record(0, 0, 0.5, 0.45, 0.55)]), raw=pd.DataFrame([raw]))
            assert cell(verdict_table(table).iloc[0][column("raw_neuron")]) == ("below", 1.0, 0.99, 1.0, False)
            (line,) = verdict(table)
            return set(_NUMBER.findall(line))
        # 64 pairs on k = 60 kept dimensions: the sentence gives k, n and both gains over their nulls
        assert {"60", "64", "+0.200", "+0.020"} <= line_for(60)
        assert not {"10", "64"} & line_for(10)  # 6.4 pairs per dimension: no flag

    def test_same_model_raw_baseline_is_called_a_ceiling(self):
        def outputs(mean_r):
            raw = dict(fake_record(0, 0, 1.0, 0.99, 1.0), mean_r_filtered=mean_r)
            table = control_comparison(pd.DataFrame([fake_record(0, 0, 0.5, 0.45, 0.55)]), raw=pd.DataFrame([raw]))
            return verdict(table)[0], verdict_table(table)
        same_line, same_table = outputs(1.0)
        other_line, other_table = outputs(0.5)
        pd.testing.assert_frame_equal(same_table, other_table)  # the place is the same: below
        assert cell(same_table.iloc[0][column("raw_neuron")])[0] == "below"
        assert same_line != other_line and same_line.split(" (")[0] == other_line.split(" (")[0]
        assert len(same_line) > len(other_line)  # one note more: both slots run the same model

    def test_empty(self):
        assert verdict(pd.DataFrame()) == ["No comparisons to judge: the table is empty."]
        assert verdict_table(pd.DataFrame()).empty

    def test_verdict_table_follows_the_numbers_and_the_pages_family(self):
        sae = pd.DataFrame([fake_record(0, 0, 0.8, 0.75, 0.85), fake_record(1, 1, 0.5, 0.40, 0.60)])
        seed = pd.DataFrame([fake_record(0, 0, 0.9, 0.85, 0.95), fake_record(1, 1, 0.9, 0.85, 0.95)])
        control = pd.DataFrame([fake_record(0, 0, 0.4, 0.35, 0.45), fake_record(1, 1, 0.45, 0.40, 0.50)])
        raw = pd.DataFrame([fake_record(0, 0, 0.6, 0.55, 0.65), fake_record(1, 1, 0.7, 0.65, 0.75)])
        table = control_comparison(sae, seed=seed, control=control, raw=raw)
        # the page's family: the comparison's grid; its tail p-values, Holm-adjusted within rule and direction
        family = pd.DataFrame([dict(layer_a=0, layer_b=0, rule="first_index", direction="b_to_a", svcca=0.8,
                                    svcca_null_mean=0.3, svcca_p_tail=0.005),
                               dict(layer_a=1, layer_b=1, rule="first_index", direction="b_to_a", svcca=0.5,
                                    svcca_null_mean=0.3, svcca_p_tail=0.1)])
        out = verdict_table(table, family=family).set_index("layer pair")
        assert list(out.index) == ["A0–B0", "A1–B1"]
        assert (out["rule"] == "first_index").all() and (out["measure"] == "svcca").all()
        judged = ("control", "raw_neuron", "shuffle_null")
        places = {pair: {name: cell(out.loc[pair, column(name)])[0] for name in judged} for pair in out.index}
        assert places == {"A0–B0": {"control": "above", "raw_neuron": "above", "shuffle_null": "above"},
                          "A1–B1": {"control": "overlaps", "raw_neuron": "below", "shuffle_null": "above"}}
        assert cell(out.loc["A0–B0", column("control")]) == ("above", 0.4, 0.35, 0.45, False)
        assert cell(out.loc["A1–B1", column("raw_neuron")]) == ("below", 0.7, 0.65, 0.75, False)
        assert cell(out.loc["A1–B1", column("control")]) == ("overlaps", 0.45, 0.4, 0.5, False)
        # the p-value is the page family's Holm-adjusted one (2 x 0.005, then 0.1), not the table's own
        assert out.loc["A0–B0", P_HOLM] == pytest.approx(0.01) and out.loc["A1–B1", P_HOLM] == pytest.approx(0.1)
        assert out[SEED_SHARE].tolist() == pytest.approx([(0.8 - 0.3) / (0.9 - 0.3), (0.5 - 0.3) / (0.9 - 0.3)])
        assert out[EFFECT].tolist() == pytest.approx([0.5, 0.2])
        # the cell not above its null says so first, with its adjusted p and the level
        assert out.loc["A1–B1", "verdict"].startswith("not above its null")
        assert {"0.1", "0.05"} <= set(_NUMBER.findall(out.loc["A1–B1", "verdict"]))
        assert out.loc["A0–B0", "verdict"].startswith("above its null")
