"""Tests for saesim.extract.models on real local models: tiny GPT-NeoX / Gemma-2 and MiniLM.

Checks the hook placement against Hugging Face ``hidden_states`` (``layers.L``
is the output of block L = ``hidden_states[L + 1]``; ``compat`` reads
``hidden_states[L]``), the agreement of both capture backends, masking, and
the random-copy control.
"""

import numpy as np
import pytest
import torch

from saesim.config import DataSpec, ModelSpec, load_profile
from saesim.extract.data import HubUnavailableError, load_texts, tokenize
from saesim.extract.models import kept_by_random_copy, load_model, random_copy
from saesim.extract.capture import capture, raw_neuron_activations, resolve_hook
from saesim.errors import HookError

EXACT = 1e-5
"""Same computation, different code path (hooks vs hidden_states)."""

BACKEND_TOL = 1e-4
"""HF forward hooks vs TransformerLens on the same weights."""


@pytest.fixture(scope="module")
def texts():
    return load_texts(DataSpec(n_docs=12))


@pytest.fixture(scope="module")
def grid_tiny(tiny_neox, texts):
    return tokenize(tiny_neox.tokenizer, texts, max_length=24)


@pytest.fixture(scope="module")
def grid_minilm(minilm, texts):
    return tokenize(minilm.tokenizer, texts[:6], max_length=24)


def hidden_states(loaded, grid):
    """HF hidden_states at the grid's kept positions (the oracle)."""
    kwargs = {"use_cache": False} if loaded.spec.family != "bert" else {}
    with torch.inference_mode():
        out = loaded.model(input_ids=torch.tensor(grid.ids), attention_mask=torch.tensor(grid.attention_mask),
                           output_hidden_states=True, **kwargs)
    keep = torch.tensor(grid.keep)
    return [h[keep].float().numpy() for h in out.hidden_states]


def max_diff(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max())


@pytest.fixture(params=["tiny_neox", "tiny_gemma2"])
def tiny(request):
    return request.getfixturevalue(request.param)


class TestHookPlacement:
    def test_layers_L_is_the_output_of_block_L(self, tiny, grid_tiny):
        hs = hidden_states(tiny, grid_tiny)
        hooks = [f"layers.{i}" for i in range(tiny.n_layers)]
        acts = capture(tiny, grid_tiny, hooks, progress=False)
        for layer in range(tiny.n_layers - 1):  # the last hidden_states entry carries the final norm
            assert acts[f"layers.{layer}"].shape == (grid_tiny.n_tokens, tiny.d_model)
            assert acts[f"layers.{layer}"].dtype == np.float32
            assert max_diff(acts[f"layers.{layer}"], hs[layer + 1]) < EXACT
            assert max_diff(acts[f"layers.{layer}"], hs[layer]) > 0.1  # the input is really different

    def test_compat_reads_hidden_states_L(self, tiny, grid_tiny):
        hs = hidden_states(tiny, grid_tiny)
        acts = capture(tiny, grid_tiny, [f"layers.{i}" for i in range(tiny.n_layers)], compat=True, progress=False)
        for layer in range(tiny.n_layers):
            assert max_diff(acts[f"layers.{layer}"], hs[layer]) < EXACT

    def test_naming_conventions_agree(self, tiny, grid_tiny):
        path = f"{tiny.blocks_path}.1"
        names = ["layers.1", "blocks.1.hook_resid_post", path, "blocks.2.hook_resid_pre"]
        acts = capture(tiny, grid_tiny, names, progress=False)
        for name in names[1:]:
            assert max_diff(acts[name], acts["layers.1"]) < EXACT

    def test_minilm_hooks(self, minilm, grid_minilm):
        hs = hidden_states(minilm, grid_minilm)
        acts = capture(minilm, grid_minilm, ["encoder.layer.3", "layers.3", "layers.0"], progress=False)
        assert max_diff(acts["encoder.layer.3"], hs[4]) < EXACT
        assert max_diff(acts["layers.3"], hs[4]) < EXACT
        assert max_diff(acts["layers.0"], hs[1]) < EXACT
        compat = capture(minilm, grid_minilm, ["encoder.layer.3"], compat=True, progress=False)
        assert max_diff(compat["encoder.layer.3"], hs[3]) < EXACT

    def test_resolve_hook(self, tiny_neox):
        point = resolve_hook(tiny_neox, "layers.2")
        assert (point.module_path, point.kind, point.block, point.lens_name) == (
            "gpt_neox.layers.2", "output", 2, "blocks.2.hook_resid_post")
        assert resolve_hook(tiny_neox, "layers.2", compat=True).kind == "input"
        assert resolve_hook(tiny_neox, "gpt_neox.layers.1.mlp").block is None

    def test_bad_hooks(self, tiny_neox, grid_tiny):
        with pytest.raises(HookError, match=r"asks for block 7 but tiny-neox has 3 blocks"):
            resolve_hook(tiny_neox, "layers.7")
        with pytest.raises(HookError, match=r"hook `decoder.h.0` does not resolve on tiny-neox"):
            resolve_hook(tiny_neox, "decoder.h.0")
        with pytest.raises(HookError, match="backend='transformer_lens'"):
            resolve_hook(tiny_neox, "blocks.0.attn.hook_z")
        with pytest.raises(ValueError, match="`hooks` is empty"):
            capture(tiny_neox, grid_tiny, [], progress=False)


