"""Gemini ``generateContent`` as a classifier, through ``google-genai``: the Gemini API (key) or Vertex AI.

Which backend: ``api_key`` (else ``GEMINI_API_KEY``/``GOOGLE_API_KEY``) selects the Gemini API;
``project`` + ``location`` select Vertex AI with Application Default Credentials. The image goes as an
``inlineData`` part of the prepared, metadata-free bytes; the answer is asked for as JSON with
``response_json_schema`` (the label enum and a confidence). A blocked prompt (``promptFeedback.blockReason``)
or a safety finish reason (SAFETY, PROHIBITED_CONTENT, BLOCKLIST, SPII, IMAGE_SAFETY) is an abstention
with the reason kept. The SDK's own retries are off (one attempt): the cloudderm runner owns retries.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Literal

from pydantic import SecretStr, model_validator

from cloudderm.adapters._generative import GenerativeSettings, RemoteGenerativeClassifier, Reply
from cloudderm.adapters._net import is_loopback
from cloudderm.adapters._vlm_prompt import answer_schema
from cloudderm.classifier import ImageLimits, Usage
from cloudderm.core import PriceQuery
from cloudderm.errors import (
    ConfigError,
    MissingDependencyError,
    ProviderError,
    ProviderHTTPError,
    ProviderThrottled,
    ProviderTimeout,
    install_hint,
)
from cloudderm.governance.card import ServiceFacts
from cloudderm.images import PreparedImage

__all__ = ["GeminiClassifier", "GeminiSettings"]

MAX_REQUEST_BYTES = 20 * 1024 * 1024  # inline data: the whole request must stay under 20 MB
KEY_ENVS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
BLOCKING_FINISH = frozenset(
    {
        "SAFETY",
        "PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "IMAGE_SAFETY",
        "RECITATION",
        "IMAGE_PROHIBITED_CONTENT",
    }
)


class GeminiSettings(GenerativeSettings):
    """Gemini settings: ``api_key`` (Gemini API) or ``project`` + ``location`` (Vertex AI, ADC)."""

    adapter: str = "gemini"
    api_key: SecretStr | None = None
    project: str | None = None
    location: str | None = None
    response_format: Literal["json_schema", "text"] = "json_schema"

    @model_validator(mode="after")
    def _one_backend(self) -> GeminiSettings:
        if self.api_key is not None and (self.project or self.location):
            raise ValueError("give api_key (Gemini API) or project + location (Vertex AI), not both")
        if bool(self.project) != bool(self.location):
            raise ValueError("Vertex AI needs both project and location (e.g. europe-west4)")
        return self


class GeminiClassifier(RemoteGenerativeClassifier[GeminiSettings]):
    """A Gemini model asked through ``models.generate_content``."""

    adapter = "gemini"
    vendor: ClassVar[str] = "gcp"
    Settings = GeminiSettings

    @property
    def vertex(self) -> bool:
        return bool(self.settings.project)

    def service_facts(self) -> ServiceFacts:
        return ServiceFacts(
            service="Vertex AI Gemini generateContent" if self.vertex else "Gemini API generateContent",
            # the Gemini API (key) is not a Google Cloud service: Google Cloud's facts (BAA) do not apply
            vendor="gcp" if self.vertex else "google",
            region=self.settings.location,
            data_leaves_machine=not is_loopback(self.settings.endpoint_url),
            general_purpose_model=True,
        )

    def price_query(self) -> PriceQuery:
        return PriceQuery(
            label=f"Gemini model {self.settings.model}", entry_ids=(f"gcp-tokens-{self.settings.model}",)
        )

    def image_limits(self) -> ImageLimits:
        return ImageLimits(max_bytes=MAX_REQUEST_BYTES // 2)  # base64 inflates by 4/3; leave room for text

    def _build_client(self) -> Any:
        try:
            from google import genai
            from google.genai import types
        except ImportError as e:
            raise MissingDependencyError(install_hint("gemini", "the google-genai SDK")) from e
        http = types.HttpOptions(
            timeout=int(self.timeout_s * 1000),
            base_url=self.settings.endpoint_url,
            retry_options=types.HttpRetryOptions(attempts=1),
        )
        if self.vertex:
            return genai.Client(
                vertexai=True,
                project=self.settings.project,
                location=self.settings.location,
                http_options=http,
            )
        key = self.settings.api_key.get_secret_value() if self.settings.api_key else None
        key = key or next((os.environ[k] for k in KEY_ENVS if os.environ.get(k)), None)
        if not key:
            raise ConfigError(
                "no Gemini API key: set api_key: ${GEMINI_API_KEY} or export GEMINI_API_KEY, or give "
                "project + location for Vertex AI",
                provider=self.name,
                field="api_key",
            )
        return genai.Client(api_key=key, http_options=http)

    def request(self, image: PreparedImage) -> dict[str, Any]:
        """The ``generate_content`` arguments for one image: an inlineData part, then the prompt."""
        from google.genai import types

        config: dict[str, Any] = {
            "temperature": self.settings.temperature,
            "max_output_tokens": self.settings.max_output_tokens,
        }
        if self.settings.response_format == "json_schema":
            config["response_mime_type"] = "application/json"
            config["response_json_schema"] = answer_schema(self.prompt.codes)
        contents = [
            types.Part.from_bytes(data=image.data, mime_type=image.media_type),
            self.prompt_text(image),
        ]
        return {
            "model": self.settings.model,
            "contents": contents,
            "config": types.GenerateContentConfig(**config),
        }

    def _ask(self, image: PreparedImage) -> Reply:
        client = self.client
        try:
            response = client.models.generate_content(**self.request(image))
        except Exception as e:  # mapped to typed errors below
            mapped = self._map_error(e)
            if mapped is None:
                raise
            raise mapped from e
        return self.decode(response.model_dump(mode="json", by_alias=False, exclude_none=True))

    def decode(self, payload: dict[str, Any]) -> Reply:
        """A GenerateContentResponse (the SDK's snake_case dump) -> Reply (pure)."""
        candidates = payload.get("candidates") or []
        candidate = candidates[0] if candidates else {}
        parts = (candidate.get("content") or {}).get("parts") or []
        text = "".join(p.get("text", "") for p in parts if not p.get("thought")) or None
        usage = payload.get("usage_metadata") or {}
        finish = candidate.get("finish_reason")
        blocked = (payload.get("prompt_feedback") or {}).get("block_reason")
        filtered = None
        if blocked:
            filtered = f"prompt blocked: {blocked}"
        elif finish in BLOCKING_FINISH:
            ratings = [
                r.get("category", "?") for r in candidate.get("safety_ratings") or [] if r.get("blocked")
            ]
            filtered = f"finishReason {finish}" + (f" ({', '.join(ratings)})" if ratings else "")
        return Reply(
            text=text,
            usage=Usage(usage.get("prompt_token_count"), usage.get("candidates_token_count"))
            if usage
            else None,
            model=payload.get("model_version"),
            request_id=payload.get("response_id"),
            filtered=filtered,
            details={"finish_reason": finish, "avg_logprobs": candidate.get("avg_logprobs")},
        )

    def _map_error(self, error: BaseException) -> ProviderError | None:
        import httpx2
        from google.genai import errors

        where: dict[str, Any] = {"provider": self.name, "endpoint": self.model_id}
        if isinstance(error, httpx2.TimeoutException):
            return ProviderTimeout(f"no answer within {self.timeout_s:g} s (timeout_s)", **where)
        if isinstance(error, httpx2.TransportError):
            return ProviderError(f"cannot connect: {type(error).__name__}", retryable=True, **where)
        if isinstance(error, errors.APIError):
            message = f"{error.status or ''} {str(error.message or '')[:300]}".strip()
            if error.code == 429:
                return ProviderThrottled(f"HTTP 429: {message}", **where)
            if error.code in (401, 403):
                message += " (check api_key / GEMINI_API_KEY, or Application Default Credentials for Vertex)"
            return ProviderHTTPError(message, status=int(error.code), **where)
        return None
