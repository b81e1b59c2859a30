"""Tests for saesim.extract.saes: encode equals the libraries, FVU guard, training, save/load round trips."""

import contextlib
import io
import json
from dataclasses import dataclass, replace

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from saesim.extract._integrity import MANIFEST
from saesim.extract.saes import (
    HubUnavailableError,
    SaeCorruptError,
    SaeFormatError,
    SaeMismatchError,
    SaeNormalisationWarning,
    SaeWeights,
    TrainedSae,
    check_d_in,
    check_fvu,
    code_stats,
    check_hook,
    encode,
    fvu,
    jumprelu_thresholds,
    load_sae,
    make_tiny_saes,
    reconstruct,
    sae_folder_ready,
    saved_sae_problem,
    save_saelens,
    save_sparsify,
    train_topk_sae,
    weights_from_saelens,
    weights_from_sparsify,
)

with contextlib.redirect_stdout(io.StringIO()):
    import sparsify
from sae_lens import JumpReLUSAE, JumpReLUSAEConfig, SAE, StandardSAE, StandardSAEConfig, TopKSAE, TopKSAEConfig
from sae_lens.saes.sae import SAEMetadata

CODE_TOL = 1e-5
"""Agreement of our codes / reconstructions with the libraries' (fp32)."""

D_IN, N_LAT, K = 24, 96, 6


@dataclass(frozen=True)
class Spec:
    """Duck-typed stand-in for saesim.config.SaeSpec."""

    source: str
    location: str
    sae_id: str = "layers.{layer}"
    hook: str = "layers.{layer}"
    codes: str = "sae"
    num_latents: int | None = None
    k: int | None = None
    seed: int = 0
    epochs: int = 1


def dense(codes):
    return codes.toarray() if sp.issparse(codes) else np.asarray(codes)


def acts(seed, n=300, d=D_IN, scale=1.0):
    return (np.random.default_rng(seed).normal(size=(n, d)) * scale).astype(np.float32)


def random_sparsify(seed, d=D_IN, n=N_LAT, k=K):
    torch.manual_seed(seed)
    sae = sparsify.Sae(d, sparsify.SaeConfig(num_latents=n, k=k))
    with torch.no_grad():
        sae.encoder.bias.normal_(0, 0.3)
        sae.b_dec.normal_(0, 0.5)
    return sae


def randomise_saelens(sae, seed, *, threshold=False, dec_scale=False):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(sae.W_enc.shape, generator=gen) * 0.3)
        row_scale = torch.rand(sae.W_dec.shape[0], 1, generator=gen) + 0.5 if dec_scale else 0.3
        sae.W_dec.copy_(torch.randn(sae.W_dec.shape, generator=gen) * row_scale)
        sae.b_enc.copy_(torch.randn(sae.b_enc.shape, generator=gen) * 0.3)
        sae.b_dec.copy_(torch.randn(sae.b_dec.shape, generator=gen) * 0.5)
        if threshold:
            sae.threshold.copy_(torch.rand(sae.threshold.shape, generator=gen) * 0.8)
    return sae


def saelens_topk(seed, **cfg):
    md = SAEMetadata(hook_name="blocks.0.hook_resid_post")
    return randomise_saelens(TopKSAE(TopKSAEConfig(d_in=D_IN, d_sae=N_LAT, k=K, metadata=md, **cfg)), seed,
                             dec_scale=cfg.get("rescale_acts_by_decoder_norm", False))


def saelens_jumprelu(seed, **cfg):
    md = SAEMetadata(hook_name="blocks.1.hook_resid_post")
    return randomise_saelens(JumpReLUSAE(JumpReLUSAEConfig(d_in=D_IN, d_sae=N_LAT, metadata=md, **cfg)), seed,
                             threshold=True)


def assert_same_codes(ours, theirs):
    ours = dense(ours)
    theirs = theirs.detach().numpy() if torch.is_tensor(theirs) else np.asarray(theirs)
    np.testing.assert_allclose(ours, theirs, atol=CODE_TOL, rtol=CODE_TOL)


