"""Tests for the SAE frontier (saesim.experiments.sae_frontier) and its page (saesim.report.frontier, plot_sae_frontier).

Planted answers: activations built from a known sparse dictionary (32 unit directions in d = 16, two
active per token with positive coefficients), which TopK SAEs recover better the longer they train,
so two seeds' SAEs agree more along the tokens axis; isotropic Gaussian rows, which hold no dictionary,
so two seeds' SAEs agree no better than random directions; log-linear frames whose projection is
known in closed form; and frames whose targets are met, met elsewhere or missed, which the paragraph
must say as they are.
"""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from saesim.experiments.sae_frontier import (
    AXES,
    FRONTIER_COLUMNS,
    RECIPE_AXES,
    FrontierPoint,
    default_points,
    frontier_for_profile,
    input_scale,
    projection,
    sae_frontier,
)
from saesim.experiments.sae_quality import STABILITY_COLUMNS

D, ATOMS, K = 16, 32, 2
"""The planted dictionary: ATOMS unit directions in D dimensions, K active per token."""

T, E = 16000, 4
"""The planted recipe's training tokens and epochs (the frontier's "profile" point)."""

BATCH, LR = 64, 0.01
TRAIN = {"batch_size": BATCH, "lr": LR, "num_threads": 1}
"""Training settings of every frontier here (one torch thread: tiny steps, a busy machine)."""

N_HELDOUT = 1000

RECOVERED = 0.8
"""PW-MCC two seeds' SAEs reach at the planted recipe: the dictionary is found."""

NEAR_CHANCE = 0.1
"""On data without a dictionary, PW-MCC stays within this of the chance level."""

TIMING = ["seconds", "tokens_per_s"]


def planted_rows(n: int, seed: int) -> np.ndarray:
    atoms = np.random.default_rng(123).normal(size=(ATOMS, D))
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    active = np.argsort(rng.random((n, ATOMS)), axis=1)[:, :K]
    coefficients = rng.uniform(1.0, 2.0, size=(n, K))
    return np.einsum("nk,nkd->nd", coefficients, atoms[active]).astype(np.float32)


def gaussian_rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, D)).astype(np.float32)


@pytest.fixture(scope="module")
def planted_frame():
    return sae_frontier(planted_rows(T, 0), planted_rows(N_HELDOUT, 9),
                        default_points(T, E, ATOMS, K, recipe_axes=False), **TRAIN)


def curve(frame: pd.DataFrame) -> pd.DataFrame:
    """The tokens axis and the profile's point, by tokens."""
    return frame[frame["axis"].isin(["tokens", "profile"])].sort_values("train_tokens")


# --------------------------------------------------------------------------- the design


