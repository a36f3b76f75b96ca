"""``cloudderm emulate``: serve configured local models as emulated provider endpoints.

Every protocol in :mod:`cloudderm.emulate.registry` is served unless ``--protocol NAME`` (repeatable)
picks some. Prints the base URL, each endpoint's addresses and a ``providers:`` block to paste into
cloudderm.yaml, then serves until Ctrl-C (or SIGTERM) and prints what it received.
"""

from __future__ import annotations

import argparse
import signal
import threading
from typing import TYPE_CHECKING

from cloudderm.cli import EXIT_OK, add_config_option, port_number, selected_providers

if TYPE_CHECKING:
    from rich.console import Console

    from cloudderm.classifier import Classifier
    from cloudderm.emulate.emulator import Emulator

FAKE_WARNING = (
    "No --backend given: serving the FAKE test double (scores are a hash of the image bytes, not a model). "
    "Use -c CFG --backend NAME to serve a real local model."
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "emulate",
        help="serve local models as loopback SageMaker / Azure ML / Vertex AI endpoints, with faults",
        description="Serve configured local models behind emulated SageMaker, Azure ML and Vertex AI "
        "endpoints on 127.0.0.1, so the real cloud adapters can be exercised offline. Runs until Ctrl-C.",
    )
    add_config_option(p)
    p.add_argument(
        "--backend",
        action="append",
        dest="backends",
        metavar="NAME",
        help="provider from the config to serve (repeatable); each is emulated under its own name",
    )
    p.add_argument(
        "--protocol",
        action="append",
        dest="protocols",
        metavar="NAME",
        help="protocol to serve (repeatable; default: all). Known: " + ", ".join(_protocol_names()),
    )
    p.add_argument("--port", type=port_number, default=0, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument(
        "--faults",
        default="",
        metavar="SPEC",
        help="fault rates, e.g. 429=0.1,503=0.05,424=0.01,timeout=0.02,malformed=0.01",
    )
    p.add_argument(
        "--latency-ms",
        default="0",
        metavar="SPEC",
        help="added latency: 100 (fixed), 50-150 (uniform) or lognormal:100:0.5 (median, sigma)",
    )
    p.add_argument("--seed", default="0", help="fault/latency seed; the same seed replays the same faults")
    p.add_argument("--retry-after-s", type=float, default=1.0, help="Retry-After sent with 429s (default 1)")
    p.add_argument(
        "--timeout-hold-s",
        type=float,
        default=10.0,
        help="seconds a timeout fault holds the connection before the provider's timeout answer (default 10)",
    )
    p.add_argument(
        "--sagemaker-format",
        default="jumpstart-verbose",
        choices=["jumpstart-verbose", "jumpstart", "builtin", "huggingface"],
        help="which SageMaker container to emulate (default jumpstart-verbose)",
    )
    p.add_argument(
        "--azure-flavor",
        default="automl",
        choices=["automl", "transformers"],
        help="Azure ML scoring schema (default automl)",
    )
    p.add_argument("--azure-key", default="emulator-key", help="endpoint key Azure ML requests must present")
    p.add_argument("--region", default="eu-west-2", help="AWS region written into the SageMaker snippet")
    p.add_argument("--log-requests", action="store_true", help="print one line per request")
    p.set_defaults(func=run)


def _protocol_names() -> list[str]:
    from cloudderm.emulate.registry import protocol_names

    return protocol_names()


def build_emulator(args: argparse.Namespace) -> tuple[Emulator, list[Classifier], list[str]]:
    """The emulator described by the arguments, its backends (to close later) and warnings to show."""
    from cloudderm.emulate import EmulatedEndpoint, Emulator, FaultPlan
    from cloudderm.errors import ConfigError

    unknown = [name for name in args.protocols or [] if name not in _protocol_names()]
    if unknown:
        raise ConfigError(
            f"--protocol {', '.join(unknown)}: not an emulated protocol; "
            f"known: {', '.join(_protocol_names())}"
        )
    warnings: list[str] = []
    backends: dict[str, Classifier] = {}
    if args.backends:
        from cloudderm.config import load_config
        from cloudderm.factory import build_classifier

        config = load_config(args.config)
        try:
            for name in selected_providers(config, args.backends):
                backends[name] = build_classifier(name, config)
        except BaseException:
            for clf in backends.values():
                clf.close()
            raise
    else:
        from cloudderm.testing.fakes import FakeClassifier

        backends["fake"] = FakeClassifier("fake")
        warnings.append(FAKE_WARNING)
    try:
        plan = FaultPlan.parse(
            args.faults,
            latency=args.latency_ms,
            seed=args.seed,
            retry_after_s=args.retry_after_s,
            timeout_hold_s=args.timeout_hold_s,
        )
    except ValueError as e:
        for clf in backends.values():
            clf.close()
        raise ConfigError(f"--faults/--latency-ms: {e}") from None
    endpoints = {
        name: EmulatedEndpoint(
            backend=clf,
            sagemaker_format=args.sagemaker_format,
            azure_flavor=args.azure_flavor,
            azure_key=args.azure_key,
        )
        for name, clf in backends.items()
    }
    emulator = Emulator(
        endpoints,
        faults=plan,
        port=args.port,
        region=args.region,
        log_requests=args.log_requests,
        protocols=getattr(args, "protocols", None),
    )
    return emulator, list(backends.values()), warnings


def print_banner(emu: Emulator, console: Console, warnings: list[str]) -> None:
    """What a user needs to point the adapters (or any client) at the running emulator.

    Values the user typed (names, keys, regions) are escaped: ``[/bold]`` in one is text, not markup.
    """
    from rich.markup import escape

    for warning in warnings:
        console.print(f"[bold yellow]warning:[/] {escape(warning)}")
    console.print(f"[bold]cloudderm emulator[/] listening on [cyan]{escape(emu.base_url)}[/]")
    console.print(f"faults: {escape(emu.app.faults.describe())}")
    for name in sorted(emu.app.endpoints):
        console.print(f"  [bold]{escape(name)}[/]")
        for protocol in emu.app.protocols:
            console.print(f"    {protocol.title:<10} {escape(protocol.banner(emu, name))}")
    console.print(f"  {'stats':<12} GET  {escape(emu.stats_url)}")
    env = emu.client_env()
    if env:
        exports = " ".join(f"{k}={v}" for k, v in env.items())
        console.print(f"clients need some credentials (not checked): export {escape(exports)}")
    console.print("providers block for cloudderm.yaml:")
    print(emu.providers_yaml(), flush=True)
    console.print("[dim]Ctrl-C to stop[/]")


def _listen(emu: Emulator, port: int) -> Emulator:
    """Bind the emulator; a port in use or not ours to take is a ConfigError (exit 2), not a traceback."""
    from cloudderm.errors import ConfigError

    try:
        return emu.start()
    except OSError as e:
        raise ConfigError(
            f"cannot listen on 127.0.0.1:{port}: {e.strerror or e}; "
            "choose another --port (0 picks a free one)",
            field="port",
        ) from None


def run(args: argparse.Namespace, *, stop: threading.Event | None = None) -> int:
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    emu, backends, warnings = build_emulator(args)
    stop = stop or threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with _listen(emu, args.port):
            print_banner(emu, console, warnings)
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
            totals = emu.stats.snapshot()["totals"]
        console.print(
            f"stopped: {totals['requests']} requests, {totals['images']} images, "
            f"{totals['bytes_received']:,} bytes, {totals['faults']} injected faults, "
            f"metadata in uploads: {'YES' if totals['metadata_seen'] else 'no'}"
        )
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        for clf in backends:
            clf.close()
    return EXIT_OK
