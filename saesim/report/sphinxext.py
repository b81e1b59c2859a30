"""Sphinx extension of the book: the build line on every page and the software's BibTeX, made at build time.

Listed in ``_config.yml`` (``sphinx.config.extensions``). It adds

* a line ``saesim <version>, commit <commit>, built <date>`` at the foot of
  every page's body (:func:`saesim.report.book.build_info`), so that a printed or
  saved page says what produced it;
* the directive ``{saesim-bibtex}``, a ``bibtex`` code block of the
  software's citation with the same version, URL and commit
  (:meth:`saesim.report.book.BuildInfo.bibtex`), used by ``book/cite.md``;
* the role ``{saesim-cite}`NAME``` (written by :func:`saesim.report.book.show_figure`
  under each caption): inside a figure it makes ``NAME`` (the figure's stable name) the
  figure's HTML id, before Sphinx numbers the figures (its label stays as a second
  anchor), and shows the figure's handle, ``<site>/<page>.html#NAME``
  (:mod:`saesim.report.citable`); ``{saesim-cite}`DOCNAME#NAME``` shows the handle of a
  figure on another page;
* the directive ``{saesim-figure-citation} DOCNAME#NAME`` (option ``:title:``): that
  figure's BibTeX ``@misc`` entry and a one-line citation for this build (the worked example
  of ``book/cite.md``);
* the site's address: ``$SAESIM_SITE_URL`` (set by ``saesim book --site-url``) becomes
  ``html_baseurl``, which the handles and Sphinx's canonical links use; without it,
  ``html.baseurl`` of ``_config.yml``; with neither, handles are relative to the site's root.
"""

from __future__ import annotations

import html
import posixpath

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.errors import ConfigError
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

__all__ = ["setup"]


class SaesimBibtex(SphinxDirective):
    """``{saesim-bibtex}``: the software's BibTeX entry for this build."""

    has_content = False

    def run(self):
        from saesim.report.book import build_info

        text = build_info().bibtex()
        block = nodes.literal_block(text, text)
        block["language"] = "bibtex"
        return [block]


class citable_handle(nodes.Inline, nodes.Element):
    """Placeholder of a handle: ``name`` on ``docname`` (None: this page), resolved when the page is written."""


def _split_target(text: str) -> tuple[str | None, str]:
    from saesim.report.citable import check_stable_name

    docname, _, name = text.strip().rpartition("#")
    return (docname.strip("/") or None), check_stable_name(name.strip(), "name")


def cite_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """``{saesim-cite}`NAME``` or ``{saesim-cite}`DOCNAME#NAME```: the citable handle of a figure."""
    try:
        docname, stable = _split_target(text)
    except ValueError as exc:
        msg = inliner.reporter.error(f"saesim-cite: {exc}", line=lineno)
        return [inliner.problematic(rawtext, rawtext, msg)], [msg]
    node = citable_handle(rawtext)
    node["name"], node["docname"] = stable, docname
    return [node], []


def _figure_ids(app, doctree) -> None:
    """A figure holding ``{saesim-cite}`NAME``` gets ``NAME`` as its first HTML id (numbers are keyed by it)."""
    for handle in doctree.findall(citable_handle):
        if handle["docname"] is not None:
            continue
        figure = handle.parent
        while figure is not None and not isinstance(figure, nodes.figure):
            figure = figure.parent
        if figure is None:
            continue
        name = handle["name"]
        if name in doctree.ids and doctree.ids[name] is not figure:
            logger.warning(f"saesim-cite: the id {name!r} is already used on this page", location=handle)
            continue
        if name not in figure["ids"]:
            figure["ids"].insert(0, name)
        doctree.ids[name] = figure


def _page_uri(app, docname: str) -> str:
    """The page's path from the site's root (``book/generated/full_space.html``)."""
    return app.builder.get_target_uri(docname)


def _handle(app, docname: str, name: str) -> tuple[str, str | None]:
    """(text shown, href) of ``name`` on ``docname``: the absolute handle with a site address, else root-relative."""
    from saesim.report.citable import handle_url

    site = (app.config.html_baseurl or "").rstrip("/")
    text = handle_url(_page_uri(app, docname), name, site)
    return text, text if site else None