def structured_acts(seed, n=3000, d=D_IN, atoms=48, active=3, noise=0.02, offset=1.0):
    """Activations that a small TopK SAE can compress: sparse sums of dictionary atoms plus a mean."""
    rng = np.random.default_rng(seed)
    dictionary = rng.normal(size=(atoms, d))
    dictionary /= np.linalg.norm(dictionary, axis=1, keepdims=True)
    coef = np.zeros((n, atoms))
    for row, cols in enumerate(np.argsort(rng.random((n, atoms)), axis=1)[:, :active]):
        coef[row, cols] = rng.exponential(1.0, size=active)
    mean = rng.normal(size=d) * offset
    return (coef @ dictionary + mean + noise * rng.normal(size=(n, d))).astype(np.float32)


@pytest.fixture(scope="module")
def trained():
    """One tiny TopK SAE trained on structured activations (shared: training is the slow part)."""
    x = structured_acts(0)
    return x, train_topk_sae(x, num_latents=N_LAT, k=K, seed=0, epochs=5, batch_size=256, hook="layers.1",
                             sae_id="layers.1", num_threads=1, progress=False)


# --------------------------------------------------------------------------- encode
class TestEncodeMatchesLibraries:
    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_sparsify_topk(self, seed):
        sae = random_sparsify(seed)
        x = acts(seed)
        out = sae.encode(torch.from_numpy(x))
        theirs = torch.zeros(x.shape[0], N_LAT).scatter_(1, out.top_indices, out.top_acts)
        w = weights_from_sparsify(sae, sae_id="layers.0")
        codes = encode(w, x)
        assert_same_codes(codes, theirs)
        assert codes.getnnz(axis=1).max() <= K
        recon = sae.decode(out.top_acts, out.top_indices).detach().numpy()
        np.testing.assert_allclose(reconstruct(w, x, codes), recon, atol=CODE_TOL * 10)

    def test_sparsify_relu_preact_is_pre_acts(self):
        sae = random_sparsify(3)
        x = acts(3)
        w = weights_from_sparsify(sae, sae_id="layers.0")
        assert_same_codes(encode(w, x, codes="relu_preact"), sae.encode(torch.from_numpy(x)).pre_acts)

    @pytest.mark.parametrize("cfg", [
        {},
        {"apply_b_dec_to_input": False},
        {"rescale_acts_by_decoder_norm": True},
        {"normalize_activations": "layer_norm"},
        {"normalize_activations": "constant_norm_rescale"},
    ])
    def test_saelens_topk(self, cfg):
        sae = saelens_topk(4, **cfg)
        x = acts(4, scale=3.0)
        w = weights_from_saelens(sae, sae_id="blocks.0.hook_resid_post")
        codes = encode(w, x)
        with torch.no_grad():
            theirs = sae.encode(torch.from_numpy(x))
            recon = sae.decode(theirs).numpy()
        assert_same_codes(codes, theirs)
        np.testing.assert_allclose(reconstruct(w, x, codes), recon, atol=CODE_TOL * 10, rtol=CODE_TOL * 10)

    @pytest.mark.parametrize("cfg", [{}, {"normalize_activations": "layer_norm"}, {"apply_b_dec_to_input": False}])
    def test_saelens_jumprelu(self, cfg):
        sae = saelens_jumprelu(5, **cfg)
        x = acts(5, scale=2.0)
        w = weights_from_saelens(sae, sae_id="blocks.1.hook_resid_post")
        assert w.activation == "jumprelu" and w.hook == "blocks.1.hook_resid_post"
        codes = encode(w, x)
        with torch.no_grad():
            theirs = sae.encode(torch.from_numpy(x))
            recon = sae.decode(theirs).numpy()
        assert_same_codes(codes, theirs)
        assert 0 < codes.nnz < 0.9 * x.shape[0] * N_LAT
        np.testing.assert_allclose(reconstruct(w, x, codes), recon, atol=CODE_TOL * 10, rtol=CODE_TOL * 10)

    def test_saelens_standard_relu(self):
        sae = randomise_saelens(StandardSAE(StandardSAEConfig(d_in=D_IN, d_sae=N_LAT)), 6)
        x = acts(6)
        w = weights_from_saelens(sae, sae_id="std")
        assert w.activation == "relu"
        with torch.no_grad():
            assert_same_codes(encode(w, x), sae.encode(torch.from_numpy(x)))

    def test_relu_preact_for_saelens_is_dense_relu(self):
        sae = saelens_jumprelu(7)
        x = acts(7)
        w = weights_from_saelens(sae)
        pre = np.maximum((x - w.b_dec) @ w.W_enc + w.b_enc, 0)
        np.testing.assert_allclose(dense(encode(w, x, codes="relu_preact")), pre, atol=CODE_TOL)

    def test_expected_average_only_in_warns_and_is_a_no_op(self):
        sae = saelens_topk(8, normalize_activations="expected_average_only_in")
        with pytest.warns(SaeNormalisationWarning, match="expected_average_only_in"):
            w = weights_from_saelens(sae)
        x = acts(8)
        with torch.no_grad():
            assert_same_codes(encode(w, x), sae.encode(torch.from_numpy(x)))


