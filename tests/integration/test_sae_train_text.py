"""SAEs trained on their own text (``sae.train_text``) and by the sparse trainer (``sae.trainer``), end to end.

The tiny profile's second SAE set (slot ``seed``, trained by saesim) trains on
WikiText-2 paragraphs after the grid's and Brown sentences, captured by the
tiny GPT-NeoX itself; every grid row is then held out.
"""

import numpy as np
import pytest

from saesim.config import ProfileError, load_profile
from saesim.extract._extract_keys import training_key
from saesim.extract._extract_train_text import train_grid, train_texts
from saesim.extract.capture import capture
from saesim.extract.data import load_texts
from saesim.extract.pipeline import extract, load_train_activations, train_activations

N_TRAIN = 1500


@pytest.fixture(scope="module")
def own_text(tiny_profile):
    return tiny_profile.replace(**{"seed_control.sae.train_text": ["wikitext2", "brown"],
                                   "seed_control.sae.train_tokens": N_TRAIN,
                                   "seed_control.sae.trainer": "sparse", "seed_control.sae.epochs": 4})


@pytest.fixture(scope="module")
def own_text_run(own_text, tmp_path_factory):
    out = tmp_path_factory.mktemp("train_text")
    summary = extract(own_text, out=out, progress=False, slots=("seed",), keep_activations=[("seed", 0)])
    return out, summary


def test_the_training_text_is_outside_the_grid_and_mixes_both_corpora(own_text):
    texts = train_texts(own_text, ("wikitext2", "brown"))
    grid_docs = set(load_texts(own_text.data))
    assert not grid_docs & set(texts[:2000])
    wiki_after = load_profile("tiny", **{"data.n_docs": own_text.data.n_docs + 1}).data
    assert texts[0] == load_texts(wiki_after)[-1]  # WikiText's first paragraph after the grid's, then Brown
    brown_first = load_texts(own_text.data.__class__(corpus="brown", n_docs=1, unit="paragraph", min_words=8))[0]
    assert texts[1] == brown_first


def test_every_grid_row_is_held_out_and_the_report_says_how_it_trained(own_text, own_text_run):
    out, summary = own_text_run
    for row in summary.layers:
        assert row.slot == "seed"
        assert row.n_heldout == summary.n_tokens
        assert row.train["n_tokens"] == N_TRAIN and row.train["trainer"] == "sparse"
        assert row.train["train_text"] == ["wikitext2", "brown"] and row.train["n_stats"] == N_TRAIN
        assert 0 < row.fvu_heldout < 1.5 and 0 <= row.train["fvu"] < 1.5
    from saesim.extract.pipeline import sae_quality

    quality = sae_quality(own_text, out=out)
    assert list(quality.loc[quality["slot"] == "seed", "train_tokens"]) == [N_TRAIN, N_TRAIN]


def test_the_kept_training_activations_are_the_models_on_that_text(own_text, own_text_run, tiny_neox):
    out, _ = own_text_run
    kept = load_train_activations(own_text, "seed", 0, out=out)
    assert kept.shape == (N_TRAIN, tiny_neox.d_model) and kept.dtype == np.float32
    grid = train_grid(own_text, tiny_neox.tokenizer, ("wikitext2", "brown"), N_TRAIN)
    assert grid.n_tokens >= N_TRAIN
    hook = own_text.seed_control.sae.hook_for(0)
    oracle = capture(tiny_neox, grid, [hook], device="cpu", progress=False)[hook][:N_TRAIN]
    np.testing.assert_allclose(kept, oracle, rtol=1e-4, atol=1e-4)
    # the grid profile's own layers stay as they were: no training text there
    assert load_train_activations(own_text, "a", 0, out=out) is None


def test_a_second_run_reuses_the_sae_without_capturing_the_text(own_text, own_text_run):
    out, first = own_text_run
    again = extract(own_text, out=out, progress=False, slots=("seed",))
    assert all(row.reused for row in again.layers) and not again.captures
    assert again.layers[0].train == first.layers[0].train


def test_the_recipe_is_in_the_training_key_and_the_default_key_is_unchanged(tiny_profile, own_text):
    key = lambda p: training_key(p, p.model("seed"), 0, "G", cuda_available=False)  # noqa: E731
    default = key(tiny_profile)
    assert key(tiny_profile.replace(**{"seed_control.sae.trainer": "reference"})) == default
    sparse = tiny_profile.replace(**{"seed_control.sae.trainer": "sparse"})
    assert len({default, key(sparse), key(own_text)}) == 3
    assert "trainer" not in tiny_profile.to_dict()["seed_control"]["sae"]
    assert "train_text" not in tiny_profile.to_dict()["seed_control"]["sae"]
    assert tiny_profile.key() == tiny_profile.replace(**{"seed_control.sae.trainer": "reference",
                                                         "seed_control.sae.train_text": []}).key()


def test_too_little_training_text_names_the_fields(own_text, tiny_neox):
    with pytest.raises(ValueError, match=r"sae.train_tokens.*lower `sae.train_tokens` or add a corpus"):
        train_grid(own_text, tiny_neox.tokenizer, ("wikitext2",), 10**7)


@pytest.mark.parametrize("change, message", [
    ({"seed_control.sae.train_text": ["openwebtext"]}, "must be one of"),
    ({"seed_control.sae.train_text": ["brown", "brown"]}, "each once"),
    ({"seed_control.sae.train_text": ["brown"], "seed_control.sae.train_tokens": None}, "train_tokens` is not"),
    ({"model_a.sae.train_text": ["brown"], "model_a.sae.train_tokens": 100}, "only SAEs that saesim trains"),
    ({"seed_control.sae.trainer": "fast"}, "must be one of"),
])
def test_bad_settings_are_clear_errors(tiny_profile, change, message):
    with pytest.raises(ProfileError, match=message):
        tiny_profile.replace(**change)


def test_train_activations_capture_what_is_not_stored(own_text, own_text_run, tiny_neox):
    out, _ = own_text_run
    assert load_train_activations(own_text, "seed", 1, out=out) is None
    captured = train_activations(own_text, "seed", 1, out=out)
    np.testing.assert_array_equal(load_train_activations(own_text, "seed", 1, out=out), captured)
    hook = own_text.seed_control.sae.hook_for(1)
    grid = train_grid(own_text, tiny_neox.tokenizer, ("wikitext2", "brown"), N_TRAIN)
    oracle = capture(tiny_neox, grid, [hook], device="cpu", progress=False)[hook][:N_TRAIN]
    np.testing.assert_allclose(captured, oracle, rtol=1e-4, atol=1e-4)
    assert train_activations(own_text.replace(**{"seed_control.sae.train_text": []}), "seed", 1, out=out) is None


def test_too_much_asked_of_the_training_text_fails_before_any_capture(own_text, tmp_path, monkeypatch):
    import saesim.extract._extract_run as run

    captured = []
    real = run._capture
    monkeypatch.setattr(run, "_capture", lambda *a, **k: captured.append(a[2]) or real(*a, **k))
    greedy = own_text.replace(**{"seed_control.sae.train_tokens": 10**7})
    with pytest.raises(ValueError, match="lower `sae.train_tokens` or add a corpus"):
        extract(greedy, out=tmp_path, progress=False, slots=("seed",))
    assert captured == []
