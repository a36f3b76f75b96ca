"""Loopback servers that answer with one recorded VLM envelope, for decoding real bodies through the SDKs."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from typing import Any

from cloudderm.testing.emulator_server import EmulatorServer
from cloudderm.testing.wire import Reply


class Canned:
    """Answers every POST with one body (a recorded envelope, possibly with only its content changed)."""

    def __init__(self, body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None):
        self.body, self.status, self.stop = body, status, threading.Event()
        self.headers = headers or {}
        self.requests: list[dict[str, Any]] = []
        self.targets: list[str] = []
        self.request_headers: list[Any] = []

    def handle(self, method: str, target: str, headers: Any, body: bytes) -> Reply:
        self.targets.append(target)
        self.request_headers.append(headers)
        self.requests.append(json.loads(body) if body else {})
        return Reply(
            self.status, json.dumps(self.body).encode(), {"Content-Type": "application/json", **self.headers}
        )


@contextlib.contextmanager
def canned_server(app: Canned) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1; yields its base URL (no path)."""
    server = EmulatorServer(app)  # type: ignore[arg-type]
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.close()
