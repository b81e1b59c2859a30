"""Benchmark: the exact speed-ups of the concept, filter, SVCCA and raw-neuron bootstrap steps.

Each case times the new path beside the path it replaces, in the same run, on
offline-profile shapes (synthetic data, fixed seeds), and checks they agree:

* ``raw_bootstrap``: best partners of 20 document resamples of dense raw
  neurons (150 000 rows, 384 x 384 neurons, 1 600 documents). Baseline: the
  exact path, :func:`saesim.compare.corr.best_partners` on the resampled rows (what
  ``bootstrap_ci`` did for dense codes). New: :class:`saesim.compare.bootstrap.
  DenseDocumentMoments`, built once, then one weighted sum per resample.
* ``concept_members``: :func:`saesim.compare.concepts.members` of the eight concepts
  and the control on 4 096 latents x 10 top tokens with 17-word windows.
  Baseline: the previous loop, which split and normalised every window of
  every top token (copied below as ``members_every_window``). New: only
  keyword tokens read their window (and both normalisations are memoised).
* ``wide_pca``: SVCCA's PCA step on fewer rows than columns (concept
  subspaces, their random subsets; d = 384). Baseline: ``numpy.linalg.svd``.
  New: the Gram route of ``saesim.compare.subspace.centred_svd``.
* ``filter_sets``: :func:`saesim.compare.filters.junk_overlap_mask` on 4 096 x 6 144
  latents' top tokens, 3 000 pairs; first call against later calls (the
  per-latent sets are memoised on the top tokens).

BLAS and torch run single-threaded (``SAESIM_BENCH_THREADS``), as the offline
workers do. Run: ``.venv/bin/python benchmarks/bench_robust.py`` (about 3
minutes on 2 cores). Results go to ``benchmarks/results/robust.json``.
"""

from __future__ import annotations

import os

THREADS = os.environ.get("SAESIM_BENCH_THREADS", "1")
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = THREADS

import string  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from saesim.compare import concepts, filters, subspace  # noqa: E402
from saesim.compare.corr import DeadLatentWarning, best_partners  # noqa: E402
from saesim.compare.bootstrap import DenseDocumentMoments  # noqa: E402
from _report import finish, header, timed  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "robust.json"
SEED = 0


def resample_counts(n_docs: int, boot: int) -> np.ndarray:
    draw = np.random.default_rng([SEED, boot]).integers(0, n_docs, size=n_docs)
    return np.bincount(draw, minlength=n_docs), draw


def raw_bootstrap(n_rows=150_000, n_neurons=384, n_docs=1600, n_boot=20, n_exact=3) -> dict:
    """Dense-moment resamples against the exact path (timed on ``n_exact`` resamples, extrapolated)."""
    rng = np.random.default_rng(SEED)
    mixing = rng.standard_normal((n_neurons, n_neurons)) / np.sqrt(n_neurons)
    a = (rng.standard_normal((n_rows, n_neurons)) @ mixing + 0.5).astype(np.float32)
    b = (a[:, rng.permutation(n_neurons)] + 0.3 * rng.standard_normal((n_rows, n_neurons))).astype(np.float32)
    row_doc = np.sort(rng.integers(0, n_docs, n_rows))
    order = np.argsort(row_doc, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(row_doc, minlength=n_docs))]
    build_s, moments = timed(lambda: DenseDocumentMoments(a, b, row_doc))
    new_s, agree = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeadLatentWarning)
        for boot in range(n_boot):
            counts, draw = resample_counts(n_docs, boot)
            seconds, fast = timed(lambda: moments.best_partners(counts))
            new_s.append(seconds)
            if boot < n_exact:
                rows = np.concatenate([order[bounds[d]:bounds[d + 1]] for d in draw])
                seconds, exact = timed(lambda: best_partners(a[rows], b[rows]))
                agree.append({"exact_s": seconds, "same_partner": float(np.mean(fast.index == exact.index)),
                              "max_abs_r_diff": float(np.nanmax(np.abs(fast.r - exact.r)))})
    exact_per = float(np.mean([x["exact_s"] for x in agree]))
    new_per = float(np.mean(new_s))
    return {
        "shape": {"rows": n_rows, "neurons": n_neurons, "documents": n_docs, "resamples": n_boot},
        "moments_build_s": round(build_s, 2),
        "moments_mib": round(moments.cross.nbytes / 2**20, 1),
        "per_resample_s": {"exact": round(exact_per, 3), "dense_moments": round(new_per, 3)},
        "total_s": {"exact": round(exact_per * n_boot, 1), "dense_moments": round(build_s + new_per * n_boot, 1)},
        "speedup_total": round(exact_per * n_boot / (build_s + new_per * n_boot), 2),
        "agreement_on_first_resamples": agree,
    }


