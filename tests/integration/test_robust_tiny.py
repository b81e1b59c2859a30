"""The raw-neuron baseline and the kept bootstraps (saesim.experiments.baselines) through the real capture
path, on the tiny profile."""

import numpy as np
import pandas as pd
import pytest

from saesim.experiments import baselines
from saesim.experiments.bootstrap import BootstrapOptions, bootstrap_ci, row_documents
from saesim.experiments.grid import GRID_COLUMNS, settings_from_profile
from saesim.io import to_jsonable
from saesim import vocab
from saesim.report.prose import verdict, verdict_table
from tests.planted_layers import verdict_cell


@pytest.fixture(scope="module")
def raw_layers(tiny_profile, tiny_extraction, session_cache):
    return baselines.raw_neuron_layers(tiny_profile, [("a", 0), ("a", 1), ("b", 1)], cache=session_cache)


def test_raw_layers_are_captured_activations_and_output_projections(tiny_profile, session_cache, raw_layers,
                                                                    tiny_neox):
    from saesim.extract.pipeline import load_grid, load_layer
    from saesim.extract.capture import capture, output_projection_rows

    grid = load_grid(tiny_profile, out=session_cache)
    layer = raw_layers[("a", 1)]
    assert layer.codes.shape == (grid.n_tokens, tiny_neox.d_model)
    direct = capture(tiny_neox, grid, ["layers.1"], device="cpu", progress=False)["layers.1"]
    np.testing.assert_allclose(layer.codes, direct, rtol=1e-5, atol=1e-5)
    weight = tiny_neox.model.gpt_neox.layers[1].mlp.dense_4h_to_h.weight.detach().numpy()
    np.testing.assert_array_equal(layer.decoder, weight)
    np.testing.assert_array_equal(output_projection_rows(tiny_neox, 1), weight)
    # same token rows as the SAE codes
    assert layer.codes.shape[0] == load_layer(tiny_profile, "a", 1, out=session_cache).n_tokens


def test_extraction_keeps_the_baseline_activations_and_the_baseline_reads_them(tiny_profile, tiny_extraction,
                                                                            session_cache, tiny_neox):
    from saesim.extract.pipeline import extract, load_activations, load_grid
    from saesim.extract.capture import capture

    grid = load_grid(tiny_profile, out=session_cache)
    assert tiny_profile.baseline_layer_pairs() == [(0, 0), (1, 1)]
    for layer in (0, 1):
        kept = load_activations(tiny_profile, "a", layer, out=session_cache)
        direct = capture(tiny_neox, grid, [f"layers.{layer}"], device="cpu", progress=False)[f"layers.{layer}"]
        np.testing.assert_array_equal(kept, direct)
        assert load_activations(tiny_profile, "b", layer, out=session_cache).shape[0] == grid.n_tokens
    read = baselines.raw_neuron_layers(tiny_profile, [("a", 1)], cache=session_cache)
    captured = baselines.raw_neuron_layers(tiny_profile, [("a", 1)], cache=session_cache, reuse=False)
    np.testing.assert_array_equal(read[("a", 1)].codes, captured[("a", 1)].codes)
    np.testing.assert_array_equal(read[("a", 1)].decoder, captured[("a", 1)].decoder)
    with pytest.raises(ValueError, match="keep_activations.*layer 7"):
        extract(tiny_profile, out=session_cache, progress=False, keep_activations=[("a", 7)])


def test_raw_neuron_baseline_records(tiny_profile, session_cache, raw_layers):
    settings = settings_from_profile(tiny_profile, n_perm=20)
    records = baselines.raw_neuron_baseline(tiny_profile, 1, 1, cache=session_cache, settings=settings,
                                         layers=raw_layers)
    assert [r["rule"] for r in records] == list(settings.rules)
    for record in records:
        assert set(GRID_COLUMNS) <= set(record)
        assert record["comparison"] == "raw_neuron"
        assert record["n_choosers"] == raw_layers[("b", 1)].codes.shape[1]
        if record["n_pairs"] > 2:
            assert np.isfinite(record["svcca"]) and 0 <= record["svcca_p"] <= 1


def test_gemma2_output_projection(tiny_gemma2):
    from saesim.extract.capture import output_projection_rows

    rows = output_projection_rows(tiny_gemma2, 0)
    assert rows.shape[0] == tiny_gemma2.d_model
    np.testing.assert_array_equal(rows, tiny_gemma2.model.model.layers[0].mlp.down_proj.weight.detach().numpy())


