"""The book build: papermill executes the notebooks, then Jupyter Book 1.x renders them into the site.

:func:`build_book` is what ``saesim book`` runs:

1. every notebook source in ``notebooks/`` (jupytext percent format, one
   ``parameters`` cell first) is converted to ``.ipynb`` in a temporary folder;
2. each is executed once by papermill with the parameters injected (the
   profile, the cache and results folders, and any overrides) into
   ``book/generated/<name>.ipynb``, the kernel being this Python (ipykernel's
   ``python3`` kernelspec; jupyter_client starts it with ``sys.executable``);
   the first failing notebook stops the build and leaves its executed copy
   and its traceback in ``book/generated/_reports/``;
3. the introduction's summary and the glossary (:mod:`saesim.report.glossary`, naming the
   profile's SVCCA dimension policy) are written to ``book/generated``; the site's assets are put
   in ``book/generated/_static``
   (:mod:`saesim.report.assets`: a pinned, integrity-checked MathJax 3 from
   the npm registry, plotly.js and the favicon; the pages never load a CDN);
4. ``jupyter-book build . -W -n --keep-going`` renders the site (notebooks are
   rendered, never re-executed: ``execute_notebooks: "off"``), with the site's
   address, if any (``site_url``, else ``$SAESIM_SITE_URL``), handed to Sphinx as
   ``$SAESIM_SITE_URL`` (:mod:`saesim.report.sphinxext` makes it ``html_baseurl``): the
   figures' citable handles and the canonical links use it
   (:mod:`saesim.report.citable`).

What the notebooks themselves call (figures, glued numbers, the parameters
table, the experiment tables) is :mod:`saesim.report.book`.

References
----------
Lan et al., "Sparse Autoencoders Reveal Universal Feature Spaces Across Large
Language Models", arXiv:2410.06981 (2024).
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from saesim.report.assets import ensure_mathjax, ensure_plotly, write_favicon
from saesim.report.book import PATH_PARAMETERS

__all__ = [
    "BookBuildError",
    "BookResult",
    "CELL_TIMEOUT",
    "GENERATED",
    "NOTEBOOKS",
    "NotebookRun",
    "READS_FROM",
    "SLOW_NOTEBOOKS",
    "build_book",
    "execute_notebook",
    "kernel_threads",
    "parse_parameters",
]

NOTEBOOKS: tuple[str, ...] = ("method", "full_space", "steering", "subspace", "many_to_one", "feature_counts",
                              "robustness", "sweeps", "explorer", "findings", "reproducing")
"""Notebook sources (``notebooks/<name>.py``) in build order."""

GENERATED = Path("book") / "generated"
"""Where executed notebooks, exported figures and the vendored MathJax go (relative to the book root)."""

READS_FROM: dict[str, tuple[str, ...]] = {"findings": ("robustness", "steering"),
                                          "reproducing": ("method", "full_space", "subspace", "many_to_one",
                                                          "feature_counts")}
"""Notebooks that read what others write (``findings`` reads the robustness chapter's baselines,
``reproducing`` links the figures the other pages drew): they start only after those have finished."""

SLOW_NOTEBOOKS: tuple[str, ...] = ("robustness", "many_to_one", "sweeps", "subspace")
"""Started first, longest first, when notebooks execute side by side, so that the short ones fill the gaps.