class TestBackends:
    @pytest.mark.parametrize("compat", [False, True])
    def test_transformer_lens_matches_hf_hooks(self, tiny, grid_tiny, compat):
        hooks = [f"layers.{i}" for i in range(tiny.n_layers)]
        hf = capture(tiny, grid_tiny, hooks, compat=compat, progress=False)
        lens = capture(tiny, grid_tiny, hooks, compat=compat, backend="transformer_lens", progress=False)
        for hook in hooks:
            scale = float(np.abs(hf[hook]).max())
            assert max_diff(hf[hook], lens[hook]) < BACKEND_TOL * max(scale, 1.0)

    def test_lens_needs_a_lens_name(self, tiny_neox, grid_tiny):
        with pytest.raises(HookError, match="no TransformerLens name"):
            capture(tiny_neox, grid_tiny, ["gpt_neox.layers.0.mlp"], backend="transformer_lens", progress=False)


class TestMasking:
    def test_rows_are_the_kept_positions(self, tiny_neox, grid_tiny):
        acts = capture(tiny_neox, grid_tiny, ["layers.0"], progress=False)
        assert acts["layers.0"].shape[0] == grid_tiny.n_tokens < grid_tiny.n_positions

    def test_batching_and_padding_do_not_change_kept_rows(self, minilm, grid_minilm):
        one = capture(minilm, grid_minilm, ["layers.2"], batch_size=1, progress=False)["layers.2"]
        all_ = capture(minilm, grid_minilm, ["layers.2"], batch_size=6, progress=False)["layers.2"]
        assert max_diff(one, all_) < 1e-4

    def test_length_sorted_batches_put_rows_back_in_grid_order(self, minilm, texts):
        # Batches group documents by length; every kept row must land on its grid row.
        words = " ".join(texts).split()
        varied = [" ".join(words[i:i + n]) for i, n in enumerate((30, 3, 12, 1, 25, 7, 18))]
        grid = tokenize(minilm.tokenizer, varied, max_length=24)
        widths = (grid.keep | (grid.attention_mask == 1)).sum(axis=1)
        assert not np.all(np.diff(widths) >= 0)  # not in length order, so the batches reorder the documents
        np.testing.assert_allclose(capture(minilm, grid, ["layers.1"], progress=False)["layers.1"],
                                   hidden_states(minilm, grid)[2], atol=1e-4)
        one = capture(minilm, grid, ["layers.1"], batch_size=1, progress=False)["layers.1"]
        for batch_size in (2, 3, grid.n_docs):
            batched = capture(minilm, grid, ["layers.1"], batch_size=batch_size, progress=False)["layers.1"]
            assert max_diff(one, batched) < 1e-4

    def test_raw_neuron_activations_are_the_residual_stream(self, tiny_neox, grid_tiny):
        # the dense baseline: block L's output at the kept positions (hidden_states[L + 1]), one float32 row
        # per kept token, and capture's options honoured (compat reads block L's input, hidden_states[L])
        hs = hidden_states(tiny_neox, grid_tiny)
        raw = raw_neuron_activations(tiny_neox, grid_tiny, ["layers.0", "layers.1"], progress=False)
        assert sorted(raw) == ["layers.0", "layers.1"]
        for layer in (0, 1):  # not the last block: the last hidden_states entry carries the final norm
            assert raw[f"layers.{layer}"].shape == (grid_tiny.n_tokens, tiny_neox.d_model)
            assert raw[f"layers.{layer}"].dtype == np.float32
            assert max_diff(raw[f"layers.{layer}"], hs[layer + 1]) < EXACT
        compat = raw_neuron_activations(tiny_neox, grid_tiny, ["layers.1"], compat=True, progress=False)
        assert max_diff(compat["layers.1"], hs[1]) < EXACT and max_diff(compat["layers.1"], hs[2]) > 0.1

    def test_grid_from_another_vocabulary(self, tiny_neox):
        from saesim.extract.data import TokenGrid

        ids = np.full((1, 4), 10**6, dtype=np.int64)
        grid = TokenGrid(ids=ids, attention_mask=np.ones_like(ids), keep=np.ones_like(ids, dtype=bool),
                         tokenizer="other")
        with pytest.raises(ValueError, match="made with another tokenizer"):
            capture(tiny_neox, grid, ["layers.0"], progress=False)


