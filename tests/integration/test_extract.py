"""Tests for saesim.extract.pipeline and the ``saesim`` command line, end to end through the real loaders.

The tiny profile runs once per session (``tiny_extraction`` in conftest): tiny
GPT-NeoX with SAEs written in sparsify's format and tiny Gemma-2 with SAELens
JumpReLU / TopK SAEs, all loaded back through ``sparsify`` and ``sae_lens``.
"""

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from saesim.extract import saes
from saesim.extract.cache import ArtefactStore, CacheMissError
from saesim.cli import main
from saesim.config import load_profile
from saesim.extract.data import HubUnavailableError, TokenizerMismatchError
from saesim.extract.pipeline import FvuWarning, extract, load_grid, load_layer, token_alignment


@pytest.fixture(scope="module")
def tiny_copy(tiny_extraction, session_cache, tmp_path_factory):
    """A private copy of the extracted tiny cache, for tests that damage it."""
    def make():
        target = tmp_path_factory.mktemp("tiny_copy")
        shutil.copytree(session_cache, target, dirs_exist_ok=True)
        return target
    return make


class TestTinyProfile:
    def test_one_row_per_model_and_layer(self, tiny_extraction, tiny_profile):
        rows = [(r.slot, r.layer) for r in tiny_extraction.layers]
        assert rows == [("a", 0), ("a", 1), ("b", 0), ("b", 1), ("seed", 0), ("seed", 1), ("control", 0),
                        ("control", 1)]
        for row in tiny_extraction.layers:
            if row.slot in ("seed", "control"):  # trained by saesim: FVU held out, no hook guard
                assert row.n_heldout == tiny_extraction.n_tokens - 1000 and 0 < row.fvu_heldout < 1
                continue
            assert row.n_tokens == tiny_extraction.n_tokens > 0
            assert row.n_latents == 256
            assert 0 <= row.dead_fraction < 0.5
            assert 0 < row.mean_l0 <= 256
            assert row.fvu < saes.DEFAULT_MAX_FVU
            assert row.fvu_neighbour is not None and row.fvu_neighbour > row.fvu  # the hook guard ran
            assert row.cache_bytes > 0 and row.dense_bytes == row.n_tokens * row.n_latents * 4
        assert len(tiny_extraction.captures) == 3  # one forward per model (A and its seed control share one)

    def test_sae_files_are_in_the_libraries_formats(self, tiny_extraction, session_cache):
        neox = session_cache / "tiny" / "saes" / "neox"
        gemma = session_cache / "tiny" / "saes" / "gemma2"
        for layer in (0, 1):
            assert (neox / f"layers.{layer}" / "sae.safetensors").is_file()  # sparsify
            assert (gemma / f"blocks.{layer}.hook_resid_post" / "sae_weights.safetensors").is_file()  # SAELens
        arch = [json.loads((gemma / f"blocks.{layer}.hook_resid_post" / "cfg.json").read_text())["architecture"]
                for layer in (0, 1)]
        assert arch == ["jumprelu", "topk"]
        sae = saes.load_sae(load_profile("tiny").model_b.sae, 0, root=session_cache)
        assert sae.activation == "jumprelu" and sae.source == "saelens"

    def test_second_run_reuses_everything(self, tiny_extraction, tiny_profile, session_cache):
        again = extract(tiny_profile, out=session_cache, progress=False)
        assert all(row.reused for row in again.layers)
        assert again.captures == ()  # no model was run
        assert [r.fvu for r in again.layers] == [r.fvu for r in tiny_extraction.layers]
        assert again.grid_hash == tiny_extraction.grid_hash

    def test_load_layer(self, tiny_extraction, tiny_profile, session_cache):
        grid = load_grid(tiny_profile, out=session_cache)
        data = load_layer(tiny_profile, "b", 1, out=session_cache)
        assert data.codes.shape == (grid.n_tokens, 256) and data.codes.dtype == np.float32
        assert data.decoder.shape == (256, 64)
        sae = saes.load_sae(tiny_profile.model_b.sae, 1, root=session_cache)
        np.testing.assert_array_equal(data.decoder, sae.W_dec)
        np.testing.assert_allclose(data.fvu, tiny_extraction.row("b", 1).fvu)
        # the top rows are where each latent fires most, and their tokens are the grid's
        top = data.top
        live = np.flatnonzero(top.n_active > 0)[:20]
        dense = data.codes.toarray()
        for j in live:
            assert dense[top.pos[j, 0], j] == pytest.approx(dense[:, j].max())
        ctx = data.contexts
        ok = top.pos >= 0
        np.testing.assert_array_equal(ctx.token_ids[ok], grid.kept_ids()[top.pos[ok]])
        np.testing.assert_array_equal(grid.ids[ctx.doc[ok], ctx.position[ok]], ctx.token_ids[ok])
        assert data.dead.shape == (256,) and data.special_ids == grid.special_ids
        assert isinstance(ctx.windows[live[0], 0], str) and ctx.windows[live[0], 0]

    def test_load_layer_errors(self, tiny_extraction, tiny_profile, session_cache, tmp_path):
        with pytest.raises(ValueError, match="layer 2 is not among the layers of slot 'a'"):
            load_layer(tiny_profile, "a", 2, out=session_cache)
        with pytest.raises(CacheMissError, match="run `saesim extract --profile tiny"):
            load_layer(tiny_profile, "a", 0, out=tmp_path)

    def test_codes_are_the_sae_codes(self, tiny_extraction, tiny_profile, session_cache, tiny_neox):
        from saesim.extract.capture import capture

        grid = load_grid(tiny_profile, out=session_cache)
        acts = capture(tiny_neox, grid, ["layers.1"], progress=False)["layers.1"]
        sae = saes.load_sae(tiny_profile.model_a.sae, 1, root=session_cache)
        expected = saes.encode(sae, acts, progress=False)
        data = load_layer(tiny_profile, "a", 1, out=session_cache)
        assert abs(data.codes - expected).max() < 1e-5
        assert data.codes.getnnz(axis=1).max() <= sae.k


