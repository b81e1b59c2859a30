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

__all__ = ["NEURONPEDIA", "STAGES", "PairTable", "neuronpedia_id", "neuronpedia_url", "pair_table", "show_table"]

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


def show_table(frame, *, caption: str = "", table_id: str = "explorer-table", html_columns=(),
               init: bool = True) -> int:
    """Display ``frame`` as an interactive DataTable, offline (itables' bundle inlined in the page).

    Sortable columns, one search box over every column, and a filter box
    under each column (e.g. the ``stage`` column). Cells of ``html_columns``
    are rendered as HTML (links); all others are escaped. ``init`` displays
    the DataTables bundle first (once per page: pass False for a second
    table). Returns the bytes of HTML displayed.
    """
    import itables
    from IPython.display import HTML, display
    from itables.javascript import generate_init_offline_itables_html

    size = 0
    if init:
        itables.init_notebook_mode(all_interactive=False, connected=False)
        size += len(generate_init_offline_itables_html(itables.options.dt_bundle).encode())
    html = set(html_columns)
    frame = frame.copy()
    for column in frame.columns:
        if column not in html and frame[column].dtype == object:
            frame[column] = [_html_escape(str(v)) for v in frame[column]]
    fragment = itables.to_html_datatable(frame, caption=caption or None, table_id=table_id, allow_html=True,
                                         maxBytes=0, column_filters="footer", order=[],
                                         lengthMenu=[10, 25, 100, 500], pageLength=10, classes="display compact nowrap",
                                         scrollX=True,  # every column, scrolled sideways in the page width
                                         showIndex=False, connected=False)
    display(HTML(fragment))
    return size + len(fragment.encode())


def _html_escape(text: str) -> str:
    import html

    return html.escape(text, quote=False)
