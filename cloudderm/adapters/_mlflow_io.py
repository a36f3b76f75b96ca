"""What goes into and comes out of an MLflow model: images encoded per its signature, answers decoded.

Pure functions over numpy, Pillow and (for DataFrames) pandas; no MLflow import, so the conversions are
tested on their own and shared by the in-process and the served (``/invocations``) paths.

**Input** follows the model's input signature (``MLmodel`` ``signature.inputs``):

* a *tensor spec* whose shape is an image layout: ``(-1, H, W)`` grayscale, ``(-1, H, W, C)`` or
  ``(-1, C, H, W)`` with C 1 (grayscale) or 3 (RGB). Each image is converted to that many channels
  (Pillow ``L`` / ``RGB``), resized to H×W (bilinear; ``fit: exact`` refuses a different size instead),
  and cast to the declared dtype: integer dtypes keep 0..255, float dtypes are scaled to 0..1
  (``float_scale: byte`` keeps 0..255). ``-1`` for H and W means "any size": the image goes as it is.
* a *column spec* with one ``binary`` column (the encoded image bytes, JPEG/PNG as prepared) or a
  ``string`` column named by ``image_column`` (the same bytes, base64).

**Output** shapes accepted (anything else is a ``ResponseFormatError`` quoting the shape):

* the model card's dictionary ``{"predicted_class": str, "class_probabilities": {class: p}}``, one per
  image or a list of them (or a dict of such columns);
* a DataFrame (or, from a server, a list of records) with one column per class, or with label/score
  columns (a row per image, holding one label or lists of labels);
* a 2-D array (N, C) of scores with class names from the settings, the signature or the model metadata.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from PIL import Image

__all__ = [
    "CARD_CLASS",
    "CARD_PROBS",
    "InputSpec",
    "decode_output",
    "describe_shape",
    "encode_column",
    "encode_tensor",
    "spec_from_schema",
]

CARD_CLASS = "predicted_class"
CARD_PROBS = "class_probabilities"
LABEL_COLUMNS = ("label", "labels", "class", "predicted_class", "predicted_label")
SCORE_COLUMNS = ("score", "scores", "probability", "probabilities", "confidence")
Layout = Literal["HW", "HWC", "CHW"]


class SpecError(ValueError):
    """The signature cannot be used to feed images (the adapter turns it into a ConfigError)."""


class DoesNotFit(ValueError):
    """One image does not fit the declared input (the adapter turns it into a non-retryable error)."""


@dataclass(frozen=True)
class InputSpec:
    """How images are fed to one model: a tensor of a fixed layout, or one column of encoded bytes."""

    kind: Literal["tensor", "column"]
    dtype: str  # numpy dtype for tensors; "binary" or "string" for columns
    shape: tuple[int, ...] = ()
    layout: Layout = "HW"
    name: str | None = None  # the tensor's or the column's name

    @property
    def channels(self) -> int:
        if self.layout == "HW":
            return 1
        return self.shape[3] if self.layout == "HWC" else self.shape[1]

    @property
    def size(self) -> tuple[int, int]:
        """(height, width); -1 where any size is accepted."""
        return (self.shape[2], self.shape[3]) if self.layout == "CHW" else (self.shape[1], self.shape[2])

    @property
    def fixed_size(self) -> bool:
        return all(s > 0 for s in self.size)

    def describe(self) -> str:
        if self.kind == "column":
            return f"column {self.name!r} of {self.dtype} (encoded image bytes)"
        h, w = self.size
        colour = "grayscale" if self.channels == 1 else "RGB"
        dims = f"{h}×{w}" if self.fixed_size else "any size"
        name = f" {self.name!r}" if self.name else ""
        return f"tensor{name} {self.dtype} {tuple(self.shape)} ({dims} {colour}, layout N{self.layout})"


def tensor_spec(shape: Sequence[int], dtype: str, name: str | None = None) -> InputSpec:
    """An InputSpec from a tensor shape (batch dimension first) or a SpecError naming what fits."""
    shape = tuple(int(s) for s in shape)
    layout: Layout | None = None
    if len(shape) == 3:
        layout = "HW"
    elif len(shape) == 4 and shape[3] in (1, 3):
        layout = "HWC"
    elif len(shape) == 4 and shape[1] in (1, 3):
        layout = "CHW"
    if layout is None:
        raise SpecError(
            f"tensor shape {shape} is not an image layout; supported: (-1, H, W), (-1, H, W, C) or "
            "(-1, C, H, W) with C 1 or 3"
        )
    try:
        kind = np.dtype(dtype).kind
    except TypeError:
        kind = ""
    if kind not in "uif" or not kind:
        raise SpecError(f"tensor dtype {dtype!r} is not numeric; supported: uint8, int*, float*")
    return InputSpec("tensor", str(np.dtype(dtype)), shape, layout, name)


def spec_from_schema(schema: Any, image_column: str | None = None) -> InputSpec:
    """The InputSpec of an MLflow input ``Schema`` (tensor or column based)."""
    if schema.is_tensor_spec():
        specs = list(schema.inputs)
        if len(specs) != 1:
            names = ", ".join(str(s.name) for s in specs)
            raise SpecError(f"the signature declares {len(specs)} tensors ({names}); one image tensor fits")
        spec = specs[0]
        return tensor_spec(spec.shape, str(spec.type), spec.name)
    columns = {str(c.name): str(getattr(c.type, "name", c.type)) for c in schema.inputs}
    if image_column is not None:
        if image_column not in columns:
            raise SpecError(
                f"image_column {image_column!r} is not in the signature's columns {list(columns)}"
            )
        chosen = image_column
    else:
        binary = [name for name, kind in columns.items() if kind == "binary"]
        if len(binary) != 1:
            raise SpecError(
                f"the signature's columns {columns} have {len(binary)} binary columns; set image_column "
                "to the one that holds the encoded image"
            )
        chosen = binary[0]
    kind = columns[chosen]
    if kind not in ("binary", "string"):
        raise SpecError(f"column {chosen!r} is {kind}; an image column must be binary or string (base64)")
    required = [c.name for c in schema.inputs if getattr(c, "required", True) and c.name != chosen]
    if required:
        raise SpecError(f"the signature also requires columns {required}, which cloudderm cannot fill")
    return InputSpec("column", kind, name=chosen)


def _pixels(data: bytes, spec: InputSpec, *, fit: str, float_scale: str, source: str) -> np.ndarray:
    """One image as the array the spec declares, without the batch dimension."""
    with Image.open(io.BytesIO(data)) as img:
        img = img.convert("L" if spec.channels == 1 else "RGB")
        h, w = spec.size
        if spec.fixed_size and img.size != (w, h):
            if fit == "exact":
                raise DoesNotFit(
                    f"{source}: image is {img.width}×{img.height}, the model's input is {spec.describe()}; "
                    "resize it first or set fit: resize"
                )
            img = img.resize((w, h), Image.Resampling.BILINEAR)
        array = np.asarray(img)
    if spec.layout == "HWC" and array.ndim == 2:
        array = array[:, :, None]
    elif spec.layout == "CHW":
        array = array[None, :, :] if array.ndim == 2 else array.transpose(2, 0, 1)
    dtype = np.dtype(spec.dtype)
    if dtype.kind == "f":
        return array.astype(dtype) / (dtype.type(255.0) if float_scale == "unit" else dtype.type(1.0))
    return array.astype(dtype)


def encode_tensor(
    images: Sequence[tuple[str, bytes]], spec: InputSpec, *, fit: str = "resize", float_scale: str = "unit"
) -> np.ndarray:
    """(source, bytes) pairs -> one batch array in the declared layout and dtype."""
    return np.stack([_pixels(d, spec, fit=fit, float_scale=float_scale, source=s) for s, d in images])


def encode_column(images: Sequence[tuple[str, bytes]], spec: InputSpec) -> list[bytes | str]:
    """(source, bytes) pairs -> the column's values: raw bytes, or base64 text for a string column."""
    if spec.dtype == "binary":
        return [data for _, data in images]
    return [base64.b64encode(data).decode("ascii") for _, data in images]


