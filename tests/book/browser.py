"""A real-browser check of the built site: headless Chromium driven over the DevTools protocol.

:func:`check_site` serves the HTML folder on a local port, opens every page in
Debian's ``chromium`` and reports, per page: images that did not load
(``naturalWidth == 0``), console errors and uncaught exceptions, failed
requests, requests to any other host (a CDN), and internal links whose target
file or ``#fragment`` does not exist. It also measures every table shown on
the page in a :data:`TABLE_WINDOW_PX` wide window against the page's content
column (``PageReport.tables``; ``wide_tables`` lists those wider than the
column, scrolling included). The DevTools websocket is spoken with tornado's
client (already installed with Jupyter), so nothing new is needed.
"""

from __future__ import annotations

import asyncio
import functools
import http.server
import json
import re
import shutil
import socketserver
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio", "--window-size=1400,1000")
PREFIX = "/saesim/"
"""The site is served under this sub-path, as a project page is (``https://<user>.github.io/saesim/``)."""
MIN_IMAGE_PX = 1200
"""Smallest natural width of a figure image (saesim.report.book.MIN_FIGURE_PX)."""
MIN_DISPLAY_PX = 600
"""Smallest displayed width of a figure image in a 1400 px wide window."""
NO_BUILD_LINE = ("index.html", "genindex.html", "search.html")  # the redirect and the generated index and search pages
"""Pages without a body of their own (the root redirect, the generated index): no build line expected."""
TABLE_WINDOW_PX = 1280
"""Window width at which tables are measured against the content column (about 690 px there)."""
PAGE_TIMEOUT = 60.0
SETTLE = 1.5
"""Seconds to wait after the load event (MathJax typesetting, lazy images)."""

_COLLECT = r"""
(() => {
  const imgs = Array.from(document.images).map(i => {
    const figure = i.closest('figure');
    const caption = figure ? figure.querySelector('figcaption') : null;
    const link = i.closest('a');
    return {src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth,
            shown: i.getBoundingClientRect().width, captioned: !!(caption && caption.innerText.trim()),
            link: link ? link.href : null};
  });
  const links = Array.from(document.querySelectorAll('a[href]')).map(a => a.href);
  const math = document.querySelectorAll('.math').length;
  const typeset = document.querySelectorAll('mjx-container').length;
  const code = Array.from(document.querySelectorAll('.cell_input'))
    .filter(el => el.offsetParent !== null && el.getBoundingClientRect().height > 0)
    .map(el => el.innerText);
  const build = Array.from(document.querySelectorAll('.saesim-build')).map(el => el.innerText);
  const results = document.querySelectorAll('#search-results li, ul.search li').length;
  return JSON.stringify({imgs, links, math, typeset, title: document.title, text: document.body.innerText,
                         code, build, results});
})()
"""

_TABLE_WIDTHS = r"""
(() => {
  const column = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  const style = getComputedStyle(column);
  const limit = column.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  const headings = Array.from(column.querySelectorAll('h1, h2, h3'));
  // shown only: not in a closed <details> (content-visibility) nor display: none
  const shown = t => t.checkVisibility ? t.checkVisibility({contentVisibilityAuto: true, visibilityProperty: true})
                                       : t.getClientRects().length > 0;
  const tables = Array.from(column.querySelectorAll('table')).filter(shown);
  return JSON.stringify(tables.map(t => {
    const caption = t.querySelector('caption');
    let name = caption ? caption.innerText.trim() : '';
    if (!name) {
      const before = headings.filter(h => h.compareDocumentPosition(t) & Node.DOCUMENT_POSITION_FOLLOWING);
      const heading = before.length ? before[before.length - 1].innerText.replace(/[#\s]+$/, '').trim() : '';
      name = (t.id ? '#' + t.id + ' ' : '') + (heading ? `(under "${heading}")` : '(no caption)');
    }
    return {name: name.slice(0, 120), scroll: t.scrollWidth, shown: Math.round(t.getBoundingClientRect().width),
            column: Math.round(limit)};
  }));
})()
"""

GLUE_LINE = re.compile(r"^\s*(?:[\w.]+\.)?(?:glue_value|glue_fields|glue)\(.*$|^\s*(?:from\s+\S+\s+)?import\s.*$|^\s*#.*$|^\s*$")


