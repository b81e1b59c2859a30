"""The book: papermill-executed notebooks rendered by Jupyter Book 1.x.

:func:`build_book` is what ``saesim book`` runs:

1. every notebook source in ``notebooks/`` (jupytext percent format, one
   ``parameters`` cell first) is converted to ``.ipynb`` in a temporary folder;
2. each is executed once by papermill with the parameters injected (the
   profile, the cache and results folders, and any overrides) into
   ``book/generated/<name>.ipynb``, the kernel being this Python (ipykernel's
   ``python3`` kernelspec; jupyter_client starts it with ``sys.executable``);
   the first failing notebook stops the build and leaves its executed copy
   and its traceback in ``book/generated/_reports/``;
3. a pinned, integrity-checked MathJax 3 from the npm registry is unpacked
   into ``book/generated/_static/mathjax`` (the pages never load a CDN);
4. ``jupyter-book build . -W -n --keep-going`` renders the site (notebooks are
   rendered, never re-executed: ``execute_notebooks: "off"``).

The helpers below it are what the notebooks call so that they stay thin:
:func:`grid_frame` (the experiment tables, read from ``saesim run``'s parquet
or computed through the cell cache), :func:`show_figure` (save a figure under
its stable name and display it as a labelled, captioned MyST figure with
download links) and :func:`glue_value` (glue a number for the prose).

References
----------
Lan et al., "Sparse Autoencoders Reveal Universal Feature Spaces Across Large
Language Models", arXiv:2410.06981 (2024).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import multiprocessing
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "BookBuildError",
    "BookResult",
    "BuildInfo",
    "MIN_FIGURE_PX",
    "build_info",
    "parameters_table",
    "MATHJAX_INTEGRITY",
    "MATHJAX_VERSION",
    "PLOTLY_FILE",
    "NOTEBOOKS",
    "NotebookRun",
    "build_book",
    "ensure_mathjax",
    "ensure_plotly",
    "execute_notebook",
    "kernel_threads",
    "glue_value",
    "GridTable",
    "grid_frame",
    "pair_examples",
    "top_tokens_text",
    "parse_parameters",
    "scope_note",
    "show_figure",
]

NOTEBOOKS: tuple[str, ...] = ("method", "full_space", "subspace", "many_to_one", "feature_counts", "robustness",
                              "sweeps", "explorer", "findings", "reproducing")
"""Notebook sources (``notebooks/<name>.py``) in build order."""

GENERATED = Path("book") / "generated"
"""Where executed notebooks, exported figures and the vendored MathJax go (relative to the book root)."""

FIGURES = "figures"
"""Folder of exported figures, relative to the executed notebooks."""

READS_FROM: dict[str, tuple[str, ...]] = {"findings": ("robustness",),
                                          "reproducing": ("method", "full_space", "subspace", "many_to_one",
                                                          "feature_counts")}
"""Notebooks that read what others write (``findings`` reads the robustness chapter's baselines,
``reproducing`` links the figures the other pages drew): they start only after those have finished."""

SLOW_NOTEBOOKS: tuple[str, ...] = ("robustness", "many_to_one", "sweeps", "subspace")
"""Started first, longest first, when notebooks execute side by side, so that the short ones fill the gaps.