On a fresh offline run they took 6.4, 3.0, 3.2 and 1.2 min; the others take under 40 s each."""

CELL_TIMEOUT = 3600
"""Seconds one notebook cell may run before papermill stops it."""


class BookBuildError(RuntimeError):
    """A notebook failed or Jupyter Book exited non-zero; ``result`` says what was done."""

    def __init__(self, message: str, result: "BookResult"):
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class NotebookRun:
    """One papermill execution.

    Attributes
    ----------
    name : str
    source : Path
        The jupytext ``.py`` source.
    executed : Path
        The executed notebook (in ``book/generated``, or the failure report).
    parameters : dict
        The parameters injected.
    seconds : float
    ok : bool
    error : str
        The traceback text when the notebook failed.
    """

    name: str
    source: Path
    executed: Path
    parameters: dict
    seconds: float
    ok: bool
    error: str = ""


@dataclass(frozen=True)
class BookResult:
    """What :func:`build_book` did.

    Attributes
    ----------
    profile : str
    root : Path
        The book root (holding ``_config.yml`` and ``_toc.yml``).
    html_dir : Path
        ``<build_dir>/html``; the site's entry page is ``index.html`` in it.
    notebooks : tuple of NotebookRun
    build_seconds : float
        Time of the Jupyter Book build (0 when it did not run).
    total_seconds : float
    build_ok : bool
    build_log : Path or None
        The Jupyter Book output (stdout and stderr).
    site_url : str
        The site's address handed to the build (``""``: none; handles are relative to the site's root).
    """

    profile: str
    root: Path
    html_dir: Path
    notebooks: tuple[NotebookRun, ...] = ()
    build_seconds: float = 0.0
    total_seconds: float = 0.0
    build_ok: bool = False
    build_log: Path | None = None
    timings: dict = field(default_factory=dict)
    site_url: str = ""

    @property
    def index(self) -> Path:
        return self.html_dir / "index.html"

    @property
    def ok(self) -> bool:
        return self.build_ok and all(run.ok for run in self.notebooks)

    def summary(self) -> str:
        lines = [f"book ({self.profile}): " + ("built" if self.ok else "FAILED")
                 + f" in {self.total_seconds:.1f} s -> {self.index}"]
        for run in self.notebooks:
            lines.append(f"  {run.name:<15} {'ok' if run.ok else 'FAILED':<6} {run.seconds:7.1f} s  {run.executed}")
        lines.append(f"  jupyter-book    {'ok' if self.build_ok else 'FAILED':<6} {self.build_seconds:7.1f} s"
                     + (f"  log: {self.build_log}" if self.build_log else ""))
        lines.append(f"  site address    {self.site_url or '(none: citable handles are relative to the site root)'}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- build


def build_book(profile: str = "offline", *, cache=None, results=None, notebooks: Sequence[str] | None = None,
               parameters: Mapping | None = None, build_dir="_build", strict: bool = True, root=None,
               execute: bool = True, timeout: int = CELL_TIMEOUT, progress: bool = True,
               jobs: int | None = None, site_url: str | None = None) -> BookResult:
    """Execute the notebooks with papermill and build the site with Jupyter Book.

    Parameters
    ----------
    profile : str, default "offline"
        Profile name (or YAML path) injected into every notebook.
    cache : path, optional
        Artefact store of the profile (default: the profile's ``cache_dir``),
        injected as ``cache_dir``.
    results : path, optional
        Results folder of ``saesim run`` (default ``<cache>/results``),
        injected as ``results_dir``.
    notebooks : sequence of str, optional
        Names to execute (default :data:`NOTEBOOKS`). Others keep their last
        executed copy; every notebook of the table of contents must exist.
    parameters : mapping, optional
        Extra papermill parameters for every notebook (``{"rule": "hungarian"}``);
        a notebook that lacks one ignores it (papermill warns).
    build_dir : path, default "_build"
        Jupyter Book's output folder (must be named ``_build``); the site is
        ``<build_dir>/html``.
    strict : bool, default True
        ``-W -n --keep-going``: any Sphinx warning fails the build.
    root : path, optional
        The book root (default: the repository holding this package).
    execute : bool, default True
        Execute the notebooks; False only rebuilds the HTML from the last
        executed copies.
    timeout : int, default :data:`CELL_TIMEOUT`
        Seconds a notebook cell may run.
    progress : bool, default True
        Print one line per stage.
    jobs : int, optional
        Notebooks executed side by side (default: 2, or 1 on a one-core
        machine). Each runs in its own kernel; the book is the same. With
        one, execution stops at the first failing notebook; side by side,
        the notebooks already started finish and the first failure in
        build order is reported. Side by side, each kernel gets
        ``cpu_count // jobs`` BLAS/torch threads (:func:`kernel_threads`).
    site_url : str, optional
        Where the site will be served (``https://host/path``), for the figures' citable handles
        (``<site_url>/book/generated/<page>.html#<figure name>``) and Sphinx's ``html_baseurl``.
        Default ``$SAESIM_SITE_URL``, else ``html.baseurl`` of ``_config.yml``; with none the
        handles are paths relative to the site's root. Checked before anything runs
        (:func:`saesim.report.citable.site_url`).

    Returns
    -------
    BookResult

    Raises
    ------
    BookBuildError
        A notebook failed (its executed copy and traceback are in
        ``book/generated/_reports``) or Jupyter Book exited non-zero (its log
        is ``<build_dir>/jupyter-book.log``; execution reports, if any, are in
        ``<build_dir>/html/reports``).
    """
    from saesim.config import load_profile
    from saesim.report.citable import SITE_URL_ENV
    from saesim.report.citable import site_url as check_site_url

    started = time.perf_counter()
    site = check_site_url(site_url)  # a bad address fails before the notebooks run
    root = Path(root) if root is not None else Path(__file__).resolve().parents[2]
    root = root.resolve()
    build_dir = Path(build_dir)
    if not build_dir.is_absolute():
        build_dir = root / build_dir
    if build_dir.name != "_build":
        raise ValueError(f"`build_dir` must be a folder named `_build` (Jupyter Book's layout); got {build_dir}.")
    names = list(NOTEBOOKS if notebooks is None else ([notebooks] if isinstance(notebooks, str) else notebooks))
    unknown = [n for n in names if not (root / "notebooks" / f"{n}.py").is_file()]
    if unknown:
        raise ValueError(f"`notebooks` {unknown} have no source in {root / 'notebooks'}; "
                         f"choose from {list(NOTEBOOKS)}.")
    prof = load_profile(profile)
    cache = Path(cache) if cache is not None else Path(prof.cache_dir)
    cache = cache.resolve()
    results = (Path(results) if results is not None else cache / "results").resolve()
    generated = root / GENERATED
    generated.mkdir(parents=True, exist_ok=True)
    common = {"profile": str(profile), "cache_dir": str(cache), "results_dir": str(results)}
    extra = dict(parameters or {})
    timings: dict[str, float] = {}

    runs: list[NotebookRun] = []
    if execute:
        jobs = min(2, os.cpu_count() or 1) if jobs is None else jobs
        if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
            raise ValueError(f"`jobs` must be a positive integer; got {jobs!r}.")

        threads = kernel_threads(jobs) if jobs > 1 and len(names) > 1 else None
        tasks = {name: functools.partial(execute_notebook, root / "notebooks" / f"{name}.py",
                                         generated / f"{name}.ipynb",
                                         {**common, **_page_parameters(name, root), **extra},
                                         timeout=timeout, report_dir=generated / "_reports", threads=threads)
                 for name in names}
        order = sorted(names, key=lambda n: SLOW_NOTEBOOKS.index(n) if n in SLOW_NOTEBOOKS else len(SLOW_NOTEBOOKS))
        if progress:
            described = ", ".join(f"{k}={v!r}" for k, v in extra.items()) or "defaults"
            print(f"saesim book: executing {', '.join(order)} ({described}; {min(jobs, len(order))} at a time)",
                  flush=True)
        by_name: dict[str, NotebookRun] = {}
        if jobs == 1 or len(names) == 1:
            for name, task in tasks.items():  # in order, stopping at the first failure
                by_name[name] = task()
                if not by_name[name].ok:
                    break
        else:
            # One process per notebook at a time (execute_notebook sets the kernel's environment
            # process-wide); the slow ones start first so that the others run beside them.
            later = [n for n in order if any(dep in names for dep in READS_FROM.get(n, ()))]
            with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
                for phase in ([n for n in order if n not in later], later):
                    futures = {name: pool.submit(tasks[name]) for name in phase}
                    by_name.update({name: future.result() for name, future in futures.items()})
        runs = [by_name[name] for name in names if name in by_name]
        timings.update({run.name: run.seconds for run in runs})
        failed = [run for run in runs if not run.ok]
        if failed:
            run = failed[0]
            result = BookResult(profile=str(profile), root=root, html_dir=build_dir / "html",
                                notebooks=tuple(runs), total_seconds=time.perf_counter() - started,
                                timings=timings)
            raise BookBuildError(f"notebook `{run.name}` failed; executed copy: {run.executed}\n"
                                 f"{run.error.strip().splitlines()[-1] if run.error.strip() else ''}", result)
    missing = [n for n in NOTEBOOKS if not (generated / f"{n}.ipynb").is_file()]
    if missing:
        result = BookResult(profile=str(profile), root=root, html_dir=build_dir / "html", notebooks=tuple(runs),
                            total_seconds=time.perf_counter() - started, timings=timings)
        raise BookBuildError(f"executed notebooks {missing} are missing from {generated}; run "
                             f"`saesim book --profile {profile}` without --notebooks first.", result)

    # The introduction's "In short", from the same tables the pages read (book/intro.md includes it).
    from saesim.io import atomic_write_text
    from saesim.report.pages import intro_summary

    atomic_write_text(generated / "summary.md", intro_summary(prof, cache_dir=cache, results_dir=results))
    # The glossary the pages link to ({term} roles), naming this run's SVCCA dimension policy.
    from saesim.report.glossary import glossary_markdown

    atomic_write_text(generated / "glossary.md", glossary_markdown(prof.filters.svcca_dims))

    t0 = time.perf_counter()
    ensure_mathjax(generated / "_static" / "mathjax")
    ensure_plotly(generated / "_static")  # the explorer's map loads plotly.js from the site (no CDN)
    write_favicon(generated / "_static" / "favicon.png")
    # The site's root index.html is a bare redirect: browsers then ask for /favicon.ico.
    (generated / "_extra").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(generated / "_static" / "favicon.png", generated / "_extra" / "favicon.ico")
    timings["mathjax"] = time.perf_counter() - t0

    if progress:
        print(f"saesim book: jupyter-book build -> {build_dir / 'html'}", flush=True)
    t0 = time.perf_counter()
    log = build_dir / "jupyter-book.log"
    build_dir.mkdir(parents=True, exist_ok=True)
    command = [_jupyter_book(), "build", str(root), "--path-output", str(build_dir.parent)]
    if strict:
        command += ["-W", "-n", "--keep-going"]
    env = _kernel_env()
    env[SITE_URL_ENV] = site  # "" lets _config.yml's html.baseurl stand
    proc = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    log.write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    build_seconds = time.perf_counter() - t0
    timings["jupyter-book"] = build_seconds
    result = BookResult(profile=str(profile), root=root, html_dir=build_dir / "html", notebooks=tuple(runs),
                        build_seconds=build_seconds, total_seconds=time.perf_counter() - started,
                        build_ok=proc.returncode == 0, build_log=log, timings=timings, site_url=site)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise BookBuildError(f"jupyter-book build exited {proc.returncode} (log: {log}; execution reports, "
                             f"if any: {build_dir / 'html' / 'reports'}):\n{tail}", result)
    if progress:
        print(result.summary(), flush=True)
        from saesim.report.lint import lint_book

        defects = lint_book(build_dir / "html")
        print(f"saesim book: {len(defects)} reader-facing defect(s) in the rendered pages (saesim.report.lint)"
              + "".join(f"\n  {d}" for d in defects[:20]), flush=True)
    return result


def kernel_threads(jobs: int) -> int:
    """BLAS/torch threads per notebook kernel when ``jobs`` run side by side: the cores split between them.

    Two kernels with two OpenMP threads each on two cores do not just share
    them: the threads spin while they wait for each other, and a sweep that
    took 15 s alone took 115 s beside another notebook.
    """
    return max(1, (os.cpu_count() or 1) // max(1, int(jobs)))


def execute_notebook(source, output, parameters: Mapping, *, timeout: int = CELL_TIMEOUT,
                     report_dir=None, cwd=None, threads: int | None = None) -> NotebookRun:
    """Convert a jupytext source and execute it with papermill, atomically.

    The notebook runs in a temporary file beside ``output`` (kernel working
    directory: ``output``'s folder, so relative ``figures/`` land beside the
    page) and replaces ``output`` only on success. On failure the partly
    executed notebook and the traceback are written to ``report_dir`` (default
    ``<output folder>/_reports``) and ``output`` keeps its previous content.
    ``threads`` caps the kernel's OpenMP/BLAS threads (``OMP_NUM_THREADS``
    and friends, unless already set in the environment); default: no cap.

    Returns
    -------
    NotebookRun
    """
    import jupytext
    import nbformat
    import papermill

    from saesim.io import to_jsonable

    source, output = Path(source), Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    report_dir = Path(report_dir) if report_dir is not None else output.parent / "_reports"
    started = time.perf_counter()
    params = {k: to_jsonable(v) for k, v in parameters.items()}
    with tempfile.TemporaryDirectory(prefix="saesim-book-") as tmp:
        notebook = jupytext.read(source, fmt="py:percent")
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                           "language": "python"}
        notebook.metadata.setdefault("language_info", {"name": "python"})
        _check_parameters_cell(notebook, source)
        _insert_parameters_table(notebook, source.stem)
        converted = Path(tmp) / f"{source.stem}.ipynb"
        nbformat.write(notebook, converted)
        partial = output.parent / f".{output.stem}.running.ipynb"
        env_before = dict(os.environ)
        os.environ.update(_kernel_env(threads))
        os.environ["SAESIM_NOTEBOOK_SOURCE"] = str(source.resolve())  # read by parameters_table in the kernel
        try:
            papermill.execute_notebook(str(converted), str(partial), parameters=params, kernel_name="python3",
                                       cwd=str(cwd or output.parent), execution_timeout=timeout,
                                       progress_bar=False, log_output=False, report_mode=False,
                                       kernel_manager_class=_ipc_kernel_manager())
        except BaseException as exc:  # noqa: BLE001 - any failure becomes a report
            report_dir.mkdir(parents=True, exist_ok=True)
            report = report_dir / output.name
            if partial.exists():
                os.replace(partial, report)
            text = "".join(traceback.format_exception(exc))
            (report_dir / f"{output.stem}.log").write_text(text)
            if isinstance(exc, KeyboardInterrupt):
                raise
            return NotebookRun(name=source.stem, source=source, executed=report, parameters=params,
                               seconds=time.perf_counter() - started, ok=False, error=text)
        finally:
            os.environ.clear()
            os.environ.update(env_before)
        _strip_papermill_noise(partial, paths=_path_placeholders(params, output))
        os.replace(partial, output)
    stale = report_dir / output.name
    for path in (stale, report_dir / f"{output.stem}.log"):
        path.unlink(missing_ok=True)
    return NotebookRun(name=source.stem, source=source, executed=output, parameters=params,
                       seconds=time.perf_counter() - started, ok=True)


def parse_parameters(items: Sequence[str] | None) -> dict:
    """``["rule=hungarian", "layers_a=[0, 2]"]`` -> ``{"rule": "hungarian", "layers_a": [0, 2]}`` (values as YAML)."""
    import yaml

    out = {}
    for item in items or ():
        if "=" not in item:
            raise ValueError(f"a notebook parameter must look like KEY=VALUE (e.g. rule=hungarian); got {item!r}.")
        key, value = item.split("=", 1)
        key = key.strip()
        if not key.isidentifier():
            raise ValueError(f"parameter name {key!r} is not a Python identifier.")
        out[key] = yaml.safe_load(value) if value.strip() else None
    return out


# --------------------------------------------------------------------------- internals


def _page_parameters(name: str, root: Path) -> dict:
    """Parameters only one notebook takes (absolute paths of the checkout)."""
    if name == "reproducing":
        return {"runs_dir": str(root / "runs")}
    return {}


def _check_parameters_cell(notebook, source: Path) -> None:
    tagged = [i for i, cell in enumerate(notebook.cells) if "parameters" in cell.get("metadata", {}).get("tags", [])]
    code = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
    if len(tagged) != 1 or not code or tagged[0] != code[0]:
        raise ValueError(f"{source} must have exactly one cell tagged `parameters`, and it must be the first code "
                         f"cell (house rule 12); found tagged cells at {tagged}.")


def _strip_papermill_noise(path: Path, *, paths: Mapping[str, str] | None = None) -> None:
    """Tidy an executed notebook for the page.

    * the parameters cell and papermill's injected cell are removed
      (``remove-cell``): the page's parameters table shows the values and
      defaults, the injected cell holds this machine's paths, and both come
      before the page's title, where a code toggle would be the first thing
      on the page;
    * every other code cell not tagged by its notebook gets ``remove-input``
      when it only glues values or imports (the reader needs its output, not
      its code), else ``hide-input`` (the code one click away); a notebook
      keeps a cell's code in view with the tag ``show-input``;
    * this machine's paths (``paths``: path -> placeholder) are replaced in
      every output and source, and in papermill's metadata;
    * the injected cell sets the path parameters (:data:`saesim.report.book.PATH_PARAMETERS`) back to
      the notebook's own defaults (:func:`_rerunnable_injection`), never to a placeholder: the
      executed notebook is what the page's download button serves, and it reruns as downloaded
      (``papermill page.ipynb out.ipynb``) against the profile's own store.
    """
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    replacements = sorted((paths or {}).items(), key=lambda kv: -len(kv[0]))
    defaults = next((_assignments(c.source) for c in notebook.cells
                     if "parameters" in c.get("metadata", {}).get("tags", [])), {})
    for cell in notebook.cells:
        tags = list(cell.get("metadata", {}).get("tags", []))
        if "injected-parameters" in tags:
            cell.source = _rerunnable_injection(cell.source, defaults)
        if "injected-parameters" in tags or "parameters" in tags:
            tags = [t for t in tags if t not in _LAYOUT_TAGS] + ["remove-cell"]
        elif cell.cell_type == "code" and not set(tags) & _LAYOUT_TAGS:
            tags.append("remove-input" if _glue_only(cell.source) else "hide-input")
        if tags:
            cell.metadata["tags"] = tags
        if replacements:
            cell.source = _scrub(cell.source, replacements)
            for output in cell.get("outputs", []):
                if "text" in output:
                    output["text"] = _scrub(output["text"], replacements)
                for mime, value in output.get("data", {}).items():
                    if isinstance(value, str) and not mime.startswith("image/"):
                        output["data"][mime] = _scrub(value, replacements)
    meta = notebook.metadata.get("papermill", {})
    for key in ("input_path", "output_path"):
        if key in meta:
            meta[key] = Path(meta[key]).name
    if "parameters" in meta:
        meta["parameters"] = {k: (_literal(defaults[k]) if k in PATH_PARAMETERS and k in defaults
                                  else _scrub(v, replacements) if isinstance(v, str) else v)
                              for k, v in meta["parameters"].items()}
    nbformat.write(notebook, path)


REBUILT_PATHS_NOTE = ("# The folders of the machine that built this page are not yours: the path parameters are\n"
                      "# the notebook's defaults, the profile's own store (its `cache_dir`, relative to the folder\n"
                      "# you run from), which `saesim run --profile {profile}` fills. Set them to use another store.")
"""The comment above the rewritten path parameters of a downloadable notebook's injected cell."""


def _assignments(code: str) -> dict[str, str]:
    """Name -> source text of the value, for each plain assignment of a cell (``{}`` when it does not parse)."""
    import ast

    try:
        body = ast.parse(code).body
    except SyntaxError:
        return {}
    return {target.id: ast.get_source_segment(code, node.value) or "None" for node in body
            if isinstance(node, ast.Assign) for target in node.targets if isinstance(target, ast.Name)}


def _literal(text: str):
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None


def _rerunnable_injection(code: str, defaults: Mapping[str, str]) -> str:
    """papermill's injected cell with every path parameter set to the notebook's default (``defaults``:
    name -> source text of its parameters cell), so that the executed notebook reruns anywhere."""
    injected = _assignments(code)
    paths = [k for k in injected if k in PATH_PARAMETERS]
    if not paths:
        return code
    profile = _literal(injected.get("profile", defaults.get("profile", "None")))
    lines = ["# Parameters"] + [f"{k} = {v}" for k, v in injected.items() if k not in PATH_PARAMETERS]
    lines += [REBUILT_PATHS_NOTE.format(profile=profile if isinstance(profile, str) else "NAME")]
    lines += [f"{k} = {defaults.get(k, 'None')}" for k in paths]
    return "\n".join(lines) + "\n"


_LAYOUT_TAGS = frozenset({"hide-input", "remove-input", "hide-cell", "remove-cell", "hide-output", "show-input",
                          "remove-output"})
"""Cell tags that say how a cell is shown; a cell carrying one is left as its notebook tagged it."""

_GLUE_CALLS = frozenset({"glue", "glue_value", "glue_fields"})
"""Calls that only glue values for the prose (``myst_nb.glue``, :func:`saesim.report.book.glue_value`,
:func:`saesim.report.book.glue_fields`); a cell of nothing else shows no code."""


def _glue_only(code: str) -> bool:
    """Whether a code cell only imports and glues values (:data:`_GLUE_CALLS`): no science to show."""
    import ast

    try:
        body = ast.parse(code).body
    except SyntaxError:
        return False
    glued = False
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            func = node.value.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in _GLUE_CALLS:
                glued = True
                continue
        if isinstance(node, ast.For) and all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)
                                             and getattr(n.value.func, "attr", getattr(n.value.func, "id", ""))
                                             in _GLUE_CALLS for n in node.body):
            glued = True
            continue
        return False
    return glued or all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in body) and bool(body)


