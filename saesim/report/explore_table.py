"""The explorer's pair table: every choosing latent of a layer pair with its partner, contexts and filter stage.

:func:`pair_table` builds it (one row per choosing latent: its partner, r
and its rank, both latents' top tokens and context windows, activation
frequencies, which filter stage kept or dropped the pair and why, concept
membership, Neuronpedia links where the SAEs have pages) and
:func:`show_table` displays it as an offline DataTable (``itables``, the
bundle inlined in the page; no CDN).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from saesim.compare.match import pair
from saesim.report._explorer import DEFAULT_MAX_ROWS, validate_positive_int
from saesim.validation import check_same_rows

__all__ = ["CLIPPED", "NEURONPEDIA", "STAGES", "TABLE_COLUMNS", "PairTable", "neuronpedia_id", "neuronpedia_url",
           "pair_table", "show_table", "table_options", "table_view"]

STAGES: tuple[str, ...] = ("kept", "junk/overlap", "1-1", "r cut", "no partner")
"""The outcome of each row of :func:`pair_table`, in the paper's order of filters."""

NEURONPEDIA = "https://www.neuronpedia.org"
"""Neuronpedia's site; a latent's page is ``<NEURONPEDIA>/<model>/<sae>/<index>``."""


@dataclass(frozen=True, eq=False)
class PairTable:
    """One layer pair's pairs, one row per choosing latent (see :func:`pair_table`).

    Attributes
    ----------
    frame : pandas.DataFrame
        The rows kept (the ``max_rows`` highest r), sorted by r, highest first.
    n_rows : int
        Rows before truncation (one per choosing latent).
    stage_counts : dict of str to int
        Rows per outcome (:data:`STAGES`) before truncation.
    rule, direction : str
    r_min : float
    layer_a, layer_b : int
    """

    frame: object
    n_rows: int
    stage_counts: dict
    rule: str
    direction: str
    r_min: float
    layer_a: int
    layer_b: int

    @property
    def n_left_out(self) -> int:
        """Rows left out of :attr:`frame` by ``max_rows``."""
        return self.n_rows - len(self.frame)

    def row(self) -> dict:
        """Counts for one tidy-table row."""
        return {"layer_a": self.layer_a, "layer_b": self.layer_b, "rule": self.rule, "direction": self.direction,
                "r_min": self.r_min, "n_rows": self.n_rows, "n_shown": len(self.frame),
                **{f"n_{k.replace('/', '_').replace(' ', '_').replace('-', 'to')}": v
                   for k, v in self.stage_counts.items()}}


