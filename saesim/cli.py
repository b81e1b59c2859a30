"""Command line: ``saesim <command> ...``.

Commands
--------
``saesim extract --profile NAME [--out DIR] [--n-docs N] [--layers L ...] ...``
    Run data → models → SAEs → codes → top contexts for a profile (resumable)
    and print one line per (model, layer).
``saesim profiles [NAME]``
    List the shipped profiles, or print one as YAML.

Each command registers itself with a ``_register_<command>(subparsers)``
function and runs through the ``func`` it sets, so later commands (``run``,
``book``) are added the same way.
"""

from __future__ import annotations

import argparse
import logging
import sys

import yaml

__all__ = ["build_parser", "main"]


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the descriptions' line breaks and shows real defaults (not None/False)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


def _overrides_from(args) -> dict:
    """Profile overrides from the common options (dotted keys)."""
    overrides: dict = {}
    for item in args.set or ():
        if "=" not in item:
            raise SystemExit(f"saesim: error: --set expects KEY=VALUE (e.g. data.n_docs=50); got {item!r}")
        key, value = item.split("=", 1)
        try:
            overrides[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise SystemExit(f"saesim: error: --set {key}: cannot parse {value!r} ({exc})") from None
    if getattr(args, "n_docs", None) is not None:
        overrides["data.n_docs"] = args.n_docs
    if getattr(args, "max_length", None) is not None:
        overrides["data.max_length"] = args.max_length
    if getattr(args, "layers", None):
        overrides["layers_a"] = list(args.layers)
        overrides["layers_b"] = list(args.layers)
    if getattr(args, "layers_a", None):
        overrides["layers_a"] = list(args.layers_a)
    if getattr(args, "layers_b", None):
        overrides["layers_b"] = list(args.layers_b)
    if getattr(args, "device", None):
        overrides["device"] = args.device
    if getattr(args, "compat", False):
        overrides["compat"] = True
    return overrides


def _add_profile_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("profile")
    group.add_argument("--profile", "-p", default="offline",
                       help="a shipped profile (see `saesim profiles`) or the path of a YAML file")
    group.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override any profile field, nested with dots; the value is read as YAML "
                            "(repeatable; e.g. --set data.n_docs=50 --set model_a.sae.epochs=1)")
    group.add_argument("--n-docs", type=_positive_int, metavar="N", help="documents of the corpus (data.n_docs)")
    group.add_argument("--max-length", type=_positive_int, metavar="N", help="tokens per document (data.max_length)")
    group.add_argument("--layers", type=_layer, nargs="+", metavar="L",
                       help="layers of A, B (and the controls, which follow A)")
    group.add_argument("--layers-a", type=_layer, nargs="+", metavar="L", help="layers of model A only")
    group.add_argument("--layers-b", type=_layer, nargs="+", metavar="L", help="layers of model B only")
    group.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], help="torch device of the forward passes")
    group.add_argument("--compat", action="store_true",
                       help="reproduce the authors' computation (hidden_states[L], no masking, ReLU pre-activations)")


def _positive_int(text: str) -> int:
    """argparse type: ``text`` as an integer >= 1 (checked by saesim.validation.check_positive_int)."""
    from saesim.validation import check_positive_int

    try:
        return check_positive_int(int(text), "N")
    except ValueError:  # int("x"), or a value below 1
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None


def _layer(text: str) -> int:
    """argparse type: ``text`` as a layer index, an integer >= 0."""
    from saesim.validation import check_positive_int

    try:
        return check_positive_int(int(text), "layer", minimum=0)
    except ValueError:  # int("x"), or a negative value
        raise argparse.ArgumentTypeError(f"expected a layer index (integer >= 0), got {text!r}") from None


# --------------------------------------------------------------------------- extract


