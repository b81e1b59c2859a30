"""Tests for saesim.experiments.baselines that need no model: the control table, the kept bootstraps'
names and the shuffled-pairing null (the raw-neuron capture and the kept runs are in
tests/integration/test_robust_tiny.py)."""

import hashlib
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import scipy.stats

from saesim.experiments.baselines import COMPARISONS, bootstrap_store, control_comparison
from saesim.experiments.bootstrap import BootstrapOptions
from saesim.experiments.grid import compare_pair
from tests.planted_layers import NULL_SETTINGS, fake_record, layers_from, small


class TestControlComparison:
    def test_one_row_per_comparison_and_metric(self):
        sae = pd.DataFrame([fake_record(0, 0, 0.8, 0.75, 0.85), fake_record(1, 1, 0.5, 0.40, 0.60)])
        control = pd.DataFrame([fake_record(0, 0, 0.4, 0.35, 0.45), fake_record(1, 1, 0.45, 0.40, 0.50)])
        raw = pd.DataFrame([fake_record(0, 0, 0.6, 0.55, 0.65), fake_record(1, 1, 0.7, 0.65, 0.75)])
        table = control_comparison(sae, control=control, raw=raw)
        assert set(table["comparison"]) == {"sae", "control", "raw_neuron", "shuffle_null"}
        assert len(table) == 2 * 4

    def test_every_baseline_lines_up(self):
        sae = pd.DataFrame([fake_record(0, 1, 0.5, 0.45, 0.55)])
        seed = pd.DataFrame([fake_record(0, 0, 0.9, 0.85, 0.95), fake_record(0, 1, 0.1, 0.05, 0.15)])
        control = pd.DataFrame([fake_record(0, 1, 0.3, 0.25, 0.35)])
        control_all = pd.DataFrame([fake_record(0, 1, 0.2, 0.15, 0.25)])
        table = control_comparison(sae, seed=seed, control=control, control_all=control_all)
        assert set(table["comparison"]) == set(COMPARISONS) - {"raw_neuron"}
        by = table.set_index("comparison")["value"]
        assert by["seed"] == 0.9  # the seed control is read at A's layer on both sides (A0 vs seed 0)

    def test_empty(self):
        assert control_comparison(pd.DataFrame()).empty


PROFILE = SimpleNamespace(key=lambda: "profile-key-0123")
SETTINGS_KEY = SimpleNamespace(key=lambda: "settings-key-4567")


class TestBootstrapStore:
    def test_tags_equal_those_of_the_old_options_dict(self):
        # Computed by saesim.experiments.robust._bootstrap_store before BootstrapOptions existed, from the dict
        # bootstrap_many built: dict(rule=..., direction=..., metrics=tuple(...), n_boot=..., seed=..., level=...,
        # candidates=...). Kept bootstraps on disk are found under these names.
        golden = {
            BootstrapOptions(rule="first_index"): "950c96be31cd",
            BootstrapOptions(rule="many_to_one", direction="a_to_b", metrics=["rsa"], n_boot=50, seed=3, level=0.9,
                             candidates=32): "8837d3acf3b4",
        }
        for options, tag in golden.items():
            folder, got = bootstrap_store(PROFILE, "/cache", None, SETTINGS_KEY, options)
            assert got == tag
            assert str(folder) == "/cache/results/robustness/cells/bootstrap"

    def test_tag_hashes_profile_settings_and_every_option(self):
        options = BootstrapOptions(rule="first_index", n_boot=7)
        blob = json.dumps({"profile": "profile-key-0123", "settings": "settings-key-4567", "rule": "first_index",
                           "direction": "b_to_a", "metrics": ["svcca", "rsa"], "n_boot": 7, "seed": 0, "level": 0.95,
                           "candidates": 64}, sort_keys=True)
        folder, tag = bootstrap_store(PROFILE, "/cache", "/out", SETTINGS_KEY, options)
        assert tag == hashlib.sha256(blob.encode()).hexdigest()[:12]
        assert str(folder) == "/out/cells/bootstrap"
        others = {bootstrap_store(PROFILE, "/cache", None, SETTINGS_KEY, options.replace(**change))[1]
                  for change in (dict(seed=1), dict(level=0.9), dict(candidates=8), dict(metrics=("rsa",)),
                                 dict(direction="a_to_b"), dict(rule="mutual"), dict(n_boot=8))}
        assert len(others) == 7 and tag not in others


class TestNullCalibration:
    def test_pvalues_are_uniform_without_correspondence(self):
        # 30 unrelated pairs of SAEs: shuffled-pairing p-values ~ U(0, 1) (KS test, and no excess at 0.1).
        data = small(1, n_tokens=2000, n_latents_a=96, n_latents_b=96, n_shared=48)
        p = []
        for seed in range(30):
            a, b = layers_from(data.shuffled(seed=seed))
            record = compare_pair(a, b, NULL_SETTINGS.replace(n_perm=99, seed=seed))[0]
            p.extend([record["svcca_p"], record["rsa_p"]])
        p = np.asarray(p)
        assert scipy.stats.kstest(p, "uniform").pvalue > 0.01
        assert np.mean(p <= 0.1) < 0.25
