"""Google Cloud Vision ``images:annotate`` LABEL_DETECTION, over REST with Application Default Credentials.

Why REST (``google-auth``'s ``AuthorizedSession`` on ``requests``) and not the gRPC client: it can be
recorded in cassettes and pointed at a loopback emulator. One request carries up to 16 images::

    POST https://vision.googleapis.com/v1/images:annotate
    {"requests": [{"image": {"content": "<base64>"},
                   "features": [{"type": "LABEL_DETECTION", "maxResults": 50}]}]}

    {"responses": [{"labelAnnotations": [{"mid": "/m/0k4j", "description": "automobile",
                                          "score": 0.97, "topicality": 0.97}]}]}

Label detection names generic objects and scenes ("skin", "close-up"), never a lesion class: every answer
is out-of-domain for a dermatology taxonomy, so the model facts say so and the raw labels stay visible.
Scores are independent per label (multi-label). A per-image ``error`` (google.rpc.Status) fails the call.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import Field, field_validator

from cloudderm.adapters._http_faults import error_for_status, transport_error
from cloudderm.adapters._lazy_client import LazyClient
from cloudderm.adapters._net import is_loopback
from cloudderm.classifier import AdapterSettings, Classifier, ImageLimits, PriceQuery, RawResult
from cloudderm.errors import MissingDependencyError, ProviderHTTPError, ResponseFormatError
from cloudderm.governance.card import ModelFacts, ServiceFacts
from cloudderm.images import PreparedImage
from cloudderm.registry import install_hint

__all__ = ["CloudVisionClassifier", "CloudVisionSettings", "decode_response", "encode_request"]

DEFAULT_ENDPOINT = "https://vision.googleapis.com"
PRICE_ENTRY = "gcp-vision-label-detection"
ANNOTATE_PATH = "/v1/images:annotate"
SCOPE = "https://www.googleapis.com/auth/cloud-vision"
MAX_IMAGES_PER_REQUEST = 16
# Cloud Vision's published content limits: 4 MB per image, 8 MB per request
# (https://cloud.google.com/vision/docs/limits).
MAX_IMAGE_BYTES = 4 * 1024 * 1024
MAX_REQUEST_BYTES = 8 * 1024 * 1024
DEFAULT_TIMEOUT_S = 30.0
ADC_HINT = (
    "check Google Application Default Credentials (`gcloud auth application-default login` or "
    "GOOGLE_APPLICATION_CREDENTIALS) and that the Cloud Vision API is enabled on the (quota) project"
)
INTENDED_USE = (
    "general-purpose label detection (objects, scenes, concepts); not a medical device and not trained "
    "to name skin-lesion classes"
)


class MalformedResponse(ValueError):
    """The answer is not a BatchAnnotateImagesResponse of the expected length."""


class ImageError(ValueError):
    """One image's ``error`` status inside a 200 answer."""

    def __init__(self, index: int, code: int, message: str) -> None:
        self.index, self.code, self.message = index, code, message
        super().__init__(f"image {index}: {message}")


# ---- wire codec (pure) -------------------------------------------------------------------------------
def encode_request(images: Sequence[bytes], max_results: int) -> dict[str, Any]:
    """The ``images:annotate`` body for label detection of each image."""
    feature = {"type": "LABEL_DETECTION", "maxResults": max_results}
    return {
        "requests": [
            {"image": {"content": base64.b64encode(data).decode("ascii")}, "features": [feature]}
            for data in images
        ]
    }


