"""How a cassette stores an exchange: the redacted request record and the YAML file format.

Kept apart from the recorder so the format can be read (and reviewed) on its own: a request becomes a
:class:`RecordedRequest` (method, redacted URI, harmless headers, a body *description*), a response keeps
status, harmless headers and its body; the file is ``format: cloudderm-cassette/1`` YAML. Plain vcrpy
cassettes are refused on load because they keep request bodies.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml
from vcr.filters import decode_response
from vcr.persisters.filesystem import CassetteNotFoundError
from vcr.request import Request

from cloudderm.testing.errors import CassetteError
from cloudderm.testing.redact import (
    body_bytes,
    describe_body,
    is_token_exchange,
    keep_headers,
    redact_response_body,
    redact_uri,
    request_key,
)

__all__ = [
    "FORMAT",
    "RERECORD_HINT",
    "Persister",
    "RecordedRequest",
    "dump_document",
    "sanitize_request",
    "sanitize_response",
    "to_document",
    "write_atomically",
]

FORMAT = "cloudderm-cassette/1"
HEADER = (
    "# cloudderm cassette: recorded HTTP answers, replayed offline (docs/recording.md).\n"
    "# Request bodies are kept only as SHA-256 + length (JSON: structure with blobs hashed); secrets are\n"
    "# dropped. Re-record rather than edit by hand.\n"
)
RERECORD_HINT = 'Re-record it with `pytest --cloudderm-record=all ...` (or cassette(path, mode="record"))'


class RecordedRequest(Request):
    """A request as a cassette keeps it: redacted URI and headers, a description instead of the body."""

    body_info: dict[str, Any]

    @classmethod
    def build(
        cls, method: str, uri: str, headers: dict[str, list[str]], info: dict[str, Any]
    ) -> RecordedRequest:
        recorded = cls(method=method, uri=uri, body=None, headers=headers)
        recorded.body_info = info
        return recorded

    @property
    def key(self) -> tuple[Any, ...]:
        return (*request_key(self.method, self.uri), self.body_info["sha256"])

    def describe(self) -> str:
        method, host, path, query = request_key(self.method, self.uri)
        shown = path + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")
        info = self.body_info
        return f"{method} {host}{shown} body sha256:{info['sha256']} ({info['length']} bytes)"


def sanitize_request(request: Request) -> RecordedRequest | None:
    """The stored form of a live request, or None for a token exchange (never recorded)."""
    if isinstance(request, RecordedRequest):
        return request
    raw = request.body_bytes if hasattr(type(request), "body_bytes") else request.body
    data = body_bytes(raw.read() if hasattr(raw, "read") else raw)
    if is_token_exchange(request.method, request.uri, data):
        return None
    return RecordedRequest.build(
        request.method, redact_uri(request.uri), keep_headers(request.headers), describe_body(data)
    )


def sanitize_response(response: dict[str, Any]) -> dict[str, Any]:
    """Decompressed, without secret headers, secret-named JSON fields redacted; the rest byte for byte."""
    response = decode_response(response)
    headers = keep_headers(response.get("headers") or {})
    data = body_bytes(response["body"]["string"])
    kept = redact_response_body(data)
    if kept is not data:
        for name in headers:
            if name.lower() == "content-length":
                headers[name] = [str(len(kept))]
    return {"status": dict(response["status"]), "headers": headers, "body": {"string": kept}}


def _dump_body(data: bytes) -> str | bytes:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data


def to_document(interactions: list[tuple[RecordedRequest, dict[str, Any]]]) -> dict[str, Any]:
    """The YAML document of a cassette (what is written to disk, and what the scanner reads back)."""
    return {
        "format": FORMAT,
        "interactions": [
            {
                "request": {
                    "method": request.method,
                    "uri": request.uri,
                    "headers": {k: [v] for k, v in request.headers.items()},
                    "body": request.body_info,
                },
                "response": {
                    "status": response["status"],
                    "headers": response["headers"],
                    "body": _dump_body(body_bytes(response["body"]["string"])),
                },
            }
            for request, response in interactions
        ],
    }


def dump_document(document: dict[str, Any]) -> str:
    return HEADER + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=110)


class Persister:
    """vcrpy persister for the cloudderm format (loading only: saving is the cassette context's job)."""

    @staticmethod
    def load_cassette(cassette_path: Any, serializer: Any = None) -> tuple[list[Any], list[Any]]:
        path = Path(cassette_path)
        if not path.is_file():
            raise CassetteNotFoundError()
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise CassetteError(
                f"{path} is not a {FORMAT} file (plain vcrpy cassettes keep request bodies). {RERECORD_HINT}."
            )
        requests, responses = [], []
        for item in document.get("interactions") or []:
            req, resp = item["request"], item["response"]
            headers = {k: list(v) for k, v in (req.get("headers") or {}).items()}
            requests.append(RecordedRequest.build(req["method"], req["uri"], headers, dict(req["body"])))
            body = resp.get("body")
            responses.append(
                {
                    "status": dict(resp["status"]),
                    "headers": {k: list(v) for k, v in (resp.get("headers") or {}).items()},
                    "body": {"string": body.encode("utf-8") if isinstance(body, str) else bytes(body or b"")},
                }
            )
        return requests, responses

    @staticmethod
    def save_cassette(cassette_path: Any, cassette_dict: Any, serializer: Any = None) -> None:
        raise CassetteError("cloudderm cassettes are written by cloudderm.testing.cassette(), not by vcrpy")


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
