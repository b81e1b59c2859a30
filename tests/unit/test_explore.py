"""Tests of saesim.report.explore: seed stability, the pair table, the decoder map, Neuronpedia links."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

from saesim.report import assets, explore
from saesim.experiments.grid import CompareSettings
from saesim.compare.filters import SaeLayer, TopTokens
from saesim.compare.synthetic import planted_pair

TOL = 1e-9
SEEDS = (0, 1, 2)


def _dense_oracle(wx, wy, threshold):
    """linear_sum_assignment on the cosine matrix with entries below the threshold set to 0."""
    ux = wx / np.linalg.norm(wx, axis=1, keepdims=True)
    uy = wy / np.linalg.norm(wy, axis=1, keepdims=True)
    c = ux @ uy.T
    w = np.where(c >= threshold, c, 0.0)
    rows, cols = linear_sum_assignment(w, maximize=True)
    shared = w[rows, cols] > 0
    return set(zip(rows[shared].tolist(), cols[shared].tolist())), float(w[rows, cols].sum()), c


def _seed_pair(seed, *, n_tokens=4000, n_x=60, n_y=80, d=24, n_shared=40, noise=0.05):
    """Two SAEs of one model: planted_pair with equal widths, B's decoder rotated back into A's space."""
    p = planted_pair(n_tokens=n_tokens, n_latents_a=n_x, n_latents_b=n_y, d_a=d, d_b=d, n_shared=n_shared, k=6,
                     noise=noise, seed=seed)
    return p, (p.W_a, p.codes_a), (p.W_b @ p.map_ab.T, p.codes_b)


class TestExplorerApi:
    def test_every_name_the_explorer_notebook_calls_is_importable_from_explore(self):
        import ast
        from pathlib import Path

        source = Path(__file__).resolve().parents[2] / "notebooks" / "explorer.py"
        used = {node.attr for node in ast.walk(ast.parse(source.read_text()))
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "explore"}
        assert {"pair_table", "decoder_map", "seed_floor"} <= used
        assert [name for name in sorted(used) if not hasattr(explore, name)] == []
        assert [name for name in explore.__all__ if not hasattr(explore, name)] == []

    def test_seed_stability_points_to_the_full_matching_measure(self):
        assert "saesim.compare.stability.sae_stability" in explore.seed_stability.__doc__


class TestSeedStability:
    @pytest.mark.parametrize("seed", SEEDS)
    @pytest.mark.parametrize("shape", [(12, 12, 5), (9, 15, 6), (15, 7, 3)])
    @pytest.mark.parametrize("threshold", [0.3, 0.7])
    def test_matches_linear_sum_assignment_on_dense_cases(self, seed, shape, threshold):
        rng = np.random.default_rng(seed)
        n_x, n_y, d = shape
        wx = rng.standard_normal((n_x, d))
        wy = np.vstack([wx[rng.permutation(n_x)[: min(n_x, n_y) // 2]] + 0.3 * rng.standard_normal((min(n_x, n_y) // 2, d)),
                        rng.standard_normal((n_y - min(n_x, n_y) // 2, d))])
        pairs, total, c = _dense_oracle(wx, wy, threshold)
        res = explore.seed_stability(wx, wy, threshold=threshold, block_rows=4)
        assert abs(res.cosine.sum() - total) < TOL
        assert set(zip(res.x_index.tolist(), res.y_index.tolist())) == pairs
        assert res.n_shared == len(pairs) and abs(res.statistic - len(pairs) / min(n_x, n_y)) < TOL
        assert abs(res.mean_max_cosine - c.max(axis=1).mean()) < TOL
        assert abs(res.mean_max_cosine_y - c.max(axis=0).mean()) < TOL
        assert np.all(res.cosine >= threshold)

    @pytest.mark.parametrize("block_rows", [1, 7, 1024])
    def test_block_size_does_not_change_the_answer(self, block_rows):
        rng = np.random.default_rng(3)
        wx = rng.standard_normal((30, 8))
        wy = wx[::-1] + 0.2 * rng.standard_normal((30, 8))
        ref = explore.seed_stability(wx, wy, block_rows=1024)
        res = explore.seed_stability(wx, wy, block_rows=block_rows)
        assert res.n_shared == ref.n_shared and np.array_equal(res.y_index, ref.y_index)

    @pytest.mark.parametrize("seed", SEEDS)
    def test_recovers_planted_pairs_by_direction_and_by_activation(self, seed):
        p, x, y = _seed_pair(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = explore.seed_stability(x, y)
        planted = set(zip(p.shared_a.tolist(), p.shared_b.tolist()))
        got = set(zip(res.x_index.tolist(), res.y_index.tolist()))
        assert planted <= got
        assert res.n_shared >= p.n_shared and res.statistic >= p.n_shared / 60
        assert res.n_shared_r >= 0.9 * p.n_shared
        assert res.n_tokens == 4000 and res.n_x == 60 and res.n_y == 80

    def test_unrelated_saes_share_almost_nothing(self):
        rng = np.random.default_rng(0)
        res = explore.seed_stability(rng.standard_normal((100, 64)), rng.standard_normal((120, 64)))
        assert res.statistic < 0.05 and res.mean_max_cosine < 0.6

    def test_identical_saes_share_everything(self):
        p, x, _ = _seed_pair(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = explore.seed_stability(x, x)
        assert res.statistic == 1.0 and abs(res.mean_max_cosine - 1) < 1e-6
        assert np.array_equal(res.x_index, res.y_index)

    def test_zero_row_warns_and_is_never_shared(self):
        rng = np.random.default_rng(1)
        wx = rng.standard_normal((10, 6))
        wy = wx.copy()
        wx[3] = 0.0
        with pytest.warns(explore.ZeroDirectionWarning, match="1 decoder rows of `layer_x`"):
            res = explore.seed_stability(wx, wy)
        assert res.n_zero_x == 1 and 3 not in res.x_index.tolist() and res.n_shared == 9
        assert np.isfinite(res.mean_max_cosine)

    def test_saelayer_input_and_precomputed_best_partners(self):
        from saesim.compare.corr import best_partners

        p, x, y = _seed_pair(0)
        lx = SaeLayer(model="a", layer=0, codes=x[1], decoder=x[0], top=_top(60), windows=_windows(60))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            best = best_partners(x[1], y[1])
            res = explore.seed_stability(lx, y, best=best)
            ref = explore.seed_stability(x, y)
        assert res.row() == ref.row()
        assert "x_index" not in res.row() and res.fraction("x") == res.n_shared / 60
        assert res.fraction("y", by="r") == res.n_shared_r / 80

    def test_without_codes_the_activation_side_is_nan(self):
        res = explore.seed_stability(np.eye(4), np.eye(4))
        assert np.isnan(res.shared_fraction_r) and res.n_tokens is None and np.isnan(res.fraction(by="r"))

    def test_bad_input_is_explained(self):
        with pytest.raises(ValueError, match="width 4 but `layer_y` has 5"):
            explore.seed_stability(np.eye(4), np.eye(5))
        with pytest.raises(ValueError, match=r"`threshold` must be a number in \(0, 1\]"):
            explore.seed_stability(np.eye(4), np.eye(4), threshold=1.5)
        with pytest.raises(ValueError, match="`r_threshold`"):
            explore.seed_stability(np.eye(4), np.eye(4), r_threshold=0)
        with pytest.raises(ValueError, match="`layer_x.codes` has 3 latents"):
            explore.seed_stability((np.eye(4), np.ones((5, 3))), np.eye(4))
        with pytest.raises(ValueError, match="NaN or infinite"):
            explore.seed_stability(np.full((2, 2), np.nan), np.eye(2))
        with pytest.raises(TypeError, match="must be an SaeLayer"):
            explore.seed_stability("w", np.eye(2))
        with pytest.raises(ValueError, match="`block_rows` must be a positive integer"):
            explore.seed_stability(np.eye(2), np.eye(2), block_rows=0)
        with pytest.raises(ValueError, match="same number of rows|rows"):
            explore.seed_stability((np.eye(2), np.ones((3, 2))), (np.eye(2), np.ones((4, 2))))
        with pytest.raises(ValueError, match="fraction|`of`"):
            explore.seed_stability(np.eye(2), np.eye(2)).fraction("z")


# --------------------------------------------------------------------------- pair table


def _top(n, k=5, strings=None):
    strings = np.array([[f"tok{i}"] * k for i in range(n)], dtype=object) if strings is None else strings
    return TopTokens(strings=strings, ids=np.tile(np.arange(k) + 10, (n, 1)), active=np.ones((n, k), dtype=bool))


def _windows(n, k=5):
    return np.array([[f"the tok{i} here"] * k for i in range(n)], dtype=object)


def _layers(seed=0):
    """Two tiny layers whose top tokens make the junk filter's outcome known: latent i says tok{i % 4}."""
    p = planted_pair(n_tokens=3000, n_latents_a=24, n_latents_b=30, d_a=8, d_b=10, n_shared=16, k=4, noise=0.05,
                     seed=seed)
    strings_a = np.array([[f"tok{i % 4}"] * 5 for i in range(24)], dtype=object)
    strings_b = np.array([[f"tok{j % 4}" if j != 5 else ","] * 5 for j in range(30)], dtype=object)
    a = SaeLayer(model="a", layer=1, codes=p.codes_a, decoder=p.W_a, top=_top(24, strings=strings_a),
                 windows=np.array([[f"x tok{i % 4} y"] * 5 for i in range(24)], dtype=object))
    b = SaeLayer(model="b", layer=2, codes=p.codes_b, decoder=p.W_b, top=_top(30, strings=strings_b),
                 windows=np.array([[f"x tok{j % 4} y"] * 5 for j in range(30)], dtype=object))
    return p, a, b


