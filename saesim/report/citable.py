"""Stable handles for the book's figures and tables: anchors, table numbers, the site's address, citations.

A reader cites a figure or a table of the book by its page and an anchor that do not change between
builds:

* **figures** are anchored by their stable name, the name their files are saved under
  (:func:`saesim.report.book.show_figure`): ``full_space.html#fig3_full_space_svcca_rsa``. The
  figure's HTML id is that name (set by :mod:`saesim.report.sphinxext`, which also keeps the
  Sphinx label ``fig3-full-space-svcca-rsa`` as a second anchor), and the line ``Cite as: ...``
  under its caption shows the handle. Sphinx's figure numbers ("Fig. 3.2") depend on what a build
  holds; the name does not.
* **tables** shown through :func:`saesim.report.tables.page_style` get the HTML id
  ``T_<name>`` on their ``<table>`` (``<name>``: the ``name=`` the page passes, or a slug of the
  caption's first words, :func:`table_slug`) and the label "Table N": N counts the page's tables
  in page order (:func:`table_anchor`), so the same page code gives the same numbers in every
  build.
* the **site's address** (:func:`site_url`: ``saesim book --site-url``, ``$SAESIM_SITE_URL``, or
  ``html.baseurl`` in ``_config.yml``) makes the handles absolute URLs; without one they are
  paths relative to the site's root.

:func:`figure_bibtex` and :func:`figure_citation` write one figure's citation (BibTeX ``@misc``
and one line of text) with the build line (version, commit, date), as ``book/cite.md`` shows.
"""

from __future__ import annotations

import os
import re
import unicodedata
from urllib.parse import urlsplit

__all__ = [
    "SITE_URL_ENV",
    "STABLE_NAME",
    "check_stable_name",
    "figure_bibtex",
    "figure_citation",
    "handle_url",
    "reset_tables",
    "site_url",
    "table_anchor",
    "table_slug",
]

SITE_URL_ENV = "SAESIM_SITE_URL"
"""Environment variable holding the site's address (``https://host/path``), read when ``--site-url`` is not given."""

STABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
"""What a stable name (figure or table) may be: a letter, then letters, digits, ``_`` and ``-`` (a valid HTML id)."""

TABLE_SLUG_WORDS = 6
"""Words of a caption that make a table's name when the page gives none (:func:`table_slug`)."""

TABLE_SLUG_CHARS = 48
"""Longest caption-derived table name, cut at a word boundary."""


def check_stable_name(name: str, what: str = "name") -> str:
    """``name`` unchanged if it is a stable name (:data:`STABLE_NAME`); ``ValueError`` naming ``what`` otherwise."""
    if not isinstance(name, str) or not STABLE_NAME.fullmatch(name):
        raise ValueError(f"`{what}` must start with a letter and hold only letters, digits, '_' and '-' "
                         f"(it becomes an HTML anchor); got {name!r}.")
    return name


# --------------------------------------------------------------------------- site address


def site_url(value: str | None = None, *, environ=None) -> str:
    """The site's address, normalised: ``value``, else ``$SAESIM_SITE_URL``, else ``""`` (handles stay relative).

    Parameters
    ----------
    value : str, optional
        ``http(s)://host[/path]``; a trailing ``/`` is dropped. ``""`` means none (and does not fall
        back to the environment).
    environ : mapping, optional
        Where to read :data:`SITE_URL_ENV` (default ``os.environ``).

    Raises
    ------
    ValueError
        Not an ``http://`` or ``https://`` address with a host, or it holds a query, fragment or
        whitespace.
    """
    if value is None:
        value = (os.environ if environ is None else environ).get(SITE_URL_ENV, "")
    text = str(value).strip()
    if not text:
        return ""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment \
            or re.search(r"\s", text):
        raise ValueError(f"the site's address must look like https://host/path (no query or #fragment); "
                         f"got {text!r} (from --site-url or ${SITE_URL_ENV}).")
    return text.rstrip("/")


def handle_url(page: str, anchor: str, site: str = "") -> str:
    """The citable address of ``anchor`` on ``page``.

    ``page`` is the page's path from the site's root (``"book/generated/full_space.html"``). With a
    ``site`` address: ``"<site>/<page>#<anchor>"``; without: ``"<page>#<anchor>"``.
    """
    check_stable_name(anchor, "anchor")
    page = page.lstrip("/")
    return f"{site.rstrip('/')}/{page}#{anchor}" if site else f"{page}#{anchor}"


