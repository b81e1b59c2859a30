"""Tests for saesim.experiments.sweeps on synthetic SAEs with a planted correspondence."""

import numpy as np
import pandas as pd
import pytest

from saesim.experiments.sweeps import (
    cached_top_k,
    default_sweep_pair,
    kept_table,
    sweep_filters,
    sweep_svcca_dimension,
    sweep_token_budget,
)
from tests.planted_layers import SETTINGS, layers_from, small


@pytest.fixture(scope="module")
def planted():
    return small(0)


@pytest.fixture(scope="module")
def row_doc():
    return np.arange(3000) // 30


class TestDefaultLayers:
    def test_first_middle_and_last_layer_at_the_same_relative_depth(self):
        from saesim.config import load_profile

        offline = load_profile("encoders")  # A 0-5, B 1, 3, ..., 11
        assert offline.baseline_layer_pairs() == [(0, 1), (3, 7), (5, 11)]
        assert default_sweep_pair(offline) == default_sweep_pair("encoders") == (3, 7)
        # Pythia: A has layers 1-5, B 1-11: A's first, middle and last against B's at the same depth.
        assert load_profile("pythia").baseline_layer_pairs() == [(1, 1), (3, 6), (5, 11)]
        same = offline.replace(layers_b=[0, 1, 2, 3, 4, 5])
        assert same.baseline_layer_pairs() == [(0, 0), (3, 3), (5, 5)]  # the diagonal
        two = offline.replace(layers_a=[2, 4], layers_b=[4, 2, 7])
        assert two.baseline_layer_pairs() == [(2, 4), (4, 7)]
        assert default_sweep_pair(two) == (4, 7)

    def test_one_layer_each(self):
        from saesim.config import load_profile

        assert load_profile("encoders").replace(layers_a=[2], layers_b=[9]).baseline_layer_pairs() == [(2, 9)]


class TestSweeps:
    def test_svcca_dimension_reports_k(self, planted):
        a, b = layers_from(planted)
        table = sweep_svcca_dimension(a, b, SETTINGS.replace(n_perm=10), policies=(0.5, 0.99, 3, "ratio:10"))
        assert list(table["policy"]) == ["0.5", "0.99", "3", "ratio:10"]
        assert table.loc[2, "svcca_k_x"] == 3 and table.loc[2, "pwcca_k_y"] == 3
        n = table.loc[3, "n_pairs"]
        assert table.loc[3, "svcca_k_x"] == min(max(1, n // 10), 16)
        assert table["svcca_k_x"].iloc[0] <= table["svcca_k_x"].iloc[1]
        assert (table["pwcca_p_tail"] <= table["pwcca_p"]).all()  # the book's p: never above the permutation p

    def test_filters_grid_and_kept_fraction(self, planted):
        a, b = layers_from(planted)
        table = sweep_filters(a, b, SETTINGS.replace(n_perm=5, metrics=("svcca",)), r_min=(0.0, 0.4),
                              rules=("first_index", "mutual"))
        skipped = table[table["skipped"] != ""]
        assert set(skipped["top_k"]) == {20} and skipped["skipped"].str.contains("cache only 10").all()
        done = table[table["skipped"] == ""]
        assert len(done) == (2 + 1) * 2 * 2 * 2  # (top_k 5, 10 | junk off) x r_min x rules x directions
        assert ((done["kept_fraction"] >= 0) & (done["kept_fraction"] <= 1)).all()
        strict = done[(done["r_min"] == 0.4)]["n_pairs"].sum()
        loose = done[(done["r_min"] == 0.0)]["n_pairs"].sum()
        assert strict <= loose

    def test_token_budget_is_nested_and_tightens(self, planted, row_doc):
        a, b = layers_from(planted)
        table = sweep_token_budget(a, b, row_doc, SETTINGS.replace(n_perm=20), fractions=(0.1, 0.5, 1.0))
        assert list(table["n_tokens"]) == [300, 1500, 3000]
        assert table["svcca_effect"].iloc[-1] > 0.2
        # the budgets are one family: Holm over their tail p-values, no BH
        from saesim.compare.multitest import holm

        for metric in SETTINGS.metrics:
            np.testing.assert_allclose(table[f"{metric}_p_holm"], holm(table[f"{metric}_p_tail"].to_numpy()))
        assert not any(c.endswith("_p_bh") for c in table.columns)


class TestKeptTable:
    def test_kept_under_its_key_and_recomputed_when_it_changes_or_is_damaged(self, tmp_path):
        calls = []

        def compute(value):
            def run():
                calls.append(value)
                return pd.DataFrame({"x": [value, value + 1]})
            return run

        first = kept_table(tmp_path, "sweep", {"pair": [3, 7]}, compute(1))
        again = kept_table(tmp_path, "sweep", {"pair": [3, 7]}, compute(99))  # kept: not recomputed
        pd.testing.assert_frame_equal(first, again)
        other = kept_table(tmp_path, "sweep", {"pair": [3, 5]}, compute(5))
        assert calls == [1, 5] and other["x"].tolist() == [5, 6]
        kept = sorted((tmp_path / "kept").glob("sweep_*.parquet"))
        assert len(kept) == 2 and not list((tmp_path / "kept").glob("*.tmp"))
        for path in kept:
            path.write_bytes(b"truncated")
        assert kept_table(tmp_path, "sweep", {"pair": [3, 7]}, compute(7))["x"].tolist() == [7, 8]
        assert calls == [1, 5, 7]

    def test_a_new_sweep_version_recomputes(self, tmp_path, monkeypatch):
        from saesim.experiments import sweeps

        kept_table(tmp_path, "sweep", {"pair": [3, 7]}, lambda: pd.DataFrame({"x": [1]}))
        monkeypatch.setattr(sweeps, "SWEEP_VERSION", sweeps.SWEEP_VERSION + 1)
        assert kept_table(tmp_path, "sweep", {"pair": [3, 7]}, lambda: pd.DataFrame({"x": [2]}))["x"].tolist() == [2]


class TestCachedTopK:
    def test_the_smaller_of_the_two_layers(self, planted):
        a, b = layers_from(planted, k=10)
        assert cached_top_k(a, b) == 10
        assert cached_top_k(a, layers_from(planted, k=4)[1]) == 4
