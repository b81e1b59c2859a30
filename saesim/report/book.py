"""What the book's notebooks call, so that they stay thin: figures, glued numbers, tables and page notes.

The page API (the notebooks import ``saesim.report.book`` and call these):
:func:`grid_frame` (the experiment tables, read from ``saesim run``'s parquet
or computed through the cell cache; :mod:`saesim.report.grid_data`),
:func:`show_figure` (save a figure under its stable name and display it as a
labelled, captioned MyST figure with download links), :func:`glue_value`
(glue a number for the prose) and :func:`glue_fields` (glue many at once,
from a mapping or a small result object), :func:`scope_note` (what the profile's
comparison can and cannot show), :func:`pair_examples` and
:func:`top_tokens_text` (paired latents with their contexts),
:func:`parameters_table` (the page's parameters, inserted into every page by
the build) and :func:`build_info` (what a citation names).

The build that executes the notebooks and renders the site is
:mod:`saesim.report.build` (``saesim book``).

References
----------
Lan et al., "Sparse Autoencoders Reveal Universal Feature Spaces Across Large
Language Models", arXiv:2410.06981 (2024).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from saesim import vocab
from saesim.report.grid_data import GridTable, grid_frame

__all__ = [
    "BuildInfo",
    "FIGURES",
    "GridTable",
    "MIN_FIGURE_PX",
    "PARAMETER_HELP",
    "PATH_PARAMETERS",
    "build_info",
    "glue_fields",
    "glue_value",
    "glued_fields",
    "grid_frame",
    "pair_examples",
    "parameters_table",
    "scope_note",
    "show_figure",
    "top_tokens_text",
]

FIGURES = "figures"
"""Folder of exported figures, relative to the executed notebooks."""


# --------------------------------------------------------------------------- pair examples


def pair_examples(layer_a, layer_b, settings, *, n: int = 3, seed: int = 0, k: int = 5):
    """Paired latents with their top contexts, kept ones and ones each filter removed.

    Parameters
    ----------
    layer_a, layer_b : saesim.extract.pipeline.LayerData
    settings : saesim.experiments.grid.CompareSettings
        Its first rule and direction are used.
    n : int, default 3
        Examples per outcome; the best-correlated pairs of each outcome.
    seed : int
        Unused unless ties need breaking (kept for reproducibility).
    k : int, default 5
        Top contexts shown per latent.

    Returns
    -------
    (pandas.DataFrame, dict)
        One row per example (outcome, latents, r, top tokens and context
        windows of both), and the number of many-to-1 pairs per outcome.

    Notes
    -----
    The outcomes follow the paper's order of filters: ``removed: junk /
    shared-token filter``, ``removed: <the rule's label>`` (``removed: 1-1 (first occurrence)``),
    ``removed: r <= r_min`` and
    ``kept``. Reviewers asked whether the pairs the filters drop hold
    meaningful features: their contexts are shown next to the kept ones.
    """
    import pandas as pd

    from saesim.compare.corr import quiet_best_partners
    from saesim.compare.stages import PAIR_FIRST_RULES, filter_stages

    sa, sb = layer_a.to_sae_layer(), layer_b.to_sae_layer()
    rule, direction = settings.rules[0], settings.directions[0]
    best = quiet_best_partners(sa.codes, sb.codes, compat=settings.compat)
    stages = filter_stages(best, sa, sb, settings, rule=rule, direction=direction)
    # Outcomes are read off each chooser's best partner (the many-to-1 candidates): for the rules
    # that pair first (mutual, Hungarian) their junk verdicts are the many-to-1 stages', not those
    # of the rule's pairs.
    screened = stages if rule not in PAIR_FIRST_RULES else \
        filter_stages(best, sa, sb, settings, rule="many_to_one", direction=direction)
    every = screened.candidates
    after_junk, after_dedup, final = screened.after_junk, screened.after_1to1, stages.final
    keys = lambda p: set(zip(p.a.tolist(), p.b.tolist()))  # noqa: E731
    junk_ok, dedup_ok, kept = keys(after_junk), keys(after_dedup), keys(final)
    outcome = []
    for a, b in zip(every.a.tolist(), every.b.tolist()):
        if (a, b) in kept:
            outcome.append("kept")
        elif (a, b) not in junk_ok:
            outcome.append("removed: junk / shared-token filter")
        elif (a, b) not in dedup_ok or rule in PAIR_FIRST_RULES:
            outcome.append(f"removed: {vocab.label('rule', rule, default=rule)}")
        else:
            outcome.append(f"removed: r <= {settings.r_min:g}")
    table = pd.DataFrame({"outcome": outcome, "latent_a": every.a, "latent_b": every.b, "r": every.r})
    counts = table["outcome"].value_counts().to_dict()
    rows = []
    order = ["kept", "removed: junk / shared-token filter", f"removed: {vocab.label('rule', rule, default=rule)}",
             f"removed: r <= {settings.r_min:g}"]
    for name in order:
        chosen = table[table["outcome"] == name].sort_values(["r", "latent_b"], ascending=[False, True]).head(n)
        for row in chosen.itertuples():
            rows.append({
                "outcome": name, "A latent": int(row.latent_a), "B latent": int(row.latent_b), "r": float(row.r),
                "A top tokens": top_tokens_text(layer_a.contexts, row.latent_a, k),
                "B top tokens": top_tokens_text(layer_b.contexts, row.latent_b, k),
                "A contexts": _windows(layer_a.contexts, row.latent_a, k),
                "B contexts": _windows(layer_b.contexts, row.latent_b, k),
            })
    return pd.DataFrame(rows), {name: int(counts.get(name, 0)) for name in order}


def top_tokens_text(contexts, latent: int, k: int) -> str:
    tokens = [repr(t) for t, on in zip(contexts.top_tokens[latent][:k], contexts.active[latent][:k]) if on]
    return " ".join(tokens) if tokens else "(never fires)"


def _windows(contexts, latent: int, k: int) -> str:
    windows = [w for w, on in zip(contexts.windows[latent][:k], contexts.active[latent][:k]) if on]
    return " | ".join(w.strip() for w in windows) if windows else ""


# --------------------------------------------------------------------------- figures


MIN_FIGURE_PX = 1200
"""Smallest width, in pixels, of every exported PNG (legible at the page width, sharp when opened)."""


def show_figure(fig, name: str, caption: str, *, out_dir=FIGURES, label: str | None = None,
                alt: str | None = None, width: str | None = None):
    """Save ``fig`` as PDF/SVG/PNG under its stable name and display it once, as a captioned MyST figure.

    The displayed output is Markdown (rendered as MyST by the book,
    ``nb_render_markdown_format: myst``): a ``{figure}`` with the PNG at the
    page width (``width``, default ``100%``; Sphinx then links the image to
    its full-size file, so a click opens it), the reference label ``label``
    (default: ``name`` with ``_`` -> ``-``), the caption, the build line
    (:func:`build_info`: saesim version, commit and build date) and download
    links to the three files. Under the caption, ``Cite as:`` shows the figure's handle
    (``{saesim-cite}`name```, :mod:`saesim.report.sphinxext`): the page's address with
    ``name`` as anchor; ``name`` is the figure's HTML id whatever number Sphinx gives it
    (:mod:`saesim.report.citable`), so ``name`` must be a valid id (a letter, then letters,
    digits, ``_`` and ``-``).

    The files are written by :func:`saesim.report.plots.save_figure` at a resolution
    that makes the PNG at least :data:`MIN_FIGURE_PX` pixels wide, and carry
    the build line in their metadata. A pyplot-managed figure is closed after
    saving, so the notebook's inline backend does not display it a second
    time (uncaptioned). Nothing is returned, so a cell ending with this call
    shows only the figure.
    """
    from IPython.display import Markdown, display

    from saesim.report.citable import check_stable_name
    from saesim.report.plots import save_figure

    check_stable_name(name, "name")
    info = build_info()
    text = _md_escape(" ".join(caption.strip().split()))
    plain = " ".join(caption.strip().split())
    written = save_figure(fig, name, out_dir, metadata={"Title": name, "Description": f"{plain} {info.line()}.",
                                                        "Software": info.line()},
                          min_width_px=MIN_FIGURE_PX)
    _close_pyplot(fig)
    rel = Path(out_dir)
    label = label or name.replace("_", "-").lower()
    links = ", ".join(f"{{download}}`{ext.upper()} <{(rel / f'{name}.{ext}').as_posix()}>`" for ext in written)
    markdown = (f":::{{figure}} {(rel / f'{name}.png').as_posix()}\n:name: {label}\n"
                f":alt: {_escape(alt or plain.split('. ')[0])}\n:width: {width or '100%'}\n\n"
                f"{text} {_md_escape(info.line())}. Files: {links} (`{name}`).\n\n"
                f"Cite as: {{saesim-cite}}`{name}`\n:::\n")
    display(Markdown(markdown))


def _close_pyplot(fig) -> None:
    """Close ``fig`` if pyplot manages it (inline backends display every open pyplot figure at cell end)."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        plt.close(fig)  # a figure pyplot does not manage is left alone


