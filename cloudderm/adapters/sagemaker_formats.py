"""SageMaker ``InvokeEndpoint`` wire formats: request encoding and response decoding as pure functions.

Why a module of its own: these are the only parts that depend on *which container* serves the endpoint,
they are where a vendor format can surprise us, and pure functions can be tested directly on real and
documented payloads without boto3 or a network. The adapter (``sagemaker.py``) only adds the call.

What each format sends and expects (sources in ``docs/sagemaker.md``):

- ``jumpstart-verbose``: JumpStart image classification. ``ContentType: application/x-image`` (the only
  content type in the model spec's ``predictor_specs``), ``Accept: application/json;verbose`` ->
  ``{"probabilities": [...], "labels": [...], "predicted_label": ...}``.
- ``jumpstart``: the same container with ``Accept: application/json`` (the spec's default), which "only
  outputs probabilities": ``{"probabilities": [...]}``; class names come from the ``labels`` setting.
- ``builtin``: the built-in Image Classification algorithm. It accepts ``image/jpeg`` and ``image/png``
  and answers the probabilities of all classes as a bare JSON list, or as JSON Lines
  ``{"prediction": [...]}``; class names come from the ``labels`` setting.
- ``huggingface``: the Hugging Face inference toolkit. It decodes ``image/jpeg`` and ``image/png`` (it has
  no ``application/x-image`` decoder) and answers ``[{"label": ..., "score": ...}]``: the pipeline's top 5
  by default, so the list may not cover every class.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from cloudderm.errors import InvalidImageError, ResponseFormatError
from cloudderm.images import PreparedImage

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "PROBABILITY_ONLY_FORMATS",
    "RESPONSE_FORMATS",
    "WIRE_FORMATS",
    "Decoded",
    "ResponseFormat",
    "WireFormat",
    "decode_response",
    "encode_request",
]

MAX_PAYLOAD_BYTES = 6_291_456
"""InvokeEndpoint's request body limit (the service model's ``BodyBlob`` max): 6 MiB."""

ResponseFormat = Literal["jumpstart-verbose", "jumpstart", "builtin", "huggingface"]
RESPONSE_FORMATS: tuple[str, ...] = get_args(ResponseFormat)
PROBABILITY_ONLY_FORMATS = frozenset({"jumpstart", "builtin"})

_SCORE_SLACK = 1e-6
HF_DEFAULT_TOP_K = 5
_NORMALISED_TOLERANCE = 0.02


@dataclass(frozen=True)
class WireFormat:
    """The two headers a format needs; ``content_type=None`` sends the image's own media type."""

    content_type: str | None
    accept: str


WIRE_FORMATS: dict[str, WireFormat] = {
    "jumpstart-verbose": WireFormat("application/x-image", "application/json;verbose"),
    "jumpstart": WireFormat("application/x-image", "application/json"),
    "builtin": WireFormat(None, "application/json"),
    "huggingface": WireFormat(None, "application/json"),
}


@dataclass
class Decoded:
    """One image's answer: (label, score) pairs in the provider's order, plus what the reader should know."""

    labels: list[tuple[str, float]]
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


def encode_request(
    image: PreparedImage,
    response_format: str,
    *,
    endpoint_name: str,
    target_variant: str | None = None,
    inference_component: str | None = None,
) -> dict[str, Any]:
    """The keyword arguments of ``invoke_endpoint`` for one prepared image.

    Raises:
        InvalidImageError: the image exceeds the 6,291,456-byte body limit (it was not prepared with this
            adapter's ``image_limits()``); sending it would only earn a ValidationError.
    """
    if image.size_bytes > MAX_PAYLOAD_BYTES:
        raise InvalidImageError(
            image.source,
            f"{image.size_bytes:,} bytes exceeds the SageMaker InvokeEndpoint limit of "
            f"{MAX_PAYLOAD_BYTES:,} bytes; prepare it with the classifier's image_limits()",
        )
    wire = WIRE_FORMATS[response_format]
    params: dict[str, Any] = {
        "EndpointName": endpoint_name,
        "Body": image.data,
        "ContentType": wire.content_type or image.media_type,
        "Accept": wire.accept,
    }
    if target_variant:
        params["TargetVariant"] = target_variant
    if inference_component:
        params["InferenceComponentName"] = inference_component
    return params


def decode_response(body: bytes, response_format: str, labels: Sequence[str] | None = None) -> Decoded:
    """Decode one InvokeEndpoint body in the declared format.

    Args:
        body: the raw response body.
        response_format: one of ``RESPONSE_FORMATS``.
        labels: class names in index order; required for the probability-only formats, and used by
            ``huggingface`` to tell a top-k list from a full one.

    Raises:
        ResponseFormatError: the body does not match the format (quoting at most 200 characters of it), or
            the probabilities and labels differ in length: pairing them by position would be a silent lie.
    """
    if response_format not in _DECODERS:
        raise ValueError(f"unknown response_format {response_format!r}; expected one of {RESPONSE_FORMATS}")
    if response_format in PROBABILITY_ONLY_FORMATS and not labels:
        raise ValueError(f"response_format {response_format!r} needs the class labels in index order")
    document = _parse_json(body)
    return _DECODERS[response_format](document, body, list(labels) if labels else None)


