"""The price catalog shipped with cloudderm: dated, sourced list prices, validated when first read.

Why a file and not a lookup service: prices are evidence in a vendor comparison, so each one must say where
it came from and when it was read, and a run must not change because a pricing page did. The catalog is
read lazily (``import cloudderm`` never parses it) and validated with pydantic, so an entry without a
source or a date is a load error, not a silent guess.
"""

from __future__ import annotations

import functools
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cloudderm.errors import config_error_from

__all__ = ["Catalog", "PriceEntry", "Tier", "load_catalog"]

CATALOG_RESOURCE = "catalog.yaml"


class Tier(BaseModel):
    """One band of a tiered per-unit price: units ``first_unit``..``last_unit`` (inclusive) of a month."""

    model_config = ConfigDict(extra="forbid")

    first_unit: int = Field(ge=1)
    last_unit: int | None = Field(default=None, ge=1)
    price_per_1k: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Tier:
        if self.last_unit is not None and self.last_unit < self.first_unit:
            raise ValueError(f"last_unit {self.last_unit} is before first_unit {self.first_unit}")
        return self


class PriceEntry(BaseModel):
    """One priced unit (an instance or node hour, or 1,000 calls) from one provider page."""

    model_config = ConfigDict(extra="forbid")

    id: str
    vendor: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")  # an adapter's ``vendor``: any provider
    service: str
    operation: str
    kind: Literal["hourly", "per_1k_units", "per_token"]
    unit: str
    sku: str | None = None  # instance / VM / machine type when the price depends on it
    price: float | None = Field(default=None, ge=0)
    tiers: list[Tier] = Field(default_factory=list)
    input_per_mtok: float | None = Field(default=None, ge=0)  # per_token: USD per 1M input tokens
    output_per_mtok: float | None = Field(default=None, ge=0)  # per_token: USD per 1M output tokens
    currency: Literal["USD"] = "USD"
    region: str | None = None  # None: the page gives one price for every region it lists
    as_of: date
    source: str
    read_from: str | None = None
    quote: str | None = None
    note: str | None = None

    @field_validator("source", "read_from")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("https://"):
            raise ValueError("must be an https:// URL of the page the figure was read from")
        return value

    @model_validator(mode="after")
    def _priced(self) -> PriceEntry:
        if self.kind == "per_token" and (self.input_per_mtok is None or self.output_per_mtok is None):
            raise ValueError("a per_token entry needs input_per_mtok and output_per_mtok (USD per 1M tokens)")
        if self.kind == "hourly" and (self.price is None or self.tiers):
            raise ValueError("an hourly entry needs `price` (USD per unit) and no `tiers`")
        if self.kind == "per_1k_units":
            if not self.tiers:
                raise ValueError("a per_1k_units entry needs `tiers` (use one open tier for a flat price)")
            expected = 1
            for tier in self.tiers:
                if tier.first_unit != expected:
                    raise ValueError(f"tiers must be contiguous from unit 1; expected {expected}")
                if tier.last_unit is None:
                    expected = -1
                    continue
                expected = tier.last_unit + 1
            if expected != -1:
                raise ValueError("the last tier must be open-ended (last_unit: null)")
        return self


class Catalog(BaseModel):
    """Every price cloudderm knows, with the date the catalog was compiled."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    as_of: date
    currency: Literal["USD"] = "USD"
    entries: list[PriceEntry]

    @model_validator(mode="after")
    def _unique(self) -> Catalog:
        ids = [e.id for e in self.entries]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"duplicate entry ids: {', '.join(duplicated)}")
        return self

    def get(self, entry_id: str) -> PriceEntry | None:
        """The entry with this id, or None."""
        return next((e for e in self.entries if e.id == entry_id), None)

    def find(self, service: str, *, sku: str | None = None, region: str | None = None) -> PriceEntry | None:
        """The price of ``sku`` for ``service`` in ``region``; a region-less entry matches every region.

        An entry for the exact region wins over a region-less one; no entry means the price is unknown.
        """
        candidates = [e for e in self.entries if e.service == service and e.kind == "hourly" and e.sku == sku]
        exact = [e for e in candidates if region is not None and e.region == region]
        if exact:
            return exact[0]
        anywhere = [e for e in candidates if e.region is None]
        return anywhere[0] if anywhere else None


def parse_catalog(raw: object, source: str) -> Catalog:
    """Validate catalog data; errors name the file and the entry field that is wrong."""
    try:
        return Catalog.model_validate(raw)
    except ValidationError as e:
        raise config_error_from(e, file=source, all_errors=True, what="invalid price catalog") from None


@functools.lru_cache(maxsize=4)
def load_catalog(path: str | Path | None = None) -> Catalog:
    """The shipped catalog (or one at ``path``), parsed once per process."""
    if path is None:
        text = resources.files("cloudderm.pricing").joinpath(CATALOG_RESOURCE).read_text(encoding="utf-8")
        source = f"cloudderm/pricing/{CATALOG_RESOURCE}"
    else:
        text = Path(path).read_text(encoding="utf-8")
        source = str(path)
    return parse_catalog(yaml.safe_load(text), source)
