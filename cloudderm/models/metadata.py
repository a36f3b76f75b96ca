"""sklesion's 10-value metadata input, built from a per-image context (age, sex, body site).

The vector is ``[sex one-hot female, male, unknown] + [site one-hot arm, head-or-neck, leg-or-genital,
trunk, unknown] + [age / 90] + [age missing]``; a missing age is filled with the training mean (51.9018)
and flags 1. That is the package's own ``preprocess`` (model_props.pkl), rewritten without pandas.
Sites map onto sklesion's five locations with :data:`cloudderm.models.cards.SKLESION_SITES`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cloudderm.models.cards import (
    SKLESION_AGE_MAX,
    SKLESION_AGE_MEAN,
    SKLESION_LOCATIONS,
    SKLESION_SEXES,
    sklesion_site,
)

__all__ = ["UNKNOWN_METADATA", "context_fields", "sklesion_metadata"]


def _sex(value: Any) -> str:
    text = str(value).strip().lower() if value is not None else ""
    aliases = {"f": "female", "m": "male", "woman": "female", "man": "male"}
    text = aliases.get(text, text)
    return text if text in SKLESION_SEXES else "unknown"


def _age(value: Any) -> float | None:
    try:
        age = float(value)
    except (TypeError, ValueError):
        return None
    return age if math.isfinite(age) and age >= 0 else None


def sklesion_metadata(age: Any = None, sex: Any = None, site: Any = None) -> np.ndarray:
    """The model's metadata vector (float32, 10 values) for one image; anything unknown is "unknown"."""
    vector = np.zeros(10, dtype=np.float32)
    vector[SKLESION_SEXES.index(_sex(sex))] = 1.0
    vector[3 + SKLESION_LOCATIONS.index(sklesion_site(site))] = 1.0
    years = _age(age)
    vector[8] = (SKLESION_AGE_MEAN if years is None else years) / SKLESION_AGE_MAX
    vector[9] = 1.0 if years is None else 0.0
    return vector


UNKNOWN_METADATA = sklesion_metadata()


def context_fields(image: Any) -> tuple[Any, Any, Any]:
    """``(age, sex, site)`` from a prepared image's optional ``context`` (None when there is none)."""
    context = getattr(image, "context", None)
    if context is None:
        return None, None, None
    if isinstance(context, dict):
        return context.get("age"), context.get("sex"), context.get("site")
    return getattr(context, "age", None), getattr(context, "sex", None), getattr(context, "site", None)
