"""Writing a figure to disk: PDF, SVG and PNG under stable names, atomically and byte-reproducibly.

Private to :mod:`saesim.report`; import the public names from :mod:`saesim.report.plots`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from saesim.io import atomic_path


SAVE_FORMATS = ("pdf", "svg", "png")
"""Files written by :func:`save_figure`."""

SAVE_DPI = 150
"""Resolution of the PNG written by :func:`save_figure`."""

FIGURE_NAMES: dict[str, str] = {
    "fig1": "fig1_method_overview",
    "fig2": "fig2_toy_pairing",
    "fig3": "fig3_full_space_svcca_rsa",
    "fig4": "fig4_full_space_svcca_rsa_gemma",
    "a1": "figA1_svcca_null_and_p",
    "a2": "figA2_rsa_null_and_p",
    "a3": "figA3_correlation_before_after_filtering",
    "a4": "figA4_pairs_kept",
    "a6": "figA6_many_to_one_svcca_rsa",
    "a8": "figA8_paired_vs_null_bars",
    "a9_svcca": "figA9_concepts_svcca",
    "a9_svcca_p": "figA9_concepts_svcca_p",
    "a9_rsa": "figA9_concepts_rsa",
    "a9_rsa_p": "figA9_concepts_rsa_p",
    "hubs": "fig_hub_histogram",
    "frequency": "fig_activation_frequency",
    "pvalues": "fig_pvalue_histogram",
}
"""Stable file names (no suffix) for :func:`save_figure`, keyed by paper item."""


def save_figure(fig: Figure, name: str, out_dir, *, formats: Sequence[str] = SAVE_FORMATS,
                dpi: int = SAVE_DPI, metadata: Mapping | None = None,
                min_width_px: int | None = None) -> dict[str, Path]:
    """Write a figure as ``<name>.pdf``, ``<name>.svg`` and ``<name>.png``, atomically.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    name : str
        Stable file stem without suffix, e.g. ``"fig3_full_space_svcca_rsa"``
        (see :data:`FIGURE_NAMES`); letters, digits, ``_``, ``-`` and ``.``.
    out_dir : str or Path
        Created if missing.
    formats : sequence of str, default ("pdf", "svg", "png")
    dpi : int, default 150
        Resolution of raster output.
    metadata : mapping, optional
        ``Title``, ``Description`` and ``Software`` of the figure (e.g. the
        caption and saesim's version, commit and build date); written as the
        PNG's text chunks, the PDF's Title / Subject / Creator and the SVG's
        Title / Description / Creator.
    min_width_px : int, optional
        Smallest width of the PNG: a figure that would come out narrower at
        ``dpi`` is rendered at the resolution that reaches it.

    Returns
    -------
    dict of str -> Path
        Format -> written file.

    Notes
    -----
    Each file is written to a temporary name in ``out_dir`` and moved into
    place with :func:`os.replace`, so a reader never sees a half-written file.
    Creation dates are left out of the PDF and SVG metadata and SVG ids are
    salted with ``name``, so saving the same figure twice gives the same bytes.
    """
    if not isinstance(fig, Figure):
        raise TypeError(f"`fig` must be a matplotlib Figure; got {type(fig).__name__}.")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", name):
        raise ValueError(f"`name` must be a plain file stem of letters, digits, '_', '-', '.' "
                         f"(e.g. 'fig3_full_space_svcca_rsa'); got {name!r}.")
    formats = [formats] if isinstance(formats, str) else list(formats)
    if any(name.lower().endswith(f".{ext}") for ext in formats):
        raise ValueError(f"`name` {name!r} must not carry a suffix; one file per format is written.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = {k: str(v) for k, v in (metadata or {}).items() if v is not None}
    unknown = sorted(set(info) - {"Title", "Description", "Software"})
    if unknown:
        raise ValueError(f"`metadata` keys {unknown} are not supported; use Title, Description and Software.")
    per_format = {
        "pdf": {"CreationDate": None, **{pdf: info[key] for key, pdf in (("Title", "Title"), ("Description", "Subject"),
                                                                          ("Software", "Creator")) if key in info}},
        "svg": {"Date": None, **{svg: info[key] for key, svg in (("Title", "Title"), ("Description", "Description"),
                                                                  ("Software", "Creator")) if key in info}},
        "png": dict(info) or None,
    }
    written = {}
    with matplotlib.rc_context({"svg.hashsalt": name}):
        for ext in formats:
            target = out_dir / f"{name}.{ext}"
            _save_one(fig, target, ext, dpi, per_format.get(ext))
            if ext == "png" and min_width_px:
                width = png_width(target)
                if width < min_width_px:
                    _save_one(fig, target, ext, int(math.ceil(dpi * min_width_px / max(width, 1))) + 1,
                              per_format.get(ext))
            written[ext] = target
    return written


def _save_one(fig: Figure, target: Path, ext: str, dpi: int, metadata) -> None:
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format=ext, dpi=dpi, bbox_inches="tight", metadata=metadata)


def png_width(path: Path) -> int:
    """Pixel width from a PNG's IHDR chunk."""
    with open(path, "rb") as handle:
        header = handle.read(24)
    return int.from_bytes(header[16:20], "big")