def pair_table(layer_a, layer_b, settings, *, best=None, max_rows: int | None = DEFAULT_MAX_ROWS, k: int = 5,
               n_windows: int = 3, concepts: dict | None = None, neuronpedia_a: str | None = None,
               neuronpedia_b: str | None = None) -> PairTable:
    """Every choosing latent of a layer pair with its partner, its contexts and its fate in the filters.

    Parameters
    ----------
    layer_a, layer_b : saesim.compare.filters.SaeLayer
        The two layers (``load_layer(...).to_sae_layer()``).
    settings : saesim.experiments.grid.CompareSettings
        Its first rule and direction, r cut and filters are used.
    best : saesim.compare.corr.BestPartners, optional
        Best partners of the two layers if already computed
        (:func:`saesim.experiments.grid.cached_best_partners`).
    max_rows : int or None, default 2000
        Rows kept, the highest r first; None keeps all.
    k : int, default 5
        Top tokens shown per latent.
    n_windows : int, default 3
        Context windows shown per latent.
    concepts : dict of str to keywords, optional
        Default: the paper's eight concepts and the control list.
    neuronpedia_a, neuronpedia_b : str, optional
        Neuronpedia ids of the two SAEs (:func:`neuronpedia_id`); when given,
        a column with a link to each latent's page.

    Returns
    -------
    PairTable
        Columns: ``A latent``, ``B latent``, ``r``, ``r rank`` (1 = highest
        of all rows), ``stage`` (one of :data:`STAGES`), ``why``, ``A top
        tokens``, ``B top tokens``, ``A contexts``, ``B contexts``, ``A
        freq``, ``B freq`` (fraction of tokens where the latent fires), ``A
        concepts``, ``B concepts``, and ``links`` when Neuronpedia ids are
        given.

    Raises
    ------
    ValueError
        ``max_rows``, ``k`` or ``n_windows`` not a positive integer; layers
        on different token rows.

    Notes
    -----
    The stages are those of :func:`saesim.experiments.grid.compare_best`: for
    ``many_to_one``, ``first_index`` and ``max_corr`` each chooser's best
    partner goes through the junk/overlap filter, then the 1-1 rule, then
    the r cut; ``mutual`` and ``hungarian`` pair first (a chooser they leave
    out is dropped at "1-1" and shown with its best partner), then the junk
    filter and the r cut. A chooser without a positive correlation (a dead
    latent) is "no partner".
    """
    import pandas as pd

    from saesim.compare.concepts import concept_members
    from saesim.compare.corr import quiet_best_partners
    from saesim.compare.filters import junk_overlap_mask
    from saesim.compare.stages import PAIR_FIRST_RULES, filter_stages
    from saesim.extract.tokens import activation_frequency

    for name, value in (("k", k), ("n_windows", n_windows)):
        validate_positive_int(value, name)
    if max_rows is not None:
        validate_positive_int(max_rows, "max_rows")
    check_same_rows(layer_a.codes, layer_b.codes, name_a="layer_a.codes", name_b="layer_b.codes")
    rule, direction = settings.rules[0], settings.directions[0]
    if best is None:
        best = quiet_best_partners(layer_a.codes, layer_b.codes, compat=settings.compat)
    work = best.reversed() if direction == "a_to_b" else best
    stages = filter_stages(best, layer_a, layer_b, settings, rule=rule, direction=direction)
    final = stages.final
    # Every chooser with its best partner: the stages' candidates, except for the rules that pair first.
    every = pair(best, rule="many_to_one", r_min=-np.inf, direction=direction) if rule in PAIR_FIRST_RULES \
        else stages.candidates
    b_side = direction == "b_to_a"
    chooser_of = (lambda p: p.b) if b_side else (lambda p: p.a)  # noqa: E731
    target_of = (lambda p: p.a) if b_side else (lambda p: p.b)  # noqa: E731

    # Per-latent junk verdicts (a latent against itself, no overlap), to say why a pair failed.
    if settings.junk_filter:
        top_a, top_b = layer_a.top_k(settings.top_k), layer_b.top_k(settings.top_k)
        opts = dict(compat=settings.compat, junk_list=settings.junk_list,
                    special_ids=set(layer_a.special_ids) | set(layer_b.special_ids), min_active=settings.min_active)
        ia, ib = np.arange(top_a.n_latents), np.arange(top_b.n_latents)
        bad_a = ~junk_overlap_mask(ia, ia, top_a, top_a, require_overlap=False, **opts)
        bad_b = ~junk_overlap_mask(ib, ib, top_b, top_b, require_overlap=False, **opts)

        def junk_why(a, b):
            reasons = []
            if bad_a[a]:
                reasons.append(f"A {a} is non-concept (a junk top token or < {settings.min_active} firing)")
            if bad_b[b]:
                reasons.append(f"B {b} is non-concept (a junk top token or < {settings.min_active} firing)")
            return "; ".join(reasons) or f"no shared top-{settings.top_k} token"
    else:
        def junk_why(a, b):  # pragma: no cover - the junk filter is off, so it never fails
            return ""

    n_choosers = work.n_b
    partner_a = np.full(n_choosers, -1, np.int64)
    partner_b = np.full(n_choosers, -1, np.int64)
    r = np.full(n_choosers, np.nan)
    stage = np.empty(n_choosers, dtype=object)
    why = np.empty(n_choosers, dtype=object)
    stage[:], why[:] = "no partner", "never fires, or no positive correlation"
    ch = chooser_of(every)
    partner_a[ch], partner_b[ch], r[ch] = every.a, every.b, every.r
    kept_keys = set(zip(final.a.tolist(), final.b.tolist()))
    if rule in PAIR_FIRST_RULES:
        paired, ok = stages.candidates, stages.junk_ok
        in_rule = np.zeros(n_choosers, dtype=bool)
        ch = chooser_of(paired)
        in_rule[ch] = True
        partner_a[ch], partner_b[ch], r[ch] = paired.a, paired.b, paired.r
        for c, a, b, rr, good in zip(ch.tolist(), paired.a.tolist(), paired.b.tolist(), paired.r.tolist(),
                                     ok.tolist()):
            if (a, b) in kept_keys:
                stage[c], why[c] = "kept", ""
            elif not good:
                stage[c], why[c] = "junk/overlap", junk_why(a, b)
            else:
                stage[c], why[c] = "r cut", f"r = {rr:.3f} <= {settings.r_min:g}"
        for c in chooser_of(every).tolist():
            if not in_rule[c]:
                t = partner_a[c] if b_side else partner_b[c]
                stage[c] = "1-1"
                if rule == "mutual":
                    back = int(best.index_a[t]) if b_side else int(best.index[t])
                    why[c] = f"not mutual: {'A' if b_side else 'B'} {t}'s best partner is {'B' if b_side else 'A'} {back}"
                else:
                    why[c] = f"left unmatched by the optimal assignment (r > {settings.r_min:g} candidates)"
    else:
        ok, after_dedup = stages.junk_ok, stages.after_1to1
        dedup_keys = set(zip(after_dedup.a.tolist(), after_dedup.b.tolist()))
        winner = dict(zip(target_of(after_dedup).tolist(), chooser_of(after_dedup).tolist()))
        for c, a, b, rr, good in zip(chooser_of(every).tolist(), every.a.tolist(), every.b.tolist(),
                                     every.r.tolist(), ok.tolist()):
            t = a if b_side else b
            if (a, b) in kept_keys:
                stage[c], why[c] = "kept", ""
            elif not good:
                stage[c], why[c] = "junk/overlap", junk_why(a, b)
            elif (a, b) not in dedup_keys:
                w = winner.get(t)
                side_t, side_c = ("A", "B") if b_side else ("B", "A")
                stage[c], why[c] = "1-1", f"{side_t} {t} kept for {side_c} {w} ({rule})"
            else:
                stage[c], why[c] = "r cut", f"r = {rr:.3f} <= {settings.r_min:g}"

    freq_a, freq_b = activation_frequency(layer_a.codes), activation_frequency(layer_b.codes)
    concepts_a = _concept_labels(concept_members(layer_a.top, layer_a.windows, compat=settings.compat,
                                                 concepts=concepts), layer_a.top.n_latents)
    concepts_b = _concept_labels(concept_members(layer_b.top, layer_b.windows, compat=settings.compat,
                                                 concepts=concepts), layer_b.top.n_latents)
    frame = pd.DataFrame({
        "A latent": partner_a if b_side else np.arange(n_choosers),
        "B latent": np.arange(n_choosers) if b_side else partner_b,
        "r": r,
    })
    frame["r rank"] = frame["r"].rank(ascending=False, method="min").astype("Int64")
    frame["stage"] = stage
    frame["why"] = why

    def text(layer, idx, fn):
        return [fn(layer, int(i)) if i >= 0 else "" for i in idx]

    frame["A top tokens"] = text(layer_a, frame["A latent"], lambda L, i: _top_tokens(L, i, k))
    frame["B top tokens"] = text(layer_b, frame["B latent"], lambda L, i: _top_tokens(L, i, k))
    frame["A contexts"] = text(layer_a, frame["A latent"], lambda L, i: _contexts(L, i, n_windows))
    frame["B contexts"] = text(layer_b, frame["B latent"], lambda L, i: _contexts(L, i, n_windows))
    frame["A freq"] = [float(freq_a[i]) if i >= 0 else np.nan for i in frame["A latent"]]
    frame["B freq"] = [float(freq_b[i]) if i >= 0 else np.nan for i in frame["B latent"]]
    frame["A concepts"] = [concepts_a[i] if i >= 0 else "" for i in frame["A latent"]]
    frame["B concepts"] = [concepts_b[i] if i >= 0 else "" for i in frame["B latent"]]
    if neuronpedia_a or neuronpedia_b:
        frame["links"] = [" ".join(x for x in (
            _link(neuronpedia_a, a, "A") if a >= 0 else "", _link(neuronpedia_b, b, "B") if b >= 0 else "") if x)
            for a, b in zip(frame["A latent"], frame["B latent"])]
    counts = {s: int((frame["stage"] == s).sum()) for s in STAGES}
    frame = frame.sort_values(["r", "B latent" if b_side else "A latent"], ascending=[False, True],
                              na_position="last", kind="stable")
    n_rows = len(frame)
    if max_rows is not None:
        frame = frame.head(int(max_rows))
    frame = frame.reset_index(drop=True)
    return PairTable(frame=frame, n_rows=n_rows, stage_counts=counts, rule=rule, direction=direction,
                     r_min=float(settings.r_min), layer_a=int(layer_a.layer), layer_b=int(layer_b.layer))


