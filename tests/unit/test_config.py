"""Tests for saesim.config: shipped profiles, overrides and validation."""

import dataclasses

import pytest

from saesim.config import (
    DataSpec,
    ModelSpec,
    Profile,
    ProfileError,
    SaeSpec,
    list_profiles,
    load_profile,
)


class TestShippedProfiles:
    def test_all_four_ship_and_load(self):
        assert set(list_profiles()) >= {"offline", "encoders", "tiny", "pythia", "gemma"}
        for name in list_profiles():
            profile = load_profile(name)
            assert profile.name == name
            assert profile.layers_a and profile.layers_b

    def test_offline_is_gemma3_against_smollm2_with_a_clean_seed_control(self):
        p = load_profile("offline")
        assert not p.needs_hub and not p.needs_gpu
        assert (p.model_a.model, p.model_a.source, p.model_a.family) == ("gemma-3-270m", "gguf_package", "gemma3")
        assert (p.model_b.model, p.model_b.source, p.model_b.family) == (
            "SmolLM2-135M-Instruct", "gguf_package", "llama")
        assert p.seed_control.identity == p.model_a.identity
        a, seed = p.model_a.sae, p.seed_control.sae  # differs by seed only
        assert (seed.num_latents, seed.k, seed.epochs, seed.lr, seed.train_tokens) == (
            a.num_latents, a.k, a.epochs, a.lr, a.train_tokens) and seed.seed != a.seed
        assert (p.control.base_source, p.control.randomize, p.control_all.randomize) == (
            "gguf_package", "authors", "all")
        assert p.layers_a[0] == 0 and p.layers_a[-1] == 17 and p.layers_b[0] == 0 and p.layers_b[-1] == 29
        assert 0 < p.data.min_aligned < 1
        with pytest.raises(ProfileError, match=r"`data.min_aligned` must be a fraction"):
            load_profile("offline", **{"data.min_aligned": 1.5})

    def test_encoders_is_minilm_against_mpnet_with_seed_and_random_controls(self):
        p = load_profile("encoders")
        assert not p.needs_hub and not p.needs_gpu
        assert p.data.corpus == "wikitext2"
        assert (p.model_a.model, p.model_a.source, p.model_a.family) == ("all-MiniLM-L6-v2", "minilm_package", "bert")
        assert (p.model_b.model, p.model_b.source, p.model_b.family) == ("all-mpnet-base-v2", "mpnet_package", "mpnet")
        for slot in p.slots:
            spec = p.model(slot)
            assert spec.sae.source == "train" and spec.sae.k == 32 and spec.sae.hook == "encoder.layer.{layer}"
        assert (p.model_a.sae.num_latents, p.model_b.sae.num_latents) == (4096, 8192)  # width proportional to d
        assert p.seed_control.identity == p.model_a.identity  # same model, another SAE set
        assert (p.seed_control.sae.num_latents, p.seed_control.sae.seed) == (6144, 1)
        assert p.control.source == p.control_all.source == "random_copy"
        assert (p.control.randomize, p.control_all.randomize) == ("authors", "all")
        assert p.control.identity != p.control_all.identity
        assert p.layers_a == (0, 1, 2, 3, 4, 5) and p.layers_b == (1, 3, 5, 7, 9, 11)
        assert p.layers("seed") == p.layers("control") == p.layers("control_all") == (0, 3, 5)
        assert p.filters.svcca_dims == "ratio:10"

    def test_comparisons_put_the_random_models_in_a_s_place(self):
        assert load_profile("encoders").comparisons() == {
            "full_space": ("a", "b"), "seed": ("a", "seed"), "control": ("control", "b"),
            "control_all": ("control_all", "b")}
        assert load_profile("tiny").comparisons() == {"full_space": ("a", "b"), "seed": ("a", "seed"),
                                                      "control": ("control", "b")}
        assert load_profile("pythia").comparisons() == {"full_space": ("a", "b")}

    def test_baseline_pairs_follow_relative_depth(self):
        assert load_profile("encoders").baseline_layer_pairs() == [(0, 1), (3, 7), (5, 11)]
        same = load_profile("encoders", layers_b=[0, 1, 2, 3, 4, 5])
        assert same.baseline_layer_pairs() == [(0, 0), (3, 3), (5, 5)]

    def test_svcca_dims_is_checked(self):
        assert load_profile("encoders", **{"filters.svcca_dims": 0.99}).filters.svcca_dims == 0.99
        assert load_profile("encoders", **{"filters.svcca_dims": 20}).filters.svcca_dims == 20
        with pytest.raises(ProfileError, match=r"`filters.svcca_dims` must be 'ratio:R'.*got 'ratio:x'"):
            load_profile("encoders", **{"filters.svcca_dims": "ratio:x"})
        with pytest.raises(ProfileError, match=r"`filters.svcca_dims` must be .*got 1.5"):
            load_profile("encoders", **{"filters.svcca_dims": 1.5})

    def test_control_layers_need_their_model(self):
        with pytest.raises(ProfileError, match="`layers_seed` is set but the profile has no `seed_control` model"):
            load_profile("pythia", layers_seed=[1])

    def test_pythia_is_the_paper_grid(self):
        p = load_profile("pythia")
        assert p.needs_hub
        assert (p.model_a.model, p.model_b.model) == ("EleutherAI/pythia-70m", "EleutherAI/pythia-160m")
        assert p.model_a.sae.location == "EleutherAI/sae-pythia-70m-32k"
        assert p.model_b.sae.location == "EleutherAI/sae-pythia-160m-32k"
        assert p.model_a.sae.hook_for(3) == "layers.3" and p.model_a.sae.id_for(3) == "layers.3"
        assert (p.data.corpus, p.data.n_docs, p.data.max_length) == ("openwebtext", 100, 300)
        assert p.layers_a == (1, 2, 3, 4, 5) and p.layers_b == tuple(range(1, 12))

    def test_gemma_is_the_paper_grid(self):
        p = load_profile("gemma")
        assert p.needs_hub and p.needs_gpu
        assert p.model_a.sae.location == "gemma-2b-res-jb"
        assert p.model_a.sae.id_for(6) == "blocks.6.hook_resid_post"
        assert p.model_b.sae.location == "gemma-scope-2b-pt-res-canonical"
        assert p.model_b.sae.id_for(10) == "layer_10/width_16k/canonical"
        assert p.model_b.sae.hook_for(10) == "blocks.10.hook_resid_post"
        assert (p.data.n_docs, p.data.max_length) == (150, 150)
        assert p.layers_a == (6, 10, 12, 17) and p.layers_b == (2, 6, 10, 14, 18, 22)

    def test_tiny_uses_both_sae_formats_and_families(self):
        p = load_profile("tiny")
        assert (p.model_a.family, p.model_a.sae.source) == ("gpt_neox", "sparsify")
        assert (p.model_b.family, p.model_b.sae.source) == ("gemma2", "saelens")
        assert p.model_a.source == p.model_b.source == "tiny"
        assert not p.needs_hub


