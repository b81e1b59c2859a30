"""Builders shared by the robustness tests: SaeLayers of a planted pair, fake tidy records, and the
verdict table's cells read back as values.

Used by tests/unit/test_bootstrap.py, test_baselines.py, test_prose.py, test_sweeps.py,
test_plots_robust.py, test_robust.py and tests/integration/test_robust_tiny.py.
"""

import re

import numpy as np

from saesim.compare.filters import TopTokens
from saesim.compare.synthetic import planted_pair
from saesim.experiments.grid import CompareSettings, SaeLayer
from saesim.extract.tokens import contexts, top_activations

WORDS = np.array([" day", " night", " river", " king", " stone", " love", " gene", " cell", " moon", " rain",
                  " tree", " fire"], dtype=object)
DOC_LEN = 30
SETTINGS = CompareSettings(rules=("first_index",), n_perm=50, min_active=1, metrics=("svcca", "rsa"))
NULL_SETTINGS = SETTINGS.replace(r_min=0.0, junk_filter=False)


def layers_from(data, *, seed=0, k=10):
    """SaeLayers of a PlantedPair; one random word per token row, so co-firing latents share top tokens."""
    ids = np.random.default_rng(seed).integers(0, WORDS.size, size=data.n_tokens)
    layers = []
    for name, codes, decoder in (("a", data.codes_a, data.W_a), ("b", data.codes_b, data.W_b)):
        ctx = contexts(top_activations(codes, k=k), ids, lambda i: WORDS[i])
        top = TopTokens(strings=ctx.top_tokens, ids=ctx.token_ids, active=ctx.active)
        windows = np.where(ctx.top_tokens == "", "", "x" + ctx.top_tokens + " y").astype(object)
        layers.append(SaeLayer(model=name, layer=0, codes=codes, decoder=decoder, top=top, windows=windows))
    return layers


def small(seed=0, **kw):
    """A planted pair of 3 000 token rows (100 documents of :data:`DOC_LEN`)."""
    args = dict(n_tokens=3000, n_latents_a=128, n_latents_b=160, d_a=16, d_b=24, n_shared=80, seed=seed)
    return planted_pair(**{**args, **kw})


def fake_record(la, lb, value, low, high, null=0.3, rule="first_index"):
    """A tidy bootstrap record of one SVCCA score with its interval and null."""
    return {"layer_a": la, "layer_b": lb, "rule": rule, "direction": "b_to_a", "svcca": value,
            "svcca_ci_low": low, "svcca_ci_high": high, "svcca_null_mean": null, "svcca_null_std": 0.01,
            "svcca_p": 0.001, "svcca_z": 10.0, "n_pairs": 100}


_VERDICT_CELL = re.compile(r"^(above|overlaps|below): (-?\d+\.\d{3})(?: \[(-?\d+\.\d{3}), (-?\d+\.\d{3})\])?(\*?)$")


def verdict_cell(text):
    """A baseline cell of the verdict table (``"overlaps: 0.450 [0.400, 0.500]"``) as values:
    ``(place, score, ci_low, ci_high, point_stood_in)``, the interval None where none is shown."""
    match = _VERDICT_CELL.match(text)
    assert match, f"not a verdict cell: {text!r}"
    place, value, low, high, star = match.groups()
    return place, float(value), float(low) if low else None, float(high) if high else None, star == "*"