class TestPairTable:
    @pytest.mark.parametrize("rule", ["first_index", "many_to_one", "max_corr", "mutual", "hungarian"])
    def test_one_row_per_chooser_and_the_kept_rows_are_the_pipelines_pairs(self, rule):
        from saesim.compare.corr import quiet_best_partners
        from saesim.compare.stages import filtered_pairs

        _, a, b = _layers()
        settings = CompareSettings(rules=(rule,), n_perm=2)
        table = explore.pair_table(a, b, settings, max_rows=None)
        frame = table.frame
        assert table.n_rows == 30 and len(frame) == 30 and sorted(frame["B latent"]) == list(range(30))
        assert set(frame["stage"]) <= set(explore.STAGES) and sum(table.stage_counts.values()) == 30
        best = quiet_best_partners(a.codes, b.codes)
        final, _ = filtered_pairs(best, a, b, settings, rule=rule, direction="b_to_a")
        kept = frame[frame["stage"] == "kept"]
        assert set(zip(kept["A latent"], kept["B latent"])) == set(zip(final.a.tolist(), final.b.tolist()))
        assert list(frame["r"].dropna()) == sorted(frame["r"].dropna(), reverse=True)

    def test_reasons_name_the_filter(self):
        _, a, b = _layers()
        frame = explore.pair_table(a, b, CompareSettings(rules=("first_index",), n_perm=2), max_rows=None).frame
        row5 = frame[frame["B latent"] == 5].iloc[0]
        if row5["A latent"] >= 0:
            assert row5["stage"] == "junk/overlap" and "B 5 is non-concept" in row5["why"]
        for row in frame[frame["stage"] == "1-1"].itertuples():
            assert f"A {row._1} kept for B" in row.why
        for row in frame[frame["stage"] == "r cut"].itertuples():
            assert row.r <= 0.1 and "<= 0.1" in row.why
        no_overlap = frame[(frame["stage"] == "junk/overlap") & (frame["B latent"] != 5)]
        assert all("no shared top-5 token" in w for w in no_overlap["why"])

    def test_columns_rank_frequency_and_tokens(self):
        from saesim.extract.tokens import activation_frequency

        _, a, b = _layers()
        table = explore.pair_table(a, b, CompareSettings(n_perm=2), max_rows=7, k=2, n_windows=1)
        frame = table.frame
        assert len(frame) == 7 and table.n_left_out == 23 and list(frame["r rank"][:1]) == [1]
        row = frame.iloc[0]
        assert row["B freq"] == pytest.approx(activation_frequency(b.codes)[row["B latent"]])
        assert row["A top tokens"].count("'") == 4  # two tokens, repr-quoted
        assert "|" not in row["A contexts"]
        assert "links" not in frame

    def test_a_to_b_has_one_row_per_a_latent(self):
        _, a, b = _layers()
        table = explore.pair_table(a, b, CompareSettings(directions=("a_to_b",), n_perm=2), max_rows=None)
        assert sorted(table.frame["A latent"]) == list(range(24)) and table.direction == "a_to_b"

    def test_concepts_and_neuronpedia_links(self):
        _, a, b = _layers()
        table = explore.pair_table(a, b, CompareSettings(n_perm=2), concepts={"Toks": ("tok1",)},
                                   neuronpedia_b="gemma-2-2b/12-gemmascope-res-16k", max_rows=None)
        frame = table.frame
        ones = frame[(frame["B latent"] % 4 == 1) & (frame["B latent"] != 5)]  # B 5's top token is ","
        assert set(ones["B concepts"]) == {"Toks"} and set(frame.loc[frame["B latent"] == 5, "B concepts"]) == {""}
        assert set(frame.loc[frame["B latent"] % 4 == 0, "B concepts"]) == {""}
        link = frame.iloc[0]["links"]
        assert f"https://www.neuronpedia.org/gemma-2-2b/12-gemmascope-res-16k/{frame.iloc[0]['B latent']}" in link
        assert "A " not in link  # no id for A: no link

    def test_bad_options_are_explained(self):
        _, a, b = _layers()
        with pytest.raises(ValueError, match="`max_rows` must be a positive integer"):
            explore.pair_table(a, b, CompareSettings(), max_rows=0)
        with pytest.raises(ValueError, match="`k` must be a positive integer"):
            explore.pair_table(a, b, CompareSettings(), k=0)


