"""The one vocabulary: every name a reader sees for a comparison, rule, direction, null, measure, slot or column.

Tables, captions, legends, verdicts and findings read their words from here, so a page, a
caption and a table never spell the same thing two ways (house rule 17). Nothing here
changes a stored value: the tidy tables and cache keys keep their keys; this module only
says how each key reads.

* :data:`TERMS` — for each kind (``"comparison"``, ``"rule"``, ``"direction"``, ``"null"``,
  ``"measure"``, ``"slot"``) the :class:`Term` of every key: a short ``label`` for tables,
  legends and headers, and a ``phrase`` for running text.
* :data:`ALIASES` — other keys stored for the same thing (one place): the main comparison's
  canonical key is :data:`MAIN_COMPARISON` (``"full_space"``, as
  :meth:`saesim.config.Profile.comparisons` and ``full_space.parquet`` name it); a
  :func:`saesim.experiments.baselines.control_comparison` table stores it as ``"sae"``.
* :data:`COLUMNS`, :data:`SUFFIXES`, :data:`PREFIXES` — human names of tidy-table columns,
  the bare ones and the ``<measure>_<suffix>`` / ``<prefix>_<measure>`` patterns.
* :func:`label`, :func:`phrase`, :func:`canonical`, :func:`column_label`,
  :func:`column_title` — the look-ups. An unknown key raises :class:`KeyError` naming the
  key and the table of this file to add it to; pass ``default=`` where any string may come.

The seed control (model A against its second SAE set) is *the agreement two SAEs of one
model reach*: a reference the cross-model score is read against. Its labels say what it is,
never "floor" or "ceiling".
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ALIASES",
    "COLUMNS",
    "KINDS",
    "MAIN_COMPARISON",
    "PREFIXES",
    "SEED_REFERENCE",
    "SUFFIXES",
    "TERMS",
    "Term",
    "and_join",
    "canonical",
    "column_label",
    "column_title",
    "label",
    "phrase",
    "title_case",
]


def and_join(items) -> str:
    """Items as a sentence lists them: ``"a"``, ``"a and b"``, ``"a, b and c"`` (``""`` for none).

    Examples
    --------
    >>> and_join(["RSA", "SVCCA", "CKA"])
    'RSA, SVCCA and CKA'
    """
    items = [str(item) for item in items]
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)


@dataclass(frozen=True)
class Term:
    """How one key reads.

    Attributes
    ----------
    label : str
        Short name for tables, legends and column headers (``"random model (authors')"``).
    phrase : str
        The name inside a sentence, article included where English needs one
        (``"the random model (authors')"``); lower case, so a sentence start capitalises it.
    """

    label: str
    phrase: str


MAIN_COMPARISON = "full_space"
"""Canonical key of the main comparison, model A's SAE latents against model B's."""

_COMPARISONS = {
    MAIN_COMPARISON: Term("A against B", "A against B"),
    "seed": Term("two SAEs of model A", "two SAEs of model A"),
    "control": Term("random model (authors')", "the random model (authors')"),
    "control_all": Term("random model (every tensor)", "the random model (every tensor)"),
    "raw_neuron": Term("raw neurons", "the raw neurons"),
    "shuffle_null": Term("shuffled null", "the shuffled null"),
}

SEED_REFERENCE = "the agreement two SAEs of one model reach"
"""What the seed control is, for sentences that explain it."""

_RULES = {
    "many_to_one": Term("many-to-1", "many-to-1 (each chooser keeps its best partner)"),
    "first_index": Term("1-1 (first occurrence)", "1-1 by first occurrence (the paper's)"),
    "max_corr": Term("1-1 (best correlation)", "1-1 keeping the best-correlated chooser"),
    "mutual": Term("mutual nearest neighbours", "mutual nearest neighbours"),
    "hungarian": Term("1-1 (Hungarian)", "1-1 optimal assignment (Hungarian)"),
}

_DIRECTIONS = {
    "b_to_a": Term("B picks A", "each B latent picks its best A latent"),
    "a_to_b": Term("A picks B", "each A latent picks its best B latent"),
}

_NULLS = {
    "shuffle": Term("shuffled null", "shuffled pairings"),
    "group": Term("group null", "hub partners permuted among their many-to-1 groups"),
    "random_subset": Term("random-subset null", "random unpaired subsets"),
}

_MEASURES = {
    "svcca": Term("SVCCA", "SVCCA"),
    "svcca_authors_k": Term("SVCCA, k = 1 (authors')", "the authors' SVCCA (k = 1)"),
    "pwcca": Term("PWCCA", "PWCCA"),
    "rsa": Term("RSA", "RSA"),
    "linear_cka": Term("linear CKA", "linear CKA"),
    "procrustes": Term("Procrustes", "Procrustes similarity"),
}

_SLOTS = {
    "a": Term("A", "model A"),
    "b": Term("B", "model B"),
    "seed": Term("A, second SAE set", "model A's second SAE set"),
    "control": _COMPARISONS["control"],
    "control_all": _COMPARISONS["control_all"],
}

_STEERING_MAPS = {
    "native": Term("B's own vector", "B's own steering vector (the same recipe run in B)"),
    "procrustes": Term("Procrustes, paired decoder rows", "an orthogonal map fitted on the paired decoder rows"),
    "lstsq": Term("least squares, paired decoder rows", "a ridge least-squares map fitted on the paired decoder rows"),
    "activation": Term("least squares, token activations",
                       "a ridge least-squares map fitted on the aligned token activations"),
    "shuffled": Term("Procrustes, shuffled pairings", "an orthogonal map fitted on shuffled pairings"),
    "random_orthogonal": Term("random orthogonal map", "a random orthogonal map"),
    "random_vector": Term("random vector in B", "a random direction of B's residual stream"),
}

_JUNK_LISTS = {
    "authors_pythia": Term("authors' Pythia list", "the authors' non-concept list for Pythia"),
    "authors_gemma": Term("authors' Gemma list", "the authors' non-concept list for Gemma"),
}

_RECIPES = {
    "mean_diff": Term("mean difference", "the mean activation of the concept's tokens minus that of the rest"),
    "decoder_sum": Term("decoder sum", "the sum of the decoder rows of the latents assigned to the concept"),
}

_FRONTIER_AXES = {
    "tokens": Term("training tokens varied", "fewer training tokens"),
    "epochs": Term("epochs varied", "more epochs"),
    "width": Term("width varied", "a narrower SAE"),
    "profile": Term("the profile's recipe", "the profile's recipe"),
    "k": Term("k varied", "another k"),
    "optimizer": Term("optimizer varied", "another optimizer"),
    "lr": Term("learning rate varied", "another learning rate"),
    "normalise": Term("inputs scaled", "inputs scaled to a mean norm of √d"),
}

TERMS: dict[str, dict[str, Term]] = {
    "comparison": _COMPARISONS,
    "rule": _RULES,
    "direction": _DIRECTIONS,
    "null": _NULLS,
    "measure": _MEASURES,
    "slot": _SLOTS,
    "steering_map": _STEERING_MAPS,
    "recipe": _RECIPES,
    "junk_list": _JUNK_LISTS,
    "frontier_axis": _FRONTIER_AXES,
}
"""Kind -> key -> :class:`Term`. The keys are the values stored in tidy tables and settings."""

KINDS = tuple(TERMS)
"""The kinds of :data:`TERMS`."""

ALIASES: dict[str, dict[str, str]] = {
    "comparison": {"sae": MAIN_COMPARISON},
}
"""Kind -> other stored key -> canonical key. ``"sae"`` is the main comparison's key in the
``comparison`` column of :func:`saesim.experiments.baselines.control_comparison` tables."""

COLUMNS: dict[str, str] = {
    # where and how a cell was computed
    "profile": "profile", "layer_a": "A layer", "layer_b": "B layer", "layer": "layer", "rule": "rule",
    "direction": "direction", "compat": "authors' mode (compat)", "concept": "concept", "skipped": "skipped",
    "comparison": "comparison", "metric": "measure", "measure": "measure", "baseline_rule": "baseline's rule",
    "null_kind": "null", "n_perm": "permutations", "seed": "seed", "subset_null_draws": "random-subset draws",
    "svcca_policy": "SVCCA dimension policy", "policy": "SVCCA dimension policy", "r_min": "r cut",
    "top_k": "top tokens per latent", "junk_filter": "junk filter", "junk_list": "junk list",
    "require_overlap": "shared top token required", "n_docs": "documents", "fraction": "share of the documents",
    # counts, in pipeline order
    "n_tokens": "tokens", "n_latents_a": "A latents", "n_latents_b": "B latents", "dead_a": "dead A latents",
    "dead_b": "dead B latents", "n_choosers": "choosers", "n_with_partner": "with partner",
    "n_unique_a_before": "unique A latents before filters", "n_after_junk": "after junk filter",
    "n_after_1to1": "after 1-1", "n_pairs": "pairs kept", "n_unique_a": "unique A latents kept",
    "n_members_a": "concept members in A", "n_members_b": "concept members in B",
    "kept_fraction": "fraction of choosers kept",
    # correlations of the pairs
    "mean_best_r": "mean correlation before filtering", "mean_r_filtered": "mean correlation after filtering",
    "mean_r": "mean correlation of pairs", "top_hubs": "top hubs",
    # one score and its null (control_comparison and comparison_table rows)
    "value": "score", "score": "score", "ci_low": "CI low", "ci_high": "CI high", "null_mean": "null mean",
    "null_std": "null sd", "p": "p", "p_holm": "p (Holm)", "p_bh": "p (BH)", "p_tail": "p (tail fit)", "z": "z",
    "family_size": "tests in the family", "above": "above null",
    "effect": "effect over null", "excess": "effect over null", "k_x": "kept dims (A)", "k_y": "kept dims (B)",
    "seed_share": "share of two SAEs' effect",
    # findings summary
    "what": "comparison", "cells": "layer pairs", "cells_above_null": "above null (Holm)",
    "cells_beating_every_draw": "above every permutation", "cells_z_above_3": "z > 3",
    "median_excess": "median effect over null", "max_excess": "largest effect over null",
    "peak_layer_a": "peak A layer", "peak_layer_b": "peak B layer", "peak_z": "z at peak",
    "median_pairs": "median pairs kept",
    # SAE quality (saesim.experiments.sae_quality)
    "slot": "SAE", "model": "model", "width": "latents", "k": "k", "train_tokens": "training tokens",
    "epochs": "epochs", "n_heldout": "held-out tokens", "fvu_heldout": "held-out FVU", "fvu": "FVU",
    "flag": "flag", "dead_fraction": "dead", "mean_l0": "L0", "pw_mcc": "PW-MCC", "shared_dec": "shared",
    "shared_dec_enc": "shared (decoder and encoder)", "chance_pw_mcc": "PW-MCC by chance",
    "chance_shared_dec": "shared by chance", "act_mcc": "activation MCC", "shared_act": "shared by activation",
    "partner": "partner SAE",
    # the SAE frontier (saesim.experiments.sae_frontier; its points' width is num_latents)
    "axis": "what varies", "num_latents": "latents", "token_steps": "token-steps (tokens × epochs)",
    "seconds": "seconds per SAE", "tokens_per_s": "token-steps per second", "n_seeds": "seeds",
    "optimizer": "optimizer", "lr": "learning rate", "normalise": "inputs scaled", "change": "recipe change",
    # the explorer's pair table (saesim.report.explore.pair_table; its frame is keyed by these names)
    "A latent": "A latent", "B latent": "B latent", "r": "r", "r rank": "rank by r", "stage": "stage",
    "why": "why dropped", "A top tokens": "A top tokens", "B top tokens": "B top tokens",
    "A contexts": "A contexts", "B contexts": "B contexts", "A freq": "A firing rate (%)",
    "B freq": "B firing rate (%)", "A concepts": "A concepts", "B concepts": "B concepts",
    "links": "Neuronpedia",
    # the explorer's seed floor (saesim.report.explore.seed_floor; its fractions are headed in report.pages)
    "seed_n_shared": "shared latents, cos >= 0.7", "seed_n_shared_r": "shared latents, r >= 0.7",
    "seed_n_x": "A latents", "seed_n_y": "seed SAE latents",
    # steering transfer (saesim.experiments.steering; its "effect" column is shown as steer_effect)
    "recipe": "recipe", "map": "map", "alpha": "scale (x residual norm)", "steer_effect": "effect on B (nats)",
    "side_effect": "side effect (KL, nats)", "efficiency": "transfer efficiency",
    "native_effect": "B's own vector's effect (nats)", "null_median": "shuffled-pairing null (median)",
    "n_concept_rows": "concept tokens (held-in)", "n_prompts": "prompts", "prompt_keywords": "keywords in prompts",
}
"""Bare tidy-table column -> header. Measure columns and ``<measure>_<suffix>`` go through
:data:`TERMS` and :data:`SUFFIXES` instead; a column that names a comparison (a table pivoted
by comparison) reads as the comparison's label."""

