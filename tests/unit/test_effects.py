"""Tests for saesim.compare.effects."""

import numpy as np
import pandas as pd
import pytest

from saesim.compare.effects import as_float, effect_sizes, scored_metrics


class TestEffectSizes:
    def test_dict_and_frame(self):
        record = {"svcca": 0.5, "svcca_null_mean": 0.3, "svcca_null_std": 0.1, "rsa": 0.1, "rsa_null_mean": 0.0,
                  "rsa_null_std": 0.0, "rsa_subset_null_mean": 0.05}
        out = effect_sizes(record)
        assert out["svcca_effect"] == pytest.approx(0.2) and out["svcca_effect_z"] == pytest.approx(2.0)
        assert np.isnan(out["rsa_effect_z"]) and out["rsa_subset_effect"] == pytest.approx(0.05)
        frame = effect_sizes(pd.DataFrame([record, record]))
        assert list(frame["svcca_effect"]) == pytest.approx([0.2, 0.2])

    def test_scored_metrics_need_a_null_mean_and_spread(self):
        record = {"svcca": 0.5, "svcca_null_mean": 0.3, "svcca_null_std": 0.1, "svcca_authors_k": 0.9,
                  "svcca_authors_k_null_mean": 0.2, "rsa_subset_null_mean": 0.1, "rsa_subset_null_std": 0.1}
        assert scored_metrics(record) == ["svcca"]

    def test_as_float(self):
        assert as_float("0.5") == 0.5 and np.isnan(as_float(None)) and np.isnan(as_float("x"))
