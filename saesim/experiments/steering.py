"""Do steering vectors transfer? A vector found in model A, carried to B through the paired SAE features.

For each comparison (A against B; the re-randomised A against B; optionally A against its second
SAE set, one model on both sides) and each layer pair at matching relative depth:

1. **Held-in text** (the first ``n_fit_docs`` documents of the token grid): both models' residual
   streams at the two layers, on the token positions the character-span alignment pairs. A row
   *carries* a concept when its token is one of the concept's keywords.
2. **Steering vectors in A**: ``mean_diff`` (mean activation of the concept rows minus the rest, or
   minus the contrasting rows of a contrastive pair) and ``decoder_sum`` (the unit decoder rows of
   A's latents assigned to the concept, summed). The same recipes in B give B's **native** vector.
3. **Maps** from A's space at l_A to B's at l_B (:mod:`saesim.compare.steering`): ``procrustes``
   (headline) and ``lstsq`` fitted on the **paired decoder rows** (the pairs the comparison kept
   under the profile's rule and filters), ``activation`` (ridge least squares on the aligned token
   activations themselves: the reference a feature-level map should approach); nulls: Procrustes
   on ``shuffled`` pairings (``n_null`` draws, the p-value), ``random_orthogonal`` maps and a
   ``random_vector`` of B.
4. **Effect on B** (:func:`saesim.extract.steer.steering_effects`): every unit vector, times
   ``alpha`` x B's mean residual norm at l_B, is added at every position while B reads held-out
   neutral prompts (the start of the documents after the held-in ones that hold the fewest of the
   concept's keywords); effect = change in the log-probability mass of the concept's keyword tokens (minus
   the contrasting set's), side effect = KL to the unsteered next-token distribution.
5. **Transfer efficiency** = the mapped vector's effect / the native vector's, both at the side
   effect the native vector causes at the reference scale; a bootstrap interval over prompts; a
   one-sided p-value against the shuffled-pairing null (:func:`saesim.compare.significance.tail_p_value`)
   and Holm over the layer pairs and concepts of one comparison (the family the chapter's table
   shows).

The table is cached under a key of the settings and every layer's content key; a rerun with the
same inputs reads it back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from saesim.compare.concepts import CONCEPTS, CONTROL_CONCEPT, members
from saesim.compare.filters import normalise_token
from saesim.compare.multitest import holm
from saesim.compare.significance import tail_p_value
from saesim.compare.stages import filtered_pairs
from saesim.compare.steering import (decoder_sum_vector, lstsq_map, mean_diff_vector, procrustes_map,
                                     random_orthogonal_map, transfer_efficiency, unit)
from saesim.io import atomic_path, atomic_write_text
from saesim.validation import check_positive_int

__all__ = [
    "CONTRASTS",
    "STEERING_COLUMNS",
    "SteeringSettings",
    "headline_cells",
    "matched_depth_pairs",
    "pooled_test",
    "run_steering",
    "steering_applies",
    "steering_concepts",
    "steering_line",
    "steering_meta",
]

logger = logging.getLogger(__name__)

CONTRASTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Sentiment": (
        ("good", "great", "best", "success", "successful", "positive", "won", "win", "victory", "praised",
         "popular", "love", "happy", "hope", "peace", "better", "excellent", "favourable", "strong", "acclaim"),
        ("bad", "poor", "worst", "failure", "failed", "negative", "lost", "loss", "defeat", "criticised",
         "unpopular", "hate", "sad", "fear", "war", "worse", "terrible", "unfavourable", "weak", "death"),
    ),
}
"""Contrastive pairs of the classic kind: positive against negative sentiment words."""

STEERING_COLUMNS: tuple[str, ...] = (
    "comparison", "layer_a", "layer_b", "concept", "recipe", "map", "draw", "alpha", "effect", "side_effect",
    "efficiency", "p", "p_holm", "ci_low", "ci_high", "n_pairs", "n_concept_rows", "n_prompts", "prompt_keywords",
)
"""Columns of ``steering_transfer.parquet`` (one row per vector and scale)."""

HEADLINE_RECIPE = "mean_diff"
HEADLINE_MAP = "procrustes"
NATIVE = "native"
CACHE_VERSION = 1
FIT_DOCS, PROMPTS, PROMPT_TOKENS = 120, 12, 20
"""Defaults of the held-in documents, prompts and prompt length on a large enough grid."""
MIN_CONCEPT_ROWS = 5
"""Held-in tokens a concept needs on each side (concept and contrast) to get a steering vector."""


def steering_concepts(names) -> dict[str, tuple[tuple[str, ...], tuple[str, ...] | None]]:
    """``name -> (keywords, contrasting keywords or None)`` for concept names of the book and :data:`CONTRASTS`."""
    out = {}
    for name in names:
        if name in CONTRASTS:
            out[name] = CONTRASTS[name]
        elif name in CONCEPTS:
            out[name] = (CONCEPTS[name], None)
        elif name == "Control":
            out[name] = (CONTROL_CONCEPT, None)
        else:
            raise ValueError(f"concept {name!r} is unknown; choose from {sorted(CONCEPTS) + ['Control'] + sorted(CONTRASTS)}.")
    return out


@dataclass(frozen=True)
class SteeringSettings:
    """What the steering-transfer stage computes (every field enters the cache key).

    Attributes
    ----------
    comparisons : tuple of str
        Names of :meth:`saesim.config.Profile.comparisons` to run ("full_space", "control", "seed", ...).
    pairs : tuple of (int, int), optional
        Layer pairs of the main comparison (default :func:`matched_depth_pairs`); the controls always
        take their own layers at matched depth.
    concepts : tuple of str, optional
        Keyword concepts of the concept chapter, ``"Control"`` (frequent function words) and/or
        contrastive pairs (:data:`CONTRASTS`); default the profile's ``steering_concepts``.
    alphas : tuple of float
        Scales, as multiples of B's mean residual norm at l_B.
    reference_alpha : float
        The native vector's scale whose side effect the efficiencies are read at.
    n_fit_docs : int, optional
        Held-in documents (the grid's first) for vectors and the activation map (default: half the
        grid's documents, at most :data:`FIT_DOCS`).
    n_prompts, prompt_tokens : int, optional
        Held-out neutral prompts (of the documents after the held-in ones, those with the fewest
        keywords) and their length in B's tokens (default: :data:`PROMPTS` prompts, at most a
        quarter of the held-out documents, of :data:`PROMPT_TOKENS` tokens, at most half the grid's
        width).
    n_null, n_random : int
        Shuffled-pairing draws (the p-value) and random orthogonal maps / random vectors.
    n_boot : int
        Bootstrap resamples of the prompts (interval).
    seed : int
    """

    comparisons: tuple[str, ...] = ("full_space", "control")
    pairs: tuple[tuple[int, int], ...] | None = None
    concepts: tuple[str, ...] | None = None
    alphas: tuple[float, ...] = (0.25, 0.5)
    reference_alpha: float = 0.25
    n_fit_docs: int | None = None
    n_prompts: int | None = None
    prompt_tokens: int | None = None
    n_null: int = 19
    n_random: int = 2
    n_boot: int = 1000
    seed: int = 0

    def __post_init__(self):
        for name in ("n_fit_docs", "n_prompts", "prompt_tokens", "n_null", "n_random", "n_boot"):
            if getattr(self, name) is not None or name in ("n_null", "n_random", "n_boot"):
                check_positive_int(getattr(self, name), name=f"`{name}`")
        if self.concepts is not None:
            steering_concepts(self.concepts)
            object.__setattr__(self, "concepts", tuple(self.concepts))
        alphas = tuple(float(a) for a in self.alphas)
        if not alphas or any(not a > 0 for a in alphas) or list(alphas) != sorted(set(alphas)):
            raise ValueError(f"`alphas` must be positive and increasing; got {self.alphas!r}.")
        if float(self.reference_alpha) not in alphas:
            raise ValueError(f"`reference_alpha` {self.reference_alpha!r} must be one of `alphas` {alphas}.")
        object.__setattr__(self, "alphas", alphas)
        object.__setattr__(self, "comparisons", tuple(self.comparisons))
        if self.pairs is not None:
            object.__setattr__(self, "pairs", tuple((int(a), int(b)) for a, b in self.pairs))

    def replace(self, **changes) -> "SteeringSettings":
        return replace(self, **changes)

    @classmethod
    def from_parameters(cls, **values) -> "SteeringSettings":
        """Settings from notebook parameters: ``None`` keeps a field's default, lists become tuples."""
        given = {k: (tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v)
                 for k, v in values.items() if v is not None}
        return cls(**given)

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def matched_depth_pairs(layers_a, n_layers_a: int, layers_b, n_layers_b: int) -> tuple[tuple[int, int], ...]:
    """Each layer of ``layers_a`` with the layer of ``layers_b`` nearest in relative depth (``l / (n - 1)``)."""
    depth_b = np.asarray(layers_b, dtype=float) / max(n_layers_b - 1, 1)
    out = []
    for la in layers_a:
        lb = int(np.asarray(layers_b)[np.argmin(np.abs(depth_b - la / max(n_layers_a - 1, 1)))])
        out.append((int(la), lb))
    return tuple(out)