class TestEncodeOutput:
    def test_batches_do_not_change_the_codes(self):
        w = weights_from_sparsify(random_sparsify(0))
        x = acts(0, n=101)
        a, b = encode(w, x, batch_size=7), encode(w, x)
        np.testing.assert_array_equal(a.indices, b.indices)  # same latents (BLAS blocking moves only last bits)
        np.testing.assert_allclose(a.data, b.data, rtol=CODE_TOL)

    def test_csr_is_canonical(self):
        w = weights_from_saelens(saelens_jumprelu(1))
        codes = encode(w, acts(1))
        assert isinstance(codes, sp.csr_matrix) and codes.dtype == np.float32
        assert codes.has_sorted_indices and (codes.data > 0).all()
        assert codes.shape == (300, N_LAT)

    def test_empty_input(self):
        w = weights_from_sparsify(random_sparsify(0))
        assert encode(w, np.zeros((0, D_IN), np.float32)).shape == (0, N_LAT)

    def test_d_in_mismatch(self):
        w = weights_from_sparsify(random_sparsify(0), sae_id="layers.2", hook="gpt_neox.layers.2")
        message = r"`acts` has width 25 .* expects d_in = 24 at hook `gpt_neox.layers.2`"
        with pytest.raises(SaeMismatchError, match=message):
            encode(w, acts(0, d=25))
        with pytest.raises(SaeMismatchError, match="another model or hook"):
            check_d_in(w, np.zeros((3, 10)), what="captured activations")

    def test_bad_codes_mode(self):
        w = weights_from_sparsify(random_sparsify(0))
        with pytest.raises(ValueError, match="`codes` must be 'sae' or 'relu_preact'"):
            encode(w, acts(0), codes="topk")


class TestSaeWeights:
    def test_shape_mismatch(self):
        with pytest.raises(ValueError, match="`W_dec` has shape"):
            SaeWeights(np.zeros((4, 8)), np.zeros(8), np.zeros((4, 8)), np.zeros(4), None, 2, "topk", "h", "s", "t")

    def test_topk_needs_k(self):
        with pytest.raises(ValueError, match="`k` must be an integer"):
            SaeWeights(np.zeros((4, 8)), np.zeros(8), np.zeros((8, 4)), np.zeros(4), None, None, "topk", "h", "s", "t")

    def test_jumprelu_needs_threshold(self):
        with pytest.raises(ValueError, match="`threshold` is required"):
            SaeWeights(np.zeros((4, 8)), np.zeros(8), np.zeros((8, 4)), np.zeros(4), None, None, "jumprelu", "h", "s",
                       "t")

    def test_properties(self):
        w = weights_from_sparsify(random_sparsify(0))
        assert (w.d_in, w.n_latents) == (D_IN, N_LAT)
        assert w.describe()["activation"] == "topk"


