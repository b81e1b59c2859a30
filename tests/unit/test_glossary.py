"""The glossary (saesim.report.glossary): every name a table prints has one definition, and every link resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from saesim import vocab
from saesim.report import glossary

ROOT = Path(__file__).resolve().parents[2]
TERM_ROLE = re.compile(r"\{term\}`([^`]+)`")
LINKING_PAGES = ("method", "full_space", "findings", "subspace", "many_to_one", "robustness")


def _terms() -> set[str]:
    return {t.lower() for entry in glossary.entries() for t in entry.terms}


def _target(role_text: str) -> str:
    """The term a ``{term}`` role links to: ``text <target>`` or ``target``."""
    found = re.fullmatch(r"(?s).*<([^<>]+)>\s*", role_text)
    return (found.group(1) if found else role_text).strip()


class TestEntries:
    @pytest.mark.parametrize("kind", glossary.VOCAB_KINDS)
    def test_every_vocabulary_label_has_an_entry(self, kind):
        terms = _terms()
        missing = [term.label for term in vocab.TERMS[kind].values() if term.label.lower() not in terms]
        assert not missing, f"{kind} labels without a glossary entry: {missing}"

    def test_every_rule_and_measure_names_its_stored_key(self):
        for kind in ("rule", "measure"):
            for key in vocab.TERMS[kind]:
                entry = next(e for e in glossary.entries() if e.terms[0] == vocab.label(kind, key))
                if kind == "rule":
                    assert f"`{key}`" in entry.text, key  # what `rule=` takes

    @pytest.mark.parametrize("name", ["FVU", "PWCCA", "SVCCA", "RSA", "linear CKA", "Holm", "BH", "tail p-value",
                                      "excess over null", "seed control", "re-randomised controls", "GPD"])
    def test_the_issue_s_terms_are_defined(self, name):
        assert name.lower() in _terms()

    def test_bh_says_the_book_uses_holm(self):
        entry = next(e for e in glossary.entries() if "BH" in e.terms)
        assert "does not use it" in entry.text and "Holm" in entry.text

    def test_the_seed_control_is_a_reference_not_a_floor_or_ceiling(self):
        entry = next(e for e in glossary.entries() if "seed control" in e.terms)
        assert vocab.SEED_REFERENCE in entry.text and "reference" in entry.text

    def test_no_term_is_defined_twice(self):
        names = [t.lower() for e in glossary.entries() for t in e.terms]
        assert len(names) == len(set(names))

    def test_an_undefined_vocabulary_key_is_an_error(self, monkeypatch):
        monkeypatch.setitem(vocab.TERMS["rule"], "new_rule", vocab.Term("a new rule", "a new rule"))
        with pytest.raises(ValueError, match="no glossary definition for the rule 'new_rule'"):
            glossary.entries()


class TestPolicy:
    def test_the_svcca_entry_names_the_run_s_dimension_policy(self):
        ratio = glossary.glossary_markdown("ratio:10")
        variance = glossary.glossary_markdown(0.99)
        fixed = glossary.glossary_markdown(20)
        assert "at most one dimension per 10 distinct rows" in ratio and "99 %" not in ratio.split("SVCCA, k = 1")[0]
        # the words are the captions' (plots.dims_words): one phrasing of a policy in the whole book
        assert "99% of the variance" in variance and "per 10 distinct rows" not in variance
        assert "20 dimensions" in fixed
        assert "`svcca_dims: 0.99`" in variance and "`svcca_dims: ratio:10`" in ratio


class TestPage:
    def test_the_page_is_one_glossary_directive(self):
        text = glossary.glossary_markdown()
        assert text.count(":::{glossary}") == 1 and text.rstrip().endswith(":::")
        body = text.split(":::{glossary}\n", 1)[1]
        # term lines start at the margin, definitions are indented, entries are separated by a blank line
        for block in body.strip().rstrip(":").strip().split("\n\n"):
            lines = block.splitlines()
            assert lines[-1].startswith("  ") and all(not line.startswith(" ") for line in lines[:-1]), block

    def test_the_book_page_includes_the_generated_glossary_and_is_in_the_toc(self):
        import yaml

        page = (ROOT / "book" / "glossary.md").read_text()
        assert "(glossary)=" in page and "generated/glossary.md" in page
        toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
        assert glossary.GLOSSARY_DOC in [c["file"] for part in toc["parts"] for c in part["chapters"]]

    def test_the_build_writes_the_glossary_with_the_profile_s_policy(self):
        source = (ROOT / "saesim" / "report" / "build.py").read_text()
        assert 'generated / "glossary.md", glossary_markdown(prof.filters.svcca_dims)' in source

    def test_link(self):
        assert glossary.link("rule", "mutual") == "{term}`mutual nearest neighbours`"
        assert glossary.link("measure", "svcca_authors_k", "k = 1") == "{term}`k = 1 <SVCCA, k = 1 (authors')>`"


def _markdown_sources():
    import jupytext

    for path in sorted((ROOT / "notebooks").glob("*.py")):
        cells = jupytext.read(path, fmt="py:percent").cells
        yield path.stem, "\n".join(c.source for c in cells if c.cell_type == "markdown")
    for path in sorted((ROOT / "book").glob("*.md")):
        yield path.name, path.read_text()
    yield "glossary entries", "\n".join(e.text for e in glossary.entries())


class TestLinks:
    def test_every_term_role_names_a_glossary_term(self):
        terms = _terms()
        broken = [(where, role) for where, text in _markdown_sources() for role in TERM_ROLE.findall(text)
                  if _target(role).lower() not in terms]
        assert not broken, broken

    @pytest.mark.parametrize("name", LINKING_PAGES)
    def test_the_pages_that_use_the_terms_link_to_the_glossary(self, name):
        text = dict(_markdown_sources())[name]
        assert TERM_ROLE.search(text), f"{name}: no {{term}} link to the glossary"

    def test_method_full_space_and_findings_link_their_key_terms(self):
        sources = dict(_markdown_sources())
        targets = {name: {_target(r).lower() for r in TERM_ROLE.findall(sources[name])}
                   for name in ("method", "full_space", "findings")}
        assert {"svcca", "rsa", "holm", "tail p-value", "fvu", "family"} <= targets["method"]
        assert {"svcca", "rsa", "holm", "excess over null", "seed control"} <= targets["full_space"]
        assert {"effect over null", "holm", "re-randomised controls"} <= targets["findings"]