SUFFIXES: dict[str, tuple[str, str]] = {
    "subset_null_mean": ("{} subset-null mean", "Mean Random-Subset {} Scores"),
    "subset_p": ("{} subset p", "{} P-Values (Random-Subset Null)"),
    "subset_effect": ("{} effect over subset null", "{} minus Random-Subset Null Mean"),
    "null_mean": ("{} null mean", "Mean Null {} Scores"),
    "null_std": ("{} null sd", "Null {} SD"),
    "p_holm": ("{} p (Holm)", "{} P-Values (Holm)"),
    "p_bh": ("{} p (BH)", "{} P-Values (BH)"),
    "p_le_05": ("layer pairs with {} p ≤ 0.05", "Layer Pairs With {} p ≤ 0.05"),
    "p_tail": ("{} p (tail fit)", "{} P-Values (Tail Fit)"),
    "p": ("{} p", "{} P-Values"),
    "z": ("{} z", "{} z-Scores vs Null"),
    "effect_z": ("{} z", "{} z-Scores vs Null"),
    "effect_ci_low": ("{} effect over null, CI low", "{} minus Null Mean, CI Low"),
    "effect_ci_high": ("{} effect over null, CI high", "{} minus Null Mean, CI High"),
    "effect": ("{} effect over null", "{} minus Null Mean"),
    "excess": ("{} effect over null", "{} minus Null Mean"),
    "ci_low": ("{} CI low", "{} CI Low"),
    "ci_high": ("{} CI high", "{} CI High"),
    "k_x": ("{} kept dims (A)", "{} Dimensions Kept (A)"),
    "k_y": ("{} kept dims (B)", "{} Dimensions Kept (B)"),
}
"""``<measure>_<suffix>`` -> (header template, panel-title template); ``{}`` is the measure's label.
The panel titles are the paper's ("Mean Null SVCCA Scores")."""