class TestDefaultPoints:
    def test_the_offline_recipe(self):
        points = default_points(192000, 2, 4096, 32, lr=0.005)
        assert [(p.axis, p.train_tokens, p.epochs, p.num_latents, p.k) for p in points[:8]] == [
            ("tokens", 24000, 2, 4096, 32), ("tokens", 48000, 2, 4096, 32), ("tokens", 96000, 2, 4096, 32),
            ("profile", 192000, 2, 4096, 32), ("epochs", 48000, 4, 4096, 32), ("epochs", 48000, 8, 4096, 32),
            ("width", 96000, 2, 1024, 32), ("width", 96000, 2, 2048, 32)]
        assert all(p.optimizer == "signum" and p.lr is None and not p.normalise for p in points[:8])

    def test_the_recipe_axes_sit_at_a_quarter_of_the_tokens_beside_their_baseline(self):
        points = default_points(192000, 2, 4096, 32, lr=0.005)
        recipe = [p for p in points if p.axis in RECIPE_AXES]
        assert [(p.axis, p.k, p.optimizer, p.lr, p.normalise) for p in recipe] == [
            ("k", 16, "signum", None, False), ("k", 64, "signum", None, False),
            ("optimizer", 32, "adam", pytest.approx(8e-4), False),  # sparsify's Adam rate for 4096, doubled
            ("lr", 32, "signum", 0.0025, False), ("lr", 32, "signum", 0.01, False),
            ("normalise", 32, "signum", None, True)]
        assert {(p.train_tokens, p.epochs, p.num_latents) for p in recipe} == {(48000, 2, 4096)}
        assert any(p.axis == "tokens" and p.train_tokens == 48000 for p in points)  # their baseline
        assert [p.lr for p in default_points(192000, 2, 4096, 32) if p.axis == "lr"] == [
            pytest.approx(0.005 * 2 / 2), pytest.approx(0.005 * 2 * 2)]  # no lr: sparsify's 0.01 for 4096
        assert not [p for p in default_points(192000, 2, 4096, 32, recipe_axes=False) if p.axis in RECIPE_AXES]

    def test_cost_in_profile_saes(self):
        def cost(points):
            return sum(p.train_tokens * p.epochs * p.num_latents for p in points) / (192000 * 2 * 4096)

        assert cost(default_points(192000, 2, 4096, 32, recipe_axes=False)) == pytest.approx(3.75)
        assert cost(default_points(192000, 2, 4096, 32)) == pytest.approx(5.25)

    def test_points_narrower_than_k_or_repeated_are_left_out(self):
        points = default_points(64, 1, 8, 4, recipe_axes=False)  # W/4 = 2 < k
        assert [p.num_latents for p in points if p.axis == "width"] == [4]
        assert len({(p.train_tokens, p.epochs, p.num_latents) for p in points}) == len(points)
        wide = default_points(64, 1, 8, 8)  # 2k = 16 > W: only k/2 is left on the k axis
        assert [p.k for p in wide if p.axis == "k"] == [4]
        assert len({dataclasses.astuple(p)[1:] for p in wide}) == len(wide)
        assert not [p for p in default_points(64, 1, 8, 4, lr=0.6) if p.axis == "lr" and p.lr >= 1]

    def test_bad_recipe(self):
        with pytest.raises(ValueError, match="`k`"):
            default_points(1000, 1, 8, 16)
        with pytest.raises(ValueError, match="train_tokens"):
            default_points(0, 1, 8, 2)

    def test_point_checks_its_axis_and_k(self):
        with pytest.raises(ValueError, match="`axis`"):
            FrontierPoint("depth", 10, 1, 8, 2)
        with pytest.raises(ValueError, match="`k`"):
            FrontierPoint("tokens", 10, 1, 2, 8)
        assert FrontierPoint("tokens", 10, 1, 8, 2).to_dict()["axis"] in AXES


# --------------------------------------------------------------------------- the measurements


