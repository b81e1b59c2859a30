"""The package's import direction and privacy, checked on the source (no import needed).

Layers, lowest first: the shared base (``config``, ``errors``, ``io``, ``validation``, ``vocab``), ``compare``,
``extract``, ``experiments``, ``report``, then the ``cli``. A module may import its own layer and
those below it, never above; ``compare`` never imports matplotlib; and no module imports another
module's private (underscore) names. Run ``python -m pytest tests/unit/test_layout.py -q`` to see
the graph's violations, if any.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "saesim"
BASE = {"config", "_sae_spec", "errors", "io", "validation", "profiles", "vocab"}
RANK = {"base": 0, "compare": 1, "extract": 2, "experiments": 3, "report": 4, "cli": 5}


def _layer(module: str) -> str:
    """``saesim.compare.corr`` -> ``compare``; ``saesim.config`` -> ``base``."""
    parts = module.split(".")
    head = parts[1] if len(parts) > 1 else ""
    if head in BASE or head == "":
        return "base"
    if head in RANK:
        return head
    raise AssertionError(f"{module} is in no layer; add it to tests/unit/test_layout.py's RANK or BASE")


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(path: Path):
    """Yield (imported module, imported names) for every ``saesim`` import, lazy ones included."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("saesim"):
                    yield alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("saesim") \
                and node.level == 0:
            yield node.module, [a.name for a in node.names]


def _edges():
    modules = _modules()
    for name, path in modules.items():
        for target, names in _imports(path):
            # `from saesim.report import book` imports the module saesim.report.book
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
            if subs:
                for sub in subs:
                    yield name, sub, []
                names = [n for n in names if f"{target}.{n}" not in modules]
                if not names:
                    continue
            yield name, target, names


def test_every_module_is_in_a_layer():
    for name in _modules():
        if name != "saesim":
            _layer(name)


def test_imports_point_down_the_layers():
    bad = []
    for src, dst, _ in _edges():
        if src == "saesim":
            continue
        a, b = _layer(src), _layer(dst)
        if RANK[b] > RANK[a]:
            bad.append(f"{src} ({a}) imports {dst} ({b})")
    assert not bad, "imports against the data flow:\n" + "\n".join(bad)


def test_no_private_names_cross_modules():
    bad = [f"{src} imports {dst}.{n}" for src, dst, names in _edges() for n in names
           if n.startswith("_") and not n.startswith("__") and dst != src]
    bad += [f"{src} imports the private module {dst}" for src, dst, _ in _edges()
            if dst.rsplit(".", 1)[-1].startswith("_") and dst.rsplit(".", 1)[0] != src.rsplit(".", 1)[0]]
    assert not bad, "private names used outside their module:\n" + "\n".join(bad)


@pytest.mark.parametrize("module", sorted(m for m in _modules() if m.startswith("saesim.compare")))
def test_compare_never_draws(module):
    tree = ast.parse(_modules()[module].read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not any(n.split(".")[0] in {"matplotlib", "seaborn", "plotly"} for n in names), module