# --------------------------------------------------------------------------- fvu
class TestFvu:
    def test_matches_sparsify_forward(self):
        sae = random_sparsify(2)
        x = acts(2)
        w = weights_from_sparsify(sae)
        with torch.no_grad():
            theirs = float(sae(torch.from_numpy(x)).fvu)
        assert fvu(w, x, encode(w, x)) == pytest.approx(theirs, rel=1e-4)

    def test_perfect_reconstruction_is_zero(self):
        w = SaeWeights(np.eye(3), np.zeros(3), np.eye(3), np.zeros(3), None, None, "relu", "h", "s", "t")
        x = np.abs(acts(0, n=20, d=3))
        assert fvu(w, x, encode(w, x)) == pytest.approx(0.0, abs=1e-12)

    def test_shape_mismatch_of_codes(self):
        w = weights_from_sparsify(random_sparsify(0))
        with pytest.raises(ValueError, match="`codes_csr` has shape"):
            fvu(w, acts(0), sp.csr_matrix((5, N_LAT)))

    def test_check_fvu_passes_and_fails(self):
        check_fvu(0.2, what="SAE layers.1 on hook layers.1")
        with pytest.raises(SaeMismatchError, match=r"SAE layers.3 on hook layers.3: .* 1.200, .*off-by-one"):
            check_fvu(1.2, what="SAE layers.3 on hook layers.3")
        with pytest.raises(SaeMismatchError, match="normalisation"):
            check_fvu(float("nan"), what="x")
        check_fvu(0.95, what="x", max_fvu=1.0)


# --------------------------------------------------------------------------- training
class TestTraining:
    def test_trained_sae_reconstructs_its_data(self, trained):
        x, result = trained
        assert isinstance(result, TrainedSae)
        assert result.fvu < 0.5
        assert result.fvu == pytest.approx(fvu(result.weights, x, encode(result.weights, x)), rel=1e-6)
        assert 0.0 <= result.dead_fraction < 0.5
        assert result.mean_l0 <= K and result.n_tokens == x.shape[0]
        assert len(result.history) == 5 and result.history[-1] < result.history[0]
        norms = np.linalg.norm(result.weights.W_dec, axis=1)
        np.testing.assert_allclose(norms, 1.0, atol=1e-5)
        assert result.summary()["fvu"] == result.fvu

    def test_unevaluated_training_leaves_the_stats_to_code_stats(self, trained):
        x, result = trained
        bare = train_topk_sae(x, num_latents=N_LAT, k=K, seed=0, epochs=5, batch_size=256, hook="layers.1",
                              sae_id="layers.1", num_threads=1, progress=False, evaluate=False)
        np.testing.assert_array_equal(bare.weights.W_dec, result.weights.W_dec)
        assert np.isnan(bare.fvu) and np.isnan(bare.dead_fraction) and np.isnan(bare.mean_l0)
        stats = code_stats(bare.weights, x, encode(bare.weights, x))
        assert stats == pytest.approx({"fvu": result.fvu, "dead_fraction": result.dead_fraction,
                                       "mean_l0": result.mean_l0}, rel=1e-6)

    def test_guard_catches_activations_from_another_layer(self, trained):
        _, result = trained
        other = structured_acts(99, n=1000, offset=1.0)  # an independent distribution (the wrong hook)
        value = fvu(result.weights, other, encode(result.weights, other))
        assert value > 0.9
        with pytest.raises(SaeMismatchError, match="off-by-one"):
            check_fvu(value, what="SAE layers.1 on hook layers.2")

    def test_neighbour_check_catches_an_off_by_one(self):
        # a slowly turning residual stream: each layer rotates the previous one a little
        from scipy.linalg import expm

        s = structured_acts(10, n=2000)
        a = np.random.default_rng(0).normal(size=(D_IN, D_IN))
        x0, x1, x2 = (s @ expm(layer * 0.04 * (a - a.T)).astype(np.float32) for layer in range(3))
        sae = train_topk_sae(x1, num_latents=N_LAT, k=K, seed=0, epochs=4, batch_size=256, hook="layers.1",
                             num_threads=1, progress=False).weights
        good = check_hook(sae, {"layers.0": x0, "layers.1": x1, "layers.2": x2})
        assert good.ok and good.fvu < good.fvu_by_hook["layers.0"] and good.fvu < good.fvu_by_hook["layers.2"]
        shifted = {"layers.0": x0, "layers.1": x0, "layers.2": x1}  # captured one layer too early
        check_fvu(good.fvu_by_hook["layers.0"], what="x")  # the absolute guard alone misses it
        with pytest.raises(SaeMismatchError, match="captured as `layers.2` better .*off by one layer"):
            check_hook(sae, shifted)
        assert not check_hook(sae, shifted, raise_error=False).ok
        with pytest.raises(ValueError, match="no activations for the SAE's hook `layers.1`"):
            check_hook(sae, {"layers.0": x0})

    def test_same_seed_same_weights(self):
        x = structured_acts(1, n=600)
        a = train_topk_sae(x, num_latents=32, k=4, seed=3, epochs=2, batch_size=128, num_threads=1, progress=False)
        b = train_topk_sae(x, num_latents=32, k=4, seed=3, epochs=2, batch_size=128, num_threads=1, progress=False)
        c = train_topk_sae(x, num_latents=32, k=4, seed=4, epochs=2, batch_size=128, num_threads=1, progress=False)
        np.testing.assert_array_equal(a.weights.W_dec, b.weights.W_dec)
        np.testing.assert_array_equal(a.weights.W_enc, b.weights.W_enc)
        assert not np.array_equal(a.weights.W_dec, c.weights.W_dec)

    def test_global_torch_rng_untouched(self):
        x = structured_acts(2, n=200)
        torch.manual_seed(123)
        expected = torch.rand(3)
        torch.manual_seed(123)
        train_topk_sae(x, num_latents=16, k=2, seed=0, epochs=1, batch_size=64, num_threads=1, progress=False)
        np.testing.assert_array_equal(torch.rand(3), expected)

    @pytest.mark.parametrize("kwargs, match", [
        ({"num_latents": 0}, "`num_latents` must be a positive integer"),
        ({"k": 40}, "cannot exceed"),
        ({"epochs": 0}, "`epochs` must be a positive integer"),
    ])
    def test_bad_settings(self, kwargs, match):
        settings = dict(num_latents=32, k=4, seed=0, epochs=1)
        settings.update(kwargs)
        with pytest.raises(ValueError, match=match):
            train_topk_sae(structured_acts(0, n=50), **settings)

    def test_non_finite_acts(self):
        x = structured_acts(0, n=50)
        x[3, 2] = np.nan
        with pytest.raises(ValueError, match="NaN or infinite"):
            train_topk_sae(x, num_latents=8, k=2, seed=0, epochs=1)