class TestLoading:
    def test_tiny_models_are_local_checkpoints(self, tiny_neox, tiny_gemma2, session_cache):
        for loaded in (tiny_neox, tiny_gemma2):
            assert loaded.local_dir.startswith(str(session_cache))
            from pathlib import Path

            folder = Path(loaded.local_dir)
            assert (folder / "config.json").is_file() and list(folder.glob("*.safetensors"))
            assert loaded.n_layers == 3 and loaded.d_model == 64
        assert tiny_neox.blocks_path == "gpt_neox.layers" and tiny_gemma2.blocks_path == "model.layers"

    def test_tiny_models_are_seeded(self, tiny_profile, tmp_path, tiny_neox):
        again = load_model(tiny_profile.model_a, root=tmp_path)
        for p, q in zip(again.model.parameters(), tiny_neox.model.parameters()):
            assert torch.equal(p, q)

    def test_truncated_tiny_model_is_rebuilt(self, tiny_profile, tmp_path, tiny_neox, caplog):
        from pathlib import Path

        first = load_model(tiny_profile.model_a, root=tmp_path)
        weights = next(Path(first.local_dir).glob("*.safetensors"))
        weights.write_bytes(weights.read_bytes()[:-512])
        with caplog.at_level("WARNING", logger="saesim.extract.models"):
            again = load_model(tiny_profile.model_a, root=tmp_path)
        assert "is damaged" in caplog.text and "truncated" in caplog.text
        for p, q in zip(again.model.parameters(), tiny_neox.model.parameters()):
            assert torch.equal(p, q)

    def test_interrupted_tiny_model_write_is_redone(self, tiny_profile, tmp_path):
        from pathlib import Path

        folder = Path(load_model(tiny_profile.model_a, root=tmp_path).local_dir)
        (folder / "saesim_tiny.json").unlink()  # the stamp is written last: its absence means "incomplete"
        load_model(tiny_profile.model_a, root=tmp_path)
        assert (folder / "saesim_tiny.json").is_file()

    def test_hub_model_offline_fails_fast(self):
        spec = ModelSpec(label="pythia", model="EleutherAI/pythia-70m", source="hf", family="gpt_neox")
        with pytest.raises(HubUnavailableError, match=r"profile `pythia` \(model EleutherAI/pythia-70m\) needs the "
                                                      r"Hugging Face hub.*not in the local Hugging Face cache"):
            load_model(spec, what="profile `pythia`")

    def test_hook_points(self, minilm):
        assert minilm.hook_points == tuple(f"layers.{i}" for i in range(6))
        assert minilm.d_model == 384 and minilm.blocks_path == "encoder.layer"


MOMENT_TOL = 0.1
"""Resampled tensor vs original: |mean difference| / std and |std ratio - 1| (tensors of >= 1000 values)."""

# The embedding and norm tensors of each model, named by hand (the planted answer).
KEPT = {
    "tiny_neox": {"gpt_neox.embed_in.weight", "gpt_neox.final_layer_norm.weight", "gpt_neox.final_layer_norm.bias"}
    | {f"gpt_neox.layers.{i}.{n}_layernorm.{w}" for i in range(3) for n in ("input", "post_attention")
       for w in ("weight", "bias")},
    "tiny_gemma2": {"model.embed_tokens.weight", "model.norm.weight"}
    | {f"model.layers.{i}.{n}.weight" for i in range(3) for n in ("input_layernorm", "post_attention_layernorm",
                                                                   "pre_feedforward_layernorm",
                                                                   "post_feedforward_layernorm")},
    "minilm": {f"embeddings.{n}" for n in ("word_embeddings.weight", "position_embeddings.weight",
                                            "token_type_embeddings.weight", "LayerNorm.weight", "LayerNorm.bias")}
    | {f"encoder.layer.{i}.{n}.LayerNorm.{w}" for i in range(6) for n in ("attention.output", "output")
       for w in ("weight", "bias")},
}


@pytest.fixture(params=sorted(KEPT))
def any_model(request):
    return request.param, request.getfixturevalue(request.param)


