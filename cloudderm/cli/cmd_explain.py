"""``cloudderm explain IMAGE... -p NAME [-p ...] [-c CFG] [-o DIR] [--method M] [--target LABEL] [--sanity]``.

Gradient maps for local PyTorch models, black-box occlusion for every other provider. Before the first
call the exact number of provider calls and their estimated cost are printed; above the budget (200 by
default) the run refuses unless ``--max-calls N`` covers it or ``--yes`` is given.

Exit codes: 0 every pair explained; 1 some pair failed (a provider error); 2 bad config, image, method,
target, or the call budget refused (nothing sent); 3 the policy refused a provider (nothing sent).
"""

from __future__ import annotations

import argparse

from cloudderm.cli import EXIT_FAILURES, EXIT_OK, add_config_option, add_provider_option, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="saliency maps per image x provider (gradients locally, occlusion for black boxes)",
        description="Show where each provider's model looks. Research output only: not a diagnosis.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    add_config_option(p)
    add_provider_option(p)
    p.add_argument(
        "-o", "--out", default="cloudderm-explain", help="output folder (default: cloudderm-explain)"
    )
    add_explain_options(p)
    p.add_argument(
        "--method", default="auto", help="auto, gradcam, integrated-gradients, rollout or occlusion"
    )
    p.add_argument(
        "--target", metavar="LABEL", help="canonical code (mel) or provider label; default: top label"
    )
    p.add_argument("--sanity", action="store_true", help="model-randomisation check (local models)")
    p.add_argument(
        "--grid", type=positive_int, default=7, help="occlusion grid per side (default 7: 50 calls)"
    )
    p.add_argument(
        "--no-deletion", action="store_true", help="skip the deletion check (saves 2 calls per map)"
    )
    p.add_argument("--policy", choices=("enforce", "warn"), help="override the config's policy mode")
    p.set_defaults(func=run)


def add_explain_options(p: argparse.ArgumentParser) -> None:
    """``--max-calls`` and ``--yes``: shared by ``explain`` and ``compare --explain``."""
    p.add_argument("--max-calls", type=positive_int, metavar="N", help="allow up to N provider calls")
    p.add_argument("--yes", action="store_true", help="accept any number of calls above the default budget")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console

    from cloudderm.classifier import ImageLimits
    from cloudderm.compare.outdir import check_writable
    from cloudderm.compare.store import ResultStore
    from cloudderm.config import load_config
    from cloudderm.explain.api import Explainer, ExplainOptions
    from cloudderm.explain.session import run_explanations
    from cloudderm.factory import build_classifier
    from cloudderm.governance.policy import with_policy_mode
    from cloudderm.images import prepare

    options = ExplainOptions(
        method=args.method,
        target=args.target,
        sanity=args.sanity,
        deletion=not args.no_deletion,
        grid=args.grid,
    )
    config = with_policy_mode(load_config(args.config), args.policy)
    names = config.select(args.providers)
    classifiers = []
    try:
        for name in names:
            classifiers.append(build_classifier(name, config))  # policy checked before any send
        limits = ImageLimits()
        for clf in classifiers:
            limits = limits.merge(clf.image_limits())
        images = [
            (Path(p).stem, prepare(p, max_bytes=limits.max_bytes, max_side=limits.max_side))
            for p in args.images
        ]
        out = Path(args.out)
        check_writable(out)  # a file or read-only -o is exit 2, not an OSError traceback (issue #12)
        with ResultStore(out / "results.sqlite") as store:
            explainer = Explainer(options, store)
            result = run_explanations(
                explainer, images, classifiers, out, max_calls=args.max_calls, yes=args.yes, console=Console()
            )
    finally:
        for clf in classifiers:
            clf.close()
    return EXIT_FAILURES if result.errors else EXIT_OK