class TestTableView:
    """The explorer's displayed table: the informative columns first, numbers rounded, headers from the vocabulary."""

    def _frame(self):
        _, a, b = _layers()
        return explore.pair_table(a, b, CompareSettings(n_perm=2), max_rows=None,
                                  neuronpedia_b="gemma-2-2b/12-gemmascope-res-16k").frame

    def test_every_pair_table_column_has_a_header_in_the_vocabulary(self):
        from saesim import vocab

        for column in self._frame().columns:
            assert column in vocab.COLUMNS, column
        assert set(explore.TABLE_COLUMNS) <= set(self._frame().columns)

    def test_informative_columns_first_the_rest_after_them(self):
        from saesim import vocab

        frame = self._frame()
        view, n_shown = explore.table_view(frame)
        assert n_shown == len(explore.TABLE_COLUMNS) == 6
        assert list(view.columns[:n_shown]) == [vocab.column_label(c) for c in explore.TABLE_COLUMNS]
        assert list(view.columns[:n_shown]) == ["A latent", "B latent", "r", "A top tokens", "B top tokens", "stage"]
        rest = [c for c in frame.columns if c not in explore.TABLE_COLUMNS]
        assert list(view.columns[n_shown:]) == [vocab.column_label(c) for c in rest]
        assert "why dropped" in view.columns and "A firing rate (%)" in view.columns
        assert len(view) == len(frame)

    def test_numbers_are_rounded_and_missing_values_blank(self):
        frame = pd.DataFrame({"A latent": [3, -1], "B latent": [7, 8], "r": [0.941954, np.nan],
                              "r rank": pd.array([1, pd.NA], dtype="Int64"), "stage": ["kept", "no partner"],
                              "why": ["", "never fires"], "A top tokens": ["'a'", ""], "B top tokens": ["'b'", "'c'"],
                              "A freq": [0.0123456, np.nan], "B freq": [1.5625e-5, 0.0], "other": [-1e-9, 2.0]})
        view, n_shown = explore.table_view(frame)
        assert list(view["r"]) == ["0.942", ""]
        assert list(view["A latent"]) == ["3", ""] and list(view["B latent"]) == ["7", "8"]
        assert list(view["rank by r"]) == ["1", ""]
        assert list(view["A firing rate (%)"]) == ["1.23", ""]
        assert list(view["B firing rate (%)"]) == ["0.00156", "0"]
        assert list(view["other"]) == ["0.000", "2.000"]  # any other float: 3 decimals, no "-0.000"

    def test_chosen_columns_and_a_frame_without_the_pair_columns(self):
        frame = self._frame()
        view, n_shown = explore.table_view(frame, columns=["r", "stage"])
        assert n_shown == 2 and list(view.columns[:2]) == ["r", "stage"]
        plain = pd.DataFrame({"x": [1.23456], "y": ["a"]})
        view, n_shown = explore.table_view(plain)
        assert n_shown == 2 and list(view.columns) == ["x", "y"] and view["x"][0] == "1.235"
        with pytest.raises(ValueError, match="`columns` names \\['nope'\\]"):
            explore.table_view(frame, columns=["r", "nope"])

    def test_options_hide_the_rest_clip_long_text_and_never_scroll_sideways(self):
        frame = self._frame()
        view, n_shown = explore.table_view(frame)
        names = list(explore.TABLE_COLUMNS) + [c for c in frame.columns if c not in explore.TABLE_COLUMNS]
        opts = explore.table_options(names, n_shown, table_id="pairs-table")
        hidden = [d for d in opts["columnDefs"] if d.get("visible") is False]
        assert hidden == [{"targets": list(range(6, len(names))), "visible": False}]
        widths = {names[d["targets"][0]]: d["width"] for d in opts["columnDefs"] if "width" in d}
        assert set(widths) == set(explore.TABLE_COLUMNS) and sum(float(w[:-1]) for w in widths.values()) <= 100
        clipped = next(d for d in opts["columnDefs"] if "saesim-clip" in d.get("render", "") and "why" not in
                       d["render"].split("var s")[0])
        assert sorted(names[i] for i in clipped["targets"]) == sorted(explore.CLIPPED)
        stage = next(d for d in opts["columnDefs"] if d["targets"] == [names.index("stage")] and "render" in d)
        assert f"row[{names.index('why')}]" in stage["render"]
        assert "scrollX" not in opts and "nowrap" not in opts["classes"] and opts["style"]["width"] == "100%"
        assert "white-space: normal" in opts["css"] and "-webkit-line-clamp" in opts["css"]
        kinds = [b["extend"] for b in opts["buttons"]]
        assert kinds == ["colvis", "csvHtml5"] and "buttons" in opts["layout"].values()
        assert opts["buttons"][1]["exportOptions"] == {"orthogonal": "export"}  # raw values, every column

    def test_show_table_embeds_rounded_values_and_no_full_precision_r(self, monkeypatch):
        shown = []
        monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj.data))
        frame = self._frame()
        size = explore.show_table(frame, table_id="pairs-table", html_columns=["links"], init=False)
        html = shown[0]
        assert size == len(html.encode())
        r = frame["r"].dropna().iloc[0]
        assert f"{r:.3f}" in html and repr(float(r)) not in html
        assert '"visible": false' in html and "colvis" in html and "csvHtml5" in html
        assert "scrollX" not in html and "nowrap" not in html
        assert "https://www.neuronpedia.org/" in html  # the links column stays HTML