# --------------------------------------------------------------------------- the stage


@dataclass
class _Models:
    """Loaded models, one per model spec (B serves every comparison)."""

    profile: object
    root: Path
    loaded: dict = field(default_factory=dict)

    def get(self, slot: str):
        from saesim.extract.models import load_model

        spec = self.profile.model(slot)
        name = json.dumps(asdict(spec), sort_keys=True, default=str)
        if name not in self.loaded:
            self.loaded[name] = load_model(spec, root=self.root, what=f"profile `{self.profile.name}`")
        return self.loaded[name]


def run_steering(profile, settings: SteeringSettings | None = None, *, cache=None, out=None,
                 progress: bool = False) -> pd.DataFrame:
    """The steering-transfer table (:data:`STEERING_COLUMNS`), computed or read back from ``out``.

    Parameters
    ----------
    profile : Profile or str
        Extraction must have run (``saesim extract`` / ``saesim run``).
    settings : SteeringSettings, optional
    cache : path, optional
        Artefact store (default the profile's ``cache_dir``).
    out : path, optional
        Results folder (default ``<cache>/results``); writes ``steering_transfer.parquet`` and
        ``steering_transfer.json`` (key, seconds, greedy continuations).
    """
    from saesim.config import Profile, load_profile
    from saesim.extract.pipeline import load_grid, load_layer

    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    cache = Path(cache) if cache is not None else Path(profile.cache_dir)
    out = Path(out) if out is not None else cache / "results"
    grid = load_grid(profile, out=cache)
    settings = settings or SteeringSettings()
    if settings.concepts is None:
        settings = settings.replace(concepts=tuple(profile.steering_concepts))
    settings = _sized(settings, grid)
    comparisons = profile.comparisons()
    unknown = [c for c in settings.comparisons if c not in comparisons]
    if unknown:
        raise ValueError(f"`comparisons` {unknown} are not comparisons of profile `{profile.name}` "
                         f"({list(comparisons)}).")
    plan = _plan(profile, settings, comparisons)
    layer_keys = {f"{slot}{layer}": load_layer(profile, slot, layer, out=cache).key
                  for slots, pairs in plan.values() for la, lb in pairs for slot, layer in zip(slots, (la, lb))}
    key = hashlib.sha256(json.dumps({"v": CACHE_VERSION, "settings": settings.key(), "layers": layer_keys,
                                     "plan": {k: [list(s), [list(p) for p in v]] for k, (s, v) in plan.items()}},
                                    sort_keys=True).encode()).hexdigest()[:20]
    path, meta_path = out / "steering_transfer.parquet", out / "steering_transfer.json"
    if path.is_file() and meta_path.is_file():
        try:
            if json.loads(meta_path.read_text()).get("key") == key:
                return pd.read_parquet(path)
        except (ValueError, OSError):
            pass  # unreadable: recompute
    started = time.perf_counter()
    models = _Models(profile, cache)
    frames, examples, skipped = [], [], []
    for name, (slots, pairs) in plan.items():
        frame, example, skip = _run_comparison(profile, grid, name, slots, pairs, settings, models, cache, progress)
        frames.append(frame)
        examples.extend(example)
        skipped.extend(skip)
    table = pd.concat(frames, ignore_index=True)[list(STEERING_COLUMNS)]
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False)
    atomic_write_text(meta_path, json.dumps({"key": key, "seconds": round(time.perf_counter() - started, 1),
                                             "settings": asdict(settings), "examples": examples,
                                             "skipped": skipped}, indent=1))
    return table


