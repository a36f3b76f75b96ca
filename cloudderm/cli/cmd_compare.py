"""``cloudderm compare DATASET [-c CFG] [-p NAME]... [-o OUT] [--labels CSV] [--subgroup COL]...``.

Exit codes: 0 every image answered by every provider; 1 finished, but some answers are errors or were
skipped (unreadable image, provider failure, open circuit breaker); 2 bad config/dataset/flags; 3 the
policy refused a provider (nothing was sent); 130 interrupted (re-run the same command to resume).
With ``--explain N`` the comparison runs first; an explanation budget refusal (``--max-calls``/``--yes``) is
then exit 2 with the comparison's outputs kept, and a failed explanation makes the exit code 1.
"""

from __future__ import annotations

import argparse
import shlex

from cloudderm.cli import (
    EXIT_FAILURES,
    EXIT_OK,
    add_config_option,
    add_provider_option,
    clean_message,
    output_console,
    positive_int,
    quiet_library_progress,
)
from cloudderm.cli.cmd_explain import add_explain_options

EXIT_INTERRUPTED = 130


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="send a dataset to every provider, resumably, and write summary and reports",
        description="Send the same images to every chosen provider and compare the answers. "
        "Re-running the same command resumes: answered pairs are never sent again.",
    )
    p.add_argument(
        "dataset", metavar="DATASET", help="folder of images, .parquet/.arrow file or folder, or .npz"
    )
    add_config_option(p)
    add_provider_option(p)
    p.add_argument("-o", "--out", default="cloudderm-out", help="output folder (default: cloudderm-out)")
    p.add_argument("--labels", metavar="CSV", help="labels CSV: image (or image_id), label (or dx), metadata")
    p.add_argument(
        "--subgroup",
        action="append",
        default=[],
        metavar="COL",
        help="metadata column to break metrics down by",
    )
    p.add_argument(
        "--concurrency", type=positive_int, metavar="N", help="threads per provider (overrides config)"
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        help="processes for image preparation and local models that load without torch (default: "
        "$CLOUDDERM_WORKERS, else one "
        "per core up to 8; 1: one process); cloud calls stay on threads; with --engine ray: shards on the "
        "cluster; see docs/compare.md",
    )
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: this machine (default); ray: preparation and every provider's calls on a Ray cluster "
        "under cluster-wide limits, answers stored here (pip install 'cloudderm[ray]'; docs/compare.md)",
    )
    p.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="Ray cluster to join with --engine ray (default: $RAY_ADDRESS, else a Ray running on this "
        "machine, else a local Ray for this run)",
    )
    p.add_argument("--limit", type=positive_int, metavar="N", help="only the first N images")
    p.add_argument("--no-resume", action="store_true", help="discard stored answers and start fresh")
    p.add_argument("--policy", choices=("enforce", "warn"), help="override the config's policy mode")
    p.add_argument("--baseline", metavar="OLD_OUT", help="an earlier output folder to diff against")
    p.add_argument("--volume", type=positive_int, metavar="N", help="images per month, for cost projections")
    p.add_argument("--split", help="split of a .npz or multi-split table dataset (default: test / all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--explain", type=positive_int, metavar="N", help="saliency maps for the N most-disagreed images"
    )
    add_explain_options(p)
    p.add_argument(
        "--mlflow",
        action="store_true",
        help="log the comparison to MLflow ($MLFLOW_TRACKING_URI, else OUT/mlruns); see docs/mlflow.md",
    )
    p.add_argument("--mlflow-experiment", metavar="NAME", help="MLflow experiment (implies --mlflow)")
    p.set_defaults(func=run)


def resume_command(args: argparse.Namespace) -> str:
    """The command that resumes this run (the same flags, never ``--no-resume``)."""
    parts = ["cloudderm", "compare", args.dataset]
    if args.config:
        parts += ["-c", args.config]
    for name in args.providers or []:
        parts += ["-p", name]
    parts += ["-o", args.out]
    for flag, value in (
        ("--labels", args.labels),
        ("--concurrency", args.concurrency),
        ("--workers", args.workers),
        ("--engine", args.engine if args.engine != "local" else None),
        ("--ray-address", args.ray_address),
        ("--limit", args.limit),
        ("--policy", args.policy),
        ("--baseline", args.baseline),
        ("--volume", args.volume),
        ("--split", args.split),
        ("--explain", args.explain),
        ("--max-calls", args.max_calls),
    ):
        if value is not None:
            parts += [flag, str(value)]
    for column in args.subgroup:
        parts += ["--subgroup", column]
    if args.mlflow_experiment:
        parts += ["--mlflow-experiment", args.mlflow_experiment]
    elif args.mlflow:
        parts.append("--mlflow")
    return shlex.join(parts)