def _register_extract(subparsers) -> None:
    parser = subparsers.add_parser(
        "extract", formatter_class=_Formatter,
        help="tokens → activations → SAE codes → top contexts, cached (resumable)",
        description=(
            "Run the model side of a profile: tokenize its corpus, run each model once capturing every SAE's\n"
            "hook, load or train the SAEs, encode sparse codes, check the reconstruction FVU, find each latent's\n"
            "top-activating contexts, and cache everything. A finished (model, layer) is reused, so an\n"
            "interrupted run resumes. Prints one line per (model, layer): tokens kept, latents, dead fraction,\n"
            "mean L0, FVU and cache size. With a seed slot (a second SAE set of model A), then the SAE quality\n"
            "table: each SAE's held-out FVU, dead fraction, L0 and seed stability (PW-MCC, shared fractions, chance)."
        ),
        epilog="example: saesim extract --profile offline --out runs/offline --n-docs 200 --layers 0 3",
    )
    _add_profile_options(parser)
    parser.add_argument("--out", "-o", metavar="DIR", help="artefact store (default: the profile's cache_dir)")
    parser.add_argument("--slots", nargs="+", choices=["a", "b", "seed", "control", "control_all"],
                        help="only these model slots (default: all of the profile)")
    parser.add_argument("--max-fvu", type=float, metavar="X",
                        help="FVU limit of the SAE/hook guard (default 0.9)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    parser.add_argument("--verbose", "-v", action="store_true", help="log what is cached")
    parser.set_defaults(func=_run_extract)


def _run_extract(args) -> int:
    from saesim.config import load_profile
    from saesim.extract.pipeline import extract

    profile = load_profile(args.profile, **_overrides_from(args))
    summary = extract(profile, out=args.out, progress=not args.no_progress, max_fvu=args.max_fvu,
                      slots=tuple(args.slots) if args.slots else None)
    print(summary.table())
    if "seed" in profile.slots:  # a second SAE set of model A: print the SAE quality with seed stability
        from saesim.experiments.sae_quality import quality_text, sae_quality_table

        print()
        print(quality_text(sae_quality_table(profile, cache=args.out)))
    return 0


# --------------------------------------------------------------------------- profiles


def _register_profiles(subparsers) -> None:
    parser = subparsers.add_parser(
        "profiles", formatter_class=_Formatter, help="list the shipped profiles or print one as YAML",
        description="Without NAME: list the shipped profiles. With NAME (or a YAML path): print it, with every "
                    "default filled in and the overrides applied.",
    )
    parser.add_argument("name", nargs="?", help="profile to print")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a field (as in `extract`)")
    parser.set_defaults(func=_run_profiles)


def _run_profiles(args) -> int:
    from saesim.config import list_profiles, load_profile

    if not args.name:
        for name in list_profiles():
            profile = load_profile(name)
            print(f"{name:<10} {profile.description}")
        return 0
    print(load_profile(args.name, **_overrides_from(args)).to_yaml(), end="")
    return 0


# --------------------------------------------------------------------------- run


def _register_run(subparsers) -> None:
    from saesim.experiments.executors import EXECUTORS
    from saesim.experiments.grid import METRICS
    from saesim.compare.match import DIRECTIONS, RULES

    parser = subparsers.add_parser(
        "run", formatter_class=_Formatter,
        help="extract (cached), then the full-space grid, the control grid and the semantic grid",
        description=(
            "Run a profile end to end: extraction through the cache (as `saesim extract`), then for every\n"
            "(layer of A, layer of B) the best partners, each pairing rule, the filters and SVCCA/RSA/CKA with\n"
            "their nulls (full_space.parquet), the controls the profile defines (A against a second SAE set\n"
            "of A: full_space_a_vs_seed.parquet; the re-randomised copies of A against B:\n"
            "full_space_control_vs_b.parquet, full_space_control_all_vs_b.parquet), and the concept\n"
            "subspaces (subspace.parquet). Cells already computed under the same settings are reused."
        ),
        epilog="example: saesim run --profile offline --layers 0 3 5 --rule first_index hungarian --n-perm 200",
    )
    _add_profile_options(parser)
    parser.add_argument("--cache", metavar="DIR", help="artefact store (default: the profile's cache_dir)")
    parser.add_argument("--out", "-o", metavar="DIR", help="results folder (default: <cache>/results)")
    parser.add_argument("--rule", nargs="+", choices=RULES, metavar="RULE",
                        help=f"pairing rules to score, from {', '.join(RULES)} (default: the profile's rule and many_to_one)")
    parser.add_argument("--direction", nargs="+", choices=DIRECTIONS, default=["b_to_a"],
                        help="b_to_a: each B latent picks an A latent (the paper's); a_to_b: the reverse")
    parser.add_argument("--n-perm", type=_positive_int, metavar="N", help="permutations of each null (default: the profile's)")
    parser.add_argument("--metrics", nargs="+", choices=METRICS, metavar="METRIC",
                        help=f"measures scored with their nulls, from {', '.join(METRICS)} (default: all; the "
                             "paper's are svcca and rsa)")
    parser.add_argument("--seed", type=int, metavar="S", help="seed of the nulls (default: the profile's)")
    parser.add_argument("--r-min", type=float, metavar="R", help="keep pairs with r > R (default: the profile's, 0.1)")
    parser.add_argument("--no-junk-filter", action="store_true", help="skip the non-concept/top-token filter")
    parser.add_argument("--top-k", type=_positive_int, metavar="K", help="top tokens compared by the filter (paper: 5)")
    parser.add_argument("--no-control", action="store_true", help="skip the control grids (SAE seed, random models)")
    parser.add_argument("--no-semantic", action="store_true", help="skip the concept subspaces")
    parser.add_argument("--no-steering", action="store_true",
                        help="skip the steering-transfer stage (causal models only; a few minutes on the CPU)")
    parser.add_argument("--executor", choices=EXECUTORS, default="local",
                        help="serial (this process), local (a process per core) or ray")
    parser.add_argument("--workers", type=_positive_int, metavar="N", help="processes / Ray CPUs (default: all cores)")
    parser.add_argument("--ray-address", metavar="ADDR", help="an existing Ray cluster (default: start a local one)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    parser.add_argument("--verbose", "-v", action="store_true", help="log what is cached")
    parser.set_defaults(func=_run_run)


def _run_run(args) -> int:
    from saesim.config import load_profile
    from saesim.experiments.grid import GridPlan, run_profile, settings_from_profile

    if args.ray_address and args.executor != "ray":
        raise SystemExit("saesim run: error: --ray-address needs --executor ray")
    profile = load_profile(args.profile, **_overrides_from(args))
    changes = {"directions": tuple(args.direction)}
    if args.rule:
        changes["rules"] = tuple(args.rule)
    if args.metrics:
        changes["metrics"] = tuple(dict.fromkeys(args.metrics))
    for option, field in (("n_perm", "n_perm"), ("seed", "seed"), ("r_min", "r_min"), ("top_k", "top_k")):
        if getattr(args, option) is not None:
            changes[field] = getattr(args, option)
    if args.no_junk_filter:
        changes["junk_filter"] = False
    settings = settings_from_profile(profile, **changes)
    plan = GridPlan(executor=args.executor, n_workers=args.workers, ray_address=args.ray_address,
                    progress=not args.no_progress)
    results = run_profile(profile, plan=plan, settings=settings, out=args.out, cache=args.cache,
                          control=not args.no_control, semantic=not args.no_semantic)
    failed = 0
    for name, result in results.items():
        print(f"{name}: {result.summary()}")
        for cell, error in result.failed.items():
            print(f"  failed cell {cell}: {error.strip().splitlines()[-1]}", file=sys.stderr)
        failed += len(result.failed)
    if not args.no_steering:
        from saesim.experiments.steering import run_steering, steering_applies, steering_line

        why_not = steering_applies(profile)
        if why_not:
            print(f"steering transfer: skipped ({why_not})")
        else:
            print(steering_line(run_steering(profile, cache=args.cache, out=args.out, progress=not args.no_progress)))
    if "seed" in profile.slots:  # the SAE-quality table every page's scope box reads (cached)
        from saesim.experiments.sae_quality import quality_text, sae_quality_table

        print(quality_text(sae_quality_table(profile, cache=args.cache)))
    return 1 if failed else 0


# --------------------------------------------------------------------------- book


def _register_book(subparsers) -> None:
    parser = subparsers.add_parser(
        "book", formatter_class=_Formatter,
        help="execute the notebooks with papermill and build the Jupyter Book site",
        description=(
            "Execute every notebook of notebooks/ with papermill (profile, cache and results injected, plus\n"
            "any -p KEY=VALUE) into book/generated/, then build the site with Jupyter Book into _build/html\n"
            "(strict: Sphinx warnings are errors). Run `saesim run` first: the notebooks read its tables."
        ),
        epilog="example: saesim book --profile offline -p rule=hungarian -p 'layers_a=[0, 3]'",
    )
    parser.add_argument("--profile", default="offline", help="profile name or YAML path injected into the notebooks")
    parser.add_argument("--cache", metavar="DIR", help="artefact store (default: the profile's cache_dir)")
    parser.add_argument("--results", metavar="DIR", help="results of `saesim run` (default: <cache>/results)")
    parser.add_argument("--notebooks", nargs="+", metavar="NAME", help="execute only these notebooks")
    parser.add_argument("-p", "--parameter", action="append", metavar="KEY=VALUE",
                        help="notebook parameter, value read as YAML (repeatable)")
    parser.add_argument("--jobs", "-j", type=_positive_int, metavar="N",
                        help="notebooks executed side by side, each in its own kernel (default: 2, 1 on one core)")
    parser.add_argument("--no-execute", action="store_true", help="only rebuild the HTML from executed notebooks")
    parser.add_argument("--no-strict", action="store_true", help="do not turn Sphinx warnings into errors")
    parser.add_argument("--site-url", metavar="URL",
                        help="where the site will be served (https://host/path), for the figures' citable handles "
                             "and canonical links (default: $SAESIM_SITE_URL, else html.baseurl of _config.yml; "
                             "none: handles relative to the site root)")
    parser.set_defaults(func=_run_book)


def _run_book(args) -> int:
    from saesim.report.build import BookBuildError, build_book, parse_parameters
    from saesim.report.citable import site_url

    try:
        parameters = parse_parameters(args.parameter)
        site = site_url(args.site_url)
    except ValueError as exc:
        raise SystemExit(f"saesim book: error: {exc}") from None
    try:
        build_book(args.profile, cache=args.cache, results=args.results, notebooks=args.notebooks,
                   parameters=parameters, strict=not args.no_strict, execute=not args.no_execute, jobs=args.jobs,
                   site_url=site)
    except BookBuildError as exc:
        print(f"saesim book: error: {exc}", file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    """The ``saesim`` argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="saesim", formatter_class=_Formatter,
        description="Compare SAE feature spaces across language models (companion of arXiv 2410.06981).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _register_extract(subparsers)
    _register_profiles(subparsers)
    _register_run(subparsers)
    _register_book(subparsers)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``saesim`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from saesim.extract.cache import CacheMissError
    from saesim.config import ProfileError
    from saesim.extract.data import DataNotFoundError, HubUnavailableError, TokenizerMismatchError

    known = (ProfileError, DataNotFoundError, HubUnavailableError, TokenizerMismatchError, CacheMissError)
    try:
        from saesim.extract.saes import SaeMismatchError

        known = known + (SaeMismatchError,)
    except ImportError:  # pragma: no cover
        pass
    try:
        return int(args.func(args) or 0)
    except known as exc:
        print(f"saesim {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
