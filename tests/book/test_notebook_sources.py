"""The notebooks stay thin: read from their jupytext sources, without executing them.

House rule 12 (a notebook holds parameters, one library call per figure, table
or block of numbers, and draws): no notebook cell computes statistics (scipy,
rank correlations), writes a table (``to_parquet`` and friends: the drivers
write their own), prints (a printed line is a path or a raw name on the page),
glues numbers line by line (:func:`saesim.report.book.glue_fields` glues a
page's numbers in one call) or builds a figure by hand (matplotlib imported,
``Figure(...)``, ``.subplots()``, ``ax.plot``/``ax.set_title`` and friends, or a
plotting function pointed at axes of its own with ``ax=``: each figure is one
documented, tested function of :mod:`saesim.report.plots`). Every page opens
with its title, and every name its prose quotes is glued.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import jupytext
import nbformat
import pytest

from saesim.report import build

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted((ROOT / "notebooks").glob("*.py"))

STATISTICS = {"spearmanr", "pearsonr", "kendalltau", "corrcoef", "ttest_ind", "ttest_rel", "mannwhitneyu",
              "wilcoxon", "linregress", "permutation_test", "bootstrap"}
"""Calls that compute statistics: they belong in saesim, tested."""

WRITES = {"to_parquet", "to_csv", "to_json", "to_pickle", "write_text", "write_bytes", "mkdir", "savefig",
          "dump"}
"""Calls that write files: the drivers (saesim.experiments) write their own tables."""

PLOTTING_MODULES = {"matplotlib", "seaborn", "pylab"}
"""Modules a notebook never imports: its figures come whole from saesim.report.plots."""

BUILDS_FIGURE = {"Figure", "figure", "subplots", "subplot", "subplot_mosaic", "add_subplot", "add_axes",
                 "add_gridspec", "twinx", "twiny"}
"""Calls that make a figure or axes by hand."""

DRAWS = {"plot", "bar", "barh", "scatter", "hist", "imshow", "pcolormesh", "errorbar", "fill_between",
         "axhline", "axvline", "annotate", "heatmap", "legend", "suptitle", "set_title", "set_xlabel",
         "set_ylabel", "set_xticks", "set_yticks", "set_xticklabels", "set_yticklabels", "set_xlim", "set_ylim",
         "set_xscale", "set_yscale", "tick_params", "tight_layout"}
"""Calls that draw on or dress axes: a figure's content and labels, which belong in saesim.report.plots."""

MAX_GLUE_RUN = 3
"""Most consecutive ``glue_value`` statements a cell may hold (more: one ``glue_fields`` call)."""

GLUE_NAME = re.compile(r"\{glue:text\}`([A-Za-z_]\w*)")


def _cells(path: Path):
    return jupytext.read(path, fmt="py:percent").cells


