"""The small value types every layer shares: per-image context, usage, outcome and price queries.

They live here, below ``classifier.py``, ``images.py`` and ``pricing/``, so that each of those can use them
without importing the others (see docs/architecture.md, "Contracts"). Nothing here imports anything from
cloudderm.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["OUTCOMES", "ImageContext", "Outcome", "PriceQuery", "Sex", "Usage"]

Outcome = Literal["answered", "abstained", "unparseable"]
OUTCOMES: tuple[Outcome, ...] = ("answered", "abstained", "unparseable")
Sex = Literal["female", "male", "unknown"]

REASON_MAX_CHARS = 200

_SEX_WORDS: dict[str, Sex] = {
    "f": "female",
    "female": "female",
    "woman": "female",
    "w": "female",
    "m": "male",
    "male": "male",
    "man": "male",
    "unknown": "unknown",
    "u": "unknown",
    "unk": "unknown",
    "other": "unknown",
}

# Dataset columns that carry each context field, in the order they are tried (HAM10000, PAD-UFES, ISIC,
# examples/labels.csv). Lower-cased before matching.
AGE_COLUMNS = ("age", "age_approx", "patient_age")
SEX_COLUMNS = ("sex", "gender", "patient_sex")
SITE_COLUMNS = ("site", "localization", "region", "anatom_site_general", "anatom_site_general_challenge")


@dataclass(frozen=True)
class ImageContext:
    """What is known about the patient and the lesion beside the pixels; every field may be unknown.

    Generative providers may put it in their prompt; classifiers that cannot use it ignore it (and say so in
    their facts). ``age`` is in years, ``sex`` one of female/male/unknown, ``site`` free text ("back").
    """

    age: float | None = None
    sex: Sex | None = None
    site: str | None = None

    def __post_init__(self) -> None:
        if self.age is not None and (not math.isfinite(self.age) or not 0 <= self.age <= 150):
            raise ValueError(f"age must be years in 0..150, got {self.age!r}")
        if self.sex is not None and self.sex not in ("female", "male", "unknown"):
            raise ValueError(f"sex must be female, male or unknown, got {self.sex!r}")

    @classmethod
    def of(cls, value: ImageContext | Mapping[str, Any] | None) -> ImageContext | None:
        """Coerce a mapping (``{"age": "55", "sex": "F", "site": "back"}``) into a context; None stays None.

        Unreadable values become unknown rather than errors: metadata columns are messy and a context is a
        hint, never the truth of the comparison.
        """
        if value is None or isinstance(value, ImageContext):
            return value
        if not isinstance(value, Mapping):
            raise TypeError(f"context must be an ImageContext or a mapping, not {type(value).__name__}")
        context = cls(age=_age(value.get("age")), sex=_sex(value.get("sex")), site=_site(value.get("site")))
        return None if context.is_empty() else context

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> ImageContext | None:
        """The context found in a dataset row's columns (HAM10000 ``age, sex, localization``; PAD-UFES
        ``age, gender, region``; ``examples/labels.csv`` ``age, sex, site``), or None when there is none."""
        lowered = {str(k).strip().lower(): v for k, v in metadata.items()}

        def first(columns: tuple[str, ...]) -> Any:
            return next((lowered[c] for c in columns if lowered.get(c) not in (None, "")), None)

        return cls.of({"age": first(AGE_COLUMNS), "sex": first(SEX_COLUMNS), "site": first(SITE_COLUMNS)})

    def is_empty(self) -> bool:
        return self.age is None and self.sex is None and self.site is None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Usage:
    """What one call consumed, as the provider reported it: tokens for generative models, billed units
    (images, pages, feature units) for per-unit services. None where the provider does not say."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    billed_units: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PriceQuery:
    """What the price catalog needs to price one configured provider, as its adapter declares it.

    Pricing reads only this (never adapter names or settings fields), so a new provider brings its own
    query. ``entry_ids`` are exact catalog entries tried first (per-call services); else the hourly entry
    for ``service`` + ``sku`` (+ ``region``) is looked up. ``label`` and ``sku_field`` make the "unknown
    price" message name the service and the setting to fix.
    """

    label: str = ""  # how messages name it, read before the SKU: "SageMaker real-time inference"
    service: str | None = None
    sku: str | None = None
    sku_field: str = "instance_type"
    sku_required: bool = False
    region: str | None = None
    count: int = 1
    entry_ids: tuple[str, ...] = ()
    local: bool = False


def _age(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        age = float(str(value).strip())
    except ValueError:
        return None
    return age if math.isfinite(age) and 0 <= age <= 150 else None


def _sex(value: Any) -> Sex | None:
    if value is None:
        return None
    word = str(value).strip().lower()
    return _SEX_WORDS.get(word, "unknown") if word else None


def _site(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def truncate_reason(text: str | None) -> str | None:
    """An abstention reason or unparseable answer as stored: at most 200 characters."""
    if text is None:
        return None
    text = str(text)
    return text if len(text) <= REASON_MAX_CHARS else text[: REASON_MAX_CHARS - 1] + "…"
