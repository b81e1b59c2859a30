"""The authors' reported numbers: spot checks against the reference note, shapes, table helpers."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from saesim.report import reported as R
from saesim.report import tables as T

MD = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "paper_figures.md"


def _md_tables(heading):
    """Markdown tables under the ``### {heading}`` section of the note (bold marks removed)."""
    if not MD.exists():
        pytest.skip(f"reference note absent ({MD}); spot checks need /work/shared/reference")
    lines = MD.read_text().splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("### " + heading))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("#")), len(lines))
    tables, cur = [], []
    for line in lines[start:end] + [""]:
        if line.startswith("|"):
            if not line.startswith("|---"):
                cur.append([c.strip().replace("*", "") for c in line.strip().strip("|").split("|")])
        elif cur:
            tables.append(cur)
            cur = []
    return tables


def _grid(table, skip_label=None):
    hdr = table[0][1:]
    out = {}
    for row in table[1:]:
        lab = row[0]
        for w in ("SVCCA", "RSA"):
            lab = lab.replace(w, "")
        for h, v in zip(hdr, row[1:]):
            out.setdefault(int(h), {})[int(lab)] = float(v)
    return out


def test_keys_and_shapes():
    assert set(R.REPORTED_KEYS) >= {"fig3", "fig4", "table1", "table2"}
    f3 = R.reported("fig3")
    assert f3.shape[0] == 55 and set(f3.layer_a) == set(range(1, 6)) and set(f3.layer_b) == set(range(1, 12))
    assert R.reported("fig4").shape[0] == 24
    assert len(R.reported("table1")) == 7 and len(R.reported("table2")) == 8
    for k in R.REPORTED_KEYS:
        df = R.reported(k)
        assert {"source", "profile", "layer_a", "layer_b"} <= set(df.columns)
        assert df["profile"].iloc[0] in ("pythia", "gemma")
        assert R.describe(k)
    with pytest.raises(KeyError):
        R.reported("nope")


def test_fig3_matches_note():
    t = _md_tables("Figure 3")
    svcca, rsa = _grid(t[0]), _grid(t[1])
    df = R.reported("fig3").set_index(["layer_a", "layer_b"])
    for a, b in [(2, 5), (1, 1), (5, 11), (3, 7), (4, 9)]:
        assert df.loc[(a, b), "svcca"] == svcca[a][b]
        assert df.loc[(a, b), "rsa"] == rsa[a][b]
    assert df.loc[(2, 5), "svcca"] == 0.678 and df.loc[(2, 5), "rsa"] == 0.207


def test_fig4_matches_note():
    rows = _md_tables("Figure 4")[0]
    df = R.reported("fig4").set_index(["layer_a", "layer_b"])
    half = (len(rows) - 1) // 2
    svcca = _grid([rows[0]] + rows[1:1 + half])
    rsa = _grid([rows[0]] + rows[1 + half:])
    for a, b in [(12, 18), (6, 22), (17, 2), (12, 14)]:
        assert df.loc[(a, b), "svcca"] == svcca[a][b]
        assert df.loc[(a, b), "rsa"] == rsa[a][b]


@pytest.mark.parametrize("key,which", [("table1", "Table 1"), ("table2", "Table 2")])
def test_concept_tables_match_note(key, which):
    rows = _md_tables(which)[-1]
    df = R.reported(key).set_index("concept")
    cols = ["n_pairs", "svcca", "svcca_null_mean", "svcca_p", "rsa", "rsa_null_mean", "rsa_p"]
    assert list(df.index) == [r[0] for r in rows[1:]]
    for r in rows[1:]:
        for c, v in zip(cols, r[1:]):
            assert df.loc[r[0], c] == float(v), (key, r[0], c)


def _split_side_by_side(sbs, ours_label="ours"):
    """(ours, authors', differences) columns of a side_by_side table, told apart by their tags only."""
    ours = [c for c in sbs.columns if c.endswith(f" ({ours_label})")]
    authors = [c for c in sbs.columns if c.endswith(f" ({T.AUTHORS_SOURCE})")]
    diffs = [c for c in sbs.columns if c not in ours and c not in authors]
    assert len(ours) == len(authors) == len(diffs) == 2, list(sbs.columns)  # SVCCA and RSA
    return sbs[ours].to_numpy(float), sbs[authors].to_numpy(float), sbs[diffs].to_numpy(float)


@pytest.mark.parametrize("key, index", [("fig3", ["layer_a", "layer_b"]), ("table1", "concept")])
def test_tables_helpers_accept_frames(key, index):
    a = T.authors_table(R.as_mapping(key), index_names=index)
    reported = R.reported(key).set_index(index)[["svcca", "rsa"]]
    assert a.shape[0] == len(reported) == {"fig3": 55, "table1": 7}[key]
    # the authors' numbers against themselves: every row kept, every value on both sides, every Δ exactly 0
    sbs = T.side_by_side(reported, a)
    assert list(sbs.index) == list(reported.index)
    ours, authors, diff = _split_side_by_side(sbs)
    np.testing.assert_array_equal(ours, reported.to_numpy(float))
    np.testing.assert_array_equal(authors, reported.to_numpy(float))
    np.testing.assert_array_equal(diff, np.zeros_like(diff))
    # and Δ is ours − authors, sign included
    shifted = T.side_by_side(reported + [0.25, -0.5], a)
    np.testing.assert_allclose(_split_side_by_side(shifted)[2], np.broadcast_to([0.25, -0.5], diff.shape), atol=1e-12)


def test_A1_matches_note():
    g = _grid(_md_tables("A1")[0])
    df = R.reported("a1").set_index(["layer_a", "layer_b"])
    assert df.shape[0] == 55
    for a, b in [(1, 1), (5, 5), (3, 3), (4, 11)]:
        assert df.loc[(a, b), "svcca_null_mean"] == g[a][b]
    assert df.loc[(4, 1), "svcca_p"] == 0.2 and df.loc[(5, 1), "svcca_p"] == 0.5 and df.loc[(2, 5), "svcca_p"] == 0.0
