"""The SAE frontier: how seed stability and held-out FVU grow with training tokens, epochs and width on this machine.

Issue #22 asks for SAEs whose features reproduce across seeds (PW-MCC >= 0.6,
at least 25 % of the latents shared at decoder cosine >= 0.7, held-out FVU <=
0.40). :func:`sae_frontier` trains two SAEs (two seeds) at each point of a
small design around a profile's recipe (:func:`default_points`: fewer tokens,
more epochs, a narrower SAE) and measures, per point, the training time, the
held-out FVU, the dead fraction, L0 and the seed stability of the two SAEs
(:func:`saesim.compare.stability.sae_stability`, the columns of
:data:`saesim.experiments.sae_quality.STABILITY_COLUMNS`). :func:`projection`
fits stability against log2(training tokens) and says how many tokens (and
CPU minutes) the targets would take on that fit. :func:`frontier_for_profile`
runs the design on a profile's stored activations and keeps the table
(:func:`saesim.experiments.sweeps.kept_table`).

References
----------
Paulo and Belrose, "Sparse Autoencoders Trained on the Same Data Learn
Different Features", arXiv:2501.16615 (2025).

Song et al., "Position: Mechanistic Interpretability Should Prioritize Feature
Consistency in SAEs", arXiv:2505.20254 (2025).

Gao et al., "Scaling and evaluating sparse autoencoders", arXiv:2406.04093
(2024) — TopK SAEs.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from saesim.compare.stability import SHARED_THRESHOLD, sae_stability
from saesim.experiments.sae_quality import STABILITY_COLUMNS
from saesim.validation import check_positive_int

__all__ = [
    "AXES",
    "FIT_AXES",
    "FRONTIER_COLUMNS",
    "FRONTIER_VERSION",
    "RECIPE_AXES",
    "TARGET_FVU",
    "TARGET_PW_MCC",
    "TARGET_SHARED",
    "FrontierPoint",
    "default_points",
    "frontier_for_profile",
    "input_scale",
    "projection",
    "sae_frontier",
]

logger = logging.getLogger(__name__)

FRONTIER_VERSION = 2
"""Mixed into the kept table's key; bump when a frontier row changes (2: the optimizer, learning-rate and
input-scaling columns)."""

AXES = ("tokens", "epochs", "width", "profile", "k", "optimizer", "lr", "normalise")
"""What a point varies: the training tokens, the epochs, the width, or none (the profile's own recipe); and the
recipe axes (:data:`RECIPE_AXES`): k, the optimizer (with its learning-rate schedule), the learning rate and
the input scaling."""

RECIPE_AXES = ("k", "optimizer", "lr", "normalise")
"""The axes :func:`default_points` measures at a quarter of the profile's tokens, beside the tokens axis's
point there (its baseline): the recipe changes other than more text, epochs or a narrower SAE."""

TARGET_PW_MCC = 0.6
"""Issue #22's target for the PW-MCC of two SAEs that differ by seed only."""

TARGET_SHARED = 0.25
"""Issue #22's target for the fraction of latents shared at decoder cosine >= 0.7."""

TARGET_FVU = 0.40
"""Issue #22's target for the held-out FVU (the extraction's ``HELDOUT_FVU_TARGET``)."""

FIT_AXES = ("tokens", "profile")
"""The rows :func:`projection` fits: the tokens axis and the profile's point (same epochs and width)."""

FRONTIER_COLUMNS = ("axis", "train_tokens", "epochs", "num_latents", "k", "optimizer", "lr", "normalise",
                    "token_steps", "seconds", "tokens_per_s",
                    "fvu_heldout", "dead_fraction", "mean_l0") + STABILITY_COLUMNS + ("n_heldout", "n_seeds")
"""Columns of :func:`sae_frontier`, in order."""

_FLAT_SLOPE = 1e-9
"""A fitted slope at or below this (per doubling of the tokens) counts as not rising: no finite projection."""

_INT_COLUMNS = ("train_tokens", "epochs", "num_latents", "k", "token_steps", "n_heldout", "n_seeds")
_TIMING_COLUMNS = ("seconds", "tokens_per_s")


@dataclass(frozen=True)
class FrontierPoint:
    """One training recipe of the frontier: how many tokens, epochs and latents, and which axis it belongs to.

    Attributes
    ----------
    axis : {"tokens", "epochs", "width", "profile", "k", "optimizer", "lr", "normalise"}
        What the point varies against the profile's recipe; ``"profile"`` is the recipe itself.
    train_tokens : int
        Training rows (the first ``train_tokens`` of the training activations).
    epochs : int
        Passes over them.
    num_latents : int
        Width of the SAE.
    k : int
        Active latents per token.
    optimizer : {"signum", "adam"}, default "signum"
        The optimizer and its schedule (:func:`saesim.extract.saes.train_topk_sae`).
    lr : float, optional
        The learning rate; None: the run's (the profile's ``sae.lr``, or sparsify's default).
    normalise : bool, default False
        Scale the inputs so that the training rows' mean norm is sqrt(d), as SAELens's
        ``normalize_activations="expected_average_only_in"`` does; the held-out rows are scaled by
        the same factor (FVU and the stability measures are scale-free). Without it the SAE sees the
        raw residual stream.
    """

    axis: Literal["tokens", "epochs", "width", "profile", "k", "optimizer", "lr", "normalise"]
    train_tokens: int
    epochs: int
    num_latents: int
    k: int
    optimizer: Literal["signum", "adam"] = "signum"
    lr: float | None = None
    normalise: bool = False

    def __post_init__(self):
        if self.axis not in AXES:
            raise ValueError(f"`axis` must be one of {list(AXES)}; got {self.axis!r}.")
        for name in ("train_tokens", "epochs", "num_latents", "k"):
            object.__setattr__(self, name, check_positive_int(getattr(self, name), name))
        if self.k > self.num_latents:
            raise ValueError(f"`k` ({self.k}) cannot exceed `num_latents` ({self.num_latents}).")
        if self.optimizer not in ("signum", "adam"):
            raise ValueError(f"`optimizer` must be 'signum' or 'adam'; got {self.optimizer!r}.")
        if self.lr is not None and not 0 < float(self.lr) < 1:
            raise ValueError(f"`lr` must be in (0, 1) or None (the recipe's); got {self.lr!r}.")
        if not isinstance(self.normalise, (bool, np.bool_)):
            raise ValueError(f"`normalise` must be True or False; got {self.normalise!r}.")
        object.__setattr__(self, "normalise", bool(self.normalise))

    def to_dict(self) -> dict:
        """The point as a plain dict (a cache key's part, a table row's settings).

        ``optimizer``, ``lr`` and ``normalise`` are left out at their defaults (``"signum"``, None,
        False), so the kept tables of designs without them keep their keys.
        """
        out = dataclasses.asdict(self)
        if out["optimizer"] == "signum":
            del out["optimizer"]
        if out["lr"] is None:
            del out["lr"]
        if not out["normalise"]:
            del out["normalise"]
        return out


def default_points(train_tokens: int, epochs: int, num_latents: int, k: int, *, lr: float | None = None,
                   recipe_axes: bool = True) -> tuple[FrontierPoint, ...]:
    """The frontier's design around one recipe (T tokens, E epochs, W latents, k, learning rate).

    * tokens axis: T/8, T/4, T/2 tokens at E epochs and W latents;
    * the profile's point: T, E, W (axis ``"profile"``);
    * epochs axis: 2E and 4E epochs at T/4 tokens, W latents;
    * width axis: W/4 and W/2 latents at T/2 tokens, E epochs;
    * with ``recipe_axes`` (:data:`RECIPE_AXES`), at T/4 tokens, E epochs and W latents, beside
      the tokens axis's point there: k/2 and 2k; Adam with its linear-decay schedule at sparsify's
      Adam rate for W; half and twice the learning rate; inputs scaled to a mean norm of sqrt(d).

    Per seed the design costs about 3.75 profile SAEs without the recipe axes (token-steps weighted
    by width: 0.875 on the tokens axis, 1 for the profile's point, 1.5 for the epochs, 0.375 for the
    narrower SAEs) and about 5.25 with them (six more SAEs at a quarter of the tokens). Points that
    would have fewer latents than ``k`` (or than their own k), k < 1 or fewer than 2 tokens are left
    out, and so is a repeat of an earlier point.

    Parameters
    ----------
    train_tokens, epochs, num_latents, k : int
        The profile's recipe (``sae.train_tokens``, ``sae.epochs``, ``sae.num_latents``, ``sae.k``).
    lr : float, optional
        The recipe's learning rate (``sae.lr``); None: sparsify's default for W
        (:func:`saesim.extract.saes.default_lr`). The learning-rate axis halves and doubles it.
    recipe_axes : bool, default True
        Add the recipe axes' points.

    Returns
    -------
    tuple of FrontierPoint
        In the order above.

    Examples
    --------
    >>> [(p.axis, p.train_tokens, p.epochs, p.num_latents) for p in default_points(64000, 2, 4096, 32)][:4]
    [('tokens', 8000, 2, 4096), ('tokens', 16000, 2, 4096), ('tokens', 32000, 2, 4096), ('profile', 64000, 2, 4096)]
    >>> [(p.axis, p.k, p.optimizer, p.lr, p.normalise) for p in default_points(64000, 2, 4096, 32, lr=0.005)][8:]
    ... # doctest: +NORMALIZE_WHITESPACE
    [('k', 16, 'signum', None, False), ('k', 64, 'signum', None, False), ('optimizer', 32, 'adam', 0.0008, False),
     ('lr', 32, 'signum', 0.0025, False), ('lr', 32, 'signum', 0.01, False), ('normalise', 32, 'signum', None, True)]
    """
    from saesim.extract.saes import default_lr

    t, e, w = (check_positive_int(v, n) for v, n in ((train_tokens, "train_tokens"), (epochs, "epochs"),
                                                     (num_latents, "num_latents")))
    k = check_positive_int(k, "k")
    if k > w:
        raise ValueError(f"`k` ({k}) cannot exceed `num_latents` ({w}).")
    if lr is not None and not 0 < float(lr) < 1:
        raise ValueError(f"`lr` must be in (0, 1) or None (sparsify's default); got {lr!r}.")
    base_lr = float(lr) if lr is not None else default_lr(w)
    specs = [("tokens", t // 8, e, w, {}), ("tokens", t // 4, e, w, {}), ("tokens", t // 2, e, w, {}),
             ("profile", t, e, w, {}),
             ("epochs", t // 4, 2 * e, w, {}), ("epochs", t // 4, 4 * e, w, {}),
             ("width", t // 2, e, w // 4, {}), ("width", t // 2, e, w // 2, {})]
    if recipe_axes:
        quarter = t // 4
        specs += [("k", quarter, e, w, {"k": k // 2}), ("k", quarter, e, w, {"k": 2 * k}),
                  ("optimizer", quarter, e, w, {"optimizer": "adam", "lr": default_lr(w, "adam")}),
                  ("lr", quarter, e, w, {"lr": base_lr / 2}), ("lr", quarter, e, w, {"lr": base_lr * 2}),
                  ("normalise", quarter, e, w, {"normalise": True})]
    out, seen = [], set()
    for axis, tokens, ep, width, extra in specs:
        point_k = int(extra.get("k", k))
        if tokens < 2 or point_k < 1 or width < point_k or extra.get("lr", 0.0) >= 1:
            continue
        point = FrontierPoint(axis, tokens, ep, width, point_k, optimizer=extra.get("optimizer", "signum"),
                              lr=extra.get("lr"), normalise=bool(extra.get("normalise", False)))
        same = dataclasses.astuple(point)[1:]  # the recipe, whichever axis names it
        if same in seen:
            continue
        seen.add(same)
        out.append(point)
    return tuple(out)


def sae_frontier(train_acts, heldout_acts, points, *, seeds=(0, 1), k: int | None = None, batch_size: int,
                 lr: float | None, trainer: Literal["reference", "sparse"] = "sparse", num_threads: int | None = None,
                 progress: bool = False) -> pd.DataFrame:
    """Train SAEs at each point with every seed; measure held-out FVU, sparsity, time and seed stability.

    Parameters
    ----------
    train_acts : ndarray, shape (n_train, d)
        Training activations, rows in training order; a point trains on the first
        ``point.train_tokens`` rows (so the points of the tokens axis are nested).
    heldout_acts : ndarray, shape (n_heldout, d)
        Rows no SAE trains on: the FVU, dead fraction, L0 and activation correlations are measured here.
    points : sequence of FrontierPoint
        The design (:func:`default_points`).
    seeds : sequence of int, default (0, 1)
        One SAE per seed and point; at least two. The stability columns are the mean over every pair of seeds.
    k : int, optional
        A check: when given, every point must have this ``k`` (the points carry their own).
    batch_size : int
        Tokens per training step (the profile's ``sae.batch_size``).
    lr : float or None
        Learning rate; None: sparsify's default for each point's width
        (:func:`saesim.extract.saes.default_lr`).
    trainer : {"reference", "sparse"}, default "sparse"
        The training loop (:func:`saesim.extract.saes.train_topk_sae`); the same recipe either way.
    num_threads : int, optional
        torch CPU threads while training (None: torch's setting). Pass 1 for tiny SAEs: their steps
        are too small to split, and on a busy machine spinning OpenMP threads make them many times
        slower.
    progress : bool, default False
        A ``tqdm`` bar over the SAEs.

    Returns
    -------
    pandas.DataFrame
        One row per point, columns :data:`FRONTIER_COLUMNS`: the point (``axis``,
        ``train_tokens``, ``epochs``, ``num_latents``, ``k``, ``optimizer``, ``lr`` (the rate it
        trained at: the point's, else ``lr``, else sparsify's default), ``normalise``), ``token_steps``
        (``train_tokens * epochs``), ``seconds`` (mean training seconds per SAE,
        evaluation left out), ``tokens_per_s`` (``token_steps / seconds``),
        ``fvu_heldout``, ``dead_fraction`` (latents that never fire on the held-out
        rows) and ``mean_l0`` (means over the seeds), the stability columns
        :data:`~saesim.experiments.sae_quality.STABILITY_COLUMNS` (decoder and
        encoder matching, chance level, activation matching on the held-out rows),
        ``n_heldout`` and ``n_seeds``.

    Raises
    ------
    ValueError
        Fewer than two seeds, a point needing more training rows than ``train_acts`` has,
        activations of different widths, fewer than 2 held-out rows, or a point whose ``k``
        differs from ``k``.

    Notes
    -----
    Deterministic for the same inputs and torch thread count, apart from the timing columns
    (``seconds``, ``tokens_per_s``): the SAEs are seeded (:func:`~saesim.extract.saes.train_topk_sae`)
    and the chance level uses seed 0.
    """
    from saesim.extract.saes import code_stats, default_lr, encode, train_topk_sae

    points, seeds = _validate(train_acts, heldout_acts, points, seeds, k)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(points) * len(seeds), desc="SAE frontier", unit="SAE")
    records = []
    try:
        for point in points:
            rows = train_acts[: point.train_tokens]
            held = heldout_acts
            if point.normalise:
                scale = input_scale(rows)
                rows, held = rows * scale, heldout_acts * scale
            point_lr = lr if point.lr is None else point.lr
            point_lr = float(point_lr) if point_lr is not None else default_lr(point.num_latents, point.optimizer)
            trained, stats, codes = [], [], []
            for seed in seeds:
                sae = train_topk_sae(rows, num_latents=point.num_latents, k=point.k, seed=int(seed),
                                     epochs=point.epochs, batch_size=int(batch_size), lr=point_lr,
                                     optimizer=point.optimizer, trainer=trainer, num_threads=num_threads,
                                     progress=False, evaluate=False)
                held_codes = encode(sae.weights, held, progress=False)
                trained.append(sae)
                codes.append(held_codes)
                stats.append(code_stats(sae.weights, held, held_codes))
                if bar is not None:
                    bar.update(1)
            stability = [sae_stability(trained[i].weights.W_dec, trained[j].weights.W_dec,
                                       encoder_a=trained[i].weights.W_enc.T, encoder_b=trained[j].weights.W_enc.T,
                                       codes_a=codes[i], codes_b=codes[j], threshold=SHARED_THRESHOLD,
                                       seed=0).to_dict()
                         for i, j in itertools.combinations(range(len(seeds)), 2)]
            seconds = float(np.mean([s.seconds for s in trained]))
            token_steps = point.train_tokens * point.epochs
            records.append({
                **dataclasses.asdict(point), "lr": point_lr, "token_steps": token_steps, "seconds": seconds,
                "tokens_per_s": token_steps / seconds if seconds > 0 else float("nan"),
                "fvu_heldout": float(np.mean([s["fvu"] for s in stats])),
                "dead_fraction": float(np.mean([s["dead_fraction"] for s in stats])),
                "mean_l0": float(np.mean([s["mean_l0"] for s in stats])),
                **{c: float(np.mean([s[c] for s in stability])) for c in STABILITY_COLUMNS},
                "n_heldout": int(heldout_acts.shape[0]), "n_seeds": len(seeds),
            })
            logger.info("frontier %s: %d tokens x %d epochs, %d latents: PW-MCC %.3f, held-out FVU %.3f",
                        point.axis, point.train_tokens, point.epochs, point.num_latents, records[-1]["pw_mcc"],
                        records[-1]["fvu_heldout"])
    finally:
        if bar is not None:
            bar.close()
    frame = pd.DataFrame.from_records(records, columns=list(FRONTIER_COLUMNS))
    for column in _INT_COLUMNS:
        frame[column] = frame[column].astype("int64")
    for column in FRONTIER_COLUMNS:
        if column not in _INT_COLUMNS and column not in ("axis", "optimizer", "normalise"):
            frame[column] = frame[column].astype("float64")
    frame["axis"] = frame["axis"].astype(str)
    frame["optimizer"] = frame["optimizer"].astype(str)
    frame["normalise"] = frame["normalise"].astype(bool)
    return frame


def input_scale(rows) -> float:
    """The factor that gives ``rows`` a mean L2 norm of sqrt(d) (SAELens's ``expected_average_only_in``).

    Examples
    --------
    >>> round(input_scale(np.full((4, 16), 2.0)), 6)  # each row has norm 8; sqrt(16) = 4
    0.5
    """
    rows = np.asarray(rows, dtype=np.float64)
    mean_norm = float(np.linalg.norm(rows, axis=1).mean()) if rows.size else 0.0
    if not (mean_norm > 0 and math.isfinite(mean_norm)):
        raise ValueError(f"cannot scale rows whose mean norm is {mean_norm}; the training rows are empty, all zero "
                         "or not finite.")
    return math.sqrt(rows.shape[1]) / mean_norm


def projection(frame: pd.DataFrame, *, target_pw_mcc: float = TARGET_PW_MCC, target_shared: float = TARGET_SHARED,
               epochs: int | None = None) -> dict:
    """How many training tokens (and CPU minutes) the stability targets need, on a log-linear fit.

    Fits ``value = intercept + slope * log2(train_tokens)`` by least squares to ``pw_mcc``
    and to ``shared_dec`` over the rows of the tokens axis and the profile's point (the
    same epochs and width; :data:`FIT_AXES`), and solves each fit for its target.

    A log-linear extrapolation far beyond the measured range is a rough guide only:
    stability cannot pass 1 and tends to saturate, so the fit's answer is a lower bound on
    the effort where the curve bends over, and says nothing once the dictionary itself
    changes (another width, learning rate or text).

    Parameters
    ----------
    frame : pandas.DataFrame
        A :func:`sae_frontier` table.
    target_pw_mcc : float, default 0.6
    target_shared : float, default 0.25
        The targets of ``pw_mcc`` and ``shared_dec`` (issue #22).
    epochs : int, optional
        Epochs the projected recipe would train for; default: the profile point's (or the
        tokens axis's) epochs.

    Returns
    -------
    dict
        ``"pw_mcc"`` and ``"shared_dec"``: each a dict with ``target``, ``intercept``,
        ``slope`` (per doubling of the tokens), ``tokens`` (the tokens the fit needs to reach
        the target: ``inf`` when the slope is <= 0, NaN when there is no fit), ``minutes``
        (CPU minutes to train one SAE on them: ``tokens * epochs / tokens_per_s / 60``; the
        stability needs two), ``fold`` (``tokens`` over the largest measured tokens),
        ``reached`` (a measured point of the fit's rows reaches the target), ``best``
        (the best measured value of the fit's rows), ``rises`` (the slope is positive) and
        ``reason`` (why there is no finite answer; empty otherwise). Also ``epochs``, ``tokens_per_s`` (all token-steps of the
        fit's rows over their seconds), ``measured_tokens`` ((smallest, largest)) and
        ``n_points``.

    Examples
    --------
    >>> tokens = np.array([1000, 2000, 4000, 8000])
    >>> frame = pd.DataFrame({"axis": ["tokens"] * 3 + ["profile"], "train_tokens": tokens, "epochs": 2,
    ...                       "token_steps": 2 * tokens, "seconds": 2 * tokens / 1000.0,
    ...                       "pw_mcc": 0.1 * np.log2(tokens / 1000) + 0.3, "shared_dec": 0.05})
    >>> proj = projection(frame)
    >>> round(proj["pw_mcc"]["tokens"]), round(proj["pw_mcc"]["minutes"], 4)
    (8000, 0.2667)
    >>> proj["shared_dec"]["tokens"], proj["shared_dec"]["reason"].startswith("the fit does not rise")
    (inf, True)
    """
    missing = [c for c in ("axis", "train_tokens", "token_steps", "seconds", "pw_mcc", "shared_dec")
               if c not in frame.columns]
    if missing:
        raise ValueError(f"`frame` lacks columns {missing}; pass a table of sae_frontier.")
    rows = frame[frame["axis"].isin(FIT_AXES)]
    if epochs is None:
        pick = rows[rows["axis"] == "profile"] if (rows["axis"] == "profile").any() else rows
        epochs = int(pick["epochs"].iloc[0]) if len(pick) and "epochs" in pick.columns else None
    seconds = float(rows["seconds"].sum()) if len(rows) else float("nan")
    rate = float(rows["token_steps"].sum()) / seconds if seconds > 0 else float("nan")
    largest = float(rows["train_tokens"].max()) if len(rows) else float("nan")
    out = {"epochs": epochs, "tokens_per_s": rate, "n_points": int(len(rows)),
           "measured_tokens": (int(rows["train_tokens"].min()), int(largest)) if len(rows) else (0, 0)}
    for column, target in (("pw_mcc", float(target_pw_mcc)), ("shared_dec", float(target_shared))):
        out[column] = _fit(rows, column, target, epochs=epochs, rate=rate, largest=largest)
    return out


def _fit(rows: pd.DataFrame, column: str, target: float, *, epochs, rate: float, largest: float) -> dict:
    x = np.log2(rows["train_tokens"].to_numpy(dtype=float))
    y = rows[column].to_numpy(dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    nan = float("nan")
    result = {"target": target, "intercept": nan, "slope": nan, "tokens": nan, "minutes": nan, "fold": nan,
              "reached": bool(y.size and y.max() >= target), "best": float(y.max()) if y.size else nan,
              "rises": False, "reason": ""}
    if np.unique(x).size < 2:
        result["reason"] = (f"no fit: {np.unique(x).size} distinct token count(s) with a finite {column} on the "
                            "tokens axis (two are needed)")
        return result
    slope, intercept = np.polyfit(x, y, 1)
    result.update(intercept=float(intercept), slope=float(slope), rises=bool(slope > _FLAT_SLOPE))
    if slope <= _FLAT_SLOPE:
        result.update(tokens=math.inf, minutes=math.inf, fold=math.inf,
                      reason=f"the fit does not rise with the training tokens (slope {slope:+.3g} per doubling)")
        return result
    exponent = (target - intercept) / slope
    tokens = math.inf if exponent > 1023 else float(2.0 ** exponent)
    result["tokens"] = tokens
    if not math.isfinite(tokens):
        result.update(minutes=math.inf, fold=math.inf, reason="the fit reaches the target beyond 2^1023 tokens")
        return result
    result["fold"] = tokens / largest if largest > 0 else nan
    if epochs is not None and rate > 0 and math.isfinite(rate):
        result["minutes"] = tokens * int(epochs) / rate / 60.0
    else:
        result["reason"] = "no training rate measured (seconds missing), so no minutes"
    return result


def frontier_for_profile(profile, *, cache=None, slot: str = "a", layer: int | None = None, points=None,
                         seeds=(0, 1), out=None, progress: bool = False) -> pd.DataFrame:
    """The frontier of one layer of a profile, on its stored activations, kept on disk.

    Parameters
    ----------
    profile : saesim.config.Profile or str
    cache : path, optional
        Root of the artefact store (default ``profile.cache_dir``).
    slot : {"a", "b"}, default "a"
        Whose SAE recipe and activations.
    layer : int, optional
        Default: the sweeps' layer (:func:`saesim.experiments.sweeps.default_sweep_pair`), whose raw
        activations extraction keeps.
    points : sequence of FrontierPoint, optional
        Default :func:`default_points` of the slot's recipe (``sae.train_tokens``, ``sae.epochs``,
        ``sae.num_latents``, ``sae.k``).
    seeds : sequence of int, default (0, 1)
    out : path, optional
        Folder of the kept table (default ``<cache>/results/robustness``; kept under ``kept/``).
    progress : bool, default False
        A ``tqdm`` bar over the SAEs (each point is logged either way).

    Returns
    -------
    pandas.DataFrame
        :func:`sae_frontier`'s table with ``slot`` and ``layer`` added.

    Notes
    -----
    The training rows: with ``sae.train_text`` set, the activations of the SAE's own training
    text (:func:`saesim.extract.pipeline.load_train_activations`), every grid row held out;
    otherwise the first ``sae.train_tokens`` grid rows, the rest held out (a recipe with no
    ``train_tokens`` trains on the first three quarters of the grid here, so that some rows
    are held out). The SAEs train on the CPU with the recipe's CPU budget, learning rate,
    batch size and trainer. The table is kept (:func:`saesim.experiments.sweeps.kept_table`)
    under a key holding ``profile.key()``, the slot, layer, points, seeds and
    :data:`FRONTIER_VERSION`: a rebuild reads it back.

    Raises
    ------
    ValueError
        The slot's SAE has no width or k, or the activations are not stored (the message
        says which extraction to run).
    """
    from saesim.config import Profile, load_profile
    from saesim.experiments.sweeps import default_sweep_pair, kept_table

    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    cache = Path(cache) if cache is not None else Path(profile.cache_dir)
    if slot not in ("a", "b"):
        raise ValueError(f"`slot` must be 'a' or 'b' (the slots whose activations extraction keeps); got {slot!r}.")
    spec = profile.model(slot).sae
    if spec.num_latents is None or spec.k is None:
        raise ValueError(f"slot {slot!r} of profile `{profile.name}` gives no `sae.num_latents` or `sae.k`; the "
                         "frontier trains TopK SAEs of the profile's recipe and needs both (set them in the profile).")
    layer = int(default_sweep_pair(profile)[0 if slot == "a" else 1] if layer is None else layer)
    train, heldout, train_tokens = _training_rows(profile, cache, slot, layer)
    points = tuple(default_points(train_tokens, spec.epochs, spec.num_latents, spec.k, lr=spec.lr)
                   if points is None else points)
    trainer = getattr(spec, "trainer", "reference")
    key = {"profile": profile.key(), "slot": slot, "layer": layer, "points": [p.to_dict() for p in points],
           "seeds": [int(s) for s in seeds], "frontier_version": FRONTIER_VERSION}
    folder = Path(out) if out is not None else cache / "results" / "robustness"

    def compute():
        frame = sae_frontier(train, heldout, points, seeds=seeds, batch_size=spec.batch_size, lr=spec.lr,
                             trainer=trainer, progress=progress)
        return frame.assign(slot=slot, layer=layer)

    return kept_table(folder, "sae_frontier", key, compute)


def _training_rows(profile, cache: Path, slot: str, layer: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The training rows, the held-out rows and the recipe's training tokens of ``(slot, layer)``."""
    from saesim.extract import pipeline

    spec = profile.model(slot).sae
    fix = (f"run `saesim extract --profile {profile.name}` first (extraction keeps the raw activations of the "
           f"baseline layers, {profile.baseline_layer_pairs()}, A's and B's)")
    grid = pipeline.load_activations(profile, slot, layer, out=cache)
    if grid is None:
        raise ValueError(f"the raw activations of slot {slot!r} layer {layer} of profile `{profile.name}` are not "
                         f"stored under the cache {cache}; {fix}.")
    if getattr(spec, "train_text", ()):
        # stored by extraction for the kept layers; captured here (one forward over the text) otherwise
        train = pipeline.train_activations(profile, slot, layer, out=cache)
        tokens = int(spec.train_tokens) if spec.train_tokens is not None else int(train.shape[0])
        if train.shape[0] < tokens:
            raise ValueError(f"the stored training-text activations have {train.shape[0]} rows but `sae.train_tokens` "
                             f"is {tokens}; {fix}.")
        return train, grid, tokens
    tokens = int(spec.train_tokens) if spec.train_tokens is not None else (3 * grid.shape[0]) // 4
    if not 2 <= tokens <= grid.shape[0] - 2:
        raise ValueError(f"`sae.train_tokens` ({tokens}) leaves no held-out rows of the {grid.shape[0]} grid rows "
                         f"of profile `{profile.name}`; the frontier needs at least 2 of each.")
    return grid[:tokens], grid[tokens:], tokens


def _validate(train_acts, heldout_acts, points, seeds, k) -> tuple[tuple[FrontierPoint, ...], tuple[int, ...]]:
    points = tuple(points)
    if not points:
        raise ValueError("`points` is empty; pass the design, e.g. default_points(train_tokens, epochs, "
                         "num_latents, k).")
    bad = [p for p in points if not isinstance(p, FrontierPoint)]
    if bad:
        raise TypeError(f"`points` must hold FrontierPoint objects; got {type(bad[0]).__name__}.")
    seeds = tuple(int(check_positive_int(s, "seeds", minimum=0)) for s in seeds)
    if len(set(seeds)) < 2:
        raise ValueError(f"`seeds` must name at least two different seeds (stability compares their SAEs); got "
                         f"{list(seeds)}.")
    for name, acts in (("train_acts", train_acts), ("heldout_acts", heldout_acts)):
        if np.ndim(acts) != 2:
            raise ValueError(f"`{name}` must be 2-D (tokens x d); got shape {np.shape(acts)}.")
    if train_acts.shape[1] != heldout_acts.shape[1]:
        raise ValueError(f"`train_acts` has width {train_acts.shape[1]} but `heldout_acts` {heldout_acts.shape[1]}; "
                         "both must come from the same hook.")
    if heldout_acts.shape[0] < 2:
        raise ValueError(f"`heldout_acts` has {heldout_acts.shape[0]} rows; held-out FVU needs at least 2.")
    need = max(p.train_tokens for p in points)
    if need > train_acts.shape[0]:
        raise ValueError(f"a point trains on {need} tokens but `train_acts` has {train_acts.shape[0]} rows; pass "
                         "more training rows or smaller points.")
    if k is not None and any(p.k != k for p in points):
        raise ValueError(f"`k` is {k} but the points have k = {sorted({p.k for p in points})}; the points carry "
                         "their own k (pass k=None).")
    return points, seeds
