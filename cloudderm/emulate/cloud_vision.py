"""Google Cloud Vision ``images:annotate`` (LABEL_DETECTION) as the emulator serves it.

``POST /cloud-vision/{name}/v1/images:annotate`` (the adapter's ``endpoint_url`` is
``{base}/cloud-vision/{name}``, since the real API names no model): up to 16 images per request, each answered
with ``labelAnnotations`` ranked by score and cut at ``maxResults``; errors are Google API error bodies.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from cloudderm.emulate.protocol import EndpointRequest, Protocol
from cloudderm.emulate.vertex import google_error
from cloudderm.emulate.wire import Reply, WireError, b64_image, json_reply, top_k

if TYPE_CHECKING:
    from cloudderm.emulate.app import EmulatedEndpoint, EmulatorApp
    from cloudderm.emulate.emulator import Emulator

__all__ = ["CloudVisionProtocol", "annotate_parse"]

MAX_IMAGES_PER_REQUEST = 16


class CloudVisionProtocol(Protocol):
    name = "cloud-vision"
    title = "Google Cloud Vision"
    adapter = "cloud-vision"
    route = re.compile(r"^/cloud-vision/(?P<name>[^/]+)/v1/images:annotate$")

    def not_found(self, name: str, match: re.Match[str]) -> Reply:
        return google_error(404, f"No emulated Cloud Vision backend {name!r}.")

    def serve(self, request: EndpointRequest) -> Reply:
        images, limits = annotate_parse(request.body)
        return _annotate(request.app, request.key, request.endpoint, images, limits)

    def config(self, emulator: Emulator, name: str) -> dict[str, Any]:
        """Anonymous credentials: the emulator checks none (Application Default Credentials otherwise)."""
        emulator.endpoint(name)
        return {
            "adapter": "cloud-vision",
            "endpoint_url": f"{emulator.base_url}/cloud-vision/{name}",
            "anonymous": True,
        }

    def banner(self, emulator: Emulator, name: str) -> str:
        return f"POST {emulator.base_url}/cloud-vision/{name}/v1/images:annotate"


def annotate_parse(body: bytes) -> tuple[list[bytes], list[int]]:
    """Images and each one's ``maxResults`` from an ``images:annotate`` LABEL_DETECTION request."""
    try:
        requests = json.loads(body)["requests"]
        features = [r["features"][0] for r in requests]
        contents = [r["image"]["content"] for r in requests]
    except (ValueError, KeyError, TypeError, IndexError):
        raise WireError(google_error(400, "Invalid JSON payload received.")) from None
    if not 1 <= len(requests) <= MAX_IMAGES_PER_REQUEST:
        raise WireError(google_error(400, f"At most {MAX_IMAGES_PER_REQUEST} images per request."))
    if any(f.get("type") != "LABEL_DETECTION" for f in features):
        raise WireError(google_error(400, "The emulator serves LABEL_DETECTION only."))
    images = [b64_image(c, lambda msg: google_error(400, msg)) for c in contents]
    return images, [int(f.get("maxResults", 10)) for f in features]


def _annotate(
    app: EmulatorApp, key: str, endpoint: EmulatedEndpoint, images: list[bytes], limits: list[int]
) -> Reply:
    from cloudderm.emulate.app import BackendFailed

    faults = {
        "429": lambda: google_error(429, "Quota exceeded (emulator)."),
        "503": lambda: google_error(503, "The service is currently unavailable."),
        "424": lambda: google_error(500, "Internal error encountered."),
        "timeout": lambda: google_error(504, "Deadline Exceeded"),
    }

    def answer() -> Reply:
        try:
            results = app.run_backend(key, endpoint, images)
        except BackendFailed as e:
            return google_error(400 if e.status == 400 else 500, e.message)
        responses = []
        for scores, limit in zip(results, limits):
            annotations = [
                {"mid": f"/emulated/{label}", "description": label, "score": s, "topicality": s}
                for label, s in top_k(scores, limit)
            ]
            responses.append({"labelAnnotations": annotations} if annotations else {})
        return json_reply(200, {"responses": responses})

    return app.with_faults(key, endpoint, images, faults, answer)
