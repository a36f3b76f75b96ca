"""``cloudderm dataset sample DATASET --labels CSV --per-stratum N [--by COL]... -o OUT.csv [--seed S]``."""

from __future__ import annotations

import argparse

from cloudderm.cli import EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dataset", help="dataset tools (stratified sampling)")
    actions = p.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)
    s = actions.add_parser(
        "sample",
        help="a small, diverse, seeded validation set: up to N images per label x --by stratum",
    )
    s.add_argument("dataset", metavar="DATASET", help="folder of images, .parquet/.arrow, or .npz")
    s.add_argument("--labels", metavar="CSV", help="labels CSV (image or image_id; label or dx; metadata)")
    s.add_argument("--per-stratum", type=int, required=True, metavar="N", help="images per stratum")
    s.add_argument(
        "--by", action="append", default=[], metavar="COL", help="also stratify by this column (repeatable)"
    )
    s.add_argument("-o", "--output", required=True, metavar="OUT.csv", help="where to write the sample")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0): same seed, same sample")
    s.add_argument("--split", help="split of a .npz or multi-split table dataset")
    s.add_argument("-c", "--config", help="config whose taxonomy and label synonyms to use (optional)")
    s.set_defaults(func=run_sample)


def run_sample(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from cloudderm.compare.datasets import open_dataset
    from cloudderm.compare.sampling import stratified_sample, write_sample_csv
    from cloudderm.taxonomy import HAM10000, get_taxonomy

    taxonomy = HAM10000
    if args.config:
        from cloudderm.config import load_config

        cfg = load_config(args.config)
        taxonomy = get_taxonomy(cfg.taxonomy, cfg.labels)
    dataset = open_dataset(args.dataset, labels=args.labels, taxonomy=taxonomy, split=args.split)
    sample = stratified_sample(dataset, args.per_stratum, args.by, seed=args.seed)
    path = write_sample_csv(dataset, sample, args.output)

    console = Console()
    table = Table(title=f"coverage: up to {args.per_stratum} per stratum (seed {args.seed})")
    for column in ("label", *args.by):
        table.add_column(column)
    table.add_column("available", justify="right")
    table.add_column("selected", justify="right")
    table.add_column("note")
    for stratum in sample.strata:
        short = stratum.available < args.per_stratum
        note = f"[red]too few: {stratum.available} < {args.per_stratum}[/]" if short else ""
        table.add_row(*stratum.values, str(stratum.available), str(stratum.selected), note)
    console.print(table)
    for problem in dataset.report.problems():
        console.print(f"[yellow]note:[/] {problem}")
    if sample.unlabelled:
        console.print(f"[yellow]note:[/] {sample.unlabelled} unlabelled image(s) left out")
    short = sample.short
    if short:
        console.print(
            f"[bold red]{len(short)} of {len(sample.strata)} strata have fewer than "
            f"{args.per_stratum} images[/] — results for them will be too thin to compare on their own."
        )
    console.print(
        f"wrote {path}: {len(sample.entries)} images in {len(sample.strata)} strata "
        f"(use it with: cloudderm compare {args.dataset} --labels {path})"
    )
    return EXIT_OK
