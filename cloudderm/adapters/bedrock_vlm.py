"""Amazon Bedrock Converse as a classifier: the image as bytes in an image block, through boto3 (SigV4).

Why Converse: one request shape for every Bedrock model that takes images (Nova, Claude, Llama, ...), with
token usage in the answer. Credentials come from the boto3 chain (environment, profile, SSO, role); the
client is built on first use with one attempt per call (the cloudderm runner owns retries). A
``stopReason`` of ``content_filtered`` or ``guardrail_intervened`` is an abstention, never an error.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from cloudderm.adapters._generative import GenerativeSettings, RemoteGenerativeClassifier, Reply
from cloudderm.adapters._net import is_loopback
from cloudderm.classifier import ImageLimits, Usage
from cloudderm.core import PriceQuery
from cloudderm.errors import (
    MissingDependencyError,
    ProviderError,
    ProviderHTTPError,
    ProviderThrottled,
    ProviderTimeout,
    install_hint,
)
from cloudderm.governance.card import ServiceFacts
from cloudderm.images import PreparedImage

__all__ = ["BedrockClassifier", "BedrockSettings"]

MAX_IMAGE_BYTES = 3_750_000  # Converse's documented per-image limit (3.75 MB)
MAX_IMAGE_SIDE = 8000
_FORMATS = {"image/jpeg": "jpeg", "image/png": "png", "image/gif": "gif", "image/webp": "webp"}
_FILTERED = {"content_filtered": "content filter", "guardrail_intervened": "guardrail intervened"}
_THROTTLED = frozenset({"ThrottlingException", "ServiceQuotaExceededException", "ModelNotReadyException"})
_RETRYABLE = frozenset({"ServiceUnavailableException", "InternalServerException", "ModelTimeoutException"})


class BedrockSettings(GenerativeSettings):
    """Bedrock Converse settings: ``model`` is a model id or an inference profile id/ARN."""

    adapter: str = "bedrock"
    region: str | None = None
    profile: str | None = None
    max_output_tokens: int = Field(default=64, ge=1, le=4096)


class BedrockClassifier(RemoteGenerativeClassifier[BedrockSettings]):
    """A vision-language model on Amazon Bedrock, asked through the Converse API."""

    adapter = "bedrock"
    vendor: ClassVar[str] = "aws"
    Settings = BedrockSettings

    def service_facts(self) -> ServiceFacts:
        return ServiceFacts(
            service="Amazon Bedrock Converse",
            vendor="aws",
            region=self.settings.region,
            data_leaves_machine=not is_loopback(self.settings.endpoint_url),
            general_purpose_model=True,
        )

    def price_query(self) -> PriceQuery:
        return PriceQuery(
            label=f"Bedrock model {self.settings.model}", entry_ids=(f"aws-tokens-{self.settings.model}",)
        )

    def image_limits(self) -> ImageLimits:
        return ImageLimits(max_bytes=MAX_IMAGE_BYTES, max_side=MAX_IMAGE_SIDE)

    def _build_client(self) -> Any:
        try:
            import boto3
            from botocore.config import Config
        except ImportError as e:
            raise MissingDependencyError(install_hint("bedrock", "boto3 for Bedrock")) from e
        session = boto3.Session(profile_name=self.settings.profile, region_name=self.settings.region)
        config = Config(
            read_timeout=self.timeout_s,
            connect_timeout=10,
            retries={"total_max_attempts": 1, "mode": "standard"},
        )
        return session.client("bedrock-runtime", endpoint_url=self.settings.endpoint_url, config=config)

    def request(self, image: PreparedImage) -> dict[str, Any]:
        """The Converse arguments for one image (raw bytes: boto3 base64-encodes them on the wire)."""
        return {
            "modelId": self.settings.model,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "image": {
                                "format": _FORMATS.get(image.media_type, "jpeg"),
                                "source": {"bytes": image.data},
                            }
                        },
                        {"text": self.prompt_text(image)},
                    ],
                }
            ],
            "inferenceConfig": {
                "maxTokens": self.settings.max_output_tokens,
                "temperature": self.settings.temperature,
            },
        }

    def _ask(self, image: PreparedImage) -> Reply:
        client = self.client
        try:
            response = client.converse(**self.request(image))
        except Exception as e:  # mapped to typed errors below
            mapped = self._map_error(e)
            if mapped is None:
                raise
            raise mapped from e
        return self.decode(response)

    def decode(self, payload: dict[str, Any]) -> Reply:
        """A Converse response (boto3's dict, or the wire JSON) -> Reply (pure)."""
        message = (payload.get("output") or {}).get("message") or {}
        text = "".join(b.get("text", "") for b in message.get("content") or [] if "text" in b) or None
        usage = payload.get("usage") or {}
        stop = payload.get("stopReason")
        return Reply(
            text=text,
            usage=Usage(usage.get("inputTokens"), usage.get("outputTokens")) if usage else None,
            request_id=(payload.get("ResponseMetadata") or {}).get("RequestId"),
            filtered=f"stopReason {stop} ({_FILTERED[stop]})" if stop in _FILTERED else None,
            details={
                "stop_reason": stop,
                "latency_ms_reported": (payload.get("metrics") or {}).get("latencyMs"),
            },
        )

    def _map_error(self, error: BaseException) -> ProviderError | None:
        from botocore.exceptions import (
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
        )

        where: dict[str, Any] = {"provider": self.name, "endpoint": self.model_id}
        if isinstance(error, ReadTimeoutError | ConnectTimeoutError):
            return ProviderTimeout(f"no Converse answer within {self.timeout_s:g} s (timeout_s)", **where)
        if isinstance(error, EndpointConnectionError):
            return ProviderError(f"cannot connect to Bedrock: {error}", retryable=True, **where)
        if isinstance(error, ClientError):
            err = error.response.get("Error", {})
            code = str(err.get("Code", ""))
            message = f"{code}: {str(err.get('Message', ''))[:300]}"
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 400)
            request_id = error.response.get("ResponseMetadata", {}).get("RequestId")
            if code in _THROTTLED:
                return ProviderThrottled(message, request_id=request_id, **where)
            return ProviderHTTPError(
                message,
                status=status,
                retryable=code in _RETRYABLE or status >= 500,
                request_id=request_id,
                **where,
            )
        return None
