"""Open Inference Protocol (KServe v2) wire format for image classification, as pure functions.

Shared by the ``kserve`` adapter and the KServe emulator, so both sides agree on one reading of the spec
(kserve/open-inference-protocol, ``specification/protocol/inference_rest.md``)::

    POST /v2/models/{name}[/versions/{version}]/infer
    {"id": "...", "inputs": [{"name": "input0", "shape": [1, 224, 224, 3], "datatype": "UINT8",
                              "data": [...row-major...]}],
     "outputs": [{"name": "output0"}]}

    {"model_name": "...", "model_version": "1", "id": "...",
     "outputs": [{"name": "output0", "shape": [1, 7], "datatype": "FP32", "data": [...]}]}

    errors: {"error": "<message>"} with a 4xx/5xx status

The image travels either as a tensor the model's own preprocessing expects (``TensorSpec``: UINT8 pixels,
or FP32 ``(pixel * scale - mean) / std``, in NHWC or NCHW at ``size``), or as one BYTES element holding
the encoded file, base64 in JSON (the convention of KServe's image-model examples).
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "MalformedResponse",
    "TensorSpec",
    "decode_error",
    "decode_response",
    "encode_bytes_request",
    "encode_tensor_request",
    "image_tensor",
    "infer_path",
    "parse_request",
]

NUMERIC = {"FP32", "FP64", "FP16", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}


class MalformedResponse(ValueError):
    """The answer is not an inference response of the declared shape; the message says why."""


class TensorSpec(BaseModel):
    """How the model wants its image tensor: name, type, layout, size and normalisation."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    datatype: Literal["UINT8", "FP32"] = "FP32"
    layout: Literal["NHWC", "NCHW"] = "NCHW"
    size: tuple[int, int] = (224, 224)
    scale: float = Field(default=1.0 / 255.0, gt=0)
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)

    @model_validator(mode="after")
    def _check(self) -> TensorSpec:
        if min(self.size) < 1:
            raise ValueError("size must be [height, width] in pixels")
        if any(s <= 0 for s in self.std):
            raise ValueError("std values must be positive")
        if self.datatype == "UINT8" and (
            "scale" in self.model_fields_set
            or "mean" in self.model_fields_set
            or "std" in self.model_fields_set
        ):
            raise ValueError("UINT8 sends raw 0-255 pixels: scale, mean and std apply only to FP32")
        return self

    def shape(self, batch: int) -> list[int]:
        h, w = self.size
        return [batch, h, w, 3] if self.layout == "NHWC" else [batch, 3, h, w]


def infer_path(model_name: str, model_version: str | None = None) -> str:
    """``/v2/models/{name}[/versions/{v}]/infer``."""
    path = f"/v2/models/{model_name}"
    if model_version:
        path += f"/versions/{model_version}"
    return path + "/infer"


