"""Sweeps of one layer pair's paired scores over a choice reviewers questioned, each a tidy table kept on disk.

The choices: SVCCA's dimension policy (:func:`sweep_svcca_dimension`, with
PWCCA beside it), the filters' strictness with every rule and direction
(:func:`sweep_filters`) and the token budget (:func:`sweep_token_budget`).
Every point runs through the grid's pipeline
(:func:`saesim.experiments.grid.compare_best`) with its shuffled null, so a
change of the score can be told from a change of its null. Every score carries its raw
permutation p-value (``<metric>_p``) and the book's p-value (``<metric>_p_tail``,
:mod:`saesim.compare.significance`); the token-budget sweep adds ``<metric>_p_holm``, Holm over
its budgets (one family per rule and direction).
:func:`kept_table` keeps a sweep's table under a hash of its parameters and :data:`SWEEP_VERSION`.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd

from saesim.compare.bootstrap import document_groups, document_rows
from saesim.compare.effects import effect_sizes
from saesim.compare.match import RULES
from saesim.compare.significance import holm_within_families
from saesim.experiments.bootstrap import layer_best_partners
from saesim.experiments.grid import CompareSettings, SaeLayer, compare_best
from saesim.io import atomic_parquet

__all__ = [
    "SVCCA_POLICIES",
    "SWEEP_VERSION",
    "cached_top_k",
    "default_sweep_pair",
    "kept_table",
    "sweep_filters",
    "sweep_svcca_dimension",
    "sweep_token_budget",
]

SVCCA_POLICIES = (0.5, 0.9, 0.99, 1, 10, 50, "ratio:10", "ratio:50")
"""Default dimension policies of :func:`sweep_svcca_dimension`."""

SWEEP_VERSION = 2
"""Bump when a sweep's rows change, so kept tables are recomputed (2: ``<metric>_p_tail`` beside
every p-value, and the token budget's ``<metric>_p_holm``)."""


def default_sweep_pair(profile) -> tuple[int, int]:
    """The sweeps' layer pair: the middle one of :meth:`saesim.config.Profile.baseline_layer_pairs`."""
    from saesim.config import Profile, load_profile

    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    pairs = profile.baseline_layer_pairs()
    return pairs[len(pairs) // 2]


def kept_table(folder, name: str, key: dict, compute, *, latest: bool = True) -> pd.DataFrame:
    """``compute()``'s table, kept in ``folder`` under ``name`` and a hash of ``key``; read back when kept.

    For the sweeps chapter, whose sweeps take minutes: a rebuild with the same
    key (profile, settings, layer pair, sweep parameters) reads the parquet
    file instead of recomputing; any change of the key or of :data:`SWEEP_VERSION` recomputes. Written
    atomically, so an interrupted sweep leaves nothing that looks finished.
    With ``latest`` (default) the table is also written to
    ``folder/<name>.parquet``, the copy of the last build that readers open.
    """
    import hashlib
    from pathlib import Path

    versioned = {**key, "sweep_version": SWEEP_VERSION}
    tag = hashlib.sha256(json.dumps(versioned, sort_keys=True, default=str).encode()).hexdigest()[:12]
    path = Path(folder) / "kept" / f"{name}_{tag}.parquet"
    table = None
    if path.exists():
        try:
            table = pd.read_parquet(path)
        except (OSError, ValueError):
            pass  # damaged: recompute and overwrite
    if table is None:
        table = compute()
        atomic_parquet(table, path)
    if latest:
        atomic_parquet(table, Path(folder) / f"{name}.parquet")
    return table


def sweep_svcca_dimension(layer_a: SaeLayer, layer_b: SaeLayer, settings: CompareSettings, *,
                          policies=SVCCA_POLICIES, pwcca: bool = True) -> pd.DataFrame:
    """SVCCA (and PWCCA) under each dimension policy, for every rule and direction of ``settings``.

    ``policies``: variance fractions (floats), fixed k (ints), ``"ratio:R"``.
    Best partners are computed once. Rows carry ``policy``, ``svcca_k_x``,
    ``svcca_k_y``, ``n_pairs`` and the scores with their nulls. The corrected
    computation only (``settings.compat`` must be False; the authors' SVCCA is
    the fixed k = 1 row up to its variance rule).
    """
    if settings.compat:
        raise ValueError("sweep_svcca_dimension needs settings.compat=False (the authors' SVCCA fixes k).")
    best = layer_best_partners(layer_a, layer_b, settings)
    frames = []
    for policy in policies:
        rows = compare_best(best, layer_a, layer_b, settings.replace(svcca_variance=policy, metrics=("svcca",)))
        if pwcca:
            # PWCCA with the same policy, scored on the same pairs
            extra = _pwcca_with_policy(best, layer_a, layer_b, settings, policy)
            rows = [{**r, **e} for r, e in zip(rows, extra)]
        frames.append(pd.DataFrame(rows).assign(policy=str(policy)))
    return effect_sizes(pd.concat(frames, ignore_index=True))


def _pwcca_with_policy(best, layer_a, layer_b, settings, policy) -> list[dict]:
    from saesim.compare.nulls import p_value, permutation_test
    from saesim.compare.significance import tail_p_value
    from saesim.compare.stages import filtered_pairs
    from saesim.experiments import grid

    out = []
    for direction in settings.directions:
        for rule in settings.rules:
            pairs, _ = filtered_pairs(best, layer_a, layer_b, settings, rule=rule, direction=direction)
            if pairs.n_pairs <= grid.MIN_SUBSPACE:
                out.append({})
                continue
            x, y = pairs.rows(layer_a.decoder, layer_b.decoder)
            groups = grid.null_groups(pairs, settings)  # many-to-1: the group null
            null = {} if groups is None else {"groups": groups[0], "group_side": groups[1]}
            test = permutation_test(x, y, "pwcca", n_perm=settings.n_perm, seed=settings.seed, variance=policy,
                                    **null)
            out.append({"pwcca": test.score, "pwcca_null_mean": test.null_mean, "pwcca_null_std": test.null_std,
                        "pwcca_p": p_value(test.score, test.null),
                        "pwcca_p_tail": tail_p_value(test.score, test.null), "pwcca_z": test.z,
                        "pwcca_k_x": test.observed.k_x, "pwcca_k_y": test.observed.k_y})
    return out


def sweep_filters(layer_a: SaeLayer, layer_b: SaeLayer, settings: CompareSettings, *, junk=(True, False),
                  top_k=(5, 10, 20), r_min=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5), rules=RULES,
                  directions=("b_to_a", "a_to_b")) -> pd.DataFrame:
    """Filter strictness: junk filter on/off × top-k tokens × r_min × every rule × both directions.

    Best partners are computed once. With the junk filter off, ``top_k`` plays
    no part and is reported as 0. A ``top_k`` larger than the top tokens the
    layers cache gives one row per r_min with ``skipped`` naming the limit
    (the profiles cache 10 top tokens, so 20 is skipped unless re-extracted).
    ``kept_fraction`` is ``n_pairs / n_choosers``.
    """
    best = layer_best_partners(layer_a, layer_b, settings)
    available = min(layer_a.top.strings.shape[1], layer_b.top.strings.shape[1])
    frames = []
    for use_junk in junk:
        for k in (top_k if use_junk else (0,)):
            for r in r_min:
                point = {"junk_filter": bool(use_junk), "top_k": int(k), "r_min": float(r)}
                if use_junk and k > available:
                    frames.append(pd.DataFrame([{**point, "skipped": f"layers cache only {available} top tokens"}]))
                    continue
                changes = dict(junk_filter=bool(use_junk), r_min=float(r), rules=tuple(rules),
                               directions=tuple(directions))
                if use_junk:
                    changes["top_k"] = int(k)
                rows = compare_best(best, layer_a, layer_b, settings.replace(**changes))
                frame = pd.DataFrame(rows).drop(columns=["r_min", "top_k", "junk_filter"], errors="ignore")
                frames.append(frame.assign(**point, skipped=""))
    table = pd.concat(frames, ignore_index=True)
    table["kept_fraction"] = table["n_pairs"] / table["n_choosers"]
    return effect_sizes(table)


