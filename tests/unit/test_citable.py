"""Stable handles of the book's figures and tables (saesim.report.citable, the Sphinx extension, the CLI)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from saesim.report import citable, tables
from saesim.report.book import BuildInfo

INFO = BuildInfo(version="0.1.0", commit="0123456789abcdef0123456789abcdef01234567", dirty=False, date="2026-03-04")


@pytest.fixture(autouse=True)
def fresh_page():
    citable.reset_tables()
    yield
    citable.reset_tables()


class TestNames:
    @pytest.mark.parametrize("name", ["fig3_full_space_svcca_rsa", "figA9_concepts_svcca", "t-1", "x"])
    def test_stable_names_pass_unchanged(self, name):
        assert citable.check_stable_name(name) == name

    @pytest.mark.parametrize("name", ["", "3fig", "fig 3", "fig.3", "_fig", "fig#3", None])
    def test_other_names_are_explained(self, name):
        with pytest.raises(ValueError, match="start with a letter"):
            citable.check_stable_name(name)


class TestSiteUrl:
    def test_none_reads_the_environment_and_drops_the_trailing_slash(self):
        assert citable.site_url(environ={"SAESIM_SITE_URL": "https://example.org/saesim/"}) == \
            "https://example.org/saesim"
        assert citable.site_url(environ={}) == ""

    def test_a_given_address_wins_over_the_environment(self):
        env = {"SAESIM_SITE_URL": "https://env.example.org"}
        assert citable.site_url("http://given.example.org/book", environ=env) == "http://given.example.org/book"
        assert citable.site_url("", environ=env) == ""  # an explicit empty address means none

    @pytest.mark.parametrize("bad", ["example.org", "ftp://example.org", "https://", "https://x.org/a#b",
                                     "https://x.org/?q=1", "https://x.org/a b"])
    def test_bad_addresses_are_explained(self, bad):
        with pytest.raises(ValueError, match="https://host/path"):
            citable.site_url(bad)

    def test_handles_are_absolute_with_a_site_and_root_relative_without(self):
        page = "book/generated/full_space.html"
        assert citable.handle_url(page, "fig3_full_space_svcca_rsa") == \
            "book/generated/full_space.html#fig3_full_space_svcca_rsa"
        assert citable.handle_url(page, "fig3_full_space_svcca_rsa", "https://x.org/book/") == \
            "https://x.org/book/book/generated/full_space.html#fig3_full_space_svcca_rsa"
        with pytest.raises(ValueError):
            citable.handle_url(page, "not an id")


class TestTableNames:
    @pytest.mark.parametrize("caption, slug", [
        ("Appendix A4 analogue: latents and pairs at each filter stage", "appendix-a4-analogue-latents-and-pairs"),
        ("RSA of every comparison", "rsa-of-every-comparison"),
        ("3 things: a, b", "t-3-things-a-b"),
        ("Ünïcode — only?", "unicode-only"),
        ("", ""),
        (None, ""),
        ("!!!", ""),
    ])
    def test_slug_is_the_captions_first_words(self, caption, slug):
        assert citable.table_slug(caption) == slug

    def test_slug_is_cut_at_a_word_boundary(self):
        slug = citable.table_slug("a" * 30 + " " + "b" * 30, max_chars=48)
        assert slug == "a" * 30
        assert len(citable.table_slug("x" * 100)) == citable.TABLE_SLUG_CHARS

    def test_numbers_follow_page_order_and_names_are_stable(self):
        assert citable.table_anchor(caption="Pairs left after each filter stage") == \
            ("pairs-left-after-each-filter-stage", 1)
        assert citable.table_anchor(name="svcca_by_layer") == ("svcca_by_layer", 2)
        assert citable.table_anchor(caption="Pairs left after each filter stage") == \
            ("pairs-left-after-each-filter-stage-2", 3)  # a second table with that caption
        assert citable.table_anchor(name="svcca_by_layer") == ("svcca_by_layer", 2)  # the same named table
        assert citable.table_anchor() == ("table", 4)
        citable.reset_tables()  # the next page
        assert citable.table_anchor(name="svcca_by_layer") == ("svcca_by_layer", 1)

    def test_the_same_page_code_gives_the_same_numbers(self):
        def page():
            citable.reset_tables()
            return [citable.table_anchor(name=n, caption=c) for n, c in
                    [(None, "First table"), ("named", None), (None, "First table"), (None, "Other")]]

        assert page() == page() == [("first-table", 1), ("named", 2), ("first-table-2", 3), ("other", 4)]

    def test_bad_name_is_explained(self):
        with pytest.raises(ValueError, match="`name`"):
            citable.table_anchor(name="two words")


class TestPageStyle:
    FRAME = pd.DataFrame({"score": [0.12345, -0.00001], "pairs": [3, 4]})

    def test_html_holds_the_anchor_and_the_numbered_label(self):
        html = tables.page_style(self.FRAME, "Appendix A4 analogue: latents and pairs at each stage").to_html()
        assert '<table id="T_appendix-a4-analogue-latents-and-pairs"' in html
        assert 'href="#T_appendix-a4-analogue-latents-and-pairs"' in html and ">Table 1</a>" in html
        assert "Appendix A4 analogue: latents and pairs at each stage</caption>" in html
        assert "_row0_col0" not in html  # no cell ids but on styled cells: the table's id is the anchor

    def test_named_tables_and_page_order(self):
        first = tables.page_style(self.FRAME, "A caption", name="svcca_by_layer").to_html()
        second = tables.page_style(self.FRAME).to_html()
        assert '<table id="T_svcca_by_layer"' in first and ">Table 1</a>" in first
        assert '<table id="T_table"' in second and ">Table 2</a>" in second

    def test_styling_again_keeps_the_name_and_number(self):
        styler = tables.page_style(self.FRAME, "Some caption")
        again = tables.page_style(styler)
        html = again.to_html()
        assert html.count(">Table 1</a>") == 1 and "Some caption" in html and '<table id="T_some-caption"' in html

    def test_coloured_and_comparison_tables_are_anchored_too(self):
        html = tables.styled(self.FRAME).to_html()
        assert '<table id="T_table"' in html and "#T_table_row0_col0" in html  # gradient cells keep their ids
        assert ">Table 1</a>" in html

    def test_the_same_calls_give_the_same_html(self):
        def page():
            citable.reset_tables()
            return [tables.page_style(self.FRAME, c).to_html() for c in ("One", "Two", "One")]

        assert page() == page()


class TestFigureCitation:
    URL = "https://x.org/book/generated/full_space.html#fig3_full_space_svcca_rsa"

    def test_bibtex_names_the_figure_its_handle_and_the_build(self):
        bib = citable.figure_bibtex("fig3_full_space_svcca_rsa", self.URL, INFO, title="SVCCA and RSA")
        assert bib.startswith("@misc{saesim:fig3_full_space_svcca_rsa,")
        assert r"figure fig3\_full\_space\_svcca\_rsa: SVCCA and RSA" in bib
        assert f"\\url{{{self.URL}}}" in bib
        assert f"saesim 0.1.0, commit {INFO.commit}, built 2026-03-04" in bib and "year         = {2026}" in bib
        dirty = BuildInfo(version="0.1.0", commit=INFO.commit, dirty=True, date="2026-03-04")
        assert "(with uncommitted changes)" in citable.figure_bibtex("f", self.URL, dirty)

    def test_one_line_citation(self):
        line = citable.figure_citation("fig3_full_space_svcca_rsa", self.URL, INFO)
        assert line == (f"The saesim developers (2026). saesim book, figure fig3_full_space_svcca_rsa. {self.URL} "
                        f"(saesim 0.1.0, commit 0123456789ab, built 2026-03-04).")


class TestCommandLine:
    def test_site_url_option_reaches_the_build(self, monkeypatch):
        from saesim import cli

        seen = {}
        monkeypatch.setattr("saesim.report.build.build_book", lambda *a, **kw: seen.update(kw))
        monkeypatch.delenv("SAESIM_SITE_URL", raising=False)
        assert cli.main(["book", "--no-execute", "--site-url", "https://x.org/b/"]) == 0
        assert seen["site_url"] == "https://x.org/b"
        monkeypatch.setenv("SAESIM_SITE_URL", "https://env.org")
        assert cli.main(["book", "--no-execute"]) == 0 and seen["site_url"] == "https://env.org"
        assert cli.main(["book", "--no-execute", "--site-url", ""]) == 0 and seen["site_url"] == ""

    def test_bad_site_url_stops_before_the_build(self, monkeypatch):
        from saesim import cli

        monkeypatch.setattr("saesim.report.build.build_book", lambda *a, **kw: pytest.fail("built"))
        with pytest.raises(SystemExit, match="https://host/path"):
            cli.main(["book", "--site-url", "example.org"])

    def test_build_book_checks_the_address_first(self, tmp_path):
        from saesim.report.build import build_book

        with pytest.raises(ValueError, match="https://host/path"):
            build_book("tiny", root=tmp_path, build_dir=tmp_path / "_build", site_url="ftp://x.org", progress=False)


PAGE = """\
# Full space

