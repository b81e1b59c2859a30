"""The book: notebook sources, papermill execution, the strict Jupyter Book build, a real browser.

The slow tests build the whole book on the ``tiny`` profile in a temporary copy
of the book's sources (so the checkout's ``book/generated`` and ``_build`` are
left alone), rerun a notebook with other parameters, and open every page in
headless Chromium.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from pathlib import Path

import nbformat
import re

import pytest

from saesim.report import assets, book, build

ROOT = Path(__file__).resolve().parents[2]
ALL_RULES = ("first_index", "many_to_one", "max_corr", "mutual", "hungarian")

EXPECTED_FIGURES = (
    "fig1_method_overview", "fig2_toy_pairing", "fig3_full_space_svcca_rsa", "figA1_svcca_null_and_p",
    "figA2_rsa_null_and_p", "figA3_correlation_before_after_filtering", "figA4_pairs_kept",
    "figA6_many_to_one_svcca_rsa", "figA7_many_to_one_null_and_p", "figA8_paired_vs_null_bars",
    "figA9_concepts_svcca", "figA9_concepts_svcca_null", "figA9_concepts_svcca_p", "figA9_concepts_rsa",
    "figA9_concepts_rsa_p", "figA12_concepts_svcca_subset_p", "figA9_concepts_svcca_excess",
    "figA9_concepts_rsa_excess", "figA6_many_to_one_effect", "fig_hub_histogram", "fig_activation_frequency",
    "fig_pvalue_histogram", "fig_filter_stages", "fig_many_to_one_vs_one_to_one", "fig_rules_directions_svcca",
    "fig_svcca_corrected_vs_authors_k", "fig3_full_space_effect", "fig_controls_rsa_excess",
    "fig_steering_method", "fig_steering_depth", "fig_steering_curves",
    "fig_controls_svcca_excess", "fig_sae_frontier", "fig_sae_recipe_axes",
)


def glued(path) -> dict:
    """The values a notebook glued (``myst_nb.glue``), by name, as their text/plain."""
    out = {}
    for cell in nbformat.read(path, as_version=4).cells:
        for output in cell.get("outputs", []):
            scrapbook = output.get("metadata", {}).get("scrapbook", {})
            if scrapbook.get("name"):
                out[scrapbook["name"]] = output["data"].get(scrapbook.get("mime_prefix", "") + "text/plain")
    return out


class TestSources:
    @pytest.mark.parametrize("name", build.NOTEBOOKS)
    def test_one_parameters_cell_first_with_plain_literals(self, name):
        import ast

        import jupytext

        notebook = jupytext.read(ROOT / "notebooks" / f"{name}.py", fmt="py:percent")
        build._check_parameters_cell(notebook, Path(name))
        first = next(c for c in notebook.cells if c.cell_type == "code")
        for node in ast.parse(first.source).body:
            assert isinstance(node, ast.Assign), f"{name}: parameters cell holds only assignments"
            ast.literal_eval(node.value)  # plain literals only

    @pytest.mark.parametrize("name", build.NOTEBOOKS)
    def test_page_parameters_are_declared_by_the_notebook(self, name):
        import ast

        import jupytext

        notebook = jupytext.read(ROOT / "notebooks" / f"{name}.py", fmt="py:percent")
        first = next(c for c in notebook.cells if c.cell_type == "code")
        declared = {t.id for node in ast.parse(first.source).body for t in node.targets}
        assert set(build._page_parameters(name, ROOT)) <= declared

    def test_every_name_the_notebooks_call_is_on_the_page_api(self):
        import ast

        used = {"parameters_table"}  # the cell the build inserts into every page imports it from book
        for path in sorted((ROOT / "notebooks").glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "book":
                    used.add(node.attr)
                elif isinstance(node, ast.ImportFrom) and node.module == "saesim.report.book":
                    used.update(alias.name for alias in node.names)
        assert {"show_figure", "glue_value", "grid_frame", "scope_note"} <= used
        assert [name for name in sorted(used) if not hasattr(book, name)] == []
        notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("seed = 0")])
        build._insert_parameters_table(notebook, "page")
        assert notebook.cells[1].source.startswith("from saesim.report.book import parameters_table ")

    def test_authors_numbers_come_from_saesim_reported(self):
        text = (ROOT / "notebooks" / "reproducing.py").read_text()
        assert "saesim.report.reported" in text or "reported.reported(" in text
        assert "authors_numbers" not in text and "authors_file" not in text
        assert not (ROOT / "book" / "authors_numbers.yaml").exists()

    @pytest.mark.parametrize("name", build.NOTEBOOKS)
    def test_notebooks_never_select_a_backend(self, name):
        text = (ROOT / "notebooks" / f"{name}.py").read_text()
        assert "matplotlib.use(" not in text

    def test_toc_lists_every_notebook_and_page(self):
        import yaml

        toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
        files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
        assert toc["format"] == "jb-book" and all("caption" in part for part in toc["parts"])
        for name in build.NOTEBOOKS:
            assert f"book/generated/{name}" in files
        for page in [toc["root"]] + [f for f in files if not f.startswith("book/generated/")]:
            assert (ROOT / f"{page}.md").is_file(), page

    def test_config_is_strict_offline_and_does_not_execute(self):
        import yaml

        config = yaml.safe_load((ROOT / "_config.yml").read_text())
        assert config["only_build_toc_files"] is True
        assert config["execute"]["execute_notebooks"] == "off"
        sphinx = config["sphinx"]["config"]
        assert not sphinx["mathjax_path"].startswith("http")


class TestParameters:
    def test_values_are_read_as_yaml(self):
        assert build.parse_parameters(["rule=hungarian", "layers_a=[0, 2]", "n_perm=50", "compat=true"]) == {
            "rule": "hungarian", "layers_a": [0, 2], "n_perm": 50, "compat": True}

    def test_missing_equals_sign_is_explained(self):
        with pytest.raises(ValueError, match="KEY=VALUE"):
            build.parse_parameters(["rule"])

    def test_bad_name_is_explained(self):
        with pytest.raises(ValueError, match="not a Python identifier"):
            build.parse_parameters(["1rule=x"])


class TestKernelThreads:
    def test_side_by_side_kernels_split_the_cores(self, monkeypatch):
        monkeypatch.setattr(build.os, "cpu_count", lambda: 2)
        assert build.kernel_threads(2) == 1 and build.kernel_threads(1) == 2 and build.kernel_threads(3) == 1
        monkeypatch.setattr(build.os, "cpu_count", lambda: 16)
        assert build.kernel_threads(2) == 8

    def test_kernel_environment_caps_threads_unless_set(self, monkeypatch):
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            monkeypatch.delenv(var, raising=False)
        env = build._kernel_env(1)
        assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1"
        assert "OMP_NUM_THREADS" not in build._kernel_env(None)
        monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's setting wins
        assert build._kernel_env(1)["OMP_NUM_THREADS"] == "3"


def _fake_full_space(profile, *, n_perm, seed=0, rules=("first_index", "many_to_one")):
    """A full_space.parquet-like frame: every layer pair of ``profile``, each rule, b_to_a."""
    import pandas as pd

    rows = [{"profile": profile.name, "layer_a": la, "layer_b": lb, "rule": rule, "direction": "b_to_a",
             "compat": False, "n_perm": n_perm, "seed": seed, "svcca": 0.1 * la + 0.01 * lb}
            for la in profile.layers("a") for lb in profile.layers("b") for rule in rules]
    return pd.DataFrame(rows)


class TestGridFramePairs:
    def test_reads_exactly_the_pairs_from_the_parquet(self, tiny_profile, tmp_path):
        fake = _fake_full_space(tiny_profile, n_perm=tiny_profile.nulls.n_perm)
        fake.to_parquet(tmp_path / "full_space.parquet")
        table = book.grid_frame(tiny_profile, "full_space", rules=["first_index"], pairs=[[1, 0], (0, 0)],
                                results_dir=tmp_path)
        assert table.source == str(tmp_path / "full_space.parquet")
        got = sorted(zip(table.frame["layer_a"], table.frame["layer_b"]))
        assert got == [(0, 0), (1, 0)] and set(table.frame["rule"]) == {"first_index"}
        assert table.pairs == ((1, 0), (0, 0))
        meta = table.meta()
        assert meta["layers_a"] is None and meta["layers_b"] is None  # not a product: the caption names pairs

    def test_missing_pairs_are_computed_and_only_those(self, tiny_profile, tmp_path, monkeypatch):
        import pandas as pd

        from saesim.experiments import grid

        fake = _fake_full_space(tiny_profile, n_perm=tiny_profile.nulls.n_perm)
        fake.to_parquet(tmp_path / "full_space.parquet")
        calls = []

        def run_grid(profile, *, plan=None, settings=None, out=None, **kw):
            pairs = plan.pairs
            calls.append(pairs)
            frame = pd.DataFrame([{"layer_a": la, "layer_b": lb, "rule": r, "direction": d, "compat": False,
                                   "n_perm": settings.n_perm, "seed": settings.seed}
                                  for la, lb in pairs for r in settings.rules for d in settings.directions])
            return grid.GridResult(frame=frame, path=out / "full_space.parquet", computed=len(pairs),
                                          reused=0, failed={})

        monkeypatch.setattr(grid, "run_grid", run_grid)
        table = book.grid_frame(tiny_profile, "full_space", rules=["first_index", "hungarian"],
                                directions=["b_to_a", "a_to_b"], pairs=[(0, 1), (1, 1)], results_dir=tmp_path,
                                n_perm=7)
        assert calls == [((0, 1), (1, 1))]
        assert table.source.startswith("computed: ")
        assert sorted(set(zip(table.frame["layer_a"], table.frame["layer_b"]))) == [(0, 1), (1, 1)]
        assert len(table.frame) == 2 * 2 * 2

    def test_bad_pairs_are_explained(self, tiny_profile, tmp_path):
        with pytest.raises(ValueError, match="does not have"):
            book.grid_frame(tiny_profile, pairs=[(0, 9)], results_dir=tmp_path)
        with pytest.raises(ValueError, match="not both"):
            book.grid_frame(tiny_profile, pairs=[(0, 0)], layers_a=[0], results_dir=tmp_path)
        with pytest.raises(ValueError, match="full_space"):
            book.grid_frame(tiny_profile, "subspace", pairs=[(0, 0)], results_dir=tmp_path)
        with pytest.raises(ValueError, match="empty"):
            book.grid_frame(tiny_profile, pairs=[], results_dir=tmp_path)
        with pytest.raises(ValueError, match="pairs of integers"):
            book.grid_frame(tiny_profile, pairs=[0, 1], results_dir=tmp_path)

    def test_computes_only_the_pairs_on_the_tiny_profile(self, tiny_profile, tiny_extraction, session_cache,
                                                          tmp_path):
        table = book.grid_frame(tiny_profile, "full_space", rules=["first_index"], pairs=[(1, 0)],
                                cache_dir=session_cache, results_dir=tmp_path, n_perm=3)
        assert table.source.startswith("computed: ")
        assert list(zip(table.frame["layer_a"], table.frame["layer_b"])) == [(1, 0)]
        cells = list((tmp_path / "custom").rglob("cells/full_space/*.json"))
        assert len(cells) == 1


class TestMathjax:
    def test_integrity_check_accepts_the_right_digest_and_rejects_another(self, tmp_path):
        blob = tmp_path / "x.tgz"
        blob.write_bytes(b"mathjax")
        good = "sha512-" + base64.b64encode(hashlib.sha512(b"mathjax").digest()).decode()
        assert assets._integrity_ok(blob, good)
        assert not assets._integrity_ok(blob, assets.MATHJAX_INTEGRITY)

    def test_unpacks_a_local_tarball_once(self, tmp_path, monkeypatch):
        import io
        import tarfile

        tgz = tmp_path / "mathjax.tgz"
        with tarfile.open(tgz, "w:gz") as archive:
            for name, data in (("package/es5/tex-chtml.js", b"// mj"), ("package/LICENSE", b"Apache"),
                               ("package/es5/output/chtml/fonts/woff-v2/a.woff", b"font"),
                               ("package/ts/ignored.ts", b"")):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        integrity = "sha512-" + base64.b64encode(hashlib.sha512(tgz.read_bytes()).digest()).decode()
        monkeypatch.setenv("SAESIM_MATHJAX_TGZ", str(tgz))
        entry = assets.ensure_mathjax(tmp_path / "static" / "mathjax", integrity=integrity)
        assert entry.read_bytes() == b"// mj"
        assert (entry.parent / "output/chtml/fonts/woff-v2/a.woff").is_file()
        assert not (entry.parent / "ts").exists()
        tgz.unlink()  # a second call finds the unpacked copy and needs nothing
        assert assets.ensure_mathjax(tmp_path / "static" / "mathjax", integrity=integrity) == entry


# --------------------------------------------------------------------------- slow: the whole book


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory):
    """The tiny profile extracted and run (every rule, both directions), as `saesim run` would."""
    from saesim.config import load_profile
    from saesim.experiments.grid import GridPlan, run_profile, settings_from_profile

    cache = tmp_path_factory.mktemp("book_cache")
    profile = load_profile("tiny")
    settings = settings_from_profile(profile, rules=ALL_RULES, directions=("b_to_a", "a_to_b"))
    results = run_profile(profile, plan=GridPlan(executor="serial", progress=False), settings=settings, cache=cache)
    assert not any(r.failed for r in results.values())
    return cache


@pytest.fixture(scope="module")
def book_root(tmp_path_factory):
    """A copy of the book's sources, so the build never touches the checkout's outputs."""
    root = tmp_path_factory.mktemp("book_root")
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, root / name)
    shutil.copytree(ROOT / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "book", root / "book", ignore=shutil.ignore_patterns("generated"))
    return root


@pytest.fixture(scope="module")
def built(book_root, tiny_results):
    result = build.build_book("tiny", cache=tiny_results, root=book_root, build_dir=book_root / "_build",
                             progress=False)
    return result


@pytest.mark.slow
class TestTinyBook:
    def test_builds_with_warnings_as_errors(self, built):
        assert built.ok and built.index.is_file()
        assert [run.name for run in built.notebooks] == list(build.NOTEBOOKS)

    def test_every_figure_is_exported_in_three_formats(self, built):
        figures = built.root / "book" / "generated" / "figures"
        for name in EXPECTED_FIGURES:
            for ext in ("pdf", "svg", "png"):
                assert (figures / f"{name}.{ext}").stat().st_size > 0, f"{name}.{ext}"

    def test_pages_hold_figures_captions_and_glued_numbers(self, built):
        html = (built.html_dir / "book" / "generated" / "full_space.html").read_text()
        assert 'id="fig3-full-space-svcca-rsa"' in html
        assert "Profile tiny" in html and "fig3_full_space_svcca_rsa.pdf" in html
        values = glued(built.root / "book" / "generated" / "full_space.ipynb")
        assert f"{float(values['fs_best_svcca']):.3f}" in html

    def test_no_page_references_a_cdn(self, built):
        for page in built.html_dir.rglob("*.html"):
            text = page.read_text()
            assert "cdn.jsdelivr" not in text and "unpkg.com" not in text and "cdnjs" not in text, page
        assert (built.html_dir / "_static" / "mathjax" / "tex-chtml.js").is_file()

    def test_no_reader_facing_defects(self, built):
        """Raw column names, printed paths, -0.000, unformatted floats and nan in the reader's text
        (saesim.report.lint): none on any page of the tiny book."""
        from saesim.report.lint import lint_book

        defects = lint_book(built.html_dir)
        assert not defects, "\n".join(map(str, defects[:30]))

    def test_intro_leads_with_the_summary_of_this_build(self, built):
        intro = (built.html_dir / "book" / "intro.html").read_text()
        assert "In short" in intro and "What does not hold up." in intro and "layer pairs lie above their null" in intro

    def test_rerun_with_other_parameters_changes_figures_and_glued_numbers(self, built, tiny_results, tmp_path):
        generated = built.root / "book" / "generated"
        params = {"profile": "tiny", "cache_dir": str(tiny_results), "results_dir": str(tiny_results / "results")}
        before = glued(generated / "full_space.ipynb")
        png_before = (generated / "figures" / "fig3_full_space_svcca_rsa.png").read_bytes()
        out = tmp_path / "rerun" / "full_space.ipynb"
        run = build.execute_notebook(ROOT / "notebooks" / "full_space.py", out,
                                    {**params, "rule": "hungarian", "layers_a": [1]})
        assert run.ok, run.error
        after = glued(out)
        # the rule is glued by its label (saesim.vocab), not its key
        assert before["fs_rule"] == "'1-1 (first occurrence)'" and after["fs_rule"] == "'1-1 (Hungarian)'"
        assert int(before["fs_n_cells"]) == 4 and int(after["fs_n_cells"]) == 2
        assert after["fs_best_svcca_a"] == "1"
        png_after = (out.parent / "figures" / "fig3_full_space_svcca_rsa.png").read_bytes()
        assert png_after != png_before
        assert out.read_text().count('"injected-parameters"') == 1

    def test_rule_section_runs_on_the_chosen_pairs_only(self, built, tiny_results, tmp_path):
        generated = built.root / "book" / "generated"
        before = glued(generated / "many_to_one.ipynb")
        assert before["mo_rule_pairs"] == "'A0–B0, A1–B1'"  # first, middle and last diagonal pair by default
        assert int(before["mo_rule_n_perm"]) == 100
        out = tmp_path / "rerun" / "many_to_one.ipynb"
        run = build.execute_notebook(ROOT / "notebooks" / "many_to_one.py", out,
                                    {"profile": "tiny", "cache_dir": str(tiny_results),
                                     "results_dir": str(tiny_results / "results"), "rule_pairs": [[1, 0]],
                                     "rule_n_perm": 5})
        assert run.ok, run.error
        after = glued(out)
        assert after["mo_rule_pairs"] == "'A1–B0'" and int(after["mo_rule_n_perm"]) == 5

    def test_reproducing_map_links_to_figure_anchors(self, built):
        import re

        html = (built.html_dir / "book" / "generated" / "reproducing.html").read_text()
        anchors = re.findall(r'href="(\w+)\.html#(fig[\w-]+)"', html)
        assert ("full_space", "fig3-full-space-svcca-rsa") in anchors and ("subspace", "figa9-concepts-svcca") in anchors
        for page, anchor in anchors:  # every link lands on a figure of that page
            assert f'id="{anchor}"' in (built.html_dir / "book" / "generated" / f"{page}.html").read_text()

    def test_authors_k_svcca_sits_beside_the_corrected_one(self, built):
        html = (built.html_dir / "book" / "generated" / "full_space.html").read_text()
        assert 'id="fig-svcca-corrected-vs-authors-k"' in html
        values = glued(built.root / "book" / "generated" / "full_space.ipynb")
        assert int(values["fs_authors_k_max"]) == 1
        assert int(values["fs_k_x_median"]) > 1

    def test_the_glossary_is_built_and_the_pages_link_to_it(self, built):
        from bs4 import BeautifulSoup

        from saesim import vocab
        from saesim.report import glossary

        page = BeautifulSoup((built.html_dir / "book" / "glossary.html").read_text(), "html.parser")
        def term_text(dt):  # the heading without its permalink, typographic quotes undone
            return re.sub(r"\s*[#¶]$", "", dt.get_text(" ", strip=True)).replace("\u2019", "'")

        defined = {dt.get("id"): term_text(dt) for dt in page.select("dl.glossary dt")}
        names = {text.lower() for text in defined.values()}
        for kind in glossary.VOCAB_KINDS:  # every rule, measure, direction, comparison and null label
            assert not [t.label for t in vocab.TERMS[kind].values() if t.label.lower() not in names], kind
        for term in ("fvu", "pwcca", "holm", "bh", "tail p-value", "excess over null", "seed control",
                     "re-randomised controls"):
            assert term in names, term
        svcca = next(dt for dt in page.select("dl.glossary dt") if term_text(dt) == "SVCCA")
        assert "at most one dimension per 10 distinct rows" in svcca.find_next_sibling("dd").get_text()  # this build's
        for name in ("method", "full_space", "findings", "many_to_one", "subspace", "robustness"):
            html = BeautifulSoup((built.html_dir / "book" / "generated" / f"{name}.html").read_text(), "html.parser")
            links = [a["href"] for a in html.select("a.reference.internal") if "glossary.html#term-" in a["href"]]
            assert links, f"{name}: no link to a glossary term"
            assert all(link.split("#", 1)[1] in defined for link in links), (name, links)

    def test_a_downloaded_notebook_reruns_as_downloaded(self, built, tiny_results, tmp_path):
        """The page's download button serves the executed notebook; papermill reruns it as it is (no
        parameters injected) in a folder where `saesim run --profile tiny` left its store."""
        import papermill

        html = (built.html_dir / "book" / "generated" / "full_space.html").read_text()
        assert "_sources/book/generated/full_space.ipynb" in html  # what the download button serves
        downloaded = built.html_dir / "_sources" / "book" / "generated" / "full_space.ipynb"
        cells = nbformat.read(downloaded, as_version=4).cells
        injected = next(c for c in cells if "injected-parameters" in c.metadata.get("tags", []))
        assert build._assignments(injected.source) == {"profile": '"tiny"', "cache_dir": "None", "results_dir": "None"}
        assert "<" not in injected.source and "saesim run --profile tiny" in injected.source
        user = tmp_path / "user"
        user.mkdir()
        shutil.copy(downloaded, user / "full_space.ipynb")
        (user / ".saesim_cache").symlink_to(tiny_results)  # the tiny profile's cache_dir, as `saesim run` fills it
        papermill.execute_notebook(str(user / "full_space.ipynb"), str(user / "rerun.ipynb"), cwd=str(user),
                                   kernel_name="python3", progress_bar=False)
        before, after = glued(downloaded), glued(user / "rerun.ipynb")
        assert int(before["fs_n_cells"]) == 4 and after == before  # the same page, from the user's store
        assert (user / "figures" / "fig3_full_space_svcca_rsa.png").is_file()

    def test_captions_and_method_sentences_follow_the_svcca_dimension_policy(self, built, tiny_results, tmp_path):
        """The method and full-space pages under another `filters.svcca_dims` name that policy, and only it."""
        import yaml

        profile = yaml.safe_load((ROOT / "saesim" / "profiles" / "tiny.yaml").read_text())
        profile["filters"]["svcca_dims"] = 0.99
        path = tmp_path / "tiny_variance.yaml"
        path.write_text(yaml.safe_dump(profile))
        params = {"profile": str(path), "cache_dir": str(tiny_results), "results_dir": str(tiny_results / "results")}
        ratio = ("per 10 distinct rows", "k=n/10", "ten distinct rows")
        variance = ("99% of the variance", "99% var")
        for name in ("method", "full_space"):
            out = tmp_path / "variance" / f"{name}.ipynb"
            run = build.execute_notebook(ROOT / "notebooks" / f"{name}.py", out, params)
            assert run.ok, run.error
            default, other = _page_text(built.root / "book" / "generated" / f"{name}.ipynb"), _page_text(out)
            assert ratio[0] in default and variance[0] in other
            assert not [w for w in ratio if w in other], f"{name} names the default policy under 0.99"
            if name == "full_space":
                assert not [w for w in variance if w in default], "full_space names 99 % under ratio:10"
                assert "(k=n/10)" in default and "(99% var)" in other  # the SVCCA modes table's caption
                for text, words in ((default, ratio[0]), (other, variance[0])):
                    caption = next(part for part in text.split(":::{figure} ")[1:]
                                   if part.startswith("figures/fig_svcca_corrected_vs_authors_k.png"))
                    assert f"Paired SVCCA keeping {'at most one dimension' if words == ratio[0] else '99%'}" in caption
                    assert words in caption
        assert glued(tmp_path / "variance" / "method.ipynb")["svcca_rule"] == "'SVCCA keeping 99% of the variance'"

    @pytest.mark.parametrize("jobs", [1, 2])
    def test_failing_notebook_stops_the_build_and_leaves_a_report(self, built, tiny_results, jobs):
        with pytest.raises(build.BookBuildError, match="notebook `full_space` failed") as info:
            build.build_book("tiny", cache=tiny_results, root=built.root, build_dir=built.root / "_build",
                            notebooks=["full_space", "method"], parameters={"rule": "no_such_rule"},
                            progress=False, jobs=jobs)
        runs = info.value.result.notebooks
        if jobs == 1:  # one at a time: nothing runs after the failure
            assert [r.name for r in runs] == ["full_space"] and not runs[0].ok
        else:  # side by side: the other notebook finishes, the build still fails on full_space
            assert [r.name for r in runs] == ["full_space", "method"] and not runs[0].ok and runs[1].ok
        report = built.root / "book" / "generated" / "_reports"
        assert (report / "full_space.ipynb").is_file() and "no_such_rule" in (report / "full_space.log").read_text()
        # the last good page is kept
        assert glued(built.root / "book" / "generated" / "full_space.ipynb")["fs_rule"] == "'1-1 (first occurrence)'"


@pytest.fixture(scope="module")
def site_reports(built):
    """Every page of the tiny book opened in headless Chromium (:func:`tests.book.browser.check_site`)."""
    from tests.book import browser

    if not browser.chromium_available():
        pytest.skip("chromium is not installed; run .ci/install_chromium.sh")
    # served under /saesim/ (a project page's sub-path); no page may show where it was built
    return browser.check_site(built.html_dir, machine_paths=(str(ROOT), str(built.root), str(built.html_dir),
                                                             str(built.root.parent)))


@pytest.mark.slow
def test_every_page_loads_in_a_real_browser(site_reports):
    reports = site_reports
    assert len(reports) >= len(build.NOTEBOOKS) + 2
    problems = [p for r in reports for p in r.problems]
    assert not problems, "\n".join(problems)
    figures = sum(len(r.images) for r in reports)
    assert figures >= len(EXPECTED_FIGURES)
    search = [r for r in reports if r.path.startswith("search.html?q=")]
    assert search and search[0].search_results > 0, "the site's search works under the sub-path"
    method = next(r for r in reports if r.path.endswith("method.html"))
    assert method.math and method.typeset, "MathJax typeset the method page's math"


@pytest.mark.slow
def test_no_table_is_wider_than_the_column(site_reports):
    """Every table shown on every page fits the content column in a 1280 px window, without scrolling sideways."""
    from tests.book import browser

    tables = [t for r in site_reports for t in r.tables]
    explorer = next(r for r in site_reports if r.path.endswith("explorer.html"))
    assert any(t["name"].startswith("Pairs of A") for t in explorer.tables), explorer.tables
    assert len(tables) >= len(build.NOTEBOOKS)
    wide = {(r.path.rsplit("/", 1)[-1], re.sub(r"^Table \d+\.\s*", "", t["name"])[:KNOWN_WIDE_PREFIX]): t["scroll"]
            for r in site_reports for t in r.tables if t["scroll"] > t["column"] + 1}
    assert not [k for k in wide if k[0] == "explorer.html"], wide
    # A ratchet: the tables still wider than the column (they scroll in their own box) are listed
    # with the width measured when they were listed; a new wide table, a listed one grown by more
    # than 10 %, or a listed one that now fits (drop it from the list) fails.
    new = {k: v for k, v in wide.items() if k not in KNOWN_WIDE}
    grown = {k: (v, KNOWN_WIDE[k]) for k, v in wide.items() if k in KNOWN_WIDE and v > 1.1 * KNOWN_WIDE[k]}
    fixed = sorted(set(KNOWN_WIDE) - set(wide))
    assert not new and not grown and not fixed, (
        f"{len(wide)} of {len(tables)} tables are wider than the content column at {browser.TABLE_WINDOW_PX} px; "
        f"new: {new}; grown (now, listed): {grown}; now fitting (drop from KNOWN_WIDE): {fixed}")


KNOWN_WIDE_PREFIX = 31
"""Characters of a table's caption (after its "Table N." label) that name it in :data:`KNOWN_WIDE`."""

