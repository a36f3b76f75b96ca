"""Plain-HTTP helpers for the emulator tests: no SDK between the test and the wire."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request


def post(
    url: str, body: bytes, headers: dict[str, str] | None = None, timeout: float = 10
) -> tuple[int, dict, bytes]:
    """POST and return (status, headers, body), for error statuses too."""
    request = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def automl_body(*images: bytes) -> bytes:
    """An Azure ML AutoML-for-images scoring body carrying these images."""
    return json.dumps({"input_data": {"columns": ["image"], "data": [b64(i) for i in images]}}).encode()
