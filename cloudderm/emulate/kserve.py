"""Open Inference Protocol (KServe v2) as the emulator serves it: also a small OIP server for any local model.

``POST /v2/models/{name}[/versions/{v}]/infer`` takes one input, BYTES (base64 encoded images) or a UINT8
image tensor ``[N, H, W, 3]`` / ``[N, 3, H, W]``, and answers one FP32 output ``probabilities`` of shape
``[N, labels]`` in the backend's label order (what ``config`` lists as ``labels``). ``GET /v2/models/{name}``
is the model metadata, ``GET /v2/models/{name}/ready`` and ``GET /v2/health/ready|live`` the health checks.
Errors are ``{"error": "..."}``.
"""

from __future__ import annotations

import base64
import io
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cloudderm.adapters import kserve_codec
from cloudderm.emulate.protocol import EndpointRequest, Protocol
from cloudderm.emulate.wire import Reply, json_reply

if TYPE_CHECKING:
    from cloudderm.emulate.app import EmulatedEndpoint, EmulatorApp
    from cloudderm.emulate.emulator import Emulator

__all__ = ["KServeProtocol", "kserve_images"]

OUTPUT = "probabilities"


def oip_error(status: int, message: str) -> Reply:
    return json_reply(status, {"error": message})


class KServeProtocol(Protocol):
    name = "kserve"
    title = "KServe v2 / Open Inference Protocol"
    adapter = "kserve"
    methods = ("GET", "POST")
    route = re.compile(
        r"^/v2/(?:health/(?P<health>ready|live)|models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?"
        r"(?P<action>/infer|/ready)?)$"
    )

    def handle(
        self, app: EmulatorApp, match: re.Match[str], headers: Mapping[str, str], body: bytes
    ) -> Reply:
        # Extends the template: only /infer is counted; health, readiness and metadata are answered uncounted.
        if match["health"]:
            return Reply(200, b"", {})
        if match["action"] == "/infer":
            return super().handle(app, match, headers, body)
        name = match["name"]
        endpoint = app.endpoints.get(name)
        if endpoint is None:
            return self.not_found(name, match)
        return Reply(200, b"", {}) if match["action"] == "/ready" else _metadata(app, name, endpoint)

    def not_found(self, name: str, match: re.Match[str]) -> Reply:
        return oip_error(404, f"Model with name {name} does not exist.")

    def serve(self, request: EndpointRequest) -> Reply:
        m = request.match
        return _infer(request.app, request.key, m["name"], m["version"], request.endpoint, request.body)

    def config(self, emulator: Emulator, name: str) -> dict[str, Any]:
        """BYTES input; the labels are the backend's, in the order of the output tensor's columns."""
        endpoint = emulator.endpoint(name)
        return {
            "adapter": "kserve",
            "url": emulator.base_url,
            "model_name": name,
            "labels": labels_of(emulator.app, name, endpoint),
        }

    def banner(self, emulator: Emulator, name: str) -> str:
        return f"POST {emulator.base_url}/v2/models/{name}/infer  (GET /v2/models/{name} for metadata)"


def labels_of(app: EmulatorApp, name: str, endpoint: EmulatedEndpoint) -> list[str]:
    """The output tensor's column labels: the backend's own order, else sorted (as ``run_backend`` does)."""
    order = app.label_order(f"kserve/{name}", endpoint)
    if order:
        return list(order)
    from cloudderm.images import prepare

    probe = prepare(_grey_png(), source="kserve label probe")
    return sorted(ls.label for ls in endpoint.backend.classify_prepared([probe])[0].labels)


def _metadata(app: EmulatorApp, name: str, endpoint: EmulatedEndpoint) -> Reply:
    labels = labels_of(app, name, endpoint)
    return json_reply(
        200,
        {
            "name": name,
            "versions": ["1"],
            "platform": "cloudderm-emulator",
            "inputs": [{"name": "image", "datatype": "BYTES", "shape": [-1]}],
            "outputs": [{"name": OUTPUT, "datatype": "FP32", "shape": [-1, len(labels)]}],
        },
    )


def _infer(
    app: EmulatorApp, key: str, name: str, version: str | None, endpoint: EmulatedEndpoint, body: bytes
) -> Reply:
    from cloudderm.emulate.app import BackendFailed

    try:
        _, shape, datatype, data, wanted = kserve_codec.parse_request(body)
        images = kserve_images(shape, datatype, data)
    except (kserve_codec.MalformedResponse, ValueError) as e:
        return oip_error(400, str(e))
    if wanted not in (None, OUTPUT):
        return oip_error(400, f"unknown output {wanted!r}; this model has {OUTPUT!r}")
    labels = labels_of(app, name, endpoint)
    faults = {
        "429": lambda: oip_error(429, "too many requests (emulator)"),
        "503": lambda: oip_error(503, "model not ready (emulator)"),
        "424": lambda: oip_error(500, "model failed (emulator)"),
        "timeout": lambda: oip_error(504, "timeout (emulator)"),
    }

    def answer() -> Reply:
        try:
            results = app.run_backend(key, endpoint, images)
        except BackendFailed as e:
            return oip_error(e.status, e.message)
        rows = [[dict(scores).get(label, 0.0) for label in labels] for scores in results]
        output = {
            "name": OUTPUT,
            "shape": [len(rows), len(labels)],
            "datatype": "FP32",
            "data": [v for row in rows for v in row],
        }
        return json_reply(
            200,
            {
                "model_name": name,
                "model_version": version or "1",
                "id": str(uuid.uuid4()),
                "outputs": [output],
            },
        )

    return app.with_faults(key, endpoint, images, faults, answer)


def kserve_images(shape: Sequence[int], datatype: str, data: list[Any]) -> list[bytes]:
    """Encoded images from a BYTES input (base64 each) or a UINT8 image tensor (NHWC or NCHW)."""
    import numpy as np
    from PIL import Image

    if datatype == "BYTES":
        return [base64.b64decode(str(item), validate=True) for item in data]
    if datatype != "UINT8" or len(shape) != 4 or 3 not in (shape[1], shape[3]):
        raise ValueError("send the image as BYTES (base64) or a UINT8 [N, H, W, 3] / [N, 3, H, W] tensor")
    array = np.asarray(data, dtype=np.uint8).reshape(list(shape))
    if shape[3] != 3:
        array = np.transpose(array, (0, 2, 3, 1))
    out = []
    for pixels in array:
        buf = io.BytesIO()
        Image.fromarray(pixels, "RGB").save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def _grey_png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (128, 128, 128)).save(buf, format="PNG")
    return buf.getvalue()