class TestSaeFrontier:
    def test_one_row_per_point_with_every_column(self, planted_frame):
        from saesim import vocab

        assert list(planted_frame.columns) == list(FRONTIER_COLUMNS)
        assert all(vocab.column_label(c) for c in FRONTIER_COLUMNS)  # every column has a header
        assert all(vocab.label("frontier_axis", a) for a in AXES)
        assert set(STABILITY_COLUMNS) <= set(planted_frame.columns)
        assert len(planted_frame) == len(default_points(T, E, ATOMS, K, recipe_axes=False))
        assert (planted_frame["token_steps"] == planted_frame["train_tokens"] * planted_frame["epochs"]).all()
        assert (planted_frame["seconds"] > 0).all()
        assert np.allclose(planted_frame["tokens_per_s"], planted_frame["token_steps"] / planted_frame["seconds"])
        assert (planted_frame["n_heldout"] == N_HELDOUT).all() and (planted_frame["n_seeds"] == 2).all()
        assert np.allclose(planted_frame["mean_l0"], K, atol=0.01)

    def test_stability_rises_along_the_tokens_axis_and_recovers_the_dictionary(self, planted_frame):
        line = curve(planted_frame)
        pw, shared, fvu = (line[c].to_numpy() for c in ("pw_mcc", "shared_dec", "fvu_heldout"))
        assert pw[-1] > RECOVERED
        assert pw[-1] - pw[0] > 0.1 and shared[-1] - shared[0] > 0.2
        assert np.all(np.diff(pw) > -0.02)  # rises, up to the noise of two seeds
        assert fvu[-1] < fvu[0]
        assert pw[-1] > line["chance_pw_mcc"].iloc[-1] + 0.3
        assert projection(planted_frame)["pw_mcc"]["slope"] > 0

    def test_more_epochs_help_at_the_same_tokens(self, planted_frame):
        at = planted_frame[(planted_frame["train_tokens"] == T // 4)]
        few = at[at["axis"] == "tokens"]["pw_mcc"].iloc[0]
        assert (at[at["axis"] == "epochs"]["pw_mcc"] > few).all()

    def test_random_data_stays_near_the_chance_level(self):
        points = default_points(4000, E, ATOMS, K)[2:4]  # T/2 and T
        frame = sae_frontier(gaussian_rows(4000, 0), gaussian_rows(N_HELDOUT, 1), points, **TRAIN)
        assert (frame["pw_mcc"] - frame["chance_pw_mcc"] < NEAR_CHANCE).all()
        assert (frame["shared_dec"] < 0.2).all()

    def test_same_inputs_same_table(self):
        points = default_points(2000, 2, ATOMS, K)[2:4]
        train, held = planted_rows(2000, 0), planted_rows(200, 9)
        one = sae_frontier(train, held, points, **TRAIN)
        two = sae_frontier(train, held, points, **TRAIN)
        pd.testing.assert_frame_equal(one.drop(columns=TIMING), two.drop(columns=TIMING))

    def test_a_point_trains_with_its_own_optimizer_and_learning_rate(self, monkeypatch):
        import saesim.extract.saes as saes

        seen = []
        real = saes.train_topk_sae
        monkeypatch.setattr(saes, "train_topk_sae",
                            lambda *a, **k: seen.append((k["optimizer"], k["lr"])) or real(*a, **k))
        points = (FrontierPoint("profile", 600, 1, 16, 2), FrontierPoint("optimizer", 600, 1, 16, 2, optimizer="adam",
                                                                        lr=1e-3),
                  FrontierPoint("lr", 600, 1, 16, 2, lr=0.02))
        frame = sae_frontier(planted_rows(600, 0), planted_rows(100, 9), points, **TRAIN)
        assert seen == [("signum", LR)] * 2 + [("adam", 1e-3)] * 2 + [("signum", 0.02)] * 2
        assert list(frame["axis"]) == ["profile", "optimizer", "lr"]
        assert frame.loc[0, "pw_mcc"] != frame.loc[1, "pw_mcc"]  # another optimizer, other SAEs

    def test_scaled_inputs_make_the_point_blind_to_the_input_scale(self):
        """Planted: the same rows times 1000. Unscaled, signum's fixed-size steps meet a 1000x larger
        geometry and the SAEs differ; with ``normalise`` both see the same rows and agree."""
        train, held = planted_rows(1200, 0), planted_rows(200, 9)
        points = (FrontierPoint("tokens", 1200, 2, 32, 2), FrontierPoint("normalise", 1200, 2, 32, 2, normalise=True))
        small = sae_frontier(train, held, points, **TRAIN)
        big = sae_frontier(1000 * train, 1000 * held, points, **TRAIN)
        columns = ["pw_mcc", "shared_dec", "fvu_heldout", "mean_l0"]
        assert np.allclose(small.loc[1, columns], big.loc[1, columns], atol=2e-3)
        assert not np.allclose(small.loc[0, columns], big.loc[0, columns], atol=2e-3)
        assert list(small["normalise"]) == [False, True]

    def test_the_table_says_each_points_optimizer_rate_and_scaling(self):
        points = (FrontierPoint("tokens", 300, 1, 16, 2), FrontierPoint("lr", 300, 1, 16, 2, lr=0.02),
                  FrontierPoint("optimizer", 300, 1, 16, 2, optimizer="adam"))
        frame = sae_frontier(planted_rows(300, 0), planted_rows(50, 9), points, batch_size=BATCH, lr=None,
                             num_threads=1)
        from saesim.extract.saes import default_lr

        assert list(frame["optimizer"]) == ["signum", "signum", "adam"]
        assert list(frame["lr"]) == pytest.approx([default_lr(16), 0.02, default_lr(16, "adam")])
        assert frame["lr"].dtype == np.float64 and frame["normalise"].dtype == bool

    def test_input_scale(self):
        rows = np.random.default_rng(0).normal(size=(500, 9)) * 7.0
        assert np.linalg.norm(rows * input_scale(rows), axis=1).mean() == pytest.approx(3.0)
        for bad in (np.zeros((3, 4)), np.empty((0, 4)), np.full((2, 2), np.nan)):
            with pytest.raises(ValueError, match="mean norm"):
                input_scale(bad)

    def test_defaults_leave_a_points_key_as_it_was(self):
        point = FrontierPoint("tokens", 100, 2, 16, 2)
        assert point.to_dict() == {"axis": "tokens", "train_tokens": 100, "epochs": 2, "num_latents": 16, "k": 2}
        assert FrontierPoint("normalise", 100, 2, 16, 2, normalise=True).to_dict()["normalise"] is True
        with pytest.raises(ValueError, match="`normalise`"):
            FrontierPoint("normalise", 100, 2, 16, 2, normalise="yes")
        assert FrontierPoint("optimizer", 100, 2, 16, 2, optimizer="adam", lr=1e-3).to_dict()["optimizer"] == "adam"
        with pytest.raises(ValueError, match="`optimizer`"):
            FrontierPoint("optimizer", 100, 2, 16, 2, optimizer="sgd")
        with pytest.raises(ValueError, match="`lr`"):
            FrontierPoint("lr", 100, 2, 16, 2, lr=2.0)

    def test_bad_inputs_name_the_argument(self):
        train, held = planted_rows(200, 0), planted_rows(50, 9)
        points = (FrontierPoint("profile", 100, 1, 8, 2),)
        with pytest.raises(ValueError, match="`seeds`"):
            sae_frontier(train, held, points, seeds=(0,), **TRAIN)
        with pytest.raises(ValueError, match="`train_acts` has 200 rows"):
            sae_frontier(train, held, (FrontierPoint("profile", 500, 1, 8, 2),), **TRAIN)
        with pytest.raises(ValueError, match="`heldout_acts`"):
            sae_frontier(train, held[:, :4], points, **TRAIN)
        with pytest.raises(ValueError, match="`k` is 4"):
            sae_frontier(train, held, points, k=4, **TRAIN)
        with pytest.raises(ValueError, match="`points` is empty"):
            sae_frontier(train, held, (), **TRAIN)


# --------------------------------------------------------------------------- the projection


def log_linear(intercept, slope, *, tokens=(1000, 2000, 4000, 8000), epochs=2, rate=500.0, shared=None):
    """A frontier table whose pw_mcc (and shared_dec) lie exactly on intercept + slope * log2(tokens)."""
    tokens = np.asarray(tokens, dtype=float)
    pw = intercept + slope * np.log2(tokens)
    rows = pd.DataFrame({"axis": ["tokens"] * (len(tokens) - 1) + ["profile"], "train_tokens": tokens.astype(int),
                         "epochs": epochs, "num_latents": 64, "k": 4, "token_steps": (tokens * epochs).astype(int),
                         "seconds": tokens * epochs / rate, "pw_mcc": pw,
                         "shared_dec": pw / 4 if shared is None else shared})
    return rows


class TestProjection:
    def test_recovers_the_planted_tokens_and_minutes(self):
        # pw = 0.1 + 0.05 * log2(t): 0.6 at log2(t) = 10, t = 1024 (below the data) -> use a shallower line
        frame = log_linear(-0.2, 0.05)  # 0.6 at log2(t) = 16
        proj = projection(frame)
        fit = proj["pw_mcc"]
        assert fit["slope"] == pytest.approx(0.05) and fit["intercept"] == pytest.approx(-0.2)
        assert fit["tokens"] == pytest.approx(2**16)
        assert proj["tokens_per_s"] == pytest.approx(500.0)
        assert fit["minutes"] == pytest.approx(2**16 * 2 / 500.0 / 60)
        assert fit["fold"] == pytest.approx(2**16 / 8000) and not fit["reached"] and fit["rises"]
        shared = proj["shared_dec"]  # shared = pw / 4: 0.25 at pw = 1.0, log2(t) = 24
        assert shared["tokens"] == pytest.approx(2**24)
        assert proj["epochs"] == 2 and proj["n_points"] == 4 and proj["measured_tokens"] == (1000, 8000)

    def test_targets_and_epochs_are_arguments(self):
        proj = projection(log_linear(-0.2, 0.05), target_pw_mcc=0.5, epochs=8)
        assert proj["pw_mcc"]["tokens"] == pytest.approx(2**14)
        assert proj["pw_mcc"]["minutes"] == pytest.approx(2**14 * 8 / 500.0 / 60)

    @pytest.mark.parametrize("slope", [0.0, -0.03])
    def test_a_flat_or_falling_fit_projects_nothing(self, slope):
        fit = projection(log_linear(0.3, slope))["pw_mcc"]
        assert fit["tokens"] == math.inf and fit["minutes"] == math.inf and not fit["rises"]
        assert "does not rise" in fit["reason"]

    def test_one_token_count_is_no_fit(self):
        frame = log_linear(0.3, 0.05, tokens=(4000, 4000))
        fit = projection(frame)["pw_mcc"]
        assert math.isnan(fit["tokens"]) and math.isnan(fit["slope"]) and "two are needed" in fit["reason"]

    def test_only_the_tokens_axis_and_the_profile_point_are_fitted(self):
        frame = log_linear(-0.2, 0.05)
        other = pd.DataFrame([{**frame.iloc[0].to_dict(), "axis": "epochs", "pw_mcc": 0.99, "seconds": 1e6},
                              {**frame.iloc[1].to_dict(), "axis": "width", "pw_mcc": 0.01}])
        proj = projection(pd.concat([frame, other], ignore_index=True))
        assert proj["pw_mcc"]["tokens"] == pytest.approx(2**16) and proj["tokens_per_s"] == pytest.approx(500.0)

    def test_a_reached_target_is_said_reached(self):
        assert projection(log_linear(0.5, 0.05))["pw_mcc"]["reached"]

    def test_needs_a_frontier_table(self):
        with pytest.raises(ValueError, match="sae_frontier"):
            projection(pd.DataFrame({"axis": ["tokens"]}))


# --------------------------------------------------------------------------- a profile's frontier


@pytest.fixture()
def one_torch_thread():
    """frontier_for_profile trains with torch's thread count; one thread keeps these tiny SAEs fast."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.usefixtures("one_torch_thread")
class TestFrontierForProfile:
    def test_missing_activations_name_the_extraction_to_run(self, tmp_path):
        with pytest.raises(ValueError, match="saesim extract --profile tiny"):
            frontier_for_profile("tiny", cache=tmp_path)

    def test_only_slots_a_and_b(self, tmp_path):
        with pytest.raises(ValueError, match="`slot`"):
            frontier_for_profile("tiny", cache=tmp_path, slot="seed")

    def test_grid_rows_split_into_training_and_held_out_and_the_table_is_kept(self, tmp_path, monkeypatch):
        from saesim.extract import pipeline

        grid = planted_rows(400, 0)
        seen = []

        def fake_load(profile, which, layer, *, out=None):
            seen.append((which, layer))
            return grid

        monkeypatch.setattr(pipeline, "load_activations", fake_load)
        points = (FrontierPoint("tokens", 150, 1, 8, 2), FrontierPoint("profile", 300, 1, 8, 2))
        frame = frontier_for_profile("tiny", cache=tmp_path, points=points)
        assert seen == [("a", 1)]  # the sweeps' A layer of tiny
        assert (frame["n_heldout"] == 100).all()  # tiny trains on every row: the frontier holds out a quarter
        assert set(frame["slot"]) == {"a"} and set(frame["layer"]) == {1}
        assert len(list((tmp_path / "results" / "robustness" / "kept").glob("sae_frontier_*.parquet"))) == 1

        monkeypatch.setattr("saesim.experiments.sae_frontier.sae_frontier",
                            lambda *a, **k: pytest.fail("a kept table is read back, not recomputed"))
        again = frontier_for_profile("tiny", cache=tmp_path, points=points)
        pd.testing.assert_frame_equal(frame, again)

    def test_with_training_text_every_grid_row_is_held_out(self, tmp_path, monkeypatch):
        from saesim.config import load_profile
        from saesim.experiments.sweeps import default_sweep_pair
        from saesim.extract import pipeline

        profile = load_profile("tiny").replace(**{"model_a.sae.source": "train", "model_a.sae.train_tokens": 300,
                                                  "model_a.sae.train_text": ["wikitext2"]})
        calls = []
        monkeypatch.setattr(pipeline, "load_activations", lambda *a, **k: planted_rows(120, 9))
        monkeypatch.setattr(pipeline, "train_activations",
                            lambda *a, **k: calls.append(a[1:3]) or planted_rows(300, 0))
        frame = frontier_for_profile(profile, cache=tmp_path, points=(FrontierPoint("profile", 300, 1, 8, 2),
                                                                       FrontierPoint("tokens", 100, 1, 8, 2)))
        assert (frame["n_heldout"] == 120).all() and calls == [("a", default_sweep_pair(profile)[0])]


# --------------------------------------------------------------------------- the page: prose and figure


def page_frame(*, profile_pw=0.45, profile_shared=0.10, profile_fvu=0.50, epochs_pw=0.50, epochs_shared=0.15,
               epochs_fvu=0.45, slope=0.02, chance=0.20):
    """A frontier table as the page reads it, numbers chosen by hand (no training)."""
    tokens = [24000, 48000, 96000, 192000]
    pw = [profile_pw - slope * (3 - i) for i in range(4)]
    shared = [profile_shared - slope / 2 * (3 - i) for i in range(4)]
    fvu = [profile_fvu + 0.02 * (3 - i) for i in range(4)]
    rows = [{"axis": "tokens" if i < 3 else "profile", "train_tokens": t, "epochs": 2, "num_latents": 4096,
             "pw_mcc": p, "shared_dec": s, "fvu_heldout": f} for i, (t, p, s, f) in enumerate(zip(tokens, pw, shared,
                                                                                                     fvu))]
    rows += [{"axis": "epochs", "train_tokens": 48000, "epochs": 8, "num_latents": 4096, "pw_mcc": epochs_pw,
              "shared_dec": epochs_shared, "fvu_heldout": epochs_fvu},
             {"axis": "width", "train_tokens": 96000, "epochs": 2, "num_latents": 1024, "pw_mcc": 0.40,
              "shared_dec": 0.05, "fvu_heldout": 0.60}]
    frame = pd.DataFrame(rows).assign(k=32, optimizer="signum", lr=0.005, normalise=False, slot="a", layer=7,
                                      n_heldout=90000, n_seeds=2,
                                      chance_pw_mcc=chance, chance_shared_dec=0.0, shared_dec_enc=0.05,
                                      act_mcc=0.3, shared_act=0.05, dead_fraction=0.1, mean_l0=32.0)
    frame["token_steps"] = frame["train_tokens"] * frame["epochs"]
    frame["seconds"] = frame["token_steps"] / 400.0
    frame["tokens_per_s"] = 400.0
    return frame


class TestFrontierProse:
    def text(self, frame):
        from saesim.report.frontier import frontier_text

        return frontier_text(frame, projection(frame))

    def test_targets_missed_are_said_missed_with_the_projection(self):
        frame = page_frame(slope=0.05)  # PW-MCC's target 8x beyond the measured, the shared share's far out
        text = self.text(frame)
        assert "not all reached" in text
        for goal in ("PW-MCC ≥ 0.6", "≥ 25 % of latents shared", "held-out FVU ≤ 0.4"):
            assert f"{goal} is not reached at any point measured" in text
        assert "reached at the profile's recipe" not in text
        assert "PW-MCC of 0.45" in text and "10.0 %" in text and "0.500" in text  # the profile's numbers
        proj = projection(frame)
        from saesim.report.frontier import MAX_FOLD, duration_words, tokens_words

        for column in ("pw_mcc", "shared_dec"):  # a budget is named only within MAX_FOLD of the measured
            fit = proj[column]
            named = tokens_words(fit["tokens"]) in text and duration_words(fit["minutes"]) in text
            assert named == (fit["fold"] <= MAX_FOLD)
        assert any(proj[c]["fold"] <= MAX_FOLD for c in ("pw_mcc", "shared_dec"))
        assert "rough guide" in text

    def test_a_budget_far_beyond_the_measured_is_not_named(self):
        from saesim.report.frontier import MAX_FOLD

        frame = page_frame(slope=0.0005)
        proj = projection(frame)
        assert proj["pw_mcc"]["fold"] > MAX_FOLD
        text = self.text(frame)
        assert f"more than {MAX_FOLD:,} times beyond the largest budget measured" in text

    def test_targets_met_at_the_recipe_are_said_met(self):
        text = self.text(page_frame(profile_pw=0.85, profile_shared=0.60, profile_fvu=0.20, epochs_pw=0.8,
                                    epochs_fvu=0.3, slope=0.05))
        assert "All the targets are met at the profile's recipe" in text
        assert text.count("is reached at the profile's recipe") == 3 and "not reached" not in text
        assert "already reaches PW-MCC ≥ 0.6 within the range measured" in text

    def test_a_target_met_only_elsewhere_names_the_point(self):
        text = self.text(page_frame(epochs_pw=0.65))
        assert "PW-MCC ≥ 0.6 is not reached at the profile's recipe (0.45) but is at the point with more epochs" in text
        assert "The most stable point measured is the one with more epochs (48,000 tokens × 8 epochs" in text

    def test_a_falling_fit_projects_no_budget(self):
        text = self.text(page_frame(slope=-0.02))
        assert "does not rise with the training tokens" in text and "projects no budget" in text
        assert "rough guide" not in text

    def test_the_literature_is_named_as_the_literature(self):
        from saesim.report.scope import LITERATURE_STABILITY

        text = self.text(page_frame())
        assert "the literature's figures" in text and LITERATURE_STABILITY in text
        assert "arXiv 2501.16615" in text and "arXiv 2505.20254" in text

    def test_missing_numbers_never_print_as_nan(self):
        frame = page_frame().assign(chance_pw_mcc=float("nan"), chance_shared_dec=float("nan"))
        text = self.text(frame)
        assert "nan" not in text.lower().replace("non", "") and "not measured" in text

    def test_needs_the_profile_point(self):
        from saesim.report.frontier import frontier_text

        frame = page_frame()
        with pytest.raises(ValueError, match="profile"):
            frontier_text(frame[frame["axis"] != "profile"], projection(frame))

    def test_status_table(self):
        from saesim.report.frontier import target_status

        status = target_status(page_frame(epochs_pw=0.65))
        assert status.loc["pw_mcc", "status"] == "reached only at another point"
        assert status.loc["shared_dec", "status"] == "not reached"
        assert status.loc["fvu_heldout", "best"] == pytest.approx(0.45)

    def test_caption_and_table_read_the_numbers(self):
        from saesim.report.frontier import frontier_caption, frontier_table

        frame = page_frame()
        caption = frontier_caption(frame, projection(frame))
        assert "model A's layer 7" in caption and "2 seeds" in caption and "6 points" in caption
        assert "192,000 tokens × 2 epochs, 4,096 latents, k = 32" in caption and "PW-MCC ≥ 0.6" in caption
        html = frontier_table(frame).to_html()
        assert "the profile&#x27;s recipe" in html or "the profile's recipe" in html
        assert "PW-MCC" in html and "held-out FVU" in html and "10.0%" in html


class TestFrontierFigure:
    def test_three_panels_on_a_log2_token_axis_with_targets_chance_and_fit(self):
        from saesim.report.plots import panel_axes, plot_sae_frontier

        frame = page_frame()
        proj = projection(frame)
        fig = plot_sae_frontier(frame, proj)
        axes = panel_axes(fig)
        assert len(axes) == 3 and all(ax.get_xscale() == "log" for ax in axes)
        levels = [{round(float(line.get_ydata()[0]), 6) for line in ax.get_lines()
                   if len(set(np.asarray(line.get_ydata(), dtype=float))) == 1 and len(line.get_ydata()) == 2}
                  for ax in axes]
        assert {0.6, 0.2} <= levels[0] and {25.0, 0.0} <= levels[1] and 0.4 in levels[2]
        fit = [line for line in axes[0].get_lines() if line.get_linestyle() == "-."]
        assert len(fit) == 1 and fit[0].get_xdata().max() == pytest.approx(proj["pw_mcc"]["tokens"])  # to the target
        assert any(line.get_marker() == "x" and line.get_ydata()[0] == pytest.approx(0.6) for line in axes[0].get_lines())

    def test_a_target_far_out_is_named_not_drawn(self):
        from saesim.report.plots import FIT_REACH, panel_axes, plot_sae_frontier

        frame = page_frame(slope=0.002)
        proj = projection(frame)
        ax = panel_axes(plot_sae_frontier(frame, proj))[0]
        fit = [line for line in ax.get_lines() if line.get_linestyle() == "-."][0]
        assert fit.get_xdata().max() == pytest.approx(frame["train_tokens"].max() * FIT_REACH)
        assert "reaches the target at" in " ".join(t.get_text() for t in ax.get_legend().get_texts())

    def test_every_text_is_legible_at_the_page_width(self):
        from saesim.report.plots import MIN_TEXT_PX, PAGE_WIDTH_PX, plot_sae_frontier

        frame = page_frame()
        fig = plot_sae_frontier(frame, projection(frame))
        pixels_per_point = PAGE_WIDTH_PX / (fig.get_figwidth() * 72)
        texts = [t for ax in fig.axes for t in (ax.texts + ax.get_xticklabels() + ax.get_yticklabels()
                                                + [ax.title, ax.xaxis.label, ax.yaxis.label]) if t.get_text()]
        texts += [t for legend in fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
                  for t in legend.get_texts()]
        assert min(t.get_fontsize() for t in texts) * pixels_per_point >= MIN_TEXT_PX - 1e-9


# --------------------------------------------------------------------------- the recipe axes on the page


def recipe_frame(*, k16=(0.33, 0.02, 0.36), adam=(0.25, 0.0, 0.33), lr2=(0.31, 0.012, 0.32), scaled=(0.30, 0.01, 0.32)):
    """page_frame plus the recipe axes at 48k tokens x 2 epochs, whose baseline (tokens axis) has
    PW-MCC 0.41, 8 % shared, FVU 0.54 and whose doubling (96k) adds +0.02 PW-MCC."""
    frame = page_frame()
    base = frame[(frame["axis"] == "tokens") & (frame["train_tokens"] == 48000)].iloc[0]
    rows = []
    for axis, values, extra in (("k", k16, {"k": 16}), ("optimizer", adam, {"optimizer": "adam", "lr": 8e-4}),
                                ("lr", lr2, {"lr": 0.01}), ("normalise", scaled, {"normalise": True})):
        rows.append({**base.to_dict(), "axis": axis, "pw_mcc": values[0], "shared_dec": values[1],
                     "fvu_heldout": values[2], **extra})
    return pd.concat([frame, pd.DataFrame(rows)], ignore_index=True)


class TestRecipeAxesPage:
    def test_the_view_puts_the_baseline_first_and_names_each_change(self):
        from saesim.report.frontier import recipe_axes_view

        view = recipe_axes_view(recipe_frame())
        assert list(view["change"]) == ["baseline: 48k tokens × 2 epochs", "k = 16", "Adam, linear decay, lr 0.0008",
                                        "learning rate × 2 (0.01)", "inputs scaled to mean norm √d"]
        assert list(view["is_baseline"]) == [True, False, False, False, False]
        assert view["pw_mcc"].iloc[0] == pytest.approx(0.41)
        assert recipe_axes_view(page_frame()).empty
        frame = recipe_frame()
        with pytest.raises(ValueError, match="baseline"):
            recipe_axes_view(frame[~((frame["axis"] == "tokens") & (frame["train_tokens"] == 48000))])

    def test_the_paragraph_follows_the_numbers(self):
        from saesim.report.frontier import recipe_axes_text

        text = recipe_axes_text(recipe_frame())  # every change below the baseline's 0.41
        assert "baseline reaches PW-MCC 0.410, 8.0 % shared" in text
        assert "k = 16: PW-MCC 0.330 (-0.080), 2.0 % shared, held-out FVU 0.360" in text
        assert "None of these changes" in text
        assert "Doubling the training tokens from the same baseline adds +0.020 PW-MCC" in text
        assert "more than any of these changes" in text
        better = recipe_axes_text(recipe_frame(k16=(0.45, 0.09, 0.60)))
        assert "The most stable of them is k = 16, +0.040 PW-MCC over the baseline" in better
        assert "no more than k = 16" in better
        assert "K = 16 buys its stability with a worse held-out FVU (0.600 against 0.540)" in better
        assert recipe_axes_text(page_frame()) == ""

    def test_the_frontier_paragraph_names_a_recipe_points_change(self):
        from saesim.report.frontier import frontier_text

        frame = recipe_frame(lr2=(0.62, 0.3, 0.3))
        text = frontier_text(frame, projection(frame))
        assert "the one with another learning rate (48,000 tokens × 2 epochs, 4,096 latents, k = 32, lr 0.01)" in text
        assert "PW-MCC ≥ 0.6 is not reached at the profile's recipe (0.45) but is at the point with another " \
               "learning rate" in text

    def test_the_caption_names_the_budget_and_the_baseline(self):
        from saesim.report.frontier import frontier_caption, recipe_axes_caption

        caption = recipe_axes_caption(recipe_frame())
        assert "48,000 tokens × 2 epochs, 4,096 latents" in caption and "k = 32, signum at lr 0.005" in caption
        assert "model A's SAE training text of layer 7" in caption
        frame = recipe_frame()
        main = frontier_caption(frame, projection(frame))
        assert "6 points around" in main and "The 4 recipe changes" in main

    def test_the_figure_draws_one_row_per_change_and_the_main_one_leaves_them_out(self):
        from saesim.report.plots import MIN_TEXT_PX, PAGE_WIDTH_PX, plot_sae_frontier, plot_sae_recipe_axes

        frame = recipe_frame()
        fig = plot_sae_recipe_axes(frame)
        axes = [ax for ax in fig.axes if ax.get_visible()]
        assert len(axes) == 3
        assert [t.get_text() for t in axes[0].get_yticklabels()][0] == "baseline: 48k tokens × 2 epochs"
        vertical = {round(float(line.get_xdata()[0]), 6) for line in axes[0].get_lines()
                    if len(set(np.asarray(line.get_xdata(), dtype=float))) == 1 and len(line.get_xdata()) == 2}
        assert {0.41, 0.2} <= vertical  # the baseline and the chance level
        assert sum(len(line.get_xdata()) == 1 for line in axes[1].get_lines()) == 5
        pixels_per_point = PAGE_WIDTH_PX / (fig.get_figwidth() * 72)
        texts = [t for ax in axes for t in ax.get_xticklabels() + ax.get_yticklabels() + [ax.xaxis.label]
                 if t.get_text()]
        assert min(t.get_fontsize() for t in texts) * pixels_per_point >= MIN_TEXT_PX - 1e-9
        main = plot_sae_frontier(frame, projection(frame))
        assert not any(line.get_marker() in ("D", "v", "P", "X") for ax in main.axes for line in ax.get_lines())
        with pytest.raises(ValueError, match="recipe-axis"):
            plot_sae_recipe_axes(page_frame())