KNOWN_WIDE: dict[tuple[str, str], int] = {}
"""(page, caption prefix) -> scroll width in px of the tiny book's tables still wider than the column. The
twelve listed until #23 (690-904 px) show their informative columns at the page's width and every column
behind a toggle (saesim.report.tables.split_table)."""


@pytest.mark.slow
def test_explorer_searches_hovers_and_stays_offline(built):
    from tests.book import browser

    if not browser.chromium_available():
        pytest.skip("chromium is not installed; run .ci/install_chromium.sh")
    page = built.html_dir / "book" / "generated" / "explorer.html"
    size = page.stat().st_size
    assert size < 10 * 2**20, f"explorer page is {size / 2**20:.1f} MB"
    report = browser.check_explorer(built.html_dir)
    print(f"explorer: {size / 2**20:.2f} MB on disk, loaded in {report.load_seconds:.2f} s; "
          f"search {report.token!r}: {report.info_before!r} -> {report.info_after!r}; hover {report.hover_text!r}")
    assert not report.page.external_requests and not report.page.problems, report.page.problems
    assert report.token and "filtered from" in report.info_after and report.info_after != report.info_before
    assert report.hover_text.strip()
    html = page.read_text()
    assert "_static/plotly.min.js" in html and (built.html_dir / "_static" / "plotly.min.js").is_file()
    values = glued(built.root / "book" / "generated" / "explorer.ipynb")
    assert int(values["ex_n_rows"]) > 0 and float(values["ex_page_mb"]) < 10


