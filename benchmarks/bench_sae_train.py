"""Benchmark: the sparse TopK SAE trainer against the reference one, in the same run (issue #22, item 4).

``saesim.extract.saes.train_topk_sae(trainer="reference")`` runs sparsify's ``Sae.forward`` and
autograd; ``trainer="sparse"`` computes the same loss and gradients by hand (only the k active
latents of a token past the dense encoder product; gradients of the decoder and encoder rows
summed per latent with one ``embedding_bag``; the AuxK top-k over the dead latents only; the
schedule-free step without byte swaps). Cases:

* ``shapes``: the offline profile's recipe (4 096 latents, k = 32, 2 epochs over the first
  64 000 kept tokens, batch 1 024, lr 0.005) on Gemma-3-270M layer 10 (d = 640) and
  SmolLM2-135M layer 17 (d = 576), with 1 and 2 torch threads, each training in a fresh
  process: tokens/s by the wall clock and by the process's CPU time (the work, less sensitive
  to other jobs on the machine), peak RSS (before training and at the end, so the growth is the
  trainer's), held-out FVU on the rows after the training rows, and how close the two
  trainers' weights are, beside how close the reference's own weights are across thread counts
  and (Gemma, 1 thread) when its inputs move by about one ulp (x * (1 + 1e-7 N(0, 1))): SignSGD
  turns any sign flip of a near-zero gradient into a whole step, so runs that differ in float
  rounding only drift apart; this is the scale of agreement the reference has with itself.
* ``paired``: the two trainers alternating in one process, three times each, on 16 384 rows
  of Gemma layer 10 (1 and 2 threads) and of Gemma layer 0 (1 thread; ~40 % of its latents go
  dead, so the AuxK loss does real work every step), one epoch, the recipe otherwise: the
  median ratio, which load that comes and goes between the long runs above cannot bias.
* ``batch``: the sparse trainer on Gemma at batch 512 / 2 048 / 4 096 with the learning rate
  matched by sqrt(batch / 1 024) (SignSGD's steps are lr-sized, so fewer, larger batches need a
  larger lr): tokens/s and held-out FVU against batch 1 024 (1 thread).
* ``encoder_product``: the dense encoder product (batch 1 024 x 640 -> 4 096) in fp32 and
  bf16 (this CPU has AVX2/FMA only: no AVX-512-BF16, no AMX).
* ``compile``: the schedule-free SignSGD update of one step, eager against ``torch.compile``.

Activations come from the run cache (``saesim extract --profile offline`` keeps these layers);
without them, random structured rows (sparse sums of random unit directions, a common offset)
of the same shapes are used and the record says so. Timings share the machine with whatever
else runs: the load average before and after is recorded. Run
``nice -n 10 .venv/bin/python benchmarks/bench_sae_train.py`` (about 15 minutes on 2 busy cores);
results go to ``benchmarks/results/sae_train.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import finish, header  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "sae_train.json"
RECIPE = {"num_latents": 4096, "k": 32, "epochs": 2, "batch_size": 1024, "lr": 0.005}
TRAIN_ROWS = 64_000
SHAPES = {"gemma_d640": ("a", 10, 640), "smollm2_d576": ("b", 17, 576)}
LAYER0 = ("a", 0, 640)


def peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def structured_rows(n: int, d: int, seed: int) -> np.ndarray:
    """Random structured activations: each row a sparse non-negative sum of 2d unit directions, plus an offset."""
    rng = np.random.default_rng(seed)
    atoms = rng.normal(size=(2 * d, d)).astype(np.float32)
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    freq = 1.0 / np.arange(1, 2 * d + 1) ** 0.7  # Zipf-like firing rates
    freq *= 24 / freq.sum()  # ~24 active directions per row
    out = np.zeros((n, d), np.float32)
    for start in range(0, n, 8192):
        rows = min(8192, n - start)
        coeff = rng.exponential(size=(rows, 2 * d)).astype(np.float32) * (rng.random((rows, 2 * d)) < freq)
        out[start:start + rows] = coeff @ atoms
    return out + 3.0 * atoms[0] + 0.05 * rng.normal(size=(n, d)).astype(np.float32)


def load_rows(profile: str, cache: str, slot: str, layer: int, d: int) -> tuple[np.ndarray, str]:
    from saesim.extract.pipeline import load_activations

    try:
        acts = load_activations(profile, slot, layer, out=cache)
    except Exception as exc:  # noqa: BLE001 - any failure falls back to synthetic rows
        print(f"no cached activations ({exc}); using structured random rows", flush=True)
        acts = None
    if acts is not None and acts.shape[1] == d and acts.shape[0] > TRAIN_ROWS:
        return np.ascontiguousarray(acts, dtype=np.float32), f"{profile} cache: slot {slot} layer {layer}"
    return structured_rows(TRAIN_ROWS + 28_000, d, seed=layer), "structured random rows (no cached activations)"


# --------------------------------------------------------------------------- worker (one training)
def worker(args: dict) -> None:
    """Train one SAE (or, with ``repeats``, alternate the trainers) in this fresh process; print one JSON line."""
    import torch

    from saesim.extract._sae_formats import import_sparsify
    from saesim.extract.saes import encode, fvu, train_topk_sae

    import_sparsify()  # imported before the clock starts
    torch.set_num_threads(args["threads"])
    data = np.load(args["data"], mmap_mode="r")
    if args.get("repeats"):
        train = np.ascontiguousarray(data[: args["train_rows"]])
        times = {"reference": [], "sparse": []}
        for _ in range(args["repeats"]):
            for trainer in times:
                started = time.perf_counter()
                train_topk_sae(train, seed=0, trainer=trainer, num_threads=args["threads"], progress=False,
                               evaluate=False, **args["recipe"])
                times[trainer].append(round(time.perf_counter() - started, 2))
        median = {t: float(np.median(v)) for t, v in times.items()}
        tokens = train.shape[0] * args["recipe"]["epochs"]
        print("RESULT " + json.dumps({
            "threads": args["threads"], "rows": train.shape[0], "seconds": times,
            "tokens_per_s_median": {t: round(tokens / m) for t, m in median.items()},
            "speedup_median": round(median["reference"] / median["sparse"], 2),
            "load_average": os.getloadavg()[0]}), flush=True)
        return
    train = np.ascontiguousarray(data[: args["train_rows"]])
    if args.get("perturb"):  # about one ulp
        noise = np.random.default_rng(1).standard_normal(train.shape, dtype=np.float32)
        train = (train * (1 + args["perturb"] * noise)).astype(np.float32)
    held = np.ascontiguousarray(data[args["train_rows"]:]) if args["heldout"] else None
    rss_before = peak_rss_mib()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    trained = train_topk_sae(train, seed=0, trainer=args["trainer"], num_threads=args["threads"], progress=False,
                             evaluate=False, **args["recipe"])
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
    rss_after = peak_rss_mib()
    tokens = train.shape[0] * args["recipe"]["epochs"]
    record = {"trainer": args["trainer"], "threads": args["threads"], "seconds": round(seconds, 2),
              "tokens_per_s": round(tokens / seconds), "cpu_seconds": round(cpu, 2),
              "tokens_per_cpu_s": round(tokens / cpu),
              "peak_rss_mib_before_training": rss_before, "peak_rss_mib": rss_after,
              "peak_rss_growth_mib": round(rss_after - rss_before, 1),
              "train_fvu_by_epoch": [round(h, 5) for h in trained.history], "load_average": os.getloadavg()[0]}
    if held is not None:
        codes = encode(trained.weights, held, progress=False)
        record["fvu_heldout"] = round(float(fvu(trained.weights, held, codes)), 5)
        record["dead_fraction_heldout"] = round(float((np.asarray((codes != 0).sum(axis=0)).ravel() == 0).mean()), 5)
    if args.get("weights"):
        w = trained.weights
        np.savez(args["weights"], W_enc=w.W_enc, b_enc=w.b_enc, W_dec=w.W_dec, b_dec=w.b_dec)
    print("RESULT " + json.dumps(record), flush=True)


def run_worker(**args) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(args)], capture_output=True, text=True,
                          check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"worker {args} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    record = json.loads(lines[-1][len("RESULT "):])
    print(json.dumps(record), flush=True)
    return record


def agreement(path_a: str, path_b: str) -> dict:
    """How close two trainers' weights are."""
    a, b = np.load(path_a), np.load(path_b)
    out = {}
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        x, y = a[name].astype(np.float64), b[name].astype(np.float64)
        out[name] = {"max_abs_diff_over_max_abs": float(np.abs(x - y).max() / max(np.abs(x).max(), 1e-30)),
                     "fraction_bit_identical": round(float(np.mean(a[name] == b[name])), 6)}
    cos = np.sum(a["W_dec"] * b["W_dec"], axis=1) / (
        np.linalg.norm(a["W_dec"], axis=1) * np.linalg.norm(b["W_dec"], axis=1))
    out["decoder_row_cosine"] = {"mean": float(cos.mean()), "min": float(cos.min()),
                                 "fraction_above_0.99": float(np.mean(cos > 0.99))}
    return out


