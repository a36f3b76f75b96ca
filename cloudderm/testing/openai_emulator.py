"""Protocol ``openai``: an OpenAI-compatible ``/v1/chat/completions`` loopback endpoint, classifier-backed.

Why: the ``openai`` adapter must be exercised through the official SDK (which sends over httpx2, so
``responses`` cannot intercept it) without a network or a key. The emulator decodes the ``data:`` URL
image of the first user message, classifies it with a local backend (a configured provider or the fake
test double) and answers in the documented ``chat.completion`` shape with the enum label as JSON content.

Injected faults (seeded, decided per request body and attempt, so a retried request can succeed):
``refusal`` (``message.refusal`` set, content null), ``content_filter`` (``finish_reason:
content_filter`` with Azure ``content_filter_results``), ``filter400`` (Azure's HTTP 400 ``content_filter``
error), ``malformed`` (content that is cut-off JSON) and ``429`` (``rate_limit_exceeded`` with
``Retry-After``). Token counts in ``usage`` are the emulator's estimate (85 tokens per image plus about one
per four prompt characters), marked by ``system_fingerprint: cloudderm-emulator``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cloudderm.classifier import Classifier
from cloudderm.images import PreparedImage, prepare
from cloudderm.testing.emulator_server import EmulatorServer
from cloudderm.testing.uploads import find_metadata
from cloudderm.testing.wire import Reply

__all__ = ["FAULT_KINDS", "OpenAIEmulator", "OpenAIEmulatorApp", "OpenAIFaults", "chat_completion"]

FAULT_KINDS = ("refusal", "content_filter", "filter400", "malformed", "429")
IMAGE_TOKENS = 85  # OpenAI's documented base cost of one image at detail "low"
REFUSAL_TEXT = "I'm sorry, I can't help with identifying medical conditions from images."
_JSON = {"Content-Type": "application/json"}
_SAFE = {"filtered": False, "severity": "safe"}


@dataclass
class OpenAIFaults:
    """Rates of each injected fault, e.g. ``OpenAIFaults.parse("refusal=0.1,429=0.2", seed=1)``."""

    rates: dict[str, float] = field(default_factory=dict)
    seed: str = "0"
    retry_after_s: float = 1.0

    @classmethod
    def parse(cls, spec: str, *, seed: str = "0", retry_after_s: float = 1.0) -> OpenAIFaults:
        rates: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            kind, _, value = part.partition("=")
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
            rate = float(value)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"fault rate {part!r} must be between 0 and 1")
            rates[kind] = rate
        if sum(rates.values()) > 1.0 + 1e-9:
            raise ValueError("fault rates add up to more than 1")
        return cls(rates, seed, retry_after_s)

    def decide(self, key: str, attempt: int) -> str | None:
        """The fault for this request body's ``attempt``-th arrival, or None (deterministic per seed)."""
        digest = hashlib.sha256(f"{self.seed}|{key}|{attempt}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64
        edge = 0.0
        for kind in FAULT_KINDS:
            edge += self.rates.get(kind, 0.0)
            if u < edge:
                return kind
        return None

    def describe(self) -> str:
        return ", ".join(f"{k}={v:g}" for k, v in self.rates.items()) or "none"


def chat_completion(
    model: str, content: str | None, *, number: int, prompt_chars: int, finish: str = "stop", **message: Any
) -> dict[str, Any]:
    """A ``chat.completion`` object in the documented shape (OpenAI API reference, Chat Completions)."""
    prompt_tokens = IMAGE_TOKENS + max(1, prompt_chars // 4)
    completion_tokens = 0 if content is None else max(1, len(content) // 4)
    return {
        "id": f"chatcmpl-emulator-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "cloudderm-emulator",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None, **message},
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _error(http_status: int, message: str, code: str, etype: str | None, **extra: Any) -> Reply:
    body = {"error": {"message": message, "type": etype, "param": None, "code": code, **extra}}
    return Reply(http_status, json.dumps(body).encode(), dict(_JSON))


class _BadRequest(Exception):
    pass


class OpenAIEmulatorApp:
    """Routes ``POST /v1/chat/completions`` (and ``/openai/v1/...``, Azure's v1 path) to a backend."""

    def __init__(
        self, backend: Classifier, *, faults: OpenAIFaults | None = None, api_key: str | None = None
    ):
        self.backend = backend
        self.faults = faults or OpenAIFaults()
        self.api_key = api_key
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._attempts: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()
        self.metadata_seen = False

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Reply:
        path = urlsplit(target).path.rstrip("/")
        if path.endswith("/_emulator/stats") and method == "GET":
            stats = {**self.counts, "metadata_seen": self.metadata_seen, "faults": self.faults.describe()}
            return Reply(200, json.dumps(stats).encode(), dict(_JSON))
        if method != "POST" or not path.endswith("/chat/completions"):
            return _error(404, f"no emulated route for {method} {path}", "not_found", "invalid_request_error")
        if self.api_key is not None:
            given = headers.get("api-key") or (headers.get("authorization") or "").removeprefix("Bearer ")
            if given != self.api_key:
                return _error(401, "Incorrect API key provided.", "invalid_api_key", "invalid_request_error")
        try:
            request = json.loads(body)
            model, image, prompt = self._read(request)
        except (ValueError, _BadRequest) as e:
            return _error(400, f"invalid request: {e}", "invalid_request", "invalid_request_error")
        key = hashlib.sha256(body).hexdigest()
        with self._lock:
            attempt = self._attempts[key]
            self._attempts[key] += 1
            number = sum(self.counts.values()) + 1
            self.counts["requests"] += 1
        fault = self.faults.decide(key, attempt)
        if fault is not None:
            with self._lock:
                self.counts[f"fault_{fault}"] += 1
            return self._fault(fault, model, number, len(prompt))
        prediction = self.backend.classify(image)
        label = prediction.canonical or (
            prediction.labels[0].label if prediction.labels else "cannot_determine"
        )
        score = round(prediction.labels[0].score, 4) if prediction.labels else 0.0
        content = json.dumps({"label": label, "confidence": score})
        payload = chat_completion(model, content, number=number, prompt_chars=len(prompt))
        return Reply(200, json.dumps(payload).encode(), dict(_JSON))

    def _read(self, request: Any) -> tuple[str, PreparedImage, str]:
        if not isinstance(request, dict) or not isinstance(request.get("model"), str):
            raise _BadRequest("'model' is required")
        messages = request.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _BadRequest("'messages' must be a non-empty array")
        texts, urls = [], []
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            for part in content if isinstance(content, list) else []:
                if part.get("type") == "text":
                    texts.append(str(part.get("text", "")))
                elif part.get("type") == "image_url":
                    urls.append(str((part.get("image_url") or {}).get("url", "")))
        if len(urls) != 1 or not urls[0].startswith("data:") or ";base64," not in urls[0]:
            raise _BadRequest("expected exactly one image as a data:<mime>;base64,... URL")
        try:
            data = base64.b64decode(urls[0].split(";base64,", 1)[1], validate=True)
        except (binascii.Error, ValueError) as e:
            raise _BadRequest(f"image data URL is not base64 ({e})") from None
        if find_metadata(data):
            self.metadata_seen = True
        return request["model"], prepare(data), "\n".join(texts)

    def _fault(self, fault: str, model: str, number: int, prompt_chars: int) -> Reply:
        if fault == "429":
            reply = _error(429, "Rate limit reached (emulated).", "rate_limit_exceeded", "requests")
            reply.headers["Retry-After"] = f"{self.faults.retry_after_s:g}"
            return reply
        if fault == "filter400":
            result = {"hate": _SAFE, "self_harm": _SAFE, "sexual": {"filtered": True, "severity": "medium"}}
            return _error(
                400,
                "The response was filtered due to the prompt triggering content management policy "
                "(emulated).",
                "content_filter",
                None,
                status=400,
                innererror={"code": "ResponsibleAIPolicyViolation", "content_filter_result": result},
            )
        if fault == "refusal":
            payload = chat_completion(
                model, None, number=number, prompt_chars=prompt_chars, refusal=REFUSAL_TEXT
            )
        elif fault == "content_filter":
            payload = chat_completion(
                model, None, number=number, prompt_chars=prompt_chars, finish="content_filter"
            )
            payload["choices"][0]["content_filter_results"] = {
                "hate": _SAFE,
                "self_harm": _SAFE,
                "sexual": _SAFE,
                "violence": {"filtered": True, "severity": "high"},
            }
        else:  # malformed: cut-off JSON, as a model stopped mid-answer would send
            payload = chat_completion(
                model, '{"label": "mel", "confid', number=number, prompt_chars=prompt_chars
            )
        return Reply(200, json.dumps(payload).encode(), dict(_JSON))


class OpenAIEmulator:
    """A running loopback OpenAI-compatible server: ``base_url`` goes into the adapter's settings."""

    def __init__(self, backend: Classifier, *, faults: OpenAIFaults | None = None, port: int = 0, **kw: Any):
        self.app = OpenAIEmulatorApp(backend, faults=faults, **kw)
        self.server = EmulatorServer(self.app, port=port)  # type: ignore[arg-type]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/v1"

    def __enter__(self) -> OpenAIEmulator:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.close()
