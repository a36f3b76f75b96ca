"""Starting the app: loopback by default, authentication required anywhere else, temp folder cleanup.

Binding a non-loopback address exposes the providers (and their bills) to the network, so it needs
``--auth-file`` (``user:password`` lines, passed to Gradio's ``auth=``) or an explicit
``--insecure-public``, which prints a warning. Hugging Face hub lookups are off (``HF_HUB_OFFLINE=1``
unless set) so an uncached hub model is reported as unavailable at once instead of stalling start-up.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloudderm.errors import ConfigError

if TYPE_CHECKING:
    from cloudderm.app.providers import ProviderPool

__all__ = ["create", "is_loopback", "launch", "read_auth_file"]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_auth_file(path: str | os.PathLike) -> list[tuple[str, str]]:
    """``user:password`` pairs, one a line (blank lines and ``#`` comments ignored)."""
    file = Path(path)
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ConfigError(f"cannot read the auth file: {e.strerror}", file=str(file)) from None
    pairs: list[tuple[str, str]] = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user or not password:
            raise ConfigError(f"line {number} is not user:password", file=str(file))
        pairs.append((user, password))
    if not pairs:
        raise ConfigError("the auth file has no user:password line", file=str(file))
    return pairs


def create(
    config: Any,
    results: str | os.PathLike | None = None,
    examples: Path | None = None,
    notice: str | None = None,
) -> Any:
    """``(blocks, state, tempdir)``: the app built for ``config`` (providers warmed up, nothing sent).

    ``config`` is a Config or ``load_app_config``'s ``(Config, unreadable providers)``.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from cloudderm.app.ui import AppState, build_app
    from cloudderm.app.uploads import AppTempDir

    if results is not None and not Path(results).is_dir():
        raise ConfigError(f"--results {results} is not a folder")
    tempdir = AppTempDir()
    state = AppState(
        pool_or_future=_start_pool(config),
        examples=examples,
        results=Path(results).resolve() if results is not None else None,
        notice=notice,
    )
    return build_app(state), state, tempdir


def _start_pool(config: Any) -> Future[ProviderPool]:
    """Build and warm up the providers in a background thread, so the server answers meanwhile."""
    from cloudderm.app.providers import ProviderPool

    args = config if isinstance(config, tuple) else (config,)
    executor = ThreadPoolExecutor(1, thread_name_prefix="cloudderm-app-providers")
    future = executor.submit(ProviderPool, *args)
    executor.shutdown(wait=False)
    return future


def launch(
    config: Any,
    *,
    results: str | os.PathLike | None = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    auth_file: str | None = None,
    insecure_public: bool = False,
    examples: Path | None = None,
    notice: str | None = None,
    block: bool = True,
) -> Any:
    """Build and serve the app; returns the Blocks (when ``block`` is False the server keeps running)."""
    auth = read_auth_file(auth_file) if auth_file else None
    if not is_loopback(host) and auth is None:
        if not insecure_public:
            raise ConfigError(
                f"binding {host} opens the app to the network: pass --auth-file FILE (user:password "
                "lines) or --insecure-public"
            )
        print(
            f"WARNING: serving on {host} WITHOUT authentication (--insecure-public): anyone who can reach "
            "this port can send images to your providers, at your cost.",
            file=sys.stderr,
        )
    blocks, state, tempdir = create(config, results, examples, notice)
    allowed = [str(examples)] if examples is not None else None
    try:
        blocks.launch(
            server_name=host,
            server_port=port,
            auth=auth,
            allowed_paths=allowed,
            prevent_thread_lock=not block,
            show_error=False,
            quiet=False,
        )
    finally:
        if block:
            state.pool.close()
            tempdir.cleanup()
    if not block:
        blocks.cloudderm_cleanup = lambda: (state.pool.close(), tempdir.cleanup())
    return blocks
