"""Loopback emulators of the managed vision services, backed by local models.

Protocols (each speaks the service's documented wire format, so the real adapters and SDK clients talk to
it unchanged; routes are served next to the SageMaker/Azure ML/Vertex ones on the same port):

- ``custom-vision``: ``POST /customvision/v3.1/Prediction/{project}/classify/iterations/{name}/image``
  (and ``.../image/nostore``; ``Prediction-Key`` checked against the endpoint's ``azure_key``);
- ``cloud-vision``: ``POST [/cloud-vision/{name}]/v1/images:annotate`` (LABEL_DETECTION);
- ``rekognition``: boto3's JSON protocol (``X-Amz-Target: RekognitionService.DetectLabels`` or
  ``.DetectCustomLabels``) on ``[/rekognition/{name}]/``; fault ``503`` on Custom Labels answers
  ``ResourceNotReadyException``, as a model that is not RUNNING does;
- ``hf-inference``: ``POST /hf-inference/models/{name}`` (raw image bytes, or ``{"inputs": b64,
  "parameters": {"top_k": k}}``);
- ``kserve``: Open Inference Protocol v2 ``POST /v2/models/{name}[/versions/{v}]/infer`` with a BYTES input
  or a UINT8 image tensor (NHWC or NCHW), plus ``GET /v2/models/{name}`` metadata and health. This is also
  the way to serve any local cloudderm model over the Open Inference Protocol.

Why a wrapper around :class:`~cloudderm.testing.emulator_app.EmulatorApp`: fault injection, counters and
the backing-model run are the existing app's; only routing and the wire formats are new here.
"""

from __future__ import annotations

import base64
import io
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np

from cloudderm.adapters import kserve_codec
from cloudderm.testing.emulator_app import EmulatedEndpoint, EmulatorApp, _BackendFailed
from cloudderm.testing.emulators import Emulator
from cloudderm.testing.wire import Reply

__all__ = ["SERVICE_PROTOCOLS", "ServicesApp", "ServicesEmulator"]

SERVICE_PROTOCOLS = ("custom-vision", "cloud-vision", "rekognition", "hf-inference", "kserve")
_CUSTOM_VISION = re.compile(
    r"^/customvision/v3\.1/Prediction/(?P<project>[^/]+)/classify/iterations/(?P<name>[^/]+)/image(?P<nostore>/nostore)?$"
)
_CLOUD_VISION = re.compile(r"^(?:/cloud-vision/(?P<name>[^/]+))?/v1/images:annotate$")
_REKOGNITION = re.compile(r"^(?:/rekognition/(?P<name>[^/]+))?/?$")
_HF = re.compile(r"^/hf-inference/models/(?P<name>.+)$")
_KSERVE_INFER = re.compile(r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?/infer$")
_KSERVE_META = re.compile(r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<ready>/ready)?$")
_PROJECT_IN_ARN = re.compile(r":project/(?P<project>[^/]+)/version/")
KSERVE_OUTPUT = "probabilities"
REKOGNITION_DEFAULT_MIN_CONFIDENCE = 55.0  # the service's documented default when MinConfidence is omitted


def _json(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(
        status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})}
    )


