"""Verdicts: one interval rule, the seed control as reference, words that follow their row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from saesim.report.verdicts import BASELINES, judge, place, verdict_frame


def _row(comparison, value, low, high, effect, la=3, lb=6):
    return {"layer_a": la, "layer_b": lb, "rule": "first_index", "direction": "b_to_a", "metric": "rsa",
            "comparison": comparison, "value": value, "ci_low": low, "ci_high": high, "effect": effect}


def _family(p_tail, excess=0.05):
    return pd.DataFrame({"layer_a": [3, 3], "layer_b": [6, 12], "rule": "first_index", "direction": "b_to_a",
                         "rsa": [0.3 + excess, 0.3], "rsa_null_mean": 0.3, "rsa_p_tail": p_tail})


@pytest.mark.parametrize(("sae", "base", "expected"), [
    ((0.5, 0.4, 0.6), (0.3, 0.2, 0.35), "above"),
    ((0.5, 0.4, 0.6), (0.45, 0.3, 0.7), "overlaps"),
    ((0.3, 0.2, 0.4), (0.6, 0.5, 0.7), "below"),
    ((0.3, 0.2, 0.4), (0.35, 0.3, 0.5), "overlaps"),  # lower point, overlapping intervals: not "below"
])
def test_interval_rule(sae, base, expected):
    keys = ("value", "ci_low", "ci_high")
    assert place(dict(zip(keys, sae)), dict(zip(keys, base))) == (expected, False)


def test_missing_interval_uses_the_point_and_says_so():
    assert place({"value": 0.5, "ci_low": np.nan, "ci_high": np.nan},
                 {"value": 0.3, "ci_low": 0.2, "ci_high": 0.35}) == ("above", True)


def test_seed_control_is_a_reference_not_a_baseline():
    group = pd.DataFrame([_row("sae", 0.45, 0.4, 0.5, 0.04), _row("seed", 0.9, 0.85, 0.95, 0.16),
                          _row("control", 0.2, 0.15, 0.25, 0.01)])
    verdict = judge(group, family=_family([1e-6, 0.5]))
    assert set(verdict.places) == {"control"}
    assert verdict.seed_share == pytest.approx(0.25)
    assert verdict.above_null is True and verdict.p_holm == pytest.approx(2e-6)
    assert verdict.summary() == "above its null; above every baseline; 25% of two SAEs' effect"
    row = verdict.row()
    assert row["random model (authors')"] == "above: 0.200 [0.150, 0.250]"
    assert row["share of two SAEs' effect"] == pytest.approx(0.25) and row["p (Holm)"] == pytest.approx(2e-6)


def test_not_above_null_leads_the_verdict():
    group = pd.DataFrame([_row("sae", 0.45, 0.4, 0.5, 0.04), _row("shuffle_null", 0.6, 0.55, 0.7, 0.0)])
    verdict = judge(group, family=_family([0.2, 0.5]))
    assert verdict.above_null is False
    assert verdict.summary().startswith("not above its null (Holm p = 0.4 > 0.05)")
    assert "below shuffled null" in verdict.summary() and "above no baseline" in verdict.summary()


def test_no_sae_score():
    group = pd.DataFrame([_row("sae", np.nan, np.nan, np.nan, np.nan), _row("control", 0.2, 0.1, 0.3, 0.0)])
    assert judge(group) is None
    _, table = verdict_frame(group)
    assert table["verdict"].tolist() == ["no SAE score (too few pairs)"]


def test_words_never_contradict_the_row():
    """Random intervals: the summary claims "above every baseline" exactly when every place is
    "above", names each baseline the SAE interval is below, and the sentence ends with the summary."""
    rng = np.random.default_rng(0)
    rows = []
    for cell in range(200):
        for name in ["sae", "seed", *BASELINES]:
            centre, half = rng.uniform(0, 1), rng.uniform(0, 0.2)
            rows.append(_row(name, centre, centre - half, centre + half, centre - 0.3, la=cell))
    verdicts, table = verdict_frame(pd.DataFrame(rows))
    assert len(verdicts) == 200 and len(table) == 200
    for verdict, (_, row) in zip(verdicts, table.iterrows()):
        places = {name: where for name, (where, *_) in verdict.places.items()}
        summary = row["verdict"]
        assert ("above every baseline" in summary) == all(w == "above" for w in places.values())
        assert ("above no baseline" in summary) == all(w != "above" for w in places.values())
        for name, where in places.items():
            assert row[BASELINES[name]].startswith(where + ":")
        below = [part[len("below "):].split(", ") for part in summary.split("; ") if part.startswith("below ")]
        assert set(below[0] if below else []) == {BASELINES[n] for n, w in places.items() if w == "below"}
        assert verdict.words().endswith(f"Verdict: {summary}.")


def test_notes_flag_saturated_and_identical_baselines():
    raw = {**_row("raw_neuron", 0.99, 0.98, 1.0, 0.5), "mean_r": 1.0}
    control = {**_row("control", 0.95, 0.9, 0.99, 0.02), "k_x": 40, "k_y": 40, "n_pairs": 60}
    verdict = judge(pd.DataFrame([_row("sae", 0.45, 0.4, 0.5, 0.04), raw, control]))
    words = verdict.words()
    assert "both slots run the same model" in words and "keeps k = 40 dimensions for 60 pairs" in words
    assert "random model (authors') +0.020 over its own null" in words
    assert verdict.summary() == "above no baseline; below random model (authors'), raw neurons"