# --------------------------------------------------------------------------- micro cases (this process)
def encoder_product(threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(1024, 640, generator=gen), torch.randn(4096, 640, generator=gen) / 25, torch.zeros(4096)

    def best(fn, reps=5):
        fn()
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    flops = 2 * 1024 * 640 * 4096
    fp32 = best(lambda: torch.addmm(b, x, w.T))
    xb, wb, bb = x.bfloat16(), w.bfloat16(), b.bfloat16()
    bf16 = best(lambda: torch.addmm(bb, xb, wb.T), reps=3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = best(lambda: torch.nn.functional.linear(x, w, b), reps=3)
    err = float((torch.addmm(bb, xb, wb.T).float() - torch.addmm(b, x, w.T)).abs().max()
                / torch.addmm(b, x, w.T).abs().max())
    return {"shape": "1024 x 640 @ 640 x 4096", "threads": threads, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "fp32_ms": round(fp32 * 1e3, 2), "fp32_gflops": round(flops / fp32 / 1e9, 1),
            "bf16_ms": round(bf16 * 1e3, 2), "bf16_autocast_ms": round(autocast * 1e3, 2),
            "bf16_over_fp32_time": round(bf16 / fp32, 2), "bf16_max_rel_error": err}


def compile_case(threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    shapes = [(4096, 640), (4096,), (4096, 640), (640,)]
    params = [torch.randn(s) for s in shapes]
    z = [p.clone() for p in params]
    grads = [torch.randn(s) for s in shapes]

    def update(ps, zs, gs, lr: float, ckp1: float):
        for p, q, g in zip(ps, zs, gs):
            p.lerp_(q, 1 - 1 / 0.95)
            q.add_(torch.sign(g), alpha=-lr)
            p.lerp_(q, ckp1)
            p.lerp_(q, 1 - 0.95)

    def per_step(fn, reps=20):
        fn(params, z, grads, 1e-3, 0.5)
        t = time.perf_counter()
        for _ in range(reps):
            fn(params, z, grads, 1e-3, 0.5)
        return (time.perf_counter() - t) / reps

    eager = per_step(update)
    out = {"what": "schedule-free SignSGD update of a 640 x 4096 SAE's parameters", "eager_ms": round(eager * 1e3, 2)}
    try:
        started = time.perf_counter()
        compiled = torch.compile(update)
        compiled(params, z, grads, 1e-3, 0.5)
        out["compile_seconds"] = round(time.perf_counter() - started, 1)
        out["compiled_ms"] = round(per_step(compiled) * 1e3, 2)
    except Exception as exc:  # noqa: BLE001 - report, do not fail the benchmark
        out["compile_error"] = f"{type(exc).__name__}: {exc}"[:300]
    return out


# --------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--profile", default="offline")
    parser.add_argument("--cache", default=".saesim_cache")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1],
                        help="torch thread counts of the shapes case (default: 1 and every core, the pipeline's)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["paired", "batch", "encoder_product", "compile"])
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    threads = sorted(set(args.threads))
    out = header("sae_train", threads=threads[-1], seed=0)
    out["recipe"] = {**RECIPE, "train_rows": TRAIN_ROWS}
    out["uptime_before"] = os.popen("uptime").read().strip()
    with tempfile.TemporaryDirectory(prefix="bench_sae_train_") as tmp:
        files = {}
        out["shapes"] = {}
        for name, (slot, layer, d) in SHAPES.items():
            rows, source = load_rows(args.profile, args.cache, slot, layer, d)
            files[name] = f"{tmp}/{name}.npy"
            np.save(files[name], rows)
            out["shapes"][name] = {"d": d, "data": source, "heldout_rows": int(rows.shape[0] - TRAIN_ROWS)}
            del rows
        for name, case in out["shapes"].items():
            for n_threads in threads:
                runs = {}
                for trainer in ("reference", "sparse"):  # one after the other, so both see about the same load
                    runs[trainer] = run_worker(trainer=trainer, threads=n_threads, data=files[name],
                                               train_rows=TRAIN_ROWS, heldout=True, recipe=RECIPE,
                                               weights=f"{tmp}/{name}-{trainer}-{n_threads}.npz")
                ref, fast = runs["reference"], runs["sparse"]
                case[f"threads_{n_threads}"] = {
                    **runs, "speedup": round(fast["tokens_per_s"] / ref["tokens_per_s"], 2),
                    "speedup_cpu_time": round(fast["tokens_per_cpu_s"] / ref["tokens_per_cpu_s"], 2),
                    "heldout_fvu_difference": round(fast["fvu_heldout"] - ref["fvu_heldout"], 5),
                    "weights_sparse_vs_reference": agreement(f"{tmp}/{name}-reference-{n_threads}.npz",
                                                             f"{tmp}/{name}-sparse-{n_threads}.npz")}
            if name == "gemma_d640":
                record = run_worker(trainer="reference", threads=threads[0], data=files[name], train_rows=TRAIN_ROWS,
                                    heldout=True, recipe=RECIPE, perturb=1e-7, weights=f"{tmp}/{name}-perturbed.npz")
                case["reference_on_inputs_1ulp_apart"] = {
                    "threads": threads[0], "fvu_heldout": record["fvu_heldout"],
                    "heldout_fvu_difference": round(
                        record["fvu_heldout"] - case[f"threads_{threads[0]}"]["reference"]["fvu_heldout"], 5),
                    "weights_vs_reference": agreement(f"{tmp}/{name}-reference-{threads[0]}.npz",
                                                      f"{tmp}/{name}-perturbed.npz")}
            if len(threads) > 1:
                lo, hi = threads[0], threads[-1]
                case[f"weights_reference_{lo}_vs_{hi}_threads"] = agreement(
                    f"{tmp}/{name}-reference-{lo}.npz", f"{tmp}/{name}-reference-{hi}.npz")
        if "paired" not in args.skip:
            out["paired"] = [{"data": out["shapes"]["gemma_d640"]["data"], **run_worker(
                threads=n, data=files["gemma_d640"], train_rows=16384, repeats=3, recipe={**RECIPE, "epochs": 1})}
                for n in threads]
            rows, source = load_rows(args.profile, args.cache, *LAYER0)
            np.save(f"{tmp}/layer0.npy", rows[:16384])
            del rows
            out["paired"].append({"data": source, **run_worker(
                threads=threads[0], data=f"{tmp}/layer0.npy", train_rows=16384, repeats=3,
                recipe={**RECIPE, "epochs": 1})})
        if "batch" not in args.skip:
            base = out["shapes"]["gemma_d640"][f"threads_{threads[0]}"]["sparse"]
            out["batch"] = {"shape": "gemma_d640", "trainer": "sparse", "lr_rule": "0.005 * sqrt(batch / 1024)",
                            "runs": [{"batch_size": 1024, "lr": 0.005, **base}]}
            for batch in (512, 2048, 4096):
                recipe = {**RECIPE, "batch_size": batch, "lr": round(0.005 * math.sqrt(batch / 1024), 6)}
                record = run_worker(trainer="sparse", threads=threads[0], data=files["gemma_d640"],
                                    train_rows=TRAIN_ROWS, heldout=True, recipe=recipe)
                out["batch"]["runs"].append({"batch_size": batch, "lr": recipe["lr"], **record})
    if "encoder_product" not in args.skip:
        out["encoder_product"] = [encoder_product(n) for n in threads]
        print(json.dumps(out["encoder_product"]), flush=True)
    if "compile" not in args.skip:
        out["compile"] = [compile_case(n) for n in threads]
        print(json.dumps(out["compile"]), flush=True)
    out["uptime_after"] = os.popen("uptime").read().strip()
    finish(out, RESULTS)


if __name__ == "__main__":
    main()