# ---- output ---------------------------------------------------------------------------------------------
def describe_shape(value: Any) -> str:
    """A short description of an unexpected answer, for the error message."""
    cls = type(value).__name__
    if hasattr(value, "columns") and hasattr(value, "shape"):
        return (
            f"DataFrame {value.shape[0]}×{value.shape[1]} with columns {list(map(str, value.columns))[:10]}"
        )
    if isinstance(value, np.ndarray):
        return f"ndarray of shape {value.shape} and dtype {value.dtype}"
    if isinstance(value, Mapping):
        return f"dict with keys {sorted(map(str, value))[:10]}"
    if isinstance(value, (list, tuple)):
        kinds = sorted({type(v).__name__ for v in value})
        return f"{cls} of {len(value)} ({', '.join(kinds) or 'empty'})"
    return f"{cls} {str(value)[:80]!r}"


class UnknownShape(ValueError):
    """The answer is none of the accepted shapes; the message quotes the shape."""


def decode_output(output: Any, n: int, class_names: Sequence[str] | None) -> list[list[tuple[str, float]]]:
    """Per image, (label, score) pairs from any accepted output shape (see the module docstring)."""
    if hasattr(output, "to_dict") and hasattr(output, "columns"):  # pandas DataFrame
        rows = output.to_dict(orient="records")
        return _check(n, [_from_record(r, output) for r in rows], output)
    if hasattr(output, "to_list") and not isinstance(output, np.ndarray):  # pandas Series
        output = output.to_list()
    if isinstance(output, Mapping):
        if CARD_PROBS in output and isinstance(output[CARD_PROBS], Mapping):
            return _check(n, [_from_record(output, output)], output)
        if CARD_PROBS in output and isinstance(output[CARD_PROBS], (list, tuple)):  # dict of columns
            return _check(n, [_from_record({CARD_PROBS: p}, output) for p in output[CARD_PROBS]], output)
        raise UnknownShape(describe_shape(output))
    if isinstance(output, (list, tuple)) and output and all(isinstance(r, Mapping) for r in output):
        return _check(n, [_from_record(r, output) for r in output], output)
    try:
        array = np.asarray(output, dtype=float)
    except (TypeError, ValueError):
        raise UnknownShape(describe_shape(output)) from None
    if array.ndim == 1 and n == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise UnknownShape(describe_shape(output))
    if not class_names:
        raise UnknownShape(
            f"{describe_shape(output)} without class names: set labels, or log the model with "
            "metadata={'class_names': [...]} or a signature whose output columns name the classes"
        )
    if array.shape[1] != len(class_names):
        raise UnknownShape(f"{describe_shape(output)} for {len(class_names)} class names")
    return _check(n, [list(zip(class_names, row.tolist())) for row in array], output)