@dataclass
class PageReport:
    path: str
    images: list = field(default_factory=list)
    broken_images: list = field(default_factory=list)
    console_errors: list = field(default_factory=list)
    failed_requests: list = field(default_factory=list)
    external_requests: list = field(default_factory=list)
    broken_links: list = field(default_factory=list)
    math: int = 0
    typeset: int = 0
    uncaptioned_images: list = field(default_factory=list)
    duplicate_images: list = field(default_factory=list)
    small_images: list = field(default_factory=list)
    unlinked_images: list = field(default_factory=list)
    machine_paths: list = field(default_factory=list)
    glue_only_cells: list = field(default_factory=list)
    missing_build_line: list = field(default_factory=list)
    broken_downloads: list = field(default_factory=list)
    search_results: int = -1
    tables: list = field(default_factory=list)
    text: str = field(default="", repr=False)

    @property
    def wide_tables(self) -> list[str]:
        """Tables wider than the content column at :data:`TABLE_WINDOW_PX` (their ``scrollWidth``: a table
        that scrolls sideways counts), as ``"page: caption (table N px, column M px)"``."""
        return [f"{self.path}: {t['name']!r} (table {t['scroll']} px, shown {t['shown']} px, column {t['column']} px)"
                for t in self.tables if t["scroll"] > t["column"] + 1]

    @property
    def problems(self) -> list[str]:
        out = []
        for name in ("broken_images", "console_errors", "failed_requests", "external_requests", "broken_links",
                     "uncaptioned_images", "duplicate_images", "small_images", "unlinked_images", "machine_paths",
                     "glue_only_cells", "missing_build_line", "broken_downloads"):
            out += [f"{self.path}: {name}: {item}" for item in getattr(self, name)]
        if self.math and not self.typeset:
            out.append(f"{self.path}: {self.math} math elements but MathJax typeset none")
        return out


def chromium_available() -> bool:
    return Path(CHROMIUM).is_file() or shutil.which("chromium") is not None


def pages(html_dir) -> list[str]:
    html_dir = Path(html_dir)
    skip = ("_static", "_sources", "_images", "_downloads", "reports")
    return sorted(str(p.relative_to(html_dir)) for p in html_dir.rglob("*.html")
                  if not p.relative_to(html_dir).parts[0] in skip and not p.name.startswith("."))


def check_site(html_dir, *, only=None, search: str | None = "svcca", machine_paths=()) -> list[PageReport]:
    """Open every page of ``html_dir``, served under :data:`PREFIX`, in headless Chromium; one report each.

    With ``search``, the site's search page is also opened with that query
    (``search.html?q=...``) and its report's ``search_results`` counts the hits.
    ``machine_paths`` (the checkout, the cache, the build folder) must not
    appear in any page's visible text.
    """
    html_dir = Path(html_dir).resolve()
    targets = list(only or pages(html_dir))
    if search and (html_dir / "search.html").is_file():
        targets.append(f"search.html?q={urllib.parse.quote(search)}")
    with _serve(html_dir) as base, _chromium() as port:
        reports = asyncio.run(_check_all(base, port, html_dir, targets))
    for report in reports:
        report.machine_paths = sorted({p for p in machine_paths if p and p in report.text})
        report.text = ""
    return reports


# --------------------------------------------------------------------------- serving


class _Quiet(http.server.SimpleHTTPRequestHandler):
    """Serves the site under :data:`PREFIX` only; any other path is a 404, as on a project page."""

    def log_message(self, *args):  # noqa: D401 - silence the access log
        pass

    def translate_path(self, path):
        parsed = urllib.parse.urlparse(path).path
        if not parsed.startswith(PREFIX):
            return str(Path(self.directory) / ".no-such-file")
        return super().translate_path("/" + path[len(PREFIX):])


