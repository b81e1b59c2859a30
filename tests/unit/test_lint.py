"""The book linter finds each defect class in planted pages, and not inside code."""

from __future__ import annotations

import pytest

from saesim.report.lint import CHECKS, lint_book, lint_page, reader_text


@pytest.mark.parametrize(("html", "check", "match"), [
    ("<p>the svcca_authors_k column</p>", "raw-name", "svcca_authors_k"),
    ("<td>rsa_p_holm</td>", "raw-name", "rsa_p_holm"),
    ("<p>compared with control_all</p>", "raw-name", "control_all"),
    ("<p>results in &lt;results_dir&gt;/full_space.parquet</p>", "path", "<results_dir>"),
    ("<p>saved to /tmp/saesim-x/out.json</p>", "path", "/tmp/saesim-x/out.json"),
    ("<td>-0.000</td>", "negative-zero", "-0.000"),
    ("<p>a null mean of −0.00, then</p>", "negative-zero", "−0.00"),
    ("<td>0.400792</td>", "pandas-float", "0.400792"),
    ("<td>4096.000</td>", "pandas-float", "4096.000"),
    ("<td>nan</td>", "nan", "nan"),
])
def test_each_defect_class_is_found(html, check, match):
    found = [(d.check, d.match) for d in lint_page(html)]
    assert (check, match) in found
    assert check in CHECKS


@pytest.mark.parametrize("html", [
    "<p>the <code>svcca_authors_k</code> column</p>",
    "<pre>rsa_p_holm = 0.400792\n-0.000 nan /tmp/x</pre>",
    "<p>-0.001, 0.000, 10.5 %, 1e-12, A10–B17, 0.40, first-index</p>",
    "<script>var nan = -0.000;</script><p>fine</p>",
])
def test_code_and_good_numbers_pass(html):
    assert lint_page(html) == []


def test_reader_text_skips_code_and_collapses_space():
    assert reader_text("<p>a  <code>x_y</code>\n b</p>") == "a b"


def test_lint_book_walks_pages_and_skips_sphinx_ones(tmp_path):
    (tmp_path / "generated").mkdir()
    (tmp_path / "generated" / "p.html").write_text("<td>-0.000</td>")
    (tmp_path / "search.html").write_text("<td>-0.000</td>")
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "x.html").write_text("<td>nan</td>")
    found = lint_book(tmp_path)
    assert [(d.page, d.check) for d in found] == [("generated/p.html", "negative-zero")]
    assert "generated/p.html: negative-zero" in str(found[0])
