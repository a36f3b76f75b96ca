"""Azure ML online endpoint wire format: request encoding, response decoding and status -> error mapping.

Pure functions with no SDK import, so they are tested directly on documented and recorded payloads.

Sources (checked 2025):
- Request/response of AutoML-for-images MLflow models, Microsoft Learn "reference-automl-images-schema",
  section "Data schema for online scoring": ``{"input_data": {"columns": ["image"], "data": [<base64>]}}``
  in, ``[{"probs": [...], "labels": [...]}]`` out, one item per image.
- List-shaped ``input_data`` of MLflow no-code deployments, Microsoft Learn "how-to-deploy-mlflow-models"
  ("Tensor input": ``{"input_data": [...]}``), used by the ``transformers`` response format.
- Status codes, Microsoft Learn "how-to-troubleshoot-online-endpoints" ("HTTP status codes"): 401, 404,
  408 (``request_timeout_ms``), 413 (payload above 1.5 MB), 424 (the model container answered non-200;
  see ``ms-azureml-model-error-statuscode`` / ``ms-azureml-model-error-reason``), 429, 500.
- Request ids, azureml-inference-server-http changelog 0.7.1: ``x-ms-request-id`` is deprecated in favour
  of ``x-request-id``; both are answered while the old one exists.
"""

from __future__ import annotations

import binascii
import email.utils
import functools
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import SecretStr

from cloudderm.errors import (
    BODY_EXCERPT_CHARS,
    ProviderAuthError,
    ProviderError,
    ProviderHTTPError,
    ProviderThrottled,
    ProviderTimeout,
    ResponseFormatError,
)
from cloudderm.redact import mask_values

# Base64 of the image bytes is most of what building a request costs: binascii does ~1 byte per ns
# (10 us for a 11 KB thumbnail, 1.1 ms for a 1 MB photo); pybase64 (installed by the ``azure`` extra) gives
# the same bytes with SIMD, ~20x faster. binascii when it is missing, so the adapter still works without it.
_b64encode: Callable[[bytes], bytes]
try:
    from pybase64 import b64encode as _b64encode
except ImportError:  # pragma: no cover - the azure extra installs pybase64
    _b64encode = functools.partial(binascii.b2a_base64, newline=False)

__all__ = [
    "MAX_REQUEST_BYTES",
    "TRANSIENT_STATUSES",
    "ResponseFormat",
    "decode_response",
    "encode_request",
    "endpoint_from_uri",
    "error_for_status",
    "is_transient",
    "region_from_uri",
    "request_id_from",
    "retry_after_from",
    "split_requests",
    "truncation_warning",
]

ResponseFormat = Literal["automl", "transformers"]

MAX_REQUEST_BYTES = 1_500_000
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MODEL_STATUS_HEADER = "ms-azureml-model-error-statuscode"
MODEL_REASON_HEADER = "ms-azureml-model-error-reason"
REQUEST_ID_HEADERS = ("x-request-id", "x-ms-request-id")
DEPLOYMENT_HEADER = "azureml-model-deployment"
PIPELINE_DEFAULT_TOP_K = 5
TRUNCATION_TOLERANCE = 0.02

_HOST = re.compile(r"^(?P<endpoint>[a-z0-9-]+)\.(?P<region>[a-z0-9]+)\.inference\.ml\.azure\.com$", re.I)
# What goes before and after the list of base64 images in a request body, per response format.
_ENVELOPES: dict[str, tuple[bytes, bytes]] = {
    "automl": (b'{"input_data": {"columns": ["image"], "data": ', b"}}"),
    "transformers": (b'{"input_data": ', b"}"),
}
# The exact types of a well-formed answer's labels and probs, as json.loads gives them (_probs_labels).
_STR = frozenset({str})
_FLOAT = frozenset({float})
_AUTOML_ENVELOPE = len(b'{"input_data": {"columns": ["image"], "data": []}}')
_TRANSFORMERS_ENVELOPE = len(b'{"input_data": []}')


