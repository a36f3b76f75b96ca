"""Any Open Inference Protocol (KServe v2) server (KServe, Triton, MLServer, BentoML), over ``requests``.

The protocol carries tensors, not class names, so ``labels`` is required: the output tensor's columns are
those labels in order. The image goes as the model's input tensor (``input: {name, datatype, layout,
size, scale, mean, std}``, preprocessed here exactly as declared) or as one base64 BYTES element
(``input: bytes``) for servers that decode images themselves.
Wire format: :mod:`cloudderm.adapters.kserve_codec`.
Auth: none by default (in-cluster), or a bearer ``token`` for gateways that require one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator

from cloudderm.adapters._http_faults import error_for_status, transport_error
from cloudderm.adapters._lazy_client import LazyClient
from cloudderm.adapters._net import is_loopback
from cloudderm.adapters.kserve_codec import (
    MalformedResponse,
    TensorSpec,
    decode_error,
    decode_response,
    encode_bytes_request,
    encode_tensor_request,
    infer_path,
)
from cloudderm.classifier import AdapterSettings, Classifier, ImageLimits, PriceQuery, RawResult
from cloudderm.errors import MissingDependencyError, ResponseFormatError
from cloudderm.governance.card import ModelFacts, ServiceFacts
from cloudderm.images import PreparedImage
from cloudderm.registry import install_hint

__all__ = ["KServeClassifier", "KServeSettings"]

DEFAULT_TIMEOUT_S = 30.0
AUTH_HINT = "the server or its gateway refused the request: set token (sent as Authorization: Bearer)"


class KServeSettings(AdapterSettings):
    """Settings of one model on an Open Inference Protocol server (see docs/services.md)."""

    adapter: str = "kserve"
    url: str
    model_name: str = Field(min_length=1)
    model_version: str | None = None
    input: Literal["bytes"] | TensorSpec = "bytes"
    bytes_input_name: str = Field(default="image", min_length=1)
    labels: list[str] = Field(min_length=1)
    output_name: str | None = None
    output_transform: Literal["none", "softmax", "sigmoid"] = "none"
    batch_size: int = Field(default=1, ge=1)
    token: SecretStr | None = None
    endpoint_url: str | None = None

    @field_validator("url", "endpoint_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be the server root, e.g. https://derm.models.example.com")
        return value.rstrip("/")


class KServeClassifier(Classifier[KServeSettings]):
    """Classify through ``/v2/models/{name}/infer``; ``batch_size`` images per request."""

    adapter = "kserve"
    vendor: ClassVar[str] = "self-hosted"
    Settings = KServeSettings

    def __init__(self, name: str, settings: KServeSettings, **kwargs: Any) -> None:
        super().__init__(name, settings, **kwargs)
        self.max_batch_size = settings.batch_size
        self.root = settings.endpoint_url or settings.url
        self.infer_url = self.root + infer_path(settings.model_name, settings.model_version)
        self._client = LazyClient(self._build_client)

    @property
    def model_id(self) -> str:
        version = f"@{self.settings.model_version}" if self.settings.model_version else ""
        return f"{self.settings.model_name}{version}"

    def service_facts(self) -> ServiceFacts:
        local = is_loopback(self.root)
        return ServiceFacts(
            service="Open Inference Protocol (KServe v2) server",
            vendor="local" if local else "self-hosted",
            data_leaves_machine=not local,
        )

    def model_facts(self) -> ModelFacts:
        values: dict[str, Any] = {
            "model_id": self.model_id,
            "labels": list(self.settings.labels),
            "source": "cloudderm config",
        }
        return ModelFacts(**values)

    def price_query(self) -> PriceQuery:
        """Your own server: free of provider charges on this machine; elsewhere set ``pricing:``."""
        return PriceQuery(
            label="a self-hosted Open Inference Protocol server",
            local=is_loopback(self.settings.endpoint_url or self.settings.url),
        )

    def image_limits(self) -> ImageLimits:
        return ImageLimits()

    def warm_up(self) -> None:
        self._client.get()

    def _build_client(self) -> Any:
        try:
            import requests
        except ImportError as e:  # pragma: no cover
            raise MissingDependencyError(install_hint("kserve", "requests")) from e
        session = requests.Session()
        session.headers["Content-Type"] = "application/json"
        if self.settings.token is not None:
            session.headers["Authorization"] = f"Bearer {self.settings.token.get_secret_value()}"
        from cloudderm.adapters._http import pin_environment

        return pin_environment(session, self.infer_url, pool_size=self.settings.concurrency)

    def encode(self, images: Sequence[PreparedImage]) -> dict[str, Any]:
        """The infer request body for these images (tensor or BYTES, per ``input``)."""
        data = [image.data for image in images]
        if isinstance(self.settings.input, TensorSpec):
            return encode_tensor_request(data, self.settings.input, output=self.settings.output_name)
        return encode_bytes_request(data, self.settings.bytes_input_name, output=self.settings.output_name)

    def _infer(self, images: Sequence[PreparedImage]) -> list[RawResult]:
        import requests

        session = self._client.get()
        timeout = self.settings.timeout_s or DEFAULT_TIMEOUT_S
        where = {"provider": self.name, "endpoint": self.infer_url}
        body = json.dumps(self.encode(images))
        try:
            response = session.post(self.infer_url, data=body, timeout=timeout)
        except requests.RequestException as e:
            raise transport_error(e, timeout_s=timeout, **where) from e
        if response.status_code != 200:
            secrets = [self.settings.token.get_secret_value()] if self.settings.token else []
            raise error_for_status(
                response.status_code,
                response.headers,
                decode_error(response.content),
                auth_hint=AUTH_HINT,
                size_hint="the request is larger than the server accepts",
                not_found_hint=f"no model {self.model_id!r} is loaded on {self.root} (GET /v2/models/...)",
                secrets=secrets,
                **where,
            )
        try:
            rows, meta = decode_response(
                response.content, len(images), self.settings.labels, output=self.settings.output_name
            )
        except MalformedResponse as e:
            raise ResponseFormatError(str(e), body=response.content, **where) from e
        model = meta.get("model_name", self.settings.model_name)
        if meta.get("model_version"):
            model = f"{model}@{meta['model_version']}"
        return [
            RawResult(
                labels=_transform(row, self.settings.output_transform),
                model=model,
                request_id=meta.get("id"),
                details=dict(meta),
                scores_independent=self.settings.output_transform == "sigmoid",
            )
            for row in rows
        ]

    def close(self) -> None:
        self._client.close()


def _transform(row: list[tuple[str, float]], how: str) -> list[tuple[str, float]]:
    """Raw model outputs -> probabilities when the model returns logits (softmax or sigmoid)."""
    if how == "none":
        return row
    values = [v for _, v in row]
    if how == "sigmoid":
        probs = [1.0 / (1.0 + math.exp(-v)) for v in values]
    else:
        top = max(values)
        exps = [math.exp(v - top) for v in values]
        probs = [e / sum(exps) for e in exps]
    return [(label, p) for (label, _), p in zip(row, probs)]
