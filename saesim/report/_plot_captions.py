"""Figure captions that name every setting behind a figure or table (data, pairing, filters, null, mode).

Private to :mod:`saesim.report`; import the public names from :mod:`saesim.report.plots`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from saesim import vocab


def caption(frame_or_meta, what: str, *, meta: Mapping | None = None) -> str:
    """A caption naming every setting behind a figure or table.

    Parameters
    ----------
    frame_or_meta : mapping or pandas.DataFrame
        Settings, with any of the keys ``profile``, ``rule``, ``direction``,
        ``junk_filter``, ``junk_list`` (a name from
        :data:`saesim.compare.filters.JUNK_LISTS` or the tokens), ``require_overlap``,
        ``top_k``, ``r_min``, ``null_kind``, ``n_perm``, ``seed``, ``compat``,
        ``layers_a``, ``layers_b``, ``label_a``, ``label_b``. A tidy table
        gives the settings it records (single-valued ``rule``, ``direction``,
        ``compat``, ``null_kind``, ``n_perm``, ``seed``, ``profile`` columns;
        the layers from ``layer_a`` / ``layer_b``).
    what : str
        What is shown, e.g. ``"Paired SVCCA (a) and RSA (b) per layer pair"``.
    meta : mapping, optional
        Settings added to (and overriding) those of a table.

    Returns
    -------
    str
        ``what`` followed by sentences for the data, the pairing, the filters,
        the null and the mode; settings not given are left out.

    Examples
    --------
    >>> print(caption({"profile": "pythia", "rule": "many_to_one", "r_min": 0.1, "n_perm": 100, "seed": 0},
    ...               "Paired SVCCA"))  # doctest: +NORMALIZE_WHITESPACE
    Paired SVCCA. Profile pythia. Pairing: many-to-1 (each chooser keeps its best partner).
    Filters: r > 0.1. Null: shuffled pairings, 100 draws, seed 0.
    """
    settings = dict(_meta_from_frame(frame_or_meta) if isinstance(frame_or_meta, pd.DataFrame)
                    else _check_mapping(frame_or_meta, "frame_or_meta"))
    settings.update(_check_mapping(meta or {}, "meta"))
    parts = [what.rstrip(". ")]
    if settings.get("fvu_flags"):
        parts.append(str(settings["fvu_flags"]).rstrip(". "))
    data = []
    if settings.get("profile") is not None:
        data.append(f"Profile {settings['profile']}")
    label_a, label_b = settings.get("label_a", "A"), settings.get("label_b", "B")
    if settings.get("layers_a") is not None or settings.get("layers_b") is not None:
        data.append(f"layers {label_a} {_layers(settings.get('layers_a'))} × {label_b} "
                    f"{_layers(settings.get('layers_b'))}")
    if data:
        parts.append("; ".join(data))
    pairing = []
    if settings.get("rule") is not None:
        pairing.append(_words(settings["rule"], "rule"))
    if settings.get("direction") is not None:
        pairing.append(_words(settings["direction"], "direction"))
    if pairing:
        parts.append("Pairing: " + ", ".join(pairing))
    filters = []
    if settings.get("junk_filter") is False:
        filters.append("no junk filter")
    elif settings.get("junk_filter") or settings.get("junk_list") is not None:
        top_k = settings.get("top_k")
        junk = "junk filter on the top-" + (f"{top_k}" if top_k is not None else "k") + " tokens"
        if settings.get("junk_list") is not None:
            junk += f" ({_junk(settings['junk_list'])})"
        filters.append(junk)
    elif settings.get("top_k") is not None:
        filters.append(f"top-{settings['top_k']} tokens per latent")
    if settings.get("require_overlap") is not None:
        filters.append("shared top token required" if settings["require_overlap"] else "no shared-token rule")
    if settings.get("r_min") is not None:
        filters.append(f"r > {settings['r_min']:g}" if _is_number(settings["r_min"])
                       else f"r > {settings['r_min']}")
    if filters:
        parts.append("Filters: " + "; ".join(filters))
    null = []
    if settings.get("null_kind") is not None or settings.get("n_perm") is not None:
        kind = _words(settings.get("null_kind", "shuffle"), "null")
        null.append(kind + (f", {settings['n_perm']} draws" if settings.get("n_perm") is not None else ""))
    if settings.get("seed") is not None:
        null.append(f"seed {settings['seed']}")
    if null:
        parts.append("Null: " + ", ".join(null))
    if settings.get("compat") is not None:
        parts.append("Mode: authors-compatible (compat=True: SVCCA with k = 1, p = #(null ≥ score)/R)"
                     if _truthy(settings["compat"]) else
                     "Mode: corrected (compat=False: "
                     + (f"SVCCA keeping {dims_words(settings['svcca_dims'])}, " if settings.get("svcca_dims") is not None
                        else "")
                     + "p = (1 + #(null ≥ score))/(1 + R), or the null's fitted upper tail where fewer than 10 "
                     "draws reach the score)")
    return ". ".join(parts) + "."


def dims_words(policy) -> str:
    """An SVCCA dimension policy in words, for captions ("at most one dimension per 10 distinct rows a side")."""
    text = str(policy)
    if text.startswith("ratio:"):
        return f"at most one dimension per {text[6:]} distinct rows a side"
    if isinstance(policy, int) or text.isdigit():
        return f"{int(float(text))} dimensions"
    return f"{100 * float(text):g}% of the variance"


def dims_with_pairs(policy) -> str:
    """How the kept SVCCA dimension k follows the number of pairs n under ``policy``, for a sentence
    ("with at most one dimension per 10 distinct rows a side, k grows with n")."""
    text = str(policy)
    if text.startswith("ratio:"):
        return f"with {dims_words(policy)}, k grows with n"
    if isinstance(policy, int) or text.isdigit():
        return f"with {dims_words(policy)} kept, k is fixed whatever n"
    return f"keeping {dims_words(policy)}, k follows how the rows spread, and so n"


def _check_mapping(value, name: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise TypeError(f"`{name}` must be a dict of settings or a tidy DataFrame; got {type(value).__name__}.")
    return value


def _meta_from_frame(frame: pd.DataFrame) -> dict:
    meta = {}
    for column in ("profile", "rule", "direction", "compat", "null_kind", "n_perm", "seed", "junk_list",
                   "top_k", "r_min"):
        if column in frame:
            values = list(dict.fromkeys(frame[column].dropna().tolist()))
            if len(values) == 1:
                meta[column] = values[0]
            elif values:
                meta[column] = " / ".join(str(v) for v in values)
    for column, key in (("layer_a", "layers_a"), ("layer_b", "layers_b")):
        if column in frame:
            meta[key] = sorted(frame[column].dropna().unique().tolist())
    return meta


def _layers(layers) -> str:
    if layers is None:
        return "?"
    if isinstance(layers, (str, int, np.integer)):
        return str(layers)
    layers = list(layers)
    if len(layers) > 2 and all(isinstance(v, (int, np.integer)) for v in layers) \
            and list(layers) == list(range(layers[0], layers[0] + len(layers))):
        return f"{layers[0]}–{layers[-1]}"
    return ", ".join(str(v) for v in layers)  # plain text: never a Python set in a caption


def _junk(junk_list) -> str:
    """The junk list by name and size: a caption never spells out tokens (they may be another tokenizer's)."""
    from saesim.compare.filters import JUNK_LISTS

    if isinstance(junk_list, str):
        tokens = JUNK_LISTS.get(junk_list)
        name = vocab.phrase("junk_list", junk_list, default=junk_list)
        return name if tokens is None else f"{name}, {len(tokens)} tokens"
    return f"{len(tuple(junk_list))} custom tokens"


def labels_text(kind: str, keys) -> str:
    """Settings of one kind by their vocabulary labels, comma-separated (``"many-to-1, 1-1 (Hungarian)"``)."""
    return ", ".join(vocab.label(kind, key) for key in keys)


def _words(value, kind: str) -> str:
    """A setting as running text (:func:`saesim.vocab.phrase`); several joined by " / " each by its phrase;
    a value the vocabulary lacks as it is."""
    if isinstance(value, str) and " / " in value:
        return " / ".join(_words(part, kind) for part in value.split(" / "))
    return vocab.phrase(kind, value, default=str(value))


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _truthy(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)