def steering_applies(profile) -> str:
    """Why the stage cannot run on ``profile`` ("" when it can): it steers causal language models."""
    from saesim.config import Profile, load_profile
    from saesim.extract.models import ENCODER_FAMILIES

    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    encoders = sorted({profile.model(s).model for s in ("a", "b") if profile.model(s).family in ENCODER_FAMILIES})
    if encoders:
        return (f"{', '.join(encoders)} {'is a' if len(encoders) == 1 else 'are'} bidirectional encoder"
                f"{'' if len(encoders) == 1 else 's'} with no next-token prediction to steer")
    return ""


def headline_cells(table: pd.DataFrame, reference_alpha: float) -> pd.DataFrame:
    """One row per (comparison, layer pair, concept): the headline recipe and map.

    Columns of the table (less the per-scale ones) plus ``native_effect`` (B's own vector's
    effect at ``reference_alpha``) and ``null_median`` (median efficiency of the shuffled-pairing
    draws).
    """
    keys = ["comparison", "layer_a", "layer_b", "concept"]
    ref = float(reference_alpha)
    head = table[(table["recipe"] == HEADLINE_RECIPE) & (table["map"] == HEADLINE_MAP)]
    head = head.drop_duplicates(keys).drop(columns=["alpha", "effect", "side_effect", "draw"])
    native = table[(table["recipe"] == HEADLINE_RECIPE) & (table["map"] == NATIVE) & (table["alpha"] == ref)]
    null = table[(table["recipe"] == HEADLINE_RECIPE) & (table["map"] == "shuffled")]
    null = null.drop_duplicates([*keys, "draw"]).groupby(keys)["efficiency"].median().rename("null_median")
    head = head.merge(native[[*keys, "effect"]].rename(columns={"effect": "native_effect"}), on=keys, how="left")
    return head.merge(null.reset_index(), on=keys, how="left").reset_index(drop=True)


