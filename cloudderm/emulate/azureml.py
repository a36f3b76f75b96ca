"""Azure ML managed online endpoint ``/score`` as the emulator serves it (key auth, deployment header).

Two scoring schemas: AutoML for images (MLflow) and a scoring script around a ``transformers`` pipeline.
The service documents status codes and headers, not the body text of its errors.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cloudderm.emulate.protocol import Protocol
from cloudderm.emulate.wire import Reply, Scores, WireError, b64_image, json_reply, top_k

if TYPE_CHECKING:
    from cloudderm.emulate.app import EmulatedEndpoint, EmulatorApp
    from cloudderm.emulate.emulator import Emulator

__all__ = ["AZURE_FLAVORS", "AzureMLProtocol", "azure_error", "azure_parse", "azure_success"]

AZURE_FLAVORS = ("automl", "transformers")


class AzureMLProtocol(Protocol):
    """``POST /azureml/{name}/score`` (or ``/score`` alone when the key names the endpoint)."""

    name = "azureml"
    title = "Azure ML"
    adapter = "azureml"
    route = re.compile(r"^(?:/azureml/(?P<name>[^/]+))?/score$")

    def check(self, endpoint: EmulatedEndpoint) -> None:
        if endpoint.azure_flavor not in AZURE_FLAVORS:
            raise ValueError(
                f"azure_flavor {endpoint.azure_flavor!r} is not one of {', '.join(AZURE_FLAVORS)}"
            )

    def handle(
        self, app: EmulatorApp, match: re.Match[str], headers: Mapping[str, str], body: bytes
    ) -> Reply:
        # Overrides the template: ``/score`` alone names no endpoint (the key picks one, else it is counted
        # as ``_unrouted``), and the deployment header is counted even for an unknown endpoint.
        name = match["name"]
        auth = headers.get("Authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        if name is None:
            name = _by_key(app, token)
        key = f"{self.name}/{name or '_unrouted'}"
        endpoint = app.endpoints.get(name) if name else None
        deployment = headers.get("azureml-model-deployment")

        def answer() -> Reply:
            if deployment:
                app.stats.record_deployment(key, deployment)
            if endpoint is None:
                reply = azure_error(404, f"No online endpoint named {name!r} is emulated here.")
            elif token != endpoint.azure_key:
                app.stats.record_auth_failure(key)
                reply = azure_error(
                    401, "Unauthorized: missing or invalid endpoint key (Authorization: Bearer)."
                )
            elif deployment and deployment != endpoint.azure_deployment:
                reply = azure_error(404, f"Deployment {deployment!r} not found for this endpoint.")
            else:
                reply = _score(app, key, endpoint, body)
                reply.headers["azureml-model-deployment"] = endpoint.azure_deployment
            request_id = str(uuid.uuid4())
            reply.headers["x-ms-request-id"] = request_id
            reply.headers["x-request-id"] = request_id
            return reply

        return self.counted(app, key, body, answer)

    def config(self, emulator: Emulator, name: str) -> dict[str, Any]:
        """Settings for the ``azureml`` adapter (key auth against the emulated endpoint)."""
        endpoint = emulator.endpoint(name)
        return {
            "adapter": "azureml",
            "scoring_uri": scoring_uri(emulator, name),
            "api_key": endpoint.azure_key,
            "deployment": endpoint.azure_deployment,
            "region": emulator.azure_region,
            "response_format": endpoint.azure_flavor,
        }

    def banner(self, emulator: Emulator, name: str) -> str:
        return f"POST {scoring_uri(emulator, name)}  (Bearer {emulator.endpoint(name).azure_key})"


def scoring_uri(emulator: Emulator, name: str) -> str:
    """The scoring URI of endpoint ``name`` (``/score`` alone also works when the key is unique)."""
    emulator.endpoint(name)
    return f"{emulator.base_url}/azureml/{name}/score"


def _by_key(app: EmulatorApp, token: str | None) -> str | None:
    """``/score`` without a name: the only endpoint, or the one whose key was presented."""
    if len(app.endpoints) == 1:
        return next(iter(app.endpoints))
    matches = [name for name, ep in app.endpoints.items() if token and ep.azure_key == token]
    return matches[0] if len(matches) == 1 else None


def _score(app: EmulatorApp, key: str, endpoint: EmulatedEndpoint, body: bytes) -> Reply:
    from cloudderm.emulate.app import BackendFailed

    try:
        images = azure_parse(body, endpoint.azure_flavor)
    except WireError as e:
        return e.reply

    def model_error(status: int, reason: str) -> Reply:
        headers = {
            "ms-azureml-model-error-statuscode": str(status),
            "ms-azureml-model-error-reason": reason,
        }
        return azure_error(424, f"Model returned {status}: {reason}", headers)

    faults = {
        "429": lambda: azure_error(429, "Too many pending requests."),
        "503": lambda: azure_error(503, "Service unavailable."),
        "424": lambda: model_error(500, "model_error"),
        "timeout": lambda: azure_error(408, "Request timed out waiting for the model."),
    }

    def answer() -> Reply:
        try:
            results = app.run_backend(key, endpoint, images)
        except BackendFailed as e:
            return model_error(e.status, e.message)
        return azure_success(endpoint.azure_flavor, results, hf_top_k=endpoint.top_k)

    return app.with_faults(key, endpoint, images, faults, answer)


def azure_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Reply:
    """An Azure ML endpoint error; the service documents status codes and headers, not the body text."""
    return json_reply(status, {"message": message}, headers)


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
    return [b64_image(row, lambda msg: azure_error(400, msg)) for row in rows]


def azure_success(flavor: str, results: Sequence[Scores], *, hf_top_k: int | None = 5) -> Reply:
    """One item per image: ``{"probs","labels"}`` (AutoML) or a ranked ``[{"label","score"}]`` list."""
    if flavor == "automl":
        payload: Any = [
            {"probs": [float(s) for _, s in scores], "labels": [lbl for lbl, _ in scores]}
            for scores in results
        ]
    else:
        payload = [[{"label": lbl, "score": s} for lbl, s in top_k(scores, hf_top_k)] for scores in results]
    return json_reply(200, payload)
