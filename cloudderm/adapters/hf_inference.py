"""Hugging Face Inference Providers / Inference Endpoints image classification, via ``huggingface_hub``.

The official client (``InferenceClient.image_classification``) sends the raw image bytes and gets back::

    [{"label": "sombrero", "score": 0.0957}, {"label": "cowboy hat, ten-gallon hat", "score": 0.0900}]

to ``https://router.huggingface.co/hf-inference/models/<model>`` (serverless), or to ``base_url`` (a
dedicated Inference Endpoint). The token comes from the settings, else from the hub's own chain
(``HF_TOKEN``, the cached ``hf auth login`` token). The service returns the top 5 labels unless ``top_k``
asks for more, so an answer summing below 1 is marked as a partial distribution rather than an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import Field, SecretStr, field_validator

from cloudderm.adapters._http_faults import error_for_status
from cloudderm.adapters._lazy_client import LazyClient
from cloudderm.adapters._net import is_loopback
from cloudderm.classifier import AdapterSettings, Classifier, ImageLimits, RawResult
from cloudderm.errors import MissingDependencyError, ProviderError, ProviderTimeout, ResponseFormatError
from cloudderm.governance.card import ModelFacts, ServiceFacts
from cloudderm.images import PreparedImage
from cloudderm.redact import mask_values
from cloudderm.registry import install_hint

__all__ = ["HFInferenceClassifier", "HFInferenceSettings", "decode_response"]

DEFAULT_TIMEOUT_S = 60.0
SUM_TOLERANCE = 0.02
AUTH_HINT = (
    "set token (or HF_TOKEN, or `hf auth login`) to a token with the 'Make calls to Inference Providers' "
    "permission, or one that can reach this Inference Endpoint"
)


class MalformedResponse(ValueError):
    """The answer is not a list of ``{label, score}``."""


# ---- wire codec (pure) -------------------------------------------------------------------------------
def decode_response(payload: Any) -> list[tuple[str, float]]:
    """``(label, score)`` pairs from the JSON list (or the client's ``ImageClassificationOutputElement``s).

    Raises:
        MalformedResponse: not a list, or an item without a string label and a numeric score.
    """
    if not isinstance(payload, list):
        raise MalformedResponse(f"expected a list of {{label, score}}, got {type(payload).__name__}")
    pairs = []
    for index, item in enumerate(payload):
        label = item.get("label") if isinstance(item, dict) else getattr(item, "label", None)
        score = item.get("score") if isinstance(item, dict) else getattr(item, "score", None)
        if not isinstance(label, str) or isinstance(score, bool) or not isinstance(score, (int, float)):
            raise MalformedResponse(f"item {index} is not {{label: str, score: number}}")
        pairs.append((label, float(score)))
    return pairs


def is_partial(labels: Sequence[tuple[str, float]]) -> bool:
    """Whether the service left labels out (top-k): the scores sum clearly below 1."""
    return sum(score for _, score in labels) < 1.0 - SUM_TOLERANCE


# ---- adapter --------------------------------------------------------------------------------------------
class HFInferenceSettings(AdapterSettings):
    """Settings of a Hugging Face hosted image classifier (see docs/services.md)."""

    adapter: str = "hf-inference"
    model: str = Field(min_length=1)
    base_url: str | None = None
    token: SecretStr | None = None
    endpoint_url: str | None = None
    top_k: int | None = Field(default=None, ge=1)

    @field_validator("base_url", "endpoint_url")
    @classmethod
    def _secure(cls, value: str | None) -> str | None:
        if value is not None and not (value.startswith("https://") or is_loopback(value)):
            raise ValueError("must be https:// (plain http only for a loopback server)")
        return value.rstrip("/") if value else value


class HFInferenceClassifier(Classifier[HFInferenceSettings]):
    """Classify through Hugging Face Inference (serverless providers or a dedicated endpoint)."""

    adapter = "hf-inference"
    vendor: ClassVar[str] = "huggingface"
    Settings = HFInferenceSettings

    def __init__(self, name: str, settings: HFInferenceSettings, **kwargs: Any) -> None:
        super().__init__(name, settings, **kwargs)
        self.target = settings.endpoint_url or settings.base_url
        self._client = LazyClient(self._build_client)

    @property
    def model_id(self) -> str:
        return self.settings.model

    @property
    def endpoint(self) -> str:
        return self.target or f"https://router.huggingface.co/hf-inference/models/{self.settings.model}"

    def service_facts(self) -> ServiceFacts:
        service = (
            "Hugging Face Inference Endpoint"
            if self.settings.base_url
            else "Hugging Face Inference Providers"
        )
        return ServiceFacts(
            service=service, vendor="huggingface", data_leaves_machine=not is_loopback(self.endpoint)
        )

    def model_facts(self) -> ModelFacts:
        values: dict[str, Any] = {
            "model_id": self.model_id,
            "source": f"https://huggingface.co/{self.settings.model}",
        }
        return ModelFacts(**values)

    def image_limits(self) -> ImageLimits:
        return ImageLimits()

    def warm_up(self) -> None:
        self._client.get()

    def _build_client(self) -> Any:
        try:
            from huggingface_hub import InferenceClient
        except ImportError as e:
            raise MissingDependencyError(
                install_hint("hf-inference", "huggingface_hub for the hf-inference adapter")
            ) from e
        token = self.settings.token.get_secret_value() if self.settings.token else None
        timeout = self.settings.timeout_s or DEFAULT_TIMEOUT_S
        if self.target:
            return InferenceClient(model=self.target, token=token, timeout=timeout)
        return InferenceClient(provider="hf-inference", token=token, timeout=timeout)

    def _infer(self, images: Sequence[PreparedImage]) -> list[RawResult]:
        return [self._classify_one(image) for image in images]

    def _classify_one(self, image: PreparedImage) -> RawResult:
        from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError

        client = self._client.get()
        where = {"provider": self.name, "endpoint": self.endpoint}
        kwargs: dict[str, Any] = {} if self.target else {"model": self.settings.model}
        if self.settings.top_k is not None:
            kwargs["top_k"] = self.settings.top_k
        secrets = [self.settings.token.get_secret_value()] if self.settings.token else []
        try:
            answer = client.image_classification(image.data, **kwargs)
        except InferenceTimeoutError as e:
            raise ProviderTimeout(
                "no answer in time (timeout_s), or the model is still loading", **where
            ) from e
        except HfHubHTTPError as e:
            response = getattr(e, "response", None)
            status = int(getattr(response, "status_code", 0) or 0)
            if not status:
                raise ProviderError(
                    f"cannot reach the service: {type(e).__name__}", retryable=True, **where
                ) from e
            headers = dict(getattr(response, "headers", {}) or {})
            request_id = headers.get("x-request-id")
            raise error_for_status(
                status,
                headers,
                mask_values(str(getattr(e, "server_message", "") or ""), secrets),
                auth_hint=AUTH_HINT,
                size_hint="the image is larger than the endpoint accepts",
                not_found_hint=f"no model {self.settings.model!r} served by this provider or endpoint",
                request_id=request_id,
                secrets=secrets,
                **where,
            ) from e
        except (ValueError, TypeError, KeyError) as e:  # the client's own JSON parsing of a bad body
            raise ResponseFormatError(
                f"not an image-classification answer: {type(e).__name__}", **where
            ) from e
        except OSError as e:  # httpx transport errors (connection refused, reset)
            raise ProviderError(
                f"cannot reach the service: {type(e).__name__}", retryable=True, **where
            ) from e
        try:
            labels = decode_response(answer)
        except MalformedResponse as e:
            raise ResponseFormatError(str(e), **where) from e
        result = RawResult(labels=labels, model=self.model_id)
        if labels and is_partial(labels):
            result.details["truncated_labels"] = True
            result.warnings.append(
                f"partial distribution: the service returned its top {len(labels)} labels (top_k: more)"
            )
        return result

    def close(self) -> None:
        self._client.close()
