"""AWS SageMaker real-time endpoints, called through boto3's ``sagemaker-runtime`` InvokeEndpoint only.

Why boto3 alone: invoking an endpoint needs nothing from the ``sagemaker`` meta-package, and boto3 brings
the whole AWS credential chain (environment, profile, SSO, instance or container role) with it. The
adapter does three things in order: encode (``sagemaker_formats.encode_request``), call (one shared,
lazily created client), decode (``sagemaker_formats.decode_response``). Every SDK failure becomes a typed
cloudderm error in one place, ``_map_error``.

Retries: the client is built with one attempt per call (``total_max_attempts=1``). The cloudderm runner
and ``Classifier.classify`` own retries (backoff with jitter, ``Retry-After``, a visible attempt count);
botocore retrying underneath would multiply attempts (3 x 5 = 15 invocations for one image) and hide
their latency inside one measured call.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

from pydantic import Field, ValidationInfo, field_validator

from cloudderm.adapters._net import is_loopback
from cloudderm.adapters.sagemaker_formats import (
    MAX_PAYLOAD_BYTES,
    PROBABILITY_ONLY_FORMATS,
    ResponseFormat,
    decode_response,
    encode_request,
)
from cloudderm.classifier import AdapterSettings, Classifier, ImageLimits, RawResult
from cloudderm.core import PriceQuery
from cloudderm.errors import (
    CloudDermError,
    ConfigError,
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

__all__ = ["SageMakerClassifier", "SageMakerSettings"]

SERVICE = "SageMaker real-time endpoint"
DEFAULT_TIMEOUT_S = 70.0
"""SageMaker gives a container 60 s to answer; waiting a little longer lets its own ModelError arrive."""
CONNECT_TIMEOUT_S = 10.0
DEFAULT_POOL_CONNECTIONS = 10
_NAME_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$"
_COMPONENT_PATTERN = r"^[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?$"
_THROTTLING_CODES = frozenset(
    {"ThrottlingException", "Throttling", "ModelNotReadyException", "TooManyRequestsException"}
)
_REJECTED_CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "IncompleteSignature",
        "ExpiredToken",
        "ExpiredTokenException",
    }
)
_CREDENTIALS_FIX = (
    "the boto3 chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, the profile named by `profile:` or "
    "AWS_PROFILE, SSO, an instance or container role) gave none that work. Fix: run `aws configure` or "
    "`aws sso login --profile NAME` and set `profile: NAME`, or export the AWS_* variables"
)
_EXCERPT = 300


class SageMakerSettings(AdapterSettings):
    """Settings of one SageMaker endpoint; names follow the InvokeEndpoint API and the pricing code."""

    adapter: str = "sagemaker"
    endpoint_name: str = Field(min_length=1, max_length=63, pattern=_NAME_PATTERN)
    region: str | None = None
    profile: str | None = None
    target_variant: str | None = Field(default=None, max_length=63, pattern=_NAME_PATTERN)
    inference_component: str | None = Field(default=None, max_length=63, pattern=_COMPONENT_PATTERN)
    endpoint_url: str | None = None
    response_format: ResponseFormat = "jumpstart-verbose"
    labels: list[str] | None = Field(default=None, validate_default=True)
    instance_type: str | None = None
    instance_count: int = Field(default=1, ge=1)

    @field_validator("endpoint_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            parsed = urlparse(value)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise ValueError(
                    "must be an http(s) URL such as https://runtime.sagemaker.eu-west-2.amazonaws.com"
                )
        return value

    @field_validator("labels")
    @classmethod
    def _labels_fit_format(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        response_format = info.data.get("response_format")
        if value is None:
            if response_format in PROBABILITY_ONLY_FORMATS:
                raise ValueError(
                    f"response_format {response_format!r} returns probabilities only: list the class names "
                    "in the model's output order, e.g. labels: [akiec, bcc, bkl, df, mel, nv, vasc]"
                )
            return None
        if not value or any(not label.strip() for label in value):
            raise ValueError("must be a non-empty list of non-empty class names")
        if len(set(value)) != len(value):
            raise ValueError("class names must be unique")
        return value


class SageMakerClassifier(Classifier[SageMakerSettings]):
    """Classify images with a model behind a SageMaker real-time endpoint (one image per InvokeEndpoint)."""

    adapter = "sagemaker"
    vendor = "aws"
    Settings = SageMakerSettings

    def __init__(self, name: str, settings: SageMakerSettings, **kwargs: Any) -> None:
        super().__init__(name, settings, **kwargs)
        self.timeout_s = settings.timeout_s or DEFAULT_TIMEOUT_S
        self._lock = threading.RLock()
        self._session: Any = None
        self._client: Any = None
        self._model_facts = self._facts_from_config()

    # ---- what the base class asks for ---------------------------------------------------------
    @property
    def model_id(self) -> str:
        if self.settings.inference_component:
            return f"{self.settings.endpoint_name}/{self.settings.inference_component}"
        return self.settings.endpoint_name

    @property
    def region(self) -> str | None:
        """The region calls go to: the setting, else the boto3 chain's (env or profile; no network)."""
        if self.settings.region:
            return self.settings.region
        try:
            return self._boto_session().region_name
        except CloudDermError:
            return None

    def _known_region(self) -> str | None:
        """The region as far as it is already known, without creating anything (safe in error paths)."""
        session = self._session
        return self.settings.region or (session.region_name if session is not None else None)

    def service_facts(self) -> ServiceFacts:
        return ServiceFacts(
            service=SERVICE,
            vendor="aws",
            region=self.region,
            data_leaves_machine=not is_loopback(self.settings.endpoint_url),
        )

    def model_facts(self) -> ModelFacts:
        return self._model_facts

    def price_query(self) -> PriceQuery:
        s = self.settings
        return PriceQuery(
            label="SageMaker real-time inference",
            service="sagemaker-realtime-inference",
            sku=s.instance_type,
            sku_required=True,
            region=s.region,
            count=s.instance_count,
        )

    def image_limits(self) -> ImageLimits:
        return ImageLimits(max_bytes=MAX_PAYLOAD_BYTES)

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _infer(self, images: Sequence[PreparedImage]) -> list[RawResult]:
        return [self._classify_one(image) for image in images]

    # ---- encode, call, decode -----------------------------------------------------------------
    def _classify_one(self, image: PreparedImage) -> RawResult:
        params = encode_request(
            image,
            self.settings.response_format,
            endpoint_name=self.settings.endpoint_name,
            target_variant=self.settings.target_variant,
            inference_component=self.settings.inference_component,
        )
        client = self.client
        region = client.meta.region_name
        response, body = self._call(client, params)
        request_id = response.get("ResponseMetadata", {}).get("RequestId")
        try:
            decoded = decode_response(body, self.settings.response_format, self.settings.labels)
        except ResponseFormatError as e:
            raise ResponseFormatError(
                f"InvokeEndpoint in {region}, response_format {self.settings.response_format!r}: {e.detail}",
                provider=self.name,
                endpoint=self.settings.endpoint_name,
                request_id=request_id,
            ) from e
        details: dict[str, Any] = {
            "endpoint_name": self.settings.endpoint_name,
            "region": region,
            "response_format": self.settings.response_format,
            "content_type": response.get("ContentType"),
            **decoded.details,
        }
        if response.get("InvokedProductionVariant"):
            details["invoked_variant"] = response["InvokedProductionVariant"]
        if self.settings.inference_component:
            details["inference_component"] = self.settings.inference_component
        return RawResult(
            labels=decoded.labels, request_id=request_id, warnings=decoded.warnings, details=details
        )

    def _call(self, client: Any, params: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        """One InvokeEndpoint, body read included (a read can time out too); SDK errors mapped."""
        try:
            response = client.invoke_endpoint(**params)
            body = response["Body"].read()
        except Exception as e:
            mapped = self._map_error(e)
            if mapped is None:
                raise
            raise mapped from e
        return response, body

    # ---- the boto3 client ---------------------------------------------------------------------
    def warm_up(self) -> None:
        """Import boto3 and build the client now (no request is sent)."""
        _ = self.client

    @property
    def client(self) -> Any:
        """The adapter's one ``sagemaker-runtime`` client, created on first use (thread-safe)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make_client()
        return self._client

    def _boto_session(self) -> Any:
        with self._lock:
            if self._session is None:
                boto3 = _import_boto3()
                try:
                    self._session = boto3.Session(
                        profile_name=self.settings.profile, region_name=self.settings.region
                    )
                except Exception as e:
                    mapped = self._map_error(e)
                    if mapped is None:
                        raise
                    raise mapped from e
            return self._session

    def _make_client(self) -> Any:
        _import_boto3()
        from botocore.config import Config

        from cloudderm import __version__

        session = self._boto_session()
        region = self.settings.region or session.region_name
        if not region:
            raise ConfigError(
                f"no AWS region for endpoint {self.settings.endpoint_name}: set `region:` (e.g. eu-west-2) "
                "in the config, or AWS_REGION / the profile's region",
                provider=self.name,
                field="region",
            )
        config = Config(
            region_name=region,
            connect_timeout=min(CONNECT_TIMEOUT_S, self.timeout_s),
            read_timeout=self.timeout_s,
            max_pool_connections=self.settings.concurrency or DEFAULT_POOL_CONNECTIONS,
            retries={"total_max_attempts": 1, "mode": "standard"},
            user_agent_extra=f"cloudderm/{__version__}",
        )
        try:
            return session.client(
                "sagemaker-runtime",
                region_name=region,
                endpoint_url=self.settings.endpoint_url,
                config=config,
            )
        except Exception as e:
            mapped = self._map_error(e)
            if mapped is None:
                raise
            raise mapped from e

    # ---- errors, mapped in one place ----------------------------------------------------------
    def _map_error(self, error: Exception) -> CloudDermError | None:
        """The cloudderm error for an SDK failure, or None when ``error`` is not the SDK's."""
        from botocore import exceptions as bx

        region = self._known_region() or "an unknown region"
        where = f"InvokeEndpoint on {self.settings.endpoint_name} in {region}"
        ctx: dict[str, Any] = {"provider": self.name, "endpoint": self.settings.endpoint_name}
        if isinstance(error, bx.ClientError):
            return self._map_client_error(error, where)
        if isinstance(error, (bx.ReadTimeoutError, bx.ConnectTimeoutError)):
            phase = "connect" if isinstance(error, bx.ConnectTimeoutError) else "read"
            return ProviderTimeout(f"{where}: no answer within {self.timeout_s:g} s ({phase} timeout)", **ctx)
        if isinstance(error, _credential_errors(bx)):
            return ConfigError(f"{where}: {type(error).__name__}: {_CREDENTIALS_FIX}", provider=self.name)
        if isinstance(error, bx.NoRegionError):
            return ConfigError(
                f"{where}: set `region:` (e.g. eu-west-2) or AWS_REGION", provider=self.name, field="region"
            )
        if isinstance(error, bx.ProfileNotFound):
            return ConfigError(
                f"AWS profile {self.settings.profile or '(from AWS_PROFILE)'} not found for endpoint "
                f"{self.settings.endpoint_name}: create it with `aws configure --profile NAME` "
                "or fix `profile:`",
                provider=self.name,
                field="profile",
            )
        if isinstance(error, bx.ParamValidationError):
            return ConfigError(
                f"{where}: the request was refused before sending: {error}", provider=self.name
            )
        if isinstance(error, bx.SSLError):
            return ProviderError(f"{where}: TLS failed: {error}", retryable=False, **ctx)
        if isinstance(error, (bx.ConnectionError, bx.HTTPClientError)):
            return ProviderError(f"{where}: connection failed: {error}", retryable=True, **ctx)
        if isinstance(error, bx.BotoCoreError):
            return ProviderError(f"{where}: {type(error).__name__}: {error}", retryable=False, **ctx)
        return None

    def _map_client_error(self, error: Any, where: str) -> CloudDermError:
        response: dict[str, Any] = error.response
        code = str(response.get("Error", {}).get("Code") or "Unknown")
        message = str(response.get("Error", {}).get("Message") or error)
        meta = response.get("ResponseMetadata", {})
        headers = {str(k).lower(): v for k, v in (meta.get("HTTPHeaders") or {}).items()}
        status = int(meta.get("HTTPStatusCode") or 0)
        request_id = meta.get("RequestId") or headers.get("x-amzn-requestid")
        ctx: dict[str, Any] = {
            "provider": self.name,
            "endpoint": self.settings.endpoint_name,
            "request_id": request_id,
        }
        if code in _THROTTLING_CODES or status == 429:
            return ProviderThrottled(f"{where}: {code}: {message}", retry_after=_retry_after(headers), **ctx)
        if code == "ModelError":
            return self._model_error(response, where, message, status, ctx)
        if code in _REJECTED_CREDENTIAL_CODES:
            return ProviderAuthError(
                f"{where}: AWS rejected the credentials ({code}): {_CREDENTIALS_FIX}",
                status=status or 403,
                provider=self.name,
                endpoint=self.settings.endpoint_name,
                request_id=request_id,
            )
        hint = ""
        if code == "ValidationError":
            hint = (
                " (check endpoint_name, region, target_variant and inference_component,"
                " and that the endpoint is InService)"
            )
        elif status == 403:
            hint = " (the identity needs sagemaker:InvokeEndpoint on this endpoint)"
        return ProviderHTTPError(f"{where}: {code}: {_excerpt(message)}{hint}", status=status or 500, **ctx)

    def _model_error(
        self, response: dict[str, Any], where: str, message: str, status: int, ctx: dict[str, Any]
    ) -> ProviderHTTPError:
        """The container itself failed (424): keep its own status, message and log stream."""
        original_status = response.get("OriginalStatusCode")
        original_message = response.get("OriginalMessage")
        log_stream = response.get("LogStreamArn")
        text = f"{where}: ModelError: the model container answered {original_status}"
        text += f": {_excerpt(str(original_message))}" if original_message else f" ({_excerpt(message)})"
        if log_stream:
            text += f"; logs: {log_stream}"
        retryable = isinstance(original_status, int) and (original_status == 429 or original_status >= 500)
        error = ProviderHTTPError(text, status=status or 424, retryable=retryable, **ctx)
        error.original_status_code = original_status  # type: ignore[attr-defined]
        error.original_message = original_message  # type: ignore[attr-defined]
        error.log_stream_arn = log_stream  # type: ignore[attr-defined]
        return error

    def _facts_from_config(self) -> ModelFacts:
        """A cloud endpoint has no readable model card: its id and class names; the user states the rest under
        ``model_card``, which the governance card applies (docs/architecture.md, "who owns which fact")."""
        return ModelFacts(model_id=self.model_id, labels=list(self.settings.labels or []), source="config")


def _import_boto3() -> Any:
    try:
        import boto3
        import botocore.config  # noqa: F401
    except ImportError as e:
        raise MissingDependencyError(install_hint("aws", "boto3 to use the SageMaker adapter")) from e
    return boto3


def _credential_errors(bx: Any) -> tuple[type[BaseException], ...]:
    names = (
        "NoCredentialsError",
        "PartialCredentialsError",
        "CredentialRetrievalError",
        "UnknownCredentialError",
        "TokenRetrievalError",
        "NoAuthTokenError",
        "SSOError",
        "LoginError",
    )
    return tuple(getattr(bx, n) for n in names if isinstance(getattr(bx, n, None), type))


def _retry_after(headers: dict[str, Any]) -> float | None:
    value = headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


def _excerpt(text: str) -> str:
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "…"
