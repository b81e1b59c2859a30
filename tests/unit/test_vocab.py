"""Tests for saesim.vocab: one name for every key the experiments store, and one look-up for every column."""

import typing

import pandas as pd
import pytest

from saesim import vocab
from saesim.compare import match
from saesim.compare.geometry import MEASURES
from saesim.config import SLOTS, list_profiles, load_profile
from saesim.experiments.baselines import COMPARISONS, control_comparison
from saesim.experiments.grid import GRID_COLUMNS, METRICS
from saesim.experiments.sae_quality import QUALITY_COLUMNS
from tests.planted_layers import fake_record

FORBIDDEN = ("floor", "ceiling")


def every_label():
    for kind, terms in vocab.TERMS.items():
        for key, term in terms.items():
            yield f"{kind}:{key}", term.label
            yield f"{kind}:{key} (phrase)", term.phrase
    for column, text in vocab.COLUMNS.items():
        yield f"column:{column}", text
    for suffix, templates in vocab.SUFFIXES.items():
        for template in templates:
            yield f"suffix:{suffix}", template
    yield "SEED_REFERENCE", vocab.SEED_REFERENCE


class TestEveryStoredKeyHasALabel:
    def test_comparisons_of_every_profile_and_control_table(self):
        keys = set(COMPARISONS)
        for name in list_profiles():
            keys |= set(load_profile(name).comparisons())
        assert {"full_space", "sae", "seed", "control", "control_all", "raw_neuron", "shuffle_null"} <= keys
        for key in keys:
            assert vocab.label("comparison", key)
            assert vocab.phrase("comparison", key)

    def test_rules_directions_nulls_slots_and_measures(self):
        for rule in match.RULES:
            assert vocab.label("rule", rule) and vocab.phrase("rule", rule)
        for direction in typing.get_args(match.Direction):
            assert vocab.label("direction", direction)
        for null in ("shuffle", "group", "random_subset"):
            assert vocab.phrase("null", null)
        for slot in SLOTS:
            assert vocab.label("slot", slot)
        for measure in [*MEASURES, *METRICS, "svcca_authors_k"]:
            assert vocab.label("measure", measure)

    @pytest.mark.parametrize("columns", [GRID_COLUMNS, QUALITY_COLUMNS], ids=["grid", "sae_quality"])
    def test_every_stored_column_has_a_header(self, columns):
        assert {c: vocab.column_label(c) for c in columns}  # no KeyError

    def test_every_control_table_column_has_a_header(self):
        table = control_comparison(pd.DataFrame([fake_record(0, 0, 0.8, 0.75, 0.85)]))
        assert all(vocab.column_label(c) for c in table.columns)


class TestLabels:
    def test_real_values(self):
        assert vocab.label("comparison", "full_space") == "A against B"
        assert vocab.label("comparison", "seed") == "two SAEs of model A"
        assert vocab.label("comparison", "control") == "random model (authors')"
        assert vocab.label("comparison", "control_all") == "random model (every tensor)"
        assert vocab.phrase("comparison", "control_all") == "the random model (every tensor)"
        assert vocab.label("slot", "control") == vocab.label("comparison", "control")
        assert vocab.phrase("rule", "many_to_one") == "many-to-1 (each chooser keeps its best partner)"
        assert vocab.phrase("direction", "b_to_a") == "each B latent picks its best A latent"
        assert vocab.phrase("null", "group") == "hub partners permuted among their many-to-1 groups"
        assert vocab.label("measure", "linear_cka") == "linear CKA"

    def test_aliases_map_to_one_label(self):
        assert vocab.canonical("comparison", "sae") == vocab.MAIN_COMPARISON == "full_space"
        assert vocab.label("comparison", "sae") == vocab.label("comparison", "full_space")
        assert vocab.column_label("sae") == vocab.column_label("full_space") == "A against B"
        for kind, aliases in vocab.ALIASES.items():
            for alias, key in aliases.items():
                assert key in vocab.TERMS[kind] and alias not in vocab.TERMS[kind]
                assert vocab.label(kind, alias) == vocab.label(kind, key)
                assert vocab.phrase(kind, alias) == vocab.phrase(kind, key)

    @pytest.mark.parametrize("word", FORBIDDEN)
    def test_no_label_calls_a_control_a_floor_or_ceiling(self, word):
        assert [where for where, text in every_label() if word in text.lower()] == []

    def test_unknown_keys_say_where_to_add_them(self):
        with pytest.raises(KeyError, match=r"no comparison label for 'width'.*add it to the comparison terms "
                                           r"\(_COMPARISONS\) in saesim/vocab.py"):
            vocab.label("comparison", "width")
        with pytest.raises(KeyError, match=r"no rule label for 'greedy'"):
            vocab.phrase("rule", "greedy")
        with pytest.raises(ValueError, match="`kind` must be one of comparison, rule"):
            vocab.label("colour", "red")

    def test_default_is_returned_for_unknown_keys(self):
        assert vocab.label("rule", "first_index / many_to_one", default="x") == "x"
        assert vocab.phrase("rule", 3, default="3") == "3"
        assert vocab.column_label("no_such_column", default="no_such_column") == "no_such_column"