def moments_kept(p, q) -> bool:
    p, q = p.detach().double(), q.detach().double()
    return (abs(float(q.mean() - p.mean())) < MOMENT_TOL * float(p.std()) + 1e-6
            and abs(float(q.std()) / float(p.std()) - 1) < MOMENT_TOL)


class TestRandomCopy:
    def test_authors_variant_keeps_exactly_embeddings_and_norms(self, any_model):
        name, loaded = any_model
        assert kept_by_random_copy(loaded.model) == KEPT[name]

    def test_authors_variant_resamples_everything_else(self, any_model):
        name, loaded = any_model
        copy = random_copy(loaded.model, seed=0)  # variant="authors" is the default
        fresh = dict(copy.named_parameters())
        for pname, p in loaded.model.named_parameters():
            q = fresh[pname]
            if pname in KEPT[name]:
                assert torch.equal(p, q), pname
            elif p.numel() > 1 and float(p.detach().std()) > 0:
                assert not torch.equal(p, q), pname
                if p.numel() >= 1000:
                    assert moments_kept(p, q), pname

    def test_all_variant_resamples_embeddings_and_norms_too(self, any_model):
        name, loaded = any_model
        copy = random_copy(loaded.model, seed=0, variant="all")
        fresh = dict(copy.named_parameters())
        for pname, p in loaded.model.named_parameters():
            if p.numel() > 1 and float(p.detach().std()) > 0:
                assert not torch.equal(p, fresh[pname]), pname
                if p.numel() >= 1000:
                    assert moments_kept(p, fresh[pname]), pname

    def test_resamples_each_tensor_with_its_own_moments(self, tiny_neox):
        copy = random_copy(tiny_neox.model, seed=0, variant="all")
        for (name, p), q in zip(tiny_neox.model.named_parameters(), copy.parameters()):
            p, q = p.detach(), q.detach()
            if p.numel() < 1000:
                continue
            assert not torch.equal(p, q), name
            assert moments_kept(p, q), name

    def test_bad_variant(self, tiny_neox):
        with pytest.raises(ValueError, match=r"`variant` must be 'authors' or 'all'; got 'some'"):
            random_copy(tiny_neox.model, seed=0, variant="some")

    @pytest.mark.parametrize("variant", ["authors", "all"])
    def test_variants_are_seeded(self, tiny_neox, variant):
        a = random_copy(tiny_neox.model, seed=5, variant=variant)
        b = random_copy(tiny_neox.model, seed=5, variant=variant)
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))

    def test_spec_randomize_reaches_the_model_and_the_cache_identity(self, minilm):
        from dataclasses import replace

        spec = load_profile("encoders").control
        assert spec.randomize == "authors"
        harsh = replace(spec, randomize="all")
        assert spec.identity != harsh.identity and harsh.identity["randomize"] == "all"
        assert "randomize" not in minilm.spec.identity  # other models' cache keys are unchanged
        w = "embeddings.word_embeddings.weight"
        assert torch.equal(dict(load_model(spec).model.named_parameters())[w], dict(minilm.model.named_parameters())[w])
        assert not torch.equal(dict(load_model(harsh).model.named_parameters())[w],
                               dict(minilm.model.named_parameters())[w])

    def test_seeded_and_leaves_the_original_alone(self, tiny_gemma2):
        before = [p.clone() for p in tiny_gemma2.model.parameters()]
        a = random_copy(tiny_gemma2.model, seed=3)
        b = random_copy(tiny_gemma2.model, seed=3)
        c = random_copy(tiny_gemma2.model, seed=4)
        for p, q, r, orig in zip(a.parameters(), b.parameters(), c.parameters(), before):
            assert torch.equal(p, q)
        assert any(not torch.equal(p, r) for p, r in zip(a.parameters(), c.parameters()))
        for p, orig in zip(tiny_gemma2.model.parameters(), before):
            assert torch.equal(p, orig)

    def test_tied_weights_stay_tied(self, tiny_gemma2):
        copy = random_copy(tiny_gemma2.model, seed=0)
        assert copy.lm_head.weight.data_ptr() == copy.model.embed_tokens.weight.data_ptr()

    def test_control_profile_slot_loads_a_random_copy(self, minilm):
        spec = load_profile("encoders").control
        control = load_model(spec)
        assert control.n_layers == minilm.n_layers
        w0 = dict(minilm.model.named_parameters())["encoder.layer.0.attention.self.query.weight"]
        w1 = dict(control.model.named_parameters())["encoder.layer.0.attention.self.query.weight"]
        assert not torch.equal(w0, w1)
