"""Benchmark: how far SAE seed stability climbs with training on this machine (issue #22, item 3).

The sweeps chapter draws the book's SAE frontier (``saesim.experiments.sae_frontier``: the
profile's recipe and points around it, two seeds each, on model A's middle layer). This script
runs the same design on the same layer, plus points the book cannot afford: 2x and 4x the
profile's training tokens (more of WikiText-2 + Brown outside the grid, captured here) and 4x
its epochs at its own tokens. The profile's point is the baseline in the same run; every row
records its training seconds, so the minutes a target would take are read off measured points,
not only the fit. Results (one row per point, the log-linear projection of
``sae_frontier.projection`` over every tokens-axis point, peak RSS, the machine's load) go to
``benchmarks/results/sae_frontier.json``.

``--extra`` runs the book's recipe axes (``sae_frontier.RECIPE_AXES``; the book measures them at a
quarter of the profile's tokens) at half the profile's tokens, beside that point itself (the
baseline, same run): k (16 and 64 against the profile's 32), the optimizer (Adam with its linear
decay over the last 20 % of steps and sparsify's Adam learning rate, against schedule-free signum),
the learning rate (half and twice the profile's) and the input scaling (mean norm sqrt(d), as
SAELens). It adds them to the same JSON under ``extra_axes``.

Run after ``saesim run --profile offline`` (it reuses the grid's activations of the layer and
captures the longer training text once, about 10 min for Gemma):
``nice -n 5 .venv/bin/python benchmarks/bench_sae_frontier.py --cache /work/cache``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import finish, header, timed  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "sae_frontier.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="offline")
    parser.add_argument("--cache", default=".saesim_cache")
    parser.add_argument("--slot", default="a")
    parser.add_argument("--layer", type=int, default=None, help="default: the sweeps' layer of the slot")
    parser.add_argument("--scale", type=int, nargs="+", default=[2, 4],
                        help="multiples of the profile's training tokens beyond it (default 2 4)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--extra", action="store_true",
                        help="only the recipe axes (k, optimizer, learning rate, input scaling)")
    args = parser.parse_args()

    import numpy as np
    import torch

    from saesim.config import load_profile
    from saesim.experiments.sae_frontier import FrontierPoint, default_points, projection, sae_frontier
    from saesim.experiments.sweeps import default_sweep_pair
    from saesim.extract.pipeline import load_activations, train_activations

    profile = load_profile(args.profile)
    spec = profile.model(args.slot).sae
    layer = args.layer if args.layer is not None else default_sweep_pair(profile)[0 if args.slot == "a" else 1]
    t, e, w, k = int(spec.train_tokens), int(spec.epochs), int(spec.num_latents), int(spec.k)
    longest = t * max(args.scale)
    bigger = profile.replace(**{f"{name}.sae.train_tokens": longest for name in ("model_a", "model_b")})
    results = header("sae_frontier", threads=torch.get_num_threads(), seed=0)
    heldout = load_activations(profile, args.slot, layer, out=args.cache)
    if args.extra:
        run_extra(args, profile, spec, layer, heldout, t, e, w, k)
        return
    capture_s, train = timed(lambda: train_activations(bigger, args.slot, layer, out=args.cache, progress=False))
    if heldout is None:
        raise SystemExit(f"the grid's activations of slot {args.slot} layer {layer} are not stored under "
                         f"{args.cache}; run `saesim extract --profile {args.profile} --out {args.cache}` first.")
    points = list(default_points(t, e, w, k))
    points += [FrontierPoint("tokens", t * s, e, w, k) for s in args.scale]
    points += [FrontierPoint("epochs", t, 4 * e, w, k)]
    seconds, frame = timed(lambda: sae_frontier(np.asarray(train), heldout, points, seeds=(0, 1),
                                                batch_size=spec.batch_size, lr=spec.lr, trainer=spec.trainer))
    proj = projection(frame)
    base = frame[frame["axis"] == "profile"].iloc[0]
    results.update({
        "profile": profile.name, "profile_key": profile.key(), "slot": args.slot, "layer": int(layer),
        "recipe": {"train_tokens": t, "epochs": e, "num_latents": w, "k": k, "lr": spec.lr,
                   "batch_size": spec.batch_size, "trainer": spec.trainer, "train_text": list(spec.train_text)},
        "n_heldout": int(heldout.shape[0]), "capture_seconds": round(capture_s, 1),
        "train_seconds_total": round(seconds, 1),
        "rows": frame.round(4).to_dict("records"),
        "ratio_to_profile": {f"{r.axis}:{r.train_tokens}x{r.epochs}x{r.num_latents}": {
            "pw_mcc": round(float(r.pw_mcc / base.pw_mcc), 3),
            "shared_dec": round(float(r.shared_dec / base.shared_dec), 3) if base.shared_dec > 0 else None,
            "seconds": round(float(r.seconds / base.seconds), 3)} for r in frame.itertuples()},
        "projection": {key: (value if not isinstance(value, float) else round(value, 4))
                       for key, value in proj.items()} if isinstance(proj, dict) else proj,
    })
    finish(results, args.out)
    print(frame[["axis", "train_tokens", "epochs", "num_latents", "pw_mcc", "shared_dec", "fvu_heldout",
                 "seconds"]].to_string(index=False))


def run_extra(args, profile, spec, layer, heldout, t, e, w, k) -> None:
    """The recipe axes (k, optimizer, learning rate, input scaling) at half the profile's tokens, beside that point;
    into ``extra_axes``."""
    import json

    import numpy as np
    import torch

    from saesim.experiments.sae_frontier import RECIPE_AXES, FrontierPoint, default_points, sae_frontier
    from saesim.extract.pipeline import train_activations

    if heldout is None:
        raise SystemExit(f"the grid's activations of slot {args.slot} layer {layer} are not stored under {args.cache}.")
    train = train_activations(profile, args.slot, layer, out=args.cache, progress=False)
    half = t // 2
    # the book's recipe axes (default_points puts them at a quarter of its tokens), here at half the profile's
    points = [FrontierPoint("tokens", half, e, w, k)] + [
        p for p in default_points(2 * half, e, w, k, lr=spec.lr) if p.axis in RECIPE_AXES]
    started = header("sae_frontier_extra", threads=torch.get_num_threads(), seed=0)
    seconds, frame = timed(lambda: sae_frontier(np.asarray(train), heldout, points, seeds=(0, 1),
                                                batch_size=spec.batch_size, lr=spec.lr, trainer=spec.trainer))
    # the frame says each point's recipe, the rate it trained at included
    rows = frame[["axis", "train_tokens", "epochs", "num_latents", "k", "optimizer", "lr", "normalise", "pw_mcc",
                  "shared_dec", "shared_dec_enc", "chance_pw_mcc", "fvu_heldout", "dead_fraction", "mean_l0",
                  "seconds"]].round(4).to_dict("records")
    record = json.loads(args.out.read_text()) if args.out.is_file() else header("sae_frontier", threads=1, seed=0)
    record["extra_axes"] = {"machine": started["machine"], "layer": int(layer), "baseline": "the first row "
                            f"({half} tokens x {e} epochs, {w} latents, k = {k}, signum at lr {spec.lr})",
                            "train_seconds_total": round(seconds, 1), "rows": rows}
    finish(record, args.out)
    print(frame[["axis", "k", "pw_mcc", "shared_dec", "fvu_heldout", "seconds"]].to_string(index=False))


if __name__ == "__main__":
    main()
