"""Amazon Rekognition ``DetectLabels`` (generic) and ``DetectCustomLabels`` (your own model), via boto3.

Which call: ``DetectCustomLabels`` when ``project_version_arn`` is set, else ``DetectLabels``. Both take the
image as ``Image.Bytes`` (at most 5 MB) and ``MinConfidence`` (default 0 here, so the whole distribution
comes back instead of the service's 55/50 % cut-off)::

    {"Labels": [{"Name": "Person", "Confidence": 99.25, "Parents": [...], "Instances": [...]}],
     "LabelModelVersion": "3.0"}
    {"CustomLabels": [{"Name": "LeafBlast", "Confidence": 99.999}]}

Confidences are percentages over independent labels: they are divided by 100 and the answer is marked
multi-label, so nothing downstream mistakes them for a distribution. A Custom Labels model answers only
while it is RUNNING (and is billed per inference hour while it runs): ``ResourceNotReadyException`` becomes
an error that says so and quotes the ``start-project-version`` command.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import Field, field_validator

from cloudderm.adapters._lazy_client import LazyClient
from cloudderm.adapters._net import is_loopback
from cloudderm.classifier import AdapterSettings, Classifier, ImageLimits, RawResult
from cloudderm.errors import (
    CloudDermError,
    ConfigError,
    InvalidImageError,
    MissingDependencyError,
    ProviderError,
    ProviderHTTPError,
    ProviderThrottled,
    ProviderTimeout,
    ResponseFormatError,
)
from cloudderm.governance.card import ModelFacts, ServiceFacts
from cloudderm.images import PreparedImage
from cloudderm.registry import install_hint

__all__ = ["RekognitionClassifier", "RekognitionSettings", "decode_response", "error_for_code"]

MAX_IMAGE_BYTES = 5 * 1024 * 1024  # DetectLabels: base64-encoded image bytes up to 5 MB (API_Image)
# Custom Labels: "Images passed as image bytes must be smaller than 4.0 MB"
# (https://docs.aws.amazon.com/rekognition/latest/customlabels-dg/running-model.html)
MAX_CUSTOM_IMAGE_BYTES = 4 * 1024 * 1024 - 1
DEFAULT_TIMEOUT_S = 30.0
THROTTLE_CODES = {"ThrottlingException", "ProvisionedThroughputExceededException", "LimitExceededException"}
AUTH_CODES = {
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
}
CREDENTIALS_HINT = (
    "boto3 found no AWS credentials: run `aws configure` / `aws sso login`, set AWS_PROFILE, or "
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
)
AUTH_HINT = (
    "check the AWS credentials boto3 found (profile, environment, role) and that they allow "
    "rekognition:DetectLabels / rekognition:DetectCustomLabels in this region"
)
GENERIC_USE = (
    "general-purpose label detection (objects, scenes, concepts); not a medical device and not trained "
    "to name skin-lesion classes"
)
_ARN = re.compile(r"^arn:aws[a-z-]*:rekognition:(?P<region>[a-z0-9-]+):\d{12}:project/.+/version/.+$")


class MalformedResponse(ValueError):
    """The answer lacks the ``Labels`` / ``CustomLabels`` list (the adapter raises ResponseFormatError)."""


# ---- wire codec (pure) -------------------------------------------------------------------------------
def decode_response(payload: Any, *, custom: bool) -> tuple[list[tuple[str, float]], dict[str, Any]]:
    """``(Name, Confidence / 100)`` pairs and details (label model version, parents of each label).

    Raises:
        MalformedResponse: no list under ``CustomLabels`` (custom) or ``Labels``, or an item without a
            name and a 0-100 confidence.
    """
    key = "CustomLabels" if custom else "Labels"
    if not isinstance(payload, Mapping) or not isinstance(payload.get(key), list):
        raise MalformedResponse(f"expected an object with a {key!r} list")
    labels: list[tuple[str, float]] = []
    parents: dict[str, list[str]] = {}
    for index, item in enumerate(payload[key]):
        name = item.get("Name") if isinstance(item, Mapping) else None
        confidence = item.get("Confidence") if isinstance(item, Mapping) else None
        if not isinstance(name, str) or not name:
            raise MalformedResponse(f"{key}[{index}] has no Name")
        if (
            isinstance(confidence, bool)
            or not isinstance(confidence, (int, float))
            or not 0 <= confidence <= 100
        ):
            raise MalformedResponse(f"{key}[{index}] ({name!r}): Confidence {confidence!r} is not in 0..100")
        labels.append((name, float(confidence) / 100.0))
        names = [p.get("Name") for p in item.get("Parents") or [] if isinstance(p, Mapping)]
        if names:
            parents[name] = [str(n) for n in names if n]
    details: dict[str, Any] = {"confidence_scale": "percent/100"}
    if payload.get("LabelModelVersion"):
        details["label_model_version"] = str(payload["LabelModelVersion"])
    if parents:
        details["parents"] = parents
    return labels, details


def start_command(arn: str) -> str:
    """The AWS CLI command that starts a Custom Labels model version."""
    return f"aws rekognition start-project-version --project-version-arn {arn} --min-inference-units 1"


def error_for_code(
    code: str,
    message: str,
    status: int,
    *,
    arn: str | None,
    retry_after: float | None = None,
    **where: Any,
) -> ProviderError:
    """The cloudderm error for a Rekognition error code (from botocore's ``ClientError``)."""
    if code == "ResourceNotReadyException" and arn:
        return ProviderError(
            f"the Custom Labels model is not running (ResourceNotReadyException); start it with "
            f"`{start_command(arn)}` and wait for status RUNNING. It is billed per inference hour "
            "while it runs: stop it with `aws rekognition stop-project-version` when done",
            retryable=False,
            **where,
        )
    if code in THROTTLE_CODES:
        return ProviderThrottled(f"{code}: {message}", retry_after=retry_after, **where)
    if code in AUTH_CODES or status in (401, 403):
        return ProviderHTTPError(f"{code}: {AUTH_HINT}", status=status or 403, retryable=False, **where)
    if code == "ImageTooLargeException":
        return ProviderHTTPError(
            f"{code}: image bytes must be at most {MAX_IMAGE_BYTES:,} bytes",
            status=status or 400,
            retryable=False,
            **where,
        )
    if code == "ResourceNotFoundException" and arn:
        return ProviderHTTPError(f"{code}: no project version {arn}", status=status or 400, **where)
    return ProviderHTTPError(f"{code}: {message}", status=status or 500, **where)


def _sdk_error(error: Exception, name: str, where: dict[str, Any]) -> CloudDermError:
    """A botocore failure before or after sending: configuration (exit 2) or a retryable connection error."""
    from botocore import exceptions as bx

    credential_errors = tuple(
        getattr(bx, n) for n in ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError")
    )
    if isinstance(error, credential_errors):
        return ConfigError(f"{type(error).__name__}: {CREDENTIALS_HINT}", provider=name)
    if isinstance(error, bx.NoRegionError):
        return ConfigError("set `region:` (e.g. eu-west-2) or AWS_REGION", provider=name, field="region")
    if isinstance(error, bx.ParamValidationError):
        return ConfigError(f"the request was refused before sending: {error}", provider=name)
    if isinstance(error, (bx.ConnectionError, bx.HTTPClientError)):
        return ProviderError(f"cannot reach Rekognition: {type(error).__name__}", retryable=True, **where)
    return ProviderError(f"{type(error).__name__}: cannot call Rekognition", retryable=False, **where)


# ---- adapter --------------------------------------------------------------------------------------------
class RekognitionSettings(AdapterSettings):
    """Settings of Rekognition label detection or a Custom Labels model (see docs/services.md)."""

    adapter: str = "rekognition"
    region: str | None = None
    project_version_arn: str | None = None
    min_confidence: float = Field(default=0.0, ge=0.0, le=100.0)
    endpoint_url: str | None = None
    labels: list[str] | None = Field(default=None, min_length=1)

    @field_validator("project_version_arn")
    @classmethod
    def _arn(cls, value: str | None) -> str | None:
        if value is not None and not _ARN.match(value):
            raise ValueError(
                "must be a project version ARN: "
                "arn:aws:rekognition:<region>:<account>:project/<p>/version/<v>/<n>"
            )
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _secure(cls, value: str | None) -> str | None:
        if value is not None and not (value.startswith("https://") or is_loopback(value)):
            raise ValueError("must be https:// (plain http only for a loopback emulator)")
        return value


class RekognitionClassifier(Classifier[RekognitionSettings]):
    """Classify through Rekognition DetectLabels or DetectCustomLabels, one image per call."""

    adapter = "rekognition"
    vendor: ClassVar[str] = "aws"
    Settings = RekognitionSettings

    def __init__(self, name: str, settings: RekognitionSettings, **kwargs: Any) -> None:
        super().__init__(name, settings, **kwargs)
        self._client = LazyClient(self._build_client)

    @property
    def custom(self) -> bool:
        return self.settings.project_version_arn is not None

    @property
    def region(self) -> str | None:
        if self.settings.region:
            return self.settings.region
        match = _ARN.match(self.settings.project_version_arn or "")
        return match["region"] if match else None

    @property
    def model_id(self) -> str:
        return self.settings.project_version_arn or "rekognition/DetectLabels"

    def service_facts(self) -> ServiceFacts:
        service = "Amazon Rekognition Custom Labels" if self.custom else "Amazon Rekognition (DetectLabels)"
        return ServiceFacts(
            service=service,
            vendor="aws",
            region=self.region,
            data_leaves_machine=not is_loopback(self.settings.endpoint_url),
        )

    def model_facts(self) -> ModelFacts:
        values: dict[str, Any] = {"model_id": self.model_id, "source": "cloudderm config"}
        if not self.custom:
            values.update(
                intended_use=GENERIC_USE,
                label_domain="out-of-domain",
                source="https://docs.aws.amazon.com/rekognition/latest/dg/labels.html",
            )
        elif self.settings.labels:
            values["labels"] = list(self.settings.labels)
        return ModelFacts(**values)

    def image_limits(self) -> ImageLimits:
        return ImageLimits(max_bytes=MAX_CUSTOM_IMAGE_BYTES if self.custom else MAX_IMAGE_BYTES)

    def warm_up(self) -> None:
        self._client.get()

    def _build_client(self) -> Any:
        try:
            import boto3
            from botocore.config import Config
        except ImportError as e:
            raise MissingDependencyError(install_hint("aws", "boto3 for the Rekognition adapter")) from e
        timeout = self.settings.timeout_s or DEFAULT_TIMEOUT_S
        config = Config(
            read_timeout=timeout,
            connect_timeout=min(10.0, timeout),
            retries={"max_attempts": 1, "mode": "standard"},
        )
        # A session of its own: boto3's shared default session caches credentials process-wide
        # and is not safe to build clients from concurrently.
        return boto3.session.Session().client(
            "rekognition",
            region_name=self.region,
            endpoint_url=self.settings.endpoint_url,
            config=config,
        )

    def _infer(self, images: Sequence[PreparedImage]) -> list[RawResult]:
        return [self._detect(image) for image in images]

    def _detect(self, image: PreparedImage) -> RawResult:
        from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError

        client = self._client.get()
        where = {"provider": self.name, "endpoint": self.model_id}
        request = {"Image": {"Bytes": image.data}, "MinConfidence": self.settings.min_confidence}
        try:
            if self.custom:
                response = client.detect_custom_labels(
                    ProjectVersionArn=self.settings.project_version_arn, **request
                )
            else:
                response = client.detect_labels(**request)
        except ClientError as e:
            err = e.response.get("Error", {})
            meta = e.response.get("ResponseMetadata", {})
            code = str(err.get("Code", "Unknown"))
            if code in ("InvalidImageFormatException", "ImageTooLargeException"):
                raise InvalidImageError(
                    image.source, f"Rekognition refused it: {code}: {err.get('Message')}"
                ) from e
            headers = meta.get("HTTPHeaders", {}) or {}
            try:
                after = float(headers.get("retry-after", "")) if headers.get("retry-after") else None
            except ValueError:
                after = None
            raise error_for_code(
                code,
                str(err.get("Message", "")),
                int(meta.get("HTTPStatusCode") or 0),
                arn=self.settings.project_version_arn,
                retry_after=after,
                request_id=meta.get("RequestId"),
                **where,
            ) from e
        except (ConnectTimeoutError, ReadTimeoutError) as e:
            raise ProviderTimeout("no answer in time (timeout_s)", **where) from e
        except BotoCoreError as e:
            raise _sdk_error(e, self.name, where) from e
        try:
            labels, details = decode_response(response, custom=self.custom)
        except MalformedResponse as e:
            raise ResponseFormatError(str(e), **where) from e
        warnings = []
        if not self.custom:
            warnings.append("generic labels: Rekognition DetectLabels names objects and scenes, not lesions")
        request_id = (response.get("ResponseMetadata") or {}).get("RequestId")
        return RawResult(
            labels=labels,
            model=self.model_id,
            request_id=request_id,
            warnings=warnings,
            details=details,
            scores_independent=True,
        )

    def close(self) -> None:
        self._client.close()