def sweep_token_budget(layer_a: SaeLayer, layer_b: SaeLayer, row_doc, settings: CompareSettings, *,
                       fractions=(0.1, 0.25, 0.5, 1.0), seed: int = 0) -> pd.DataFrame:
    """Scores and p-values on a growing share of the documents (nested random subsets).

    The documents are shuffled once (``seed``) and the first ``fraction``
    of them kept, so each budget contains the smaller ones. Correlations,
    pairing, filters, scores and nulls are recomputed at every budget. The
    budgets of one rule and direction are one family: ``<metric>_p_holm`` is
    Holm over them, on the tail p-values
    (:func:`saesim.compare.significance.holm_within_families`).
    """
    order, starts, lengths = document_groups(row_doc, layer_a.codes.shape[0])
    docs = np.random.default_rng(seed).permutation(starts.size)
    frames = []
    for fraction in fractions:
        if not 0 < fraction <= 1:
            raise ValueError(f"`fractions` must lie in (0, 1]; got {fraction!r}.")
        n_docs = max(1, int(round(fraction * starts.size)))
        take = np.sort(document_rows(docs[:n_docs], order, starts, lengths))
        sub_a, sub_b = replace(layer_a, codes=layer_a.codes[take]), replace(layer_b, codes=layer_b.codes[take])
        rows = compare_best(layer_best_partners(sub_a, sub_b, settings), sub_a, sub_b, settings)
        frames.append(pd.DataFrame(rows).assign(fraction=float(fraction), n_docs=n_docs))
    table = pd.concat(frames, ignore_index=True)
    return effect_sizes(holm_within_families(table, keys=("rule", "direction")))


def cached_top_k(layer_a: SaeLayer, layer_b: SaeLayer) -> int:
    """How many top tokens per latent both layers cache: the largest ``top_k`` the junk filter can use."""
    return int(min(layer_a.top.strings.shape[1], layer_b.top.strings.shape[1]))

