"""Azure Custom Vision Prediction API v3.1 (image classification), over plain ``requests``.

Why plain ``requests``: the official ``azure-cognitiveservices-vision-customvision`` package is built on the
retired msrest runtime; the REST call is one POST with a ``Prediction-Key`` header and the raw image body::

    POST {endpoint}/customvision/v3.1/Prediction/{projectId}/classify/iterations/{publishedName}/image/nostore
    Prediction-Key: <key>
    Content-Type: application/octet-stream

    {"id": "...", "project": "...", "iteration": "...", "created": "...",
     "predictions": [{"tagId": "...", "tagName": "Hemlock", "probability": 0.05}, ...]}

``/nostore`` is the default so the service keeps no copy of the image (the stored variant adds it to the
project's prediction history); ``store_image: true`` opts in. Errors carry ``{"code": ..., "message": ...}``.
The wire format is the pure functions at the top (tested on the spec's ``ClassifyImageWithNoStore`` example).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlsplit

from pydantic import Field, SecretStr, field_validator

from cloudderm.adapters._http_faults import error_for_status, transport_error
from cloudderm.adapters._lazy_client import LazyClient
from cloudderm.adapters._net import is_loopback
from cloudderm.classifier import AdapterSettings, Classifier, ImageLimits, RawResult
from cloudderm.errors import MissingDependencyError, ResponseFormatError
from cloudderm.governance.card import ModelFacts, ServiceFacts
from cloudderm.images import PreparedImage
from cloudderm.registry import install_hint

__all__ = ["CustomVisionClassifier", "CustomVisionSettings", "decode_error", "decode_response", "predict_url"]

MAX_IMAGE_BYTES = (
    4 * 1024 * 1024
)  # "Supported formats are JPEG, GIF, PNG, and BMP. Supports images up to 4MB."
DEFAULT_TIMEOUT_S = 30.0
AUTH_HINT = (
    "check prediction_key (the Prediction resource's key from the Azure portal, not the Training key) and "
    "that the iteration is published under published_name to that Prediction resource"
)
_REGIONAL_HOST = re.compile(r"^(?P<region>[a-z0-9]+)\.api\.cognitive\.microsoft\.com$")


class MalformedResponse(ValueError):
    """The answer is not an ImagePrediction (the adapter turns this into ResponseFormatError)."""


# ---- wire codec (pure) -------------------------------------------------------------------------------
def predict_url(base: str, project_id: str, published_name: str, *, store_image: bool) -> str:
    """The ClassifyImage (stored) or ClassifyImageWithNoStore URL under an endpoint root."""
    path = (
        f"/customvision/v3.1/Prediction/{quote(project_id, safe='')}/classify/iterations/"
        f"{quote(published_name, safe='')}/image"
    )
    return base.rstrip("/") + path + ("" if store_image else "/nostore")


def decode_response(payload: Any) -> tuple[list[tuple[str, float]], dict[str, Any]]:
    """``(tagName, probability)`` pairs and the answer's ids (prediction id, iteration, project).

    Raises:
        MalformedResponse: not an object with a ``predictions`` list of ``{tagName, probability}``.
    """
    if not isinstance(payload, Mapping) or not isinstance(payload.get("predictions"), list):
        raise MalformedResponse("expected an object with a 'predictions' list")
    labels = []
    for index, item in enumerate(payload["predictions"]):
        name = item.get("tagName") if isinstance(item, Mapping) else None
        score = item.get("probability") if isinstance(item, Mapping) else None
        if not isinstance(name, str) or not name:
            raise MalformedResponse(f"prediction {index}: no tagName")
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            raise MalformedResponse(f"prediction {index} ({name!r}): probability {score!r} is not a number")
        labels.append((name, float(score)))
    details = {key: str(payload[key]) for key in ("id", "iteration", "project") if payload.get(key)}
    return labels, details


def decode_error(body: bytes) -> tuple[str | None, str]:
    """``(code, message)`` from a CustomVisionError body; the raw text when it is not one."""
    text = body.decode("utf-8", "replace")
    try:
        payload = json.loads(text)
    except ValueError:
        return None, text
    if isinstance(payload, Mapping) and "message" in payload:
        code = payload.get("code")
        return (str(code) if code else None), str(payload["message"])
    return None, text


def region_from_endpoint(endpoint: str) -> str | None:
    """``westus`` from ``https://westus.api.cognitive.microsoft.com``; None for a custom-domain resource."""
    match = _REGIONAL_HOST.match(urlsplit(endpoint).hostname or "")
    return match["region"] if match else None