# --------------------------------------------------------------------------- build info


@dataclass(frozen=True)
class BuildInfo:
    """What a citation of the book or one of its figures must name.

    Attributes
    ----------
    version : str
        saesim's version (the installed distribution's).
    commit : str
        Full git commit of the checkout that built it, ``"unknown"`` outside a
        git checkout (``$SAESIM_COMMIT`` overrides).
    dirty : bool
        The checkout had uncommitted changes to tracked files.
    date : str
        Build date, ISO ``YYYY-MM-DD`` (``$SOURCE_DATE_EPOCH`` overrides today).
    url : str
        The repository.
    """

    version: str
    commit: str
    dirty: bool
    date: str
    url: str = "https://github.com/saesim/saesim"

    @property
    def short(self) -> str:
        return (self.commit[:12] if self.commit != "unknown" else self.commit) + ("+dirty" if self.dirty else "")

    def line(self) -> str:
        """``"saesim 0.1.0, commit 1a2b3c4d5e6f, built 2026-11-24"``."""
        return f"saesim {self.version}, commit {self.short}, built {self.date}"

    def bibtex(self) -> str:
        """The software's BibTeX entry, with version, URL, commit and date."""
        year = self.date[:4]
        return ("@software{saesim,\n"
                "  title   = {saesim: comparing sparse-autoencoder feature spaces across language models},\n"
                "  author  = {{The saesim developers}},\n"
                f"  version = {{{self.version}}},\n"
                f"  url     = {{{self.url}}},\n"
                f"  note    = {{commit {self.commit}{' (with uncommitted changes)' if self.dirty else ''}, "
                f"built {self.date}}},\n"
                f"  year    = {{{year}}},\n"
                "  license = {MIT}\n"
                "}")


