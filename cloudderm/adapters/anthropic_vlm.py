"""Anthropic Messages API as a classifier: the image as a base64 block, through the official SDK.

The SDK's ``messages.create`` (anthropic>=2) has no ``temperature``, so this adapter sends none and refuses
``temperature``/``samples`` settings: its score source is the model's stated confidence. The prompt is the
taxonomy prompt of the generative base; the answer is asked for as JSON through
``output_config.format`` (structured outputs) unless ``response_format: text``. A ``stop_reason: refusal``
is an abstention with the refusal kept; a 429 is a retryable ``ProviderThrottled`` and a 529 (overloaded)
a retryable HTTP error. The SDK's own retries are off: the cloudderm runner owns retries.
"""

from __future__ import annotations

import base64
import os
from typing import Any, ClassVar, Literal
from urllib.parse import urlparse

from pydantic import SecretStr, model_validator

from cloudderm.adapters._generative import GenerativeSettings, RemoteGenerativeClassifier, Reply
from cloudderm.adapters._net import is_loopback
from cloudderm.adapters._sdk_errors import map_sdk_error
from cloudderm.adapters._vlm_prompt import answer_schema
from cloudderm.classifier import ImageLimits, Usage
from cloudderm.core import PriceQuery
from cloudderm.errors import (
    ConfigError,
    MissingDependencyError,
    ProviderError,
    install_hint,
)
from cloudderm.governance.card import ServiceFacts
from cloudderm.images import PreparedImage

__all__ = ["AnthropicClassifier", "AnthropicSettings"]

MAX_IMAGE_BYTES = 5 * 1024 * 1024  # the Messages API's documented per-image limit (5 MB)
MAX_IMAGE_SIDE = 8000
KEY_ENV = "ANTHROPIC_API_KEY"
DEFAULT_URL = "https://api.anthropic.com"


class AnthropicSettings(GenerativeSettings):
    """Anthropic Messages settings (``api_key`` else ``ANTHROPIC_API_KEY``)."""

    adapter: str = "anthropic"
    api_key: SecretStr | None = None
    response_format: Literal["json_schema", "text"] = "json_schema"
    region: str | None = None

    @model_validator(mode="after")
    def _no_sampling_control(self) -> AnthropicSettings:
        if self.temperature != 0 or self.samples != 1:
            raise ValueError(
                "the Anthropic SDK's messages.create (anthropic>=2) takes no temperature, so neither "
                "temperature nor samples can be set for this adapter; its score is the stated confidence"
            )
        return self


def _schema_for_anthropic(codes: tuple[str, ...]) -> dict[str, Any]:
    """The answer schema without numeric bounds (not every structured-output backend accepts them).

    The 0..1 range of ``confidence`` is still enforced, by the strict parser.
    """
    schema = answer_schema(codes)
    schema["properties"]["confidence"] = {"type": "number"}
    return schema


class AnthropicClassifier(RemoteGenerativeClassifier[AnthropicSettings]):
    """A Claude model asked through the Messages API."""

    adapter = "anthropic"
    vendor: ClassVar[str] = "anthropic"
    Settings = AnthropicSettings

    @property
    def url(self) -> str:
        return self.settings.endpoint_url or DEFAULT_URL

    def service_facts(self) -> ServiceFacts:
        return ServiceFacts(
            service="Anthropic Messages API"
            if not self.settings.endpoint_url
            else f"Messages API at {self.host}",
            vendor="anthropic",
            region=self.settings.region,
            data_leaves_machine=not is_loopback(self.url),
            general_purpose_model=True,
        )

    @property
    def host(self) -> str:
        return urlparse(self.url).hostname or self.url

    def price_query(self) -> PriceQuery:
        return PriceQuery(
            label=f"Anthropic model {self.settings.model}",
            entry_ids=(f"anthropic-tokens-{self.settings.model}",),
        )

    def image_limits(self) -> ImageLimits:
        return ImageLimits(max_bytes=MAX_IMAGE_BYTES, max_side=MAX_IMAGE_SIDE)

    def _build_client(self) -> Any:
        try:
            import anthropic
        except ImportError as e:
            raise MissingDependencyError(install_hint("anthropic", "the Anthropic SDK")) from e
        key = self.settings.api_key.get_secret_value() if self.settings.api_key else os.environ.get(KEY_ENV)
        if not key:
            raise ConfigError(
                f"no Anthropic API key: set api_key: ${{{KEY_ENV}}} or export {KEY_ENV}",
                provider=self.name,
                field="api_key",
            )
        return anthropic.Anthropic(
            api_key=key, base_url=self.settings.endpoint_url, timeout=self.timeout_s, max_retries=0
        )

    def request_body(self, image: PreparedImage) -> dict[str, Any]:
        """The Messages API arguments for one image: image block first, then the prompt."""
        body: dict[str, Any] = {
            "model": self.settings.model,
            "max_tokens": self.settings.max_output_tokens,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": image.media_type,
                                "data": base64.b64encode(image.data).decode("ascii"),
                            },
                        },
                        {"type": "text", "text": self.prompt_text(image)},
                    ],
                }
            ],
        }
        if self.settings.response_format == "json_schema":
            body["output_config"] = {
                "format": {"type": "json_schema", "schema": _schema_for_anthropic(self.prompt.codes)}
            }
        return body

    def _ask(self, image: PreparedImage) -> Reply:
        client = self.client
        try:
            message = client.messages.create(**self.request_body(image))
        except Exception as e:  # mapped to typed errors below
            mapped = self._map_error(e)
            if mapped is None:
                raise
            raise mapped from e
        return self.decode(message.model_dump(mode="json"))

    def decode(self, payload: dict[str, Any]) -> Reply:
        """A Messages API response body -> Reply (pure)."""
        blocks = payload.get("content") or []
        text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text") or None
        usage = payload.get("usage") or {}
        stop = payload.get("stop_reason")
        return Reply(
            text=text,
            usage=Usage(usage.get("input_tokens"), usage.get("output_tokens")) if usage else None,
            model=payload.get("model"),
            request_id=payload.get("id"),
            refusal=(text or "stop_reason refusal") if stop == "refusal" else None,
            details={"stop_reason": stop},
        )

    def _map_error(self, error: BaseException) -> ProviderError | None:
        import anthropic

        return map_sdk_error(
            anthropic,
            error,
            provider=self.name,
            endpoint=self.model_id,
            where=self.host,
            timeout_s=self.timeout_s,
            key_hint=f"check api_key / {KEY_ENV}",
            request_id_headers=("request-id",),
        )