def _check(n: int, rows: list[list[tuple[str, float]]], output: Any) -> list[list[tuple[str, float]]]:
    if len(rows) != n:
        raise UnknownShape(f"{describe_shape(output)}: {len(rows)} answers for {n} images")
    return rows


def _from_record(record: Mapping[str, Any], output: Any) -> list[tuple[str, float]]:
    """One image's answer from a card dictionary, a label/score row or a one-column-per-class row."""
    probs = record.get(CARD_PROBS)
    if isinstance(probs, Mapping):
        return [(str(k), float(v)) for k, v in probs.items()]
    label_key = next((k for k in LABEL_COLUMNS if k in record), None)
    score_key = next((k for k in SCORE_COLUMNS if k in record), None)
    if label_key is not None and score_key is not None:
        labels, scores = record[label_key], record[score_key]
        if isinstance(labels, (list, tuple, np.ndarray)) and isinstance(scores, (list, tuple, np.ndarray)):
            return [(str(lbl), float(s)) for lbl, s in zip(labels, scores)]
        if isinstance(labels, str) and _is_number(scores):
            return [(labels, float(scores))]
    if record and all(_is_number(v) for v in record.values()):
        return [(str(k), float(v)) for k, v in record.items()]
    raise UnknownShape(describe_shape(output) + f"; a row has keys {sorted(map(str, record))[:10]}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
