"""Request dispatch for the emulators: route, count, inject faults, run the backing model, encode.

Kept apart from the socket code so every protocol path is a plain function call
``EmulatorApp.handle(method, path, headers, body) -> Reply``; the HTTP server only moves bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from PIL import Image

from cloudderm.errors import CloudDermError, InvalidImageError
from cloudderm.images import PreparedImage, prepare
from cloudderm.testing import wire
from cloudderm.testing.faults import FaultPlan
from cloudderm.testing.stats import EmulatorStats
from cloudderm.testing.wire import Reply, WireError

if TYPE_CHECKING:
    from cloudderm.classifier import Classifier

__all__ = ["EmulatedEndpoint", "EmulatorApp"]

log = logging.getLogger(__name__)

_AS_IS_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png"}
_ORIENTATION_TAG = 0x0112
_SAGEMAKER = re.compile(r"^/endpoints/(?P<name>[^/]+)/invocations$")
_AZURE = re.compile(r"^(?:/azureml/(?P<name>[^/]+))?/score$")
_VERTEX = re.compile(
    r"^/(?P<version>v1|v1beta1)/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/endpoints/(?P<endpoint>[^/:]+):predict$"
)


@dataclass
class EmulatedEndpoint:
    """One emulated endpoint, served under the same name by all three protocols.

    Attributes:
        backend: the model that answers (any ``Classifier``; normally a local Hugging Face model).
        sagemaker_format: which container SageMaker pretends to run: ``jumpstart-verbose`` /
            ``jumpstart`` (JumpStart image classification; both Accept types are served), ``builtin``
            (the built-in Image Classification algorithm) or ``huggingface`` (the HF inference toolkit).
        azure_flavor: ``automl`` (AutoML for images MLflow model) or ``transformers`` (a scoring script
            around a ``transformers`` pipeline).
        azure_key: the endpoint key expected as ``Authorization: Bearer <key>``.
        azure_deployment: the deployment name; a request naming another deployment gets 404.
        top_k: how many ranked labels the Hugging Face formats return (the pipeline default is 5).
        faults: this endpoint's fault plan (overrides the emulator-wide plan).
        variant: the SageMaker production variant reported in ``x-Amzn-Invoked-Production-Variant``.
        sagemaker_throttle: how a ``429`` fault looks on SageMaker: ``ThrottlingException`` (HTTP 400,
            request rate exceeded) or ``ModelNotReadyException`` (HTTP 429, serverless or multi-model
            endpoint still loading).
    """

    backend: Classifier
    sagemaker_format: str = "jumpstart-verbose"
    azure_flavor: str = "automl"
    azure_key: str = "emulator-key"
    azure_deployment: str = "blue"
    top_k: int | None = 5
    faults: FaultPlan | None = None
    variant: str = "AllTraffic"
    sagemaker_throttle: str = "ThrottlingException"

    def __post_init__(self) -> None:
        if self.sagemaker_throttle not in ("ThrottlingException", "ModelNotReadyException"):
            raise ValueError("sagemaker_throttle must be ThrottlingException or ModelNotReadyException")
        if self.sagemaker_format not in wire.SAGEMAKER_FORMATS:
            known = ", ".join(wire.SAGEMAKER_FORMATS)
            raise ValueError(f"sagemaker_format {self.sagemaker_format!r} is not one of {known}")
        if self.azure_flavor not in wire.AZURE_FLAVORS:
            raise ValueError(
                f"azure_flavor {self.azure_flavor!r} is not one of {', '.join(wire.AZURE_FLAVORS)}"
            )

    def numeric_id(self, salt: str) -> str:
        """A stable numeric id (Vertex names deployed models and models by number, not by name)."""
        digest = hashlib.sha256(f"{salt}|{self.backend.model_id}".encode()).digest()
        return str(int.from_bytes(digest[:7], "big"))


class _BackendFailed(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class EmulatorApp:
    """Dispatches requests for a set of named endpoints; shared by all server threads.

    Args:
        endpoints: name -> endpoint.
        faults: the plan for endpoints that have none of their own (None: no faults, no latency).
        region: the AWS region quoted in SageMaker error messages and config snippets.
        stop: set when the emulator shuts down; latency and held "timeout" connections end early.

    ``fault_overrides`` maps ``"<protocol>/<name>"`` to a plan that wins over the endpoint's and the
    default plan, so one protocol of an endpoint can fail while the others answer.
    """

    def __init__(
        self,
        endpoints: Mapping[str, EmulatedEndpoint],
        *,
        faults: FaultPlan | None = None,
        region: str = "eu-west-2",
        stop: threading.Event | None = None,
    ) -> None:
        self.endpoints = dict(endpoints)
        self.faults = faults or FaultPlan()
        self.fault_overrides: dict[str, FaultPlan] = {}
        self.region = region
        self.stop = stop or threading.Event()
        self.stats = EmulatorStats()
        self._labels: dict[str, list[str] | None] = {}
        self._labels_lock = threading.Lock()

    # ---- entry point ----------------------------------------------------------------------------------
    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """Answer one request (``target`` is the request line's path with its query string)."""
        path = unquote(urlsplit(target).path)
        if path.startswith("/_emulator/"):
            return self._control(method, path)
        if method != "POST":
            return Reply(405, b"method not allowed", {"Content-Type": "text/plain", "Allow": "POST"})
        if m := _SAGEMAKER.match(path):
            return self._sagemaker(m["name"], headers, body)
        if m := _AZURE.match(path):
            return self._azure(m["name"], headers, body)
        if m := _VERTEX.match(path):
            return self._vertex(m["project"], m["location"], m["endpoint"], body)
        message = f"no emulated route for POST {path}; see GET /_emulator/stats for the endpoints"
        return Reply(404, json.dumps({"message": message}).encode(), {"Content-Type": "application/json"})

    def _control(self, method: str, path: str) -> Reply:
        if path == "/_emulator/stats" and method == "GET":
            payload = self.stats.snapshot()
            payload["endpoints_configured"] = sorted(self.endpoints)
            return Reply(200, json.dumps(payload, indent=2).encode(), {"Content-Type": "application/json"})
        if path == "/_emulator/reset" and method == "POST":
            self.stats.reset()
            return Reply(204, b"")
        if path == "/_emulator/health":
            return Reply(200, b'{"status":"ok"}', {"Content-Type": "application/json"})
        return Reply(
            404, b'{"message":"unknown emulator control path"}', {"Content-Type": "application/json"}
        )

    # ---- SageMaker runtime InvokeEndpoint ---------------------------------------------------------------
    def _sagemaker(self, name: str, headers: Mapping[str, str], body: bytes) -> Reply:
        request_id = str(uuid.uuid4())
        key = f"sagemaker/{name}"
        endpoint = self.endpoints.get(name)
        self.stats.record_request(key, len(body))
        if endpoint is None:
            message = f"Endpoint {name} of account {wire.EMULATED_ACCOUNT} not found."
            reply = wire.sagemaker_error("ValidationError", 400, message)
        elif len(body) > wire.SAGEMAKER_MAX_BODY_BYTES:
            message = (
                f"Request body of {len(body)} bytes exceeds the {wire.SAGEMAKER_MAX_BODY_BYTES} byte limit."
            )
            reply = wire.sagemaker_error("ValidationError", 400, message)
        else:
            reply = self._sagemaker_invoke(key, name, endpoint, headers, body)
            reply.headers["x-Amzn-Invoked-Production-Variant"] = endpoint.variant
        reply.headers["x-amzn-RequestId"] = request_id
        self.stats.record_status(key, reply.status)
        return reply

    def _sagemaker_invoke(
        self, key: str, name: str, endpoint: EmulatedEndpoint, headers: Mapping[str, str], body: bytes
    ) -> Reply:
        fmt = endpoint.sagemaker_format

        def model_error(status: int, message: str) -> Reply:
            return wire.sagemaker_model_error(name, self.region, status, message)

        if endpoint.sagemaker_throttle == "ModelNotReadyException":
            throttle = wire.sagemaker_error(
                "ModelNotReadyException", 429, f"Model for endpoint {name} is not ready; try again later."
            )
        else:
            throttle = wire.sagemaker_error("ThrottlingException", 400, "Rate exceeded")
        faults = {
            "429": lambda: throttle,
            "503": lambda: wire.sagemaker_error("ServiceUnavailable", 503, "The service is unavailable."),
            "424": lambda: model_error(500, "emulated model failure (injected fault)"),
            "timeout": lambda: model_error(
                0, "Your invocation timed out while waiting for a response from container primary."
            ),
        }

        def answer() -> Reply:
            try:
                accept = wire.sagemaker_negotiate(fmt, headers.get("Content-Type"), headers.get("Accept"))
            except WireError as e:
                return model_error(e.reply.status, e.reply.body.decode())
            try:
                (scores,) = self._run(key, endpoint, [body])
            except _BackendFailed as e:
                return model_error(e.status, e.message)
            return wire.sagemaker_success(fmt, accept, scores, hf_top_k=endpoint.top_k)

        return self._with_faults(key, endpoint, [body], faults, answer)

    # ---- Azure ML online endpoint /score ------------------------------------------------------------------
    def _azure(self, name: str | None, headers: Mapping[str, str], body: bytes) -> Reply:
        auth = headers.get("Authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        if name is None:
            name = self._azure_by_key(token)
        key = f"azureml/{name or '_unrouted'}"
        endpoint = self.endpoints.get(name) if name else None
        self.stats.record_request(key, len(body))
        request_id = str(uuid.uuid4())
        deployment = headers.get("azureml-model-deployment")
        if deployment:
            self.stats.record_deployment(key, deployment)
        if endpoint is None:
            reply = wire.azure_error(404, f"No online endpoint named {name!r} is emulated here.")
        elif token != endpoint.azure_key:
            self.stats.record_auth_failure(key)
            reply = wire.azure_error(
                401, "Unauthorized: missing or invalid endpoint key (Authorization: Bearer)."
            )
        elif deployment and deployment != endpoint.azure_deployment:
            reply = wire.azure_error(404, f"Deployment {deployment!r} not found for this endpoint.")
        else:
            reply = self._azure_score(key, endpoint, body)
            reply.headers["azureml-model-deployment"] = endpoint.azure_deployment
        reply.headers["x-ms-request-id"] = request_id
        reply.headers["x-request-id"] = request_id
        self.stats.record_status(key, reply.status)
        return reply

    def _azure_by_key(self, token: str | None) -> str | None:
        """``/score`` without a name: the only endpoint, or the one whose key was presented."""
        if len(self.endpoints) == 1:
            return next(iter(self.endpoints))
        matches = [name for name, ep in self.endpoints.items() if token and ep.azure_key == token]
        return matches[0] if len(matches) == 1 else None

    def _azure_score(self, key: str, endpoint: EmulatedEndpoint, body: bytes) -> Reply:
        try:
            images = wire.azure_parse(body, endpoint.azure_flavor)
        except WireError as e:
            return e.reply

        def model_error(status: int, reason: str) -> Reply:
            headers = {
                "ms-azureml-model-error-statuscode": str(status),
                "ms-azureml-model-error-reason": reason,
            }
            return wire.azure_error(424, f"Model returned {status}: {reason}", headers)

        faults = {
            "429": lambda: wire.azure_error(429, "Too many pending requests."),
            "503": lambda: wire.azure_error(503, "Service unavailable."),
            "424": lambda: model_error(500, "model_error"),
            "timeout": lambda: wire.azure_error(408, "Request timed out waiting for the model."),
        }

        def answer() -> Reply:
            try:
                results = self._run(key, endpoint, images)
            except _BackendFailed as e:
                return model_error(e.status, e.message)
            return wire.azure_success(endpoint.azure_flavor, results, hf_top_k=endpoint.top_k)

        return self._with_faults(key, endpoint, images, faults, answer)

    # ---- Vertex AI endpoints.predict ----------------------------------------------------------------------
    def _vertex(self, project: str, location: str, endpoint_id: str, body: bytes) -> Reply:
        key = f"vertex/{endpoint_id}"
        endpoint = self.endpoints.get(endpoint_id)
        self.stats.record_request(key, len(body))
        if endpoint is None:
            resource = f"projects/{project}/locations/{location}/endpoints/{endpoint_id}"
            reply = wire.google_error(404, f"Endpoint `{resource}` not found.")
        else:
            reply = self._vertex_predict(key, project, location, endpoint, body)
        self.stats.record_status(key, reply.status)
        return reply

    def _vertex_predict(
        self, key: str, project: str, location: str, endpoint: EmulatedEndpoint, body: bytes
    ) -> Reply:
        try:
            images, parameters = wire.vertex_parse(body)
        except WireError as e:
            return e.reply
        faults = {
            "429": lambda: wire.google_error(429, "Quota exceeded for online prediction requests."),
            "503": lambda: wire.google_error(503, "The service is currently unavailable."),
            "424": lambda: wire.google_error(500, "Internal error encountered."),
            "timeout": lambda: wire.google_error(504, "Deadline Exceeded"),
        }

        def answer() -> Reply:
            try:
                results = self._run(key, endpoint, images)
            except _BackendFailed as e:
                code = 400 if e.status == 400 else 500
                return wire.google_error(code, e.message)
            try:
                return wire.vertex_success(
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

        return self._with_faults(key, endpoint, images, faults, answer)

    # ---- shared ---------------------------------------------------------------------------------------
    def _with_faults(
        self,
        key: str,
        endpoint: EmulatedEndpoint,
        images: Sequence[bytes],
        faults: Mapping[str, Callable[[], Reply]],
        answer: Callable[[], Reply],
    ) -> Reply:
        """Count the images, then apply the plan: latency, then an injected fault or the real answer."""
        plan = self.fault_overrides.get(key) or endpoint.faults or self.faults
        request_key, attempt = self.stats.record_images(key, images)
        decision = plan.decide(key, request_key, attempt)
        if decision.latency_ms > 0:
            self.stop.wait(decision.latency_ms / 1000.0)
        if decision.fault is not None:
            self.stats.record_fault(key, decision.fault)
        if decision.fault == "timeout":
            self.stop.wait(plan.timeout_hold_s)
        if decision.fault in faults:
            reply = faults[decision.fault]()
            if decision.fault == "429":
                reply.headers["Retry-After"] = f"{plan.retry_after_s:g}"
            return reply
        reply = answer()
        return wire.malformed(reply) if decision.fault == "malformed" and reply.status == 200 else reply

    def _run(
        self, key: str, endpoint: EmulatedEndpoint, images: Sequence[bytes]
    ) -> list[list[tuple[str, float]]]:
        """Run the backing classifier; each result in the model's label order (missing labels score 0)."""
        try:
            prepared = [_as_received(img, f"upload #{i + 1} to {key}") for i, img in enumerate(images)]
        except InvalidImageError as e:
            raise _BackendFailed(400, f"cannot decode the image: {e.reason}") from e
        try:
            predictions = endpoint.backend.classify_prepared(prepared)
        except CloudDermError as e:
            raise _BackendFailed(500, f"the backing model failed: {type(e).__name__}") from e
        except Exception as e:  # a real container turns any crash into a 5xx; so does the emulator
            log.exception("backing model of %s crashed", key)
            raise _BackendFailed(500, f"the backing model crashed: {type(e).__name__}") from e
        order = self.label_order(key, endpoint)
        results = []
        for prediction in predictions:
            scores = {ls.label: ls.score for ls in prediction.labels}
            labels = order or sorted(scores)
            known = set(labels)
            labels = [*labels, *(lbl for lbl in sorted(scores) if lbl not in known)]
            results.append([(lbl, float(scores.get(lbl, 0.0))) for lbl in labels])
        return results

    def label_order(self, key: str, endpoint: EmulatedEndpoint) -> list[str] | None:
        """The backend's class names in the order probability-only formats use (None: sorted by name)."""
        with self._labels_lock:
            if key not in self._labels:
                try:
                    facts = endpoint.backend.model_facts()
                except Exception:  # model facts are optional; without them labels are sorted by name
                    facts = None
                self._labels[key] = list(facts.labels) if facts is not None and facts.labels else None
            return self._labels[key]


def _as_received(data: bytes, source: str) -> PreparedImage:
    """The upload as the backing model should see it: the very bytes that arrived, when they are usable.

    A real container decodes what was sent; re-encoding here would give the emulated endpoint different
    pixels (and a different hash) than the local provider that was sent the same prepared bytes, so the
    two could disagree for no reason. Uploads that are not plain RGB JPEG/PNG without an orientation tag
    (what ``cloudderm.images.prepare`` produces) are prepared as any raw input would be.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            usable = (
                img.format in _AS_IS_FORMATS
                and img.mode == "RGB"
                and img.getexif().get(_ORIENTATION_TAG, 1) == 1
            )
            if usable:
                img.load()
                width, height = img.size
                media_type = _AS_IS_FORMATS[img.format]
    except (OSError, SyntaxError, ValueError):
        usable = False
    if not usable:
        return prepare(data, source=source)
    sha = hashlib.sha256(data).hexdigest()
    return PreparedImage(data, media_type, width, height, sha, source)