On a fresh offline run they took 6.4, 3.0, 3.2 and 1.2 min; the others take under 40 s each."""

CELL_TIMEOUT = 3600
"""Seconds one notebook cell may run before papermill stops it."""

PLOTLY_FILE = "plotly.min.js"
"""Name of plotly's JavaScript bundle in the book's ``_static`` folder (the explorer's map loads it there)."""

MATHJAX_VERSION = "3.2.2"
"""The MathJax release served by the book (npm package ``mathjax``)."""

MATHJAX_INTEGRITY = ("sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==")
"""The npm registry's ``dist.integrity`` of ``mathjax@3.2.2``; the tarball is checked against it."""

MATHJAX_ENTRY = "tex-chtml.js"
"""MathJax component loaded by the pages (``mathjax_path`` in ``_config.yml``)."""


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
        return "\n".join(lines)


# --------------------------------------------------------------------------- build


def build_book(profile: str = "offline", *, cache=None, results=None, notebooks: Sequence[str] | None = None,
               parameters: Mapping | None = None, build_dir="_build", strict: bool = True, root=None,
               execute: bool = True, timeout: int = CELL_TIMEOUT, progress: bool = True,
               jobs: int | None = None) -> BookResult:
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

    started = time.perf_counter()
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

    t0 = time.perf_counter()
    ensure_mathjax(generated / "_static" / "mathjax")
    ensure_plotly(generated / "_static")  # the explorer's map loads plotly.js from the site (no CDN)
    _write_favicon(generated / "_static" / "favicon.png")
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
    proc = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    log.write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    build_seconds = time.perf_counter() - t0
    timings["jupyter-book"] = build_seconds
    result = BookResult(profile=str(profile), root=root, html_dir=build_dir / "html", notebooks=tuple(runs),
                        build_seconds=build_seconds, total_seconds=time.perf_counter() - started,
                        build_ok=proc.returncode == 0, build_log=log, timings=timings)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise BookBuildError(f"jupyter-book build exited {proc.returncode} (log: {log}; execution reports, "
                             f"if any: {build_dir / 'html' / 'reports'}):\n{tail}", result)
    if progress:
        print(result.summary(), flush=True)
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


# --------------------------------------------------------------------------- MathJax


def ensure_plotly(static_dir) -> Path:
    """Copy plotly's ``plotly.min.js`` (from the installed ``plotly`` package) into ``static_dir``.

    The book serves it from its ``_static`` folder, so the map's page loads
    no script from another host; returns the file's path.
    """
    import plotly

    from saesim.io import atomic_path

    source = Path(plotly.__file__).parent / "package_data" / PLOTLY_FILE
    target = Path(static_dir) / PLOTLY_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.is_file() or target.stat().st_size != source.stat().st_size:
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
    return target


def ensure_mathjax(target, *, vendor=None, version: str = MATHJAX_VERSION, integrity: str = MATHJAX_INTEGRITY) -> Path:
    """Unpack MathJax 3 (``es5/``) into ``target``, from the npm registry through ``npm pack``.

    The tarball is cached in ``vendor`` (default ``$SAESIM_VENDOR`` or
    ``~/.cache/saesim/vendor``)
    and checked against the registry's pinned ``sha512`` integrity before use;
    ``$SAESIM_MATHJAX_TGZ`` may point to a copy for machines with no registry.
    Returns the path of the entry script (``target/tex-chtml.js``).
    """
    target = Path(target)
    entry = target / MATHJAX_ENTRY
    stamp = target / ".version"
    if entry.is_file() and stamp.is_file() and stamp.read_text().strip() == version:
        return entry
    if vendor is None:
        vendor = os.environ.get("SAESIM_VENDOR") or Path.home() / ".cache" / "saesim" / "vendor"
    vendor = Path(vendor)
    tarball = Path(os.environ["SAESIM_MATHJAX_TGZ"]) if os.environ.get("SAESIM_MATHJAX_TGZ") else \
        vendor / f"mathjax-{version}.tgz"
    if not tarball.is_file() or not _integrity_ok(tarball, integrity):
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError(f"MathJax {version} is needed to serve the book's math offline, and `npm` is not "
                               f"installed; install Node.js/npm (apt-get install -y npm) or set "
                               f"SAESIM_MATHJAX_TGZ to a copy of mathjax-{version}.tgz.")
        vendor.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([npm, "pack", f"mathjax@{version}", "--pack-destination", str(vendor)],
                              capture_output=True, text=True)
        tarball = vendor / f"mathjax-{version}.tgz"
        if proc.returncode != 0 or not tarball.is_file():
            raise RuntimeError(f"`npm pack mathjax@{version}` failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        if not _integrity_ok(tarball, integrity):
            tarball.unlink(missing_ok=True)
            raise RuntimeError(f"mathjax-{version}.tgz does not match the pinned integrity {integrity}; refusing it.")
    tmp = target.parent / f".{target.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(tarball, "r:gz") as archive:
        members = [m for m in archive.getmembers() if m.name.startswith("package/es5/") and m.isfile()]
        for member in members:
            member.name = member.name[len("package/es5/"):]
        archive.extractall(tmp, members=members, filter="data")
        licence = archive.extractfile("package/LICENSE")
        if licence is not None:
            (tmp / "LICENSE").write_bytes(licence.read())
    (tmp / ".version").write_text(version)
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
    return entry


def _integrity_ok(path: Path, integrity: str) -> bool:
    algorithm, _, expected = integrity.partition("-")
    digest = hashlib.new(algorithm, Path(path).read_bytes()).digest()
    return base64.b64encode(digest).decode() == expected


# --------------------------------------------------------------------------- notebook helpers


@dataclass(frozen=True)
class GridTable:
    """An experiment table with the settings that produced it.

    Attributes
    ----------
    frame : pandas.DataFrame
        The requested rows.
    source : str
        The parquet read, or ``"computed: <folder>"``.
    settings : saesim.experiments.grid.CompareSettings
    profile : saesim.config.Profile
    slots : (str, str)
    pairs : tuple of (int, int), optional
        The (A layer, B layer) cells asked for, when they were listed rather
        than the product of two layer lists.
    fvu_flags : str
        The layers of either slot whose SAE misses the held-out FVU target
        (:data:`saesim.extract.pipeline.HELDOUT_FVU_TARGET`), in words; "" when none.
        Every caption built from :meth:`meta` repeats it.
    """

    frame: object
    source: str
    settings: object
    profile: object
    slots: tuple = ("a", "b")
    pairs: tuple | None = None
    fvu_flags: str = ""

    @property
    def label_a(self) -> str:
        return self.profile.model(self.slots[0]).label

    @property
    def label_b(self) -> str:
        return self.profile.model(self.slots[1]).label

    def meta(self, **extra) -> dict:
        """Settings for :func:`saesim.report.plots.caption` (profile, layers, rule, filters, null, mode)."""
        s = self.settings
        frame = self.frame
        meta = {
            "profile": self.profile.name,
            "label_a": self.label_a,
            "label_b": self.label_b,
            "layers_a": sorted(frame["layer_a"].unique().tolist()) if len(frame) else None,
            "layers_b": sorted(frame["layer_b"].unique().tolist()) if len(frame) else None,
            "rule": s.rules[0] if len(s.rules) == 1 else " / ".join(s.rules),
            "direction": s.directions[0] if len(s.directions) == 1 else " / ".join(s.directions),
            "junk_filter": s.junk_filter,
            "top_k": s.top_k,
            "require_overlap": s.require_overlap,
            "r_min": s.r_min,
            # "group" for many-to-1 records (saesim.experiments.grid.null_groups), "shuffle" otherwise
            "null_kind": (" / ".join(sorted(frame["null_kind"].dropna().unique()))
                          if len(frame) and "null_kind" in frame else "shuffle"),
            "n_perm": s.n_perm,
            "seed": s.seed,
            "compat": s.compat,
            "fvu_flags": self.fvu_flags,
            "svcca_dims": s.svcca_variance,
        }
        if s.junk_filter:
            meta["junk_list"] = s.junk_list
        if self.pairs is not None:
            # listed cells are not a layers_a x layers_b product: the caption's "layers A [..] x B [..]"
            # would say otherwise, so the notebook names the pairs itself
            meta["layers_a"] = meta["layers_b"] = None
        meta.update(extra)
        return meta


def grid_frame(profile, kind: str = "full_space", *, rules: Sequence[str] | None = None,
               directions: Sequence[str] = ("b_to_a",), layers_a=None, layers_b=None, pairs=None,
               slots=("a", "b"), cache_dir=None, results_dir=None, executor: str = "serial", **changes):
    """The experiment table a notebook needs, from ``saesim run``'s parquet or computed.

    Parameters
    ----------
    profile : str or Profile
    kind : {"full_space", "subspace"}
    rules, directions : sequence of str
        Rules and directions wanted (default: the profile's rule and
        many-to-1, each B latent picking an A latent).
    layers_a, layers_b : sequence of int, optional
        Default: the profile's layers of the two slots.
    pairs : sequence of (int, int), optional
        Explicit (A layer, B layer) cells instead of the product of
        ``layers_a`` and ``layers_b`` (which must then be left out), e.g.
        the diagonal ``[(0, 0), (1, 1)]``; ``kind="full_space"`` only.
    slots : (str, str)
        ("a", "b"), or ("a", "control") for the re-randomised-model control.
    cache_dir, results_dir : path, optional
        The artefact store and ``saesim run``'s results folder
        (default ``<cache>/results``).
    executor : str, default "serial"
        How missing cells are computed (see :func:`saesim.experiments.grid.run_grid`).
    **changes
        Other :class:`~saesim.experiments.grid.CompareSettings` fields
        (``n_perm``, ``seed``, ``compat``, ``r_min``, ...); None leaves the
        profile's value.

    Returns
    -------
    GridTable
        The rows for the requested layers (or pairs), rules and directions,
        and no others; where they came from (the parquet's path, or
        ``"computed: <folder>"``) and the settings.

    Notes
    -----
    The parquet written by ``saesim run`` is used when it has a row for
    every requested (layer pair, rule, direction) under the same ``compat``,
    ``n_perm`` and ``seed``, and every other setting is the profile's (the
    table does not record them). Otherwise the grid is computed with
    :func:`saesim.experiments.grid.run_grid` into
    ``<results>/custom/<settings key>`` (so ``saesim run``'s table is never
    overwritten; a rerun with the same parameters reuses those cells).
    """
    import pandas as pd

    from saesim.config import Profile, load_profile
    from saesim.experiments.grid import run_grid, semantic_grid, settings_from_profile

    if kind not in ("full_space", "subspace"):
        raise ValueError(f"`kind` must be 'full_space' or 'subspace'; got {kind!r}.")
    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    slot_a, slot_b = slots
    if pairs is not None:
        pairs = _check_pairs(pairs, profile, slots, kind, layers_a, layers_b)
        layers_a = tuple(dict.fromkeys(la for la, _ in pairs))
        layers_b = tuple(dict.fromkeys(lb for _, lb in pairs))
    layers_a = tuple(int(x) for x in (profile.layers(slot_a) if layers_a is None else layers_a))
    layers_b = tuple(int(x) for x in (profile.layers(slot_b) if layers_b is None else layers_b))
    cells = pairs if pairs is not None else tuple((la, lb) for la in layers_a for lb in layers_b)
    base = settings_from_profile(profile, directions=("b_to_a",))
    changes = {k: (tuple(v) if isinstance(v, list) else v) for k, v in changes.items() if v is not None}
    settings = base.replace(rules=tuple(rules) if rules else base.rules, directions=tuple(directions), **changes)
    if kind == "subspace":
        settings = settings.replace(rules=settings.rules[:1])
    cache = Path(cache_dir) if cache_dir is not None else Path(profile.cache_dir)
    results = Path(results_dir) if results_dir is not None else cache / "results"
    name = f"{kind}.parquet" if tuple(slots) == ("a", "b") else f"{kind}_{slot_a}_vs_{slot_b}.parquet"
    table = results / name
    unrecorded = [f for f in ("r_min", "junk_filter", "junk_list", "require_overlap", "top_k", "min_active",
                              "svcca_variance") if getattr(settings, f) != getattr(base, f)]
    if table.is_file() and not unrecorded:
        frame = pd.read_parquet(table)
        rows = _select(frame, kind, cells, settings)
        if rows is not None:
            return GridTable(rows, str(table), settings, profile, tuple(slots), pairs, _fvu_flags(profile, slots, cache))
    out = results / "custom" / settings.key()
    if kind == "subspace":
        result = semantic_grid(profile, layers_a=layers_a, layers_b=layers_b, settings=settings, slots=tuple(slots),
                               out=out, cache=cache, executor=executor, progress=False)
    else:
        result = run_grid(profile, layers_a=layers_a, layers_b=layers_b, settings=settings, slots=tuple(slots),
                          out=out, cache=cache, executor=executor, progress=False, pairs=pairs)
    if result.failed:
        first = next(iter(result.failed.items()))
        raise RuntimeError(f"{len(result.failed)} {kind} cells failed, e.g. {first[0]}:\n{first[1]}")
    rows = _select(result.frame, kind, cells, settings)
    if rows is None:
        raise RuntimeError(f"the computed {kind} grid in {out} lacks requested rows; this is a bug.")
    return GridTable(rows, f"computed: {out}", settings, profile, tuple(slots), pairs, _fvu_flags(profile, slots, cache))


def _check_pairs(pairs, profile, slots, kind, layers_a, layers_b) -> tuple[tuple[int, int], ...]:
    """``pairs`` as a tuple of distinct (int, int), each layer one the profile has in its slot."""
    if kind != "full_space":
        raise ValueError(f"`pairs` is supported for kind='full_space' only; got kind={kind!r}.")
    if layers_a is not None or layers_b is not None:
        raise ValueError("give either `pairs` or `layers_a` / `layers_b`, not both.")
    out = []
    for item in pairs:
        try:
            la, lb = (int(x) for x in item)
        except (TypeError, ValueError):
            raise ValueError(f"`pairs` must hold (layer_a, layer_b) pairs of integers, e.g. [[0, 0], [1, 1]]; "
                             f"got {item!r}.") from None
        out.append((la, lb))
    out = tuple(dict.fromkeys(out))
    if not out:
        raise ValueError("`pairs` is empty; give at least one (layer_a, layer_b) pair.")
    known_a, known_b = set(profile.layers(slots[0])), set(profile.layers(slots[1]))
    unknown = [p for p in out if p[0] not in known_a or p[1] not in known_b]
    if unknown:
        raise ValueError(f"`pairs` {unknown} name layers that profile {profile.name} does not have; its layers are "
                         f"{sorted(known_a)} ({slots[0]}) and {sorted(known_b)} ({slots[1]}).")
    return out


def _select(frame, kind, cells, settings):
    """Rows of ``frame`` for the (layer_a, layer_b) ``cells``, or None when some are missing or settings differ."""
    import pandas as pd

    if frame.empty or "layer_a" not in frame:
        return None
    wanted = set(cells)
    keep = pd.Series([(int(a), int(b)) in wanted for a, b in zip(frame["layer_a"], frame["layer_b"])],
                     index=frame.index, dtype=bool)
    keep &= frame["rule"].isin(settings.rules)
    if kind == "full_space":
        keep &= frame["direction"].isin(settings.directions)
        for column in ("n_perm", "seed"):
            keep &= frame[column] == getattr(settings, column)
    else:
        keep &= frame["seed"] == settings.seed
    keep &= frame["compat"].astype(bool) == bool(settings.compat)
    rows = frame[keep]
    need = len(wanted) * len(settings.rules)
    keys = ["layer_a", "layer_b", "rule"]
    if kind == "full_space":
        need *= len(settings.directions)
        keys.append("direction")
    if rows.drop_duplicates(keys).shape[0] != need:
        return None
    return rows.reset_index(drop=True)


def pair_examples(layer_a, layer_b, settings, *, n: int = 3, seed: int = 0, k: int = 5):
    """Paired latents with their top contexts, kept ones and ones each filter removed.

    Parameters
    ----------
    layer_a, layer_b : saesim.extract.pipeline.LayerData
    settings : saesim.experiments.grid.CompareSettings
        Its first rule and direction are used.
    n : int, default 3
        Examples per outcome; the best-correlated pairs of each outcome.
    seed : int
        Unused unless ties need breaking (kept for reproducibility).
    k : int, default 5
        Top contexts shown per latent.

    Returns
    -------
    (pandas.DataFrame, dict)
        One row per example (outcome, latents, r, top tokens and context
        windows of both), and the number of many-to-1 pairs per outcome.

    Notes
    -----
    The outcomes follow the paper's order of filters: ``removed: junk /
    shared-token filter``, ``removed: 1-1``, ``removed: r <= r_min`` and
    ``kept``. Reviewers asked whether the pairs the filters drop hold
    meaningful features: their contexts are shown next to the kept ones.
    """
    import pandas as pd

    from saesim.compare.corr import quiet_best_partners
    from saesim.compare.stages import PAIR_FIRST_RULES, filter_stages

    sa, sb = layer_a.to_sae_layer(), layer_b.to_sae_layer()
    rule, direction = settings.rules[0], settings.directions[0]
    best = quiet_best_partners(sa.codes, sb.codes, compat=settings.compat)
    stages = filter_stages(best, sa, sb, settings, rule=rule, direction=direction)
    # Outcomes are read off each chooser's best partner (the many-to-1 candidates): for the rules
    # that pair first (mutual, Hungarian) their junk verdicts are the many-to-1 stages', not those
    # of the rule's pairs.
    screened = stages if rule not in PAIR_FIRST_RULES else \
        filter_stages(best, sa, sb, settings, rule="many_to_one", direction=direction)
    every = screened.candidates
    after_junk, after_dedup, final = screened.after_junk, screened.after_1to1, stages.final
    keys = lambda p: set(zip(p.a.tolist(), p.b.tolist()))  # noqa: E731
    junk_ok, dedup_ok, kept = keys(after_junk), keys(after_dedup), keys(final)
    outcome = []
    for a, b in zip(every.a.tolist(), every.b.tolist()):
        if (a, b) in kept:
            outcome.append("kept")
        elif (a, b) not in junk_ok:
            outcome.append("removed: junk / shared-token filter")
        elif (a, b) not in dedup_ok or rule in PAIR_FIRST_RULES:
            outcome.append(f"removed: 1-1 ({rule})")
        else:
            outcome.append(f"removed: r <= {settings.r_min:g}")
    table = pd.DataFrame({"outcome": outcome, "latent_a": every.a, "latent_b": every.b, "r": every.r})
    counts = table["outcome"].value_counts().to_dict()
    rows = []
    order = ["kept", "removed: junk / shared-token filter", f"removed: 1-1 ({rule})", f"removed: r <= {settings.r_min:g}"]
    for name in order:
        chosen = table[table["outcome"] == name].sort_values(["r", "latent_b"], ascending=[False, True]).head(n)
        for row in chosen.itertuples():
            rows.append({
                "outcome": name, "A latent": int(row.latent_a), "B latent": int(row.latent_b), "r": float(row.r),
                "A top tokens": top_tokens_text(layer_a.contexts, row.latent_a, k),
                "B top tokens": top_tokens_text(layer_b.contexts, row.latent_b, k),
                "A contexts": _windows(layer_a.contexts, row.latent_a, k),
                "B contexts": _windows(layer_b.contexts, row.latent_b, k),
            })
    return pd.DataFrame(rows), {name: int(counts.get(name, 0)) for name in order}


def top_tokens_text(contexts, latent: int, k: int) -> str:
    tokens = [repr(t) for t, on in zip(contexts.top_tokens[latent][:k], contexts.active[latent][:k]) if on]
    return " ".join(tokens) if tokens else "(never fires)"


def _windows(contexts, latent: int, k: int) -> str:
    windows = [w for w, on in zip(contexts.windows[latent][:k], contexts.active[latent][:k]) if on]
    return " | ".join(w.strip() for w in windows) if windows else ""


MIN_FIGURE_PX = 1200
"""Smallest width, in pixels, of every exported PNG (legible at the page width, sharp when opened)."""


def show_figure(fig, name: str, caption: str, *, out_dir=FIGURES, label: str | None = None,
                alt: str | None = None, width: str | None = None):
    """Save ``fig`` as PDF/SVG/PNG under its stable name and display it once, as a captioned MyST figure.

    The displayed output is Markdown (rendered as MyST by the book,
    ``nb_render_markdown_format: myst``): a ``{figure}`` with the PNG at the
    page width (``width``, default ``100%``; Sphinx then links the image to
    its full-size file, so a click opens it), the reference label ``label``
    (default: ``name`` with ``_`` -> ``-``), the caption, the build line
    (:func:`build_info`: saesim version, commit and build date) and download
    links to the three files.

    The files are written by :func:`saesim.report.plots.save_figure` at a resolution
    that makes the PNG at least :data:`MIN_FIGURE_PX` pixels wide, and carry
    the build line in their metadata. A pyplot-managed figure is closed after
    saving, so the notebook's inline backend does not display it a second
    time (uncaptioned). Nothing is returned, so a cell ending with this call
    shows only the figure.
    """
    from IPython.display import Markdown, display

    from saesim.report.plots import save_figure

    info = build_info()
    text = _md_escape(" ".join(caption.strip().split()))
    plain = " ".join(caption.strip().split())
    written = save_figure(fig, name, out_dir, metadata={"Title": name, "Description": f"{plain} {info.line()}.",
                                                        "Software": info.line()},
                          min_width_px=MIN_FIGURE_PX)
    _close_pyplot(fig)
    rel = Path(out_dir)
    label = label or name.replace("_", "-").lower()
    links = ", ".join(f"{{download}}`{ext.upper()} <{(rel / f'{name}.{ext}').as_posix()}>`" for ext in written)
    markdown = (f":::{{figure}} {(rel / f'{name}.png').as_posix()}\n:name: {label}\n"
                f":alt: {_escape(alt or plain.split('. ')[0])}\n:width: {width or '100%'}\n\n"
                f"{text} {_md_escape(info.line())}. Files: {links} (`{name}`).\n:::\n")
    display(Markdown(markdown))


def _close_pyplot(fig) -> None:
    """Close ``fig`` if pyplot manages it (inline backends display every open pyplot figure at cell end)."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        plt.close(fig)  # a figure pyplot does not manage is left alone


# --------------------------------------------------------------------------- build info


@dataclass(frozen=True)
class BuildInfo:
    """What a citation of the book or one of its figures must name.

    Attributes
    ----------
    version : str
        saesim's version (the installed distribution's).
    commit : str
        Full git commit of the checkout that built it, ``"unknown"`` outside a
        git checkout (``$SAESIM_COMMIT`` overrides).
    dirty : bool
        The checkout had uncommitted changes to tracked files.
    date : str
        Build date, ISO ``YYYY-MM-DD`` (``$SOURCE_DATE_EPOCH`` overrides today).
    url : str
        The repository.
    """

    version: str
    commit: str
    dirty: bool
    date: str
    url: str = "https://github.com/saesim/saesim"

    @property
    def short(self) -> str:
        return (self.commit[:12] if self.commit != "unknown" else self.commit) + ("+dirty" if self.dirty else "")

    def line(self) -> str:
        """``"saesim 0.1.0, commit 1a2b3c4d5e6f, built 2026-11-24"``."""
        return f"saesim {self.version}, commit {self.short}, built {self.date}"

    def bibtex(self) -> str:
        """The software's BibTeX entry, with version, URL, commit and date."""
        year = self.date[:4]
        return ("@software{saesim,\n"
                "  title   = {saesim: comparing sparse-autoencoder feature spaces across language models},\n"
                "  author  = {{The saesim developers}},\n"
                f"  version = {{{self.version}}},\n"
                f"  url     = {{{self.url}}},\n"
                f"  note    = {{commit {self.commit}{' (with uncommitted changes)' if self.dirty else ''}, "
                f"built {self.date}}},\n"
                f"  year    = {{{year}}},\n"
                "  license = {MIT}\n"
                "}")


@functools.lru_cache(maxsize=None)
def build_info(root=None) -> BuildInfo:
    """saesim's version, the git commit of the checkout (``root``, default this package's) and the build date."""
    import datetime
    from importlib import metadata

    try:
        version = metadata.version("saesim")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        version = "unknown"
    root = Path(root) if root is not None else Path(__file__).resolve().parents[2]
    commit, dirty = os.environ.get("SAESIM_COMMIT", ""), False
    if not commit:
        try:
            commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                    timeout=30).stdout.strip() or "unknown"
            if commit != "unknown":
                status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                        capture_output=True, text=True, timeout=60).stdout
                dirty = bool(status.strip())
        except (OSError, subprocess.SubprocessError):
            commit = "unknown"
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = (datetime.datetime.fromtimestamp(int(epoch), tz=datetime.timezone.utc) if epoch and epoch.isdigit()
            else datetime.datetime.now(datetime.timezone.utc))
    return BuildInfo(version=version, commit=commit, dirty=dirty, date=when.date().isoformat())