@functools.lru_cache(maxsize=None)
def build_info(root=None) -> BuildInfo:
    """saesim's version, the git commit of the checkout (``root``, default this package's) and the build date."""
    import datetime
    from importlib import metadata

    try:
        version = metadata.version("saesim")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        version = "unknown"
    root = Path(root) if root is not None else Path(__file__).resolve().parents[2]
    commit, dirty = os.environ.get("SAESIM_COMMIT", ""), False
    if not commit:
        try:
            commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                    timeout=30).stdout.strip() or "unknown"
            if commit != "unknown":
                status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                        capture_output=True, text=True, timeout=60).stdout
                dirty = bool(status.strip())
        except (OSError, subprocess.SubprocessError):
            commit = "unknown"
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = (datetime.datetime.fromtimestamp(int(epoch), tz=datetime.timezone.utc) if epoch and epoch.isdigit()
            else datetime.datetime.now(datetime.timezone.utc))
    return BuildInfo(version=version, commit=commit, dirty=dirty, date=when.date().isoformat())


# --------------------------------------------------------------------------- parameters


PARAMETER_HELP = {
    "profile": "which models, SAEs, text and settings (a profile name or YAML path)",
    "cache_dir": "the artefact store read (set by `saesim book`)",
    "results_dir": "the tables of `saesim run` read (set by `saesim book`)",
    "runs_dir": "the folder of `saesim run` records listed (set by `saesim book`)",
    "figures_dir": "where the figure files are written, beside the page",
    "rule": "the pairing rule (first_index, many_to_one, max_corr, mutual, hungarian)",
    "rules": "the pairing rules compared",
    "direction": "which side chooses its partner (b_to_a or a_to_b)",
    "layers_a": "the layers of model A shown",
    "layers_b": "the layers of model B shown",
    "n_perm": "shuffles per null distribution",
    "seed": "the seed of every random draw",
    "compat": "true: the authors' computation (SVCCA with k = 1, their p-value)",
    "metrics": "the similarity measures scored",
    "alpha": "the significance level",
    "n_boot": "bootstrap resamples per interval",
    "executor": "how cells are computed (serial, local processes)",
}
"""What the common notebook parameters change, for :func:`parameters_table` (a trailing comment wins)."""