class TestResume:
    def test_interrupted_layer_is_recomputed_alone(self, tiny_copy, tiny_profile):
        root = tiny_copy()
        first = extract(tiny_profile, out=root, progress=False)
        store = ArtefactStore(root)
        victim = first.row("a", 1)
        store.delete(victim.key, "json")  # the commit marker was never written
        again = extract(tiny_profile, out=root, progress=False)
        assert [(r.slot, r.layer) for r in again.layers if not r.reused] == [("a", 1)]
        assert again.row("a", 1).fvu == pytest.approx(victim.fvu)
        assert [c["hooks"] for c in again.captures] == [["layers.1", "blocks.1.hook_resid_pre", "layers.2"]]

    def test_corrupt_codes_are_rebuilt(self, tiny_copy, tiny_profile):
        from saesim.extract.cache import CacheCorruptionWarning

        root = tiny_copy()
        first = extract(tiny_profile, out=root, progress=False)
        store = ArtefactStore(root)
        key = store.key(role="codes", parent=first.row("b", 0).key)
        payload = next(p for p in store.entry_dir(key, "codes").iterdir() if p.name.startswith("codes-"))
        payload.write_bytes(b"garbage")
        with pytest.warns(CacheCorruptionWarning):
            again = extract(tiny_profile, out=root, progress=False)
        assert not again.row("b", 0).reused and again.row("a", 0).reused
        np.testing.assert_array_equal(load_layer(tiny_profile, "b", 0, out=root).codes.shape,
                                      (first.n_tokens, 256))