# --------------------------------------------------------------------------- parameters


PARAMETER_HELP = {
    "profile": "which models, SAEs, text and settings (a profile name or YAML path)",
    "cache_dir": "the artefact store read (set by `saesim book`)",
    "results_dir": "the tables of `saesim run` read (set by `saesim book`)",
    "runs_dir": "the folder of `saesim run` records listed (set by `saesim book`)",
    "figures_dir": "where the figure files are written, beside the page",
    "rule": "the pairing rule (first_index, many_to_one, max_corr, mutual, hungarian)",
    "rules": "the pairing rules compared",
    "direction": "which side chooses its partner (b_to_a or a_to_b)",
    "layers_a": "the layers of model A shown",
    "layers_b": "the layers of model B shown",
    "n_perm": "shuffles per null distribution",
    "seed": "the seed of every random draw",
    "compat": "true: the authors' computation (SVCCA with k = 1, their p-value)",
    "metrics": "the similarity measures scored",
    "alpha": "the significance level",
    "n_boot": "bootstrap resamples per interval",
    "executor": "how cells are computed (serial, local processes)",
}
"""What the common notebook parameters change, for :func:`parameters_table` (a trailing comment wins)."""

_PATH_PARAMETERS = ("cache_dir", "results_dir", "runs_dir")


