"""Azure Machine Learning managed online endpoints (AutoML for images, or a transformers MLflow model).

The adapter POSTs the prepared image bytes, base64-encoded, to the endpoint's scoring URI through an
azure-core pipeline (``_azureml_http``) and decodes the answer with the pure functions of
``_azureml_wire``. Nothing touches the network or needs credentials until the first call: the scoring URI
(and key) may then be discovered once by endpoint name through azure-ai-ml.

Retries: the pipeline's retry policy is the only retry layer for this adapter. It retries transient
statuses up to ``max_retries`` times, honouring ``Retry-After``; every error that escapes is final
(``retryable=False``), so the compare runner and ``classify()`` never multiply the attempts.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from types import ModuleType
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import Field, SecretStr

from cloudderm.adapters._azureml_wire import (
    DEPLOYMENT_HEADER,
    MAX_REQUEST_BYTES,
    decode_response,
    encode_request,
    encoded_size,
    endpoint_from_uri,
    error_for_status,
    region_from_uri,
    request_id_from,
    split_requests,
    truncation_warning,
)
from cloudderm.adapters._net import is_loopback
from cloudderm.classifier import AdapterSettings, Classifier, ImageLimits, RawResult
from cloudderm.core import PriceQuery
from cloudderm.errors import (
    ConfigError,
    MissingDependencyError,
    ProviderError,
    ProviderTimeout,
    ResponseFormatError,
    install_hint,
)
from cloudderm.facts import ServiceFacts
from cloudderm.images import PreparedImage
from cloudderm.redact import mask_values

__all__ = ["AzureMLClassifier", "AzureMLSettings"]

DEFAULT_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10.0
DISCOVERY_FIELDS = ("subscription_id", "resource_group", "workspace", "endpoint_name")


class AzureMLSettings(AdapterSettings):
    """Settings of one Azure ML online endpoint (see docs/azureml.md for every field)."""

    adapter: str = "azureml"
    scoring_uri: str | None = None
    # Loopback override (emulators, proxies): requests go to this scheme://host:port, keeping the scoring
    # URI's path (``/score`` when there is none); it may stand in for ``scoring_uri`` entirely.
    endpoint_url: str | None = None
    auth: Literal["key", "entra"] = "key"
    api_key: SecretStr | None = None
    deployment: str | None = None
    region: str | None = None
    response_format: Literal["automl", "transformers"] = "automl"
    task: Literal["multiclass", "multilabel"] = "multiclass"
    batch_size: int = Field(default=4, ge=1)
    instance_type: str | None = None
    instance_count: int = Field(default=1, ge=1)
    subscription_id: str | None = None
    resource_group: str | None = None
    workspace: str | None = None
    endpoint_name: str | None = None


class AzureMLClassifier(Classifier[AzureMLSettings]):
    """Classify through an Azure ML managed online endpoint, several images per request.

    Args:
        name: the provider's name in the config.
        settings: its ``AzureMLSettings``.
        credential: an azure-identity style credential (``get_token``) for Entra auth and discovery;
            ``DefaultAzureCredential()`` is created on first use when omitted.
        ml_client: an ``azure.ai.ml.MLClient`` (or anything with ``online_endpoints.get``/``get_keys``)
            for discovery; built from the settings on first use when omitted.
        transport: an azure-core ``HttpTransport`` (tests, proxies); a pooled ``RequestsTransport`` when
            omitted.
    """

    adapter = "azureml"
    vendor = "azure"
    Settings = AzureMLSettings

    def __init__(
        self,
        name: str,
        settings: AzureMLSettings,
        *,
        credential: Any = None,
        ml_client: Any = None,
        transport: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, settings, **kwargs)
        self._validate()
        self.max_batch_size = settings.batch_size
        self._credential = credential
        self._owns_credential = False
        self._ml_client = ml_client
        self._transport = transport
        self._lock = threading.Lock()
        self._pipeline: Any = None
        self._pipeline_transport: Any = None
        # cloudderm.adapters._azureml_http (azure-core), imported by the first _client(), before the pipeline.
        self._http: ModuleType | None = None
        self._scoring_uri = _with_endpoint_url(settings.scoring_uri, settings.endpoint_url)
        self._model_id: tuple[str | None, str] | None = None
        # Only as SecretStr: vars(clf), reprs and tracebacks show ********** instead of a key.
        self._secrets: list[SecretStr] = [settings.api_key] if settings.api_key else []

    # ---- settings ---------------------------------------------------------------------------------
    def _fail(self, message: str, field: str) -> ConfigError:
        return ConfigError(message, provider=self.name, field=field)

    def _validate(self) -> None:
        s = self.settings
        discovery = [f for f in DISCOVERY_FIELDS if getattr(s, f)]
        if s.scoring_uri is None and s.endpoint_url is None and len(discovery) < len(DISCOVERY_FIELDS):
            raise self._fail(
                "set scoring_uri, or all of subscription_id, resource_group, workspace and endpoint_name "
                'to discover it (pip install "cloudderm[azure-ml]")',
                "scoring_uri",
            )
        for field_name in ("scoring_uri", "endpoint_url"):
            self._check_url(getattr(s, field_name), field_name)
        if s.auth == "key" and s.api_key is None and len(discovery) < len(DISCOVERY_FIELDS):
            raise self._fail(
                "auth is 'key' but no api_key is set (use api_key: ${AZUREML_API_KEY}, or discovery fields "
                "so the key is fetched, or auth: entra)",
                "api_key",
            )
        if s.auth == "entra" and s.api_key is not None:
            raise self._fail("api_key is set but auth is 'entra'; remove one of them", "api_key")

    def _check_url(self, url: str | None, field_name: str) -> None:
        s = self.settings
        if url is not None:
            parsed = urlparse(url)
            host = parsed.hostname or ""
            secure = parsed.scheme == "https" or (parsed.scheme == "http" and is_loopback(host))
            if not host or not secure:
                raise self._fail(
                    "must be an https:// URL (plain http only for a loopback emulator), e.g. "
                    "https://<endpoint>.<region>.inference.ml.azure.com/score",
                    field_name,
                )
            if s.auth == "entra" and parsed.scheme != "https":
                raise self._fail("Entra tokens are only sent over https", field_name)

    # ---- identity ---------------------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        uri = self._scoring_uri
        cached = self._model_id
        if cached is None or cached[0] != uri:  # parsed once per scoring URI, not once per call
            s = self.settings
            text = uri or ""
            host = urlparse(text).netloc.rsplit("@", 1)[-1]  # never user info: the id is written everywhere
            endpoint = s.endpoint_name or endpoint_from_uri(text) or host or "azureml-endpoint"
            cached = self._model_id = (uri, f"{endpoint}/{s.deployment}" if s.deployment else endpoint)
        return cached[1]

    @property
    def region(self) -> str | None:
        """The configured region, else the one in the scoring URI host (``<ep>.<region>.inference...``)."""
        return self.settings.region or (region_from_uri(self._scoring_uri) if self._scoring_uri else None)

    def price_query(self) -> PriceQuery:
        s = self.settings
        return PriceQuery(
            label="Azure ML online endpoint",
            service="azureml-managed-online-endpoint",
            sku=s.instance_type,
            sku_required=True,
            region=s.region,
            count=s.instance_count,
        )

    def service_facts(self) -> ServiceFacts:
        return ServiceFacts(
            service="Azure Machine Learning managed online endpoint",
            vendor="azure",
            region=self.region,
            data_leaves_machine=not is_loopback(self._scoring_uri),
        )

    def image_limits(self) -> ImageLimits:
        """One image must fit a request on its own: the 1.5 MB body limit less base64 growth and JSON."""
        envelope = len(encode_request([], self.settings.response_format))
        budget = MAX_REQUEST_BYTES - envelope
        return ImageLimits(max_bytes=(budget - encoded_size(0)) * 3 // 4)

    # ---- clients (lazy, once, thread-safe) --------------------------------------------------------
    def _get_credential(self) -> Any:
        if self._credential is None:
            try:
                from azure.identity import DefaultAzureCredential
            except ImportError as e:
                raise MissingDependencyError(
                    install_hint("azure", "azure-identity to use the Azure ML adapter with Entra ID")
                ) from e
            self._credential = DefaultAzureCredential()
            self._owns_credential = True
        return self._credential

    def _discover(self) -> tuple[str, str | None]:
        """Scoring URI (and primary key when auth is key and none is set) from the workspace, once."""
        s = self.settings
        if self._ml_client is None:
            try:
                from azure.ai.ml import MLClient
            except ImportError as e:
                raise MissingDependencyError(
                    install_hint("azure-ml", "azure-ai-ml to discover Azure ML endpoints by name")
                ) from e
            self._ml_client = MLClient(
                credential=self._get_credential(),
                subscription_id=s.subscription_id,
                resource_group_name=s.resource_group,
                workspace_name=s.workspace,
            )
        try:
            endpoint = self._ml_client.online_endpoints.get(name=s.endpoint_name)
            uri = self._scoring_uri or getattr(endpoint, "scoring_uri", None)
            key = None
            if s.auth == "key" and s.api_key is None:
                key = getattr(
                    self._ml_client.online_endpoints.get_keys(name=s.endpoint_name), "primary_key", None
                )
        except Exception as e:
            raise ProviderError(
                f"discovering endpoint {s.endpoint_name!r} in workspace {s.workspace!r} failed: "
                f"{type(e).__name__}: {mask_values(str(e), self._secrets)[:200]}",
                provider=self.name,
                endpoint=s.endpoint_name,
                retryable=False,
            ) from e
        if not uri:
            raise self._fail(
                f"endpoint {s.endpoint_name!r} has no scoring URI yet (is it provisioned?)", "endpoint_name"
            )
        if s.auth == "key" and s.api_key is None and not key:
            raise self._fail(
                f"endpoint {s.endpoint_name!r} returned no primary key (is its auth_mode aad_token?); "
                "set auth: entra",
                "auth",
            )
        return uri, key

    def warm_up(self) -> None:
        """Build the azure-core pipeline (and resolve a discovered endpoint) now; no image is sent."""
        self._client()

    def _client(self) -> tuple[Any, str]:
        if self._pipeline is not None:
            return self._pipeline, self._scoring_uri  # type: ignore[return-value]
        with self._lock:
            if self._pipeline is None:
                s = self.settings
                key = s.api_key.get_secret_value() if s.api_key else None
                if self._scoring_uri is None or (s.auth == "key" and key is None):
                    discovered, key = self._discover()
                    self._scoring_uri = _with_endpoint_url(discovered, s.endpoint_url)
                    if key:
                        self._secrets.append(SecretStr(key))
                try:
                    from cloudderm.adapters import _azureml_http
                except ImportError as e:
                    raise MissingDependencyError(
                        install_hint("azure", "azure-core to use the Azure ML adapter")
                    ) from e
                self._http = _azureml_http
                headers = {"Content-Type": "application/json", "Accept": "application/json"}
                if s.deployment:
                    headers[DEPLOYMENT_HEADER] = s.deployment
                self._pipeline, self._pipeline_transport = _azureml_http.build_pipeline(
                    url=self._scoring_uri,
                    api_key=key if s.auth == "key" else None,
                    credential=self._get_credential() if s.auth == "entra" else None,
                    max_retries=s.max_retries or 0,
                    pool_size=s.concurrency or 0,
                    transport=self._transport,
                    headers=headers,
                    user_agent="cloudderm-azureml",
                )
        return self._pipeline, self._scoring_uri  # type: ignore[return-value]

    # ---- the call ---------------------------------------------------------------------------------
    def _infer(self, images: Sequence[PreparedImage]) -> list[RawResult]:
        pipeline, uri = self._client()
        if len(images) == 1:  # one image is always one request (it gets one even when it is too big)
            return self._score(pipeline, uri, images)
        groups = split_requests(
            [image.size_bytes for image in images],
            batch_size=self.settings.batch_size,
            response_format=self.settings.response_format,
        )
        results: list[RawResult] = []
        for group in groups:
            results.extend(self._score(pipeline, uri, [images[i] for i in group]))
        return results

    def _score(self, pipeline: Any, uri: str, images: Sequence[PreparedImage]) -> list[RawResult]:
        http_module = self._http
        assert http_module is not None  # set by _client(), which handed us the pipeline
        s = self.settings
        timeout = s.timeout_s or DEFAULT_TIMEOUT_S
        try:
            request, response = http_module.post(
                pipeline,
                uri,
                encode_request([i.data for i in images], s.response_format),
                connection_timeout=min(CONNECT_TIMEOUT_S, timeout),
                read_timeout=timeout,
            )
        except http_module.AzureError as e:
            raise self._transport_error(e, uri, timeout) from e
        http = response.http_response
        attempts = len(response.context.get("history", [])) + 1
        if http.status_code != 200:
            headers = {str(k).lower(): str(v) for k, v in http.headers.items()}
            raise error_for_status(
                http.status_code,
                headers,
                http.content,
                auth=s.auth,
                provider=self.name,
                endpoint=uri,
                attempts=attempts,
                secrets=self._secrets,
            )
        # azure-core response headers are case-insensitive (its HttpResponse contract), so an answer's few
        # headers are looked up by name rather than every header being lowered into a new dict.
        answer_headers = http.headers
        request_id = request_id_from(answer_headers, lowered=True) or request.headers.get(
            "x-ms-client-request-id"
        )
        try:
            decoded = decode_response(http.content, len(images), s.response_format)
        except ResponseFormatError as e:
            raise ResponseFormatError(
                e.detail, provider=self.name, endpoint=uri, request_id=request_id
            ) from e
        deployment = answer_headers.get(DEPLOYMENT_HEADER) or s.deployment
        model = self.model_id
        independent = s.task == "multilabel"
        check_truncation = s.response_format == "transformers" and not independent
        results = []
        for labels in decoded:
            result = RawResult(
                labels=labels,
                model=model,
                request_id=request_id,
                details={"deployment": deployment, "http_attempts": attempts},  # one dict per result
                scores_independent=independent,
            )
            warning = truncation_warning(labels) if check_truncation else None
            if warning:
                result.details["truncated_labels"] = True
                result.warnings.append(warning)
            results.append(result)
        return results

    def _transport_error(self, error: Exception, uri: str, timeout: float) -> ProviderError:
        """One mapping for azure-core/azure-identity exceptions; messages are scrubbed of secrets."""
        from azure.core.exceptions import (
            ClientAuthenticationError,
            ServiceRequestError,
            ServiceRequestTimeoutError,
            ServiceResponseError,
            ServiceResponseTimeoutError,
        )

        where = {"provider": self.name, "endpoint": uri, "retryable": False}
        said = mask_values(str(error), self._secrets)[:200]
        if isinstance(error, (ServiceRequestTimeoutError, ServiceResponseTimeoutError)):
            return ProviderTimeout(
                f"no answer within {timeout:g} s (timeout_s); the endpoint may be cold", **where
            )
        if isinstance(error, ClientAuthenticationError):
            return ProviderError(
                "could not get an Entra token for https://ml.azure.com: DefaultAzureCredential found no "
                f"usable identity (az login, managed identity or AZURE_* variables): {said}",
                **where,
            )
        if isinstance(error, ServiceRequestError):
            return ProviderError(f"could not send the request (connection/DNS/TLS): {said}", **where)
        if isinstance(error, ServiceResponseError):
            return ProviderError(f"the connection broke before an answer arrived: {said}", **where)
        return ProviderError(f"{type(error).__name__}: {said}", **where)

    def close(self) -> None:
        """Close the transport and credential this adapter made (injected ones are the caller's); a later
        call builds them again."""
        with self._lock:
            if self._pipeline_transport is not None and self._transport is None:
                self._pipeline_transport.close()
            self._pipeline = self._pipeline_transport = None
            if self._owns_credential and hasattr(self._credential, "close"):
                self._credential.close()
                self._credential, self._owns_credential = None, False


def _with_endpoint_url(scoring_uri: str | None, endpoint_url: str | None) -> str | None:
    """The URI requests go to: ``endpoint_url``'s scheme and host with the scoring URI's path."""
    if endpoint_url is None:
        return scoring_uri
    base = urlparse(endpoint_url)
    path = (urlparse(scoring_uri).path if scoring_uri else "") or base.path or "/score"
    if path in ("", "/"):
        path = "/score"
    return f"{base.scheme}://{base.netloc}{path}"