class _serve:
    def __init__(self, root: Path):
        self.root = root

    def __enter__(self) -> str:
        handler = functools.partial(_Quiet, directory=str(self.root))
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}{PREFIX}"

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class _chromium:
    def __enter__(self) -> int:
        self.profile = tempfile.mkdtemp(prefix="saesim-chromium-")
        binary = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
        self.proc = subprocess.Popen([binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}",
                                      "--remote-debugging-port=0", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        active = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if active.is_file() and active.read_text().strip():
                return int(active.read_text().splitlines()[0])
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode} before opening DevTools")
            time.sleep(0.1)
        raise RuntimeError("chromium did not open its DevTools port within 30 s")

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


# --------------------------------------------------------------------------- DevTools


class _Cdp:
    def __init__(self, conn):
        self.conn = conn
        self.next_id = 0
        self.events: list[dict] = []

    async def call(self, method: str, **params):
        self.next_id += 1
        ident = self.next_id
        await self.conn.write_message(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            raw = await asyncio.wait_for(self.conn.read_message(), PAGE_TIMEOUT)
            if raw is None:
                raise RuntimeError("DevTools connection closed")
            message = json.loads(raw)
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    async def wait_event(self, name: str, timeout: float):
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event.get("method") == name:
                    return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {name} within {timeout} s")
            try:
                raw = await asyncio.wait_for(self.conn.read_message(), remaining)
            except asyncio.TimeoutError:
                continue
            if raw is None:
                raise RuntimeError("DevTools connection closed")
            self.events.append(json.loads(raw))

    async def drain(self, seconds: float):
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                raw = await asyncio.wait_for(self.conn.read_message(), remaining)
            except asyncio.TimeoutError:
                return
            if raw is None:
                return
            self.events.append(json.loads(raw))


async def _check_all(base: str, port: int, html_dir: Path, targets) -> list[PageReport]:
    from tornado.websocket import websocket_connect

    reports = []
    for rel in targets:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?about:blank", method="PUT")
        with urllib.request.urlopen(request, timeout=30) as response:
            target = json.loads(response.read())
        conn = await websocket_connect(target["webSocketDebuggerUrl"], max_message_size=64 * 1024 * 1024)
        cdp = _Cdp(conn)
        try:
            for domain in ("Page", "Runtime", "Log", "Network"):
                await cdp.call(f"{domain}.enable")
            url = urllib.parse.urljoin(base, urllib.parse.quote(rel, safe="/?=&"))
            await cdp.call("Page.navigate", url=url)
            await cdp.wait_event("Page.loadEventFired", PAGE_TIMEOUT)
            await cdp.drain(SETTLE)
            result = await cdp.call("Runtime.evaluate", expression=_COLLECT, returnByValue=True)
            info = json.loads(result["result"]["value"])
            info["tables"] = await _measure_tables(cdp)
        finally:
            conn.close()
            urllib.request.urlopen(f"http://127.0.0.1:{port}/json/close/{target['id']}", timeout=10).close()
        reports.append(_report(rel, base, html_dir, cdp.events, info))
    return reports


async def _measure_tables(cdp) -> list[dict]:
    """Every shown table's width against the content column, in a :data:`TABLE_WINDOW_PX` wide window."""
    await cdp.call("Emulation.setDeviceMetricsOverride", width=TABLE_WINDOW_PX, height=1000, deviceScaleFactor=1,
                   mobile=False)
    await cdp.drain(0.5)  # the layout settles (DataTables redraws on resize)
    result = await cdp.call("Runtime.evaluate", expression=_TABLE_WIDTHS, returnByValue=True)
    await cdp.call("Emulation.clearDeviceMetricsOverride")
    return json.loads(result["result"]["value"])


def _report(rel, base, html_dir, events, info) -> PageReport:
    report = PageReport(path=rel, images=[i["src"] for i in info["imgs"]], math=info["math"], typeset=info["typeset"],
                        tables=info.get("tables", []))
    report.broken_images = [i["src"] for i in info["imgs"] if not i["ok"]]
    host = urllib.parse.urlparse(base).netloc
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            report.console_errors.append(" ".join(str(a.get("value", a.get("description", "")))
                                                  for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            report.console_errors.append(details.get("exception", {}).get("description") or details.get("text"))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            # The browser asks the host root for /favicon.ico by itself (outside the site's sub-path,
            # as on any project page); the site links no favicon, so that 404 is not the site's.
            if urllib.parse.urlparse(entry.get("url", "")).path != "/favicon.ico":
                report.console_errors.append(f"{entry.get('text')} ({entry.get('url', '')})")
        elif method == "Network.requestWillBeSent":
            url = params.get("request", {}).get("url", "")
            parsed = urllib.parse.urlparse(url)
            if parsed.scheme in ("http", "https", "ws", "wss") and parsed.netloc != host:
                report.external_requests.append(url)
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            report.failed_requests.append(f"{params.get('errorText')} ({params.get('type')})")
    report.broken_links = _broken_links(info["links"], base, html_dir)
    if rel.startswith("search.html?q="):  # the plain search page (no query) lists nothing
        report.search_results = int(info["results"])
        if report.search_results < 1:
            report.console_errors.append(f"the search for {rel.split('q=', 1)[-1]!r} found nothing")
        return report
    seen = set()
    for image in info["imgs"]:
        src = image["src"]
        if not image["captioned"]:
            report.uncaptioned_images.append(src)
        if src in seen:
            report.duplicate_images.append(src)
        seen.add(src)
        if image["ok"] and (image["w"] < MIN_IMAGE_PX or image["shown"] < MIN_DISPLAY_PX):
            report.small_images.append(f"{src} ({image['w']} px, shown at {image['shown']:.0f} px)")
        if not image["link"]:
            report.unlinked_images.append(src)
    report.text = info["text"]
    for code in info["code"]:
        lines = [line for line in code.splitlines() if line.strip()]
        if lines and all(GLUE_LINE.match(line) for line in lines) and any("glue" in line for line in lines):
            report.glue_only_cells.append(lines[0][:80])
    build = " ".join(info["build"])
    if rel not in NO_BUILD_LINE and ("saesim" not in build or "commit" not in build):
        report.missing_build_line.append("no saesim version and commit on the page")
    report.broken_downloads = _broken_downloads(info["links"], base)
    return report


def _broken_downloads(links, base) -> list[str]:
    """Download links (``_downloads/``) that do not answer 200 over HTTP under the sub-path."""
    broken = []
    for link in dict.fromkeys(links):
        if not link.startswith(base) or "/_downloads/" not in link:
            continue
        try:
            with urllib.request.urlopen(link, timeout=30) as response:
                if response.status != 200 or not response.read(1):
                    broken.append(f"{link} ({response.status})")
        except OSError as exc:
            broken.append(f"{link} ({exc})")
    return broken


@functools.lru_cache(maxsize=None)
def _ids(path: str) -> frozenset:
    text = Path(path).read_text(errors="replace")
    return frozenset(re.findall(r'\bid="([^"]+)"', text))


def _broken_links(links, base, html_dir: Path) -> list[str]:
    broken = []
    for link in dict.fromkeys(links):
        if not link.startswith(base):
            continue  # external links are not followed (offline); requests to them are caught above
        parsed = urllib.parse.urlparse(link)
        rel = urllib.parse.unquote(parsed.path[len(urllib.parse.urlparse(base).path):])
        target = html_dir / rel
        if rel == "" or rel.endswith("/"):
            target = target / "index.html"
        if not target.is_file():
            broken.append(f"{link} (no file {target.relative_to(html_dir)})")
            continue
        if parsed.fragment and target.suffix == ".html" and \
                urllib.parse.unquote(parsed.fragment) not in _ids(str(target)):
            broken.append(f"{link} (no id #{parsed.fragment})")
    return broken


_TABLE_STATE = r"""
(() => {
  const info = document.querySelector('#pairs-table_wrapper .dt-info, .dt-container .dt-info');
  const rows = document.querySelectorAll('#pairs-table tbody tr').length;
  return JSON.stringify({info: info ? info.textContent : null, rows});
})()
"""

_FIRST_TOKEN = r"""
(() => {
  const heads = Array.from(document.querySelectorAll('#pairs-table thead th')).map(th => th.textContent.trim());
  const col = heads.indexOf('B top tokens');
  const cell = document.querySelector(`#pairs-table tbody tr td:nth-child(${col + 1})`);
  const m = cell ? cell.textContent.match(/'([^']+)'/) : null;
  return m ? m[1] : '';
})()
"""

_SEARCH = r"""
((token) => {
  const input = document.querySelector('.dt-container .dt-search input');
  input.value = token;
  input.dispatchEvent(new Event('input', {bubbles: true}));
  input.dispatchEvent(new KeyboardEvent('keyup', {bubbles: true}));
  return true;
})(%s)
"""

_POINT = r"""
(() => {
  const pts = document.querySelectorAll('#decoder-map .scatterlayer .trace:last-child path.point');
  if (!pts.length) return JSON.stringify(null);
  const p = pts[Math.floor(pts.length / 2)];
  p.scrollIntoView({block: 'center'});
  const r = p.getBoundingClientRect();
  return JSON.stringify({x: r.left + r.width / 2, y: r.top + r.height / 2, n: pts.length});
})()
"""

_HOVER_TEXT = r"""
(() => { const h = document.querySelector('#decoder-map .hoverlayer .hovertext');
         return h ? h.textContent : ''; })()
"""


@dataclass
class ExplorerReport:
    """What the explorer page did in the browser (see :func:`check_explorer`)."""

    load_seconds: float
    token: str
    info_before: str
    info_after: str
    rows_before: int
    rows_after: int
    hover_text: str
    page: PageReport


def check_explorer(html_dir, page: str = "book/generated/explorer.html") -> ExplorerReport:
    """Open the explorer page: time its load, search the table for a token, hover a map point."""
    html_dir = Path(html_dir).resolve()
    with _serve(html_dir) as base, _chromium() as port:
        return asyncio.run(_explorer(base, port, html_dir, page))


async def _explorer(base: str, port: int, html_dir: Path, rel: str) -> ExplorerReport:
    from tornado.websocket import websocket_connect

    request = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?about:blank", method="PUT")
    with urllib.request.urlopen(request, timeout=30) as response:
        target = json.loads(response.read())
    conn = await websocket_connect(target["webSocketDebuggerUrl"], max_message_size=64 * 1024 * 1024)
    cdp = _Cdp(conn)

    async def value(expression):
        result = await cdp.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    try:
        for domain in ("Page", "Runtime", "Log", "Network"):
            await cdp.call(f"{domain}.enable")
        await cdp.call("Emulation.setDeviceMetricsOverride", width=1400, height=1000, deviceScaleFactor=1,
                       mobile=False)
        started = time.monotonic()
        await cdp.call("Page.navigate", url=urllib.parse.urljoin(base, urllib.parse.quote(rel)))
        await cdp.wait_event("Page.loadEventFired", PAGE_TIMEOUT)
        load_seconds = time.monotonic() - started
        await cdp.drain(SETTLE)
        before = json.loads(await value(_TABLE_STATE))
        token = await value(_FIRST_TOKEN)
        await value(_SEARCH % json.dumps(token))
        await cdp.drain(1.0)
        after = json.loads(await value(_TABLE_STATE))
        point = json.loads(await value(_POINT))
        hover = ""
        if point:
            await cdp.drain(0.5)
            point = json.loads(await value(_POINT))
            for dx in (0, 1, -1):
                await cdp.call("Input.dispatchMouseEvent", type="mouseMoved", x=point["x"] + dx, y=point["y"])
                await cdp.drain(0.5)
                hover = await value(_HOVER_TEXT)
                if hover:
                    break
        info = json.loads(await value(_COLLECT))
    finally:
        conn.close()
        urllib.request.urlopen(f"http://127.0.0.1:{port}/json/close/{target['id']}", timeout=10).close()
    return ExplorerReport(load_seconds=load_seconds, token=token, info_before=before["info"] or "",
                          info_after=after["info"] or "", rows_before=before["rows"], rows_after=after["rows"],
                          hover_text=hover, page=_report(rel, base, html_dir, cdp.events, info))


if __name__ == "__main__":  # pragma: no cover - manual use: python tests/book/browser.py _build/html
    import sys

    problems = []
    for page in check_site(sys.argv[1] if len(sys.argv) > 1 else "_build/html"):
        print(f"{page.path}: {len(page.images)} images, math {page.math}/{page.typeset}, "
              f"{len(page.problems)} problems")
        problems += page.problems
    print("\n".join(problems) or "no problems")
    sys.exit(1 if problems else 0)