def _top_tokens(layer, latent: int, k: int) -> str:
    tokens = [repr(t) for t, on in zip(layer.top.strings[latent][:k], layer.top.active[latent][:k]) if on]
    return " ".join(tokens) if tokens else "(never fires)"


def _contexts(layer, latent: int, n: int) -> str:
    windows = [str(w).strip() for w, on in zip(layer.windows[latent], layer.top.active[latent]) if on][:n]
    return " | ".join(windows)


def _concept_labels(members: dict, n_latents: int) -> list[str]:
    labels = [[] for _ in range(n_latents)]
    for name, idx in members.items():
        for i in idx.tolist():
            labels[i].append(name)
    return [", ".join(x) for x in labels]


def _link(np_id: str | None, latent: int, side: str) -> str:
    url = neuronpedia_url(np_id, int(latent))
    return f'<a href="{url}" target="_blank" rel="noopener">{side} {int(latent)}</a>' if url else ""


# --------------------------------------------------------------------------- Neuronpedia


def neuronpedia_id(profile, slot: str, layer: int) -> str | None:
    """The Neuronpedia id of one SAE of a profile (``"gemma-2b/6-res-jb"``), or None when it has no page.

    Only SAELens releases carry one: the id is read from the ``neuronpedia``
    field of the release's entry in SAELens's registry
    (``sae_lens/pretrained_saes.yaml``, installed with ``sae-lens``).
    Locally trained or locally saved SAEs (the offline and tiny profiles)
    and sparsify SAEs get None, so the book shows no dead links.
    """
    import importlib.util

    import yaml

    spec = profile.model(slot)
    sae = spec.sae
    if sae.source != "saelens" or not sae.location or "/" in sae.location or Path(sae.location).exists():
        return None
    found = importlib.util.find_spec("sae_lens")  # located, not imported (importing sae_lens takes seconds)
    registry = Path(next(iter(found.submodule_search_locations))) / "pretrained_saes.yaml" if found else None
    if registry is None or not registry.is_file():  # pragma: no cover - sae-lens is a requirement
        return None
    text = registry.read_text()
    head = f"\n{sae.location}:\n"
    start = text.find(head)
    if start < 0:
        return None
    end = text.find("\n", start + len(head))
    while end >= 0 and end + 1 < len(text) and text[end + 1] in " \t#\n":
        end = text.find("\n", end + 1)
    block = yaml.safe_load(text[start:end if end >= 0 else None])[sae.location]
    wanted = sae.sae_id.format(layer=int(layer))
    for entry in block.get("saes", []):
        if entry.get("id") == wanted and entry.get("neuronpedia"):
            return str(entry["neuronpedia"])
    return None