PATH_PARAMETERS = ("cache_dir", "results_dir", "runs_dir")
"""Parameters that ``saesim book`` sets to this machine's paths: a page shows them as set, never the path."""


def _parameter_cell(source=None, *, text: str | None = None) -> list[tuple[str, str, str]]:
    """(name, default source text, trailing comment) of each assignment in a notebook's ``parameters`` cell:
    the cell's ``text``, else read from the jupytext ``source``."""
    import ast
    import io
    import tokenize

    if text is None:
        import jupytext

        notebook = jupytext.read(source, fmt="py:percent")
        text = next(c for c in notebook.cells if "parameters" in c.get("metadata", {}).get("tags", [])).source
    comments = {}
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
    out = []
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out.append((target.id, ast.get_source_segment(text, node.value) or "",
                                comments.get(node.end_lineno, "")))
    return out


def _notebook_source(name: str | None) -> Path | None:
    env = os.environ.get("SAESIM_NOTEBOOK_SOURCE")
    if env and Path(env).is_file() and (name is None or Path(env).stem == name):
        return Path(env)
    if name is not None:
        candidate = Path(__file__).resolve().parents[2] / "notebooks" / f"{name}.py"
        if candidate.is_file():
            return candidate
    return None


def parameters_table(values: Mapping | None = None, *, source=None, name: str | None = None,
                     cell: str | None = None):
    """The page's parameters as a small HTML table: name, value used, default, what it changes.

    Parameters
    ----------
    values : mapping, optional
        The notebook's namespace (``globals()``): the values used (the
        parameters cell's defaults with papermill's injected values applied).
        Default: the defaults.
    source : path, optional
        The notebook's jupytext source (default: ``$SAESIM_NOTEBOOK_SOURCE``,
        set by :func:`saesim.report.build.execute_notebook`, or ``notebooks/<name>.py`` of this
        checkout).
    name : str, optional
        The notebook's name, used to find its source and in the rerun command.
    cell : str, optional
        The text of the notebook's ``parameters`` cell; when given, no source file is read (the
        build passes it, so that a downloaded notebook reruns away from this checkout).

    Returns
    -------
    IPython.display.HTML
        A table (what each parameter changes comes from its trailing comment
        in the ``parameters`` cell, else :data:`PARAMETER_HELP`), followed by
        the command that reruns the page with other values (``saesim book
        --notebooks <name> -p NAME=VALUE``). Path parameters set by ``saesim
        book`` are shown as such, never as this machine's path.
    """
    import html

    from IPython.display import HTML

    from saesim.io import to_jsonable

    if cell is None:
        source = Path(source) if source is not None else _notebook_source(name)
        if source is None:
            raise ValueError("`source` or `cell` is needed: no $SAESIM_NOTEBOOK_SOURCE and no `name` of a notebook "
                             "in notebooks/; pass source='notebooks/<name>.py' or the parameters cell's text.")
        name = name or source.stem
    elif name is None:
        raise ValueError("`name` is needed with `cell` (the rerun command names the notebook).")
    declared = _parameter_cell(source, text=cell)
    values = dict(values or {})
    rows = []
    for key, default, comment in declared:
        used = values.get(key, None) if key in values else None
        if key in PATH_PARAMETERS:
            shown = "set by saesim book" if used else "the profile's default"
        elif key in values:
            shown = repr(to_jsonable(used))
        else:
            shown = default
        help_text = comment or PARAMETER_HELP.get(key, "")
        rows.append(f"<tr><td><code>{html.escape(key)}</code></td><td><code>{html.escape(str(shown))}</code></td>"
                    f"<td><code>{html.escape(default)}</code></td><td>{html.escape(help_text)}</td></tr>")
    names = [key for key, _, _ in declared if key not in PATH_PARAMETERS + ("profile",)]
    example = names[0] if names else "seed"
    command = (f"saesim book --profile PROFILE --notebooks {name} -p {example}=VALUE")
    return HTML('<div class="admonition saesim-parameters"><p class="admonition-title">Parameters of this page</p>'
                '<table class="table" style="font-size: 0.85em; width: 100%; table-layout: auto; '
                'overflow-wrap: anywhere;"><thead><tr><th>name</th><th>value used</th><th>default</th>'
                '<th>what it changes</th></tr></thead><tbody>' + "".join(rows) + "</tbody></table>"
                f"<p>This page accepts <code>-p NAME=VALUE</code> for each name above (values read as YAML), "
                f"e.g. <code>{html.escape(command)}</code>.</p></div>")


