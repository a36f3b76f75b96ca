"""summary.json: the summary dict as strict JSON (no NaN), written atomically."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["json_safe", "write_json", "write_text"]


def json_safe(value: Any) -> Any:
    """A copy with NumPy scalars made plain and non-finite floats made None (unknown, not a number)."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_text(path: Path, text: str) -> Path:
    """Write via a temporary file and rename, so a reader never sees half a report."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_json(path: Path, data: Any) -> Path:
    return write_text(path, json.dumps(json_safe(data), indent=2, allow_nan=False, ensure_ascii=False) + "\n")