def neuronpedia_url(np_id: str | None, latent: int) -> str | None:
    """``https://www.neuronpedia.org/<np_id>/<latent>``, or None without an id."""
    if not np_id:
        return None
    return f"{NEURONPEDIA}/{np_id}/{int(latent)}"


# --------------------------------------------------------------------------- the interactive table

TABLE_COLUMNS: tuple[str, ...] = ("A latent", "B latent", "r", "A top tokens", "B top tokens", "stage")
"""Columns of :func:`pair_table` that :func:`show_table` shows by default, in this order (the stage
cell also shows ``why``); the others stay in the page behind its "Columns" button and in its CSV."""

R_DECIMALS = 3
"""Decimals of r (and of any other float column) in the displayed table."""

CLIPPED: tuple[str, ...] = ("why", "A top tokens", "B top tokens", "A contexts", "B contexts", "A concepts",
                            "B concepts")
"""Long-text columns: wrapped, cut after :data:`CLIP_LINES` lines with an ellipsis, the full text on hover."""

CLIP_LINES = 3

COLUMN_WIDTHS: dict[str, str] = {"A latent": "9%", "B latent": "9%", "r": "8%", "A top tokens": "24%",
                                 "B top tokens": "24%", "stage": "26%"}
"""Widths of the columns shown by default, shares of the page's column."""

