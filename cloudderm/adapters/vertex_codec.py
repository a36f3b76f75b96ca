"""Vertex AI online prediction wire format: request sizing and response decoding, as pure functions.

Kept apart from the adapter so the shapes can be tested on real and documented payloads without a client,
and so the byte budget that decides batching is computed in one place. Nothing here imports a Google SDK.

Request (``POST .../endpoints/{id}:predict``; the REST transport serialises it with 2-space indentation)::

    {"instances": [{"content": "<base64>"}], "parameters": {"confidenceThreshold": 0.0, "maxPredictions": K}}

AutoML image classification answer, one item per instance, in order (labels below ``confidenceThreshold``
or beyond ``maxPredictions`` are left out by the service)::

    {"predictions": [{"ids": [...], "displayNames": [...], "confidences": [...]}],
     "deployedModelId": "...", "model": "projects/.../models/...", "modelVersionId": "1", ...}
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cloudderm.classifier import RawResult

__all__ = [
    "DecodeSpec",
    "MalformedResponse",
    "RequestBudget",
    "decode_response",
    "encode_instance",
    "response_to_payload",
    "to_plain",
]

# json.dumps and protobuf's MessageToJson differ slightly (e.g. ``7`` vs ``7.0``); this covers the envelope.
ENVELOPE_SLACK_BYTES = 64
SUM_TOLERANCE = 0.02
RESPONSE_METADATA = (
    ("deployedModelId", "deployed_model_id"),
    ("model", "model"),
    ("modelVersionId", "model_version_id"),
    ("modelDisplayName", "model_display_name"),
)


class MalformedResponse(ValueError):
    """The answer does not have the declared shape (the adapter turns this into ResponseFormatError)."""


class ImageTooLarge(ValueError):
    """One image cannot fit a request on its own."""

    def __init__(self, index: int, request_bytes: int) -> None:
        self.index = index
        self.request_bytes = request_bytes
        super().__init__(f"image {index} needs a {request_bytes:,}-byte request")


# ---- request ------------------------------------------------------------------------------------------
def encode_instance(data: bytes, key: str = "content", b64_object: bool = False) -> dict[str, Any]:
    """One instance: ``{key: "<base64>"}``, or ``{key: {"b64": "<base64>"}}`` (TF Serving convention)."""
    text = base64.b64encode(data).decode("ascii")
    return {key: {"b64": text} if b64_object else text}


def base64_length(n_bytes: int) -> int:
    """Characters of standard padded base64 for ``n_bytes`` bytes."""
    return 4 * ((n_bytes + 2) // 3)


def _json_bytes(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


@dataclass(frozen=True)
class RequestBudget:
    """How many bytes a request of given images takes, and how to pack images under the limit.

    The estimate never undercounts: it is the indented JSON the REST transport sends, with the base64
    length computed exactly and a small slack for number formatting.
    """

    limit: int
    envelope: int
    per_instance: int
    max_instances: int

    @classmethod
    def build(
        cls,
        *,
        limit: int,
        parameters: Mapping[str, Any] | None,
        instance_key: str,
        b64_object: bool,
        max_instances: int,
    ) -> RequestBudget:
        body: dict[str, Any] = {"instances": []}
        if parameters is not None:
            body["parameters"] = dict(parameters)
        envelope = len(_json_bytes(body).encode()) + ENVELOPE_SLACK_BYTES
        template = _json_bytes(encode_instance(b"", instance_key, b64_object))
        # Each line of an instance is indented 4 more spaces inside "instances": [...], plus ",\n" after it.
        per_instance = len(template.encode()) + 4 * (template.count("\n") + 1) + 2
        return cls(limit=limit, envelope=envelope, per_instance=per_instance, max_instances=max_instances)

    def instance_bytes(self, image_bytes: int) -> int:
        return base64_length(image_bytes) + self.per_instance

    def request_bytes(self, image_sizes: Sequence[int]) -> int:
        """Upper bound of the JSON body for one request carrying images of these sizes."""
        return self.envelope + sum(self.instance_bytes(n) for n in image_sizes)

    def max_image_bytes(self) -> int:
        """The largest image (encoded bytes) that fits a request alone."""
        room = self.limit - self.envelope - self.per_instance
        return max(0, (room // 4) * 3)

    def pack(self, image_sizes: Sequence[int]) -> list[list[int]]:
        """Indices of images grouped into requests, in order, each under the limit and instance cap.

        Raises:
            ImageTooLarge: an image that would exceed the limit even alone.
        """
        groups: list[list[int]] = []
        current: list[int] = []
        used = self.envelope
        for index, size in enumerate(image_sizes):
            cost = self.instance_bytes(size)
            if self.envelope + cost > self.limit:
                raise ImageTooLarge(index, self.envelope + cost)
            if current and (used + cost > self.limit or len(current) >= self.max_instances):
                groups.append(current)
                current, used = [], self.envelope
            current.append(index)
            used += cost
        if current:
            groups.append(current)
        return groups


# ---- response -----------------------------------------------------------------------------------------
def to_plain(value: Any) -> Any:
    """Proto-plus maps and repeated fields (``MapComposite``, ``RepeatedComposite``) -> dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in dict(value).items()}
    if isinstance(value, (str, bytes)):
        return value
    if isinstance(value, Sequence):
        return [to_plain(v) for v in value]
    return value


