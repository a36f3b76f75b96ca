"""The ``cloudderm`` command.

Each sub-command is a ``cmd_<name>.py`` module beside this one exposing ``register(subparsers)`` (which
adds its parser and sets ``func``); modules import their heavy parts inside ``func`` so ``--help`` is fast.
Exit codes: 0 ok, 1 finished with provider failures, 2 usage or config error, 3 refused by policy.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from cloudderm.errors import (
    CloudDermError,
    ConfigError,
    InvalidImageError,
    MissingDependencyError,
    PolicyViolation,
)

__all__ = ["EXIT_FAILURES", "EXIT_OK", "EXIT_POLICY", "EXIT_USAGE", "build_parser", "main"]

EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_POLICY = 0, 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every ``cmd_*`` module's sub-command."""
    from cloudderm import __version__

    parser = argparse.ArgumentParser(
        prog="cloudderm",
        description="Send the same images to several vision-model providers and compare the answers. "
        "Research use only: no output is a diagnosis.",
    )
    parser.add_argument("--version", action="version", version=f"cloudderm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            importlib.import_module(f"{__name__}.{info.name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (also used as the console script's status)."""
    from rich.console import Console
    from rich.markup import escape

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    err = Console(stderr=True)
    try:
        return int(args.func(args) or 0)
    except PolicyViolation as e:
        err.print(f"[bold red]refused by policy:[/] {escape(str(e))}")
        return EXIT_POLICY
    except (ConfigError, MissingDependencyError, InvalidImageError) as e:
        err.print(f"[bold red]error:[/] {escape(str(e))}")  # keeps "[extra]" in install hints
        return EXIT_USAGE
    except CloudDermError as e:
        err.print(f"[bold red]error:[/] {escape(str(e))}")
        return EXIT_FAILURES
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        return 130


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """``-c/--config`` with the documented search order."""
    parser.add_argument(
        "-c", "--config", help="config file (default: ./cloudderm.yaml, then $CLOUDDERM_CONFIG)"
    )


def add_provider_option(parser: argparse.ArgumentParser) -> None:
    """``-p/--provider`` (repeatable); default is every provider in the config."""
    parser.add_argument(
        "-p",
        "--provider",
        action="append",
        dest="providers",
        metavar="NAME",
        help="provider name from the config (repeatable; default: all)",
    )


def positive_int(text: str) -> int:
    """An argparse type for counts that must be at least 1 (``--limit``, ``--concurrency``...)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def selected_providers(config, names: Sequence[str] | None) -> list[str]:  # type: ignore[no-untyped-def]
    """The providers the user asked for, all of them by default; unknown names are a ConfigError."""
    return config.select(names)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