class TestOverrides:
    def test_dotted_and_nested_overrides(self):
        p = load_profile("encoders", **{"data.n_docs": 50}, model_a={"sae": {"epochs": 1}})
        assert p.data.n_docs == 50
        assert p.model_a.sae.epochs == 1
        assert p.model_a.sae.num_latents == 4096  # untouched siblings survive

    def test_replace_returns_a_new_profile(self):
        p = load_profile("encoders")
        q = p.replace(**{"layers_a": [0, 2]}, data={"max_length": 64})
        assert q.layers_a == (0, 2) and q.data.max_length == 64
        assert p.layers_a == (0, 1, 2, 3, 4, 5)
        assert p.key() != q.key()

    def test_lists_become_tuples(self):
        p = load_profile("tiny", layers_b=[1])
        assert p.layers_b == (1,)

    def test_load_profile_accepts_a_profile(self):
        p = load_profile("tiny")
        assert load_profile(p) is p or load_profile(p) == p
        assert load_profile(p, **{"data.n_docs": 3}).data.n_docs == 3

    def test_yaml_round_trip(self, tmp_path):
        p = load_profile("encoders", **{"data.n_docs": 7})
        path = tmp_path / "mine.yaml"
        path.write_text(p.to_yaml())
        assert load_profile(path) == p

    def test_frozen(self):
        p = load_profile("tiny")
        with pytest.raises(dataclasses.FrozenInstanceError):
            p.name = "x"