PREFIXES: dict[str, str] = {"mean": "mean {}", "median": "median {}", "max": "largest {}", "min": "smallest {}"}
"""``<prefix>_<measure>`` (a summary over cells, e.g. ``mean_svcca``) -> header template."""

_MEASURE_TITLE = "Paired {} Scores"
_SMALL_WORDS = frozenset({"a", "against", "an", "and", "at", "by", "for", "in", "of", "or", "per", "the", "to", "vs"})
_MISSING = object()


def layer_pair(layer_a, layer_b) -> str:
    """A layer pair as every page, table and figure names it: ``"A17–B29"``."""
    return f"A{int(layer_a)}–B{int(layer_b)}"


def canonical(kind: str, key: str) -> str:
    """The canonical key of ``key`` (an alias resolved; a canonical key returned as is).

    Examples
    --------
    >>> canonical("comparison", "sae")
    'full_space'
    """
    _check_kind(kind)
    return ALIASES.get(kind, {}).get(key, key)


def label(kind: str, key: str, *, default=_MISSING) -> str:
    """The short name of ``key`` (tables, legends, headers).

    Parameters
    ----------
    kind : {"comparison", "rule", "direction", "null", "measure", "slot"}
    key : str
        A stored key or one of its :data:`ALIASES`.
    default : str, optional
        Returned for an unknown key; without it an unknown key raises.

    Raises
    ------
    KeyError
        If ``key`` is unknown and no ``default`` is given (the message says where to add it).
    ValueError
        If ``kind`` is not one of :data:`KINDS`.

    Examples
    --------
    >>> label("comparison", "control_all")
    'random model (every tensor)'
    >>> label("comparison", "sae") == label("comparison", "full_space")
    True
    """
    found = _term(kind, key, default)
    return found.label if isinstance(found, Term) else found


