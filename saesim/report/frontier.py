"""The SAE frontier in words and as a table: the sweeps chapter's section on how stable the SAEs can get here.

Everything here reads a :func:`saesim.experiments.sae_frontier.sae_frontier` table and its
:func:`~saesim.experiments.sae_frontier.projection`, and writes English that follows from the
numbers only (a target is "reached" or "not reached" as the table says, the projection's budget
is the fit's). The literature's figures appear only as the literature's, with their citations
(:data:`saesim.report.scope.LITERATURE_STABILITY`). The figure is
:func:`saesim.report.plots.plot_sae_frontier`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from saesim import vocab
from saesim.report._plot_frontier import plot_sae_frontier, plot_sae_recipe_axes, tokens_short

__all__ = [
    "duration_words",
    "frontier_caption",
    "frontier_table",
    "frontier_text",
    "plot_sae_frontier",
    "plot_sae_recipe_axes",
    "point_change",
    "recipe_axes_caption",
    "recipe_axes_text",
    "recipe_axes_view",
    "target_status",
    "tokens_words",
]

_SHOWN = ["change", "train_tokens", "epochs", "num_latents", "pw_mcc", "shared_dec", "fvu_heldout", "seconds"]
_MORE = ["axis", "k", "optimizer", "lr", "normalise", "token_steps", "tokens_per_s", "shared_dec_enc", "chance_pw_mcc",
         "chance_shared_dec", "act_mcc", "shared_act", "dead_fraction", "mean_l0"]
_PERCENT = ("shared_dec", "shared_dec_enc", "chance_shared_dec", "shared_act", "dead_fraction")

_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def tokens_words(n: float) -> str:
    """A token count in words: ``"24,000"``, ``"1.5 million"``, ``"320 billion"``, ``"4.1 × 10¹⁵"``.

    Examples
    --------
    >>> [tokens_words(v) for v in (24000, 1.5e6, 3.2e11, 4.1e15)]
    ['24,000', '1.5 million', '320 billion', '4.1 × 10¹⁵']
    """
    n = float(n)
    if not math.isfinite(n):
        return "no finite number of"
    if n < 1e6:
        return f"{n:,.0f}"
    for size, word in ((1e6, "million"), (1e9, "billion"), (1e12, "trillion")):
        value = n / size
        if value < 999.5:
            return f"{value:.1f} {word}" if value < 9.95 else f"{value:.0f} {word}"
    return _power(n)


def duration_words(minutes: float) -> str:
    """CPU time in words: seconds, minutes, hours, days or years.

    Examples
    --------
    >>> [duration_words(m) for m in (0.5, 42, 300, 6000, 2e6, 1e12)]
    ['30 seconds', '42 minutes', '5.0 hours', '4.2 days', '3.8 years', '1.9 × 10⁶ years']
    """
    minutes = float(minutes)
    if not math.isfinite(minutes):
        return "no finite time"
    if minutes < 1:
        return f"{60 * minutes:.0f} seconds"
    if minutes < 120:
        return f"{minutes:.0f} minutes"
    hours = minutes / 60
    if hours < 48:
        return f"{hours:.1f} hours"
    days = hours / 24
    if days < 730:
        return f"{days:.1f} days"
    years = days / 365.25
    if years < 100:
        return f"{years:.1f} years"
    return f"{years:,.0f} years" if years < 1e4 else f"{_power(years)} years"


def _power(value: float) -> str:
    exponent = int(math.floor(math.log10(value)))
    return f"{value / 10**exponent:.2g} × 10{str(exponent).translate(_SUPERSCRIPT)}"


def _targets(proj: dict, targets: dict | None) -> dict:
    from saesim.experiments.sae_frontier import TARGET_FVU, TARGET_PW_MCC, TARGET_SHARED

    out = {"pw_mcc": TARGET_PW_MCC, "shared_dec": TARGET_SHARED, "fvu_heldout": TARGET_FVU}
    for column in ("pw_mcc", "shared_dec"):
        if column in (proj or {}):
            out[column] = proj[column]["target"]
    return {**out, **(targets or {})}


def _profile_row(frame: pd.DataFrame) -> pd.Series:
    rows = frame[frame["axis"] == "profile"]
    if rows.empty:
        raise ValueError("`frame` has no row of axis 'profile' (the profile's own recipe); pass a table of "
                         "sae_frontier run on default_points.")
    return rows.iloc[0]


def _meets(value: float, column: str, target: float) -> bool:
    if not np.isfinite(value):
        return False
    return value <= target if column == "fvu_heldout" else value >= target


def _value(column: str, value: float) -> str:
    if not np.isfinite(value):
        return "not measured"
    if column == "shared_dec":
        return f"{100 * value:.1f} %"
    return f"{value:.3f}" if column == "fvu_heldout" else f"{value:.2f}"


def _target_words(column: str, target: float) -> str:
    return {"pw_mcc": f"PW-MCC ≥ {target:g}", "shared_dec": f"≥ {100 * target:g} % of latents shared",
            "fvu_heldout": f"held-out FVU ≤ {target:g}"}[column]


def _point_words(row) -> str:
    words = (f"{int(row['train_tokens']):,} tokens × {int(row['epochs'])} epochs, {int(row['num_latents']):,} latents, "
             f"k = {int(row['k'])}")
    axis = row.get("axis") if hasattr(row, "get") else None
    if axis == "optimizer":
        words += f", Adam at lr {float(row['lr']):g}"
    elif axis == "lr":
        words += f", lr {float(row['lr']):g}"
    elif axis == "normalise":
        words += ", inputs scaled to mean norm √d"
    return words


def target_status(frame: pd.DataFrame, proj: dict | None = None, *, targets: dict | None = None) -> pd.DataFrame:
    """Whether each target (PW-MCC, share of latents shared, held-out FVU) is met: at the profile's recipe, at
    another point, or nowhere.

    Returns
    -------
    pandas.DataFrame
        One row per target (``pw_mcc``, ``shared_dec``, ``fvu_heldout``): ``target``, ``at_profile``
        (the profile point's value), ``met_at_profile``, ``best`` (the best value of any point),
        ``best_axis`` (its axis), ``met`` (met at some point) and ``status``: ``"reached at the
        profile's recipe"``, ``"reached only at another point"`` or ``"not reached"``.
    """
    goals = _targets(proj or {}, targets)
    ref = _profile_row(frame)
    records = []
    for column, target in goals.items():
        values = frame[column].to_numpy(dtype=float)
        finite = np.isfinite(values)
        best_i = None
        if finite.any():
            best_i = int(np.nanargmin(values) if column == "fvu_heldout" else np.nanargmax(values))
        best = values[best_i] if best_i is not None else float("nan")
        met_here = _meets(float(ref[column]), column, target)
        met = bool(best_i is not None and _meets(best, column, target))
        status = ("reached at the profile's recipe" if met_here else "reached only at another point" if met
                  else "not reached")
        records.append({"column": column, "target": float(target), "at_profile": float(ref[column]),
                        "met_at_profile": met_here, "best": float(best),
                        "best_axis": frame["axis"].iloc[best_i] if best_i is not None else "", "met": met,
                        "status": status, "best_index": best_i})
    return pd.DataFrame.from_records(records).set_index("column")


def frontier_text(frame: pd.DataFrame, proj: dict, *, targets: dict | None = None) -> str:
    """One paragraph on the frontier, generated from its numbers.

    It says the stability and held-out FVU at the profile's recipe (against the chance level),
    the most stable point measured, whether each target is reached (at the profile's recipe,
    only at another point, or not at all), what the log-linear fit projects (tokens, CPU time
    per SAE at the measured rate, or that it projects nothing when stability does not rise with
    tokens) and, named as the literature's, the published stability figures.

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`saesim.experiments.sae_frontier.sae_frontier`'s table (with a ``"profile"`` row).
    proj : dict
        :func:`saesim.experiments.sae_frontier.projection` of ``frame``.
    targets : dict, optional
        Override the targets (``pw_mcc``, ``shared_dec``, ``fvu_heldout``).

    Returns
    -------
    str
        Markdown, one paragraph.
    """
    from saesim.report.scope import LITERATURE_STABILITY

    ref = _profile_row(frame)
    status = target_status(frame, proj, targets=targets)
    sentences = [
        f"At the profile's recipe ({_point_words(ref)}), two SAEs that differ only by seed reach a PW-MCC of "
        f"{_value('pw_mcc', ref['pw_mcc'])} (random directions of the same shapes: "
        f"{_value('pw_mcc', ref['chance_pw_mcc'])}) and share {_value('shared_dec', ref['shared_dec'])} of their "
        f"latents at decoder cosine ≥ 0.7 (chance: {_value('shared_dec', ref['chance_shared_dec'])}); their "
        f"held-out FVU is {_value('fvu_heldout', ref['fvu_heldout'])}. (This point is trained again here with the "
        f"same recipe and seeds; the CPU's float rounding, which depends on the thread count, makes it differ "
        f"slightly from the SAE-quality table of the method chapter.)"]
    stab = frame["pw_mcc"].to_numpy(dtype=float)
    if np.isfinite(stab).any():
        best = frame.iloc[int(np.nanargmax(stab))]
        if best["axis"] == "profile" or best["pw_mcc"] <= ref["pw_mcc"]:
            sentences.append("No other point measured is more stable.")
        else:
            sentences.append(
                f"The most stable point measured is the one with {vocab.phrase('frontier_axis', best['axis'])} "
                f"({_point_words(best)}): PW-MCC {_value('pw_mcc', best['pw_mcc'])}, "
                f"{_value('shared_dec', best['shared_dec'])} shared, held-out FVU "
                f"{_value('fvu_heldout', best['fvu_heldout'])}.")
    sentences.append(_targets_sentence(frame, status))
    sentences += _projection_sentences(proj)
    sentences.append(f"For comparison, and not computed here, the literature's figures for far larger SAEs: "
                     f"{LITERATURE_STABILITY}")
    return " ".join(sentences)


def _targets_sentence(frame: pd.DataFrame, status: pd.DataFrame) -> str:
    parts = []
    for column, row in status.iterrows():
        goal = _target_words(column, row["target"])
        if row["met_at_profile"]:
            parts.append(f"{goal} is reached at the profile's recipe ({_value(column, row['at_profile'])})")
        elif row["met"]:
            best = frame.iloc[int(row["best_index"])]
            parts.append(f"{goal} is not reached at the profile's recipe ({_value(column, row['at_profile'])}) but "
                         f"is at the point with {vocab.phrase('frontier_axis', best['axis'])} ({_point_words(best)}: "
                         f"{_value(column, row['best'])})")
        else:
            parts.append(f"{goal} is not reached at any point measured (best "
                         f"{_value(column, row['best'])})")
    if status["met_at_profile"].all():
        verdict = "All the targets are met at the profile's recipe"
    elif status["met"].all():
        verdict = "Every target is met somewhere on the frontier, but not all at the profile's recipe"
    else:
        missing = [_target_words(c, r["target"]) for c, r in status.iterrows() if not r["met"]]
        verdict = (f"The targets are not all reached on this machine: {vocab.and_join(missing)} "
                   f"{'is' if len(missing) == 1 else 'are'} not reached at any point measured")
    return f"{verdict}. Target by target: {'; '.join(parts)}."


MAX_FOLD = 1000
"""The page names a projected budget only up to this many times the largest budget measured (about as far
as the figure draws the fit, :data:`saesim.report._plot_frontier.FIT_REACH`)."""


def _projection_sentences(proj: dict) -> list[str]:
    out = []
    rough = False
    for column in ("pw_mcc", "shared_dec"):
        fit = proj.get(column)
        if fit is None:
            continue
        goal = _target_words(column, fit["target"])
        name = "PW-MCC" if column == "pw_mcc" else "The share of latents shared"
        per = (f"{fit['slope']:+.3f}" if column == "pw_mcc" else f"{100 * fit['slope']:+.1f} percentage points")
        if not np.isfinite(fit["slope"]):
            out.append(f"No fit of {name[0].lower() + name[1:]} against the training tokens: "
                       f"{fit['reason'] or 'too few points'}.")
        elif fit["reached"]:
            out.append(f"{name} rises by {per} per doubling of the training tokens and already reaches {goal} "
                       f"within the range measured.")
        elif not fit["rises"]:
            out.append(f"{name} does not rise with the training tokens over the points measured ({per} per "
                       f"doubling), so the log-linear fit projects no budget that reaches {goal}.")
        elif not math.isfinite(fit["tokens"]):
            out.append(f"{name} rises by only {per} per doubling of the training tokens; the log-linear fit reaches "
                       f"{goal} at no budget that can be written down.")
        elif fit["fold"] > MAX_FOLD:
            out.append(f"{name} rises by {per} per doubling of the training tokens; on that log-linear fit {goal} "
                       f"lies more than {MAX_FOLD:,} times beyond the largest budget measured, too far for a line "
                       "fitted over the measured range to say how far.")
            rough = True
        else:
            where = f"{fit['fold']:.1f} times the largest measured"
            minutes = (f", about {duration_words(fit['minutes'])} of CPU time per SAE at {proj['epochs']} epochs "
                       f"and the measured {proj['tokens_per_s']:,.0f} token-steps per second (the stability "
                       f"compares two SAEs)" if np.isfinite(fit["minutes"]) else "")
            out.append(f"{name} rises by {per} per doubling of the training tokens; on that log-linear fit "
                       f"{goal} would take about {tokens_words(fit['tokens'])} training tokens ({where}){minutes}.")
            rough = rough or fit["fold"] > 2
    if out:
        out.insert(0, f"A least-squares line against log2(training tokens) is fitted to the points with "
                      f"fewer training tokens and the profile's own point ({proj['n_points']} points, the same "
                      f"epochs and width).")
    if rough:
        out.append("A log-linear extrapolation this far beyond the measured range is a rough guide only: "
                   "stability cannot pass 1 and tends to level off.")
    return out



def frontier_caption(frame: pd.DataFrame, proj: dict, *, layer: int | None = None, slot: str | None = None,
                     targets: dict | None = None) -> str:
    """The figure's caption, from the table: which layer and seeds, the points, the targets, the fit.

    ``layer`` and ``slot`` default to the table's ``layer`` and ``slot`` columns
    (:func:`saesim.experiments.sae_frontier.frontier_for_profile` adds them).
    """
    goals = _targets(proj, targets)
    ref = _profile_row(frame)
    layer = int(frame["layer"].iloc[0]) if layer is None and "layer" in frame.columns else layer
    slot = str(frame["slot"].iloc[0]) if slot is None and "slot" in frame.columns else (slot or "a")
    where = f"{vocab.phrase('slot', slot)}'s layer {layer}" if layer is not None else vocab.phrase("slot", slot)
    n_seeds = int(frame["n_seeds"].iloc[0]) if "n_seeds" in frame.columns else 2
    from saesim.experiments.sae_frontier import RECIPE_AXES

    n_recipe = int(frame["axis"].isin(RECIPE_AXES).sum())
    drawn = len(frame) - n_recipe
    counts = {axis: int((frame["axis"] == axis).sum()) for axis in ("tokens", "epochs", "width")}
    n_held = f" on {int(ref['n_heldout']):,} held-out tokens" if "n_heldout" in frame.columns else ""
    fit = proj.get("measured_tokens", (0, 0))
    return (f"Seed stability and reconstruction of TopK SAEs of {where}, {n_seeds} seeds per point, at "
            f"{drawn} points around the profile's recipe ({_point_words(ref)}; star): "
            f"{counts['tokens']} with fewer training tokens (circles, on the line to the star), "
            f"{counts['epochs']} with more epochs (squares) and {counts['width']} narrower SAEs (triangles). "
            f"Top: PW-MCC (mean decoder cosine of the Hungarian matching of two seeds' SAEs); middle: the "
            f"percentage of latents matched at decoder cosine ≥ 0.7; bottom: held-out FVU{n_held}. Dotted: "
            f"random directions of the same shapes; dashed: the targets ({_target_words('pw_mcc', goals['pw_mcc'])}, "
            f"{_target_words('shared_dec', goals['shared_dec'])}, {_target_words('fvu_heldout', goals['fvu_heldout'])}); "
            f"dash-dot: the least-squares fit against log2(training tokens) over the circles and the star "
            f"({fit[0]:,} to {fit[1]:,} tokens), extended towards its target. Every SAE was trained by saesim "
            f"on the CPU."
            + (f" The {n_recipe} recipe changes (k, optimizer, learning rate, input scaling) are in the next figure."
               if n_recipe else ""))


def frontier_table(frame: pd.DataFrame, caption: str | None = None):
    """The frontier table as the book shows it: each point's recipe, stability, FVU and time; every column one
    click away (:func:`saesim.report.tables.split_table`).

    The default caption names the layer, the seeds and the held-out tokens from the table.
    """
    from saesim.report.frames import check_frame
    from saesim.report.tables import split_table

    check_frame(frame, "frame", [c for c in _SHOWN + _MORE if c != "change"])
    if caption is None:
        where = (f"{vocab.phrase('slot', str(frame['slot'].iloc[0]))}'s layer {int(frame['layer'].iloc[0])}"
                 if {"slot", "layer"} <= set(frame.columns) else "one layer")
        seeds = f"{int(frame['n_seeds'].iloc[0])} seeds" if "n_seeds" in frame.columns else "two seeds"
        held = (f" on {int(frame['n_heldout'].iloc[0]):,} held-out tokens" if "n_heldout" in frame.columns else "")
        caption = (f"The SAE frontier of {where}: each point's recipe, the seed stability of its SAEs ({seeds}; "
                   f"shared: matched at decoder cosine ≥ 0.7), held-out FVU{held} and training seconds per SAE; "
                   f"the training rate, the decoder-and-encoder criterion, the chance levels, the activation "
                   f"matching, dead latents and L0 one click away")
    base_lr = _base_lr(frame)
    view = frame.assign(change=[point_change(row, base_lr) for _, row in frame.iterrows()])[_SHOWN + _MORE]
    view = view.assign(axis=frame["axis"].map(lambda a: vocab.label("frontier_axis", a)))
    view = view.rename(columns=lambda c: vocab.column_label(c, default=c))
    formats = {vocab.column_label(c): ".1%" for c in _PERCENT}
    formats.update({vocab.column_label("seconds"): ".1f", vocab.column_label("tokens_per_s"): ",.0f",
                    vocab.column_label("train_tokens"): ",d", vocab.column_label("token_steps"): ",d",
                    vocab.column_label("lr"): ".4g"})
    return split_table(view, [vocab.column_label(c) for c in _SHOWN], caption, formats=formats, index=False)


# --------------------------------------------------------------------------- the recipe axes


def _base_lr(frame: pd.DataFrame) -> float:
    """The learning rate of the profile's recipe (its point's, else the tokens axis's)."""
    for axis in ("profile", "tokens"):
        rows = frame[frame["axis"] == axis]
        if len(rows) and "lr" in rows.columns:
            return float(rows["lr"].iloc[0])
    return float("nan")


def point_change(row, base_lr: float) -> str:
    """What a frontier point changes, in a few words: ``"k = 16"``, ``"Adam, linear decay, lr 0.0008"``,
    ``"learning rate × 2 (0.01)"``, ``"inputs scaled to mean norm √d"``; the tokens, epochs and width
    axes and the profile's point say their tokens, epochs or latents.

    Examples
    --------
    >>> point_change({"axis": "lr", "lr": 0.01, "k": 32}, 0.005)
    'learning rate × 2 (0.01)'
    >>> point_change({"axis": "k", "k": 16}, 0.005)
    'k = 16'
    """
    axis = row["axis"]
    if axis == "k":
        return f"k = {int(row['k'])}"
    if axis == "optimizer":
        return f"Adam, linear decay, lr {float(row['lr']):g}"
    if axis == "lr":
        ratio = float(row["lr"]) / base_lr if base_lr and math.isfinite(base_lr) else float("nan")
        times = "½" if math.isclose(ratio, 0.5) else f"{ratio:g}"
        return f"learning rate × {times} ({float(row['lr']):g})"
    if axis == "normalise":
        return "inputs scaled to mean norm √d"
    if axis == "epochs":
        return f"{int(row['epochs'])} epochs"
    if axis == "width":
        return f"{int(row['num_latents']):,} latents"
    if axis == "tokens":
        return f"{tokens_words(row['train_tokens'])} tokens"
    return "the profile's recipe"


def _curve_point(frame: pd.DataFrame, tokens: int, epochs: int, width: int) -> pd.DataFrame:
    """The rows of the tokens axis or the profile's point (the fitted curve) at this tokens, epochs and width."""
    from saesim.experiments.sae_frontier import FIT_AXES

    return frame[frame["axis"].isin(FIT_AXES) & (frame["train_tokens"] == tokens) & (frame["epochs"] == epochs)
                 & (frame["num_latents"] == width)]


def recipe_axes_view(frame: pd.DataFrame) -> pd.DataFrame:
    """The recipe axes' points beside their baseline, one row each, baseline first.

    The baseline is the tokens axis's point with the recipe points' tokens, epochs and width (the
    profile's k, optimizer, learning rate and raw inputs). Columns: ``change`` (:func:`point_change`;
    ``"baseline: ..."`` for the baseline), ``axis``, ``is_baseline``, and the frame's values
    (``pw_mcc``, ``shared_dec``, ``fvu_heldout``, the chance levels, ...). Empty when the frame has
    no recipe-axis point.

    Raises
    ------
    ValueError
        Recipe points of more than one (tokens, epochs, width), or no baseline point for them.
    """
    from saesim.experiments.sae_frontier import RECIPE_AXES

    recipe = frame[frame["axis"].isin(RECIPE_AXES)]
    if recipe.empty:
        return frame.iloc[0:0].assign(change=pd.Series(dtype=str), is_baseline=pd.Series(dtype=bool))
    where = recipe[["train_tokens", "epochs", "num_latents"]].drop_duplicates()
    if len(where) != 1:
        raise ValueError(f"the recipe-axis points sit at {len(where)} different (tokens, epochs, width); "
                         "recipe_axes_view compares them with one baseline.")
    t, e, w = (int(where[c].iloc[0]) for c in ("train_tokens", "epochs", "num_latents"))
    base = _curve_point(frame, t, e, w)
    if base.empty:
        raise ValueError(f"no tokens-axis point at {t:,} tokens × {e} epochs, {w:,} latents: the recipe-axis "
                         "points have no baseline (default_points puts one there).")
    base = base.iloc[[0]]
    base_lr = float(base["lr"].iloc[0])
    label = f"baseline: {tokens_short(t)} tokens × {e} epochs"
    changes = [label] + [point_change(row, base_lr) for _, row in recipe.iterrows()]
    out = pd.concat([base, recipe], ignore_index=True)
    return out.assign(change=changes, is_baseline=[True] + [False] * len(recipe))


def recipe_axes_text(frame: pd.DataFrame) -> str:
    """One paragraph on the recipe axes, generated from the numbers: each change against the baseline,
    and the best of them against what doubling the training tokens gives from the same baseline.

    Returns ``""`` when the frame has no recipe-axis point.
    """
    view = recipe_axes_view(frame)
    if view.empty:
        return ""
    base, rows = view.iloc[0], view.iloc[1:]

    def moves(r) -> str:
        return (f"{r['change']}: PW-MCC {r['pw_mcc']:.3f} ({r['pw_mcc'] - base['pw_mcc']:+.3f}), "
                f"{_value('shared_dec', r['shared_dec'])} shared, "
                f"held-out FVU {_value('fvu_heldout', r['fvu_heldout'])}")

    sentences = [f"At {tokens_words(base['train_tokens'])} tokens × {int(base['epochs'])} epochs the baseline "
                 f"reaches PW-MCC {base['pw_mcc']:.3f}, {_value('shared_dec', base['shared_dec'])} "
                 f"shared and held-out FVU {_value('fvu_heldout', base['fvu_heldout'])}. Against it: "
                 + "; ".join(moves(r) for _, r in rows.iterrows()) + "."]
    best = rows.loc[rows["pw_mcc"].astype(float).idxmax()]
    gain = float(best["pw_mcc"] - base["pw_mcc"])
    double = _curve_point(frame, 2 * int(base["train_tokens"]), int(base["epochs"]), int(base["num_latents"]))
    if gain <= 0:
        sentences.append("None of these changes makes two seeds' SAEs agree more than the baseline does.")
    else:
        sentences.append(f"The most stable of them is {best['change']}, {gain:+.3f} PW-MCC over the baseline.")
    if len(double):
        more = float(double["pw_mcc"].iloc[0] - base["pw_mcc"])
        more_shared = float(double["shared_dec"].iloc[0] - base["shared_dec"])
        if gain < more:
            sentences.append(f"Doubling the training tokens from the same baseline adds {more:+.3f} PW-MCC "
                             f"({100 * more_shared:+.1f} percentage points shared), more than any of these changes.")
        else:
            sentences.append(f"Doubling the training tokens from the same baseline adds {more:+.3f} PW-MCC "
                             f"({100 * more_shared:+.1f} percentage points shared), no more than {best['change']}.")
    if gain > 0 and best["fvu_heldout"] > base["fvu_heldout"]:
        sentences.append(f"{best['change'][0].upper() + best['change'][1:]} buys its stability with a worse "
                         f"held-out FVU ({_value('fvu_heldout', best['fvu_heldout'])} against "
                         f"{_value('fvu_heldout', base['fvu_heldout'])}).")
    return " ".join(sentences)


def recipe_axes_caption(frame: pd.DataFrame) -> str:
    """The recipe-axes figure's caption, from the table."""
    view = recipe_axes_view(frame)
    if view.empty:
        return "No recipe-axis point was measured."
    base = view.iloc[0]
    layer = f" of layer {int(frame['layer'].iloc[0])}" if "layer" in frame.columns else ""
    slot = vocab.phrase("slot", str(frame["slot"].iloc[0])) + "'s" if "slot" in frame.columns else "the"
    return (f"Recipe changes other than more text, epochs or a narrower SAE, each trained with "
            f"{int(base['n_seeds'])} seeds on {slot} SAE training text{layer} at {tokens_words(base['train_tokens'])} "
            f"tokens × {int(base['epochs'])} epochs, {int(base['num_latents']):,} latents (a quarter of the "
            f"profile's tokens), against the baseline at the same budget (top row, grey line: k = "
            f"{int(base['k'])}, signum at lr {float(base['lr']):g}, raw inputs). Left: PW-MCC of "
            f"two seeds; middle: latents shared at decoder cosine ≥ 0.7; right: held-out FVU. Dotted: random "
            f"directions of the same shapes. Adam runs with its linear-decay schedule at sparsify's Adam rate; "
            f"the input scaling is SAELens's (mean norm √d over the training rows).")