# ---- request -------------------------------------------------------------------------------------
def encode_request(images: Sequence[bytes], response_format: ResponseFormat) -> bytes:
    """The JSON body that scores ``images`` (raw encoded image bytes), in order.

    The bytes are exactly ``json.dumps(payload).encode()``, assembled directly: base64 text needs no JSON
    escaping, so there is no reason to decode it to ``str``, scan it again and re-encode it per call. The
    envelope and the base64 text are joined once, so the body (hundreds of KB for a batch) is copied once.
    """
    head, tail = _ENVELOPES[response_format]
    if not images:
        return head + b"[]" + tail
    data = b'", "'.join([_b64encode(image) for image in images])
    return b"".join((head, b'["', data, b'"]', tail))


def encoded_size(image_bytes: int) -> int:
    """Bytes one image adds to a request body: its base64 text, quotes and a separator."""
    return 4 * math.ceil(image_bytes / 3) + 4


def split_requests(
    sizes: Sequence[int],
    *,
    batch_size: int,
    response_format: ResponseFormat,
    max_request_bytes: int = MAX_REQUEST_BYTES,
) -> list[range]:
    """Group consecutive images (by encoded size in bytes) into requests of at most ``batch_size`` images
    whose bodies stay under ``max_request_bytes``; an image too big on its own gets a request to itself."""
    envelope = _TRANSFORMERS_ENVELOPE if response_format == "transformers" else _AUTOML_ENVELOPE
    groups: list[range] = []
    start, used = 0, envelope
    for index, size in enumerate(sizes):
        cost = encoded_size(size)
        full = index - start >= batch_size or (index > start and used + cost > max_request_bytes)
        if full:
            groups.append(range(start, index))
            start, used = index, envelope
        used += cost
    if start < len(sizes):
        groups.append(range(start, len(sizes)))
    return groups


# ---- response ------------------------------------------------------------------------------------
def decode_response(
    body: bytes | str, expected: int, response_format: ResponseFormat
) -> list[list[tuple[str, float]]]:
    """Per image, in request order, the (label, score) pairs the endpoint returned.

    Raises:
        ResponseFormatError: the body is not JSON, not the declared shape, or holds a different number of
            results than images sent (quoting the start of the body).
    """
    parsed = _parse_json(body)
    if response_format == "transformers":
        items = _transformers_items(parsed, expected, body)
        return [_label_score_list(item, i, body) for i, item in enumerate(items)]
    if not isinstance(parsed, list):
        raise ResponseFormatError("expected a JSON list with one {probs, labels} item per image", body=body)
    _check_count(len(parsed), expected, body)
    return [_probs_labels(item, i, body) for i, item in enumerate(parsed)]


def _parse_json(body: bytes | str) -> Any:
    """JSON, unwrapping one level of double encoding (custom score scripts often return ``json.dumps``)."""
    try:
        parsed = json.loads(body)
        if isinstance(parsed, str):
            parsed = json.loads(parsed)
    except (ValueError, UnicodeDecodeError):
        raise ResponseFormatError("the endpoint's answer is not JSON", body=body) from None
    return parsed


def _check_count(got: int, expected: int, body: bytes | str) -> None:
    if got != expected:
        raise ResponseFormatError(f"{got} results for {expected} images", body=body)