# --------------------------------------------------------------------------- decoder map


class TestDecoderMap:
    @pytest.mark.parametrize("seed", SEEDS)
    @pytest.mark.parametrize("d_b", [8, 12])
    def test_a_rotated_copy_lands_on_its_pair(self, seed, d_b):
        rng = np.random.default_rng(seed)
        wa = rng.standard_normal((40, 8))
        q, _ = np.linalg.qr(rng.standard_normal((d_b, d_b)))
        wb = 3.0 * wa @ q[:8]
        m = explore.decoder_map(wa, wb, (np.arange(40), np.arange(40)), seed=seed)
        assert m.mean_mapped_cosine == pytest.approx(1.0, abs=1e-9)
        assert np.allclose(m.xy_a, m.xy_b, atol=1e-9)
        assert 0 < m.explained_variance.sum() <= 1

    def test_control_unrelated_rows_do_not_superpose(self):
        rng = np.random.default_rng(0)
        m = explore.decoder_map(rng.standard_normal((200, 16)), rng.standard_normal((200, 16)),
                                (np.arange(200), np.arange(200)))
        assert m.mean_mapped_cosine < 0.5

    def test_pca_axes_match_an_svd_oracle_and_subsample_is_seeded(self):
        rng = np.random.default_rng(1)
        wa = rng.standard_normal((50, 6))
        m1 = explore.decoder_map(wa, wa, (np.arange(50), np.arange(50)), max_points=10, seed=5)
        m2 = explore.decoder_map(wa, wa, (np.arange(50), np.arange(50)), max_points=10, seed=5)
        assert m1.n_points == 10 and m1.n_pairs == 50 and np.array_equal(m1.a, m2.a)
        x = wa / np.linalg.norm(wa, axis=1, keepdims=True)
        _, s, _ = np.linalg.svd(x - x.mean(0), full_matrices=False)
        assert np.allclose(m1.explained_variance, s[:2] ** 2 / np.sum(s ** 2))
        full = explore.decoder_map(wa, wa, (np.arange(50), np.arange(50)), max_points=None)
        assert np.allclose(np.abs(full.xy_a).sum(), np.abs((x - x.mean(0)) @ np.linalg.svd(x - x.mean(0))[2][:2].T).sum())
        assert list(m1.to_frame().columns) == ["a", "b", "x_a", "y_a", "x_b", "y_b"]

    def test_bad_input_is_explained(self):
        w = np.eye(4)
        with pytest.raises(ValueError, match="at least 2"):
            explore.decoder_map(w, w, ([0], [0]))
        with pytest.raises(ValueError, match="outside"):
            explore.decoder_map(w, w, ([0, 9], [0, 1]))
        with pytest.raises(ValueError, match="pair up"):
            explore.decoder_map(w, w, ([0, 1, 2], [0, 1]))
        with pytest.raises(ValueError, match="2-D decoder"):
            explore.decoder_map(np.ones(4), w, ([0, 1], [0, 1]))
        with pytest.raises(ValueError, match="`max_points`"):
            explore.decoder_map(w, w, ([0, 1], [0, 1]), max_points=0)
        with pytest.raises(TypeError, match="`seed`"):
            explore.decoder_map(w, w, ([0, 1], [0, 1]), seed="x")

    def test_figure_has_hover_text_and_html_uses_the_local_script(self):
        rng = np.random.default_rng(0)
        wa = rng.standard_normal((5, 4))
        m = explore.decoder_map(wa, wa, (np.arange(5), np.arange(5)))
        fig = explore.map_figure(m, hover_a=[f"A {i} 'tok'" for i in range(5)], color=np.linspace(0, 1, 5))
        assert list(fig.data[2].text) == [f"A {i} 'tok'" for i in range(5)]
        html = explore.map_html(fig, static_prefix="../../_static")
        assert 'src="../../_static/plotly.min.js"' in html and "cdn" not in html.lower()
        with pytest.raises(ValueError, match="one text per point"):
            explore.map_figure(m, hover_a=["x"])