# --------------------------------------------------------------------------- save / load
class TestSaveLoad:
    def test_sparsify_round_trip(self, trained, tmp_path):
        x, result = trained
        save_sparsify(result.weights, tmp_path / "saes" / "layers.1")
        loaded = load_sae(Spec("sparsify", "saes"), 1, root=tmp_path)
        for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
            np.testing.assert_array_equal(getattr(loaded, name), getattr(result.weights, name))
        assert (loaded.k, loaded.hook, loaded.sae_id, loaded.source) == (K, "layers.1", "layers.1", "sparsify")
        lib = sparsify.Sae.load_from_disk(tmp_path / "saes" / "layers.1")
        out = lib.encode(torch.from_numpy(x[:200]))
        theirs = torch.zeros(200, N_LAT).scatter_(1, out.top_indices, out.top_acts)
        assert_same_codes(encode(loaded, x[:200]), theirs)

    def test_sparsify_sae_object_and_overwrite(self, tmp_path):
        sae = random_sparsify(0)
        target = tmp_path / "layers.0"
        save_sparsify(sae, target)
        save_sparsify(random_sparsify(1), target)  # replaced atomically
        loaded = load_sae(Spec("sparsify", str(tmp_path)), 0, root="/nonexistent")
        np.testing.assert_array_equal(loaded.W_dec, random_sparsify(1).W_dec.detach().numpy())
        assert sorted(p.name for p in tmp_path.iterdir()) == ["layers.0"]

    @pytest.mark.parametrize("architecture", ["topk", "jumprelu"])
    def test_saelens_round_trip(self, trained, tmp_path, architecture):
        x, result = trained
        weights = result.weights if architecture == "topk" else jumprelu_thresholds(result.weights, x)
        weights = replace(weights, hook="blocks.1.hook_resid_post")
        save_saelens(weights, tmp_path / "blocks.1.hook_resid_post", architecture=architecture)
        spec = Spec("saelens", str(tmp_path), sae_id="blocks.{layer}.hook_resid_post",
                    hook="blocks.{layer}.hook_resid_post")
        loaded = load_sae(spec, 1, root=tmp_path)
        assert loaded.activation == architecture and loaded.declared_hook == "blocks.1.hook_resid_post"
        lib = SAE.load_from_disk(tmp_path / "blocks.1.hook_resid_post")
        assert lib.cfg.architecture() == architecture
        with torch.no_grad():
            assert_same_codes(encode(loaded, x[:300]), lib.encode(torch.from_numpy(x[:300])))
        check_fvu(fvu(loaded, x, encode(loaded, x)), what="round trip")

    def test_jumprelu_thresholds_keep_the_topk_codes(self, trained):
        x, result = trained
        jr = jumprelu_thresholds(result.weights, x)
        topk_codes, jr_codes = encode(result.weights, x), encode(jr, x)
        assert (topk_codes.multiply(jr_codes > 0) != topk_codes).nnz == 0  # every TopK code survives
        assert fvu(jr, x, jr_codes) < 0.5

    def test_saelens_rejects_mismatched_architecture(self, trained, tmp_path):
        with pytest.raises(SaeFormatError, match="does not match architecture 'jumprelu'"):
            save_saelens(trained[1].weights, tmp_path / "x", architecture="jumprelu")

    def test_sparsify_rejects_jumprelu(self, trained, tmp_path):
        x, result = trained
        with pytest.raises(SaeFormatError, match="save_saelens instead"):
            save_sparsify(jumprelu_thresholds(result.weights, x), tmp_path / "x")

    def test_profile_width_and_k_are_checked(self, trained, tmp_path):
        save_sparsify(trained[1].weights, tmp_path / "layers.1")
        assert load_sae(Spec("train", str(tmp_path), num_latents=N_LAT, k=K), 1).n_latents == N_LAT
        with pytest.raises(SaeMismatchError, match="profile says num_latents = 50"):
            load_sae(Spec("train", str(tmp_path), num_latents=50), 1)
        with pytest.raises(SaeMismatchError, match="profile says k = 3"):
            load_sae(Spec("train", str(tmp_path), k=3), 1)

    def test_missing_trained_sae(self, tmp_path):
        spec = Spec("train", "saes", num_latents=8, k=2)
        with pytest.raises(FileNotFoundError, match="trained by saesim"):
            load_sae(spec, 0, root=tmp_path)

    def test_missing_local_folder(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="does not exist"):
            load_sae(Spec("sparsify", str(tmp_path / "nope")), 0, root=tmp_path)

    def test_bad_source(self, tmp_path):
        with pytest.raises(ValueError, match="`spec.source` must be"):
            load_sae(Spec("hub", "x"), 0, root=tmp_path)


