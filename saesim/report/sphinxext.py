"""Sphinx extension of the book: the build line on every page and the software's BibTeX, made at build time.

Listed in ``_config.yml`` (``sphinx.config.extensions``). It adds

* a line ``saesim <version>, commit <commit>, built <date>`` at the foot of
  every page's body (:func:`saesim.report.book.build_info`), so that a printed or
  saved page says what produced it;
* the directive ``{saesim-bibtex}``, a ``bibtex`` code block of the
  software's citation with the same version, URL and commit
  (:meth:`saesim.report.book.BuildInfo.bibtex`), used by ``book/cite.md``.
"""

from __future__ import annotations

import html

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

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
    app.connect("html-page-context", _page_footer)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
