"""Tests for saesim.validation's count check, check_positive_int."""

from __future__ import annotations

import numpy as np
import pytest

from saesim.validation import NotAnIntegerError, check_positive_int


class TestCheckPositiveInt:
    @pytest.mark.parametrize("value", [1, 7, np.int64(3), np.uint8(2), 10**12])
    def test_integers_pass_and_come_back_as_int(self, value):
        out = check_positive_int(value, "n")
        assert out == value and type(out) is int

    @pytest.mark.parametrize("minimum, value", [(0, 0), (3, 3), (-2, -2), (3, 4)])
    def test_the_minimum_itself_passes(self, minimum, value):
        assert check_positive_int(value, "n", minimum=minimum) == value

    @pytest.mark.parametrize("minimum, value, match", [
        (1, 0, r"^`n_perm` must be a positive integer; got 0\.$"),
        (1, -5, r"^`n_perm` must be a positive integer; got -5\.$"),
        (0, -1, r"^`n_perm` must be a non-negative integer; got -1\.$"),
        (3, 2, r"^`n_perm` must be an integer >= 3; got 2\.$"),
    ])
    def test_too_small_is_a_value_error_naming_argument_value_and_bound(self, minimum, value, match):
        with pytest.raises(ValueError, match=match) as info:
            check_positive_int(value, "n_perm", minimum=minimum)
        assert not isinstance(info.value, TypeError)

    @pytest.mark.parametrize("value, type_name", [
        (True, "bool"), (False, "bool"), (2.0, "float"), (2.5, "float"), ("3", "str"), (None, "NoneType"),
        (np.float64(4.0), "float64"),
    ])
    def test_non_integers_are_a_type_error(self, value, type_name):
        with pytest.raises(TypeError, match=rf"^`k` must be a positive integer; got .* \({type_name}\)\.$"):
            check_positive_int(value, "k")

    def test_the_type_error_is_also_a_value_error(self):
        # the per-function checks it replaced raised ValueError for 2.0 or True; callers that caught it still do
        assert issubclass(NotAnIntegerError, TypeError) and issubclass(NotAnIntegerError, ValueError)
        with pytest.raises(ValueError, match="`k` must be a positive integer"):
            check_positive_int(True, "k")

    def test_the_fix_ends_both_messages(self):
        with pytest.raises(ValueError, match=r"^`n_draw` must be a positive integer; got 0\. Use e\.g\. n_draw=100\.$"):
            check_positive_int(0, "n_draw", fix="Use e.g. n_draw=100.")
        with pytest.raises(TypeError, match=r"got 1\.5 \(float\)\. Use e\.g\. n_draw=100\.$"):
            check_positive_int(1.5, "n_draw", fix="Use e.g. n_draw=100.")


class TestCallSitesShareTheCheck:
    """A few public functions, one per layer, reject the same inputs with the same message."""

    def test_library_functions(self):
        import scipy.sparse as sp

        from saesim.compare.corr import best_partners
        from saesim.compare.nulls import permutation_test
        from saesim.extract.tokens import top_activations

        codes = sp.csr_matrix(np.eye(4))
        with pytest.raises(ValueError, match=r"^`k` must be a positive integer; got 0\.$"):
            top_activations(codes, k=0)
        with pytest.raises(TypeError, match=r"^`block_nnz` must be a positive integer; got True \(bool\)\.$"):
            top_activations(codes, k=1, block_nnz=True)
        with pytest.raises(TypeError, match=r"^`m` must be a positive integer; got 2\.0 \(float\)\."):
            best_partners(codes, codes, m=2.0)
        rng = np.random.default_rng(0)
        x, y = rng.standard_normal((10, 3)), rng.standard_normal((10, 3))
        with pytest.raises(ValueError, match=r"^`n_perm` must be a positive integer; got 0\. Use e\.g\."):
            permutation_test(x, y, "rsa", n_perm=0)

    def test_profiles_keep_profile_error(self):
        from saesim.config import NullSpec, ProfileError

        with pytest.raises(ProfileError, match=r"^`n_perm` must be a positive integer; got 0\.$"):
            NullSpec(n_perm=0)
        with pytest.raises(ProfileError, match=r"^`n_perm` must be a positive integer; got '5' \(str\)\.$"):
            NullSpec(n_perm="5")