def glue_value(name: str, value, *, display: bool = False):
    """``myst_nb.glue`` of a plain Python value (numpy scalars converted, so ``{glue:text}`` formats work)."""
    from myst_nb import glue

    from saesim.io import to_jsonable

    glue(name, to_jsonable(value), display=display)


def glue_fields(values=None, /, *, prefix: str = "", display: bool = False, **more) -> None:
    """Glue every field of ``values`` (and every keyword) as ``<prefix><field>``, one call for a page's numbers.

    Parameters
    ----------
    values : mapping or dataclass instance, optional
        The named values, e.g. the numbers a page's prose quotes as computed by
        :mod:`saesim.report.pages` (a ``dict`` or a frozen dataclass; its
        fields in order).
    prefix : str
        Put before every name (the page's glue namespace, e.g. ``"fs_"``).
    display : bool
        Passed to ``myst_nb.glue`` (default: glue without showing).
    **more
        Further named values, glued after ``values`` under the same prefix.

    Returns nothing, so that a cell ending with the call shows no output;
    :func:`saesim.report.book.glued_fields` gives the names and values it
    would glue.

    Examples
    --------
    ``glue_fields(pages.full_space_numbers(frame), prefix="fs_", rule=rule)``
    glues ``fs_n_cells``, ``fs_best_svcca``, ..., ``fs_rule``; the page's
    markdown quotes them as ``{glue:text}`fs_best_svcca:.3f```.
    """
    for name, value in glued_fields(values, prefix=prefix, **more).items():
        glue_value(name, value, display=display)


def glued_fields(values=None, /, *, prefix: str = "", **more) -> dict:
    """The names (prefix included) and plain values :func:`glue_fields` glues for the same arguments.

    Raises
    ------
    TypeError
        When ``values`` is neither a mapping nor a dataclass instance.
    ValueError
        When a name is given twice or a glue name is not an identifier.
    """
    from saesim.io import to_jsonable

    fields = _named_values(values)
    repeated = sorted(set(fields) & set(more))
    if repeated:
        raise ValueError(f"`glue_fields` got {repeated} both in `values` and as keywords; pass each name once.")
    glued = {f"{prefix}{name}": to_jsonable(value) for name, value in {**fields, **more}.items()}
    bad = [name for name in glued if not name.isidentifier()]
    if bad:
        raise ValueError(f"glue names must be identifiers (letters, digits, _); got {bad} (prefix {prefix!r}).")
    return glued