def members_every_window(top, windows, keywords) -> np.ndarray:
    """The previous corrected-rule loop: every top token's window is split and normalised."""
    punctuation = concepts._PUNCTUATION
    wanted = {str(w).lower() for w in keywords}
    found = []
    for latent in range(top.n_latents):
        for slot in range(top.strings.shape[1]):
            if not (top.active[latent, slot] and top.ids[latent, slot] >= 0):
                continue
            token_key = filters.normalise_token.__wrapped__(top.strings[latent, slot])
            words = {filters.normalise_token.__wrapped__(w)
                     for w in punctuation.sub(" ", windows[latent, slot].replace("\\n", " ")).split()}
            if token_key in wanted and token_key in words:
                found.append(latent)
                break
    return np.asarray(found, dtype=np.int64)


def synthetic_top_tokens(n_latents=4096, k=10, window_words=17, seed=SEED):
    """Top tokens drawn from a vocabulary holding every concept keyword; windows around each token."""
    rng = np.random.default_rng(seed)
    keywords = sorted({w for words in {**concepts.CONCEPTS, "Control": concepts.CONTROL_CONCEPT}.values()
                       for w in words})
    filler = ["".join(rng.choice(list(string.ascii_lowercase), 6)) for _ in range(20_000)]
    vocabulary = np.array(keywords + filler, dtype=object)
    ids = rng.integers(0, vocabulary.size, (n_latents, k))
    strings = vocabulary[ids]
    words = vocabulary[rng.integers(0, vocabulary.size, (n_latents, k, window_words))]
    windows = np.empty((n_latents, k), dtype=object)
    for i in range(n_latents):
        for j in range(k):
            row = list(words[i, j])
            row[window_words // 2] = f"[{strings[i, j]}]"
            windows[i, j] = " ".join(row) + "."
    top = filters.TopTokens(strings=strings, ids=ids.astype(np.int64), active=np.ones((n_latents, k), bool))
    return top, windows


def concept_members() -> dict:
    top, windows = synthetic_top_tokens()
    every = {**concepts.CONCEPTS, "Control": concepts.CONTROL_CONCEPT}
    old_s, old = timed(lambda: {name: members_every_window(top, windows, words) for name, words in every.items()})
    filters.normalise_token.cache_clear()
    concepts._window_words.cache_clear()
    new_s, new = timed(lambda: {name: concepts.members(top, windows, words) for name, words in every.items()})
    return {"latents": top.n_latents, "top_tokens": top.strings.shape[1], "concepts": len(every),
            "seconds": {"every_window": round(old_s, 2), "keyword_windows_only": round(new_s, 3)},
            "speedup": round(old_s / new_s, 1),
            "identical": all(np.array_equal(old[name], new[name]) for name in every),
            "members": {name: int(v.size) for name, v in new.items()}}


def wide_pca(d=384, repeats=50) -> dict:
    rng = np.random.default_rng(SEED)
    out = {}
    for n in (20, 50, 100, 257):
        z = rng.standard_normal((n, d))
        centred = z - z.mean(axis=0)
        svd_s, (u_ref, _, _) = timed(lambda: [np.linalg.svd(centred, full_matrices=False) for _ in range(repeats)][-1])
        gram_s, (u, _) = timed(lambda: [subspace.centred_svd(z) for _ in range(repeats)][-1])
        k = max(1, n // 10)
        out[str(n)] = {"svd_ms": round(1e3 * svd_s / repeats, 2), "gram_ms": round(1e3 * gram_s / repeats, 2),
                       "speedup": round(svd_s / gram_s, 2),
                       "projector_max_diff_k_n_over_10": float(np.abs(u[:, :k] @ u[:, :k].T
                                                                      - u_ref[:, :k] @ u_ref[:, :k].T).max())}
    return out


def filter_sets(n_pairs=3000) -> dict:
    top_a, _ = synthetic_top_tokens(n_latents=4096, k=5, window_words=1, seed=1)
    top_b, _ = synthetic_top_tokens(n_latents=6144, k=5, window_words=1, seed=2)
    rng = np.random.default_rng(SEED)
    a, b = rng.integers(0, 4096, n_pairs), rng.integers(0, 6144, n_pairs)
    filters.normalise_token.cache_clear()
    first_s, first = timed(lambda: filters.junk_overlap_mask(a, b, top_a, top_b))
    again_s, again = timed(lambda: filters.junk_overlap_mask(a, b, top_a, top_b))
    return {"pairs": n_pairs, "seconds": {"first_call": round(first_s, 3), "memoised": round(again_s, 4)},
            "speedup": round(first_s / again_s, 1), "identical": bool(np.array_equal(first, again))}


def main() -> None:
    torch.set_num_threads(int(THREADS))
    results = header("exact speed-ups of concept members, filter sets, wide PCA and the raw-neuron bootstrap, "
                     "each beside the path it replaces", threads=int(THREADS), seed=SEED)
    for name, case in (("concept_members", concept_members), ("filter_sets", filter_sets),
                       ("wide_pca", wide_pca), ("raw_bootstrap", raw_bootstrap)):
        print(f"bench_robust: {name}", flush=True)
        results[name] = case()
    finish(results, RESULTS)


if __name__ == "__main__":
    main()
