"""What every emulated protocol shares: the reply type, refusals, JSON replies and fault mangling.

Each protocol's own request and response bodies live in its module (``sagemaker.py``, ``azureml.py``,
``vertex.py``), as pure functions taken from the provider's documentation or SDK service model (see
``docs/emulators.md``); where a provider documents no exact wording (an error message), the emulator says so
in its text rather than pretending to quote.

Scores reach the encoders as ``[(label, score), ...]`` in the backing model's own label order: formats that
carry probabilities only need that order, and the label-carrying formats sort or filter as the real service
does.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Reply", "Scores", "WireError", "b64_image", "json_reply", "malformed", "normalise", "top_k"]

Scores = Sequence[tuple[str, float]]


@dataclass
class Reply:
    """One HTTP answer: status, headers (Content-Type included) and body bytes."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class WireError(Exception):
    """A request the emulated service refuses; carries the exact answer the service would give."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(f"HTTP {reply.status}")
        self.reply = reply


def json_reply(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Reply:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Reply(status, body, {"Content-Type": "application/json", **(headers or {})})


def normalise(media_type: str | None) -> str:
    return (media_type or "").replace(" ", "").lower()


def malformed(reply: Reply) -> Reply:
    """The same answer cut in half: HTTP 200, right Content-Type, a body no JSON parser accepts."""
    cut = reply.body[: max(1, len(reply.body) // 2)]
    if cut.rstrip().endswith((b"]", b"}")):
        cut = cut.rstrip()[:-1] + b","
    return Reply(200, cut, dict(reply.headers))


def top_k(scores: Scores, k: int | None) -> list[tuple[str, float]]:
    ranked = sorted(scores, key=lambda ls: ls[1], reverse=True)
    return ranked if k is None else ranked[:k]


def b64_image(value: Any, error: Callable[[str], Reply]) -> bytes:
    """Decode one base64 image from a JSON request, or refuse it with the service's own error."""
    if not isinstance(value, str):
        raise WireError(error(f"expected a base64 string, got {type(value).__name__}"))
    try:
        return base64.b64decode(value, validate=False)
    except (binascii.Error, ValueError):
        raise WireError(error("image data is not valid base64")) from None
