"""SageMaker runtime ``InvokeEndpoint`` as the emulator serves it (boto3 with ``endpoint_url`` talks to it).

Wire shapes follow botocore's ``sagemaker-runtime`` service model (rest-json) and the containers' own
documentation (JumpStart image classification, the built-in Image Classification algorithm, the Hugging
Face inference toolkit); see docs/emulators.md for the sources.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cloudderm.emulate.protocol import EndpointRequest, Protocol
from cloudderm.emulate.wire import Reply, Scores, WireError, json_reply, normalise, top_k

if TYPE_CHECKING:
    from cloudderm.emulate.app import EmulatedEndpoint, EmulatorApp
    from cloudderm.emulate.emulator import Emulator

__all__ = [
    "FAKE_AWS_ENV",
    "HF_IMAGE_TYPES",
    "SAGEMAKER_FORMATS",
    "SageMakerProtocol",
    "sagemaker_error",
    "sagemaker_model_error",
    "sagemaker_negotiate",
    "sagemaker_success",
]

SAGEMAKER_FORMATS = ("jumpstart-verbose", "jumpstart", "builtin", "huggingface")
SAGEMAKER_MAX_BODY_BYTES = 6_291_456
EMULATED_ACCOUNT = "000000000000"
JUMPSTART_CONTENT_TYPES = ("application/x-image",)
JUMPSTART_ACCEPTS = ("application/json", "application/json;verbose")
BUILTIN_CONTENT_TYPES = ("application/x-image", "image/jpeg", "image/png")
BUILTIN_ACCEPTS = ("application/json", "application/jsonlines")
HF_IMAGE_TYPES = (
    "image/jpeg",
    "image/png",
    "image/tiff",
    "image/bmp",
    "image/gif",
    "image/webp",
    "image/x-image",
)
FAKE_AWS_ENV = {"AWS_ACCESS_KEY_ID": "emulator", "AWS_SECRET_ACCESS_KEY": "emulator"}
"""Any credentials satisfy the emulator (signatures are not checked); boto3 only needs *some*."""


class SageMakerProtocol(Protocol):
    """``POST /endpoints/{name}/invocations``: one image per request, as a real-time endpoint takes it."""

    name = "sagemaker"
    title = "SageMaker"
    adapter = "sagemaker"
    route = re.compile(r"^/endpoints/(?P<name>[^/]+)/invocations$")

    def check(self, endpoint: EmulatedEndpoint) -> None:
        if endpoint.sagemaker_throttle not in ("ThrottlingException", "ModelNotReadyException"):
            raise ValueError("sagemaker_throttle must be ThrottlingException or ModelNotReadyException")
        if endpoint.sagemaker_format not in SAGEMAKER_FORMATS:
            known = ", ".join(SAGEMAKER_FORMATS)
            raise ValueError(f"sagemaker_format {endpoint.sagemaker_format!r} is not one of {known}")

    def handle(
        self, app: EmulatorApp, match: re.Match[str], headers: Mapping[str, str], body: bytes
    ) -> Reply:
        # Extends the template: every answer, refusals included, carries a request id.
        reply = super().handle(app, match, headers, body)
        reply.headers["x-amzn-RequestId"] = str(uuid.uuid4())
        return reply

    def not_found(self, name: str, match: re.Match[str]) -> Reply:
        return sagemaker_error(
            "ValidationError", 400, f"Endpoint {name} of account {EMULATED_ACCOUNT} not found."
        )

    def serve(self, request: EndpointRequest) -> Reply:
        size = len(request.body)
        if size > SAGEMAKER_MAX_BODY_BYTES:
            message = f"Request body of {size} bytes exceeds the {SAGEMAKER_MAX_BODY_BYTES} byte limit."
            return sagemaker_error("ValidationError", 400, message)
        reply = self._invoke(request)
        reply.headers["x-Amzn-Invoked-Production-Variant"] = request.endpoint.variant
        return reply

    def _invoke(self, request: EndpointRequest) -> Reply:
        from cloudderm.emulate.app import BackendFailed

        app, key, endpoint = request.app, request.key, request.endpoint
        headers, body, name = request.headers, request.body, request.match["name"]
        fmt = endpoint.sagemaker_format

        def model_error(status: int, message: str) -> Reply:
            return sagemaker_model_error(name, app.region, status, message)

        if endpoint.sagemaker_throttle == "ModelNotReadyException":
            throttle = sagemaker_error(
                "ModelNotReadyException", 429, f"Model for endpoint {name} is not ready; try again later."
            )
        else:
            throttle = sagemaker_error("ThrottlingException", 400, "Rate exceeded")
        faults = {
            "429": lambda: throttle,
            "503": lambda: sagemaker_error("ServiceUnavailable", 503, "The service is unavailable."),
            "424": lambda: model_error(500, "emulated model failure (injected fault)"),
            "timeout": lambda: model_error(
                0, "Your invocation timed out while waiting for a response from container primary."
            ),
        }

        def answer() -> Reply:
            try:
                accept = sagemaker_negotiate(fmt, headers.get("Content-Type"), headers.get("Accept"))
            except WireError as e:
                return model_error(e.reply.status, e.reply.body.decode())
            try:
                (scores,) = app.run_backend(key, endpoint, [body])
            except BackendFailed as e:
                return model_error(e.status, e.message)
            return sagemaker_success(fmt, accept, scores, hf_top_k=endpoint.top_k)

        return app.with_faults(key, endpoint, [body], faults, answer)

    def config(self, emulator: Emulator, name: str) -> dict[str, Any]:
        """Settings for the ``sagemaker`` adapter; boto3 also needs credentials (see ``env``).

        The probability-only formats (``jumpstart``, ``builtin``) carry no class names on the wire, so the
        adapter needs them from config: the snippet lists the backend's labels in the order the emulator
        sends probabilities (omitted when the backend publishes none; the adapter then asks for them).
        """
        endpoint = emulator.endpoint(name)
        snippet: dict[str, Any] = {
            "adapter": "sagemaker",
            "endpoint_name": name,
            "region": emulator.region,
            "endpoint_url": emulator.base_url,
            "response_format": endpoint.sagemaker_format,
        }
        if endpoint.sagemaker_format in ("jumpstart", "builtin"):
            labels = emulator.app.label_order(f"{self.name}/{name}", endpoint)
            if labels:
                snippet["labels"] = list(labels)
        return snippet

    def banner(self, emulator: Emulator, name: str) -> str:
        return f"POST {emulator.base_url}/endpoints/{name}/invocations"

    def env(self, emulator: Emulator) -> dict[str, str]:
        """Environment variables that let boto3 sign requests to the emulator (signatures are not checked)."""
        return {**FAKE_AWS_ENV, "AWS_DEFAULT_REGION": emulator.region}


def sagemaker_error(code: str, status: int, message: str, **members: Any) -> Reply:
    """An error botocore parses into ``ClientError`` with ``Error.Code == code``.

    botocore's rest-json parser reads the code from the ``x-amzn-ErrorType`` header (falling back to the
    body's ``__type``) and the message from ``message``/``Message``; modelled members such as ModelError's
    ``OriginalStatusCode`` are read from the body by name.
    """
    payload = {"__type": code, "message": message, **members}
    return json_reply(status, payload, {"x-amzn-ErrorType": code})


def sagemaker_model_error(
    endpoint: str, region: str, original_status: int, original_message: str, *, variant: str = "primary"
) -> Reply:
    """ModelError (HTTP 424): the container answered ``original_status``; SageMaker wraps it like this."""
    kind = "client" if 400 <= original_status < 500 else "server"
    log_group = f"/aws/sagemaker/Endpoints/{endpoint}"
    message = (
        f'Received {kind} error ({original_status}) from {variant} with message "{original_message}". '
        f"See https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
        f"#logEventViewer:group={log_group} in account {EMULATED_ACCOUNT} for more information."
    )
    members: dict[str, Any] = {
        "Message": message,
        "OriginalStatusCode": original_status,
        "OriginalMessage": original_message,
        "LogStreamArn": f"arn:aws:logs:{region}:{EMULATED_ACCOUNT}:log-group:{log_group}",
    }
    if kind == "client":
        members["ErrorCode"] = "CLIENT_ERROR_FROM_MODEL"
    return sagemaker_error("ModelError", 424, message, **members)


def sagemaker_negotiate(fmt: str, content_type: str | None, accept: str | None) -> str:
    """The response media type the container will produce, or the container's refusal.

    Returns the resolved Accept. Raises ``WireError`` carrying the *container's* status and message;
    the server wraps it in a ModelError, because that is how SageMaker reports a container's 4xx.
    """
    ctype, acc = normalise(content_type), normalise(accept)
    if acc in ("", "*/*"):
        acc = "application/json"
    if fmt in ("jumpstart", "jumpstart-verbose"):
        allowed_types, allowed_accepts = JUMPSTART_CONTENT_TYPES, JUMPSTART_ACCEPTS
    elif fmt == "builtin":
        allowed_types, allowed_accepts = BUILTIN_CONTENT_TYPES, BUILTIN_ACCEPTS
    elif fmt == "huggingface":
        allowed_types, allowed_accepts = HF_IMAGE_TYPES, ("application/json",)
    else:
        raise ValueError(f"unknown SageMaker format {fmt!r}; known: {', '.join(SAGEMAKER_FORMATS)}")
    if ctype not in allowed_types:
        # The Hugging Face toolkit turns every handler exception into a 400 (handler_service.handle).
        status = 400 if fmt == "huggingface" else 415
        raise WireError(Reply(status, f"Content type {content_type or '(none)'} is not supported".encode()))
    if acc not in allowed_accepts:
        status = 400 if fmt == "huggingface" else 406
        raise WireError(Reply(status, f"Accept type {accept} is not supported".encode()))
    return acc


def sagemaker_success(fmt: str, accept: str, scores: Scores, *, hf_top_k: int | None = 5) -> Reply:
    """The container's 200 answer for one image in format ``fmt``."""
    probabilities = [float(s) for _, s in scores]
    if fmt == "huggingface":
        payload: Any = [{"score": s, "label": lbl} for lbl, s in top_k(scores, hf_top_k)]
        return json_reply(200, payload)
    if fmt == "builtin":
        if accept == "application/jsonlines":
            body = (json.dumps({"prediction": probabilities}) + "\n").encode()
            return Reply(200, body, {"Content-Type": "application/jsonlines"})
        return json_reply(200, probabilities)
    if accept == "application/json;verbose":
        best = max(range(len(scores)), key=lambda i: scores[i][1]) if scores else None
        payload = {
            "probabilities": probabilities,
            "labels": [lbl for lbl, _ in scores],
            "predicted_label": scores[best][0] if best is not None else None,
        }
        return json_reply(200, payload, {"Content-Type": "application/json;verbose"})
    return json_reply(200, {"probabilities": probabilities})
