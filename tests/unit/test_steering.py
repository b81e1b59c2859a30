"""Steering transfer arithmetic (saesim.compare.steering) against oracles and planted answers."""

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.stats import kstest

from saesim.compare.nulls import p_value
from saesim.compare.steering import (decoder_sum_vector, lstsq_map, matched_effect, mean_diff_vector,
                                     procrustes_map, random_orthogonal_map, transfer_efficiency, unit)


def _rotation(d, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q


def test_procrustes_recovers_a_planted_rotation():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 12))
    q = _rotation(12, 1)
    w = procrustes_map(x, x @ q + 0.5)  # a shift: centring removes it
    np.testing.assert_allclose(w, q, atol=1e-10)


def test_procrustes_equals_scipy_on_centred_square_case():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((50, 6)), rng.standard_normal((50, 6))
    oracle, _ = orthogonal_procrustes(x - x.mean(0), y - y.mean(0))
    np.testing.assert_allclose(procrustes_map(x, y), oracle, atol=1e-10)


@pytest.mark.parametrize("d_a,d_b", [(5, 8), (8, 5)])
def test_procrustes_between_different_widths_is_semi_orthogonal(d_a, d_b):
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((40, d_a)), rng.standard_normal((40, d_b))
    w = procrustes_map(x, y)
    assert w.shape == (d_a, d_b)
    small = min(d_a, d_b)
    gram = w @ w.T if d_a <= d_b else w.T @ w
    np.testing.assert_allclose(gram, np.eye(small), atol=1e-10)


def test_lstsq_equals_numpy_lstsq_without_ridge_and_shrinks_with_it():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((80, 7))
    y = x @ rng.standard_normal((7, 3)) + 0.1 * rng.standard_normal((80, 3))
    xc, yc = x - x.mean(0), y - y.mean(0)
    oracle = np.linalg.lstsq(xc, yc, rcond=None)[0]
    np.testing.assert_allclose(lstsq_map(x, y, ridge=0.0), oracle, atol=1e-10)
    assert np.linalg.norm(lstsq_map(x, y, ridge=1.0)) < np.linalg.norm(oracle)
    with pytest.raises(ValueError, match="ridge"):
        lstsq_map(x, y, ridge=-1)


def test_random_orthogonal_map_is_orthonormal_and_seeded():
    w = random_orthogonal_map(6, 9, 0)
    np.testing.assert_allclose(w @ w.T, np.eye(6), atol=1e-10)
    np.testing.assert_array_equal(w, random_orthogonal_map(6, 9, 0))
    assert not np.allclose(w, random_orthogonal_map(6, 9, 1))


def test_vector_recipes():
    acts = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [0.0, 4.0]])
    plus = np.array([True, True, False, False])
    np.testing.assert_allclose(mean_diff_vector(acts, plus), [2.0, -3.0])
    np.testing.assert_allclose(mean_diff_vector(acts, plus, np.array([False, False, True, False])), [2.0, -2.0])
    with pytest.raises(ValueError, match="both sides"):
        mean_diff_vector(acts, np.zeros(4, bool))
    decoder = np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    np.testing.assert_allclose(decoder_sum_vector(decoder, [0, 1]), [1.0, 1.0])
    np.testing.assert_allclose(decoder_sum_vector(decoder, [0], [1]), [1.0, -1.0])
    with pytest.raises(ValueError, match="no member"):
        decoder_sum_vector(decoder, [])
    with pytest.raises(ValueError, match="zero"):
        unit(np.zeros(3))


def test_matched_effect_interpolates_in_root_kl_and_refuses_far_extrapolation():
    # effect = 2 * sqrt(KL) exactly: any reading must give 2 * sqrt(target)
    kl = np.array([0.04, 0.16, 0.64])
    effect = 2 * np.sqrt(kl)
    for target in (0.01, 0.1, 0.5, 1.0):  # 1.0 is past the curve: extrapolated (within 2x its reach)
        assert matched_effect(effect, kl, target) == pytest.approx(2 * np.sqrt(target))
    assert np.isnan(matched_effect(effect, kl, 4 * 0.64 * 1.01))
    assert np.isnan(matched_effect([0.0, 0.0], [0.0, 0.0], 0.1))  # a vector that does nothing


def test_transfer_efficiency_planted():
    kl = np.array([0.1, 0.4])
    native = 2 * np.sqrt(kl)
    mapped = 0.5 * native
    assert transfer_efficiency(mapped, kl, native, kl, 0.1) == pytest.approx(0.5)
    # the mapped vector costs four times the side effect for the same push: at matched KL it reaches half
    assert transfer_efficiency(native, 4 * kl, native, kl, 0.4) == pytest.approx(0.5)
    assert np.isnan(transfer_efficiency(mapped, kl, -native, kl, 0.1))  # a native vector that does not steer


def test_shuffled_pairing_null_p_values_are_uniform_when_nothing_corresponds():
    """Linear response: the effect of v on B is g . v. Paired rows that share nothing give maps whose
    transferred effect is exchangeable with the shuffled-pairing null, so p is uniform."""
    rng = np.random.default_rng(7)
    d, n = 6, 40
    g = rng.standard_normal(d)
    v_a = rng.standard_normal(d)
    ps = []
    for _ in range(300):
        x, y = rng.standard_normal((n, d)), rng.standard_normal((n, d))
        observed = v_a @ procrustes_map(x, y) @ g
        null = [v_a @ procrustes_map(x, y[rng.permutation(n)]) @ g for _ in range(19)]
        ps.append(p_value(observed, null))
    # discrete p on {1/20, ..., 1}: compare with the uniform law through its mean and the KS distance
    assert abs(np.mean(ps) - 0.525) < 0.05
    assert kstest(ps, "uniform").statistic < 0.12


def test_shuffled_pairing_null_rejects_when_rows_correspond():
    rng = np.random.default_rng(8)
    d, n = 6, 40
    q = _rotation(d, 9)
    g = rng.standard_normal(d)
    v_a = g @ q  # the native direction of B is g; A's is its preimage under the map q.T
    x = rng.standard_normal((n, d))
    y = x @ q.T + 0.05 * rng.standard_normal((n, d))
    observed = v_a @ procrustes_map(x, y) @ g
    null = [v_a @ procrustes_map(x, y[rng.permutation(n)]) @ g for _ in range(19)]
    assert p_value(observed, null) == pytest.approx(1 / 20)


def test_steering_concepts_do_not_change_the_profile_key():
    """The grids' cell tags hash the profile; the steering concepts are not theirs to key."""
    import dataclasses

    from saesim.config import load_profile

    profile = load_profile("offline")
    assert dataclasses.replace(profile, steering_concepts=("Time",)).key() == profile.key()
    assert dataclasses.replace(profile, seed=1).key() != profile.key()
