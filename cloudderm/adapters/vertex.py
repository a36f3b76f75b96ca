"""Google Vertex AI online prediction: AutoML image classification and custom-model endpoints.

Why the REST transport: ``PredictionServiceClient(transport="rest")`` speaks HTTP/JSON through ``requests``,
so cassettes, ``responses`` and loopback emulators see the real wire traffic (gRPC cannot be recorded).
Credentials come from Google Application Default Credentials inside the SDK; ``AnonymousCredentials`` are
used only when the settings say ``anonymous: true`` (emulators, tests). The client is built on first use,
so building the classifier needs neither credentials nor network.

A public endpoint refuses requests over 1.5 MB, so batches are packed by bytes (several instances per
request while the JSON body stays under ``max_request_bytes``) and images are prepared so one always fits.
The wire format and the byte budget live in :mod:`cloudderm.adapters.vertex_codec`.
"""

from __future__ import annotations

import json
import re
import threading
import warnings
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from cloudderm.adapters._net import is_loopback
from cloudderm.adapters.vertex_codec import (
    DecodeSpec,
    ImageTooLarge,
    MalformedResponse,
    RequestBudget,
    decode_response,
    encode_instance,
    response_to_payload,
)
from cloudderm.classifier import AdapterSettings, Classifier, ImageLimits, RawResult
from cloudderm.core import PriceQuery
from cloudderm.errors import (
    CloudDermError,
    ConfigError,
    InvalidImageError,
    MissingCredentialsError,
    MissingDependencyError,
    ProviderAuthError,
    ProviderError,
    ProviderHTTPError,
    ProviderThrottled,
    ProviderTimeout,
    ResponseFormatError,
    install_hint,
)
from cloudderm.facts import ModelFacts, ServiceFacts
from cloudderm.images import PreparedImage

__all__ = ["VertexClassifier", "VertexSettings"]

DEFAULT_MAX_REQUEST_BYTES = 1_500_000
DEFAULT_MAX_INSTANCES = 64
# AutoML returns at most ``maxPredictions`` labels (service default 10). Without a configured label list we
# ask for up to this many so a whole distribution comes back; the service returns fewer when it has fewer.
ALL_LABELS_MAX_PREDICTIONS = 100
DEFAULT_TIMEOUT_S = 60.0
ADC_HINT = (
    "Check Google Application Default Credentials (`gcloud auth application-default login`, or "
    "GOOGLE_APPLICATION_CREDENTIALS pointing at a service-account key) and that the principal holds "
    "roles/aiplatform.user (permission aiplatform.endpoints.predict) on the project"
)
CUSTOM_ONLY_FIELDS = ("instance_key", "b64_object", "labels_field", "scores_field", "parameters")
_RESOURCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
_LOCATION = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")