See {numref}`fig3-full-space-svcca-rsa`.

:::{figure} figures/fig3_full_space_svcca_rsa.png
:name: fig3-full-space-svcca-rsa
:alt: a heatmap

A caption. Files: (`fig3_full_space_svcca_rsa`).

Cite as: {saesim-cite}`fig3_full_space_svcca_rsa`
:::
"""

CITE = """\
# Cite

Handle: {saesim-cite}`book/generated/full_space#fig3_full_space_svcca_rsa`

```{saesim-figure-citation} book/generated/full_space#fig3_full_space_svcca_rsa
:title: SVCCA and RSA
```
"""


def _sphinx(tmp_path, env_url: str | None, out: str):
    """A two-page Sphinx project laid out like the book, built strictly with saesim.report.sphinxext."""
    src = tmp_path / "src"
    if not src.exists():
        (src / "book" / "generated" / "figures").mkdir(parents=True)
        # a 1x1 PNG
        (src / "book" / "generated" / "figures" / "fig3_full_space_svcca_rsa.png").write_bytes(bytes.fromhex(
            "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8ffff3f"
            "0005fe02fea7d6a4f10000000049454e44ae426082"))
        (src / "conf.py").write_text(textwrap.dedent("""\
            extensions = ["myst_parser", "saesim.report.sphinxext"]
            myst_enable_extensions = ["colon_fence"]
            numfig = True
            html_theme = "basic"
            """))
        (src / "index.md").write_text("# Root\n\n```{toctree}\n:numbered:\nbook/generated/full_space\nbook/cite\n```\n")
        (src / "book" / "generated" / "full_space.md").write_text(PAGE)
        (src / "book" / "cite.md").write_text(CITE)
    import os

    env = {k: v for k, v in os.environ.items() if k != "SAESIM_SITE_URL"}
    env.update({"SAESIM_COMMIT": INFO.commit, "SOURCE_DATE_EPOCH": "1772582400"})
    if env_url is not None:
        env["SAESIM_SITE_URL"] = env_url
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-W", "-n", "-q", "-E", str(src),
                           str(tmp_path / out)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return tmp_path / out


class TestSphinxExtension:
    def test_figure_id_is_its_stable_name_and_handles_follow_the_site(self, tmp_path):
        html_dir = _sphinx(tmp_path, None, "relative")
        page = (html_dir / "book" / "generated" / "full_space.html").read_text()
        assert '<figure class="align-default" id="fig3_full_space_svcca_rsa">' in page  # the figure's own id
        assert 'id="fig3-full-space-svcca-rsa"' in page  # the Sphinx label still lands
        assert "Fig. 1.1" in page  # numbered, numref resolved (strict build)
        assert ('href="full_space.html#fig3_full_space_svcca_rsa"><code class="docutils literal notranslate">'
                '<span class="pre">book/generated/full_space.html#fig3_full_space_svcca_rsa</span>') in page
        cite = (html_dir / "book" / "cite.html").read_text()
        assert 'href="generated/full_space.html#fig3_full_space_svcca_rsa"' in cite
        assert "@misc" in cite and "commit 0123456789ab, built 2026-03-04" in cite

        html_dir = _sphinx(tmp_path, "https://example.org/saesim/", "absolute")
        page = (html_dir / "book" / "generated" / "full_space.html").read_text()
        url = "https://example.org/saesim/book/generated/full_space.html"
        assert f'href="{url}#fig3_full_space_svcca_rsa"' in page
        assert f'<link rel="canonical" href="{url}"' in page
        assert f"\\url{{{url}#fig3_full_space_svcca_rsa}}" in (html_dir / "book" / "cite.html").read_text()
