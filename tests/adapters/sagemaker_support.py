"""Shared helpers for the SageMaker adapter tests: fake AWS environment and crafted botocore responses.

The ``aws_env`` fixture gives every test fake credentials from the environment and hides the user's own
AWS config files, profile and instance role, so nothing can reach a real account. ``answer_with`` serves a
classifier's InvokeEndpoint calls from a botocore ``before-send`` hook: nothing is sent anywhere.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from cloudderm.adapters.sagemaker import SageMakerClassifier, SageMakerSettings
from tests.conftest import isolate_aws

HAM = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
REGION = "eu-west-2"
FAKE_SECRET = "cloudderm-fake-secret-never-shown"
EVENT = "before-send.sagemaker-runtime.InvokeEndpoint"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Fake credentials from the environment; the user's AWS files, profile and instance role hidden."""
    isolate_aws(monkeypatch, tmp_path, "AKIDCLOUDDERMTEST", FAKE_SECRET)


def make(name: str = "sm", **overrides: Any) -> SageMakerClassifier:
    values: dict[str, Any] = {"adapter": "sagemaker", "endpoint_name": "derm-ep", "region": REGION}
    values.update(overrides)
    return SageMakerClassifier(name, SageMakerSettings(**values))


class RawBody:
    """What botocore reads a crafted response body from (``stream()`` for errors, ``read()`` for payloads)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data.read()

    def read(self, amt: int | None = None) -> bytes:
        return self._data.read(amt)


def aws_response(request: Any, status: int, body: Any, **headers: str) -> AWSResponse:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return AWSResponse(request.url, status, {"Content-Type": "application/json", **headers}, RawBody(data))


def answer_with(clf: SageMakerClassifier, handler: Callable[..., Any]) -> list[Any]:
    """Serve ``clf``'s InvokeEndpoint calls with ``handler``; returns the list of requests seen."""
    seen: list[Any] = []

    def hook(request: Any, **kwargs: Any) -> Any:
        seen.append(request)
        return handler(request)

    clf.client.meta.events.register(EVENT, hook)
    return seen


def body_bytes(request: Any) -> bytes:
    body = request.body
    return body.read() if hasattr(body, "read") else bytes(body)


def deterministic_verbose(request: Any) -> AWSResponse:
    """A JumpStart verbose answer that is a pure function of the image bytes (so batch == one by one)."""
    digest = hashlib.sha256(body_bytes(request)).digest()
    raw = [1 + b for b in digest[: len(HAM)]]
    probabilities = [r / sum(raw) for r in raw]
    top = HAM[probabilities.index(max(probabilities))]
    document = {"probabilities": probabilities, "labels": HAM, "predicted_label": top}
    return aws_response(request, 200, document, **{"x-amzn-RequestId": f"req-{digest[:4].hex()}"})
