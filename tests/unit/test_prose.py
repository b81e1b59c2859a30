"""Tests for saesim.report.prose: verdict sentences and the verdict table follow the numbers."""

import numpy as np
import pandas as pd
import pytest

from saesim.experiments.baselines import control_comparison
from saesim.report.prose import family_p_value, verdict, verdict_table
from tests.planted_layers import fake_record


class TestVerdict:
    def test_verdict_follows_the_numbers_both_ways(self):
        sae = pd.DataFrame([fake_record(0, 0, 0.8, 0.75, 0.85), fake_record(1, 1, 0.5, 0.40, 0.60)])
        control = pd.DataFrame([fake_record(0, 0, 0.4, 0.35, 0.45), fake_record(1, 1, 0.45, 0.40, 0.50)])
        raw = pd.DataFrame([fake_record(0, 0, 0.6, 0.55, 0.65), fake_record(1, 1, 0.7, 0.65, 0.75)])
        table = control_comparison(sae, control=control, raw=raw)
        lines = verdict(table)
        assert len(lines) == 2
        assert "Verdict: beats every baseline." in lines[0]
        assert "does not clearly beat the random model (authors')" in lines[1]
        assert "does not clearly beat the raw neurons" in lines[1]
        assert "(it scores lower or equal)" in lines[1]

    def test_every_baseline_is_judged(self):
        sae = pd.DataFrame([fake_record(0, 1, 0.5, 0.45, 0.55)])
        seed = pd.DataFrame([fake_record(0, 0, 0.9, 0.85, 0.95), fake_record(0, 1, 0.1, 0.05, 0.15)])
        control = pd.DataFrame([fake_record(0, 1, 0.3, 0.25, 0.35)])
        control_all = pd.DataFrame([fake_record(0, 1, 0.2, 0.15, 0.25)])
        table = control_comparison(sae, seed=seed, control=control, control_all=control_all)
        line = verdict(table)[0]
        assert "two SAEs of model A at layer 0 score 0.900" in line
        assert "the agreement two SAEs of one model reach" in line and "floor" not in line and "ceiling" not in line
        assert "the SAE pairs' effect is" in line
        assert "beats the random model (authors')" in line
        assert "beats the random model (every tensor)" in line

    def test_missing_ci_is_said(self):
        rec = fake_record(0, 0, 0.8, np.nan, np.nan)
        table = control_comparison(pd.DataFrame([rec]), control=pd.DataFrame([fake_record(0, 0, 0.2, 0.1, 0.3)]))
        assert "a CI is missing" in verdict(table)[0]

    def test_saturated_cca_baseline_is_flagged(self):
        raw = dict(fake_record(0, 0, 1.0, 0.99, 1.0, null=0.98), svcca_k_x=60, svcca_k_y=60, n_pairs=64)
        table = control_comparison(pd.DataFrame([fake_record(0, 0, 0.5, 0.45, 0.55)]), raw=pd.DataFrame([raw]))
        line = verdict(table)[0]
        assert "keeps k = 60 dimensions for 64 pairs" in line
        assert "the SAE gains +0.200, raw neurons +0.020" in line

    def test_same_model_raw_baseline_is_called_a_ceiling(self):
        raw = dict(fake_record(0, 0, 1.0, 0.99, 1.0), mean_r_filtered=1.0)
        table = control_comparison(pd.DataFrame([fake_record(0, 0, 0.5, 0.45, 0.55)]), raw=pd.DataFrame([raw]))
        assert "this baseline is a ceiling" in verdict(table)[0]

    def test_empty(self):
        assert verdict(pd.DataFrame()) == ["No comparisons to judge: the table is empty."]

    def test_verdict_table_follows_the_numbers_and_the_pages_family(self):
        sae = pd.DataFrame([fake_record(0, 0, 0.8, 0.75, 0.85), fake_record(1, 1, 0.5, 0.40, 0.60)])
        seed = pd.DataFrame([fake_record(0, 0, 0.9, 0.85, 0.95), fake_record(1, 1, 0.9, 0.85, 0.95)])
        control = pd.DataFrame([fake_record(0, 0, 0.4, 0.35, 0.45), fake_record(1, 1, 0.45, 0.40, 0.50)])
        raw = pd.DataFrame([fake_record(0, 0, 0.6, 0.55, 0.65), fake_record(1, 1, 0.7, 0.65, 0.75)])
        table = control_comparison(sae, seed=seed, control=control, raw=raw)
        family = pd.DataFrame([dict(layer_a=0, layer_b=0, rule="first_index", direction="b_to_a", svcca_p_holm=0.01),
                               dict(layer_a=1, layer_b=1, rule="first_index", direction="b_to_a", svcca_p_holm=0.2)])
        out = verdict_table(table, family=family).set_index("layer pair")
        assert list(out.index) == ["A0–B0", "A1–B1"]
        assert out.loc["A0–B0", "verdict"] == "above every baseline"
        assert out.loc["A1–B1", "verdict"] == "above shuffled null only; not significant at 0.05 after Holm"
        assert out.loc["A0–B0", "random model (authors')"].startswith("above: 0.400")
        assert out.loc["A1–B1", "raw neurons"].startswith("below: 0.700")
        assert out.loc["A1–B1", "random model (authors')"].startswith("overlaps: 0.450")
        assert out.loc["A0–B0", "p (Holm)"] == 0.01 and out.loc["A1–B1", "p (Holm)"] == 0.2
        assert out.loc["A0–B0", "share of two SAEs' effect"] == pytest.approx((0.8 - 0.3) / (0.9 - 0.3))
        assert verdict_table(pd.DataFrame()).empty
        # 2 tests of 20 permutations: Holm's floor 2/21 is above 0.05, and the verdict says so
        floor = family.assign(svcca_p=[1 / 21, 1 / 21], n_perm=20, svcca_p_holm=[2 / 21, 2 / 21])
        out = verdict_table(table, family=floor).set_index("layer pair")
        assert out.loc["A0–B0", "verdict"] == ("above every baseline; Holm over 2 tests cannot reach 0.05 with "
                                               "20 permutations")


class TestFamilyPValue:
    def test_looks_up_the_cell_and_is_nan_when_absent(self):
        family = pd.DataFrame([dict(layer_a=0, layer_b=1, rule="first_index", direction="b_to_a", svcca_p_holm=0.02)])
        assert family_p_value(family, 0, 1, "first_index", "b_to_a", "svcca") == 0.02
        assert np.isnan(family_p_value(family, 1, 1, "first_index", "b_to_a", "svcca"))
        assert np.isnan(family_p_value(family, 0, 1, "first_index", "b_to_a", "rsa"))
