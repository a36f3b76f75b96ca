"""``cloudderm classify IMAGE... [-c CFG] [-p NAME]... [--json] [--age Y --sex S --site TEXT]``.

One table row per image x provider. ``--age/--sex/--site`` build the ``ImageContext`` sent with every
image, so a provider that reads metadata (the zoo's ``use_metadata: true``, a VLM's prompt) gets it.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from cloudderm.cli import (
    EXIT_FAILURES,
    EXIT_OK,
    add_config_option,
    add_provider_option,
    output_console,
    selected_providers,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("classify", help="classify images with one or more configured providers")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of images")
    add_config_option(p)
    add_provider_option(p)
    p.add_argument("--json", action="store_true", help="print JSON (one object per image x provider)")
    p.add_argument(
        "--policy",
        choices=["enforce", "warn"],
        help="override the config's policy mode: warn records violations on every prediction instead",
    )
    meta = p.add_argument_group(
        "patient/lesion context (sent with every image; providers that cannot use it ignore it)"
    )
    meta.add_argument("--age", type=_age, metavar="YEARS", help="patient age in years (0..150)")
    meta.add_argument("--sex", choices=["female", "male", "unknown"], help="patient sex")
    meta.add_argument("--site", type=_site, metavar="TEXT", help='lesion site, free text (e.g. "back")')
    p.set_defaults(func=run)


def _age(text: str) -> float:
    """``--age``: years, checked by ``ImageContext`` itself so the CLI and the library agree on the range."""
    from cloudderm.core import ImageContext

    try:
        age = float(text)
        ImageContext(age=age)
    except ValueError:
        raise argparse.ArgumentTypeError(f"age must be years in 0..150, got {text!r}") from None
    return age


def _site(text: str) -> str:
    site = text.strip()
    if not site:
        raise argparse.ArgumentTypeError("site must not be empty (omit --site when it is unknown)")
    return site


def context_from(args: argparse.Namespace) -> Any:
    """The ``ImageContext`` the flags describe; None when no flag was given (as if no metadata is known)."""
    from cloudderm.core import ImageContext

    if args.age is None and args.sex is None and args.site is None:
        return None
    return ImageContext(age=args.age, sex=args.sex, site=args.site)


def run(args: argparse.Namespace) -> int:
    from cloudderm.classifier import ImageLimits
    from cloudderm.config import load_config
    from cloudderm.errors import CloudDermError
    from cloudderm.factory import build_classifier
    from cloudderm.governance.policy import with_policy_mode
    from cloudderm.prediction import NOT_A_DIAGNOSIS
    from cloudderm.redact import scrub_mapping, scrub_text
    from cloudderm.startup import start_providers

    config = with_policy_mode(load_config(args.config), args.policy)
    names = selected_providers(config, args.providers)
    paths = expand_images(args.images)  # a missing file or an empty folder: exit 2 before anything loads
    classifiers = [build_classifier(name, config) for name in names]  # policy checked before any send
    context = context_from(args)
    rows: list[dict[str, Any]] = []
    failures = 0
    try:
        limits = ImageLimits()
        for clf in classifiers:
            limits = limits.merge(clf.image_limits())
        prepared = prepare_all(paths, limits)  # a non-image: exit 2, nothing sent
        load_ms = start_providers(classifiers)  # secrets, clients, model loads: timed apart from calls
        for path, image in prepared:
            for clf in classifiers:
                try:
                    prediction = clf.classify(image, context=context)
                    row = {"image": path, **prediction.model_dump(mode="json")}
                except CloudDermError as e:
                    failures += 1
                    row = {"image": path, "provider": clf.name, "error": scrub_text(str(e))}
                rows.append(scrub_mapping({**row, "load_ms": round(load_ms[clf.name], 1)}))
    finally:
        for clf in classifiers:
            clf.close()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        console = output_console()
        for name, ms in load_ms.items():
            console.print(f"[dim]{name}: ready in {ms / 1000:.2f} s (load time; not in the latencies)[/]")
        console.print(_table(rows))
        console.print(f"[dim]{NOT_A_DIAGNOSIS}[/]")
    return EXIT_FAILURES if failures else EXIT_OK


def expand_images(arguments: list[str]) -> list[str]:
    """Files as given; a folder becomes every image under it (as ``compare`` reads a folder).

    Raises:
        InvalidImageError: a path does not exist, or a folder holds no image (exit 2).
    """
    from pathlib import Path

    from cloudderm.compare.datasets import IMAGE_EXTENSIONS, scan_images
    from cloudderm.errors import InvalidImageError

    paths: list[str] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            found = scan_images(path)
            if not found:
                raise InvalidImageError(
                    argument, f"folder holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})"
                )
            paths.extend(str(path / rel) for rel in found)
        elif not path.exists():
            raise InvalidImageError(argument, "no such file")
        else:
            paths.append(argument)
    return paths


def prepare_all(paths: list[str], limits: Any) -> list[tuple[str, Any]]:
    """Every image decoded and fitted once, before any provider is loaded or called."""
    from cloudderm.images import prepare

    return [(path, prepare(path, max_bytes=limits.max_bytes, max_side=limits.max_side)) for path in paths]


def _table(rows: list[dict[str, Any]]):  # type: ignore[no-untyped-def]
    from rich.table import Table

    table = Table(title="cloudderm classify", show_lines=False)
    for column in ("image", "provider", "top label", "score", "code", "triage", "ms", "warnings"):
        table.add_column(column, overflow="fold")
    for row in rows:
        if "error" in row:
            table.add_row(row["image"], row["provider"], f"[red]error: {row['error']}[/]", "", "", "", "", "")
            continue
        if row.get("outcome", "answered") != "answered":  # a VLM abstained or answered unparseably
            what = f"[yellow]{row['outcome']}: {row.get('reason') or '-'}[/]"
            table.add_row(row["image"], row["provider"], what, "", "", "", f"{row['latency_ms']:.0f}", "")
            continue
        top = row["labels"][0] if row["labels"] else {"label": "-", "score": 0.0}
        table.add_row(
            row["image"],
            row["provider"],
            top["label"],
            f"{top['score']:.3f}",
            row["canonical"] or "[yellow]out-of-domain[/]",
            row["triage"] or "-",
            f"{row['latency_ms']:.0f}",
            "; ".join(row["warnings"]),
        )
    return table
