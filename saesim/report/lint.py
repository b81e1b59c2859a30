"""Defects a machine can see in the rendered book: plumbing and number formats in reader-facing text.

:func:`lint_page` reads one rendered HTML page and reports, outside code (``<code>``, ``<pre>``,
scripts and styles, where identifiers are the point):

* ``raw-name`` — a tidy-table column name (``svcca_authors_k``, ``rsa_p_holm``, ``control_all``...)
  in prose, captions or table cells instead of its human name (:mod:`saesim.vocab`);
* ``path`` — a printed results path (``<results_dir>``, ``/tmp/...``, ``.saesim_cache``);
* ``negative-zero`` — ``-0.000`` and its kin (a value that rounds to 0 prints as 0);
* ``pandas-float`` — an unformatted float with six or more decimals (``0.400792``) or a count
  printed as a float (``4096.000``);
* ``nan`` — ``nan`` / ``NaN`` shown as a value.

:func:`lint_book` runs it over every page of a build; ``saesim book`` prints what it finds and
the slow book tests require none on the tiny book.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

__all__ = ["CHECKS", "Defect", "lint_book", "lint_page", "reader_text"]

CHECKS: tuple[str, ...] = ("raw-name", "path", "negative-zero", "pandas-float", "nan")
"""The defect classes :func:`lint_page` reports."""

_SKIP = {"code", "pre", "script", "style", "kbd", "samp", "head", "title"}
_SUFFIXES = ("_null_mean", "_null_std", "_p_holm", "_p_bh", "_p_tail", "_excess", "_k_x", "_k_y", "_z", "_p",
             "_ci_low", "_ci_high", "_p_le_05")
_MEASURES = ("svcca_authors_k", "svcca", "pwcca", "rsa", "linear_cka", "procrustes")
_RAW = re.compile(
    r"(?<![\w./-])(?:(?:" + "|".join(_MEASURES) + r")(?:" + "|".join(map(re.escape, _SUFFIXES)) + r")"
    r"|svcca_authors_k|control_all|kept_fraction|n_pairs|n_choosers|mean_best_r|mean_r_filtered|null_mean"
    r"|n_after_junk|n_after_1to1|layer_a|layer_b)(?![\w-])")
_PATH = re.compile(r"<results_dir>|\.saesim_cache|(?<![\w.])/(?:tmp|home|work|root)/[\w./-]+")
_NEG_ZERO = re.compile(r"(?<![\w.])[-−‐]0(?:\.0+)?(?![\d.]*[1-9])(?=\b|%|\s|$)")
_LONG_FLOAT = re.compile(r"(?<![\w.])-?\d+\.\d{6,}(?![\w])|(?<![\w.,])\d{3,}\.000(?!\d)")
_NAN = re.compile(r"(?<![\w])(?:nan|NaN)(?![\w])")


@dataclass(frozen=True)
class Defect:
    """One finding: the page, the check, the matched text and its context."""

    page: str
    check: str
    match: str
    context: str

    def __str__(self) -> str:
        return f"{self.page}: {self.check}: {self.match!r} in …{self.context}…"


class _Text(HTMLParser):
    """Collects the text a reader sees, skipping code, scripts and hidden cells."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.depth = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in _SKIP:
            self.depth += 1

    def handle_endtag(self, tag):
        if tag in _SKIP and self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if not self.depth:
            self.parts.append(data)


def reader_text(html: str) -> str:
    """The page's text outside code, scripts and styles, whitespace collapsed."""
    parser = _Text()
    parser.feed(html)
    return re.sub(r"\s+", " ", " ".join(parser.parts))


def lint_page(html: str, page: str = "page") -> list[Defect]:
    """Every defect of :data:`CHECKS` in one rendered page (see the module docstring)."""
    text = reader_text(html)
    out = []
    for check, pattern in (("raw-name", _RAW), ("path", _PATH), ("negative-zero", _NEG_ZERO),
                           ("pandas-float", _LONG_FLOAT), ("nan", _NAN)):
        for match in pattern.finditer(text):
            start, end = max(0, match.start() - 40), min(len(text), match.end() + 40)
            out.append(Defect(page, check, match.group(0), text[start:end]))
    return out


def lint_book(html_dir, pages=None) -> list[Defect]:
    """:func:`lint_page` over every ``*.html`` under ``html_dir`` (or the given ``pages``),
    skipping Sphinx's own pages (search, genindex) and the downloaded sources."""
    root = Path(html_dir)
    paths = [Path(p) for p in pages] if pages is not None else sorted(root.rglob("*.html"))
    out = []
    for path in paths:
        rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
        if rel.startswith(("_", "search", "genindex")):
            continue
        out.extend(lint_page(path.read_text(encoding="utf-8", errors="replace"), rel))
    return out