def _parameter_cell(source) -> list[tuple[str, str, str]]:
    """(name, default source text, trailing comment) of each assignment in a notebook's ``parameters`` cell."""
    import ast
    import io
    import tokenize

    import jupytext

    notebook = jupytext.read(source, fmt="py:percent")
    cell = next(c for c in notebook.cells if "parameters" in c.get("metadata", {}).get("tags", []))
    text = cell.source
    comments = {}
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
    out = []
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out.append((target.id, ast.get_source_segment(text, node.value) or "",
                                comments.get(node.end_lineno, "")))
    return out


def _notebook_source(name: str | None) -> Path | None:
    env = os.environ.get("SAESIM_NOTEBOOK_SOURCE")
    if env and Path(env).is_file() and (name is None or Path(env).stem == name):
        return Path(env)
    if name is not None:
        candidate = Path(__file__).resolve().parents[2] / "notebooks" / f"{name}.py"
        if candidate.is_file():
            return candidate
    return None


def parameters_table(values: Mapping | None = None, *, source=None, name: str | None = None):
    """The page's parameters as a small HTML table: name, value used, default, what it changes.

    Parameters
    ----------
    values : mapping, optional
        The notebook's namespace (``globals()``): the values used (the
        parameters cell's defaults with papermill's injected values applied).
        Default: the defaults.
    source : path, optional
        The notebook's jupytext source (default: ``$SAESIM_NOTEBOOK_SOURCE``,
        set by :func:`execute_notebook`, or ``notebooks/<name>.py`` of this
        checkout).
    name : str, optional
        The notebook's name, used to find its source and in the rerun command.

    Returns
    -------
    IPython.display.HTML
        A table (what each parameter changes comes from its trailing comment
        in the ``parameters`` cell, else :data:`PARAMETER_HELP`), followed by
        the command that reruns the page with other values (``saesim book
        --notebooks <name> -p NAME=VALUE``). Path parameters set by ``saesim
        book`` are shown as such, never as this machine's path.
    """
    import html

    from IPython.display import HTML

    from saesim.io import to_jsonable

    source = Path(source) if source is not None else _notebook_source(name)
    if source is None:
        raise ValueError("`source` is needed: no $SAESIM_NOTEBOOK_SOURCE and no `name` of a notebook in "
                         "notebooks/; pass source='notebooks/<name>.py'.")
    name = name or source.stem
    values = dict(values or {})
    rows = []
    for key, default, comment in _parameter_cell(source):
        used = values.get(key, None) if key in values else None
        if key in _PATH_PARAMETERS:
            shown = "set by saesim book" if used else "the profile's default"
        elif key in values:
            shown = repr(to_jsonable(used))
        else:
            shown = default
        help_text = comment or PARAMETER_HELP.get(key, "")
        rows.append(f"<tr><td><code>{html.escape(key)}</code></td><td><code>{html.escape(str(shown))}</code></td>"
                    f"<td><code>{html.escape(default)}</code></td><td>{html.escape(help_text)}</td></tr>")
    names = [key for key, _, _ in _parameter_cell(source) if key not in _PATH_PARAMETERS + ("profile",)]
    example = names[0] if names else "seed"
    command = (f"saesim book --profile PROFILE --notebooks {name} -p {example}=VALUE")
    return HTML('<div class="admonition saesim-parameters"><p class="admonition-title">Parameters of this page</p>'
                '<table class="table" style="font-size: 0.85em; width: 100%; table-layout: auto; '
                'overflow-wrap: anywhere;"><thead><tr><th>name</th><th>value used</th><th>default</th>'
                '<th>what it changes</th></tr></thead><tbody>' + "".join(rows) + "</tbody></table>"
                f"<p>This page accepts <code>-p NAME=VALUE</code> for each name above (values read as YAML), "
                f"e.g. <code>{html.escape(command)}</code>.</p></div>")