class TestColumnLabel:
    @pytest.mark.parametrize("column, header", [
        ("svcca_authors_k", "SVCCA, k = 1 (authors')"),
        ("svcca_k_x", "SVCCA kept dims (A)"),
        ("svcca_k_y", "SVCCA kept dims (B)"),
        ("svcca_authors_k_k_x", "SVCCA, k = 1 (authors') kept dims (A)"),
        ("svcca_authors_k_p", "SVCCA, k = 1 (authors') p"),
        ("svcca_p_le_05", "layer pairs with SVCCA p ≤ 0.05"),
        ("rsa_p_holm", "RSA p (Holm)"),
        ("rsa_p_bh", "RSA p (BH)"),
        ("linear_cka_null_mean", "linear CKA null mean"),
        ("svcca_subset_p", "SVCCA subset p"),
        ("svcca_excess", "SVCCA effect over null"),
        ("svcca_effect", "SVCCA effect over null"),
        ("mean_svcca", "mean SVCCA"),
        ("control_all", "random model (every tensor)"),
        ("n_pairs", "pairs kept"),
        ("kept_fraction", "fraction of choosers kept"),
        ("null_mean", "null mean"),
        ("z", "z"),
        ("p", "p"),
        ("layer_b", "B layer"),
    ])
    def test_patterns(self, column, header):
        assert vocab.column_label(column) == header

    def test_bare_columns_win_over_comparisons(self):
        # "seed" is the RNG seed of a grid table; the seed comparison is "two SAEs of model A"
        assert vocab.column_label("seed") == "seed"

    def test_unknown_column_says_where_to_add_it(self):
        with pytest.raises(KeyError, match=r"no column label for 'svcca_foo'.*add it to COLUMNS .* in saesim/vocab.py"):
            vocab.column_label("svcca_foo")

    @pytest.mark.parametrize("column, title", [
        ("svcca", "Paired SVCCA Scores"), ("rsa_null_mean", "Mean Null RSA Scores"),
        ("svcca_p_bh", "SVCCA P-Values (BH)"), ("n_pairs", "Pairs Kept"), ("n_unique_a", "Unique A Latents Kept"),
        ("n_members_b", "Concept Members in B"), ("control_all", "Random Model (every tensor)"),
    ])
    def test_titles(self, column, title):
        assert vocab.column_title(column) == title

    def test_title_case(self):
        assert vocab.title_case("latents with a partner") == "Latents With a Partner"
        assert vocab.title_case("z at peak") == "z at Peak"
        assert vocab.title_case("A against B") == "A against B"


class TestOneNameEverywhere:
    def test_pairs_read_the_same_in_every_table_and_title(self):
        from saesim.report import plots, tables

        subspace = pd.DataFrame({"layer_a": [1], "layer_b": [2], "concept": ["Time"], "n_pairs": [12],
                                 "svcca": [0.5], "svcca_null_mean": [0.3], "svcca_p": [0.01]})
        grid = pd.DataFrame({"layer_a": [1], "layer_b": [2], "n_choosers": [40], "n_pairs": [12]})
        header = vocab.column_label("n_pairs")
        assert header in tables.concept_table(subspace, layer_a=1, layer_b=2, metrics="svcca").columns
        assert header in tables.counts_table(grid).columns
        assert f"{header} (authors' paper)" in tables.authors_table({"n_pairs": {"Time": 12}}).columns
        assert plots.panel_title("n_pairs") == vocab.title_case(header)


def test_layer_pair_is_the_one_name_of_a_layer_pair():
    import numpy as np

    assert vocab.layer_pair(17, 29) == "A17–B29"
    assert vocab.layer_pair(np.int64(3), 6.0) == "A3–B6"