def phrase(kind: str, key: str, *, default=_MISSING) -> str:
    """The name of ``key`` inside a sentence (lower case; article included where needed).

    Same parameters as :func:`label`.

    Examples
    --------
    >>> phrase("rule", "first_index")
    "1-1 by first occurrence (the paper's)"
    """
    found = _term(kind, key, default)
    return found.phrase if isinstance(found, Term) else found


def column_label(name: str, *, default=_MISSING) -> str:
    """The header of a tidy-table column.

    Looked up, in order: :data:`COLUMNS`; a comparison (a table pivoted by comparison);
    a measure; ``<prefix>_<measure>`` (:data:`PREFIXES`); ``<measure>_<suffix>``
    (:data:`SUFFIXES`, the longest measure key first, so ``svcca_authors_k_p`` is the
    authors' SVCCA's p).

    Parameters
    ----------
    name : str
    default : str, optional
        Returned for an unknown column; without it an unknown column raises.

    Raises
    ------
    KeyError
        If the column is unknown and no ``default`` is given.

    Examples
    --------
    >>> column_label("svcca_authors_k")
    "SVCCA, k = 1 (authors')"
    >>> column_label("svcca_k_x")
    'SVCCA kept dims (A)'
    >>> column_label("rsa_p_holm")
    'RSA p (Holm)'
    """
    found = _column(name)
    if found is not None:
        return found[0]
    if default is not _MISSING:
        return default
    raise KeyError(f"no column label for {name!r}: it is not in COLUMNS, not a comparison or measure key, and not "
                   f"'<measure>_<suffix>' (suffixes: {', '.join(SUFFIXES)}) or '<prefix>_<measure>' (prefixes: "
                   f"{', '.join(PREFIXES)}); add it to COLUMNS (or the measure to _MEASURES) in saesim/vocab.py.")


