"""OpenAI Chat Completions as a classifier: OpenAI, Azure OpenAI and any OpenAI-compatible server.

Why one adapter for three services: Azure OpenAI and the OpenAI-compatible servers (vLLM, TGI, Ollama,
Hugging Face Inference Providers) speak the same ``/chat/completions`` body, and the official ``openai`` SDK
serves them all (``OpenAI(base_url=...)``, ``AzureOpenAI(azure_endpoint=..., azure_deployment=...,
api_version=...)``; Azure's newer v1 path is ``base_url=https://RESOURCE.openai.azure.com/openai/v1``).

The image goes as a ``data:`` URL of the prepared, metadata-free bytes. The answer is asked for as
``response_format: json_schema`` (``strict``) with the label enum, unless ``response_format: text``.
Content filters are abstentions, never errors: an HTTP 400 with code ``content_filter`` and a
``finish_reason: content_filter`` both become ``abstained`` with the filtered categories as the reason;
Azure's ``prompt_filter_results``/``content_filter_results`` are kept in the details. A 429 stays a
retryable ``ProviderThrottled``. The SDK's own retries are off: the cloudderm runner owns retries.
"""

from __future__ import annotations

import base64
import os
from typing import Any, ClassVar, Literal
from urllib.parse import urlparse

from pydantic import SecretStr

from cloudderm.adapters._generative import (
    GenerativeSettings,
    RemoteGenerativeClassifier,
    Reply,
    label_probability_from_logprobs,
)
from cloudderm.adapters._net import is_loopback
from cloudderm.adapters._sdk_errors import map_sdk_error, request_id
from cloudderm.adapters._vlm_parse import parse_answer
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

__all__ = ["OpenAIClassifier", "OpenAISettings", "filter_categories"]

MAX_IMAGE_BYTES = 20 * 1024 * 1024  # OpenAI's documented per-image upload limit (20 MB)
AZURE_KEY_ENV = "AZURE_OPENAI_API_KEY"
OPENAI_KEY_ENV = "OPENAI_API_KEY"
REQUEST_ID_HEADERS = ("x-request-id", "apim-request-id")  # OpenAI; Azure's API Management
ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"


class OpenAISettings(GenerativeSettings):
    """OpenAI / Azure OpenAI / OpenAI-compatible settings (field names fixed by the issue)."""

    adapter: str = "openai"
    api_key: SecretStr | None = None
    base_url: str | None = None
    azure_endpoint: str | None = None
    azure_deployment: str | None = None
    api_version: str | None = None
    response_format: Literal["json_schema", "text"] = "json_schema"
    logprobs: bool = False
    image_detail: Literal["auto", "low", "high"] = "auto"
    region: str | None = None


def filter_categories(results: Any) -> list[str]:
    """The filtered categories of an Azure ``content_filter_results``/``content_filter_result`` object."""
    if not isinstance(results, dict):
        return []
    out = []
    for category, verdict in results.items():
        if isinstance(verdict, dict) and verdict.get("filtered"):
            severity = verdict.get("severity")
            out.append(f"{category}={severity}" if severity else category)
    return out