def _resolve_handles(app, doctree, fromdocname) -> None:
    for handle in list(doctree.findall(citable_handle)):
        docname = handle["docname"] or fromdocname
        if docname not in app.env.all_docs:
            logger.warning(f"saesim-cite: no page {docname!r}", location=handle)
            handle.replace_self(nodes.literal(handle["name"], handle["name"]))
            continue
        text, href = _handle(app, docname, handle["name"])
        if href is None:  # relative to this page
            target = app.builder.get_relative_uri(fromdocname, docname) or posixpath.basename(_page_uri(app, docname))
            href = f"{target}#{handle['name']}"
        ref = nodes.reference("", "", nodes.literal(text, text), refuri=href, internal=False,
                              classes=["saesim-cite"])
        handle.replace_self(ref)


class citation_block(nodes.General, nodes.Element):
    """Placeholder of :class:`SaesimFigureCitation`, filled in when the page is written (it needs the URL)."""


class SaesimFigureCitation(SphinxDirective):
    """``{saesim-figure-citation} DOCNAME#NAME``: a figure's BibTeX ``@misc`` and one-line citation."""

    required_arguments = 1
    has_content = False
    option_spec = {"title": directives.unchanged}

    def run(self):
        try:
            docname, name = _split_target(self.arguments[0])
        except ValueError as exc:
            raise self.error(f"saesim-figure-citation: {exc}") from None
        if docname is None:
            raise self.error("saesim-figure-citation: give the page, DOCNAME#NAME")
        node = citation_block("")
        node["docname"], node["name"], node["title"] = docname, name, self.options.get("title")
        return [node]


def _resolve_citations(app, doctree, fromdocname) -> None:
    from saesim.report.book import build_info
    from saesim.report.citable import figure_bibtex, figure_citation

    for node in list(doctree.findall(citation_block)):
        docname, name, title = node["docname"], node["name"], node["title"]
        if docname not in app.env.all_docs:
            logger.warning(f"saesim-figure-citation: no page {docname!r}", location=node)
        text, _ = _handle(app, docname, name)
        info = build_info()
        bib = figure_bibtex(name, text, info, title=title)
        block = nodes.literal_block(bib, bib)
        block["language"] = "bibtex"
        line = figure_citation(name, text, info, title=title)
        before, _, after = line.partition(text)
        href = text if "://" in text else app.builder.get_relative_uri(fromdocname, docname) + f"#{name}"
        link = nodes.reference("", "", nodes.Text(text), refuri=href, internal=False)
        para = nodes.paragraph("", "", nodes.Text(before), link, nodes.Text(after))
        node.replace_self([block, para])


def _site_url(app, config) -> None:
    """``$SAESIM_SITE_URL`` (``saesim book --site-url``) wins over ``html_baseurl`` of the configuration."""
    from saesim.report.citable import site_url

    try:
        site = site_url() or site_url(config.html_baseurl or "")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    config.html_baseurl = site + "/" if site else ""


def _page_footer(app, pagename, templatename, context, doctree):
    from saesim.report.book import build_info

    if "body" not in context:
        return
    info = build_info()
    commit = html.escape(info.commit)
    context["body"] += (f'<p class="saesim-build" style="font-size: 0.85em; color: #555; margin-top: 2em;">'
                        f'Built with saesim {html.escape(info.version)}, commit <code title="{commit}">'
                        f'{html.escape(info.short)}</code>, on {html.escape(info.date)} '
                        f'(<a href="{html.escape(info.url)}">{html.escape(info.url)}</a>).</p>')


def setup(app):
    app.add_directive("saesim-bibtex", SaesimBibtex)
    app.add_directive("saesim-figure-citation", SaesimFigureCitation)
    app.add_role("saesim-cite", cite_role)
    app.add_node(citable_handle)
    app.add_node(citation_block)
    app.connect("config-inited", _site_url)
    app.connect("doctree-read", _figure_ids)
    app.connect("doctree-resolved", _resolve_handles)
    app.connect("doctree-resolved", _resolve_citations)
    app.connect("html-page-context", _page_footer)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