def _transformers_items(parsed: Any, expected: int, body: bytes | str) -> list[Any]:
    if not isinstance(parsed, list):
        raise ResponseFormatError("expected a JSON list of [{label, score}, ...] per image", body=body)
    if expected == 1 and parsed and all(isinstance(item, dict) for item in parsed):
        return [parsed]
    _check_count(len(parsed), expected, body)
    return parsed


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _probs_labels(item: Any, index: int, body: bytes | str) -> list[tuple[str, float]]:
    if not isinstance(item, dict) or "probs" not in item or "labels" not in item:
        raise ResponseFormatError(f"result {index} lacks 'probs' and 'labels'", body=body)
    probs, labels = item["probs"], item["labels"]
    if not isinstance(probs, list) or not isinstance(labels, list) or not probs or len(probs) != len(labels):
        raise ResponseFormatError(
            f"result {index}: 'probs' and 'labels' must be equal, non-empty lists", body=body
        )
    # What json.loads gives for a well-formed answer (every label a str, every prob a finite float) is
    # checked with C-level loops (set of the exact types, isfinite mapped over the probs) rather than a
    # Python call per value; anything else (ints, bools, subclasses, NaN) takes the loop below, which accepts
    # and rejects exactly what it always did.
    if set(map(type, labels)) == _STR and set(map(type, probs)) == _FLOAT and all(map(math.isfinite, probs)):
        return list(zip(labels, probs))
    pairs = []
    for label, prob in zip(labels, probs):
        score = _number(prob)
        if not isinstance(label, str) or score is None:
            raise ResponseFormatError(
                f"result {index}: labels must be text and probs finite numbers", body=body
            )
        pairs.append((label, score))
    return pairs


def _label_score_list(item: Any, index: int, body: bytes | str) -> list[tuple[str, float]]:
    if not isinstance(item, list) or not item:
        raise ResponseFormatError(f"result {index} is not a non-empty list of {{label, score}}", body=body)
    pairs = []
    for entry in item:
        score = _number(entry.get("score")) if isinstance(entry, dict) else None
        label = entry.get("label") if isinstance(entry, dict) else None
        if not isinstance(label, str) or score is None:
            raise ResponseFormatError(
                f"result {index}: each entry needs a text 'label' and a numeric 'score'", body=body
            )
        pairs.append((label, score))
    return pairs


def truncation_warning(pairs: Sequence[tuple[str, float]]) -> str | None:
    """Why a ``transformers`` answer does not sum to 1, or None when it is a whole distribution.

    A transformers image-classification pipeline answers only its ``top_k`` (5 by default) classes, so a
    7-class model's scores sum to less than 1; that is truncation, not a model that fails to normalise.
    """
    total = math.fsum(score for _, score in pairs)
    if total >= 1.0 - TRUNCATION_TOLERANCE:
        return None
    return (
        f"only {len(pairs)} labels returned (scores sum to {total:.3f}): a transformers pipeline answers "
        f"its top {PIPELINE_DEFAULT_TOP_K} classes by default, so the other classes are not shown"
    )


# ---- headers and URIs ----------------------------------------------------------------------------
def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in headers.items()}


def request_id_from(headers: Mapping[str, str], *, lowered: bool = False) -> str | None:
    """The endpoint's request id (``x-request-id``, or the deprecated ``x-ms-request-id``).

    ``lowered=True`` says looking a lower-case name up finds the header: the names are already lower-case,
    or the mapping is case-insensitive (azure-core's response headers, which the adapter passes as they are).
    """
    lowered_headers = headers if lowered else _lower(headers)
    for name in REQUEST_ID_HEADERS:  # one lookup per name (a case-insensitive mapping's get is Python code)
        value = lowered_headers.get(name)
        if value:
            return value
    return None