def request_bytes(image_sizes: Sequence[int]) -> int:
    """Upper bound of the JSON body for images of these sizes (base64 plus a generous envelope)."""
    return 256 + sum(4 * ((n + 2) // 3) + 128 for n in image_sizes)


def decode_response(payload: Any, n_images: int) -> list[tuple[list[tuple[str, float]], dict[str, Any]]]:
    """Per image: ``(description, score)`` pairs and details (the raw ``mid`` of each label).

    Raises:
        MalformedResponse: no ``responses`` list of the right length, or a label without description/score.
        ImageError: the service reported an error for one image.
    """
    if not isinstance(payload, Mapping) or not isinstance(payload.get("responses"), list):
        raise MalformedResponse("expected an object with a 'responses' list")
    responses = payload["responses"]
    if len(responses) != n_images:
        raise MalformedResponse(f"{len(responses)} responses for {n_images} images")
    out = []
    for index, item in enumerate(responses):
        if not isinstance(item, Mapping):
            raise MalformedResponse(f"response {index} is not an object")
        error = item.get("error")
        if isinstance(error, Mapping) and error.get("message"):
            raise ImageError(index, int(error.get("code") or 0), str(error["message"]))
        labels, mids = [], {}
        for annotation in item.get("labelAnnotations") or []:
            name = annotation.get("description") if isinstance(annotation, Mapping) else None
            score = annotation.get("score") if isinstance(annotation, Mapping) else None
            if not isinstance(name, str) or isinstance(score, bool) or not isinstance(score, (int, float)):
                raise MalformedResponse(f"response {index}: label annotation without description and score")
            labels.append((name, float(score)))
            if annotation.get("mid"):
                mids[name] = str(annotation["mid"])
        out.append((labels, {"mids": mids} if mids else {}))
    return out


def decode_error(body: bytes) -> str:
    """The message of a Google API error body ``{"error": {"code", "message", "status"}}``."""
    text = body.decode("utf-8", "replace")
    try:
        error = json.loads(text).get("error", {})
        return f"{error.get('status', '')}: {error.get('message', '')}".strip(": ")
    except (ValueError, AttributeError):
        return text


# ---- adapter --------------------------------------------------------------------------------------------
class CloudVisionSettings(AdapterSettings):
    """Settings of Cloud Vision label detection (see docs/services.md)."""

    adapter: str = "cloud-vision"
    max_results: int = Field(default=50, ge=1)
    quota_project: str | None = None
    endpoint_url: str | None = None
    anonymous: bool = False
    region: str | None = None

    @field_validator("endpoint_url")
    @classmethod
    def _secure(cls, value: str | None) -> str | None:
        if value is not None and not (value.startswith("https://") or is_loopback(value)):
            raise ValueError("must be https:// (plain http only for a loopback emulator)")
        return value.rstrip("/") if value else value


class CloudVisionClassifier(Classifier[CloudVisionSettings]):
    """Label detection through Cloud Vision; several images per request, packed under the byte limit."""

    adapter = "cloud-vision"
    vendor: ClassVar[str] = "gcp"
    Settings = CloudVisionSettings
    max_batch_size = MAX_IMAGES_PER_REQUEST

    def __init__(self, name: str, settings: CloudVisionSettings, **kwargs: Any) -> None:
        super().__init__(name, settings, **kwargs)
        self.url = (settings.endpoint_url or DEFAULT_ENDPOINT) + ANNOTATE_PATH
        self._client = LazyClient(self._build_session)

    @property
    def model_id(self) -> str:
        return "cloud-vision/LABEL_DETECTION"

    def service_facts(self) -> ServiceFacts:
        return ServiceFacts(
            service="Google Cloud Vision API (label detection)",
            vendor="gcp",
            region=self.settings.region,
            data_leaves_machine=not is_loopback(self.url),
        )

    def model_facts(self) -> ModelFacts:
        values: dict[str, Any] = {
            "model_id": self.model_id,
            "intended_use": INTENDED_USE,
            "label_domain": "out-of-domain",
            "source": "https://cloud.google.com/vision/docs/labels",
        }
        return ModelFacts(**values)

    def price_query(self) -> PriceQuery:
        """LABEL_DETECTION is one billed unit per image (the catalog's tiered per-1,000-units entry)."""
        return PriceQuery(label="Cloud Vision LABEL_DETECTION", entry_ids=(PRICE_ENTRY,))

    def image_limits(self) -> ImageLimits:
        return ImageLimits(max_bytes=MAX_IMAGE_BYTES)

    def plan_batches(self, images: Sequence[PreparedImage]) -> list[Sequence[PreparedImage]]:
        """At most 16 images per request, and the JSON body under the 8 MB request limit."""
        groups: list[list[PreparedImage]] = []
        for image in images:
            current = groups[-1] if groups else None
            if (
                current is None
                or len(current) >= MAX_IMAGES_PER_REQUEST
                or request_bytes([i.size_bytes for i in [*current, image]]) > MAX_REQUEST_BYTES
            ):
                groups.append([image])
            else:
                current.append(image)
        return groups

    def warm_up(self) -> None:
        self._client.get()

    def _build_session(self) -> Any:
        try:
            import requests
            from google.auth.transport.requests import AuthorizedSession
        except ImportError as e:
            raise MissingDependencyError(
                install_hint("cloud-vision", "google-auth and requests for the Cloud Vision adapter")
            ) from e
        if self.settings.anonymous:
            session = requests.Session()
        else:
            import google.auth
            from google.auth import exceptions as auth_errors

            try:
                credentials, _ = google.auth.default(
                    scopes=[SCOPE], quota_project_id=self.settings.quota_project
                )
            except auth_errors.DefaultCredentialsError as e:
                from cloudderm.errors import ConfigError

                raise ConfigError(f"no Google credentials found: {ADC_HINT}", provider=self.name) from e
            session = AuthorizedSession(credentials)
        if self.settings.quota_project:
            session.headers["x-goog-user-project"] = self.settings.quota_project
        session.headers["Content-Type"] = "application/json"
        from cloudderm.adapters._http import pin_environment

        return pin_environment(session, self.url, pool_size=self.settings.concurrency)

    def _infer(self, images: Sequence[PreparedImage]) -> list[RawResult]:
        import requests

        session = self._client.get()
        timeout = self.settings.timeout_s or DEFAULT_TIMEOUT_S
        body = json.dumps(encode_request([i.data for i in images], self.settings.max_results))
        try:
            response = session.post(self.url, data=body, timeout=timeout)
        except requests.RequestException as e:
            raise transport_error(e, provider=self.name, endpoint=self.url, timeout_s=timeout) from e
        except Exception as e:  # google-auth token refresh failures
            raise ProviderHTTPError(
                f"cannot get a Google token: {ADC_HINT}", status=401, provider=self.name, endpoint=self.url
            ) from e
        if response.status_code != 200:
            raise error_for_status(
                response.status_code,
                response.headers,
                decode_error(response.content),
                provider=self.name,
                endpoint=self.url,
                auth_hint=ADC_HINT,
                size_hint=f"at most {MAX_IMAGE_BYTES:,} bytes an image, {MAX_REQUEST_BYTES:,} a request",
            )
        try:
            decoded = decode_response(response.json(), len(images))
        except (ValueError, MalformedResponse) as e:
            if isinstance(e, ImageError):
                raise ProviderHTTPError(
                    f"{images[e.index].source}: {e.message}",
                    status=400,
                    provider=self.name,
                    endpoint=self.url,
                ) from e
            raise ResponseFormatError(
                f"not a Cloud Vision annotate answer: {e}",
                body=response.content,
                provider=self.name,
                endpoint=self.url,
            ) from e
        results = []
        for labels, details in decoded:
            truncated = len(labels) >= self.settings.max_results
            warnings = ["generic labels: Cloud Vision label detection names objects and scenes, not lesions"]
            if truncated:
                details["truncated_labels"] = True
            results.append(
                RawResult(
                    labels=labels,
                    model=self.model_id,
                    warnings=warnings,
                    details=details,
                    scores_independent=True,
                )
            )
        return results

    def close(self) -> None:
        self._client.close()
