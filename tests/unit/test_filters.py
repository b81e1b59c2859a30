"""Tests for saesim.compare.filters on hand-built top-token tables."""

import numpy as np
import pytest

from saesim.compare.filters import (
    JUNK_LISTS,
    TopTokens,
    correlation_mask,
    is_nonconcept_token,
    junk_overlap_mask,
    normalise_token,
)


def top_tokens(rows, active=None):
    """TopTokens from lists of strings; ids are distinct per string, '' = padding (-1)."""
    strings = np.array(rows, dtype=object)
    vocab = {s: i for i, s in enumerate(sorted({s for row in rows for s in row}))}
    ids = np.array([[vocab[s] if s != "" else -1 for s in row] for row in rows], dtype=np.int64)
    if active is None:
        active = ids >= 0
    return TopTokens(strings=strings, ids=ids, active=np.asarray(active, dtype=bool))


class TestJunkOverlapMaskCompat:
    def test_exact_string_rules(self):
        top_a = top_tokens([[" day", " day", " week", " day", " night"],   # 0: clean
                            [" day", ".", " day", " day", " day"],          # 1: has junk "."
                            ["Day", "Day", "Day", "Day", "Day"]])           # 2: clean, capitalised
        top_b = top_tokens([[" day", " day", " day", " day", " day"],
                            ["day", "day", "day", "day", "day"],           # no leading space
                            [" week", " week", " week", " week", " week"]])
        a = np.array([0, 1, 0, 2, 0])
        b = np.array([0, 0, 1, 0, 2])
        keep = junk_overlap_mask(a, b, top_a, top_b, compat=True)
        # (0,0) share " day"; (1,0) junk; (0,1) " day" != "day"; (2,0) "Day" != " day"; (0,2) share " week"
        np.testing.assert_array_equal(keep, [True, False, False, False, True])

    def test_padding_counts_as_empty_string_junk(self):
        # A latent with fewer than 5 positions decodes "" for padding: in the Gemma list.
        top_a = top_tokens([[" cat", " cat", "", "", ""]], active=[[True, True, False, False, False]])
        top_b = top_tokens([[" cat"] * 5])
        assert not junk_overlap_mask([0], [0], top_a, top_b, compat=True)[0]
        assert junk_overlap_mask([0], [0], top_a, top_b, compat=True, junk_list=("<pad>",))[0]

    def test_authors_lists_are_verbatim(self):
        assert JUNK_LISTS["authors_pythia"] == (
            ".", "\\n", "\n", "", " ", "-", "<bos>", ",", "!", "?", "<|endoftext|>", "|bos|")
        assert "<pad>" in JUNK_LISTS["authors_gemma"] and "<pad>" not in JUNK_LISTS["authors_pythia"]
        assert "\n\n" not in JUNK_LISTS["authors_gemma"]  # the gap the corrected rule closes

    def test_double_newline_slips_through_compat_but_not_corrected(self):
        top_a = top_tokens([["\n\n", " the", " the", " the", " the"]])
        top_b = top_tokens([[" the"] * 5])
        assert junk_overlap_mask([0], [0], top_a, top_b, compat=True)[0]
        assert not junk_overlap_mask([0], [0], top_a, top_b)[0]