def _parse_json(body: bytes) -> Any:
    if not body.strip():
        raise ResponseFormatError("the response body is empty", body=body)
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise ResponseFormatError("the response body is not UTF-8 text", body=body) from None
    except json.JSONDecodeError as e:
        raise ResponseFormatError(
            f"the response body is not JSON ({e.msg} at char {e.pos})", body=body
        ) from None


def _probabilities(value: Any, body: bytes, where: str) -> list[float]:
    """A non-empty list of finite numbers in 0..1 (a list of logits is a different format, not a result)."""
    if not isinstance(value, list) or not value:
        raise ResponseFormatError(f"{where} must be a non-empty JSON list of probabilities", body=body)
    out: list[float] = []
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise ResponseFormatError(f"{where}[{i}] is not a number", body=body)
        number = float(item)
        if not math.isfinite(number) or not -_SCORE_SLACK <= number <= 1.0 + _SCORE_SLACK:
            raise ResponseFormatError(f"{where}[{i}] = {number!r} is not a probability in 0..1", body=body)
        out.append(number)
    return out


def _label_names(value: Any, body: bytes, where: str) -> list[str]:
    if not isinstance(value, list) or not value:
        raise ResponseFormatError(f"{where} must be a non-empty JSON list of label names", body=body)
    if any(isinstance(v, bool) or not isinstance(v, (str, int)) for v in value):
        raise ResponseFormatError(f"{where} must hold label names (strings)", body=body)
    return [str(v) for v in value]


def _pair(
    probabilities: list[float], names: list[str], body: bytes, names_from: str
) -> list[tuple[str, float]]:
    if len(probabilities) != len(names):
        raise ResponseFormatError(
            f"{len(probabilities)} probabilities but {len(names)} labels ({names_from}); "
            "refusing to pair them by position",
            body=body,
        )
    _check_unique(names, body)
    return list(zip(names, probabilities))


def _check_unique(names: list[str], body: bytes) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ResponseFormatError(f"label {name!r} appears twice; scores would be ambiguous", body=body)
        seen.add(name)


def _decode_jumpstart_verbose(document: Any, body: bytes, labels: list[str] | None) -> Decoded:
    if not isinstance(document, dict) or "probabilities" not in document or "labels" not in document:
        raise ResponseFormatError(
            "expected a JSON object with 'probabilities' and 'labels' "
            "(JumpStart, Accept: application/json;verbose)",
            body=body,
        )
    probabilities = _probabilities(document["probabilities"], body, "probabilities")
    names = _label_names(document["labels"], body, "labels")
    details: dict[str, Any] = {}
    if "predicted_label" in document:
        details["predicted_label"] = str(document["predicted_label"])
    return Decoded(_pair(probabilities, names, body, "labels from the response"), details=details)


def _decode_jumpstart(document: Any, body: bytes, labels: list[str] | None) -> Decoded:
    if not isinstance(document, dict) or "probabilities" not in document:
        raise ResponseFormatError(
            "expected a JSON object with 'probabilities' (JumpStart, Accept: application/json)", body=body
        )
    probabilities = _probabilities(document["probabilities"], body, "probabilities")
    return Decoded(_pair(probabilities, labels or [], body, "labels from the config"))


def _decode_builtin(document: Any, body: bytes, labels: list[str] | None) -> Decoded:
    if isinstance(document, dict) and "prediction" in document:
        probabilities = _probabilities(document["prediction"], body, "prediction")
    elif isinstance(document, list):
        probabilities = _probabilities(document, body, "the response")
    else:
        raise ResponseFormatError(
            'expected a JSON list of probabilities or {"prediction": [...]} '
            "(built-in Image Classification algorithm)",
            body=body,
        )
    return Decoded(_pair(probabilities, labels or [], body, "labels from the config"))


def _decode_huggingface(document: Any, body: bytes, labels: list[str] | None) -> Decoded:
    if not isinstance(document, list) or not document:
        raise ResponseFormatError(
            'expected a non-empty JSON list of {"label", "score"} objects (Hugging Face inference toolkit)',
            body=body,
        )
    names: list[str] = []
    scores: list[float] = []
    for i, item in enumerate(document):
        if not isinstance(item, dict) or not isinstance(item.get("label"), str) or "score" not in item:
            raise ResponseFormatError(
                f'item {i} is not a {{"label": str, "score": number}} object', body=body
            )
        names.append(item["label"])
        scores.append(item["score"])
    pairs = _pair(_probabilities(scores, body, "score"), names, body, "labels from the response")
    decoded = Decoded(pairs)
    total = math.fsum(scores)
    truncated = len(pairs) < len(labels) if labels is not None else total < 1.0 - _NORMALISED_TOLERANCE
    if truncated:
        decoded.details["truncated_labels"] = True
        decoded.warnings.append(
            f"only {len(pairs)} labels returned (scores sum to {total:.3f}): the Hugging Face pipeline "
            f"answers its top {HF_DEFAULT_TOP_K} classes by default, so the other classes are not shown"
        )
    return decoded


_DECODERS: dict[str, Callable[[Any, bytes, list[str] | None], Decoded]] = {
    "jumpstart-verbose": _decode_jumpstart_verbose,
    "jumpstart": _decode_jumpstart,
    "builtin": _decode_builtin,
    "huggingface": _decode_huggingface,
}