def test_bootstrap_and_control_table_on_tiny(tiny_profile, session_cache, raw_layers):
    from saesim.extract.pipeline import load_layer

    settings = settings_from_profile(tiny_profile, n_perm=20, rules=("first_index",))
    row_doc = row_documents(tiny_profile, cache=session_cache)
    a = load_layer(tiny_profile, "a", 1, out=session_cache).to_sae_layer()
    b = load_layer(tiny_profile, "b", 1, out=session_cache).to_sae_layer()
    options = BootstrapOptions(rule="first_index", n_boot=5)
    sae = bootstrap_ci(a, b, row_doc, settings, options).to_record()
    raw = bootstrap_ci(raw_layers[("a", 1)], raw_layers[("b", 1)], row_doc, settings.replace(junk_filter=False),
                       options).to_record()
    table = baselines.control_comparison(pd.DataFrame([sae]), raw=pd.DataFrame([raw]))
    assert {"sae", "raw_neuron", "shuffle_null"} <= set(table["comparison"])
    metrics = list(dict.fromkeys(table["metric"]))
    out = verdict_table(table)
    assert len(verdict(table)) == len(out) == len(metrics) == 2  # one verdict per measure of the one cell
    assert out["layer pair"].tolist() == ["A1–B1"] * 2 and out["measure"].tolist() == sorted(metrics)
    for _, row in out.iterrows():
        by = table[table["metric"] == row["measure"]].set_index("comparison")
        ours = by.loc["sae"]
        assert np.isfinite(ours["value"]) and ours["ci_low"] <= ours["value"] <= ours["ci_high"]
        assert row["SAE score [CI]"] == f"{ours['value']:.3f} [{ours['ci_low']:.3f}, {ours['ci_high']:.3f}]"
        assert row[vocab.column_label("effect")] == pytest.approx(ours["value"] - ours["null_mean"])
        for name in ("raw_neuron", "shuffle_null"):
            base = by.loc[name]
            place, value, low, high, point = verdict_cell(row[vocab.label("comparison", name)])
            assert (value, low, high, point) == (round(base["value"], 3), round(base["ci_low"], 3),
                                                 round(base["ci_high"], 3), False), name
            assert (place == "above") == (ours["ci_low"] > base["ci_high"]), name  # the interval rule
            if ours["ci_high"] < base["ci_low"]:
                assert place == "below", name


def test_bootstrap_many_equals_bootstrap_ci_and_is_kept_on_disk(tiny_profile, tiny_extraction, session_cache, tmp_path,
                                                                monkeypatch):
    from saesim.extract.pipeline import load_layer

    settings = settings_from_profile(tiny_profile, n_perm=10)
    row_doc = row_documents(tiny_profile, cache=session_cache)
    comparisons = [(("a", 1), ("b", 1)), (("a", 0), ("b", 1))]
    options = BootstrapOptions(rule="first_index", n_boot=3, seed=2)
    records = baselines.bootstrap_many(tiny_profile, comparisons, row_doc, settings, options, cache=session_cache,
                                       out=tmp_path, executor="serial")
    for ((slot_a, la), (slot_b, lb)), record in zip(comparisons, records):
        a = load_layer(tiny_profile, slot_a, la, out=session_cache).to_sae_layer()
        b = load_layer(tiny_profile, slot_b, lb, out=session_cache).to_sae_layer()
        direct = to_jsonable(bootstrap_ci(a, b, row_doc, settings, options).to_record())
        pd.testing.assert_frame_equal(pd.DataFrame([record]), pd.DataFrame([direct]))
    assert len(list((tmp_path / "cells" / "bootstrap").glob("*.json"))) == 2

    def refuse(*args, **kwargs):
        raise AssertionError("a kept bootstrap was recomputed")

    monkeypatch.setattr(baselines, "bootstrap_ci", refuse)
    again = baselines.bootstrap_many(tiny_profile, comparisons[::-1], row_doc, settings, options, cache=session_cache,
                                     out=tmp_path, executor="serial")
    pd.testing.assert_frame_equal(pd.DataFrame(again[::-1]), pd.DataFrame(records))
    with pytest.raises(RuntimeError, match="bootstrap of a1 vs b99 failed"):  # a layer never extracted
        baselines.bootstrap_many(tiny_profile, [(("a", 1), ("b", 99))], row_doc, settings, options,
                                 cache=session_cache, out=tmp_path, executor="serial")


def test_raw_neuron_bootstraps_are_kept_and_a_rebuild_loads_no_model(tiny_profile, tiny_extraction, session_cache,
                                                                    raw_layers, tmp_path, monkeypatch):

    settings = settings_from_profile(tiny_profile, n_perm=10)
    row_doc = row_documents(tiny_profile, cache=session_cache)
    options = BootstrapOptions(rule="first_index", n_boot=3, seed=1)
    records = baselines.bootstrap_raw_neurons(tiny_profile, [(1, 1), (0, 1)], row_doc, settings, options,
                                              cache=session_cache, out=tmp_path)
    for (la, lb), record in zip([(1, 1), (0, 1)], records):
        direct = bootstrap_ci(raw_layers[("a", la)], raw_layers[("b", lb)], row_doc,
                              settings.replace(junk_filter=False), options).to_record()
        pd.testing.assert_frame_equal(pd.DataFrame([record]), pd.DataFrame([to_jsonable(direct)]))

    def refuse(*args, **kwargs):
        raise AssertionError("a kept raw-neuron bootstrap needed the models again")

    monkeypatch.setattr(baselines, "raw_neuron_layers", refuse)
    again = baselines.bootstrap_raw_neurons(tiny_profile, [(0, 1), (1, 1)], row_doc, settings, options,
                                            cache=session_cache, out=tmp_path)
    pd.testing.assert_frame_equal(pd.DataFrame(again[::-1]), pd.DataFrame(records))
    with pytest.raises(AssertionError, match="needed the models again"):  # a pair not kept yet
        baselines.bootstrap_raw_neurons(tiny_profile, [(0, 0)], row_doc, settings, options, cache=session_cache,
                                        out=tmp_path)
