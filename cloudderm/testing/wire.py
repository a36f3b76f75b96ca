"""Each provider's request and response bodies, as pure functions (no sockets, no models).

Every shape here is taken from the provider's own documentation or SDK service model (see
``docs/emulators.md`` for the source of each); where a provider documents no exact wording (an error
message), the emulator says so in its text rather than pretending to quote. The server module only routes
requests to these functions, so the formats can be tested without a network.

Scores reach the encoders as ``[(label, score), ...]`` in the backing model's own label order: formats that
carry probabilities only (JumpStart ``application/json``, the built-in algorithm) need that order, and the
label-carrying formats sort or filter as the real service does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AZURE_FLAVORS",
    "HF_IMAGE_TYPES",
    "SAGEMAKER_FORMATS",
    "VERTEX_MAX_REQUEST_BYTES",
    "Reply",
    "WireError",
    "azure_error",
    "azure_parse",
    "azure_success",
    "google_error",
    "malformed",
    "sagemaker_error",
    "sagemaker_model_error",
    "sagemaker_negotiate",
    "sagemaker_success",
    "vertex_parse",
    "vertex_success",
]

Scores = Sequence[tuple[str, float]]

SAGEMAKER_FORMATS = ("jumpstart-verbose", "jumpstart", "builtin", "huggingface")
AZURE_FLAVORS = ("automl", "transformers")
SAGEMAKER_MAX_BODY_BYTES = 6_291_456
VERTEX_MAX_REQUEST_BYTES = 1_572_864
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


def _json(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Reply:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Reply(status, body, {"Content-Type": "application/json", **(headers or {})})


def _normalise(media_type: str | None) -> str:
    return (media_type or "").replace(" ", "").lower()


def malformed(reply: Reply) -> Reply:
    """The same answer cut in half: HTTP 200, right Content-Type, a body no JSON parser accepts."""
    cut = reply.body[: max(1, len(reply.body) // 2)]
    if cut.rstrip().endswith((b"]", b"}")):
        cut = cut.rstrip()[:-1] + b","
    return Reply(200, cut, dict(reply.headers))


def _top_k(scores: Scores, k: int | None) -> list[tuple[str, float]]:
    ranked = sorted(scores, key=lambda ls: ls[1], reverse=True)
    return ranked if k is None else ranked[:k]


# ---- SageMaker runtime (rest-json protocol of botocore's "sagemaker-runtime" service model) ---------------
def sagemaker_error(code: str, status: int, message: str, **members: Any) -> Reply:
    """An error botocore parses into ``ClientError`` with ``Error.Code == code``.

    botocore's rest-json parser reads the code from the ``x-amzn-ErrorType`` header (falling back to the
    body's ``__type``) and the message from ``message``/``Message``; modelled members such as ModelError's
    ``OriginalStatusCode`` are read from the body by name.
    """
    payload = {"__type": code, "message": message, **members}
    return _json(status, payload, {"x-amzn-ErrorType": code})


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
    ctype, acc = _normalise(content_type), _normalise(accept)
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
        payload: Any = [{"score": s, "label": lbl} for lbl, s in _top_k(scores, hf_top_k)]
        return _json(200, payload)
    if fmt == "builtin":
        if accept == "application/jsonlines":
            body = (json.dumps({"prediction": probabilities}) + "\n").encode()
            return Reply(200, body, {"Content-Type": "application/jsonlines"})
        return _json(200, probabilities)
    if accept == "application/json;verbose":
        best = max(range(len(scores)), key=lambda i: scores[i][1]) if scores else None
        payload = {
            "probabilities": probabilities,
            "labels": [lbl for lbl, _ in scores],
            "predicted_label": scores[best][0] if best is not None else None,
        }
        return _json(200, payload, {"Content-Type": "application/json;verbose"})
    return _json(200, {"probabilities": probabilities})


# ---- Azure ML managed online endpoint --------------------------------------------------------------------
def azure_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Reply:
    """An Azure ML endpoint error; the service documents status codes and headers, not the body text."""
    return _json(status, {"message": message}, headers)


def azure_parse(body: bytes, flavor: str) -> list[bytes]:
    """Images from an Azure ML scoring request.

    ``automl``: ``{"input_data": {"columns": ["image"], "data": [b64, ...]}}`` (AutoML for images MLflow
    schema; ``index`` and one-element rows ``[[b64], ...]`` as the model-catalog samples send are accepted).
    ``transformers``: ``{"input_data": [b64, ...]}`` (a scoring script that hands the list to a
    ``transformers`` image-classification pipeline).
    """
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise WireError(azure_error(400, f"request body is not JSON: {e}")) from None
    data = payload.get("input_data") if isinstance(payload, dict) else None
    if flavor == "automl":
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise WireError(
                azure_error(400, 'expected {"input_data": {"columns": ["image"], "data": [...]}}')
            )
        columns = data.get("columns", ["image"])
        if columns != ["image"]:
            raise WireError(azure_error(400, f'expected columns ["image"], got {columns!r}'))
        rows = [row[0] if isinstance(row, list) and len(row) == 1 else row for row in data["data"]]
    elif flavor == "transformers":
        if not isinstance(data, list):
            raise WireError(azure_error(400, 'expected {"input_data": ["<base64 image>", ...]}'))
        rows = data
    else:
        raise ValueError(f"unknown Azure ML flavor {flavor!r}; known: {', '.join(AZURE_FLAVORS)}")
    if not rows:
        raise WireError(azure_error(400, "input_data holds no images"))
    return [_b64(row, lambda msg: azure_error(400, msg)) for row in rows]


def azure_success(flavor: str, results: Sequence[Scores], *, hf_top_k: int | None = 5) -> Reply:
    """One item per image: ``{"probs","labels"}`` (AutoML) or a ranked ``[{"label","score"}]`` list."""
    if flavor == "automl":
        payload: Any = [
            {"probs": [float(s) for _, s in scores], "labels": [lbl for lbl, _ in scores]}
            for scores in results
        ]
    else:
        payload = [[{"label": lbl, "score": s} for lbl, s in _top_k(scores, hf_top_k)] for scores in results]
    return _json(200, payload)


# ---- Vertex AI PredictionService.Predict (REST, JSON mapping of the proto) -------------------------------
_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def google_error(code: int, message: str, headers: Mapping[str, str] | None = None) -> Reply:
    """The Google API error body that google-api-core maps to its exception classes by ``code``."""
    status = _GOOGLE_STATUS.get(code, "UNKNOWN")
    return _json(code, {"error": {"code": code, "message": message, "status": status}}, headers)


def vertex_parse(body: bytes) -> tuple[list[bytes], dict[str, Any]]:
    """Images and parameters from ``{"instances": [{"content": b64}], "parameters": {...}}``."""
    if len(body) > VERTEX_MAX_REQUEST_BYTES:
        raise WireError(
            google_error(400, f"Request payload size exceeds the limit: {VERTEX_MAX_REQUEST_BYTES} bytes.")
        )
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise WireError(google_error(400, "Invalid JSON payload received.")) from None
    instances = payload.get("instances") if isinstance(payload, dict) else None
    if not isinstance(instances, list) or not instances:
        raise WireError(google_error(400, "instances must be a non-empty list."))
    images = []
    for i, instance in enumerate(instances):
        content = instance.get("content") if isinstance(instance, dict) else None
        if not isinstance(content, str):
            raise WireError(google_error(400, f"instances[{i}] has no 'content' string."))
        images.append(_b64(content, lambda msg: google_error(400, msg)))
    parameters = payload.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise WireError(google_error(400, "parameters must be an object."))
    return images, parameters


def vertex_success(
    results: Sequence[Scores],
    parameters: Mapping[str, Any],
    *,
    project: str,
    location: str,
    deployed_model_id: str,
    model_id: str,
    display_name: str,
) -> Reply:
    """AutoML image-classification predictions: ranked, filtered by ``confidenceThreshold`` (default 0.0)
    and cut to ``maxPredictions`` (default 10), as the prediction schema documents."""
    try:
        threshold = float(parameters.get("confidenceThreshold", 0.0))
        max_predictions = int(parameters.get("maxPredictions", 10))
    except (TypeError, ValueError):
        raise WireError(google_error(400, "confidenceThreshold/maxPredictions must be numbers.")) from None
    predictions = []
    for scores in results:
        ranked = [(lbl, s) for lbl, s in _top_k(scores, None) if s >= threshold][: max(0, max_predictions)]
        predictions.append(
            {
                "ids": [_annotation_id(lbl) for lbl, _ in ranked],
                "displayNames": [lbl for lbl, _ in ranked],
                "confidences": [float(s) for _, s in ranked],
            }
        )
    payload = {
        "predictions": predictions,
        "deployedModelId": deployed_model_id,
        "model": f"projects/{project}/locations/{location}/models/{model_id}",
        "modelDisplayName": display_name,
        "modelVersionId": "1",
    }
    return _json(200, payload)


def _annotation_id(label: str) -> str:
    """A stable numeric id per label, shaped like Vertex annotation-spec ids."""
    return str(int.from_bytes(hashlib.sha256(label.encode()).digest()[:8], "big") >> 1)


def _b64(value: Any, error: Any) -> bytes:
    if not isinstance(value, str):
        raise WireError(error(f"expected a base64 string, got {type(value).__name__}"))
    try:
        return base64.b64decode(value, validate=False)
    except (binascii.Error, ValueError):
        raise WireError(error("image data is not valid base64")) from None
