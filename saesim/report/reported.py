"""The authors' reported numbers (arXiv 2410.06981), as literal data.

Transcribed from the companion's reference note ``paper_figures.md`` (§2); the
reference folder is not shipped, so the numbers live here. Frames use the same
column names as :mod:`saesim.report.tables` plus ``source`` and ``profile``.

>>> reported("fig3").shape[0]
55
"""
from __future__ import annotations

import pandas as pd

__all__ = ["REPORTED_KEYS", "reported", "describe", "as_mapping"]

_FIG3 = {  # (layer_a, layer_b): (svcca, rsa)
    (1, 1): (0.243, 0.05),
    (1, 2): (0.406, 0.092),
    (1, 3): (0.381, 0.1),
    (1, 4): (0.506, 0.127),
    (1, 5): (0.561, 0.148),
    (1, 6): (0.498, 0.132),
    (1, 7): (0.507, 0.108),
    (1, 8): (0.318, 0.111),
    (1, 9): (0.294, 0.095),
    (1, 10): (0.065, 0.071),
    (1, 11): (0.111, 0.044),
    (2, 1): (0.19, 0.048),
    (2, 2): (0.398, 0.103),
    (2, 3): (0.348, 0.11),
    (2, 4): (0.57, 0.189),
    (2, 5): (0.678, 0.207),
    (2, 6): (0.6, 0.176),
    (2, 7): (0.623, 0.153),
    (2, 8): (0.384, 0.164),
    (2, 9): (0.299, 0.133),
    (2, 10): (0.145, 0.104),
    (2, 11): (0.189, 0.071),
    (3, 1): (0.155, 0.037),
    (3, 2): (0.34, 0.088),
    (3, 3): (0.244, 0.111),
    (3, 4): (0.521, 0.18),
    (3, 5): (0.661, 0.2),
    (3, 6): (0.633, 0.201),
    (3, 7): (0.649, 0.173),
    (3, 8): (0.541, 0.183),
    (3, 9): (0.509, 0.164),
    (3, 10): (0.206, 0.131),
    (3, 11): (0.198, 0.093),
    (4, 1): (0.028, 0.013),
    (4, 2): (0.164, 0.032),
    (4, 3): (0.129, 0.037),
    (4, 4): (0.192, 0.065),
    (4, 5): (0.263, 0.069),
    (4, 6): (0.318, 0.067),
    (4, 7): (0.246, 0.064),
    (4, 8): (0.347, 0.08),
    (4, 9): (0.367, 0.077),
    (4, 10): (0.341, 0.091),
    (4, 11): (0.304, 0.076),
    (5, 1): (0.011, 0.011),
    (5, 2): (0.078, 0.029),
    (5, 3): (0.092, 0.043),
    (5, 4): (0.064, 0.059),
    (5, 5): (0.226, 0.078),
    (5, 6): (0.29, 0.076),
    (5, 7): (0.253, 0.071),
    (5, 8): (0.379, 0.082),
    (5, 9): (0.452, 0.088),
    (5, 10): (0.541, 0.107),
    (5, 11): (0.48, 0.11),
}

_FIG4 = {  # (layer_a, layer_b): (svcca, rsa)
    (6, 2): (0.124, 0.037),
    (6, 6): (0.183, 0.069),
    (6, 10): (0.203, 0.083),
    (6, 14): (0.21, 0.079),
    (6, 18): (0.078, 0.052),
    (6, 22): (0.064, 0.053),
    (10, 2): (0.316, 0.052),
    (10, 6): (0.239, 0.094),
    (10, 10): (0.282, 0.104),
    (10, 14): (0.325, 0.105),
    (10, 18): (0.235, 0.068),
    (10, 22): (0.274, 0.06),
    (12, 2): (0.241, 0.055),
    (12, 6): (0.449, 0.098),
    (12, 10): (0.491, 0.114),
    (12, 14): (0.54, 0.119),
    (12, 18): (0.584, 0.092),
    (12, 22): (0.536, 0.079),
    (17, 2): (0.14, 0.029),
    (17, 6): (0.14, 0.053),
    (17, 10): (0.254, 0.069),
    (17, 14): (0.27, 0.085),
    (17, 18): (0.328, 0.072),
    (17, 22): (0.354, 0.076),
}

_TABLE1 = [  # concept, n_pairs, svcca, svcca_null_mean, svcca_p, rsa, rsa_null_mean, rsa_p
    ('Time', 228, 0.59, 0.055, 0.0, 0.097, -0.0003, 0.0),
    ('Calendar', 126, 0.649, 0.061, 0.0, 0.093, -0.0009, 0.0),
    ('People/Roles', 31, 0.471, 0.147, 0.007, 0.182, 0.0012, 0.016),
    ('Nature', 46, 0.5, 0.119, 0.001, 0.217, 0.0005, 0.0),
    ('Emotions', 24, 0.828, 0.166, 0.0, 0.464, -0.002, 0.0),
    ('MonthNames', 32, 0.719, 0.14, 0.0, 0.102, 0.0032, 0.034),
    ('Countries', 30, 0.575, 0.151, 0.002, 0.336, 0.0014, 0.0),
]