def _plural(status: str, count: int) -> str:
    """ "1 error", "5 errors", "8 skipped": statuses read as counts."""
    return f"{status}s" if status == "error" and count != 1 else status


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    from cloudderm.compare.api import CompareInterrupted, run_compare
    from cloudderm.compare.datasets import open_dataset
    from cloudderm.config import load_config
    from cloudderm.errors import ConfigError
    from cloudderm.taxonomy import get_taxonomy

    console = output_console()
    err = Console(stderr=True, soft_wrap=True)
    if args.no_progress:
        quiet_library_progress()
    track = bool(args.mlflow or args.mlflow_experiment)
    if track:  # a missing MLflow is exit 2 before any image is sent
        from cloudderm.compare.mlflow_tracking import require_mlflow

        require_mlflow()
    config = load_config(args.config)
    try:
        taxonomy = get_taxonomy(config.taxonomy, config.labels)
    except ValueError as e:
        raise ConfigError(str(e), file=config.source, field="taxonomy") from None
    dataset = open_dataset(args.dataset, labels=args.labels, taxonomy=taxonomy, split=args.split)
    for problem in dataset.report.problems():
        err.print(f"[yellow]note:[/] {problem}")
    try:
        summary = run_compare(
            dataset,
            config=config,
            providers=args.providers,
            out=args.out,
            subgroups=args.subgroup,
            concurrency=args.concurrency,
            limit=args.limit,
            resume=not args.no_resume,
            policy=args.policy,
            baseline=args.baseline,
            volume=args.volume,
            progress=False if args.no_progress else None,
            console=console,
            resume_hint=resume_command(args),
            workers=args.workers,
            engine=args.engine,
            ray_address=args.ray_address,
        )
    except CompareInterrupted as e:
        err.print(f"[yellow]{e}[/]")
        return EXIT_INTERRUPTED
    failed = False
    for name, counts in summary["run"]["status"].items():
        bad = {k: v for k, v in counts.items() if k != "ok" and v}
        if bad:
            failed = True
            detail = ", ".join(f"{v} {_plural(k, v)}" for k, v in bad.items())
            breaker = summary["run"]["breaker"].get(name)
            err.print(
                f"[red]{escape(name)}:[/] {detail}" + (f" ({clean_message(breaker)})" if breaker else "")
            )
    unprepared = summary["run"].get("unprepared") or {}
    if unprepared:  # not in predictions.jsonl or the metrics: say so, and how to get them answered
        failed = True
        key, reason = next(iter(unprepared.items()))
        err.print(
            f"[red]{len(unprepared)} image(s) could not be prepared and were not sent[/] (first: "
            f"{escape(key)}: {escape(clean_message(reason))}); they are missing from the results. Run "
            f"the same command again to retry them: {escape(resume_command(args))}"
        )
    if args.explain:
        from pathlib import Path

        from cloudderm.explain.compare_hook import explain_disagreements
        from cloudderm.governance.policy import with_policy_mode

        summary = explain_disagreements(
            dataset,
            with_policy_mode(config, args.policy),
            summary,
            Path(args.out),
            count=args.explain,
            providers=args.providers,
            max_calls=args.max_calls,
            yes=args.yes,
            baseline=Path(args.baseline) if args.baseline else None,
            console=console,
        )
        failed = failed or any(image["errors"] for image in summary["explain"]["images"])
    reused = sum((summary["run"].get("reused") or {}).values())
    if reused:
        console.print(f"resumed: {reused} stored answer(s) reused, not sent again")
    console.print(
        f"wrote {args.out}/: results.sqlite, predictions.jsonl, summary.json, report.md, report.html"
    )
    if track:
        from rich.markup import escape

        from cloudderm.compare.mlflow_tracking import log_comparison_safely

        logged = log_comparison_safely(
            args.out,
            experiment=args.mlflow_experiment,
            warn=lambda m: err.print(f"[yellow]warning:[/] {escape(m)}"),
        )
        if logged is not None:
            console.print(f"MLflow: run {logged.parent_run_id} at {logged.tracking_uri}")
    return EXIT_FAILURES if failed else EXIT_OK
