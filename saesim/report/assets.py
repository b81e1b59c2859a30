"""The book site's own assets: a pinned MathJax 3, plotly.js and the favicon, so that no page loads a CDN."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from saesim.io import atomic_folder, atomic_path

__all__ = [
    "MATHJAX_ENTRY",
    "MATHJAX_INTEGRITY",
    "MATHJAX_VERSION",
    "PLOTLY_FILE",
    "ensure_mathjax",
    "ensure_plotly",
    "write_favicon",
]

PLOTLY_FILE = "plotly.min.js"
"""Name of plotly's JavaScript bundle in the book's ``_static`` folder (the explorer's map loads it there)."""

MATHJAX_VERSION = "3.2.2"
"""The MathJax release served by the book (npm package ``mathjax``)."""

MATHJAX_INTEGRITY = ("sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==")
"""The npm registry's ``dist.integrity`` of ``mathjax@3.2.2``; the tarball is checked against it."""

MATHJAX_ENTRY = "tex-chtml.js"
"""MathJax component loaded by the pages (``mathjax_path`` in ``_config.yml``)."""


# --------------------------------------------------------------------------- plotly.js and MathJax


def ensure_plotly(static_dir) -> Path:
    """Copy plotly's ``plotly.min.js`` (from the installed ``plotly`` package) into ``static_dir``.

    The book serves it from its ``_static`` folder, so the map's page loads
    no script from another host; returns the file's path.
    """
    import plotly

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
    with atomic_folder(target) as tmp, tarfile.open(tarball, "r:gz") as archive:
        members = [m for m in archive.getmembers() if m.name.startswith("package/es5/") and m.isfile()]
        for member in members:
            member.name = member.name[len("package/es5/"):]
        archive.extractall(tmp, members=members, filter="data")
        licence = archive.extractfile("package/LICENSE")
        if licence is not None:
            (tmp / "LICENSE").write_bytes(licence.read())
        (tmp / ".version").write_text(version)
    return entry


def _integrity_ok(path: Path, integrity: str) -> bool:
    algorithm, _, expected = integrity.partition("-")
    digest = hashlib.new(algorithm, Path(path).read_bytes()).digest()
    return base64.b64encode(digest).decode() == expected


# --------------------------------------------------------------------------- favicon


def write_favicon(path: Path) -> None:
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