def _ranked(scores: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
    return sorted(scores, key=lambda ls: ls[1], reverse=True)


class ServicesApp:
    """Routes the managed-service protocols, then everything else to the wrapped ``EmulatorApp``."""

    def __init__(self, inner: EmulatorApp) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:  # stop, stats, endpoints... are the inner app's
        return getattr(self.inner, name)

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Reply:
        from urllib.parse import unquote, urlsplit

        path = unquote(urlsplit(target).path)
        amz_target = headers.get("X-Amz-Target") or ""
        if (
            method == "POST"
            and amz_target.startswith("RekognitionService.")
            and (m := _REKOGNITION.match(path))
        ):
            return self._counted(
                f"rekognition/{m['name'] or '_'}",
                body,
                lambda: self._rekognition(m["name"], amz_target, body),
            )
        if method == "POST" and (m := _CUSTOM_VISION.match(path)):
            return self._counted(
                f"custom-vision/{m['name']}", body, lambda: self._custom_vision(m, headers, body)
            )
        if method == "POST" and (m := _CLOUD_VISION.match(path)):
            return self._counted(
                f"cloud-vision/{m['name'] or '_'}", body, lambda: self._cloud_vision(m["name"], body)
            )
        if method == "POST" and (m := _HF.match(path)):
            return self._counted(
                f"hf-inference/{m['name']}", body, lambda: self._hf(m["name"], headers, body)
            )
        if method == "POST" and (m := _KSERVE_INFER.match(path)):
            return self._counted(
                f"kserve/{m['name']}", body, lambda: self._kserve_infer(m["name"], m["version"], body)
            )
        if method == "GET" and (m := _KSERVE_META.match(path)):
            return self._kserve_metadata(m["name"], bool(m["ready"]))
        if method == "GET" and path in ("/v2/health/ready", "/v2/health/live"):
            return Reply(200, b"", {})
        return self.inner.handle(method, target, headers, body)

    # ---- shared --------------------------------------------------------------------------------------
    def _counted(self, key: str, body: bytes, answer: Any) -> Reply:
        self.inner.stats.record_request(key, len(body))
        reply = answer()
        reply.headers.setdefault("x-request-id", str(uuid.uuid4()))
        self.inner.stats.record_status(key, reply.status)
        return reply

    def _endpoint(self, name: str | None) -> tuple[str, EmulatedEndpoint] | None:
        endpoints = self.inner.endpoints
        if name is None:
            return next(iter(endpoints.items())) if len(endpoints) == 1 else None
        return (name, endpoints[name]) if name in endpoints else None

    def _scores(
        self, key: str, endpoint: EmulatedEndpoint, images: Sequence[bytes]
    ) -> list[list[tuple[str, float]]]:
        return self.inner._run(key, endpoint, images)

    def _serve(
        self,
        key: str,
        endpoint: EmulatedEndpoint,
        images: Sequence[bytes],
        errors: Mapping[str, Reply],
        answer: Any,
    ) -> Reply:
        faults = {
            kind: (lambda r=reply: Reply(r.status, r.body, dict(r.headers))) for kind, reply in errors.items()
        }

        def run() -> Reply:
            try:
                return answer(self._scores(key, endpoint, images))
            except _BackendFailed as e:  # the model could not answer
                return _json(e.status, {"error": e.message})

        return self.inner._with_faults(key, endpoint, images, faults, run)

    # ---- Azure Custom Vision --------------------------------------------------------------------------
    def _custom_vision(self, m: re.Match[str], headers: Mapping[str, str], body: bytes) -> Reply:
        def error(status: int, code: str, message: str) -> Reply:
            return _json(status, {"code": code, "message": message})

        found = self._endpoint(m["name"])
        if found is None:
            return error(404, "NotFound", f"Published iteration {m['name']!r} not found.")
        name, endpoint = found
        if headers.get("Prediction-Key") != endpoint.azure_key:
            return error(401, "Unauthorized", "Access denied due to invalid subscription key.")
        if len(body) > 4 * 1024 * 1024:
            return error(400, "BadRequestImageSizeBytes", "Image size exceeds 4 MB.")
        errors = {
            "429": error(429, "TooManyRequests", "Rate limit is exceeded."),
            "503": error(503, "ServiceUnavailable", "The service is unavailable."),
            "424": error(500, "InternalServerError", "Internal error."),
            "timeout": error(408, "Timeout", "The operation timed out."),
        }

        def answer(results: list[list[tuple[str, float]]]) -> Reply:
            predictions = [
                {
                    "tagId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{name}/{label}")),
                    "tagName": label,
                    "probability": p,
                }
                for label, p in _ranked(results[0])
            ]
            return _json(
                200,
                {
                    "id": str(uuid.uuid4()),
                    "project": m["project"],
                    "iteration": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{name}/iteration")),
                    "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "predictions": predictions,
                },
            )

        return self._serve(f"custom-vision/{name}", endpoint, [body], errors, answer)

    # ---- Google Cloud Vision ----------------------------------------------------------------------------
    def _cloud_vision(self, name: str | None, body: bytes) -> Reply:
        from cloudderm.testing.wire import google_error

        found = self._endpoint(name)
        if found is None:
            return google_error(404, f"No emulated Cloud Vision backend {name!r}.")
        name, endpoint = found
        try:
            requests = json.loads(body)["requests"]
            images = [base64.b64decode(r["image"]["content"], validate=True) for r in requests]
            limits = [int(r["features"][0].get("maxResults", 10)) for r in requests]
        except (ValueError, KeyError, TypeError, IndexError):
            return google_error(400, "Invalid JSON payload received.")
        if not 1 <= len(images) <= 16:
            return google_error(400, "Too many images per request: at most 16.")
        errors = {
            "429": google_error(429, "Quota exceeded for quota metric 'Requests'."),
            "503": google_error(503, "The service is currently unavailable."),
            "424": google_error(500, "Internal error encountered."),
            "timeout": google_error(504, "Deadline Exceeded"),
        }

        def answer(results: list[list[tuple[str, float]]]) -> Reply:
            responses = []
            for scores, limit in zip(results, limits):
                annotations = [
                    {"mid": f"/emulated/{label}", "description": label, "score": s, "topicality": s}
                    for label, s in _ranked(scores)[:limit]
                ]
                responses.append({"labelAnnotations": annotations} if annotations else {})
            return _json(200, {"responses": responses})

        return self._serve(f"cloud-vision/{name}", endpoint, images, errors, answer)

    # ---- AWS Rekognition ----------------------------------------------------------------------------------
    def _rekognition(self, name: str | None, amz_target: str, body: bytes) -> Reply:
        def error(code: str, message: str, status: int = 400) -> Reply:
            return _json(
                status, {"__type": code, "Message": message}, {"Content-Type": "application/x-amz-json-1.1"}
            )

        operation = amz_target.split(".", 1)[1]
        if operation not in ("DetectLabels", "DetectCustomLabels"):
            return error("UnknownOperationException", f"{operation} is not emulated.")
        try:
            request = json.loads(body)
            image = base64.b64decode(request["Image"]["Bytes"], validate=True)
        except (ValueError, KeyError, TypeError):
            return error("InvalidParameterException", "Request has invalid parameters.")
        custom = operation == "DetectCustomLabels"
        if custom:
            match = _PROJECT_IN_ARN.search(str(request.get("ProjectVersionArn", "")))
            name = match["project"] if match else None
        found = self._endpoint(name)
        if found is None:
            return error("ResourceNotFoundException", f"No emulated Rekognition backend {name!r}.")
        name, endpoint = found
        if len(image) > 5 * 1024 * 1024:
            return error("ImageTooLargeException", "Image size is too large.")
        floor = float(request.get("MinConfidence", REKOGNITION_DEFAULT_MIN_CONFIDENCE))
        not_ready = error("ResourceNotReadyException", "ProjectVersion is not in RUNNING state (emulator).")
        errors = {
            "429": error("ThrottlingException", "Rate exceeded."),
            "503": not_ready if custom else error("InternalServerError", "Service unavailable.", 500),
            "424": error("InternalServerError", "Internal server error.", 500),
            "timeout": error("InternalServerError", "Request timed out.", 500),
        }

        def answer(results: list[list[tuple[str, float]]]) -> Reply:
            labels = [(label, 100.0 * s) for label, s in _ranked(results[0]) if 100.0 * s >= floor]
            if custom:
                payload: dict[str, Any] = {"CustomLabels": [{"Name": n, "Confidence": c} for n, c in labels]}
            else:
                items = [{"Name": n, "Confidence": c, "Instances": [], "Parents": []} for n, c in labels]
                payload = {"Labels": items, "LabelModelVersion": "3.0"}
            return _json(200, payload, {"Content-Type": "application/x-amz-json-1.1"})

        return self._serve(f"rekognition/{name}", endpoint, [image], errors, answer)

    # ---- Hugging Face Inference ---------------------------------------------------------------------------
    def _hf(self, name: str, headers: Mapping[str, str], body: bytes) -> Reply:
        found = self._endpoint(name)
        if found is None:
            return _json(404, {"error": f"Model {name} does not exist"})
        name, endpoint = found
        top_k = endpoint.top_k
        image = body
        if (headers.get("Content-Type") or "").startswith("application/json"):
            try:
                payload = json.loads(body)
                image = base64.b64decode(payload["inputs"], validate=True)
                top_k = (payload.get("parameters") or {}).get("top_k") or top_k
            except (ValueError, KeyError, TypeError):
                return _json(400, {"error": "inputs must be a base64-encoded image"})
        errors = {
            "429": _json(429, {"error": "Rate limit reached."}),
            "503": _json(503, {"error": f"Model {name} is currently loading", "estimated_time": 1.0}),
            "424": _json(500, {"error": "Internal server error"}),
            "timeout": _json(504, {"error": "Gateway timeout"}),
        }

        def answer(results: list[list[tuple[str, float]]]) -> Reply:
            ranked = _ranked(results[0])
            ranked = ranked if top_k is None else ranked[: int(top_k)]
            return _json(200, [{"label": label, "score": s} for label, s in ranked])

        return self._serve(f"hf-inference/{name}", endpoint, [image], errors, answer)

    # ---- KServe v2 / Open Inference Protocol ------------------------------------------------------------
    def kserve_labels(self, name: str) -> list[str]:
        """The class names, in the order the emulated model's output tensor lists them."""
        endpoint = self.inner.endpoints[name]
        order = self.inner.label_order(f"kserve/{name}", endpoint)
        if order:
            return list(order)
        from cloudderm.images import prepare

        probe = prepare(_probe_png(), source="kserve label probe")
        return sorted(ls.label for ls in endpoint.backend.classify_prepared([probe])[0].labels)

    def _kserve_metadata(self, name: str, ready: bool) -> Reply:
        if name not in self.inner.endpoints:
            return _json(404, {"error": f"Model with name {name} does not exist."})
        if ready:
            return Reply(200, b"", {})
        labels = self.kserve_labels(name)
        return _json(
            200,
            {
                "name": name,
                "versions": ["1"],
                "platform": "cloudderm-emulator",
                "inputs": [{"name": "image", "datatype": "BYTES", "shape": [-1]}],
                "outputs": [{"name": KSERVE_OUTPUT, "datatype": "FP32", "shape": [-1, len(labels)]}],
            },
        )

    def _kserve_infer(self, name: str, version: str | None, body: bytes) -> Reply:
        if name not in self.inner.endpoints:
            return _json(404, {"error": f"Model with name {name} does not exist."})
        endpoint = self.inner.endpoints[name]
        try:
            _, shape, datatype, data, wanted = kserve_codec.parse_request(body)
            images = _kserve_images(shape, datatype, data)
        except (kserve_codec.MalformedResponse, ValueError) as e:
            return _json(400, {"error": str(e)})
        if wanted not in (None, KSERVE_OUTPUT):
            return _json(400, {"error": f"unknown output {wanted!r}; this model has {KSERVE_OUTPUT!r}"})
        errors = {
            "429": _json(429, {"error": "too many requests"}),
            "503": _json(503, {"error": "model not ready"}),
            "424": _json(500, {"error": "model failed"}),
            "timeout": _json(504, {"error": "timeout"}),
        }
        labels = self.kserve_labels(name)

        def answer(results: list[list[tuple[str, float]]]) -> Reply:
            rows = [[dict(scores).get(label, 0.0) for label in labels] for scores in results]
            output = {
                "name": KSERVE_OUTPUT,
                "shape": [len(rows), len(labels)],
                "datatype": "FP32",
                "data": [v for row in rows for v in row],
            }
            payload = {
                "model_name": name,
                "model_version": version or "1",
                "id": str(uuid.uuid4()),
                "outputs": [output],
            }
            return _json(200, payload)

        return self._serve(f"kserve/{name}", endpoint, images, errors, answer)