def _named_values(values) -> dict:
    """``values`` as a name -> value dict: a mapping as is, a dataclass instance field by field."""
    import dataclasses

    if values is None:
        return {}
    if isinstance(values, Mapping):
        return dict(values)
    if dataclasses.is_dataclass(values) and not isinstance(values, type):
        return {f.name: getattr(values, f.name) for f in dataclasses.fields(values)}
    raise TypeError(f"`values` must be a mapping or a dataclass instance; got {type(values).__name__}.")


_MD_SPECIAL = set("\\`*_[]{}<>|#$~^&")


def _md_escape(text: str) -> str:
    """Backslash-escape Markdown syntax so a plain-text caption renders literally."""
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in text)


def _escape(text: str) -> str:
    return text.replace("\n", " ").replace("`", "'")


# --------------------------------------------------------------------------- scope


def _own_text(spec) -> str:
    """`` of WikiText-2 and the Brown corpus outside the grid`` for an SAE with its own training text, else ``""``."""
    from saesim.config import train_text_words

    return f" of {train_text_words(spec.sae.train_text)} outside the grid" if spec.sae.train_text else ""


def scope_note(profile, *, cache_dir=None, slots=None) -> str:
    """A short HTML box: what this profile's comparison can and cannot show, from its own settings and SAEs.

    Names the two models and their SAEs, the controls, the token budget and
    the SAEs' quality (held-out FVU range, training tokens, dead fraction),
    and flags layers above the held-out FVU target. Generated from the
    profile and the cache only, so any profile's book says its own scope.
    """
    import html

    from saesim.config import Profile, load_profile
    from saesim.extract.pipeline import HELDOUT_FVU_TARGET, sae_quality
    from saesim.report.scope import pairing_and_licence_lines

    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    slots = tuple(slots) if slots is not None else profile.slots
    quality = sae_quality(profile, out=cache_dir)
    same_model = profile.model_a.identity == profile.model_b.identity
    lines = [f"<b>{html.escape(profile.model_a.label)}</b> against <b>{html.escape(profile.model_b.label)}</b>"
             + (" — one model with two SAE sets, so this page measures SAE agreement, not agreement between "
                "language models." if same_model else " — two different pretrained models.")]
    for slot in slots:
        rows = quality[quality["slot"] == slot]
        if rows.empty:
            continue
        spec = profile.model(slot)
        held = rows["fvu_heldout"].dropna()
        fvu = (f"held-out FVU {held.min():.2f}–{held.max():.2f}" if len(held) else
               f"FVU {rows['fvu'].min():.2f}–{rows['fvu'].max():.2f} (on its training rows; none held out)")
        train = int(rows["train_tokens"].max())
        flagged = rows[rows["flag"]]
        flag = (f"; <b>above the {HELDOUT_FVU_TARGET:.2f} target at layer"
                f"{'s' if len(flagged) > 1 else ''} {', '.join(str(int(x)) for x in flagged['layer'])}</b>"
                if len(flagged) else "")
        lines.append(f"{html.escape(spec.label)} ({html.escape(vocab.label('slot', slot, default=slot))}): "
                     f"{int(rows['n_latents'].iloc[0])} latents, "
                     + (f"trained on {train:,} tokens{_own_text(spec)}, " if train else "")
                     + f"{fvu}, dead {100 * rows['dead_fraction'].max():.1f} % at most{flag}.")
    if "seed" in profile.slots:
        from saesim.experiments.sae_quality import sae_quality_table
        from saesim.report.scope import stability_sentence

        sentence = stability_sentence(sae_quality_table(profile, cache=cache_dir))
        if sentence:
            lines.append(html.escape(sentence))
    lines.extend(pairing_and_licence_lines(profile, cache_dir))
    lines.append(f"Text: {profile.data.n_docs} documents of {profile.data.corpus}, at most {profile.data.max_length} "
                 f"tokens each. What it cannot show: anything about models, SAE widths or text beyond these; a "
                 f"score is only as good as its null and its controls (see the controls section and the "
                 f"robustness chapter).")
    items = "".join(f"<li>{line}</li>" for line in lines)
    return (f'<div class="admonition note"><p class="admonition-title">What this comparison can and cannot '
            f'show</p><ul>{items}</ul></div>')