_PERCENT_COLUMNS = ("A freq", "B freq")  # fractions of tokens, shown in % (their headers say so)
_LATENT_COLUMNS = ("A latent", "B latent")  # -1: no partner, shown blank

_CLIP_RENDER = (
    "function (data, type, row, meta) { if (type !== 'display' || data === null || data === '') return data; "
    "var s = String(data); return '<div class=\"saesim-clip\" title=\"' + s.replace(/\"/g, '&quot;') + '\">' + s "
    "+ '</div>'; }")
_STAGE_RENDER = (
    "function (data, type, row, meta) {{ if (type !== 'display') return data; var why = {why}; "
    "if (why === null || why === undefined || why === '') return '<b>' + data + '</b>'; var s = String(why); "
    "return '<div class=\"saesim-clip\" title=\"' + s.replace(/\"/g, '&quot;') + '\"><b>' + data + "
    "'</b> <span class=\"saesim-why\">' + s + '</span></div>'; }}")


def table_view(frame, *, columns=None):
    """The table :func:`show_table` displays: the shown columns first, numbers rounded, headers from the vocabulary.

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`pair_table`'s ``frame`` (or any table).
    columns : sequence of str, optional
        Columns shown by default, in order. Default: :data:`TABLE_COLUMNS`
        that ``frame`` has, or every column when it has none of them.

    Returns
    -------
    view : pandas.DataFrame
        The shown columns, then the others in ``frame``'s order, renamed by
        :func:`saesim.vocab.column_label` (a column it does not know keeps
        its name). r and other floats have :data:`R_DECIMALS` decimals,
        firing rates are in % with three significant digits, a missing value
        or a missing partner (latent -1) is blank.
    n_shown : int
        The first ``n_shown`` columns of ``view`` are shown; the rest start hidden.

    Raises
    ------
    ValueError
        A column of ``columns`` that ``frame`` lacks.
    """
    import pandas as pd

    from saesim import vocab

    order, n_shown = _column_order(frame, columns)
    view = pd.DataFrame(index=frame.index)
    for name in order:
        view[vocab.column_label(name, default=name)] = _display_column(name, frame[name])
    return view.reset_index(drop=True), n_shown


def _column_order(frame, columns) -> tuple[list, int]:
    """``frame``'s columns, the shown ones first, and how many are shown."""
    if columns is None:
        columns = [c for c in TABLE_COLUMNS if c in frame.columns] or list(frame.columns)
    columns = list(columns)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"`columns` names {missing}, which the table lacks; it has {list(frame.columns)}.")
    return columns + [c for c in frame.columns if c not in columns], len(columns)


def _display_column(name: str, values) -> list:
    from saesim.report.frames import format_cell

    if name in _LATENT_COLUMNS:
        return ["" if _missing(v) or int(v) < 0 else str(int(v)) for v in values]
    if name in _PERCENT_COLUMNS:
        return ["" if _missing(v) else _significant(100 * float(v)) for v in values]
    if values.dtype.kind == "f":
        return [format_cell(float(v), f".{R_DECIMALS}f") for v in values]
    if values.dtype.kind in "iu" or str(values.dtype) in ("Int64", "Int32"):
        return ["" if _missing(v) else str(int(v)) for v in values]
    return ["" if _missing(v) else v for v in values]


def _missing(value) -> bool:
    import pandas as pd

    return value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and not np.isfinite(value))


def _significant(x: float, digits: int = 3) -> str:
    """``x`` with ``digits`` significant digits, never in exponent form (``0.00156``, ``12.3``, ``0``)."""
    if x == 0:
        return "0"
    return np.format_float_positional(x, precision=digits, unique=False, fractional=False, trim="-")