def pooled_test(table: pd.DataFrame, comparison: str) -> dict:
    """One test per comparison: the median headline efficiency over its cells against the same median
    of each shuffled-pairing draw (draw i of every cell together). No multiplicity; its smallest
    possible p is ``1 / (n_null + 1)``.

    Returns
    -------
    dict
        ``median`` (observed), ``null`` (array of draw medians), ``p`` (:func:`tail_p_value`),
        ``n_cells``.
    """
    sub = table[(table["comparison"] == comparison) & (table["recipe"] == HEADLINE_RECIPE)]
    keys = ["layer_a", "layer_b", "concept"]
    observed = sub[sub["map"] == HEADLINE_MAP].drop_duplicates(keys)["efficiency"]
    draws = sub[sub["map"] == "shuffled"].drop_duplicates([*keys, "draw"])
    null = draws.groupby("draw")["efficiency"].median().to_numpy()
    median = float(np.nanmedian(observed)) if observed.notna().any() else float("nan")
    p = tail_p_value(median, null) if np.isfinite(median) and null.size else float("nan")
    return {"median": median, "null": null, "p": float(p), "n_cells": int(observed.notna().sum())}


def steering_line(table: pd.DataFrame) -> str:
    """One line for the command line: the median headline efficiency of each comparison and its pooled p."""
    parts = []
    for comparison in dict.fromkeys(table["comparison"]):
        test = pooled_test(table, comparison)
        parts.append(f"{comparison} median efficiency {test['median']:.2f} over {test['n_cells']} cells "
                     f"(shuffled-pairing null median {np.median(test['null']):.2f}, p {test['p']:.3g})")
    return "steering transfer: " + "; ".join(parts) if parts else "steering transfer: no cell had enough concept tokens"