def _scrub(text: str, replacements) -> str:
    for old, new in replacements:
        if old:
            text = text.replace(old, new)
    return text


def _path_placeholders(params: Mapping, output: Path) -> dict[str, str]:
    """This machine's paths that may appear in a page's outputs, each with the placeholder shown instead."""
    out = {}
    for key in PATH_PARAMETERS:
        value = params.get(key)
        if isinstance(value, str) and value:
            out[str(Path(value))] = f"<{key}>"
            out[str(Path(value).resolve())] = f"<{key}>"
    generated = Path(output).resolve().parent
    out[str(generated)] = "<book>"
    out[str(Path(__file__).resolve().parents[2])] = "<checkout>"
    home = str(Path.home())
    if len(home) > 1:
        out[home] = "~"
    out[tempfile.gettempdir()] = "<tmp>"
    return out


def _insert_parameters_table(notebook, name: str) -> None:
    """Add a cell that shows the page's parameters table, after the page's title (or the parameters cell)."""
    import nbformat

    if any("parameters_table(" in cell.source for cell in notebook.cells if cell.cell_type == "code"):
        return  # the notebook shows it itself
    code = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
    where = code[0] + 1
    for i, cell in enumerate(notebook.cells):
        if cell.cell_type == "markdown" and any(line.startswith("# ") for line in cell.source.splitlines()):
            where = max(where, i + 1)
            break
    # The parameters cell's text travels with the call, so the table needs no source file when the
    # downloaded notebook is rerun elsewhere.
    parameters = next((c.source for c in notebook.cells if "parameters" in c.get("metadata", {}).get("tags", [])),
                      None)
    cell = nbformat.v4.new_code_cell(f"from saesim.report.book import parameters_table as _saesim_parameters_table\n"
                                     f"_saesim_parameters_table(globals(), name={name!r}"
                                     + (f", cell={parameters!r})" if parameters is not None else ")"))
    cell.metadata["tags"] = ["remove-input", "saesim-parameters"]
    notebook.cells.insert(where, cell)