def glue_value(name: str, value, *, display: bool = False):
    """``myst_nb.glue`` of a plain Python value (numpy scalars converted, so ``{glue:text}`` formats work)."""
    from myst_nb import glue

    from saesim.io import to_jsonable

    glue(name, to_jsonable(value), display=display)


_MD_SPECIAL = set("\\`*_[]{}<>|#$~^&")


def _md_escape(text: str) -> str:
    """Backslash-escape Markdown syntax so a plain-text caption renders literally."""
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in text)


def _escape(text: str) -> str:
    return text.replace("\n", " ").replace("`", "'")


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

    * the parameters cell is folded away (``hide-cell``) and papermill's
      injected cell removed (``remove-cell``: the page's parameters table
      shows the values, and the injected cell holds this machine's paths);
    * every other code cell not tagged by its notebook gets ``remove-input``
      when it only glues values or imports (the reader needs its output, not
      its code), else ``hide-input`` (the code one click away); a notebook
      keeps a cell's code in view with the tag ``show-input``;
    * this machine's paths (``paths``: path -> placeholder) are replaced in
      every output and source, and in papermill's metadata.
    """
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    replacements = sorted((paths or {}).items(), key=lambda kv: -len(kv[0]))
    for cell in notebook.cells:
        tags = list(cell.get("metadata", {}).get("tags", []))
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
        elif "parameters" in tags and "hide-cell" not in tags:
            tags.append("hide-cell")
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
        meta["parameters"] = {k: (_scrub(v, replacements) if isinstance(v, str) else v)
                              for k, v in meta["parameters"].items()}
    nbformat.write(notebook, path)


_LAYOUT_TAGS = frozenset({"hide-input", "remove-input", "hide-cell", "remove-cell", "hide-output", "show-input",
                          "remove-output"})
"""Cell tags that say how a cell is shown; a cell carrying one is left as its notebook tagged it."""

_GLUE_CALLS = frozenset({"glue", "glue_value"})


def _glue_only(code: str) -> bool:
    """Whether a code cell only imports and glues values (``glue_value(...)`` calls): no science to show."""
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
    for key in _PATH_PARAMETERS:
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
    cell = nbformat.v4.new_code_cell(f"from saesim.report.book import parameters_table as _saesim_parameters_table\n"
                                     f"_saesim_parameters_table(globals(), name={name!r})")
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


def _write_favicon(path: Path) -> None:
    """A 32 × 32 PNG in the heatmaps' magma colours (the site's icon; the browser asks for one)."""
    if path.is_file():
        return
    import numpy as np
    from matplotlib.figure import Figure

    from saesim.io import atomic_path

    fig = Figure(figsize=(1, 1), dpi=32)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(np.add.outer(np.arange(4), np.arange(4)), cmap="magma")
    ax.set_axis_off()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=32)


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


def _fvu_flags(profile, slots, cache) -> str:
    """Which layers of the two slots miss the held-out FVU target, in words (for captions)."""
    from saesim.extract.pipeline import HELDOUT_FVU_TARGET, sae_quality

    quality = sae_quality(profile, out=cache)
    if quality.empty:
        return ""
    flagged = quality[quality["flag"] & quality["slot"].isin(slots)]
    if flagged.empty:
        return ""
    parts = [f"{profile.model(slot).label} layer{'s' if len(group) > 1 else ''} "
             f"{', '.join(str(int(x)) for x in group['layer'])}" for slot, group in flagged.groupby("slot", sort=False)]
    return (f"SAE quality: held-out FVU above {HELDOUT_FVU_TARGET:.2f} at " + "; ".join(parts)
            + " (read those cells with care)")


def scope_note(profile, *, cache_dir=None, slots=None) -> str:
    """A short HTML box: what this profile's comparison can and cannot show, from its own settings and SAEs.

    Names the two models and their SAEs, the controls, the token budget and
    the SAEs' quality (held-out FVU range, training tokens, dead fraction),
    and flags layers above the held-out FVU target. Generated from the
    profile and the cache only, so any profile's book says its own scope.
    """
    import html

    from saesim.config import Profile, load_profile
    from saesim.extract.pipeline import HELDOUT_FVU_TARGET, sae_quality

    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    slots = tuple(slots) if slots is not None else profile.slots
    quality = sae_quality(profile, out=cache_dir)
    same_model = profile.model_a.identity == profile.model_b.identity
    lines = [f"<b>{html.escape(profile.model_a.label)}</b> against <b>{html.escape(profile.model_b.label)}</b>"
             + (" — one model with two SAE sets, so this page measures SAE agreement, not agreement between "
                "language models." if same_model else " — two different pretrained models.")]
    for slot in slots:
        rows = quality[quality["slot"] == slot]
        if rows.empty:
            continue
        spec = profile.model(slot)
        held = rows["fvu_heldout"].dropna()
        fvu = (f"held-out FVU {held.min():.2f}–{held.max():.2f}" if len(held) else
               f"FVU {rows['fvu'].min():.2f}–{rows['fvu'].max():.2f} (on its training rows; none held out)")
        train = int(rows["train_tokens"].max())
        flagged = rows[rows["flag"]]
        flag = (f"; <b>above the {HELDOUT_FVU_TARGET:.2f} target at layer"
                f"{'s' if len(flagged) > 1 else ''} {', '.join(str(int(x)) for x in flagged['layer'])}</b>"
                if len(flagged) else "")
        lines.append(f"{html.escape(spec.label)} ({slot}): {int(rows['n_latents'].iloc[0])} latents, "
                     + (f"trained on {train:,} tokens, " if train else "")
                     + f"{fvu}, dead {100 * rows['dead_fraction'].max():.1f} % at most{flag}.")
    lines.append(f"Text: {profile.data.n_docs} documents of {profile.data.corpus}, at most {profile.data.max_length} "
                 f"tokens each. What it cannot show: anything about models, SAE widths or text beyond these; a "
                 f"score is only as good as its null and its controls (see the controls section and the "
                 f"robustness chapter).")
    items = "".join(f"<li>{line}</li>" for line in lines)
    return (f'<div class="admonition note"><p class="admonition-title">What this comparison can and cannot '
            f'show</p><ul>{items}</ul></div>')
