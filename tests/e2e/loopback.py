"""Network guards for the recording tests: a generic loopback HTTP server, a loopback-only socket guard and
moto in server mode.

No provider wire format lives here: tests that need a provider's endpoint use the real emulators
(``cloudderm.emulate``, through ``tests/e2e/emulator_support.py``). The generic server answers with
whatever handler a cassette-machinery test gives it. It binds 127.0.0.1 on an ephemeral port; cassettes
ignore the port.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

Reply = tuple[int, dict[str, str], bytes]
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
REGION = "eu-west-2"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Loopback:
    """A threaded HTTP server on 127.0.0.1 answering every request with ``handler(seen)``."""

    handler: Callable[[Seen], Reply]
    seen: list[Seen] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start the server first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Loopback:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(self.command, self.path, dict(self.headers.items()), self.rfile.read(length))
                outer.seen.append(seen)
                status, headers, body = outer.handler(seen)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _serve

            def log_message(self, *args: Any) -> None:
                """Keep test output quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def json_reply(payload: Any, status: int = 200, **headers: str) -> Reply:
    return status, {"Content-Type": "application/json", **headers}, json.dumps(payload).encode()


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any connection or name lookup beyond 127.0.0.1, so recording tests stay offline.

    Replay blocks the network by itself; this guards the *recording* half, where background helpers
    (google-auth's access-boundary lookup, for one) would otherwise try the real internet.
    """
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def connect(sock: socket.socket, address: Any, *args: Any) -> Any:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOCAL_HOSTS:
            raise OSError(f"test tried to reach {address!r}: only loopback is allowed")
        return real_connect(sock, address, *args)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in LOCAL_HOSTS:
            raise socket.gaierror(socket.EAI_NONAME, f"test tried to resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """moto in server mode on 127.0.0.1 (any free port) whose SageMaker runtime accepts binary bodies.

    moto 5 decodes every request body as UTF-8 unless the service opts into raw bodies; sagemaker-runtime
    does not, so a JPEG body gets a 500. The patch takes the body raw and gives moto latin-1 text to key its
    per-body result cache on; queueing results (``queue_sagemaker_results``) is unchanged.
    """
    from moto.moto_api._internal import moto_api_backend
    from moto.sagemakerruntime.responses import SageMakerRuntimeResponse
    from moto.server import ThreadedMotoServer

    original = SageMakerRuntimeResponse.setup_class

    def setup_class(self: Any, request: Any, full_url: str, headers: Any, use_raw_body: Any = None) -> None:
        original(self, request, full_url, headers, use_raw_body=True)
        if isinstance(self.body, bytes):
            self.body = self.body.decode("latin-1")

    # moto's state lives in the process, not the server: results queued (or cached per body) by an earlier
    # test would answer this one. Reset in-process, so no setup request can end up in a cassette.
    moto_api_backend.reset()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SageMakerRuntimeResponse, "setup_class", setup_class)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


def queue_sagemaker_results(url: str, bodies: list[Any], variant: str = "AllTraffic") -> None:
    """Queue InvokeEndpoint answers on a moto server; each new request body takes the next one."""
    import requests

    results = [
        {"Body": json.dumps(b), "ContentType": "application/json", "InvokedProductionVariant": variant}
        for b in bodies
    ]
    reply = requests.post(
        f"{url}/moto-api/static/sagemaker/endpoint-results", json={"region": REGION, "results": results}
    )
    reply.raise_for_status()