def _page_text(path) -> str:
    """What a reader of an executed notebook sees as text: its markdown cells and every text output."""
    parts = []
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "markdown":
            parts.append(cell.source)
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts += [v for k, v in output.get("data", {}).items() if k.startswith(("text/", "application/papermill"))
                      and isinstance(v, str)]
    return "\n".join(parts)


def test_glue_values_are_plain_python():
    import numpy as np

    from saesim.io import to_jsonable  # what glue_value and the notebook parameters go through

    assert to_jsonable(np.float64(0.5)) == 0.5 and type(to_jsonable(np.float64(0.5))) is float
    assert to_jsonable(np.int64(3)) == 3 and type(to_jsonable(np.int64(3))) is int
    assert json.dumps(to_jsonable((np.int64(1), 2))) == "[1, 2]"


class TestPageHelpers:
    def test_glue_only_cells_are_recognised(self):
        assert build._glue_only('book.glue_value("a", 1)\nbook.glue_value("b", 2)')
        assert build._glue_only("import numpy as np")
        assert not build._glue_only('x = f()\nbook.glue_value("a", x)')
        assert not build._glue_only("fig = plots.layer_heatmap(frame, 'svcca')")

    def test_outputs_lose_this_machines_paths_and_cells_get_layout_tags(self, tmp_path):
        nb = nbformat.v4.new_notebook()
        params = nbformat.v4.new_code_cell("profile = 'offline'\ncache_dir = None\nresults_dir = None")
        params.metadata["tags"] = ["parameters"]
        injected = nbformat.v4.new_code_cell("# Parameters\nprofile = 'tiny'\ncache_dir = '/somewhere/cache'\n"
                                             "results_dir = '/somewhere/cache/results'\n")
        injected.metadata["tags"] = ["injected-parameters"]
        glue = nbformat.v4.new_code_cell('book.glue_value("x", 1)')
        science = nbformat.v4.new_code_cell("print(cache)")
        science.outputs = [nbformat.v4.new_output("stream", name="stdout", text="read /somewhere/cache/results\n")]
        nb.cells = [params, injected, glue, science]
        path = tmp_path / "page.ipynb"
        nbformat.write(nb, path)
        build._strip_papermill_noise(path, paths={"/somewhere/cache": "<cache_dir>"})
        cells = nbformat.read(path, as_version=4).cells
        # the parameters and injected cells come before the title: removed (the parameters table shows the values)
        assert "remove-cell" in cells[0].metadata["tags"] and "remove-cell" in cells[1].metadata["tags"]
        assert "hide-cell" not in cells[0].metadata["tags"]
        assert "remove-input" in cells[2].metadata["tags"] and "hide-input" in cells[3].metadata["tags"]
        assert cells[3].outputs[0]["text"] == "read <cache_dir>/results\n"
        # the downloadable notebook reruns as downloaded: the paths are the notebook's own defaults (the
        # profile's store), never this machine's folders nor a placeholder
        assert build._assignments(cells[1].source) == {"profile": "'tiny'", "cache_dir": "None", "results_dir": "None"}
        assert "<cache_dir>" not in cells[1].source and "saesim run --profile tiny" in cells[1].source

    def test_the_parameters_table_needs_no_source_file_when_given_the_cell(self):
        cell = "profile = 'offline'\nn_boot = 50  # resamples\ncache_dir = None\n"
        html = book.parameters_table({"profile": "tiny", "n_boot": 7, "cache_dir": None}, name="robustness",
                                     cell=cell, source="/no/such/notebook.py").data
        assert "<code>n_boot</code>" in html and "resamples" in html and "the profile&#x27;s default" in html
        notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)])
        notebook.cells[0].metadata["tags"] = ["parameters"]
        build._insert_parameters_table(notebook, "robustness")
        assert f"cell={cell!r}" in notebook.cells[1].source  # the build hands the cell over

    def test_parameters_table_names_values_defaults_and_the_rerun_option(self):
        html = book.parameters_table({"profile": "tiny", "cache_dir": "/abs/cache", "n_boot": 7},
                                     name="robustness").data
        assert "<code>n_boot</code>" in html and "7" in html and "-p NAME=VALUE" in html
        assert "/abs/cache" not in html and "set by saesim book" in html
        assert "--notebooks robustness" in html

    def test_build_info_names_version_commit_and_date(self, monkeypatch):
        monkeypatch.setenv("SAESIM_COMMIT", "0123456789abcdef0123")
        monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
        book.build_info.cache_clear()
        try:
            info = book.build_info()
            assert info.line() == f"saesim {info.version}, commit 0123456789ab, built 2023-11-14"
            bib = info.bibtex()
            assert f"version = {{{info.version}}}" in bib and "0123456789abcdef0123" in bib and "url" in bib
        finally:
            book.build_info.cache_clear()

    def test_show_figure_is_displayed_once_wide_and_linked(self, tmp_path, monkeypatch):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        shown = []
        monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.plot([0, 1])
        book.show_figure(fig, "tiny_fig", "A caption.", out_dir=tmp_path)
        assert not plt.fignum_exists(fig.number)  # closed: the inline backend will not show it again
        from saesim.report.plots import _png_width

        assert _png_width(tmp_path / "tiny_fig.png") >= book.MIN_FIGURE_PX
        text = shown[0].data
        assert ":width: 100%" in text and "saesim" in text and "commit" in text
        # the stable name is the citable handle under the caption (saesim.report.sphinxext makes it the anchor)
        assert ":name: tiny-fig\n" in text and "\n\nCite as: {saesim-cite}`tiny_fig`\n:::" in text
        bad = plt.figure()
        with pytest.raises(ValueError, match="start with a letter"):
            book.show_figure(bad, "tiny fig", "A caption.", out_dir=tmp_path)
        plt.close(bad)
