"""Request dispatch for the emulators: route to a protocol, count, inject faults, run the backing model.

Kept apart from the socket code so every protocol path is a plain function call
``EmulatorApp.handle(method, path, headers, body) -> Reply``; the HTTP server only moves bytes. What each
protocol's requests and answers look like lives in its own module, found through
:mod:`cloudderm.emulate.registry`; this module knows no provider.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from PIL import Image

from cloudderm.emulate.faults import FaultPlan
from cloudderm.emulate.registry import get_protocol, protocol_names
from cloudderm.emulate.stats import EmulatorStats
from cloudderm.emulate.wire import Reply, malformed
from cloudderm.errors import CloudDermError, InvalidImageError
from cloudderm.images import PreparedImage, prepare

if TYPE_CHECKING:
    from cloudderm.classifier import Classifier
    from cloudderm.emulate.protocol import Protocol

__all__ = ["BackendFailed", "EmulatedEndpoint", "EmulatorApp"]

log = logging.getLogger(__name__)

_AS_IS_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png"}
_ORIENTATION_TAG = 0x0112


@dataclass
class EmulatedEndpoint:
    """One emulated endpoint, served under the same name by every protocol the emulator serves.

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
        options: per-protocol options of protocols added later, ``{"<protocol>": {...}}``; each protocol
            module documents its own.
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
    options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in protocol_names():
            get_protocol(name).check(self)

    def numeric_id(self, salt: str) -> str:
        """A stable numeric id (Vertex names deployed models and models by number, not by name)."""
        digest = hashlib.sha256(f"{salt}|{self.backend.model_id}".encode()).digest()
        return str(int.from_bytes(digest[:7], "big"))


class BackendFailed(Exception):
    """The backing model could not answer; ``status`` is what a real container would have returned."""

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
        protocols: the registered protocols to serve (default: all of them).

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
        protocols: Sequence[str] | None = None,
    ) -> None:
        self.protocols: list[Protocol] = [get_protocol(name) for name in protocols or protocol_names()]
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
        for protocol in self.protocols:
            if match := protocol.route.match(path):
                if method not in protocol.methods:
                    return _not_allowed(protocol.methods)
                return protocol.handle(self, match, headers, body)
        if method != "POST":
            return _not_allowed(("POST",))
        message = f"no emulated route for {method} {path}; see GET /_emulator/stats for the endpoints"
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

    # ---- shared ---------------------------------------------------------------------------------------
    def with_faults(
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
        return malformed(reply) if decision.fault == "malformed" and reply.status == 200 else reply

    def run_backend(
        self, key: str, endpoint: EmulatedEndpoint, images: Sequence[bytes]
    ) -> list[list[tuple[str, float]]]:
        """Run the backing classifier; each result in the model's label order (missing labels score 0)."""
        try:
            prepared = [_as_received(img, f"upload #{i + 1} to {key}") for i, img in enumerate(images)]
        except InvalidImageError as e:
            raise BackendFailed(400, f"cannot decode the image: {e.reason}") from e
        try:
            predictions = endpoint.backend.classify_prepared(prepared)
        except CloudDermError as e:
            raise BackendFailed(500, f"the backing model failed: {type(e).__name__}") from e
        except Exception as e:  # a real container turns any crash into a 5xx; so does the emulator
            log.exception("backing model of %s crashed", key)
            raise BackendFailed(500, f"the backing model crashed: {type(e).__name__}") from e
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


def _not_allowed(methods: Sequence[str]) -> Reply:
    return Reply(405, b"method not allowed", {"Content-Type": "text/plain", "Allow": ", ".join(methods)})


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
