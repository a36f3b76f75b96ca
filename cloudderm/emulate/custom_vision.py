"""Azure AI Custom Vision Prediction API v3.1 (classification) as the emulator serves it.

``POST /customvision/v3.1/Prediction/{projectId}/classify/iterations/{publishedName}/image[/nostore]`` with
the raw image body and a ``Prediction-Key`` header (checked against the endpoint's ``azure_key``); the
answer is an ``ImagePrediction`` (``predictions[].tagId/tagName/probability``), errors ``{code, message}``.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from cloudderm.emulate.protocol import EndpointRequest, Protocol
from cloudderm.emulate.wire import Reply, json_reply, top_k

if TYPE_CHECKING:
    from cloudderm.emulate.app import EmulatedEndpoint, EmulatorApp
    from cloudderm.emulate.emulator import Emulator

__all__ = ["CustomVisionProtocol"]

MAX_IMAGE_BYTES = 4 * 1024 * 1024
EMULATED_PROJECT = "00000000-0000-4000-8000-000000000000"


def cv_error(status: int, code: str, message: str) -> Reply:
    return json_reply(status, {"code": code, "message": message})


class CustomVisionProtocol(Protocol):
    """Published iterations named after the emulated endpoints; any project id is served."""

    name = "custom-vision"
    title = "Azure Custom Vision"
    adapter = "custom-vision"
    route = re.compile(
        r"^/customvision/v3\.1/Prediction/(?P<project>[^/]+)/classify/iterations/(?P<name>[^/]+)"
        r"/image(?P<nostore>/nostore)?$"
    )

    def not_found(self, name: str, match: re.Match[str]) -> Reply:
        return cv_error(404, "NotFound", f"No published iteration named {name!r} is emulated here.")

    def serve(self, request: EndpointRequest) -> Reply:
        if request.headers.get("Prediction-Key") != request.endpoint.azure_key:
            request.app.stats.record_auth_failure(request.key)
            return cv_error(401, "Unauthorized", "Missing or invalid Prediction-Key (emulator).")
        if len(request.body) > MAX_IMAGE_BYTES:
            return cv_error(
                400, "BadRequestImageSizeBytes", f"Image larger than {MAX_IMAGE_BYTES} bytes (emulator)."
            )
        return _classify(request.app, request.key, request.match, request.endpoint, request.body)

    def config(self, emulator: Emulator, name: str) -> dict[str, Any]:
        endpoint = emulator.endpoint(name)
        return {
            "adapter": "custom-vision",
            "endpoint": "https://emulated.cognitiveservices.azure.com",
            "endpoint_url": emulator.base_url,
            "project_id": EMULATED_PROJECT,
            "published_name": name,
            "prediction_key": endpoint.azure_key,
            "region": emulator.azure_region,
        }

    def banner(self, emulator: Emulator, name: str) -> str:
        return (
            f"POST {emulator.base_url}/customvision/v3.1/Prediction/{EMULATED_PROJECT}/classify/iterations/"
            f"{name}/image/nostore  (Prediction-Key: {emulator.endpoint(name).azure_key})"
        )


def _classify(
    app: EmulatorApp, key: str, match: re.Match[str], endpoint: EmulatedEndpoint, body: bytes
) -> Reply:
    from cloudderm.emulate.app import BackendFailed

    faults = {
        "429": lambda: cv_error(429, "TooManyRequests", "Rate limit exceeded (emulator)."),
        "503": lambda: cv_error(503, "ServiceUnavailable", "The service is unavailable (emulator)."),
        "424": lambda: cv_error(500, "InternalServerError", "Internal error (emulator)."),
        "timeout": lambda: cv_error(408, "Timeout", "The operation timed out (emulator)."),
    }

    def answer() -> Reply:
        try:
            (scores,) = app.run_backend(key, endpoint, [body])
        except BackendFailed as e:
            return cv_error(
                e.status, "BadRequestImageFormat" if e.status == 400 else "InternalServerError", e.message
            )
        name = match["name"]
        predictions = [
            {
                "tagId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{name}/{label}")),
                "tagName": label,
                "probability": p,
            }
            for label, p in top_k(scores, None)
        ]
        return json_reply(
            200,
            {
                "id": str(uuid.uuid4()),
                "project": match["project"],
                "iteration": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{name}/iteration")),
                "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "predictions": predictions,
            },
        )

    return app.with_faults(key, endpoint, [body], faults, answer)