def response_to_payload(response: Any) -> dict[str, Any]:
    """A ``PredictResponse`` as the JSON dict the service sent (camelCase keys, empty fields omitted).

    A proto-plus message is converted by protobuf's own ``MessageToDict`` in one pass over the raw message,
    about 2.5x cheaper than walking proto-plus wrappers value by value (which costs a visible share of a
    loopback call); anything else (a plain mapping-like stand-in) is walked with ``to_plain``.
    """
    pb = _raw_message(response)
    if pb is not None:
        from google.protobuf.json_format import MessageToDict

        converted = MessageToDict(pb)
        predictions = converted.get("predictions", [])
    else:
        predictions = [to_plain(p) for p in response.predictions]
    payload: dict[str, Any] = {"predictions": predictions}
    for key, attr in RESPONSE_METADATA:
        value = getattr(response, attr, "")
        if value:
            payload[key] = str(value)
    return payload


def _raw_message(response: Any) -> Any:
    """The underlying protobuf message of a proto-plus message, or None."""
    to_pb = getattr(type(response), "pb", None)
    if to_pb is None:
        return None
    try:
        return to_pb(response)
    except TypeError:
        return None


@dataclass(frozen=True)
class DecodeSpec:
    """What the adapter knows about the answer's shape and about the model's label set."""

    response_format: str = "automl"
    labels: tuple[str, ...] | None = None
    labels_field: str | None = "displayNames"
    scores_field: str = "confidences"
    multi_label: bool = False
    confidence_threshold: float = 0.0
    max_predictions: int | None = None


def decode_response(payload: Any, n_instances: int, spec: DecodeSpec) -> list[RawResult]:
    """One RawResult per instance, in order, from a predict answer (a plain JSON dict).

    Raises:
        MalformedResponse: the answer lacks ``predictions``, has the wrong count, or an item has the wrong
            shape for ``spec.response_format``.
    """
    if not isinstance(payload, Mapping):
        raise MalformedResponse(f"expected a JSON object, got {type(payload).__name__}")
    predictions = payload.get("predictions")
    if not isinstance(predictions, list):
        raise MalformedResponse("no 'predictions' list in the answer")
    if len(predictions) != n_instances:
        raise MalformedResponse(f"{len(predictions)} predictions for {n_instances} instances")
    meta = {key: str(payload[key]) for key, _ in RESPONSE_METADATA if payload.get(key)}
    model = meta.get("model")
    if model and meta.get("modelVersionId"):
        model = f"{model}@{meta['modelVersionId']}"
    results = []
    for index, item in enumerate(predictions):
        labels = _decode_prediction(item, spec, index)
        warnings, truncated = _completeness(labels, spec)
        details: dict[str, Any] = dict(meta)
        if truncated:
            details["truncated_labels"] = True
        results.append(
            RawResult(
                labels=labels,
                model=model,
                warnings=warnings,
                details=details,
                scores_independent=spec.multi_label,
            )
        )
    return results


def _decode_prediction(item: Any, spec: DecodeSpec, index: int) -> list[tuple[str, float]]:
    where = f"prediction {index}"
    if spec.response_format == "automl":
        if not isinstance(item, Mapping):
            raise MalformedResponse(f"{where}: expected an object with displayNames and confidences")
        for key in ("displayNames", "confidences"):
            if key not in item:
                raise MalformedResponse(f"{where}: missing {key!r} (keys: {sorted(item)})")
        return _pair(item["displayNames"], item["confidences"], where)
    if isinstance(item, Mapping):
        if spec.scores_field not in item:
            raise MalformedResponse(f"{where}: missing {spec.scores_field!r} (keys: {sorted(item)})")
        if spec.labels_field and spec.labels_field in item:
            return _pair(item[spec.labels_field], item[spec.scores_field], where)
        if spec.labels is None:
            raise MalformedResponse(f"{where}: missing {spec.labels_field!r} and no labels are configured")
        return _pair(list(spec.labels), item[spec.scores_field], where)
    if isinstance(item, list) and spec.labels is not None:
        return _pair(list(spec.labels), item, where)
    raise MalformedResponse(
        f"{where}: expected an object with {spec.scores_field!r} or, with labels configured, a list of scores"
    )


def _pair(names: Any, scores: Any, where: str) -> list[tuple[str, float]]:
    if not isinstance(names, list) or not isinstance(scores, list):
        raise MalformedResponse(f"{where}: labels and scores must be lists")
    if len(names) != len(scores):
        raise MalformedResponse(f"{where}: {len(names)} labels but {len(scores)} scores")
    pairs = []
    for name, score in zip(names, scores):
        if not isinstance(name, str) or not name:
            raise MalformedResponse(f"{where}: label {name!r} is not a non-empty string")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise MalformedResponse(f"{where}: score {score!r} for {name!r} is not a finite number")
        pairs.append((name, float(score)))
    return pairs


def _completeness(labels: list[tuple[str, float]], spec: DecodeSpec) -> tuple[list[str], bool]:
    """Warnings when the service left labels out, and whether it did (so sums below 1 are expected)."""
    if spec.response_format == "automl":
        cut_by = f"confidenceThreshold {spec.confidence_threshold:g}"
        if spec.max_predictions is not None:
            cut_by += f" or beyond maxPredictions {spec.max_predictions}"
    else:
        cut_by = "the model's own cut-off"
    if not labels:
        return [f"no label returned: every score fell below {cut_by}"], True
    if spec.labels is not None:
        if len(labels) >= len(spec.labels):
            return [], False
        return [
            f"partial distribution: Vertex AI returned {len(labels)} of the model's "
            f"{len(spec.labels)} labels (the rest fall below {cut_by})"
        ], True
    total = sum(score for _, score in labels)
    if spec.multi_label or total >= 1.0 - SUM_TOLERANCE:
        return [], False
    return [
        f"partial distribution: the {len(labels)} labels returned sum to {total:.3f}; "
        f"the rest fall below {cut_by}"
    ], True