def table_options(columns, n_shown: int, *, table_id: str) -> dict:
    """The DataTables options of :func:`show_table` for a :func:`table_view` with ``columns`` (its original names).

    The first ``n_shown`` columns visible, the rest hidden (a "Columns"
    button shows them; "Download CSV" saves every column of the rows that
    match the search). Long-text columns (:data:`CLIPPED`) are cut after
    :data:`CLIP_LINES` lines with their full text on hover; the stage cell
    adds the reason (``why``). No horizontal scrolling: the table is as
    wide as the page's column, its cells wrap.
    """
    columns = list(columns)
    defs = []
    hidden = list(range(n_shown, len(columns)))
    if hidden:
        defs.append({"targets": hidden, "visible": False})
    clipped = [i for i, c in enumerate(columns) if c in CLIPPED]
    if clipped:
        defs.append({"targets": clipped, "render": _js_function(_CLIP_RENDER)})
    for i, c in enumerate(columns[:n_shown]):
        if c in COLUMN_WIDTHS:
            defs.append({"targets": [i], "width": COLUMN_WIDTHS[c]})
    if "stage" in columns:
        why = f"row[{columns.index('why')}]" if "why" in columns else "null"
        defs.append({"targets": [columns.index("stage")], "render": _js_function(_STAGE_RENDER.format(why=why))})
    return {
        "columnDefs": defs,
        "autoWidth": False,
        "classes": "display compact saesim-explorer",
        "style": {"width": "100%", "margin": "0", "table-layout": "auto", "caption-side": "top"},
        "css": _table_css(table_id),
        "buttons": [{"extend": "colvis", "text": "Columns", "postfixButtons": ["colvisRestore"]},
                    {"extend": "csvHtml5", "text": "Download CSV", "filename": table_id,
                     "exportOptions": {"orthogonal": "export"}}],
        "layout": {"top2Start": "buttons", "topStart": "pageLength", "topEnd": "search", "bottomStart": "info",
                   "bottomEnd": "paging"},
    }


def _js_function(code: str):
    from itables import JavascriptFunction

    return JavascriptFunction(code)


def _table_css(table_id: str) -> str:
    t = f"table#{table_id}"
    return "\n".join([
        f"{t} {{ font-size: 0.85em; }}",
        f"{t} th, {t} td {{ white-space: normal; overflow-wrap: break-word; vertical-align: top; }}",
        f"{t} .saesim-clip {{ display: -webkit-box; -webkit-box-orient: vertical; -webkit-line-clamp: {CLIP_LINES}; "
        f"line-clamp: {CLIP_LINES}; overflow: hidden; overflow-wrap: anywhere; }}",
        f"{t} .saesim-why {{ opacity: 0.7; }}",
        f"{t} tfoot input {{ width: 100%; min-width: 0; box-sizing: border-box; }}",
        f"#{table_id}_wrapper .dt-layout-table {{ overflow-x: auto; }}",  # only when a reader shows every column
    ])


def show_table(frame, *, caption: str = "", table_id: str = "explorer-table", html_columns=(),
               init: bool = True, columns=None) -> int:
    """Display ``frame`` as an interactive DataTable, offline (itables' bundle inlined in the page).

    The table fits the page's column: the informative columns (``columns``,
    default :data:`TABLE_COLUMNS`) are shown, wrapped and rounded
    (:func:`table_view`); the others are hidden behind a "Columns" button
    and saved with "Download CSV" (:func:`table_options`). Sortable columns,
    one search box over every column (hidden ones included), and a filter
    box under each column (e.g. the ``stage`` column). Cells of
    ``html_columns`` are rendered as HTML (links); all others are escaped.
    ``init`` displays the DataTables bundle first (once per page: pass False
    for a second table). Returns the bytes of HTML displayed.
    """
    import itables
    from IPython.display import HTML, display
    from itables.javascript import generate_init_offline_itables_html

    size = 0
    if init:
        itables.init_notebook_mode(all_interactive=False, connected=False)
        size += len(generate_init_offline_itables_html(itables.options.dt_bundle).encode())
    view, n_shown = table_view(frame, columns=columns)
    names, _ = _column_order(frame, columns)
    html = {view.columns[names.index(c)] for c in html_columns if c in names}
    for column in view.columns:
        if column not in html and view[column].dtype == object:
            view[column] = [_html_escape(str(v)) for v in view[column]]
    fragment = itables.to_html_datatable(view, caption=caption or None, table_id=table_id, allow_html=True,
                                         maxBytes=0, column_filters="footer", order=[],
                                         lengthMenu=[10, 25, 100, 500], pageLength=10, showIndex=False,
                                         connected=False, **table_options(names, n_shown, table_id=table_id))
    display(HTML(fragment))
    return size + len(fragment.encode())


def _html_escape(text: str) -> str:
    import html

    return html.escape(text, quote=False)