class TestHubOffline:
    @pytest.fixture(autouse=True)
    def offline(self, monkeypatch):
        import huggingface_hub.constants as constants

        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    def test_sparsify_hub_offline(self, tmp_path):
        spec = Spec("sparsify", "EleutherAI/sae-pythia-70m-32k")
        with pytest.raises(HubUnavailableError, match="needs the hub"):
            load_sae(spec, 1, root=tmp_path)

    def test_saelens_hub_offline(self, tmp_path):
        spec = Spec("saelens", "pythia-70m-deduped-res-sm", sae_id="blocks.{layer}.hook_resid_post",
                    hook="blocks.{layer}.hook_resid_post")
        with pytest.raises(HubUnavailableError, match="HF_HUB_OFFLINE is set"):
            load_sae(spec, 1, root=tmp_path)


class TestMakeTinySaes:
    def test_all_formats_load_back_and_pass_the_guard(self, tmp_path):
        hooks = {"layers.0": "sparsify", "blocks.0.hook_resid_post": "saelens_topk",
                 "blocks.1.hook_resid_post": "saelens_jumprelu"}
        data = {hook: structured_acts(i, n=1200) for i, hook in enumerate(hooks)}
        paths = make_tiny_saes(data, tmp_path, formats=hooks, num_latents=64, k=4, seed=0, epochs=10)
        assert set(paths) == set(hooks)
        specs = {
            "layers.0": (Spec("sparsify", str(tmp_path)), 0),
            "blocks.0.hook_resid_post": (Spec("saelens", str(tmp_path), "blocks.{layer}.hook_resid_post",
                                              "blocks.{layer}.hook_resid_post"), 0),
            "blocks.1.hook_resid_post": (Spec("saelens", str(tmp_path), "blocks.{layer}.hook_resid_post",
                                              "blocks.{layer}.hook_resid_post"), 1),
        }
        for hook, (spec, layer) in specs.items():
            w = load_sae(spec, layer, root=tmp_path)
            assert w.hook == hook
            expected = {"sparsify": "topk", "saelens_topk": "topk", "saelens_jumprelu": "jumprelu"}[hooks[hook]]
            assert w.activation == expected
            check_fvu(fvu(w, data[hook], encode(w, data[hook])), what=f"tiny SAE {hook}", max_fvu=0.5)
            report = json.loads((paths[hook] / "saesim_train.json").read_text())
            assert report["format"] == hooks[hook] and report["fvu"] < 0.5

    def test_missing_format(self, tmp_path):
        with pytest.raises(ValueError, match="no entry for hooks"):
            make_tiny_saes({"a": structured_acts(0, n=10)}, tmp_path, formats={}, num_latents=8, k=2, seed=0)


