"""Loopback servers that answer with one recorded VLM envelope, for decoding real bodies through the SDKs."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from typing import Any

from cloudderm.emulate.server import EmulatorServer
from cloudderm.emulate.wire import Reply


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


class OpenAIEmulated:
    """The shared ``Emulator`` serving one backend through protocol ``openai`` only, as model ``gpt-4o``."""

    MODEL = "gpt-4o"

    def __init__(self, backend: Any, faults: str = "", *, seed: str = "0", retry_after_s: float = 1.0):
        from cloudderm.emulate import Emulator, FaultPlan

        plan = FaultPlan.parse(faults, seed=seed, retry_after_s=retry_after_s)
        self.emulator = Emulator({self.MODEL: backend}, faults=plan, protocols=["openai"])

    @property
    def base_url(self) -> str:
        return f"{self.emulator.base_url}/v1"

    @property
    def stats(self) -> Any:
        return self.emulator.endpoint_stats("openai", self.MODEL)

    def __enter__(self) -> OpenAIEmulated:
        self.emulator.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.emulator.close()