@functools.lru_cache(maxsize=None)
def _ipc_kernel_manager():
    """A jupyter_client kernel manager whose kernel talks over IPC (Unix sockets in Jupyter's runtime folder).

    The build's kernels then never print ipykernel's "Kernel is running over
    TCP without encryption" warning, once per notebook, into the build log
    (it is a log record of ipykernel's, not a Python warning, so it cannot be
    filtered by type; IPC is what the message itself recommends).
    """
    from jupyter_client import AsyncKernelManager

    class IpcKernelManager(AsyncKernelManager):
        # Each kernel gets its own socket folder: kernels running side by side must never share a path
        # (the default, "kernel-ipc" in the working directory, is the same for every kernel there).
        def __init__(self, **kwargs):
            kwargs.setdefault("transport", "ipc")
            self._socket_dir = tempfile.mkdtemp(prefix="saesim-kernel-")
            kwargs.setdefault("ip", os.path.join(self._socket_dir, "k"))
            super().__init__(**kwargs)

        async def _async_cleanup_resources(self, restart: bool = False) -> None:
            await super()._async_cleanup_resources(restart=restart)
            if not restart:
                shutil.rmtree(self._socket_dir, ignore_errors=True)

        cleanup_resources = _async_cleanup_resources

    return IpcKernelManager


def _jupyter_book() -> str:
    local = Path(sys.executable).parent / "jupyter-book"
    if local.is_file():
        return str(local)
    found = shutil.which("jupyter-book")
    if found is None:
        raise RuntimeError("`jupyter-book` (1.0.4.post1) is not installed in this environment; "
                           "run `make venv` (pip install -r requirements.txt).")
    return found


def _kernel_env(threads: int | None = None) -> dict:
    env = dict(os.environ)
    if threads is not None:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(var, str(int(threads)))
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        env.setdefault(var, "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    bindir = str(Path(sys.executable).parent)
    if bindir not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    return env