def retry_after_from(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait: ``Retry-After`` (seconds or HTTP date) or ``*retry-after-ms``."""
    lowered = _lower(headers)
    value = lowered.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None
            return max(0.0, when.timestamp() - (time.time() if now is None else now))
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        if lowered.get(name):
            try:
                return max(0.0, float(lowered[name]) / 1000.0)
            except ValueError:
                return None
    return None


def is_transient(status: int, headers: Mapping[str, str]) -> bool:
    """Whether sending the same scoring request again may succeed.

    A 424 is the model container's own failure: transient only when the container's status (in
    ``ms-azureml-model-error-statuscode``) is itself transient, e.g. it was overloaded, not when the
    model rejected the input.
    """
    if status == 424:
        code = _lower(headers).get(MODEL_STATUS_HEADER, "")
        return code.isdigit() and int(code) in TRANSIENT_STATUSES
    return status in TRANSIENT_STATUSES


def region_from_uri(uri: str) -> str | None:
    """``uksouth`` from ``https://derm.uksouth.inference.ml.azure.com/score``; None for other hosts."""
    match = _HOST.match(urlparse(uri).hostname or "")
    return match.group("region").lower() if match else None


def endpoint_from_uri(uri: str) -> str | None:
    """``derm`` from ``https://derm.uksouth.inference.ml.azure.com/score``; None for other hosts."""
    match = _HOST.match(urlparse(uri).hostname or "")
    return match.group("endpoint") if match else None


# ---- errors --------------------------------------------------------------------------------------
_AUTH_HINTS = {
    (401, "key"): "the key was rejected: use the endpoint's current primary or secondary key "
    "(az ml online-endpoint get-credentials) and check the endpoint's auth_mode is 'key'",
    (
        401,
        "entra",
    ): "the Entra token was rejected: the endpoint's auth_mode must be 'aad_token' and the token "
    "audience https://ml.azure.com (check which identity DefaultAzureCredential picked)",
    (403, "key"): "forbidden: this key may not score this endpoint (check the scoring URI and the endpoint's "
    "network access settings)",
    (403, "entra"): "forbidden: the identity needs a role allowing "
    "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/score/action on the endpoint "
    "(e.g. AzureML Data Scientist)",
}


def error_for_status(
    status: int,
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    auth: str,
    provider: str | None,
    endpoint: str | None,
    attempts: int = 1,
    secrets: Iterable[SecretStr] = (),
) -> ProviderError:
    """The cloudderm error for a non-200 scoring answer, named, hinted and scrubbed of secrets.

    Every error is final (``retryable=False``): the adapter's azure-core retry policy already spent the
    configured retries on transient statuses, so the runner must not retry again (see docs/azureml.md).
    """
    lowered = _lower(headers)
    where = {"provider": provider, "endpoint": endpoint, "request_id": request_id_from(lowered, lowered=True)}
    after = f" (after {attempts} attempts)" if attempts > 1 else ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    excerpt = mask_values(text, secrets)[:BODY_EXCERPT_CHARS].strip()
    said = f"; the endpoint said: {excerpt!r}" if excerpt and status not in (401, 403) else ""
    if (status, auth) in _AUTH_HINTS:
        return ProviderAuthError(_AUTH_HINTS[(status, auth)] + after, status=status, retryable=False, **where)
    if status == 408:
        return ProviderTimeout(
            "HTTP 408: the model took longer than the deployment's request_settings.request_timeout_ms"
            + after,
            retryable=False,
            **where,
        )
    if status == 429:
        return ProviderThrottled(
            "HTTP 429: too many requests (endpoint rate limit, or more than 2 x max_concurrent_requests_per_"
            "instance x instance_count pending); lower concurrency or add instances" + after + said,
            retryable=False,
            retry_after=retry_after_from(lowered),
            **where,
        )
    if status == 424:
        code = lowered.get(MODEL_STATUS_HEADER, "unknown")
        reason = lowered.get(MODEL_REASON_HEADER, "unknown")
        message = f"model error: the model container answered {code} (reason {reason}){after}{said}"
        return ProviderHTTPError(message, status=status, retryable=False, **where)
    meanings = {
        404: "not found: no deployment with positive traffic, or a wrong scoring URI / deployment name",
        413: f"payload too large: requests must stay under {MAX_REQUEST_BYTES:,} bytes",
    }
    meaning = meanings.get(status, "server error" if status >= 500 else "request refused")
    return ProviderHTTPError(meaning + after + said, status=status, retryable=False, **where)