# ---- adapter --------------------------------------------------------------------------------------------
class CustomVisionSettings(AdapterSettings):
    """Settings of one published Custom Vision classification iteration (see docs/services.md)."""

    adapter: str = "custom-vision"
    endpoint: str
    project_id: str = Field(min_length=1)
    published_name: str = Field(min_length=1)
    prediction_key: SecretStr
    store_image: bool = False
    endpoint_url: str | None = None
    region: str | None = None
    classification_type: Literal["multiclass", "multilabel"] = "multiclass"

    @field_validator("endpoint", "endpoint_url")
    @classmethod
    def _secure(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if not parts.hostname or parts.scheme not in ("https", "http"):
            raise ValueError(
                f"{value!r} must be an https:// URL such as https://<name>.cognitiveservices.azure.com"
            )
        if parts.scheme == "http" and not is_loopback(value):
            raise ValueError("plain http is accepted only for a loopback emulator; use https://")
        return value.rstrip("/")


class CustomVisionClassifier(Classifier[CustomVisionSettings]):
    """Classify through a published Custom Vision iteration, one image per request."""

    adapter = "custom-vision"
    vendor: ClassVar[str] = "azure"
    Settings = CustomVisionSettings

    def __init__(self, name: str, settings: CustomVisionSettings, **kwargs: Any) -> None:
        super().__init__(name, settings, **kwargs)
        self.url = predict_url(
            settings.endpoint_url or settings.endpoint,
            settings.project_id,
            settings.published_name,
            store_image=settings.store_image,
        )
        self._client = LazyClient(self._build_client)

    @property
    def model_id(self) -> str:
        return f"{self.settings.project_id}/{self.settings.published_name}"

    def service_facts(self) -> ServiceFacts:
        return ServiceFacts(
            service="Azure Custom Vision Prediction API v3.1",
            vendor="azure",
            region=self.settings.region or region_from_endpoint(self.settings.endpoint),
            data_leaves_machine=not is_loopback(self.url),
        )

    def model_facts(self) -> ModelFacts:
        values: dict[str, Any] = {"model_id": self.model_id, "source": "cloudderm config"}
        return ModelFacts(**values)  # the config's model_card: is applied by governance/cards.py

    def image_limits(self) -> ImageLimits:
        return ImageLimits(max_bytes=MAX_IMAGE_BYTES)

    def warm_up(self) -> None:
        self._client.get()

    def _build_client(self) -> Any:
        try:
            import requests
        except ImportError as e:  # pragma: no cover - requests ships with the azure extra
            raise MissingDependencyError(install_hint("custom-vision", "requests")) from e
        session = requests.Session()
        session.headers.update(
            {
                "Prediction-Key": self.settings.prediction_key.get_secret_value(),
                "Content-Type": "application/octet-stream",
                "Accept": "application/json",
            }
        )
        from cloudderm.adapters._http import pin_environment

        return pin_environment(session, self.url, pool_size=self.settings.concurrency)

    def _infer(self, images: Sequence[PreparedImage]) -> list[RawResult]:
        return [self._classify_one(image) for image in images]

    def _classify_one(self, image: PreparedImage) -> RawResult:
        import requests

        session = self._client.get()
        timeout = self.settings.timeout_s or DEFAULT_TIMEOUT_S
        try:
            response = session.post(self.url, data=image.data, timeout=timeout)
        except requests.RequestException as e:
            raise transport_error(e, provider=self.name, endpoint=self.url, timeout_s=timeout) from e
        request_id = response.headers.get("apim-request-id") or response.headers.get("x-ms-request-id")
        if response.status_code != 200:
            code, message = decode_error(response.content)
            if code:
                message = f"{code}: {message}"
            raise error_for_status(
                response.status_code,
                response.headers,
                message,
                provider=self.name,
                endpoint=self.url,
                auth_hint=AUTH_HINT,
                size_hint=f"Custom Vision accepts images up to {MAX_IMAGE_BYTES:,} bytes",
                not_found_hint="check project_id and published_name (is the iteration published?)",
                request_id=request_id,
                secrets=[self.settings.prediction_key.get_secret_value()],
            )
        try:
            labels, details = decode_response(response.json())
        except (ValueError, MalformedResponse) as e:
            raise ResponseFormatError(
                f"not a Custom Vision ImagePrediction: {e}",
                body=response.content,
                provider=self.name,
                endpoint=self.url,
                request_id=request_id,
            ) from e
        details["image_stored"] = self.settings.store_image
        return RawResult(
            labels=labels,
            model=self.model_id,
            request_id=request_id or details.get("id"),
            details=details,
            scores_independent=self.settings.classification_type == "multilabel",
        )

    def close(self) -> None:
        self._client.close()
