"""The ``cloudderm`` command.

Each sub-command is a ``cmd_<name>.py`` module beside this one exposing ``register(subparsers)`` (which
adds its parser and sets ``func``); modules import their heavy parts inside ``func`` so ``--help`` is fast.
Exit codes: 0 ok, 1 finished with provider failures, 2 usage or config error, 3 refused by policy.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence
from typing import Any

from cloudderm.errors import (
    CloudDermError,
    ConfigError,
    InvalidImageError,
    MissingDependencyError,
    PolicyViolation,
)

__all__ = [
    "EXIT_FAILURES",
    "EXIT_OK",
    "EXIT_POLICY",
    "EXIT_USAGE",
    "build_parser",
    "clean_message",
    "main",
    "output_console",
    "quiet_library_progress",
]

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

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    err = Console(stderr=True, soft_wrap=True)  # a message is one line, whatever the width
    try:
        return int(args.func(args) or 0)
    except PolicyViolation as e:
        err.print(f"[bold red]refused by policy:[/] {clean_message(e)}")
        return EXIT_POLICY
    except (ConfigError, MissingDependencyError, InvalidImageError) as e:
        err.print(f"[bold red]error:[/] {clean_message(e)}")
        return EXIT_USAGE
    except CloudDermError as e:
        err.print(f"[bold red]error:[/] {clean_message(e)}")
        return EXIT_FAILURES
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        return 130
    except Exception as e:
        # A bug, not a user error: one clean line (the traceback only on request), never a secret.
        if os.environ.get("CLOUDDERM_DEBUG"):
            raise
        err.print(
            f"[bold red]internal error:[/] {clean_message(f'{type(e).__name__}: {e}')} "
            "(please report it; set CLOUDDERM_DEBUG=1 for the traceback)"
        )
        return EXIT_FAILURES


def clean_message(error: object) -> str:
    """An error message as printed: secrets scrubbed, rich markup escaped (``[provider 'x']`` is text)."""
    from rich.markup import escape

    from cloudderm.redact import scrub_text

    return escape(scrub_text(str(error)))


def quiet_library_progress() -> None:
    """``--no-progress`` also silences library bars (transformers' "Loading weights", hub downloads).

    The hub reads ``HF_HUB_DISABLE_PROGRESS_BARS`` when imported; transformers copies it then, so a module
    already imported is told directly.
    """
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    elif "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()


def output_console() -> Any:
    """A console for tables on stdout: the terminal's width, or 200 columns into a pipe or file.

    Rich assumes 80 columns when stdout is not a terminal, which wraps every table row; ``--json`` is
    the format for programs, so a pipe gets the table unwrapped instead.
    """
    from rich.console import Console

    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=200)
    return console


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


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free one) to 65535; anything else is a usage error (exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is out of range: a port is 0 (any free one) to 65535")
    return value