# --------------------------------------------------------------------------- book helpers


class TestBookHelpers:
    def test_strongest_pair_is_the_largest_effect_over_the_null(self):
        frame = pd.DataFrame({"layer_a": [0, 0, 1], "layer_b": [0, 1, 0], "rule": ["r"] * 3,
                              "rsa": [0.5, 0.4, 0.9], "rsa_null_mean": [0.0, -0.3, 0.6]})
        assert explore.strongest_pair(frame) == (0, 1)
        with pytest.raises(ValueError, match="lacks the columns"):
            explore.strongest_pair(frame.drop(columns="rsa_null_mean"))
        with pytest.raises(ValueError, match="no finite rsa effect"):
            explore.strongest_pair(frame.assign(rsa=np.nan))

    def test_neuronpedia_ids_only_for_hosted_saelens_releases(self, tiny_profile):
        from saesim.config import load_profile

        gemma = load_profile("gemma")
        assert explore.neuronpedia_id(gemma, "a", 6) == "gemma-2b/6-res-jb"
        assert explore.neuronpedia_id(gemma, "b", 10) == "gemma-2-2b/10-gemmascope-res-16k"
        assert explore.neuronpedia_id(tiny_profile, "b", 0) is None  # local SAELens-format SAEs
        assert explore.neuronpedia_id(tiny_profile, "a", 0) is None  # sparsify
        assert explore.neuronpedia_url(None, 3) is None
        assert explore.neuronpedia_url("gemma-2b/6-res-jb", 3) == "https://www.neuronpedia.org/gemma-2b/6-res-jb/3"

    def test_seed_floor_needs_a_seed_control(self, tmp_path):
        from saesim.config import load_profile

        with pytest.raises(ValueError, match="has no `seed_control`"):
            explore.seed_floor(load_profile("gemma"), cache_dir=tmp_path, results_dir=tmp_path)

    def test_ensure_plotly_copies_the_bundle_once(self, tmp_path):
        path = assets.ensure_plotly(tmp_path / "_static")
        assert path.stat().st_size == explore.plotly_bytes()
        mtime = path.stat().st_mtime_ns
        assert assets.ensure_plotly(tmp_path / "_static").stat().st_mtime_ns == mtime
