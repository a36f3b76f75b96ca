"""Vertex AI ``endpoints.predict`` over REST as the emulator serves it (AutoML image classification).

The Vertex REST transport (``PredictionServiceClient(transport="rest")``) talks to it unchanged through the
adapter's ``endpoint_url``; any project and location are served.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cloudderm.emulate.protocol import EndpointRequest, Protocol
from cloudderm.emulate.wire import Reply, Scores, WireError, b64_image, json_reply, top_k

if TYPE_CHECKING:
    from cloudderm.emulate.app import EmulatedEndpoint, EmulatorApp
    from cloudderm.emulate.emulator import Emulator

__all__ = ["VERTEX_MAX_REQUEST_BYTES", "VertexProtocol", "google_error", "vertex_parse", "vertex_success"]

VERTEX_MAX_REQUEST_BYTES = 1_572_864


class VertexProtocol(Protocol):
    """``POST /v1/projects/{p}/locations/{l}/endpoints/{id}:predict`` (``v1beta1`` too)."""

    name = "vertex"
    title = "Vertex AI"
    adapter = "vertex"
    route = re.compile(
        r"^/(?P<version>v1|v1beta1)/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
        r"/endpoints/(?P<name>[^/:]+):predict$"
    )

    def not_found(self, name: str, match: re.Match[str]) -> Reply:
        resource = f"projects/{match['project']}/locations/{match['location']}/endpoints/{name}"
        return google_error(404, f"Endpoint `{resource}` not found.")

    def serve(self, request: EndpointRequest) -> Reply:
        project, location = request.match["project"], request.match["location"]
        return _predict(request.app, request.key, project, location, request.endpoint, request.body)

    def config(self, emulator: Emulator, name: str) -> dict[str, Any]:
        """Settings for the ``vertex`` adapter (anonymous credentials: the emulator checks none)."""
        emulator.endpoint(name)
        return {
            "adapter": "vertex",
            "project": emulator.vertex_project,
            "location": emulator.vertex_location,
            "endpoint_id": name,
            "endpoint_url": emulator.base_url,
            "anonymous": True,
        }

    def banner(self, emulator: Emulator, name: str) -> str:
        return f"POST {emulator.base_url}/v1/{endpoint_path(emulator, name)}:predict"


def endpoint_path(emulator: Emulator, name: str) -> str:
    """The full Vertex endpoint resource name for ``PredictionServiceClient.predict(endpoint=...)``."""
    emulator.endpoint(name)
    return f"projects/{emulator.vertex_project}/locations/{emulator.vertex_location}/endpoints/{name}"


def _predict(
    app: EmulatorApp, key: str, project: str, location: str, endpoint: EmulatedEndpoint, body: bytes
) -> Reply:
    from cloudderm.emulate.app import BackendFailed

    images, parameters = vertex_parse(body)  # a refusal (WireError) is answered by Protocol.handle
    faults = {
        "429": lambda: google_error(429, "Quota exceeded for online prediction requests."),
        "503": lambda: google_error(503, "The service is currently unavailable."),
        "424": lambda: google_error(500, "Internal error encountered."),
        "timeout": lambda: google_error(504, "Deadline Exceeded"),
    }

    def answer() -> Reply:
        try:
            results = app.run_backend(key, endpoint, images)
        except BackendFailed as e:
            code = 400 if e.status == 400 else 500
            return google_error(code, e.message)
        try:
            return vertex_success(
                results,
                parameters,
                project=project,
                location=location,
                deployed_model_id=endpoint.numeric_id("deployed-model"),
                model_id=endpoint.numeric_id("model"),
                display_name=endpoint.backend.model_id,
            )
        except WireError as e:
            return e.reply

    return app.with_faults(key, endpoint, images, faults, answer)


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
    return json_reply(code, {"error": {"code": code, "message": message, "status": status}}, headers)


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
        images.append(b64_image(content, lambda msg: google_error(400, msg)))
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
        ranked = [(lbl, s) for lbl, s in top_k(scores, None) if s >= threshold][: max(0, max_predictions)]
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
    return json_reply(200, payload)


def _annotation_id(label: str) -> str:
    """A stable numeric id per label, shaped like Vertex annotation-spec ids."""
    return str(int.from_bytes(hashlib.sha256(label.encode()).digest()[:8], "big") >> 1)