_TABLE2 = [  # concept, n_pairs, svcca, svcca_null_mean, svcca_p, rsa, rsa_null_mean, rsa_p
    ('Time', 228, 0.46, 0.06, 0.0, 0.106, -0.0002, 0.0),
    ('Calendar', 105, 0.541, 0.077, 0.0, 0.154, 0.0, 0.0),
    ('People/Roles', 36, 0.664, 0.136, 0.0, 0.105, 0.0, 0.029),
    ('Nature', 51, 0.298, 0.116, 0.037, 0.104, -0.0001, 0.007),
    ('Emotions', 35, 0.595, 0.135, 0.0, 0.216, 0.0046, 0.0),
    ('MonthNames', 44, 0.007, 0.118, 0.978, 0.143, -0.0013, 0.0),
    ('Countries', 21, 0.393, 0.18, 0.086, 0.074, 0.0016, 0.202),
    ('Biology', 13, 0.407, 0.241, 0.148, 0.167, 0.0007, 0.089),
]

_A1 = {  # (layer_a, layer_b): (svcca_null_mean, svcca_p)
    (1, 1): (0.01, 0.0),
    (1, 2): (0.011, 0.0),
    (1, 3): (0.012, 0.0),
    (1, 4): (0.011, 0.0),
    (1, 5): (0.009, 0.0),
    (1, 6): (0.009, 0.0),
    (1, 7): (0.01, 0.0),
    (1, 8): (0.01, 0.0),
    (1, 9): (0.012, 0.0),
    (1, 10): (0.009, 0.0),
    (1, 11): (0.01, 0.0),
    (2, 1): (0.009, 0.0),
    (2, 2): (0.013, 0.0),
    (2, 3): (0.012, 0.0),
    (2, 4): (0.01, 0.0),
    (2, 5): (0.011, 0.0),
    (2, 6): (0.01, 0.0),
    (2, 7): (0.009, 0.0),
    (2, 8): (0.009, 0.0),
    (2, 9): (0.009, 0.0),
    (2, 10): (0.014, 0.0),
    (2, 11): (0.011, 0.0),
    (3, 1): (0.009, 0.0),
    (3, 2): (0.012, 0.0),
    (3, 3): (0.017, 0.0),
    (3, 4): (0.01, 0.0),
    (3, 5): (0.014, 0.0),
    (3, 6): (0.008, 0.0),
    (3, 7): (0.009, 0.0),
    (3, 8): (0.008, 0.0),
    (3, 9): (0.009, 0.0),
    (3, 10): (0.013, 0.0),
    (3, 11): (0.012, 0.0),
    (4, 1): (0.016, 0.2),
    (4, 2): (0.018, 0.0),
    (4, 3): (0.017, 0.0),
    (4, 4): (0.016, 0.0),
    (4, 5): (0.014, 0.0),
    (4, 6): (0.013, 0.0),
    (4, 7): (0.013, 0.0),
    (4, 8): (0.016, 0.0),
    (4, 9): (0.013, 0.0),
    (4, 10): (0.014, 0.0),
    (4, 11): (0.015, 0.0),
    (5, 1): (0.015, 0.5),
    (5, 2): (0.014, 0.0),
    (5, 3): (0.017, 0.0),
    (5, 4): (0.013, 0.0),
    (5, 5): (0.018, 0.0),
    (5, 6): (0.012, 0.0),
    (5, 7): (0.011, 0.0),
    (5, 8): (0.015, 0.0),
    (5, 9): (0.011, 0.0),
    (5, 10): (0.01, 0.0),
    (5, 11): (0.016, 0.0),
}

_TABLE_COLS = ["concept", "n_pairs", "svcca", "svcca_null_mean", "svcca_p", "rsa", "rsa_null_mean", "rsa_p"]

