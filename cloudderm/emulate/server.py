"""The loopback HTTP/1.1 server under the emulators: threads, keep-alive and a clean shutdown.

Why not just ``ThreadingHTTPServer``: its handler threads are daemons that can outlive the server (a test
suite then ends with threads still blocked on idle keep-alive sockets). This server keeps its handler
threads joinable, remembers every open connection, and on ``close()`` shuts those sockets down so blocked
reads return at once; held "timeout" faults and latency waits end through the app's stop event.
"""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cloudderm.emulate.app import EmulatorApp
from cloudderm.emulate.wire import Reply

__all__ = ["EmulatorServer"]

MAX_BODY_BYTES = 64 * 1024 * 1024
IDLE_KEEPALIVE_S = 60.0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cloudderm-emulator"
    sys_version = ""
    timeout = IDLE_KEEPALIVE_S
    disable_nagle_algorithm = True  # small header + body writes must not wait for delayed ACKs (~40 ms)
    server: EmulatorServer

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._read_chunked()
        else:
            try:
                size = int(length or 0)
            except ValueError:
                size = -1
            if size < 0 or size > MAX_BODY_BYTES:
                self._send(Reply(400, b"bad Content-Length", {"Content-Type": "text/plain"}), close=True)
                return
            body = self.rfile.read(size) if size else b""
            if len(body) < size:  # the client went away mid-upload: no request arrived, so none is counted
                self.close_connection = True
                return
        headers = {k: v for k, v in self.headers.items()}
        reply = self.server.app.handle(self.command, self.path, _Caseless(headers), body)
        self._send(reply)

    def _read_chunked(self) -> bytes:
        chunks = []
        while True:
            line = self.rfile.readline(65537)
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline(65537)

    def _send(self, reply: Reply, *, close: bool = False) -> None:
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            if close or self.server.closing:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up first (e.g. its read timeout fired)

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionError, TimeoutError, OSError):
            self.close_connection = True

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.log_requests:
            super().log_message(format, *args)


class _Caseless(dict):
    """Request headers looked up case-insensitively, as HTTP requires."""

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__({k.lower(): v for k, v in headers.items()})

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


class EmulatorServer(ThreadingHTTPServer):
    """A threading HTTP server whose threads and sockets are all accounted for at close."""

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 makes 16+ concurrent clients (the runner's default) wait for
    # SYN retransmits (1 s and more) whenever connections open in a burst: load tests then measure that.
    request_queue_size = 128

    def __init__(
        self, app: EmulatorApp, host: str = "127.0.0.1", port: int = 0, *, log: bool = False
    ) -> None:
        self.app = app
        self.log_requests = log
        self.closing = False
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        super().__init__((host, port), _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def start(self) -> None:
        """Serve in a background thread (``cloudderm-emulator``) until ``close()``."""
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, name="cloudderm-emulator", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop accepting, end waits, wake blocked reads, then join every handler thread."""
        self.closing = True
        self.app.stop.set()
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        with self._connections_lock:
            open_connections = list(self._connections)
        for conn in open_connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.server_close()