class TestGuards:
    def test_off_by_one_hook_fails_loudly(self, tiny_extraction, tiny_profile, session_cache):
        # model A's sparsify SAEs read `layers.L` (output of block L); feed them the block's input instead
        wrong = tiny_profile.replace(**{"model_a.sae.hook": "blocks.{layer}.hook_resid_pre"})
        with pytest.raises(saes.SaeMismatchError, match=r"reconstruction FVU is .* above the limit|off by one"):
            extract(wrong, out=session_cache, progress=False, slots=("a",))

    def test_off_by_one_of_layer_1_is_caught_by_the_neighbour_check(self, tiny_extraction, tiny_profile,
                                                                     session_cache):
        wrong = tiny_profile.replace(**{"model_b.sae.hook": "blocks.{layer}.hook_resid_pre", "layers_b": [1]})
        with pytest.raises(saes.SaeMismatchError, match="FVU"):
            extract(wrong, out=session_cache, progress=False, slots=("b",))

    def test_compat_reproduces_the_off_by_one_with_a_warning(self, tiny_extraction, tiny_profile, session_cache):
        compat = tiny_profile.replace(compat=True, layers_a=[0], layers_b=[0])
        with pytest.warns(FvuWarning, match="tolerated"):
            summary = extract(compat, out=session_cache, progress=False)
        assert summary.n_tokens == load_grid(compat, out=session_cache).n_positions  # nothing masked
        assert summary.row("a", 0).fvu > tiny_extraction.row("a", 0).fvu

    def test_d_in_mismatch(self, tiny_extraction, tiny_profile, session_cache, tmp_path):
        rng = np.random.default_rng(0)
        narrow = saes.SaeWeights(rng.normal(size=(32, 16)), np.zeros(16), rng.normal(size=(16, 32)),
                                 np.zeros(32), None, 4, "topk", "layers.0", "layers.0", "sparsify")
        saes.save_sparsify(narrow, tmp_path / "narrow" / "layers.0")
        wrong = tiny_profile.replace(**{"model_a.sae.location": str(tmp_path / "narrow"),
                                        "model_a.sae.num_latents": 16, "model_a.sae.k": 4, "layers_a": [0]})
        with pytest.raises(saes.SaeMismatchError, match=r"has width 64 .* expects d_in = 32"):
            extract(wrong, out=session_cache, progress=False, slots=("a",))

    def test_width_must_match_the_profile(self, tiny_extraction, tiny_profile, session_cache):
        wrong = tiny_profile.replace(**{"model_a.sae.num_latents": 512, "layers_a": [0]})
        with pytest.raises(saes.SaeMismatchError, match="has 256 latents but the profile says"):
            extract(wrong, out=session_cache, progress=False, slots=("a",))

    def test_tokenizer_mismatch(self, tiny_profile, tmp_path, word_level_tokenizer):
        tok = word_level_tokenizer(["some words to build a vocabulary", "the cat sat"])
        tok.save_pretrained(tmp_path / "tok")
        wrong = tiny_profile.replace(**{"model_b.tokenizer": str(tmp_path / "tok")})
        with pytest.raises(TokenizerMismatchError, match=r"only \d+\.\d% of the tokens of a \(tiny-neox\) .* cover "
                                                         r"the same character span as a token of b \(tiny-gemma2\) "
                                                         r".*at least 80% \(data.min_aligned\)"):
            extract(wrong, out=tmp_path / "cache", progress=False)
        assert not list((tmp_path / "cache").rglob("*.npz"))  # refused before any model ran

    def test_a_shifted_vocabulary_is_aligned(self, tiny_profile, tmp_path):
        """Model B tokenises with MiniLM's vocabulary shifted by 4 (MPNet's layout): rows still pair."""
        shifted = tiny_profile.replace(**{"model_b.tokenizer": "minilm_shifted", "layers_a": [0], "layers_b": [0],
                                          "data.n_docs": 12})
        summary = extract(shifted, out=tmp_path / "cache", progress=False)
        grid = load_grid(shifted, out=tmp_path / "cache")
        assert len(grid.others) == 1
        view = grid.others[0]
        np.testing.assert_array_equal(view.kept_ids(), grid.kept_ids() + 4)
        assert {0, 2} <= set(view.special_ids)  # <s>, </s> of the shifted layout
        layer_a, layer_b = load_layer(shifted, "a", 0, out=tmp_path / "cache"), load_layer(shifted, "b", 0,
                                                                                          out=tmp_path / "cache")
        assert layer_a.codes.shape[0] == layer_b.codes.shape[0] == grid.n_tokens == summary.n_tokens
        # B's top tokens are decoded with B's own tokenizer: the same strings as A's vocabulary gives
        assert all(not str(t).startswith(("<s>", "[CLS]")) for t in layer_b.contexts.top_tokens.ravel() if t)

    def test_hub_profile_offline_fails_fast(self, tmp_path):
        with pytest.raises(HubUnavailableError, match=r"profile `pythia` needs the Hugging Face hub"):
            extract("pythia", out=tmp_path, progress=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # gemma wants a GPU
            with pytest.raises(HubUnavailableError, match=r"profile `gemma` needs the Hugging Face hub"):
                extract("gemma", out=tmp_path, progress=False)


class TestCommandLine:
    def test_extract_prints_one_line_per_model_and_layer(self, tiny_extraction, session_cache, capsys):
        assert main(["extract", "--profile", "tiny", "--out", str(session_cache), "--no-progress"]) == 0
        out = capsys.readouterr().out
        assert out.count("cached") == 8  # A, B, the seed control and the random control, 2 layers each
        for hook in ("layers.0", "layers.1", "blocks.0.hook_resid_post", "blocks.1.hook_resid_post"):
            assert hook in out
        assert "dense fp32 codes would be" in out
        report = json.loads((Path(session_cache) / "extract-tiny.json").read_text())
        assert len(report["layers"]) == 8

    def test_overrides(self, tiny_extraction, session_cache, capsys):
        assert main(["extract", "-p", "tiny", "-o", str(session_cache), "--no-progress", "--layers", "1",
                     "--slots", "a"]) == 0
        out = capsys.readouterr().out
        assert "layers.1" in out and "layers.0" not in out

    def test_help_documents_every_option(self, capsys):
        with pytest.raises(SystemExit) as exc:
            main(["extract", "--help"])
        assert exc.value.code == 0
        text = capsys.readouterr().out
        for option in ("--profile", "--out", "--n-docs", "--max-length", "--layers", "--layers-a", "--layers-b",
                       "--set", "--device", "--compat", "--slots", "--max-fvu", "--no-progress"):
            assert option in text

    @pytest.mark.parametrize("argv, message", [
        (["extract", "--n-docs", "0"], "expected a positive integer"),
        (["extract", "--layers", "x"], "expected a layer index"),
        (["extract", "--slots", "z"], "invalid choice"),
        (["frobnicate"], "invalid choice"),
    ])
    def test_bad_options(self, argv, message, capsys):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        assert message in capsys.readouterr().err

    def test_bad_profile_key_is_a_clear_error(self, capsys):
        assert main(["extract", "--set", "data.n_doc=3"]) == 2
        assert "unknown key(s) ['data.n_doc']" in capsys.readouterr().err

    def test_hub_profile_offline(self, tmp_path, capsys):
        assert main(["extract", "--profile", "pythia", "--out", str(tmp_path)]) == 2
        assert "profile `pythia` needs the Hugging Face hub" in capsys.readouterr().err

    def test_profiles(self, capsys):
        assert main(["profiles"]) == 0
        assert "offline" in capsys.readouterr().out
        assert main(["profiles", "tiny", "--set", "data.n_docs=5"]) == 0
        assert "n_docs: 5" in capsys.readouterr().out


@pytest.mark.slow
class TestEncoderProfile:
    """The real encoder profile (MiniLM against MPNet, WikiText-2, trained SAEs, three controls) at ~4k tokens.

    Needs the MPNet packages (`make test-slow` installs requirements-models.txt). About 2 min on 2 cores.
    """

    def test_small_token_budget_end_to_end(self, tmp_path):
        small = {"sae": {"epochs": 4, "batch_size": 512, "train_tokens": 3000}}
        profile = load_profile(
            "encoders", layers_a=[0, 5], layers_b=[1, 11], layers_seed=[0, 5], layers_control=[0], layers_control_all=[0],
            data={"n_docs": 100, "max_length": 48}, model_a=small, model_b=small, seed_control=small,
            control=small, control_all=small,
        )
        summary = extract(profile, out=tmp_path, progress=False)
        assert [(r.slot, r.layer) for r in summary.layers] == [
            ("a", 0), ("a", 5), ("b", 1), ("b", 11), ("seed", 0), ("seed", 5), ("control", 0), ("control_all", 0)]
        assert len(summary.captures) == 4  # MiniLM once for A and its seed control, MPNet, each random copy
        widths = {"a": 4096, "b": 8192, "seed": 6144, "control": 4096, "control_all": 4096}
        for row in summary.layers:
            assert row.n_latents == widths[row.slot]
            assert row.fvu < saes.DEFAULT_MAX_FVU and row.mean_l0 == pytest.approx(32, abs=1)
            assert row.train is not None and row.train["seed"] == (1 if row.slot == "seed" else 0)
            assert 0 < row.train["fvu"] < saes.DEFAULT_MAX_FVU and "report_path" not in row.train
            # Held-out FVU on the rows after the 3 000 training tokens.
            assert row.n_heldout == summary.n_tokens - 3000 and 0 < row.fvu_heldout < 1.5
        a = load_layer(profile, "a", 5, out=tmp_path)
        b = load_layer(profile, "b", 11, out=tmp_path)
        assert a.codes.shape[0] == b.codes.shape[0] == summary.n_tokens
        assert a.decoder.shape[1] == 384 and b.decoder.shape[1] == 768
        grid = load_grid(profile, out=tmp_path)
        np.testing.assert_array_equal(grid.others[0].kept_ids(), grid.kept_ids() + 4)  # MPNet = MiniLM ids + 4
        # B's top tokens are B's own ids at those rows, i.e. A's ids + 4 at the same rows
        valid = b.top.pos >= 0
        np.testing.assert_array_equal(b.contexts.token_ids[valid], grid.kept_ids()[b.top.pos[valid]] + 4)
        words = " ".join(a.contexts.windows[a.top.n_active > 0][:, 0])
        assert " the " in words  # WordPiece windows keep their spaces


@pytest.mark.slow
class TestCausalProfile:
    """The real default profile (Gemma-3-270M against SmolLM2-135M-Instruct from their GGUF packages, tokens
    paired by character span, trained SAEs, three controls) at ~3k tokens.

    Needs the model packages (`make test-slow` installs requirements-models.txt). A few minutes on 2 cores.
    """

    def test_small_token_budget_end_to_end(self, tmp_path):
        small = {"sae": {"epochs": 4, "batch_size": 512, "train_tokens": 2000, "num_latents": 512}}
        profile = load_profile(
            "offline", layers_a=[0, 17], layers_b=[0, 29], layers_seed=[17], layers_control=[17],
            layers_control_all=[17], data={"n_docs": 40, "max_length": 96}, model_a=small, model_b=small,
            seed_control=small, control=small, control_all=small,
        )
        summary = extract(profile, out=tmp_path, progress=False)
        assert [(r.slot, r.layer) for r in summary.layers] == [
            ("a", 0), ("a", 17), ("b", 0), ("b", 29), ("seed", 17), ("control", 17), ("control_all", 17)]
        # Gemma once for A and its seed set, SmolLM2, each random copy; each also on its SAEs' training text
        assert len(summary.captures) == 8
        assert sum("SAE training text" in c["label"] for c in summary.captures) == 4
        for row in summary.layers:
            assert row.n_latents == 512 and row.mean_l0 == pytest.approx(32, abs=1)
            assert row.n_heldout == summary.n_tokens and row.train["train_text"] == ["wikitext2", "brown"]
            assert 0 < row.fvu < saes.DEFAULT_MAX_FVU and 0 < row.fvu_heldout < 1.5
        a, b = load_layer(profile, "a", 17, out=tmp_path), load_layer(profile, "b", 29, out=tmp_path)
        assert a.codes.shape[0] == b.codes.shape[0] == summary.n_tokens
        assert (a.decoder.shape[1], b.decoder.shape[1]) == (640, 576)
        # Row t of both views is the same text: decode each view's kept tokens and compare
        from saesim.extract.models import load_tokenizer

        grid = load_grid(profile, out=tmp_path)
        tok_a = load_tokenizer(profile.model_a, root=tmp_path)
        tok_b = load_tokenizer(profile.model_b, root=tmp_path)
        view_b = grid.for_tokenizer(tok_b)
        text_a = [tok_a.decode([i]) for i in grid.kept_ids()[:400]]
        text_b = [tok_b.decode([i]) for i in view_b.kept_ids()[:400]]
        assert text_a == text_b
        report = token_alignment(profile, out=tmp_path)
        assert [m["model"] for m in report["models"]] == ["gemma-3-270m", "SmolLM2-135M-Instruct"]
        assert all(0.8 < m["kept_fraction"] < 1 for m in report["models"]) and report["n_aligned"] == summary.n_tokens
        assert (tmp_path / "results" / "token_alignment.json").is_file()
