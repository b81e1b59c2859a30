"""Tests for saesim.compare.concepts: verbatim lists and both membership rules."""

import numpy as np
import pytest

from saesim.compare.concepts import CONCEPTS, CONTROL_CONCEPT, concept_members, members
from saesim.compare.filters import TopTokens


def table(rows, windows, active=None):
    strings = np.array(rows, dtype=object)
    ids = np.where(strings == "", -1, 1).astype(np.int64)
    active = ids >= 0 if active is None else np.asarray(active, dtype=bool)
    return TopTokens(strings=strings, ids=ids, active=active), np.array(windows, dtype=object)


class TestConceptLists:
    def test_verbatim_sizes_and_duplicates(self):
        assert list(CONCEPTS) == ["Time", "Calendar", "People/Roles", "Nature", "Emotions", "MonthNames",
                                  "Countries", "Biology"]
        assert len(CONCEPTS["MonthNames"]) == 12 and len(CONCEPTS["Countries"]) == 19
        assert CONCEPTS["Time"].count("soon") == 2 and CONCEPTS["People/Roles"].count("chief") == 2
        assert len(CONCEPTS["Biology"]) == 29 and len(CONCEPTS["Emotions"]) == 49
        assert not set(CONTROL_CONCEPT) & {w.lower() for words in CONCEPTS.values() for w in words}


class TestMembers:
    def test_token_and_window_must_both_match(self):
        top, windows = table(
            [[" day", " cat"], [" day", " day"], [" dog", " dog"]],
            [["the day was", "a cat sat"], ["dayday", "today"], ["a day dog", "dog"]],
        )
        np.testing.assert_array_equal(members(top, windows, ["day"]), [0])

    def test_compat_strips_authors_punctuation_only(self):
        top, windows = table([[" day"], [" day"]], [["one day, then"], ["one (day) then"]])
        np.testing.assert_array_equal(members(top, windows, ["day"], compat=True), [0])
        np.testing.assert_array_equal(members(top, windows, ["day"]), [0, 1])

    def test_capitalised_keywords_match(self):
        top, windows = table([[" January"], [" Japan"]], [["in January 2010"], ["to Japan\\n"]])
        np.testing.assert_array_equal(members(top, windows, CONCEPTS["MonthNames"], compat=True), [0])
        np.testing.assert_array_equal(members(top, windows, CONCEPTS["Countries"], compat=True), [1])
        np.testing.assert_array_equal(members(top, windows, CONCEPTS["Countries"]), [1])

    def test_corrected_ignores_non_firing_examples(self):
        top, windows = table([[" day", " cat"]], [["a day", "a cat"]], active=[[False, True]])
        assert members(top, windows, ["day"]).size == 0
        np.testing.assert_array_equal(members(top, windows, ["day"], compat=True), [0])

    def test_wordpiece_token(self):
        top, windows = table([["##rain"]], [["heavy rain fell"]])
        np.testing.assert_array_equal(members(top, windows, ["rain"]), [0])

    def test_sorted_and_deterministic(self):
        top, windows = table([[" sun"], [" moon"], [" sun"]], [["the sun"], ["the moon"], ["a sun"]])
        result = concept_members(top, windows)
        np.testing.assert_array_equal(result["Nature"], [0, 1, 2])
        assert result["Time"].size == 0 and "Control" in result

    def test_errors(self):
        top, windows = table([[" sun"]], [["the sun"]])
        with pytest.raises(ValueError, match="`windows` has shape"):
            members(top, np.array([["a", "b"]], dtype=object), ["sun"])
        with pytest.raises(ValueError, match="`keywords` is empty"):
            members(top, windows, [])
