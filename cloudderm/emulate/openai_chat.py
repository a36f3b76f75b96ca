"""Protocol ``openai``: OpenAI-compatible ``/v1/chat/completions`` backed by a local classifier.

Why: the ``openai`` adapter must be exercised through the official SDK (which sends over httpx2, so
``responses`` cannot intercept it) without a network or a key. The emulator decodes the ``data:`` URL image
of the request, classifies it with the endpoint's backend and answers in the documented
``chat.completion`` shape with ``{"label": CODE, "confidence": SCORE}`` as the message content. The
endpoint is chosen by the request's ``model`` (OpenAI, ``/v1``) or by the deployment in the path (Azure,
``/openai/deployments/NAME/chat/completions``).

Faults (``--faults``): ``refusal`` (``message.refusal`` set, content null), ``content_filter``
(``finish_reason: content_filter`` with Azure ``content_filter_results``), ``filter400`` (Azure's HTTP 400
``content_filter`` error with ``innererror.content_filter_result``), ``malformed`` (content that is cut-off
JSON), ``429`` (``rate_limit_exceeded`` with ``Retry-After``), ``503`` and ``424`` (a 500). Token counts in
``usage`` are the emulator's estimate (85 tokens per image, OpenAI's base cost of one image, plus about one
per four prompt characters), marked by ``system_fingerprint: cloudderm-emulator``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cloudderm.emulate.protocol import Protocol
from cloudderm.emulate.wire import Reply, WireError, json_reply

if TYPE_CHECKING:
    from cloudderm.emulate.app import EmulatedEndpoint, EmulatorApp
    from cloudderm.emulate.emulator import Emulator

__all__ = ["IMAGE_TOKENS", "REFUSAL_TEXT", "OpenAIChatProtocol", "chat_completion", "openai_error"]

IMAGE_TOKENS = 85
REFUSAL_TEXT = "I'm sorry, I can't help with identifying medical conditions from images."
EMULATOR_KEY = "emulator-key"
_SAFE = {"filtered": False, "severity": "safe"}


class OpenAIChatProtocol(Protocol):
    """``POST /v1/chat/completions`` (model = endpoint) and Azure's deployment path."""

    name = "openai"
    title = "OpenAI chat"
    adapter = "openai"
    route = re.compile(r"^/(?:openai/deployments/(?P<deployment>[^/]+)|(?:openai/)?v1)/chat/completions$")

    def handle(
        self, app: EmulatorApp, match: re.Match[str], headers: Mapping[str, str], body: bytes
    ) -> Reply:
        # Overrides the template: the body names the endpoint (its model), so a body without one is uncounted.
        try:
            request = _parse(body)
        except WireError as e:
            return e.reply
        name = match["deployment"] or request["model"]
        key = f"{self.name}/{name}"
        endpoint = app.endpoints.get(name)

        def answer() -> Reply:
            if endpoint is None:
                return openai_error(404, f"The model `{name}` does not exist.", "model_not_found")
            return _complete(app, key, endpoint, request)

        return self.counted(app, key, body, answer)

    def config(self, emulator: Emulator, name: str) -> dict[str, Any]:
        """Settings for the ``openai`` adapter: the endpoint's name is the model."""
        emulator.endpoint(name)
        return {
            "adapter": "openai",
            "model": name,
            "base_url": f"{emulator.base_url}/v1",
            "api_key": EMULATOR_KEY,
        }

    def banner(self, emulator: Emulator, name: str) -> str:
        return f"POST {emulator.base_url}/v1/chat/completions  (model: {name})"


def openai_error(
    http_status: int, message: str, code: str, etype: str | None = "invalid_request_error", **extra: Any
):
    """The OpenAI error body the SDK maps to its exception classes by HTTP status."""
    return json_reply(
        http_status, {"error": {"message": message, "type": etype, "param": None, "code": code, **extra}}
    )