class TestValidation:
    def test_unknown_key_names_the_key_and_the_valid_ones(self):
        with pytest.raises(ProfileError, match=r"unknown key\(s\) \['data.n_doc'\].*valid keys of `data`"):
            load_profile("encoders", **{"data.n_doc": 3})

    def test_unknown_top_level_key(self):
        with pytest.raises(ProfileError, match=r"unknown key\(s\) \['colour'\]"):
            load_profile("encoders", colour="red")

    def test_value_outside_the_choices(self):
        with pytest.raises(ProfileError, match=r"`data.corpus` of profile `encoders` must be one of"):
            load_profile("encoders", **{"data.corpus": "c4"})
        with pytest.raises(ProfileError, match=r"`model_a.sae.codes`.*must be one of"):
            load_profile("encoders", **{"model_a.sae.codes": "dense"})

    def test_wrong_type(self):
        with pytest.raises(ProfileError, match=r"`model_a.batch_size` of profile `encoders` must be an integer"):
            load_profile("encoders", **{"model_a.batch_size": "8"})
        with pytest.raises(ProfileError, match=r"`compat` .* must be true or false"):
            load_profile("encoders", compat="yes")

    def test_hook_template_needs_the_layer_placeholder(self):
        with pytest.raises(ProfileError, match=r"`model_a.sae`: `hook` must contain the placeholder"):
            load_profile("encoders", **{"model_a.sae.hook": "layers.3"})

    def test_trained_sae_needs_width_and_k(self):
        with pytest.raises(ProfileError, match="`num_latents` or `k` is missing"):
            SaeSpec(source="train", num_latents=None, k=32)

    def test_learning_rate_is_checked_and_keys_the_training(self):
        from saesim.extract.pipeline import _train_key

        profile = load_profile("encoders")
        assert profile.model("b").sae.lr == 0.0035
        for bad in (0, 1.5, "fast", True):
            with pytest.raises(ProfileError, match=r"`sae.lr` must be a learning rate in \(0, 1\)"):
                SaeSpec(source="train", num_latents=64, k=4, lr=bad)
        assert SaeSpec(source="train", num_latents=64, k=4, lr="1e-3").lr == 0.001  # YAML's 1e-3 is a string
        other = load_profile("encoders", **{"model_b.sae.lr": 0.001})
        default = load_profile("encoders", **{"model_b.sae.lr": None})
        keys = {_train_key(p, p.model("b"), 3, "grid") for p in (profile, other, default)}
        assert len(keys) == 3  # another learning rate is another SAE

    def test_empty_or_repeated_layers(self):
        with pytest.raises(ProfileError, match="`layers_a` is empty"):
            load_profile("encoders", layers_a=[])
        with pytest.raises(ProfileError, match="lists a layer twice"):
            load_profile("encoders", layers_b=[1, 1])

    def test_unknown_profile_lists_the_shipped_ones(self):
        with pytest.raises(ProfileError, match=r"unknown profile 'nope'; choose one of \[.*'offline'"):
            load_profile("nope")

    def test_missing_yaml_file(self, tmp_path):
        with pytest.raises(ProfileError, match="does not exist"):
            load_profile(tmp_path / "absent.yaml")

    def test_bad_slot(self):
        p = load_profile("pythia")
        with pytest.raises(ProfileError, match=r"has no control model \(slot 'control'\)"):
            p.model("control")
        with pytest.raises(ProfileError, match="`which` must be"):
            p.model("c")

    def test_texts_corpus_needs_texts(self):
        with pytest.raises(ProfileError, match="`texts` is empty"):
            DataSpec(corpus="texts")

    def test_bert_cannot_use_transformer_lens(self):
        with pytest.raises(ProfileError, match="transformer_lens"):
            ModelSpec(label="x", model="m", family="bert", backend="transformer_lens")


class TestSpecs:
    def test_templates(self):
        spec = SaeSpec(source="saelens", sae_id="layer_{layer}/width_16k/canonical",
                       hook="blocks.{layer}.hook_resid_post")
        assert spec.id_for(4) == "layer_4/width_16k/canonical"
        assert spec.hook_for(4) == "blocks.4.hook_resid_post"

    def test_identity_ignores_the_sae(self):
        p = load_profile("encoders")
        assert p.model_a.identity == p.seed_control.identity
        assert p.control.identity != p.model_a.identity

    def test_profile_slots(self):
        assert load_profile("encoders").slots == ("a", "b", "seed", "control", "control_all")
        assert load_profile("pythia").slots == ("a", "b")
        assert isinstance(load_profile("tiny"), Profile)
