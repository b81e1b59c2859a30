"""Tests for saesim.report.prose.findings: the findings summary the findings notebook reads."""

import pandas as pd
import pytest

from saesim.report import prose


def grid_records(excess, *, null=0.01, z=None, layers_a=(0, 1, 2), layers_b=(0, 1, 2)):
    """A tidy grid with RSA = null + excess[i][j] and a tail p small where the excess is large."""
    rows = []
    for i, la in enumerate(layers_a):
        for j, lb in enumerate(layers_b):
            e = excess[i][j]
            rows.append({"layer_a": la, "layer_b": lb, "rsa": null + e, "rsa_null_mean": null,
                         "rsa_z": e / 0.005 if z is None else z, "rsa_p": 0.001 if e > 0.02 else 0.5,
                         "rsa_p_tail": 1e-6 if e > 0.02 else 0.5, "n_pairs": 500, "n_perm": 999})
    return pd.DataFrame(rows)


class TestFindings:
    def test_sentences_follow_a_planted_middle_peak(self):
        main = grid_records([[0.03, 0.04, 0.01], [0.04, 0.09, 0.03], [0.01, 0.03, 0.03]])
        seed = grid_records([[0.2, 0.0, 0.0], [0.0, 0.2, 0.0], [0.0, 0.0, 0.2]])
        control = grid_records([[0.0, 0.0, 0.0]] * 3)
        control_all = grid_records([[-0.01, 0.0, 0.0]] * 3)
        lines, table = prose.findings({"full_space": main, "seed": seed, "control": control,
                                        "control_all": control_all}, "rsa", depth=((0, 1, 2), (0, 1, 2)))
        text = " ".join(lines)
        assert "7 of 9 layer pairs lie above their null" in text
        assert "7 beat every one of their 999 permutations" in text and "cannot reject" not in text
        assert "largest +0.090 at A layer 1 – B layer 1" in text
        assert "relative depth 0.50 in A and 0.50 in B; 1 of 9 layer pairs reach at least 90% of it" in text
        assert "described, not tested" in text
        assert "the agreement two SAEs of one model reach. The cross-model median excess is 15% of it." in text
        assert "The random model (authors') in A's place: 0 of 9 layer pairs lie above their null" in text
        assert "A against B exceeds it in 9 of the 9 layer pairs" in text
        assert "by 0.000 against resampling every tensor" in text  # never a signed zero
        assert list(table["comparison"]) == ["full_space", "seed", "control", "control_all"]

    def test_an_edge_peak_and_no_controls_are_said_as_they_are(self):
        main = grid_records([[0.09, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
        lines, _ = prose.findings({"full_space": main}, "rsa", depth=((0, 1, 2), (0, 1, 2)))
        assert "1 of 9 layer pairs lie above their null" in lines[0]
        assert "relative depth 0.00 in A and 0.00 in B" in lines[1] and len(lines) == 2

    def test_tail_p_values_let_holm_reject_beyond_the_permutation_floor(self):
        """100 permutations: every permutation p is 1/101 and Holm over 9 could never reject; the tail
        p-values (1e-6 here) let the cells that beat every draw be called above their null."""
        main = grid_records([[0.09, 0.05, 0.05]] * 3).assign(n_perm=100, rsa_p=1 / 101)
        line = prose.findings({"full_space": main}, "rsa")[0][0]
        assert "9 of 9 layer pairs lie above their null (Holm over the 9 layer pairs, alpha 0.05)" in line
        assert "9 beat every one of their 100 permutations" in line
        weak = main.assign(rsa_p_tail=1 / 101)  # no tail: the permutation floor
        assert "0 of 9 layer pairs lie above their null" in prose.findings({"full_space": weak}, "rsa")[0][0]

    def test_needs_the_main_comparison(self):
        with pytest.raises(ValueError, match="`frames` needs the 'full_space' comparison"):
            prose.findings({"seed": grid_records([[0.0] * 3] * 3)})


class TestSummary:
    def test_effects_shares_and_what_does_not_hold_up(self):
        main = grid_records([[0.04, 0.04, 0.04], [0.04, 0.04, 0.04], [0.04, 0.04, 0.08]])
        seed = grid_records([[0.2, 0.0, 0.0], [0.0, 0.2, 0.0], [0.0, 0.0, 0.2]])
        control = grid_records([[0.03, 0.03, 0.03]], layers_a=(2,))  # close to the real model on its cells
        lines = prose.summary_lines({"full_space": main, "seed": seed, "control": control}, ["rsa"])
        assert lines[0].startswith("**RSA**: A against B exceeds its null by a median +0.040 (largest +0.080 at "
                                   "A2–B2); 9 of 9 layer pairs lie above their null.")
        assert "That is 20% of what two SAEs of model A reach at the same layer (+0.200)." in lines[0]
        # the control is compared on the layer pairs it covers (A2 against B0, B1, B2: median 0.04)
        assert "reaches +0.030, 75% of A against B's +0.040 on the same 3 layer pairs" in lines[0]
        assert lines[-1].startswith("**What does not hold up.**")
        assert "agree far less than two SAEs of one model do (20% of their effect)" in lines[-1]
        assert "comes close to the real model (75% of its effect)" in lines[-1]

    def test_a_clean_result_says_nothing_fails_and_no_pair_above_is_said(self):
        main = grid_records([[0.1] * 3] * 3)
        seed = grid_records([[0.1, 0.0, 0.0], [0.0, 0.1, 0.0], [0.0, 0.0, 0.1]])
        lines = prose.summary_lines({"full_space": main, "seed": seed}, ["rsa"])
        assert "100% of what two SAEs" in lines[0] and "Nothing by these rules" in lines[-1]
        flat = grid_records([[0.0] * 3] * 3)
        assert "no layer pair lies above its null" in prose.summary_lines({"full_space": flat}, ["rsa"])[-1]