# --------------------------------------------------------------------------- tables


def table_slug(text: str | None, *, words: int = TABLE_SLUG_WORDS, max_chars: int = TABLE_SLUG_CHARS) -> str:
    """A table's name from its caption: the first ``words`` words, lower-cased, joined by ``-``.

    Accents are dropped (``é`` -> ``e``) and anything but ASCII letters and digits separates words
    (``"Appendix A4 analogue: latents and pairs ..."`` -> ``"appendix-a4-analogue-latents-and-pairs"``);
    the result is cut at a word boundary to at most ``max_chars`` characters and starts with a
    letter (``"t-"`` is put in front otherwise). ``""`` for a caption with no such word (or none).
    """
    ascii_text = unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode()  # é -> e
    tokens = re.findall(r"[a-z0-9]+", ascii_text.lower())[:words]
    slug = ""
    for token in tokens:
        longer = f"{slug}-{token}" if slug else token
        if len(longer) > max_chars:
            break
        slug = longer
    if not slug and tokens:
        slug = tokens[0][:max_chars]
    if slug and not slug[0].isalpha():
        slug = f"t-{slug}"
    return slug


_TABLES: dict[str, int] = {}
"""This process's tables, id -> number, in the order they were first styled (the kernel runs one page)."""


def reset_tables() -> None:
    """Forget the tables numbered so far (a new page starts at Table 1)."""
    _TABLES.clear()


def table_anchor(name: str | None = None, caption: str | None = None) -> tuple[str, int]:
    """A page table's stable name and its number on the page, "Table N" in page order.

    Parameters
    ----------
    name : str, optional
        The table's stable name (:data:`STABLE_NAME`), given by the page. The same name again is the
        same table (same number).
    caption : str, optional
        Used when no ``name`` is given: :func:`table_slug` of it (``"table"`` when it has no word).
        A second table whose slug is already taken on the page gets ``-2``, ``-3``, ... appended.

    Returns
    -------
    (str, int)
        The name (the ``<table>``'s HTML id is ``T_<name>``) and N: 1 for the page's first table.

    Notes
    -----
    Numbers count the tables in the order the page styles them, one process per page (papermill
    runs each notebook in its own kernel), so they are the same in every build of the same page
    code. A table that is styled but only shown when the data allow it shifts the numbers after
    it; the name never moves.
    """
    if name is not None:
        tid = check_stable_name(name, "name")
    else:
        base = table_slug(caption) or "table"
        tid, k = base, 1
        while tid in _TABLES:
            k += 1
            tid = f"{base}-{k}"
    if tid not in _TABLES:
        _TABLES[tid] = len(_TABLES) + 1
    return tid, _TABLES[tid]


# --------------------------------------------------------------------------- figure citations


def _bibtex_escape(text: str) -> str:
    return re.sub(r"([_&%#$])", r"\\\1", text)


def figure_bibtex(name: str, url: str, info, *, title: str | None = None) -> str:
    """One figure of the book as a BibTeX ``@misc`` entry.

    Parameters
    ----------
    name : str
        The figure's stable name (``"fig3_full_space_svcca_rsa"``); the key is ``saesim:<name>``.
    url : str
        Its handle, the page's address with the name as anchor (:func:`handle_url`).
    info : saesim.report.book.BuildInfo
        The build: version, full commit (``(with uncommitted changes)`` when dirty) and date go in
        the note, the date's year in ``year``.
    title : str, optional
        What the figure shows; the title is ``saesim book, figure <name>: <title>``.
    """
    check_stable_name(name, "name")
    head = f"saesim book, figure {name}" + (f": {' '.join(title.split())}" if title else "")
    dirty = " (with uncommitted changes)" if info.dirty else ""
    return ("@misc{saesim:" + name + ",\n"
            f"  title        = {{{_bibtex_escape(head)}}},\n"
            "  author       = {{The saesim developers}},\n"
            f"  howpublished = {{\\url{{{url}}}}},\n"
            f"  note         = {{saesim {info.version}, commit {info.commit}{dirty}, built {info.date}}},\n"
            f"  year         = {{{info.date[:4]}}}\n"
            "}")


def figure_citation(name: str, url: str, info, *, title: str | None = None) -> str:
    """One figure of the book as one line of text: who, what, where, and the build line."""
    check_stable_name(name, "name")
    head = f"saesim book, figure {name}" + (f": {' '.join(title.split())}" if title else "")
    return f"The saesim developers ({info.date[:4]}). {head}. {url} ({info.line()})."
