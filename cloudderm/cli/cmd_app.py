"""``cloudderm app [-c CFG] [--results DIR] [--host H] [--port P] [--auth-file F] [--insecure-public]``."""

from __future__ import annotations

import argparse

from cloudderm.cli import EXIT_OK, add_config_option, port_number


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "app",
        help="web app: one image through several providers side by side, and a browser for compare results",
    )
    add_config_option(p)
    p.add_argument("--results", metavar="DIR", help="a `cloudderm compare` output folder for the Results tab")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, loopback only)")
    p.add_argument("--port", type=port_number, default=7860, help="port (default: 7860)")
    p.add_argument("--auth-file", metavar="FILE", help="user:password lines; required off loopback")
    p.add_argument(
        "--insecure-public",
        action="store_true",
        help="allow a non-loopback --host without authentication (prints a warning)",
    )
    p.add_argument("--examples", metavar="DIR", help="images offered as examples (default: examples/images)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cloudderm.app._gradio import import_gradio
    from cloudderm.app.appconfig import load_app_config
    from cloudderm.app.server import launch
    from cloudderm.demo import find_examples

    import_gradio()  # the install hint before anything else
    config = load_app_config(args.config)  # a provider missing its secret is listed, not fatal
    examples, _ = find_examples(args.examples)
    launch(
        config,
        results=args.results,
        host=args.host,
        port=args.port,
        auth_file=args.auth_file,
        insecure_public=args.insecure_public,
        examples=examples.resolve(),
    )
    return EXIT_OK