_META = {
    "fig3": dict(profile="pythia", source="authors' paper, Fig. 3",
                 text="Fig. 3: paired SVCCA (a) and RSA (b), Pythia-70m layers 1-5 (model A) vs Pythia-160m "
                      "layers 1-11 (model B), full SAE space, 1-1 pairing. Settings: many-to-1 max-correlation "
                      "pairing, then junk-token filter, top-5 token-set overlap, first-occurrence 1-1, r > 0.1; "
                      "SVCCA/RSA on paired decoder rows; null = 20 row shuffles. Figure number: medium "
                      "confidence; values: high (notebook pythia_heatmap_paired_scores_1_1.ipynb). 3 dp."),
    "fig4": dict(profile="gemma", source="authors' paper, Fig. 4",
                 text="Fig. 4: paired SVCCA and RSA, Gemma-1-2B layers {6,10,12,17} (model A) vs Gemma-2-2B "
                      "layers {2,6,10,14,18,22} (model B), full SAE space, 1-1 pairing. Settings as Fig. 3; "
                      "junk list includes <pad>; null = 10 shuffles. Figure number: medium; values: high "
                      "(notebook gemma_heatmap_paired_scoress_1_1.ipynb). 3 dp."),
    "table1": dict(profile="pythia", layers=(3, 5),
                   source="authors' paper, Table 1",
                   text="Table 1: semantic subspaces, Pythia-70m L3 (model A) vs Pythia-160m L5 (model B), 1-1. "
                        "Concept membership by keyword; pairing restricted to concept members, first-occurrence "
                        "1-1; no junk filter, no r > 0.1 cut; null = 100 shuffles if > 100 pairs else 1000; "
                        "p = mean(null >= observed). Table number high, layer pair medium, values high for the "
                        "notebook run (match_semantic_spaces_v7b.ipynb). A third-party note on v4 differs "
                        "(Countries 0.72, People/Roles 0.50): the paper may show a subset or a re-run."),
    "table2": dict(profile="gemma", layers=(12, 14),
                   source="authors' paper, Table 2",
                   text="Table 2: semantic subspaces, Gemma-1-2B L12 (model A) vs Gemma-2-2B L14 (model B), 1-1. "
                        "Scheme as Table 1; 150 documents x 150 tokens; eight concepts (Biology included). "
                        "Table number medium, layer pair LOW (candidate chosen at the Fig. 4 peak), values high "
                        "for the notebook run (loop_semantic_spaces_gemma.ipynb)."),
    "A1": dict(profile="pythia", source="authors' paper, appendix A1",
               text="A1: Pythia 1-1 SVCCA null means ('Mean Rand SVCCA Scores') and p-values, Pythia-70m "
                    "layers 1-5 (model A) vs Pythia-160m layers 1-11 (model B); the nulls behind Fig. 3 "
                    "(20 unseeded row shuffles; expect about +/-0.005 run to run). p = 0 everywhere except "
                    "(70m L4, 160m L1) = 0.2 and (70m L5, 160m L1) = 0.5. Confidence medium."),
}

REPORTED_KEYS: tuple[str, ...] = tuple(_META)


def _key(figure: str) -> str:
    k = str(figure).strip().lower().replace(" ", "").replace(".", "").replace("figure", "fig")
    k = k.upper() if k.startswith("a") else k
    if k not in _META:
        raise KeyError(f"unknown reported figure {figure!r}; known: {', '.join(REPORTED_KEYS)}")
    return k


def reported(figure: str) -> pd.DataFrame:
    """The authors' numbers for ``figure`` (one of :data:`REPORTED_KEYS`) as a tidy frame.

    Grids (``fig3``, ``fig4``): columns ``layer_a, layer_b, svcca, rsa, source, profile``.
    Tables (``table1``, ``table2``): ``concept, n_pairs, svcca, svcca_null_mean, svcca_p,
    rsa, rsa_null_mean, rsa_p, layer_a, layer_b, source, profile``.
    """
    k = _key(figure)
    meta = _META[k]
    if k in ("fig3", "fig4"):
        data = _FIG3 if k == "fig3" else _FIG4
        df = pd.DataFrame([(a, b, s, r) for (a, b), (s, r) in sorted(data.items())],
                          columns=["layer_a", "layer_b", "svcca", "rsa"])
    elif k == "A1":
        df = pd.DataFrame([(a, b, m, q) for (a, b), (m, q) in sorted(_A1.items())],
                          columns=["layer_a", "layer_b", "svcca_null_mean", "svcca_p"])
    else:
        data = _TABLE1 if k == "table1" else _TABLE2
        df = pd.DataFrame(data, columns=_TABLE_COLS)
        df["layer_a"], df["layer_b"] = meta["layers"]
    df["source"] = meta["source"]
    df["profile"] = meta["profile"]
    return df


def as_mapping(figure: str) -> dict:
    """Column -> {row key: value}, the shape :func:`saesim.report.tables.authors_table` takes.

    Row keys are ``(layer_a, layer_b)`` tuples for grids, concept names for tables.
    """
    df = reported(figure)
    if "concept" in df:
        idx, cols = df["concept"], [c for c in _TABLE_COLS if c != "concept"]
    else:
        idx = list(zip(df["layer_a"], df["layer_b"]))
        cols = [c for c in ("svcca", "rsa", "svcca_null_mean", "svcca_p") if c in df]
    return {c: dict(zip(idx, df[c])) for c in cols}


def describe(key: str) -> str:
    """What ``key`` is, the settings it was produced with, and confidence notes."""
    k = _key(key)
    return f"{_META[k]['text']} Source: {_META[k]['source']}."