class TestJunkOverlapMaskCorrected:
    def test_normalised_overlap(self):
        top_a = top_tokens([[" Day", "day", " DAY", "days", " night"]])
        top_b = top_tokens([["day", "day", "day", "day", "day"]])
        assert junk_overlap_mask([0], [0], top_a, top_b)[0]

    def test_special_ids_are_junk(self):
        top_a = top_tokens([["[CLS]", " river", " river", " river", " river"]])
        top_b = top_tokens([[" river"] * 5])
        cls_id = int(top_a.ids[0, 0])
        assert junk_overlap_mask([0], [0], top_a, top_b)[0]
        assert not junk_overlap_mask([0], [0], top_a, top_b, special_ids=[cls_id])[0]

    def test_only_firing_positions_count(self):
        # The junk token sits at a zero-valued position: ignored in corrected mode.
        top_a = top_tokens([[" sun", " sun", " sun", ".", "."]], active=[[True, True, True, False, False]])
        top_b = top_tokens([[" sun"] * 5])
        assert junk_overlap_mask([0], [0], top_a, top_b)[0]
        assert not junk_overlap_mask([0], [0], top_a, top_b, compat=True)[0]

    def test_min_active(self):
        top_a = top_tokens([[" moon", "", "", "", ""]])
        top_b = top_tokens([[" moon"] * 5])
        assert not junk_overlap_mask([0], [0], top_a, top_b, min_active=2)[0]
        assert junk_overlap_mask([0], [0], top_a, top_b, min_active=1)[0]

    def test_require_overlap_off(self):
        top_a = top_tokens([[" moon"] * 5])
        top_b = top_tokens([[" sun"] * 5])
        assert not junk_overlap_mask([0], [0], top_a, top_b)[0]
        assert junk_overlap_mask([0], [0], top_a, top_b, require_overlap=False)[0]

    def test_filter_really_removes_pairs(self):
        # Regression for the authors' for-else bug: a junk pair must not come back.
        top_a = top_tokens([[" ice"] * 5, [","] * 5])
        top_b = top_tokens([[" ice"] * 5, [" ice"] * 5])
        keep = junk_overlap_mask([0, 1], [0, 1], top_a, top_b)
        np.testing.assert_array_equal(keep, [True, False])

    def test_bad_inputs(self):
        top = top_tokens([[" a"] * 5])
        with pytest.raises(ValueError, match=r"`b` holds latent indices outside \[0, 1\)"):
            junk_overlap_mask([0], [3], top, top)
        with pytest.raises(ValueError, match="must be 1-D and of equal length"):
            junk_overlap_mask([0, 0], [0], top, top)
        with pytest.raises(ValueError, match=r"`junk_list` 'nope' is unknown"):
            junk_overlap_mask([0], [0], top, top, junk_list="nope")
        with pytest.raises(ValueError, match="must share one"):
            TopTokens(strings=np.array([["a"]], dtype=object), ids=np.zeros((1, 2), int), active=np.ones((1, 1), bool))


class TestTokenHelpers:
    @pytest.mark.parametrize("raw, norm", [(" Day", "day"), ("##ing", "ing"), ("  New \n York ", "new york"),
                                           ("ﬁre", "fire")])
    def test_normalise_token(self, raw, norm):
        assert normalise_token(raw) == norm

    @pytest.mark.parametrize("token, junk", [(".", True), ("\n\n", True), ("", True), (" --", True),
                                             ("...", True), ("’", True), (" day", False), ("3", False)])
    def test_is_nonconcept_token(self, token, junk):
        assert is_nonconcept_token(token, 7) is junk

    def test_special_id(self):
        assert is_nonconcept_token("word", 101, special_ids={101})


class TestCorrelationMask:
    def test_strict_cut_and_nan(self):
        np.testing.assert_array_equal(correlation_mask([0.1, 0.11, np.nan, -1.0, 0.9]), [False, True, False, False, True])

    def test_bad_r_min(self):
        with pytest.raises(ValueError, match="`r_min` must be a finite number"):
            correlation_mask([0.5], r_min=np.nan)


def test_filter_sets_are_memoised_on_the_top_tokens():
    top_a = top_tokens([["cat", "cats", ""], [".", "dog", "dog"], ["sun", "moon", "star"]])
    top_b = top_tokens([["cat", "kitten", "cat"], ["dog", "pup", "dog"], ["Moon", "sky", "sun"]])
    a, b = np.array([0, 1, 2, 2]), np.array([0, 1, 2, 0])
    first = junk_overlap_mask(a, b, top_a, top_b, min_active=1)
    assert len(top_a.memo) == 1 and len(top_b.memo) == 1
    again = junk_overlap_mask(a, b, top_a, top_b, min_active=1)
    fresh = junk_overlap_mask(a, b, top_tokens([["cat", "cats", ""], [".", "dog", "dog"], ["sun", "moon", "star"]]),
                              top_b, min_active=1)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, fresh)
    np.testing.assert_array_equal(first, [True, False, True, False])
    junk_overlap_mask(a, b, top_a, top_b, min_active=3)  # other settings, another entry
    assert len(top_a.memo) == 2
