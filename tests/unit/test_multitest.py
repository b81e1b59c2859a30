"""Tests for saesim.compare.multitest: Holm and Benjamini-Hochberg against hand-computed values."""

import numpy as np
import pandas as pd
import pytest

from saesim.compare.multitest import adjust_columns, adjust_pvalues, benjamini_hochberg, holm, n_rejected

P = np.array([0.01, 0.04, 0.03, 0.005])
# Sorted: 0.005, 0.01, 0.03, 0.04 (m = 4).
# Holm: 4 x 0.005 = 0.02, 3 x 0.01 = 0.03, 2 x 0.03 = 0.06, 1 x 0.04 = 0.04 -> running max 0.02, 0.03, 0.06, 0.06.
HOLM = np.array([0.03, 0.06, 0.06, 0.02])
# BH: 0.005 x 4/1 = 0.02, 0.01 x 4/2 = 0.02, 0.03 x 4/3 = 0.04, 0.04 x 4/4 = 0.04 -> running min from the top.
BH = np.array([0.02, 0.04, 0.04, 0.02])


class TestAdjust:
    def test_holm_by_hand(self):
        np.testing.assert_allclose(adjust_pvalues(P, "holm"), HOLM, rtol=0, atol=1e-15)
        np.testing.assert_allclose(holm(P), HOLM, rtol=0, atol=1e-15)

    def test_bh_by_hand(self):
        np.testing.assert_allclose(adjust_pvalues(P, "bh"), BH, rtol=0, atol=1e-15)
        np.testing.assert_allclose(benjamini_hochberg(P), BH, rtol=0, atol=1e-15)

    def test_ties_share_the_running_maximum(self):
        # 3 x 0.02 = 0.06, 2 x 0.02 = 0.04 -> 0.06, 0.06; then 0.5.
        np.testing.assert_allclose(adjust_pvalues([0.02, 0.02, 0.5], "holm"), [0.06, 0.06, 0.5], atol=1e-15)

    def test_capped_at_one(self):
        np.testing.assert_array_equal(adjust_pvalues([0.5, 0.6, 0.7], "holm"), [1.0, 1.0, 1.0])
        # BH: 1.5, 0.9, 0.7 -> running min from the top 0.7 each.
        np.testing.assert_allclose(adjust_pvalues([0.5, 0.6, 0.7], "bh"), [0.7, 0.7, 0.7], atol=1e-15)
        assert adjust_pvalues([1.0], "bh")[0] == 1.0

    def test_nan_left_out_of_the_family(self):
        p = [0.01, np.nan, 0.04]  # family of two: Holm 0.02, 0.04; BH 0.02, 0.04
        holm_out, bh_out = adjust_pvalues(p, "holm"), adjust_pvalues(p, "bh")
        np.testing.assert_allclose(holm_out[[0, 2]], [0.02, 0.04], atol=1e-15)
        np.testing.assert_allclose(bh_out[[0, 2]], [0.02, 0.04], atol=1e-15)
        assert np.isnan(holm_out[1]) and np.isnan(bh_out[1])
        assert np.isnan(adjust_pvalues([np.nan, np.nan], "holm")).all()

    @pytest.mark.parametrize("method", ["holm", "bh"])
    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_monotone_in_p_at_least_p_and_at_most_one(self, method, seed):
        p = np.random.default_rng(seed).uniform(size=40) ** 3
        adjusted = adjust_pvalues(p, method)
        order = np.argsort(p, kind="stable")
        assert np.all(np.diff(adjusted[order]) >= 0)
        assert np.all(adjusted >= p) and np.all(adjusted <= 1.0)
        assert np.all(holm(p) >= benjamini_hochberg(p) - 1e-15)  # Holm is the stricter

    def test_unknown_method(self):
        with pytest.raises(ValueError, match=r"`method` must be one of \['holm', 'bh'\]"):
            adjust_pvalues(P, "bonferroni")


class TestRejections:
    def test_counts_by_hand(self):
        # Holm: 0.005 <= 0.05/4, 0.01 <= 0.05/3, 0.03 > 0.05/2 -> 2. BH: 0.04 <= 4 x 0.05/4 -> all 4.
        assert n_rejected(P, 0.05, "holm") == 2
        assert n_rejected(P, 0.05, "bh") == 4
        assert n_rejected([0.5, np.nan, 0.9], 0.05, "bh") == 0 and n_rejected([], 0.05, "holm") == 0

    @pytest.mark.parametrize("method", ["holm", "bh"])
    def test_agrees_with_the_adjusted_values(self, method):
        p = np.concatenate([np.random.default_rng(3).uniform(0, 0.01, 8), np.random.default_rng(4).uniform(size=30)])
        assert n_rejected(p, 0.05, method) == int((adjust_pvalues(p, method) <= 0.05).sum())

    def test_alpha_checked(self):
        with pytest.raises(ValueError, match=r"in \(0, 1\)"):
            n_rejected(P, 1.5, "holm")


def test_adjust_columns_adds_both_for_every_p_column():
    frame = pd.DataFrame({"svcca_p": P, "rsa_p": [np.nan, 0.2, 0.2, 0.2], "svcca": [0.1, 0.2, 0.3, 0.4]})
    out = adjust_columns(frame)
    assert list(out.columns) == ["svcca_p", "rsa_p", "svcca", "svcca_p_holm", "svcca_p_bh", "rsa_p_holm", "rsa_p_bh"]
    np.testing.assert_allclose(out["svcca_p_holm"], HOLM, atol=1e-15)
    np.testing.assert_allclose(out["svcca_p_bh"], BH, atol=1e-15)
    assert np.isnan(out["rsa_p_holm"][0]) and "svcca_p_holm" not in frame  # a copy
    assert list(adjust_columns(frame, ["rsa_p"]).columns[-2:]) == ["rsa_p_holm", "rsa_p_bh"]
