"""SAE quality table on the tiny profile: every SAE with its FVU, sparsity and seed stability.

Reuses the session's tiny extraction (``tiny_extraction`` in conftest): slot
``"a"`` (tiny GPT-NeoX, sparsify-format SAEs) and slot ``"seed"`` (a second
SAE set of the same model, trained by saesim) are partners at layers 0 and 1.
"""

import math

import numpy as np
import pandas as pd
import pytest

from saesim.cli import main
from saesim.experiments import sae_quality as sq
from saesim.experiments.sae_quality import QUALITY_COLUMNS, STABILITY_COLUMNS, sae_quality_table


@pytest.fixture(scope="module")
def table(tiny_extraction, tiny_profile, session_cache):
    return sae_quality_table(tiny_profile, cache=session_cache)


def test_one_row_per_sae_with_every_column(table, tiny_extraction):
    assert tuple(table.columns) == QUALITY_COLUMNS
    assert [(r.slot, r.layer) for r in table.itertuples()] == [(r.slot, r.layer) for r in tiny_extraction.layers]
    assert (table["width"] == 256).all() and (table["k"] == 8).all()
    seed_rows = table[table["slot"] == "seed"]
    assert (seed_rows["seed"] == 2).all() and (seed_rows["train_tokens"] == 1000).all()
    assert (seed_rows["epochs"] == 20).all()


def test_partners_carry_the_seed_stability(table):
    for layer in (0, 1):
        a = table[(table["slot"] == "a") & (table["layer"] == layer)].iloc[0]
        s = table[(table["slot"] == "seed") & (table["layer"] == layer)].iloc[0]
        assert a["partner"] == f"seed L{layer}" and s["partner"] == f"a L{layer}"  # encoders found
        for column in STABILITY_COLUMNS:
            assert math.isfinite(a[column]) and a[column] == s[column]
        assert 0 <= a["shared_dec_enc"] <= a["shared_dec"] <= 1 and 0 <= a["shared_act"] <= 1
        assert a["chance_shared_dec"] == 0.0
        # two SAEs trained on the same activations share more than random directions do
        assert a["pw_mcc"] > a["chance_pw_mcc"] + 0.05
        assert a["act_mcc"] > 0.2


def test_other_slots_say_why_they_have_no_stability(table):
    others = table[~table["slot"].isin(["a", "seed"])]
    assert len(others) == 4
    assert others[list(STABILITY_COLUMNS)].isna().all().all()
    assert (others["partner"] == "none: no second SAE of this model").all()


def test_written_atomically_and_reused(table, tiny_profile, session_cache, monkeypatch):
    path = session_cache / "results" / "sae_quality.parquet"
    pd.testing.assert_frame_equal(pd.read_parquet(path), table)
    assert not list(path.parent.glob(".sae_quality.parquet.*.tmp"))

    def fail(*args, **kwargs):
        raise AssertionError("recomputed a cached layer")

    monkeypatch.setattr(sq, "_compute_cell", fail)
    again = sae_quality_table(tiny_profile, cache=session_cache)
    pd.testing.assert_frame_equal(again, table)


def test_changed_inputs_are_recomputed(table, tiny_profile, session_cache, monkeypatch):
    computed = []
    real = sq._compute_cell

    def count(profile, cache, layer, **kwargs):
        computed.append(layer)
        return real(profile, cache, layer, **kwargs)

    monkeypatch.setattr(sq, "_compute_cell", count)
    other = sae_quality_table(tiny_profile, cache=session_cache, seed=1)  # the chance level's seed
    assert computed == [0, 1]
    assert not np.allclose(other["chance_pw_mcc"].dropna(), table["chance_pw_mcc"].dropna())
    pd.testing.assert_series_equal(other["pw_mcc"], table["pw_mcc"])
    sae_quality_table(tiny_profile, cache=session_cache)  # restore the default table on disk


@pytest.mark.parametrize("slots, widths, note", [
    (("a", "b"), {"a": 256}, "none: no seed slot in the profile"),
    (("a", "b", "seed"), {"a": 256, "seed": 512}, "none: seed width 512 != 256"),
    (("a", "b", "seed"), {"a": 256}, "none: no seed SAE at layer 3"),
])
def test_partner_says_why_there_is_none(slots, widths, note, tmp_path):
    from types import SimpleNamespace

    rows = {(slot, 3): {"n_latents": n} for slot, n in widths.items()}
    rows[("b", 3)] = {"n_latents": 256}
    stability, partner = sq._layer_stability(SimpleNamespace(slots=slots), tmp_path, rows, threshold=0.7, seed=0)
    assert stability == {}
    assert partner[("a", 3)] == note and partner[("b", 3)] == "none: no second SAE of this model"


def test_extract_prints_the_quality_table(tiny_extraction, session_cache, capsys):
    assert main(["extract", "--profile", "tiny", "--out", str(session_cache), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "PW-MCC" in out and "seed L0" in out and "a L1" in out
    assert out.count("cached") == 8  # the quality table adds no 'cached' marks to the extraction summary


def test_a_missing_encoder_leaves_only_the_encoder_criterion_out(table, tiny_profile, session_cache, tmp_path):
    import shutil

    copy = tmp_path / "cache"
    shutil.copytree(session_cache, copy)
    shutil.rmtree(copy / "results" / "cells")
    for folder in copy.glob("trained/*/tiny/trained/neox-seed2"):
        shutil.rmtree(folder)  # the seed slot's trained SAEs are gone; their cached layers stay
    frame = sae_quality_table(tiny_profile, cache=copy)
    a = frame[frame["slot"] == "a"]
    assert a["shared_dec_enc"].isna().all()
    assert a["partner"].str.startswith("seed L").all()
    assert a["partner"].str.contains("no encoder: seed: trained SAE folder not found").all()
    pd.testing.assert_series_equal(a["pw_mcc"], table[table["slot"] == "a"]["pw_mcc"])
