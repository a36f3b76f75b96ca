"""Hugging Face Inference (serverless route or a dedicated endpoint) image classification as the emulator
serves it: ``POST /hf-inference/models/{name}`` with the raw image, or ``{"inputs": "<base64>",
"parameters": {"top_k": k}}``; the answer is ``[{"label", "score"}]``, top 5 unless ``top_k`` says otherwise
(the endpoint's ``top_k`` option sets the default); errors ``{"error": "..."}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cloudderm.emulate.protocol import EndpointRequest, Protocol
from cloudderm.emulate.wire import Reply, WireError, b64_image, json_reply, normalise, top_k

if TYPE_CHECKING:
    from cloudderm.emulate.app import EmulatedEndpoint, EmulatorApp
    from cloudderm.emulate.emulator import Emulator

__all__ = ["HFInferenceProtocol"]


def hf_error(status: int, message: str) -> Reply:
    return json_reply(status, {"error": message})


class HFInferenceProtocol(Protocol):
    name = "hf-inference"
    title = "Hugging Face Inference"
    adapter = "hf-inference"
    route = re.compile(r"^/hf-inference/models/(?P<name>[^/]+)$")

    def not_found(self, name: str, match: re.Match[str]) -> Reply:
        return hf_error(404, f"Model {name} does not exist")

    def serve(self, request: EndpointRequest) -> Reply:
        image, k = _parse(request.body, request.headers, request.endpoint.top_k)
        return _classify(request.app, request.key, request.endpoint, image, k)

    def config(self, emulator: Emulator, name: str) -> dict[str, Any]:
        emulator.endpoint(name)
        return {
            "adapter": "hf-inference",
            "model": name,
            "endpoint_url": f"{emulator.base_url}/hf-inference/models/{name}",
        }

    def banner(self, emulator: Emulator, name: str) -> str:
        return f"POST {emulator.base_url}/hf-inference/models/{name}"


def _parse(body: bytes, headers: Mapping[str, str], default_k: int | None) -> tuple[bytes, int | None]:
    if not normalise(headers.get("Content-Type")).startswith("application/json"):
        return body, default_k
    try:
        payload = json.loads(body)
        parameters = payload.get("parameters") or {}
        k = parameters.get("top_k", default_k)
    except (ValueError, AttributeError):
        raise WireError(hf_error(400, "the body is not JSON with 'inputs'")) from None
    return b64_image(payload.get("inputs"), lambda m: hf_error(400, m)), (int(k) if k is not None else None)


def _classify(app: EmulatorApp, key: str, endpoint: EmulatedEndpoint, image: bytes, k: int | None) -> Reply:
    from cloudderm.emulate.app import BackendFailed

    faults = {
        "429": lambda: hf_error(429, "Rate limit reached (emulator)."),
        "503": lambda: hf_error(503, "Model is currently loading (emulator)."),
        "424": lambda: hf_error(500, "Internal server error (emulator)."),
        "timeout": lambda: hf_error(504, "Gateway timeout (emulator)."),
    }

    def answer() -> Reply:
        try:
            (scores,) = app.run_backend(key, endpoint, [image])
        except BackendFailed as e:
            return hf_error(e.status, e.message)
        return json_reply(200, [{"label": label, "score": s} for label, s in top_k(scores, k)])

    return app.with_faults(key, endpoint, [image], faults, answer)