def chat_completion(
    model: str, content: str | None, *, prompt_chars: int, finish: str = "stop", **message: Any
) -> dict[str, Any]:
    """A ``chat.completion`` object in the documented shape (OpenAI API reference, Chat Completions)."""
    prompt_tokens = IMAGE_TOKENS + max(1, prompt_chars // 4)
    completion_tokens = 0 if content is None else max(1, len(content) // 4)
    return {
        "id": f"chatcmpl-emulator-{time.monotonic_ns()}",
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


def _parse(body: bytes) -> dict[str, Any]:
    """Model, the one data-URL image and the prompt text of a chat request, or the OpenAI 400 error."""
    try:
        request = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise WireError(
            openai_error(400, "We could not parse the JSON body of your request.", "invalid_json")
        ) from None
    if not isinstance(request, dict) or not isinstance(request.get("model"), str):
        raise WireError(openai_error(400, "you must provide a model parameter", "missing_model"))
    texts, urls = [], []
    for message in request.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else []:
            if part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            elif part.get("type") == "image_url":
                urls.append(str((part.get("image_url") or {}).get("url", "")))
    if len(urls) != 1 or not urls[0].startswith("data:") or ";base64," not in urls[0]:
        raise WireError(
            openai_error(
                400, "expected exactly one image as a data:<mime>;base64,... URL (emulator)", "invalid_image"
            )
        )
    try:
        image = base64.b64decode(urls[0].split(";base64,", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        raise WireError(
            openai_error(400, "the image data URL is not valid base64", "invalid_image")
        ) from None
    return {"model": request["model"], "image": image, "prompt": "\n".join(texts)}


def _complete(app: EmulatorApp, key: str, endpoint: EmulatedEndpoint, request: dict[str, Any]) -> Reply:
    from cloudderm.emulate.app import BackendFailed

    model, chars = request["model"], len(request["prompt"])

    def filtered() -> Reply:
        payload = chat_completion(model, None, prompt_chars=chars, finish="content_filter")
        payload["choices"][0]["content_filter_results"] = {
            **dict.fromkeys(("hate", "self_harm", "sexual"), _SAFE),
            "violence": {"filtered": True, "severity": "high"},
        }
        return json_reply(200, payload)

    faults = {
        "429": lambda: openai_error(429, "Rate limit reached (emulated).", "rate_limit_exceeded", "requests"),
        "503": lambda: openai_error(
            503, "The engine is currently overloaded (emulated).", "overloaded", None
        ),
        "424": lambda: openai_error(
            500, "The server had an error processing your request.", "server_error", None
        ),
        "timeout": lambda: openai_error(504, "Gateway timeout (emulated).", "timeout", None),
        "refusal": lambda: json_reply(
            200, chat_completion(model, None, prompt_chars=chars, refusal=REFUSAL_TEXT)
        ),
        "content_filter": filtered,
        "filter400": lambda: openai_error(
            400,
            "The response was filtered due to the prompt triggering content management policy (emulated).",
            "content_filter",
            None,
            status=400,
            innererror={
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": {"hate": _SAFE, "sexual": {"filtered": True, "severity": "medium"}},
            },
        ),
        "malformed": lambda: json_reply(
            200, chat_completion(model, '{"label": "mel", "confid', prompt_chars=chars)
        ),
    }

    def answer() -> Reply:
        try:
            scores = app.run_backend(key, endpoint, [request["image"]])[0]
        except BackendFailed as e:
            return openai_error(e.status, e.message, "server_error" if e.status >= 500 else "invalid_image")
        label, score = max(scores, key=lambda pair: pair[1])
        code = endpoint.backend.taxonomy.canonical(label) or label  # the model's own name if not a code
        content = json.dumps({"label": code, "confidence": round(score, 4)})
        return json_reply(200, chat_completion(model, content, prompt_chars=chars))

    return app.with_faults(key, endpoint, [request["image"]], faults, answer)