def _probe_png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (128, 128, 128)).save(buf, format="PNG")
    return buf.getvalue()


def _kserve_images(shape: list[int], datatype: str, data: list[Any]) -> list[bytes]:
    """Encoded images from a BYTES input (base64 each) or a UINT8 image tensor (NHWC or NCHW)."""
    from PIL import Image

    if datatype == "BYTES":
        return [base64.b64decode(str(item), validate=True) for item in data]
    if datatype != "UINT8" or len(shape) != 4 or 3 not in (shape[1], shape[3]):
        raise ValueError("send the image as BYTES (base64) or a UINT8 [N, H, W, 3] / [N, 3, H, W] tensor")
    array = np.asarray(data, dtype=np.uint8).reshape(shape)
    if shape[3] != 3:
        array = np.transpose(array, (0, 2, 3, 1))
    out = []
    for pixels in array:
        buf = io.BytesIO()
        Image.fromarray(pixels, "RGB").save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


class ServicesEmulator(Emulator):
    """The SageMaker/Azure ML/Vertex emulator plus the five managed-service protocols, on one port.

    ``config(protocol, name)`` gives the adapter settings that reach endpoint ``name`` through ``protocol``
    (one of ``SERVICE_PROTOCOLS``, or sagemaker/azureml/vertex).
    """

    def __init__(self, backends: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(backends, **kwargs)
        self.app = ServicesApp(self.app)  # type: ignore[assignment]

    def config(self, protocol: str, name: str) -> dict[str, Any]:
        endpoint = self._endpoint(name)
        base = self.base_url
        if protocol == "custom-vision":
            return {
                "adapter": "custom-vision",
                "endpoint": "https://emulated.cognitiveservices.azure.com",
                "endpoint_url": base,
                "project_id": "00000000-0000-4000-8000-000000000000",
                "published_name": name,
                "prediction_key": endpoint.azure_key,
                "region": self.azure_region,
            }
        if protocol == "cloud-vision":
            return {
                "adapter": "cloud-vision",
                "endpoint_url": f"{base}/cloud-vision/{name}",
                "anonymous": True,
            }
        if protocol == "rekognition":
            return {
                "adapter": "rekognition",
                "region": self.region,
                "endpoint_url": f"{base}/rekognition/{name}",
            }
        if protocol == "hf-inference":
            return {
                "adapter": "hf-inference",
                "model": name,
                "endpoint_url": f"{base}/hf-inference/models/{name}",
            }
        if protocol == "kserve":
            return {
                "adapter": "kserve",
                "url": base,
                "model_name": name,
                "labels": self.app.kserve_labels(name),
            }  # type: ignore[attr-defined]
        return getattr(self, f"{protocol}_config")(name)


def custom_labels_arn(region: str, project: str) -> str:
    """A project-version ARN the emulator routes to endpoint ``project``."""
    return f"arn:aws:rekognition:{region}:000000000000:project/{project}/version/{project}.1/1"
