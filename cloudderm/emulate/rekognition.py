"""Amazon Rekognition ``DetectLabels`` / ``DetectCustomLabels`` as the emulator serves them (boto3's JSON
protocol: ``X-Amz-Target: RekognitionService.<Operation>``, ``application/x-amz-json-1.1``).

The adapter's ``endpoint_url`` is ``{base}/rekognition/{name}``; ``DetectCustomLabels`` serves the endpoint
named by the project in ``ProjectVersionArn``. Confidences are percentages filtered by ``MinConfidence``
(service default 55 when omitted). Fault ``503`` on ``DetectCustomLabels`` answers
``ResourceNotReadyException``: the model is not RUNNING.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cloudderm.emulate.protocol import Protocol
from cloudderm.emulate.wire import Reply, WireError, b64_image, json_reply, top_k

if TYPE_CHECKING:
    from cloudderm.emulate.app import EmulatedEndpoint, EmulatorApp
    from cloudderm.emulate.emulator import Emulator

__all__ = ["RekognitionProtocol"]

AMZ_JSON = {"Content-Type": "application/x-amz-json-1.1"}
MAX_IMAGE_BYTES = 5 * 1024 * 1024
DEFAULT_MIN_CONFIDENCE = 55.0
_PROJECT = re.compile(r":project/(?P<project>[^/]+)/version/")


def aws_error(code: str, message: str, status: int = 400) -> Reply:
    return json_reply(status, {"__type": code, "Message": message}, AMZ_JSON)


class RekognitionProtocol(Protocol):
    name = "rekognition"
    title = "Amazon Rekognition"
    adapter = "rekognition"
    route = re.compile(r"^/rekognition/(?P<name>[^/]+)/?$")

    def handle(
        self, app: EmulatorApp, match: re.Match[str], headers: Mapping[str, str], body: bytes
    ) -> Reply:
        # Overrides the template: a Custom Labels ARN in the body names the endpoint, and an unknown
        # operation is refused before the lookup.
        operation = (headers.get("X-Amz-Target") or "").removeprefix("RekognitionService.")
        try:
            request = json.loads(body)
            arn = str(request.get("ProjectVersionArn") or "")
        except (ValueError, AttributeError):
            request, arn = None, ""
        name = match["name"]
        if operation == "DetectCustomLabels" and (found := _PROJECT.search(arn)):
            name = found["project"]
        key = f"{self.name}/{name}"
        endpoint = app.endpoints.get(name)

        def answer() -> Reply:
            if operation not in ("DetectLabels", "DetectCustomLabels"):
                return aws_error(
                    "UnknownOperationException", f"{operation or 'no operation'} is not emulated."
                )
            if endpoint is None:
                return aws_error("ResourceNotFoundException", f"No emulated Rekognition backend {name!r}.")
            if not isinstance(request, dict):
                return aws_error("InvalidParameterException", "Request body is not a JSON object.")
            return _detect(app, key, endpoint, request, custom=operation == "DetectCustomLabels")

        return self.counted(app, key, body, answer)

    def config(self, emulator: Emulator, name: str) -> dict[str, Any]:
        """DetectLabels settings; add ``project_version_arn`` naming project ``name`` for Custom Labels."""
        emulator.endpoint(name)
        return {
            "adapter": "rekognition",
            "region": emulator.region,
            "endpoint_url": f"{emulator.base_url}/rekognition/{name}",
        }

    def banner(self, emulator: Emulator, name: str) -> str:
        return f"boto3 rekognition endpoint_url={emulator.base_url}/rekognition/{name}"

    def env(self, emulator: Emulator) -> dict[str, str]:
        from cloudderm.emulate.emulator import FAKE_AWS_ENV

        return {**FAKE_AWS_ENV, "AWS_DEFAULT_REGION": emulator.region}


def custom_labels_arn(region: str, project: str) -> str:
    """A project-version ARN the emulator routes to endpoint ``project``."""
    return f"arn:aws:rekognition:{region}:000000000000:project/{project}/version/{project}.1/1"


def _detect(
    app: EmulatorApp, key: str, endpoint: EmulatedEndpoint, request: dict[str, Any], *, custom: bool
) -> Reply:
    from cloudderm.emulate.app import BackendFailed

    image = b64_image(
        (request.get("Image") or {}).get("Bytes"), lambda m: aws_error("InvalidImageFormatException", m)
    )
    if len(image) > MAX_IMAGE_BYTES:
        raise WireError(aws_error("ImageTooLargeException", "Image size is too large (emulator)."))
    floor = float(request.get("MinConfidence", DEFAULT_MIN_CONFIDENCE))
    not_ready = aws_error("ResourceNotReadyException", "ProjectVersion is not in RUNNING state (emulator).")
    faults = {
        "429": lambda: aws_error("ThrottlingException", "Rate exceeded."),
        "503": (lambda: not_ready)
        if custom
        else (lambda: aws_error("InternalServerError", "Service unavailable.", 500)),
        "424": lambda: aws_error("InternalServerError", "Internal server error.", 500),
        "timeout": lambda: aws_error("InternalServerError", "Request timed out.", 500),
    }

    def answer() -> Reply:
        try:
            (scores,) = app.run_backend(key, endpoint, [image])
        except BackendFailed as e:
            return aws_error(
                "InvalidImageFormatException" if e.status == 400 else "InternalServerError",
                e.message,
                e.status,
            )
        labels = [(n, 100.0 * s) for n, s in top_k(scores, None) if 100.0 * s >= floor]
        if custom:
            payload: dict[str, Any] = {"CustomLabels": [{"Name": n, "Confidence": c} for n, c in labels]}
        else:
            items = [{"Name": n, "Confidence": c, "Instances": [], "Parents": []} for n, c in labels]
            payload = {"Labels": items, "LabelModelVersion": "3.0"}
        return json_reply(200, payload, AMZ_JSON)

    return app.with_faults(key, endpoint, [image], faults, answer)