def steering_meta(profile, *, cache=None, out=None) -> dict:
    """What :func:`run_steering` recorded beside its table (key, seconds, settings, continuations)."""
    from saesim.config import Profile, load_profile

    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    cache = Path(cache) if cache is not None else Path(profile.cache_dir)
    out = Path(out) if out is not None else cache / "results"
    return json.loads((out / "steering_transfer.json").read_text())


def _plan(profile, settings, comparisons) -> dict:
    """comparison -> ((source slot, target slot), layer pairs at matched depth)."""
    plan = {}
    for name in settings.comparisons:
        src, dst = comparisons[name]
        pairs = matched_depth_pairs(profile.layers(src), _depth_span(profile, src) + 1, profile.layers(dst),
                                    _depth_span(profile, dst) + 1)
        if name == "full_space" and settings.pairs is not None:
            bad = [p for p in settings.pairs if p[0] not in profile.layers(src) or p[1] not in profile.layers(dst)]
            if bad:
                raise ValueError(f"`pairs` {bad} are not extracted layers of profile `{profile.name}` "
                                 f"(A {list(profile.layers(src))}, B {list(profile.layers(dst))}).")
            pairs = settings.pairs
        plan[name] = ((src, dst), pairs)
    return plan


def _sized(settings: SteeringSettings, grid) -> SteeringSettings:
    """Fill the text budget left at None from the size of the profile's token grid."""
    n_docs, width = grid.n_docs, grid.shape[1]
    fit = settings.n_fit_docs or max(1, min(FIT_DOCS, n_docs // 2))
    prompts = settings.n_prompts or max(1, min(PROMPTS, (n_docs - fit) // 4))
    tokens = settings.prompt_tokens or max(2, min(PROMPT_TOKENS, width // 2))
    return settings.replace(n_fit_docs=fit, n_prompts=prompts, prompt_tokens=tokens)


def _depth_span(profile, slot: str) -> int:
    """The deepest layer any slot of the same model extracts: relative depth is ``layer / span``.

    The profiles extract a model's first and last block, so this is the model's depth without
    loading it.
    """
    model = profile.model(slot).model
    return max(max(profile.layers(s)) for s in profile.slots if profile.model(s).model == model)


def _concept_rows(tokenizer, ids: np.ndarray, words) -> np.ndarray:
    """Rows whose token, normalised, is one of ``words``."""
    wanted = {normalise_token(w) for w in words}
    uniq, inverse = np.unique(ids, return_inverse=True)
    hit = np.array([normalise_token(tokenizer.decode([int(t)])) in wanted for t in uniq], dtype=bool)
    return hit[inverse]


def _prompts(view, tokenizer, words, settings):
    """Held-out neutral prompts: of the grid's documents after the held-in ones, the first
    ``prompt_tokens`` tokens of the ``n_prompts`` that hold the fewest of ``words`` (none, where
    enough such documents exist), and how many keyword tokens the chosen prompts hold in all."""
    width = settings.prompt_tokens
    wanted = {normalise_token(w) for w in words}
    docs = [d for d in range(settings.n_fit_docs, view.n_docs) if view.attention_mask[d, :width].sum() == width]
    if len(docs) < settings.n_prompts:
        raise ValueError(f"only {len(docs)} held-out documents (after the {settings.n_fit_docs} held-in ones) have "
                         f"{width} tokens; lower `n_prompts`, `prompt_tokens` or `n_fit_docs`.")
    hits = np.array([sum(normalise_token(tokenizer.decode([int(t)])) in wanted for t in view.ids[d, :width])
                     for d in docs])
    order = np.argsort(hits, kind="stable")[: settings.n_prompts]
    chosen = np.sort(np.asarray(docs)[order])
    return view.ids[chosen, :width], view.attention_mask[chosen, :width], view.keep[chosen, :width], int(hits[order].sum())


def _run_comparison(profile, grid, name, slots, pairs, settings, models, cache, progress):
    from saesim.experiments.grid import cached_best_partners, settings_from_profile
    from saesim.extract.capture import capture
    from saesim.extract.pipeline import load_layer
    from saesim.extract.steer import greedy_continuation, keyword_token_ids, steering_effects

    src, dst = slots
    loaded_src, loaded_dst = models.get(src), models.get(dst)
    view_src, view_dst = grid.for_tokenizer(loaded_src.tokenizer), grid.for_tokenizer(loaded_dst.tokenizer)
    fit_src, fit_dst = view_src.select_docs(settings.n_fit_docs), view_dst.select_docs(settings.n_fit_docs)
    layers_src, layers_dst = sorted({a for a, _ in pairs}), sorted({b for _, b in pairs})
    hooks = lambda slot, layers: [profile.model(slot).sae.hook.format(layer=l) for l in layers]  # noqa: E731
    acts_src = dict(zip(layers_src, capture(loaded_src, fit_src, hooks(src, layers_src), progress=progress,
                                            device="cpu").values()))
    acts_dst = dict(zip(layers_dst, capture(loaded_dst, fit_dst, hooks(dst, layers_dst), progress=progress,
                                            device="cpu").values()))
    row_ids = fit_src.kept_ids()
    # what depends on the concept alone: its held-in rows, B's prompts and B's keyword ids
    concepts = {}
    for concept, (plus_words, minus_words) in steering_concepts(settings.concepts).items():
        plus = _concept_rows(loaded_src.tokenizer, row_ids, plus_words)
        minus = None if minus_words is None else _concept_rows(loaded_src.tokenizer, row_ids, minus_words)
        n_rows = min(int(plus.sum()), int((~plus if minus is None else minus).sum()))
        prompts = ids = None  # a concept with too few held-in tokens is skipped (and recorded) below
        if n_rows >= MIN_CONCEPT_ROWS:
            prompts = _prompts(view_dst, loaded_dst.tokenizer, (*plus_words, *(minus_words or ())), settings)
            ids = (keyword_token_ids(loaded_dst.tokenizer, plus_words),
                   None if minus_words is None else keyword_token_ids(loaded_dst.tokenizer, minus_words))
        concepts[concept] = (plus_words, minus_words, plus, minus, n_rows, prompts, ids)
    compare = settings_from_profile(profile)
    rng = np.random.default_rng(settings.seed)
    records, examples, skipped = [], [], []
    for la, lb in pairs:
        data_s, data_t = load_layer(profile, src, la, out=cache), load_layer(profile, dst, lb, out=cache)
        best = cached_best_partners(data_s, data_t, compat=compare.compat, cache=cache)
        layer_s, layer_t = data_s.to_sae_layer(), data_t.to_sae_layer()
        kept, _ = filtered_pairs(best, layer_s, layer_t, compare, rule=compare.rules[0], direction="b_to_a")
        x, y = kept.rows(data_s.decoder, data_t.decoder)
        a_s, a_t = acts_src[la], acts_dst[lb]
        scale = float(np.linalg.norm(a_t, axis=1).mean())
        maps = {"procrustes": procrustes_map(x, y), "lstsq": lstsq_map(x, y), "activation": lstsq_map(a_s, a_t)}
        for concept, (plus_words, minus_words, plus, minus, n_rows, prompts, ids) in concepts.items():
            if prompts is None:
                skipped.append({"comparison": name, "layer_a": la, "layer_b": lb, "concept": concept,
                                "why": f"{n_rows} held-in tokens on its scarcer side (needs {MIN_CONCEPT_ROWS})"})
                continue
            vectors = _vectors(x, y, a_s, a_t, plus, minus, layer_s, layer_t, plus_words, minus_words, maps,
                               settings, rng)
            labels = list(vectors)
            mat = unit(np.stack([vectors[k] for k in labels])).astype(np.float32)
            prompt_ids, prompt_mask, prompt_keep, n_hits = prompts
            plus_ids, minus_ids = ids
            res = steering_effects(loaded_dst, prompt_ids, prompt_mask, prompt_keep, lb, mat,
                                   [a * scale for a in settings.alphas], plus_ids, minus_ids,
                                   batch_size=settings.n_prompts)
            common = dict(comparison=name, layer_a=la, layer_b=lb, concept=concept, n_pairs=kept.n_pairs,
                          n_concept_rows=int(plus.sum()), n_prompts=settings.n_prompts, prompt_keywords=n_hits)
            records.extend(_score(labels, res, settings, common, np.random.default_rng(rng.integers(2**63))))
            if not examples and name == "full_space" and (la, lb) == pairs[len(pairs) // 2]:
                examples = _examples(loaded_dst, prompt_ids[0], lb, labels, mat, settings.reference_alpha * scale,
                                     name, la, concept, greedy_continuation)
    frame = pd.DataFrame.from_records(records, columns=[c for c in STEERING_COLUMNS if c != "p_holm"])
    # Holm over the comparison's cells (headline recipe and map, one p per cell), on those rows only
    headline = (frame["recipe"] == HEADLINE_RECIPE) & (frame["map"] == HEADLINE_MAP)
    cells = frame.loc[headline, ["layer_a", "layer_b", "concept", "p"]].drop_duplicates(["layer_a", "layer_b", "concept"])
    finite = cells["p"].notna()
    cells["p_holm"] = np.nan
    cells.loc[finite, "p_holm"] = holm(cells.loc[finite, "p"].to_numpy())
    frame = frame.merge(cells.drop(columns="p"), on=["layer_a", "layer_b", "concept"], how="left")
    frame.loc[~headline.to_numpy(), "p_holm"] = np.nan
    return frame, examples, skipped


def _vectors(x, y, a_s, a_t, plus, minus, layer_s, layer_t, plus_words, minus_words, maps, settings, rng) -> dict:
    """``(recipe, map, draw) -> vector in B`` for one layer pair and concept (native vectors included)."""
    v_mean = mean_diff_vector(a_s, plus, minus)
    native_mean = mean_diff_vector(a_t, plus, minus)
    out = {("mean_diff", NATIVE, 0): native_mean}
    members_s = members(layer_s.top, layer_s.windows, plus_words)
    members_t = members(layer_t.top, layer_t.windows, plus_words)
    contrast_s = None if minus_words is None else members(layer_s.top, layer_s.windows, minus_words)
    contrast_t = None if minus_words is None else members(layer_t.top, layer_t.windows, minus_words)
    has_decoder = members_s.size and members_t.size and (minus_words is None or (contrast_s.size and contrast_t.size))
    for name, w in maps.items():
        out[("mean_diff", name, 0)] = v_mean @ w
    if has_decoder:
        v_dec = decoder_sum_vector(layer_s.decoder, members_s, contrast_s)
        out[("decoder_sum", NATIVE, 0)] = decoder_sum_vector(layer_t.decoder, members_t, contrast_t)
        out[("decoder_sum", "procrustes", 0)] = v_dec @ maps["procrustes"]
    for draw in range(settings.n_null):
        out[("mean_diff", "shuffled", draw)] = v_mean @ procrustes_map(x, y[rng.permutation(len(y))])
    d_a, d_b = a_s.shape[1], a_t.shape[1]
    for draw in range(settings.n_random):
        out[("mean_diff", "random_orthogonal", draw)] = v_mean @ random_orthogonal_map(d_a, d_b, rng)
        out[("mean_diff", "random_vector", draw)] = rng.standard_normal(d_b)
    return out


def _score(labels, res, settings, common, rng) -> list[dict]:
    """Records of one (layer pair, concept): efficiency, interval and p of every vector, at every scale."""
    alphas = np.asarray(settings.alphas)
    ref = int(np.flatnonzero(alphas == settings.reference_alpha)[0])
    effect, side = res.effect, res.side_effect  # (V, A, P)
    index = {label: i for i, label in enumerate(labels)}
    n_prompts = effect.shape[2]
    boots = rng.integers(0, n_prompts, size=(settings.n_boot, n_prompts))
    means = effect.mean(axis=2), side.mean(axis=2)
    boot_means = effect[:, :, boots].mean(axis=3), side[:, :, boots].mean(axis=3)  # (V, A, n_boot)

    def efficiency(i, native, b=None):
        e, s = means if b is None else (boot_means[0][:, :, b], boot_means[1][:, :, b])
        return transfer_efficiency(e[i], s[i], e[native], s[native], s[native, ref])

    nulls = {recipe: np.array([efficiency(index[k], index[(recipe, NATIVE, 0)])
                               for k in labels if k[1] == "shuffled" and k[0] == recipe])
             for recipe in {k[0] for k in labels} if (recipe, NATIVE, 0) in index}
    records = []
    for label in labels:
        recipe, map_name, draw = label
        native = index[(recipe, NATIVE, 0)]
        eff = efficiency(index[label], native)
        boot = np.array([efficiency(index[label], native, b) for b in range(len(boots))]) if map_name in (
            HEADLINE_MAP, "lstsq", "activation", NATIVE) and draw == 0 else np.array([])
        boot = boot[np.isfinite(boot)]
        null = nulls.get(recipe, np.array([]))
        p = (tail_p_value(eff, null[np.isfinite(null)]) if map_name in (HEADLINE_MAP, "lstsq", "activation")
             and recipe == HEADLINE_RECIPE and np.isfinite(eff) and np.isfinite(null).any() else np.nan)
        low, high = (np.quantile(boot, [0.025, 0.975]) if boot.size >= 20 else (np.nan, np.nan))
        for a, alpha in enumerate(alphas):
            records.append({**common, "recipe": recipe, "map": map_name, "draw": draw, "alpha": float(alpha),
                            "effect": float(effect[index[label], a].mean()),
                            "side_effect": float(side[index[label], a].mean()), "efficiency": eff, "p": p,
                            "ci_low": float(low), "ci_high": float(high)})
    return records


def _examples(loaded, prompt, layer, labels, mat, alpha, comparison, layer_a, concept, continue_fn) -> list[dict]:
    """Greedy continuations of one neutral prompt: unsteered, native, mapped, shuffled null (illustration)."""
    text = loaded.tokenizer.decode(prompt, skip_special_tokens=True)
    rows = [{"comparison": comparison, "layer_a": layer_a, "layer_b": layer, "concept": concept, "prompt": text,
             "vector": "unsteered", "continuation": continue_fn(loaded, prompt, layer, None, 0.0)}]
    for label in (("mean_diff", NATIVE, 0), ("mean_diff", HEADLINE_MAP, 0), ("mean_diff", "shuffled", 0)):
        if label in labels:
            vec = mat[labels.index(label)]
            rows.append({**rows[0], "vector": label[1], "continuation": continue_fn(loaded, prompt, layer, vec, alpha)})
    return rows