class OpenAIClassifier(RemoteGenerativeClassifier[OpenAISettings]):
    """A vision-language model behind an OpenAI Chat Completions endpoint."""

    adapter = "openai"
    vendor: ClassVar[str] = "openai"
    Settings = OpenAISettings

    def __init__(self, name: str, settings: OpenAISettings, **kwargs: Any) -> None:
        super().__init__(name, settings, **kwargs)
        if settings.azure_endpoint and settings.base_url:
            raise ConfigError(
                "give either azure_endpoint (deployment URL + api_version) or base_url (incl. Azure's "
                "https://RESOURCE.openai.azure.com/openai/v1), not both",
                provider=name,
                field="base_url",
            )
        if settings.azure_endpoint and not settings.api_version:
            raise ConfigError(
                "azure_endpoint needs api_version (e.g. 2024-10-21), or use the v1 path as base_url",
                provider=name,
                field="api_version",
            )

    # ---- facts ----------------------------------------------------------------------------------
    @property
    def is_azure(self) -> bool:
        host = urlparse(self.settings.azure_endpoint or self.settings.base_url or "").hostname or ""
        return bool(self.settings.azure_endpoint) or host.endswith(".openai.azure.com")

    @property
    def url(self) -> str:
        """Where requests go (no secrets: keys travel in headers)."""
        return (
            self.settings.endpoint_url
            or self.settings.base_url
            or self.settings.azure_endpoint
            or "https://api.openai.com/v1"
        )

    def service_facts(self) -> ServiceFacts:
        if self.is_azure:
            service, vendor = "Azure OpenAI chat completions", "azure"
        elif self.settings.base_url or self.settings.endpoint_url:
            service, vendor = (
                f"OpenAI-compatible server at {urlparse(self.url).hostname}",
                "openai-compatible",
            )
        else:
            service, vendor = "OpenAI chat completions", "openai"
        return ServiceFacts(
            service=service,
            vendor=vendor,
            region=self.settings.region,
            data_leaves_machine=not is_loopback(self.url),
            general_purpose_model=True,
        )

    def price_query(self) -> PriceQuery:
        return PriceQuery(
            label=f"OpenAI model {self.settings.model}", entry_ids=(f"openai-tokens-{self.settings.model}",)
        )

    def image_limits(self) -> ImageLimits:
        return ImageLimits(max_bytes=MAX_IMAGE_BYTES)

    # ---- client ---------------------------------------------------------------------------------
    def _build_client(self) -> Any:
        try:
            import openai
        except ImportError as e:
            raise MissingDependencyError(install_hint("openai", "the OpenAI SDK")) from e
        common: dict[str, Any] = {"timeout": self.timeout_s, "max_retries": 0}
        key = self.settings.api_key.get_secret_value() if self.settings.api_key else None
        if self.is_azure and self.settings.azure_endpoint:
            auth: dict[str, Any] = {"api_key": key or os.environ.get(AZURE_KEY_ENV)}
            if not auth["api_key"]:
                auth = {"azure_ad_token_provider": _entra_token_provider(self.name)}
            return openai.AzureOpenAI(
                azure_endpoint=self.settings.endpoint_url or self.settings.azure_endpoint,
                azure_deployment=self.settings.azure_deployment,
                api_version=self.settings.api_version,
                **auth,
                **common,
            )
        env = AZURE_KEY_ENV if self.is_azure else OPENAI_KEY_ENV
        key = key or os.environ.get(env) or os.environ.get(OPENAI_KEY_ENV)
        if not key:
            if self.is_azure:
                key = _entra_token_provider(self.name)  # the v1 path takes a token provider as api_key
            elif self.settings.base_url or self.settings.endpoint_url:
                key = "unused"  # most self-hosted servers need no key; the SDK insists on one
            else:
                raise ConfigError(
                    f"no OpenAI API key: set api_key: ${{{OPENAI_KEY_ENV}}} or export {OPENAI_KEY_ENV}",
                    provider=self.name,
                    field="api_key",
                )
        return openai.OpenAI(
            api_key=key, base_url=self.settings.endpoint_url or self.settings.base_url, **common
        )

    # ---- one call -------------------------------------------------------------------------------
    def request_body(self, image: PreparedImage) -> dict[str, Any]:
        """The Chat Completions arguments for one image (also what the emulator and tests check)."""
        data_url = f"data:{image.media_type};base64,{base64.b64encode(image.data).decode('ascii')}"
        body: dict[str, Any] = {
            "model": self.settings.azure_deployment or self.settings.model,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": self.prompt_text(image)},
                        {
                            "type": "image_url",
                            "image_url": {"url": data_url, "detail": self.settings.image_detail},
                        },
                    ],
                }
            ],
            "temperature": self.settings.temperature,
            "max_completion_tokens": self.settings.max_output_tokens,
        }
        if self.settings.response_format == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": "lesion_label",
                    "schema": answer_schema(self.prompt.codes),
                    "strict": True,
                },
            }
        if self.settings.logprobs:
            body["logprobs"] = True
        return body

    def _ask(self, image: PreparedImage) -> Reply:
        client = self.client
        try:
            completion = client.chat.completions.create(**self.request_body(image))
        except Exception as e:  # mapped to typed errors or a content-filter abstention below
            filtered = self._content_filter_400(e)
            if filtered is not None:
                return filtered
            mapped = self._map_error(e)
            if mapped is None:
                raise
            raise mapped from e
        return self.decode(completion.model_dump(mode="json"))

    def decode(self, payload: dict[str, Any]) -> Reply:
        """A Chat Completions response body -> Reply (pure; used on the recorded envelopes in tests)."""
        choice = (payload.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        usage = payload.get("usage") or {}
        details: dict[str, Any] = {"finish_reason": choice.get("finish_reason")}
        prompt_filters = payload.get("prompt_filter_results")
        if prompt_filters is not None:
            details["prompt_filter_results"] = prompt_filters
        if choice.get("content_filter_results") is not None:
            details["content_filter_results"] = choice["content_filter_results"]
        filtered = None
        if choice.get("finish_reason") == "content_filter":
            categories = filter_categories(choice.get("content_filter_results"))
            for entry in prompt_filters or []:
                categories += filter_categories(entry.get("content_filter_results"))
            filtered = ", ".join(categories) or "finish_reason content_filter (no categories given)"
        text = message.get("content")
        return Reply(
            text=text,
            usage=Usage(usage.get("prompt_tokens"), usage.get("completion_tokens")) if usage else None,
            model=payload.get("model"),
            request_id=payload.get("id") or None,
            filtered=filtered,
            refusal=message.get("refusal"),
            label_probability=self._logprob_score(choice, text),
            details=details,
        )

    def _logprob_score(self, choice: dict[str, Any], text: str | None) -> float | None:
        content = (choice.get("logprobs") or {}).get("content")
        if not content or not text:
            return None
        parsed = parse_answer(text, self.prompt.codes)
        if parsed.label is None:
            return None
        tokens = [(t.get("token", ""), float(t.get("logprob", 0.0))) for t in content]
        return label_probability_from_logprobs(tokens, parsed.label)

    def _content_filter_400(self, error: BaseException) -> Reply | None:
        """Azure's HTTP 400 ``content_filter``: the prompt (here: the image) was filtered -> abstention."""
        import openai

        if not isinstance(error, openai.BadRequestError):
            return None
        body = error.body if isinstance(error.body, dict) else {}
        inner = body.get("error", body) if isinstance(body.get("error", body), dict) else {}
        if (inner.get("code") or getattr(error, "code", None)) != "content_filter":
            return None
        result = (inner.get("innererror") or {}).get("content_filter_result")
        categories = ", ".join(filter_categories(result)) or "HTTP 400 content_filter (no categories given)"
        details = {"http_status": 400, "content_filter_result": result}
        return Reply(
            text=None, filtered=categories, request_id=request_id(error, REQUEST_ID_HEADERS), details=details
        )

    def _map_error(self, error: BaseException) -> ProviderError | None:
        import openai

        return map_sdk_error(
            openai,
            error,
            provider=self.name,
            endpoint=self.model_id,
            where=self.url,
            timeout_s=self.timeout_s,
            key_hint="check api_key / OPENAI_API_KEY / AZURE_OPENAI_API_KEY or the Entra ID role",
            request_id_headers=REQUEST_ID_HEADERS,
        )


def _entra_token_provider(provider: str) -> Any:
    """A bearer-token provider from azure-identity's DefaultAzureCredential (Entra ID, no key)."""
    try:
        from azure.identity import DefaultAzureCredential, get_bearer_token_provider
    except ImportError as e:
        raise MissingDependencyError(
            "no Azure OpenAI key (api_key / AZURE_OPENAI_API_KEY) and azure-identity is not installed for "
            'Entra ID: pip install "cloudderm[azure]"'
        ) from e
    return get_bearer_token_provider(DefaultAzureCredential(), ENTRA_SCOPE)