class VertexSettings(AdapterSettings):
    """Settings of a Vertex AI endpoint (see docs/vertex.md for the reference and a YAML example)."""

    adapter: str = "vertex"
    project: str
    location: str
    endpoint_id: str
    # Loopback override (emulators, private or dedicated endpoints); ``api_endpoint`` is its deprecated name.
    endpoint_url: str | None = None
    anonymous: bool = False
    response_format: Literal["automl", "custom"] = "automl"
    confidence_threshold: float = Field(default=0.0, ge=0.0, le=1.0)
    max_predictions: int | None = Field(default=None, ge=1)
    labels: list[str] | None = Field(default=None, min_length=1)
    multi_label: bool = False
    instance_key: str = Field(default="content", min_length=1)
    b64_object: bool = False
    labels_field: str | None = "displayNames"
    scores_field: str = Field(default="confidences", min_length=1)
    parameters: dict[str, Any] | None = None
    max_request_bytes: int = Field(default=DEFAULT_MAX_REQUEST_BYTES, ge=4096)
    max_instances: int = Field(default=DEFAULT_MAX_INSTANCES, ge=1)
    machine_type: str | None = None
    node_count: int = Field(default=1, ge=1)

    @field_validator("project", "endpoint_id")
    @classmethod
    def _resource_id(cls, value: str) -> str:
        if not _RESOURCE_ID.match(value):
            raise ValueError(f"{value!r} is not a bare id (no slashes or spaces)")
        return value

    @field_validator("location")
    @classmethod
    def _location(cls, value: str) -> str:
        if not _LOCATION.match(value):
            raise ValueError(f"{value!r} is not a Google Cloud location such as europe-west2")
        return value

    @model_validator(mode="before")
    @classmethod
    def _deprecated_api_endpoint(cls, data: Any) -> Any:
        """``api_endpoint`` (the old name) still works, with a DeprecationWarning; giving both is an error."""
        if isinstance(data, dict) and "api_endpoint" in data:
            data = dict(data)
            if data.get("endpoint_url") is not None:
                raise ValueError("give endpoint_url only (api_endpoint is its deprecated old name)")
            warnings.warn(
                "vertex setting api_endpoint is deprecated: rename it to endpoint_url",
                DeprecationWarning,
                stacklevel=2,
            )
            data["endpoint_url"] = data.pop("api_endpoint")
        return data

    @property
    def api_endpoint(self) -> str | None:
        """Deprecated name of ``endpoint_url``."""
        return self.endpoint_url

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = value.strip().rstrip("/")
        parts = urlsplit(text if "://" in text else f"//{text}")
        if parts.scheme not in ("", "http", "https") or not parts.netloc or parts.path or parts.query:
            raise ValueError(
                f"{value!r} must be a host[:port] or http(s)://host[:port] without a path "
                "(e.g. europe-west2-aiplatform.googleapis.com or http://127.0.0.1:8080)"
            )
        return text

    @model_validator(mode="after")
    def _format_fields(self) -> VertexSettings:
        if self.response_format == "automl":
            misplaced = [f for f in CUSTOM_ONLY_FIELDS if f in self.model_fields_set]
            if misplaced:
                raise ValueError(f"{', '.join(misplaced)} apply only with response_format: custom")
        elif self.labels_field is None and self.labels is None:
            raise ValueError("response_format custom without labels_field needs labels (the model's classes)")
        return self