def column_title(name: str, *, default=_MISSING) -> str:
    """A figure panel's title for a tidy column, in the paper's title case.

    A measure is ``"Paired <M> Scores"``, ``<measure>_<suffix>`` the suffix's title template
    (``"Mean Null SVCCA Scores"``, ``"SVCCA P-Values (Holm)"``), any other column its
    :func:`column_label` in title case (``"Pairs Kept"``).

    Same parameters and errors as :func:`column_label`.

    Examples
    --------
    >>> column_title("svcca_null_mean")
    'Mean Null SVCCA Scores'
    >>> column_title("n_unique_a")
    'Unique A Latents Kept'
    """
    found = _column(name)
    if found is None:
        return column_label(name, default=default)
    text, title = found
    return title if title is not None else title_case(text)


def title_case(text: str) -> str:
    """``text`` in title case: every word capitalised but short joining words, one-letter symbols
    (``p``, ``z``), words already holding a capital and words in parentheses
    (``"latents with a partner"`` -> ``"Latents With a Partner"``).
    """
    out, depth = [], 0
    for i, word in enumerate(text.split(" ")):
        keep = (depth > 0 or word.startswith("(") or any(c.isupper() for c in word)
                or (len(word) == 1 and word != "a") or (i > 0 and word in _SMALL_WORDS))
        out.append(word if keep else word[:1].upper() + word[1:])
        depth += word.count("(") - word.count(")")
    return " ".join(out)


# --------------------------------------------------------------------------- look-ups


def _check_kind(kind: str) -> None:
    if kind not in TERMS:
        raise ValueError(f"`kind` must be one of {', '.join(KINDS)}; got {kind!r}.")


def _term(kind: str, key: str, default):
    _check_kind(kind)
    found = TERMS[kind].get(canonical(kind, key)) if isinstance(key, str) else None
    if found is not None:
        return found
    if default is not _MISSING:
        return default
    known = ", ".join(list(TERMS[kind]) + list(ALIASES.get(kind, {})))
    raise KeyError(f"no {kind} label for {key!r} (known: {known}); add it to the {kind} terms "
                   f"(_{kind.upper()}S) in saesim/vocab.py, or an alias to ALIASES['{kind}'].")


def _column(name: str) -> tuple[str, str | None] | None:
    """``(header, panel title or None)`` of a column, None when unknown."""
    if not isinstance(name, str):
        return None
    if name in COLUMNS:
        return COLUMNS[name], None
    comparison = canonical("comparison", name)
    if comparison in _COMPARISONS:
        return _COMPARISONS[comparison].label, None
    if name in _MEASURES:
        return _MEASURES[name].label, _MEASURE_TITLE.format(_MEASURES[name].label)
    head, _, rest = name.partition("_")
    if head in PREFIXES and rest in _MEASURES:
        return PREFIXES[head].format(_MEASURES[rest].label), None
    for measure in sorted(_MEASURES, key=len, reverse=True):
        suffix = name[len(measure) + 1:]
        if name.startswith(measure + "_") and suffix in SUFFIXES:
            text, title = SUFFIXES[suffix]
            return text.format(_MEASURES[measure].label), title.format(_MEASURES[measure].label)
    return None
