"""Benchmark: SAE training recipes against the profile's, on one layer of the default profile.

For each recipe, two SAEs that differ only by seed are trained on the same training rows of a
layer whose activations extraction kept (``saesim.extract.pipeline.load_activations``; the
default profile keeps Gemma's layers 0, 10 and 17), and measured side by side in one run:

* held-out FVU (on the rows after the training rows, as the book reports it), dead fraction;
* seed stability of the two SAEs (``saesim.compare.stability.sae_stability``: PW-MCC, the
  fraction shared at decoder cosine >= 0.7, by decoder and encoder, and the chance level);
* training seconds per SAE and peak memory.

Recipes (``--recipes``): ``profile`` (the profile's SAE settings), ``normalised`` (inputs scaled
to a mean norm of sqrt(d) on the training rows, as SAELens does; the SAE is trained on the scaled
rows and evaluated on the held-out rows scaled by the same factor, FVU being scale-free),
``epochs8`` (eight epochs), ``width1024`` (1 024 latents). Results go to
``benchmarks/results/sae_recipe.json``. Run after ``saesim extract`` (or ``saesim run``):
``.venv/bin/python benchmarks/bench_sae_recipe.py --layer 10``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "sae_recipe.json"
RECIPES = ("profile", "normalised", "epochs8", "width1024")


def peak_rss_gib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="offline")
    parser.add_argument("--cache", default=".saesim_cache")
    parser.add_argument("--slot", default="a")
    parser.add_argument("--layer", type=int, default=10)
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=RECIPES)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    import torch

    from saesim.compare.stability import sae_stability
    from saesim.config import load_profile
    from saesim.extract.pipeline import load_activations
    from saesim.extract.saes import encode, fvu, train_topk_sae

    profile = load_profile(args.profile)
    spec = profile.model(args.slot).sae
    acts = load_activations(profile, args.slot, args.layer, out=args.cache)
    if acts is None:
        raise SystemExit(f"no kept activations of slot {args.slot} layer {args.layer} in {args.cache}; run "
                         f"`saesim extract --profile {args.profile}` first (it keeps the baseline layers).")
    acts = np.asarray(acts, dtype=np.float32)
    n_train = spec.train_tokens or acts.shape[0]
    train, held = acts[:n_train], acts[n_train:]
    out = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                       "threads": args.threads, "load": os.getloadavg()},
           "profile": args.profile, "slot": args.slot, "layer": args.layer, "d": int(acts.shape[1]),
           "train_rows": int(train.shape[0]), "heldout_rows": int(held.shape[0]),
           "mean_norm": float(np.linalg.norm(train, axis=1).mean()), "recipes": {}}
    base = {"num_latents": spec.num_latents, "k": spec.k, "epochs": spec.epochs, "batch_size": spec.batch_size,
            "lr": spec.lr}
    for recipe in args.recipes:
        settings = dict(base)
        scale = 1.0
        if recipe == "normalised":
            scale = float(np.sqrt(acts.shape[1]) / np.linalg.norm(train, axis=1).mean())
        elif recipe == "epochs8":
            settings["epochs"] = 8
        elif recipe == "width1024":
            settings["num_latents"] = 1024
        runs, weights = [], []
        for seed in (0, 1):
            t0 = time.perf_counter()
            trained = train_topk_sae(train * scale, seed=seed, num_threads=args.threads, progress=False,
                                     evaluate=False, **settings)
            seconds = time.perf_counter() - t0
            codes = encode(trained.weights, held * scale, progress=False)
            dead = float(np.asarray((codes != 0).sum(axis=0)).ravel().__eq__(0).mean())
            runs.append({"seed": seed, "seconds": round(seconds, 1),
                         "fvu_heldout": round(float(fvu(trained.weights, held * scale, codes)), 4),
                         "dead_fraction_heldout": round(dead, 4)})
            weights.append(trained.weights)
        stab = sae_stability(np.asarray(weights[0].W_dec), np.asarray(weights[1].W_dec),
                             encoder_a=np.asarray(weights[0].W_enc).T, encoder_b=np.asarray(weights[1].W_enc).T)
        record = {k: v for k, v in stab.to_dict().items()
                  if k in ("pw_mcc", "shared_dec", "shared_dec_enc", "chance_pw_mcc", "chance_shared_dec")}
        out["recipes"][recipe] = {"settings": {**settings, "input_scale": scale}, "runs": runs,
                                  **{k: round(float(v), 4) for k, v in record.items()}}
        print(recipe, json.dumps(out["recipes"][recipe]), flush=True)
    out["peak_rss_gib"] = peak_rss_gib()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