class VertexClassifier(Classifier[VertexSettings]):
    """Classify images through a Vertex AI endpoint's ``predict`` method over the REST transport."""

    adapter = "vertex"
    vendor = "gcp"
    Settings = VertexSettings

    def __init__(self, name: str, settings: VertexSettings, **kwargs: Any) -> None:
        super().__init__(name, settings, **kwargs)
        self.max_batch_size = settings.max_instances
        self.host = _api_host(settings)
        self.timeout_s = settings.timeout_s or DEFAULT_TIMEOUT_S
        self._parameters = _request_parameters(settings)
        self.budget = RequestBudget.build(
            limit=settings.max_request_bytes,
            parameters=self._parameters,
            instance_key=settings.instance_key,
            b64_object=settings.b64_object,
            max_instances=settings.max_instances,
        )
        if self.budget.max_image_bytes() < 1024:
            raise ConfigError(
                "leaves no room for an image in a request", provider=name, field="max_request_bytes"
            )
        self._spec = DecodeSpec(
            response_format=settings.response_format,
            labels=tuple(settings.labels) if settings.labels else None,
            labels_field=settings.labels_field,
            scores_field=settings.scores_field,
            multi_label=settings.multi_label,
            confidence_threshold=settings.confidence_threshold,
            max_predictions=(self._parameters or {}).get("maxPredictions"),
        )
        self._model_facts = self._build_model_facts()
        self._client: Any = None
        self._client_lock = threading.Lock()

    # ---- identity and facts -----------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        s = self.settings
        return f"projects/{s.project}/locations/{s.location}/endpoints/{s.endpoint_id}"

    def service_facts(self) -> ServiceFacts:
        return ServiceFacts(
            service="Vertex AI online prediction",
            vendor="gcp",
            region=self.settings.location,
            data_leaves_machine=not is_loopback(self.host),
        )

    def model_facts(self) -> ModelFacts:
        return self._model_facts

    def price_query(self) -> PriceQuery:
        s = self.settings
        automl = ("gcp-vertex-automl-image-classification-online",) if s.response_format == "automl" else ()
        return PriceQuery(
            label="a Vertex AI custom-model endpoint on",
            service="vertex-custom-prediction",
            sku=s.machine_type,
            sku_field="machine_type",
            region=s.location,
            count=s.node_count,
            entry_ids=automl,
        )

    def image_limits(self) -> ImageLimits:
        return ImageLimits(max_bytes=self.budget.max_image_bytes())

    def _build_model_facts(self) -> ModelFacts:
        """What the settings say about the model: its id and class names. The governance card adds the label
        domain and the ``model_card:`` setting (docs/architecture.md, "who owns which fact")."""
        labels = list(self.settings.labels or [])
        return ModelFacts(model_id=self.model_id, labels=labels, source="cloudderm config")

    # ---- batching by bytes --------------------------------------------------------------------------
    def plan_batches(self, images: Sequence[PreparedImage]) -> list[Sequence[PreparedImage]]:
        """Pack images into requests under ``max_request_bytes`` (the base class packs by count only)."""
        try:
            groups = self.budget.pack([image.size_bytes for image in images])
        except ImageTooLarge as e:
            image = images[e.index]
            raise InvalidImageError(
                image.source,
                f"{image.size_bytes:,} bytes make a {e.request_bytes:,}-byte request, over the Vertex AI "
                f"request limit of {self.budget.limit:,} bytes (max_request_bytes); prepare it with "
                f"max_bytes={self.budget.max_image_bytes():,} (classifier.prepare does)",
            ) from None
        return [[images[i] for i in group] for group in groups]

    # ---- the call -----------------------------------------------------------------------------------
    def _infer(self, images: Sequence[PreparedImage]) -> list[RawResult]:
        s = self.settings
        instances = [encode_instance(image.data, s.instance_key, s.b64_object) for image in images]
        payload: dict[str, Any] | None = None
        try:
            response = self._get_client().predict(
                endpoint=self.model_id,
                instances=instances,
                parameters=self._parameters,
                timeout=self.timeout_s,
                retry=None,
            )
            payload = response_to_payload(response)
            return decode_response(payload, len(images), self._spec)
        except (MissingDependencyError, MissingCredentialsError):
            raise
        except Exception as e:
            mapped = self._map_error(e, payload)
            if mapped is None:
                raise
            raise mapped from e

    def warm_up(self) -> None:
        """Import the SDK and build the REST client now (no request is sent).

        Errors go through the same mapping as calls (``_map_error``), so a missing credential is a clean
        ``MissingCredentialsError`` (exit 2), never the SDK's traceback.
        """
        try:
            self._get_client()
        except CloudDermError:
            raise
        except Exception as e:
            mapped = self._map_error(e)
            if mapped is None:
                raise
            raise mapped from e

    def _get_client(self) -> Any:
        client = self._client
        if client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = self._build_client()
                client = self._client
        return client

    def _build_client(self) -> Any:
        try:
            from google.api_core.client_options import ClientOptions
            from google.cloud.aiplatform_v1 import PredictionServiceClient
        except ImportError as e:
            raise MissingDependencyError(
                install_hint("gcp", "google-cloud-aiplatform to use the Vertex AI adapter")
            ) from e
        from google.auth.exceptions import DefaultCredentialsError

        credentials = None
        if self.settings.anonymous:
            from google.auth.credentials import AnonymousCredentials

            credentials = AnonymousCredentials()
        try:
            client = PredictionServiceClient(
                credentials=credentials,
                transport="rest",
                client_options=ClientOptions(api_endpoint=self.host),
            )
        except DefaultCredentialsError:
            raise MissingCredentialsError(
                f"no Google credentials found to call {self.model_id}. {ADC_HINT}",
                provider=self.name,
                field="credentials",
            ) from None
        # The REST transport's AuthorizedSession re-reads proxy variables on every call and keeps 10
        # connections: pin the environment once and pool for this provider's concurrency.
        from cloudderm.adapters._http import pin_environment

        url = self.host if "://" in self.host else f"https://{self.host}"
        session = getattr(client.transport, "_session", None)
        if session is not None:
            pin_environment(session, url, pool_size=self.settings.concurrency)
        return client

    def close(self) -> None:
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.transport.close()

    # ---- errors, mapped in one place ----------------------------------------------------------------
    def _map_error(self, error: BaseException, payload: dict[str, Any] | None = None) -> ProviderError | None:
        """The cloudderm error for an SDK, transport or decoding failure; None for anything unexpected."""
        import requests
        from google.api_core import exceptions as api
        from google.auth import exceptions as auth
        from google.protobuf.json_format import ParseError

        where: dict[str, Any] = {"provider": self.name, "endpoint": self.model_id}
        if isinstance(error, MalformedResponse):
            body = None if payload is None else json.dumps(payload, default=str)
            return ResponseFormatError(
                f"unexpected {self._spec.response_format} answer: {error}", body=body, **where
            )
        if isinstance(error, ParseError):
            return ResponseFormatError(f"the answer is not a Vertex AI PredictResponse: {error}", **where)
        if isinstance(error, api.GoogleAPICallError):
            return _map_api_error(error, api, where)
        if isinstance(error, requests.exceptions.Timeout):
            return ProviderTimeout(
                f"no answer from {self.host} within {self.timeout_s:g} s (timeout_s)", **where
            )
        if isinstance(error, requests.exceptions.ConnectionError):
            return ProviderError(
                f"cannot connect to {self.host}: {type(error).__name__}", retryable=True, **where
            )
        if isinstance(error, auth.InvalidOperation) and self.settings.anonymous:
            # google-auth answers a 401 by refreshing the credentials; anonymous ones cannot be refreshed.
            return ProviderAuthError(
                "the endpoint refused anonymous credentials; anonymous: true is only for emulators and "
                f"tests: remove it to use Application Default Credentials. {ADC_HINT}",
                status=401,
                **where,
            )
        if isinstance(error, auth.DefaultCredentialsError):
            return ProviderError(f"no Google credentials found. {ADC_HINT}", retryable=False, **where)
        if isinstance(error, auth.RefreshError):
            retryable = bool(getattr(error, "retryable", False))
            return ProviderError(
                f"cannot refresh Google credentials. {ADC_HINT}", retryable=retryable, **where
            )
        if isinstance(error, auth.TransportError):
            return ProviderError("cannot reach the Google token service", retryable=True, **where)
        return None