def truncate(path, n=100):
    path.write_bytes(path.read_bytes()[:-n])


class TestDamagedSaes:
    """Truncated or edited SAE files are detected on load: saesim's own are rebuilt, others named."""

    def test_intact_saves_carry_a_manifest(self, trained, tmp_path):
        _, result = trained
        save_sparsify(result.weights, tmp_path / "a")
        save_saelens(result.weights, tmp_path / "b", architecture="topk")
        for folder in (tmp_path / "a", tmp_path / "b"):
            assert (folder / MANIFEST).is_file()
            assert saved_sae_problem(folder) is None and sae_folder_ready(folder)

    @pytest.mark.parametrize("fmt", ["sparsify", "saelens"])
    def test_truncated_saesim_sae_is_removed_with_a_clear_error(self, trained, tmp_path, fmt):
        _, result = trained
        folder = tmp_path / "saes" / "layers.1"
        if fmt == "sparsify":
            save_sparsify(result.weights, folder)
            truncate(folder / "sae.safetensors")
            spec = Spec("sparsify", "saes")
        else:
            save_saelens(replace(result.weights, source="saelens"), folder, architecture="topk")
            truncate(folder / "sae_weights.safetensors")
            spec = Spec("saelens", "saes")
        with pytest.raises(SaeCorruptError, match=r"written by saesim and is damaged: .*safetensors` has \d+ bytes, "
                                                  r"expected \d+ \(truncated or damaged\)\. It has been removed; run "
                                                  r"the same command again"):
            load_sae(spec, 1, root=tmp_path)
        assert not folder.exists()

    def test_trained_sae_is_rebuilt_not_crashed(self, trained, tmp_path, caplog):
        """The build-on-demand flow (extract's trained SAEs): check, rebuild when not ready, load."""
        x, result = trained
        spec = Spec("train", "saes")
        folder = tmp_path / "saes" / "layers.1"
        save_sparsify(result.weights, folder)
        truncate(folder / "sae.safetensors", n=4096)
        with caplog.at_level("WARNING", logger="saesim.extract.saes"):
            assert not sae_folder_ready(folder)
        assert "is damaged" in caplog.text and not folder.exists()
        save_sparsify(result.weights, folder)  # the rebuild
        assert sae_folder_ready(folder)
        np.testing.assert_array_equal(load_sae(spec, 1, root=tmp_path).W_dec, result.weights.W_dec)

    def test_same_size_edit_is_caught_by_the_checksum(self, trained, tmp_path):
        _, result = trained
        folder = tmp_path / "layers.1"
        save_sparsify(result.weights, folder)
        data = bytearray((folder / "sae.safetensors").read_bytes())
        data[-5] ^= 0xFF
        (folder / "sae.safetensors").write_bytes(bytes(data))
        assert saved_sae_problem(folder) == f"`{folder / 'sae.safetensors'}` does not match its recorded sha256 (damaged)"

    def test_tiny_sae_is_rebuilt_on_the_next_run(self, tmp_path):
        hooks = {"layers.0": "sparsify"}
        data = {"layers.0": structured_acts(0, n=600)}
        make_tiny_saes(data, tmp_path, formats=hooks, num_latents=32, k=4, seed=0, epochs=2)
        first = load_sae(Spec("sparsify", str(tmp_path)), 0)
        truncate(tmp_path / "layers.0" / "sae.safetensors")
        with pytest.raises(SaeCorruptError, match=r"written by saesim and is damaged"):
            load_sae(Spec("sparsify", str(tmp_path)), 0)
        assert not (tmp_path / "layers.0").exists()  # so the next run writes it again
        make_tiny_saes(data, tmp_path, formats=hooks, num_latents=32, k=4, seed=0, epochs=2)
        np.testing.assert_array_equal(load_sae(Spec("sparsify", str(tmp_path)), 0).W_dec, first.W_dec)

    def test_third_party_sae_is_named_and_left_alone(self, tmp_path):
        folder = tmp_path / "layers.0"
        random_sparsify(0).save_to_disk(folder)  # written by the library, not by saesim
        truncate(folder / "sae.safetensors")
        with pytest.raises(SaeCorruptError, match=r"The SAE in `.*layers\.0` is damaged: `.*sae\.safetensors` has \d+ "
                                                  r"bytes but its header needs \d+ \(truncated or damaged\)\. saesim "
                                                  r"did not write it, so it is left alone: download or save it again"):
            load_sae(Spec("sparsify", str(tmp_path)), 0)
        with pytest.raises(SaeCorruptError, match=r"saesim did not write it"):
            sae_folder_ready(folder)
        assert (folder / "sae.safetensors").is_file()

    def test_garbage_header(self, tmp_path):
        folder = tmp_path / "layers.0"
        random_sparsify(0).save_to_disk(folder)
        (folder / "sae.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
        assert saved_sae_problem(folder) == f"`{folder / 'sae.safetensors'}` has an unreadable safetensors header"

    def test_library_error_on_a_file_the_header_check_passes(self, tmp_path):
        import struct

        folder = tmp_path / "layers.0"
        random_sparsify(0).save_to_disk(folder)
        header = json.dumps({"W_dec": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 8]}}).encode()
        (folder / "sae.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(8))
        assert saved_sae_problem(folder) is None  # offsets consistent, shape not: only the library sees it
        with pytest.raises(SaeCorruptError, match=r"is damaged: the library could not read it \(SafetensorError: .*"
                                                  r"saesim did not write it"):
            load_sae(Spec("sparsify", str(tmp_path)), 0)


class TestTopKTrainer:
    """The settings object and the fit(acts) -> self trainer behind train_topk_sae."""

    def test_fit_returns_self_and_matches_the_function(self):
        import torch

        from saesim.extract.saes import TopKTrainConfig, TopKTrainer, train_topk_sae

        acts = np.random.default_rng(0).normal(size=(600, 16)).astype(np.float32)
        config = TopKTrainConfig(num_latents=32, k=4, epochs=2, seed=0, batch_size=128, num_threads=1)
        trainer = TopKTrainer(config, progress=False)
        assert trainer.fit(acts) is trainer
        direct = train_topk_sae(acts, num_latents=32, k=4, epochs=2, seed=0, batch_size=128, num_threads=1,
                                progress=False)
        assert torch.equal(torch.as_tensor(trainer.weights_.W_dec), torch.as_tensor(direct.weights.W_dec))
        assert torch.equal(torch.as_tensor(trainer.weights_.W_enc), torch.as_tensor(direct.weights.W_enc))
        assert len(trainer.history_) == 2 and trainer.summary_["n_tokens"] == 600

    def test_unfitted_trainer_says_so(self):
        from saesim.extract.saes import TopKTrainConfig, TopKTrainer

        trainer = TopKTrainer(TopKTrainConfig(num_latents=8, k=2, epochs=1, seed=0))
        with pytest.raises(Exception, match=r"not fitted yet.*call `fit\(acts\)` first"):
            trainer.weights_

    def test_config_is_frozen(self):
        import dataclasses

        from saesim.extract.saes import TopKTrainConfig

        config = TopKTrainConfig(num_latents=8, k=2, epochs=1, seed=0)
        with pytest.raises(dataclasses.FrozenInstanceError):
            config.k = 3