def _called(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def problems(source: str) -> list[str]:
    """What breaks the thin-notebook rules in one code cell (empty when nothing does)."""
    found = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            found += [f"imports {m}" for m in modules if m.split(".")[0] in {"scipy", "sklearn", "statsmodels"}]
            found += [f"imports {m} (figures come whole from saesim.report.plots)" for m in modules
                      if m.split(".")[0] in PLOTTING_MODULES]
        elif isinstance(node, ast.Call):
            name = _called(node)
            if name in STATISTICS:
                found.append(f"computes statistics ({name})")
            elif name in WRITES:
                found.append(f"writes a file ({name})")
            elif name in BUILDS_FIGURE:
                found.append(f"builds a figure by hand ({name}; one saesim.report.plots call per figure)")
            elif name in DRAWS:
                found.append(f"draws by hand ({name}; one saesim.report.plots call per figure)")
            elif any(k.arg == "ax" for k in node.keywords):
                found.append(f"assembles a figure from panels ({name}(ax=...); one saesim.report.plots call "
                             f"per figure)")
            elif name == "print":
                found.append("prints (show results with display/Markdown; never a path)")
            elif name == "open" and any(isinstance(a, ast.Constant) and isinstance(a.value, str) and
                                        set(a.value) & set("wax") for a in node.args[1:]):
                found.append("opens a file for writing")
        elif isinstance(node, (ast.For, ast.While, ast.comprehension)):
            body = node.body if hasattr(node, "body") else []
            if any(isinstance(n, ast.Call) and _called(n) == "glue_value" for b in body for n in ast.walk(b)):
                found.append("glues values in a loop (use glue_fields)")
    for body in [tree.body] + [n.body for n in ast.walk(tree) if isinstance(n, (ast.If, ast.For, ast.With))]:
        run = 0
        for stmt in body:
            glue = (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
                    and _called(stmt.value) == "glue_value")
            run = run + 1 if glue else 0
            if run == MAX_GLUE_RUN + 1:
                found.append(f"more than {MAX_GLUE_RUN} glue_value calls in a row (use glue_fields)")
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_no_cell_computes_writes_prints_or_glues_line_by_line(path):
    bad = [f"cell {i}: {problem}" for i, cell in enumerate(_cells(path)) if cell.cell_type == "code"
           for problem in problems(cell.source)]
    assert not bad, f"{path.name}:\n" + "\n".join(bad)


def test_the_rules_catch_what_the_notebooks_used_to_do():
    assert problems("from scipy.stats import spearmanr\nrho = spearmanr(x, y).statistic") == [
        "imports scipy.stats", "computes statistics (spearmanr)"]
    assert problems("frame.to_parquet(out / 'x.parquet', index=False)") == ["writes a file (to_parquet)"]
    assert problems('print(f"{len(frame)} rows from {grid.source}")')[0].startswith("prints")
    glue_lines = "\n".join(f'book.glue_value("fs_{i}", {i})' for i in range(4))
    assert problems(glue_lines) == ["more than 3 glue_value calls in a row (use glue_fields)"]
    assert problems("for k, v in glue.items():\n    book.glue_value(k, v)") == [
        "glues values in a loop (use glue_fields)"]
    assert problems('book.glue_value("a", 1)\nbook.glue_value("b", 2)\nbook.glue_fields(numbers, prefix="x_")') == []


FIGURES_BUILT_BY_HAND = {
    "filter stages (feature_counts)": """
counts = tables.counts_table(frame)
fig = Figure(figsize=(7, 3.8), layout="constrained")
ax = fig.subplots()
for (la, lb), row in counts.iterrows():
    ax.plot(range(5), [100.0 * row[s] / row["choosers"] for s in stages], marker="o", label=f"A{la}·B{lb}")
ax.set_xticks(range(5), stages, rotation=15)
ax.set_ylabel("% of choosing latents")
""",
    "hub histogram (feature_counts)": """
fig = Figure(figsize=(5.5, 3.8), layout="constrained")
plots.hub_histogram(hubs.counts, ax=fig.subplots(), label="A latents")
""",
    "2 x 2 heatmaps (many_to_one)": """
axes = fig.subplots(2, 2).ravel()
for ax, (frame, title) in zip(axes, panels):
    plots.layer_heatmap(frame, "svcca", ax=ax, title=title, style=plots.shared_style([m, o], "svcca"))
""",
    "rules bar chart (many_to_one)": """
for j, r in enumerate(rules):
    ax.bar(at, score, width=width, label=r, color=f"C{j}")
    ax.scatter(at, null, marker="_", s=120, color="black", zorder=3)
axes[0][0].legend(fontsize="small")
""",
    "pyplot": "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nplt.show()",
    "the Figure import": "from matplotlib.figure import Figure",
}
"""Cells the notebooks used to hold (issue #20), each drawing a figure by hand."""


@pytest.mark.parametrize("source", FIGURES_BUILT_BY_HAND.values(), ids=FIGURES_BUILT_BY_HAND)
def test_the_rules_catch_a_figure_built_by_hand(source):
    assert any("figure" in problem or "draws" in problem or "plots" in problem for problem in problems(source))


def test_one_plots_call_per_figure_passes():
    assert problems('fig = plots.filter_stages(frame)\nbook.show_figure(fig, "fig_filter_stages", caption)') == []
    assert problems('fig = plots.hub_histogram(hubs.counts, label="A").figure\nbook.show_figure(fig, "x", c)') == []
    assert problems("from saesim.report import book, plots") == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_the_first_thing_on_the_page_is_its_title(path, tmp_path):
    """After the build tidies an executed page, the first cell it shows is the title's markdown."""
    notebook = jupytext.read(path, fmt="py:percent")
    build._check_parameters_cell(notebook, path)
    first = next(i for i, c in enumerate(notebook.cells) if c.cell_type == "code")
    injected = nbformat.v4.new_code_cell("profile = 'tiny'")
    injected.metadata["tags"] = ["injected-parameters"]
    notebook.cells.insert(first + 1, injected)
    build._insert_parameters_table(notebook, path.stem)
    out = tmp_path / f"{path.stem}.ipynb"
    nbformat.write(notebook, out)
    build._strip_papermill_noise(out)
    shown = [c for c in nbformat.read(out, as_version=4).cells if "remove-cell" not in c.metadata.get("tags", [])]
    assert shown[0].cell_type == "markdown", f"{path.name}: the page opens with a code cell"
    lines = [line for line in shown[0].source.splitlines() if line.strip() and not re.fullmatch(r"\(.+\)=", line)]
    assert lines[0].startswith("# "), f"{path.name}: the page opens with {lines[0]!r}, not its title"


def _markdown_glue_names(path: Path) -> set[str]:
    return {name for cell in _cells(path) if cell.cell_type == "markdown" for name in GLUE_NAME.findall(cell.source)}


def _glued_statically(path: Path) -> tuple[set[str], set[str]]:
    """Names glued by ``glue_value("name", ...)`` and the prefixes of ``glue_fields(..., prefix=...)``."""
    names, prefixes = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and _called(node) == "glue_value" and node.args:
            if isinstance(node.args[0], ast.Constant):
                names.add(node.args[0].value)
        elif isinstance(node, ast.Call) and _called(node) == "glue_fields":
            prefix = next((k.value.value for k in node.keywords if k.arg == "prefix"), "")
            prefixes.add(prefix)
            names |= {prefix + k.arg for k in node.keywords if k.arg not in ("prefix", "display")}
    return names, prefixes


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_every_quoted_name_is_glued_under_a_known_prefix(path):
    names, prefixes = _glued_statically(path)
    quoted = _markdown_glue_names(path)
    loose = sorted(n for n in quoted if n not in names and not any(p and n.startswith(p) for p in prefixes))
    assert not loose, f"{path.name} quotes names it never glues: {loose}"


def test_the_pages_numbers_hold_every_name_their_prose_quotes():
    """The glue_fields calls of full_space, many_to_one and subspace cover their markdown (planted tables)."""
    from saesim.report import pages, prose
    from saesim.report.tables import concept_family, page_family, with_effects
    from tests.unit.test_pages import planted_grid, planted_subspace

    frame = page_family(planted_grid())
    fs = {**pages.full_space_numbers(frame), **pages.svcca_modes_numbers(frame, compat=False),
          **prose.control_lines({"full_space": frame})[1]}
    names, _ = _glued_statically(ROOT / "notebooks" / "full_space.py")
    quoted = _markdown_glue_names(ROOT / "notebooks" / "full_space.py")
    assert quoted - names - {f"fs_{k}" for k in fs} == set()

    mo = {**pages.many_to_one_numbers(frame, frame), **pages.rule_summary(frame, [(0, 0)])[1]}
    names, _ = _glued_statically(ROOT / "notebooks" / "many_to_one.py")
    assert _markdown_glue_names(ROOT / "notebooks" / "many_to_one.py") - names - {f"mo_{k}" for k in mo} == set()

    sub = with_effects(planted_subspace())
    ss = pages.subspace_numbers(sub, concept_family(sub, ["Time"]), ["Time"], layer_a=0, layer_b=0)
    names, _ = _glued_statically(ROOT / "notebooks" / "subspace.py")
    assert _markdown_glue_names(ROOT / "notebooks" / "subspace.py") - names - {f"ss_{k}" for k in ss} == set()


FIXED_POLICY = re.compile(r"99\s?%|\b0\.99\b|per (?:ten|10) distinct|\bratio:\d|k\s?=\s?n\s?/\s?\d|one (?:dimension|"
                          r"component) per (?:ten|10)", re.IGNORECASE)
"""Words that name one SVCCA dimension policy (the profile's ``filters.svcca_dims``): a page reads the
policy from the run's settings (:func:`saesim.report.plots.dims_words`, ``policy_label``), never types it."""


def _text_of(path: Path) -> str:
    """Every markdown cell and every string literal of the code cells of a notebook source."""
    parts = []
    for cell in _cells(path):
        if cell.cell_type == "markdown":
            parts.append(cell.source)
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            parts.append(cell.source)
            continue
        parts += [node.value for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str)]
    return "\n".join(parts)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_no_page_types_an_svcca_dimension_policy(path):
    """A caption or method sentence that names a fixed policy ("99 % of the variance", "one per ten distinct
    rows") would be wrong on a build under another ``svcca_dims``; the words come from the settings."""
    found = sorted({m.group(0) for m in FIXED_POLICY.finditer(_text_of(path))})
    assert not found, f"{path.name} names an SVCCA dimension policy in its text: {found}"


def test_the_policy_check_sees_a_typed_policy():
    assert FIXED_POLICY.search("The corrected SVCCA (keeping 99 % of the variance)")
    assert FIXED_POLICY.search("with at most one dimension per ten distinct rows, k grows")
    assert FIXED_POLICY.search('titles=["Paired SVCCA, k=n/10"]')
    assert not FIXED_POLICY.search("The authors' code keeps $k = 1$; the corrected SVCCA keeps {glue:text}`fs_dims`")