def _map_api_error(error: Any, api: Any, where: dict[str, Any]) -> ProviderError:
    """HTTP statuses from ``google.api_core.exceptions`` (the REST transport raises them per status)."""
    status = int(error.code) if error.code is not None else 0
    message = str(error.message)
    extra = {**where, "request_id": _request_id(error), "retry_after": _retry_after(error)}
    if isinstance(error, api.TooManyRequests):  # 429 and RESOURCE_EXHAUSTED (a subclass)
        return ProviderThrottled(f"HTTP {status or 429} throttled or quota exhausted: {message}", **extra)
    if isinstance(error, api.GatewayTimeout):  # 504 and DEADLINE_EXCEEDED (a subclass)
        return ProviderTimeout(f"HTTP {status or 504} deadline exceeded: {message}", **extra)
    if isinstance(error, (api.Unauthorized, api.Forbidden)):
        return ProviderAuthError(f"{message}. {ADC_HINT}", status=status, **extra)
    if isinstance(error, api.NotFound):
        hint = "check project, location and endpoint_id, and that a model is deployed to the endpoint"
        return ProviderHTTPError(f"{message}. {hint}", status=status, **extra)
    return ProviderHTTPError(message, status=status, **extra)


def _request_id(error: Any) -> str | None:
    for detail in getattr(error, "details", None) or []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RequestInfo"):
            return str(detail.get("requestId") or "") or None
    return None


def _retry_after(error: Any) -> float | None:
    headers = getattr(getattr(error, "response", None), "headers", None) or {}
    try:
        value = float(headers.get("Retry-After", ""))
    except (TypeError, ValueError):
        return None
    return value if value >= 0 else None


def _request_parameters(settings: VertexSettings) -> dict[str, Any] | None:
    """AutoML prediction params (full distribution by default), or the custom model's own, if any."""
    if settings.response_format == "custom":
        return dict(settings.parameters) if settings.parameters is not None else None
    max_predictions = settings.max_predictions
    if max_predictions is None:
        max_predictions = len(settings.labels) if settings.labels else ALL_LABELS_MAX_PREDICTIONS
    return {"confidenceThreshold": settings.confidence_threshold, "maxPredictions": max_predictions}


def _api_host(settings: VertexSettings) -> str:
    """The regional service endpoint unless overridden (emulators, private or dedicated endpoints)."""
    if settings.endpoint_url:
        return settings.endpoint_url
    if settings.location == "global":
        return "aiplatform.googleapis.com"
    return f"{settings.location}-aiplatform.googleapis.com"