def image_tensor(data: bytes, spec: TensorSpec) -> np.ndarray:
    """One encoded image as the model's input tensor (without the batch axis), per ``spec``."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        rgb = img.convert("RGB").resize((spec.size[1], spec.size[0]), Image.Resampling.BILINEAR)
        pixels = np.asarray(rgb, dtype=np.uint8)  # H, W, C
    if spec.datatype == "UINT8":
        array = pixels
    else:
        array = (pixels.astype(np.float32) * np.float32(spec.scale) - np.asarray(spec.mean, np.float32)) / (
            np.asarray(spec.std, np.float32)
        )
    return array if spec.layout == "NHWC" else np.transpose(array, (2, 0, 1))


def encode_tensor_request(
    images: Sequence[bytes], spec: TensorSpec, *, output: str | None = None, request_id: str | None = None
) -> dict[str, Any]:
    """An infer request carrying a batch of images as one tensor."""
    batch = np.stack([image_tensor(data, spec) for data in images])
    values = batch.reshape(-1)
    data = values.tolist() if spec.datatype == "UINT8" else [float(v) for v in values]
    body: dict[str, Any] = {
        "inputs": [
            {"name": spec.name, "shape": spec.shape(len(images)), "datatype": spec.datatype, "data": data}
        ]
    }
    return _finish_request(body, output, request_id)


def encode_bytes_request(
    images: Sequence[bytes], input_name: str, *, output: str | None = None, request_id: str | None = None
) -> dict[str, Any]:
    """An infer request carrying each encoded image as a base64 BYTES element."""
    data = [base64.b64encode(image).decode("ascii") for image in images]
    body = {"inputs": [{"name": input_name, "shape": [len(images)], "datatype": "BYTES", "data": data}]}
    return _finish_request(body, output, request_id)


def _finish_request(body: dict[str, Any], output: str | None, request_id: str | None) -> dict[str, Any]:
    if request_id:
        body = {"id": request_id, **body}
    if output:
        body["outputs"] = [{"name": output}]
    return body


def _parse_json(body: bytes | str | Any) -> Any:
    if not isinstance(body, (bytes, str)):
        return body
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        return json.loads(text)
    except ValueError as e:
        raise MalformedResponse(f"not valid JSON: {e}") from None


def decode_response(
    body: bytes | str | Mapping[str, Any], n_images: int, labels: Sequence[str], *, output: str | None = None
) -> tuple[list[list[tuple[str, float]]], dict[str, Any]]:
    """Per image, ``(label, score)`` pairs from the chosen output tensor; and the response metadata.

    The tensor's shape must be ``[n_images, len(labels)]`` (or ``[len(labels)]`` for one image).

    Raises:
        MalformedResponse: invalid JSON (the spec's own sample lacks a comma), no outputs, no output of
            that name, a non-numeric tensor, or a shape that does not match the labels.
    """
    payload = _parse_json(body)
    if (
        not isinstance(payload, Mapping)
        or not isinstance(payload.get("outputs"), list)
        or not payload["outputs"]
    ):
        raise MalformedResponse("expected an object with a non-empty 'outputs' list")
    tensors = [t for t in payload["outputs"] if isinstance(t, Mapping)]
    tensor = next((t for t in tensors if t.get("name") == output), None) if output else (tensors or [None])[0]
    if tensor is None:
        names = ", ".join(str(t.get("name")) for t in tensors)
        raise MalformedResponse(f"no output tensor named {output!r} (outputs: {names})")
    name = tensor.get("name")
    if tensor.get("datatype") not in NUMERIC:
        raise MalformedResponse(
            f"output {name!r} has datatype {tensor.get('datatype')!r}, not a numeric type"
        )
    shape, data = tensor.get("shape"), tensor.get("data")
    if (
        not isinstance(shape, list)
        or not all(isinstance(d, int) for d in shape)
        or not isinstance(data, list)
    ):
        raise MalformedResponse(f"output {name!r} needs an integer 'shape' list and a 'data' list")
    flat = _flatten(data)
    if math.prod(shape) != len(flat):
        raise MalformedResponse(
            f"output {name!r}: shape {shape} holds {math.prod(shape)} values, data has {len(flat)}"
        )
    expected = [[n_images, len(labels)], [len(labels)]] if n_images == 1 else [[n_images, len(labels)]]
    if shape not in expected:
        raise MalformedResponse(
            f"output {name!r} has shape {shape}; expected {expected[0]} "
            f"({n_images} image(s) x {len(labels)} labels)"
        )
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in flat):
        raise MalformedResponse(f"output {name!r} holds a value that is not a finite number")
    rows = [flat[i * len(labels) : (i + 1) * len(labels)] for i in range(n_images)]
    meta = {k: str(payload[k]) for k in ("model_name", "model_version", "id") if payload.get(k)}
    return [list(zip(labels, (float(v) for v in row))) for row in rows], meta


def _flatten(data: list[Any]) -> list[Any]:
    """Row-major values whether the tensor data is flat (the spec's normal form) or nested."""
    out: list[Any] = []
    for value in data:
        out.extend(_flatten(value) if isinstance(value, list) else [value])
    return out


def decode_error(body: bytes) -> str:
    """The message of an ``{"error": "..."}`` body; the raw text otherwise."""
    text = body.decode("utf-8", "replace")
    try:
        payload = json.loads(text)
    except ValueError:
        return text
    return str(payload.get("error", text)) if isinstance(payload, Mapping) else text


def parse_request(body: bytes) -> tuple[str, list[int], str, list[Any], str | None]:
    """``(input name, shape, datatype, flat data, requested output)`` of an infer request (emulator side).

    Raises:
        MalformedResponse: the body is not an infer request with exactly one input.
    """
    payload = _parse_json(body)
    inputs = payload.get("inputs") if isinstance(payload, Mapping) else None
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], Mapping):
        raise MalformedResponse("expected exactly one input tensor")
    tensor = inputs[0]
    outputs = payload.get("outputs") or []
    wanted = outputs[0].get("name") if outputs and isinstance(outputs[0], Mapping) else None
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not isinstance(tensor.get("data"), list):
        raise MalformedResponse("the input needs 'shape' and 'data'")
    return str(tensor.get("name")), shape, str(tensor.get("datatype")), _flatten(tensor["data"]), wanted
