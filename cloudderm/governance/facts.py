"""Vendor facts (HIPAA eligibility, BAA, certifications, retention, training use) from providers.yaml.

Each fact is a value with the vendor page it was read on and the date; the file is validated when first
read so a fact without a source cannot reach a card. A fact absent from the file is unknown, and the card
and the policy treat it so.
"""

from __future__ import annotations

import functools
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cloudderm.errors import config_error_from
from cloudderm.facts import Fact

__all__ = ["ProvidersFile", "ServiceEntry", "SourcedFact", "VendorEntry", "load_vendor_facts", "lookup"]

PROVIDERS_RESOURCE = "providers.yaml"


class SourcedFact(BaseModel):
    """A vendor statement: the value, the page it is on, when it was read, and the wording."""

    model_config = ConfigDict(extra="forbid")

    value: Any
    source: str
    as_of: date
    quote: str | None = None
    read_from: str | None = None
    note: str | None = None

    @field_validator("source", "read_from")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is not None and not value.strip().startswith("https://"):
            raise ValueError("must be an https:// URL")
        return value.strip() if value else value

    def to_fact(self) -> Fact:
        """The card's Fact (value, source, as_of)."""
        return Fact(value=self.value, source=self.source, as_of=self.as_of.isoformat())


class ServiceEntry(BaseModel):
    """Facts about one vendor service, keyed in the file by the cloudderm adapter that uses it."""

    model_config = ConfigDict(extra="forbid")

    name: str
    hipaa_eligible: SourcedFact | None = None
    certifications: SourcedFact | None = None
    data_retention: SourcedFact | None = None
    training_use: SourcedFact | None = None


class VendorEntry(BaseModel):
    """Facts that hold for every service of a vendor (a BAA is signed with the vendor, not a service)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    baa_available: SourcedFact | None = None
    caveats: list[SourcedFact] = Field(default_factory=list)
    services: dict[str, ServiceEntry] = Field(default_factory=dict)


class ProvidersFile(BaseModel):
    """The whole providers.yaml."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    as_of: date
    vendors: dict[str, VendorEntry]


@functools.lru_cache(maxsize=4)
def load_vendor_facts(path: str | Path | None = None) -> ProvidersFile:
    """The shipped vendor facts (or those at ``path``), parsed and validated once per process."""
    if path is None:
        text = (
            resources.files("cloudderm.governance").joinpath(PROVIDERS_RESOURCE).read_text(encoding="utf-8")
        )
        source = f"cloudderm/governance/{PROVIDERS_RESOURCE}"
    else:
        text = Path(path).read_text(encoding="utf-8")
        source = str(path)
    try:
        return ProvidersFile.model_validate(yaml.safe_load(text))
    except ValidationError as e:
        raise config_error_from(e, file=source, all_errors=True, what="invalid vendor facts") from None


def lookup(
    vendor: str, adapter: str, facts: ProvidersFile | None = None
) -> tuple[VendorEntry | None, ServiceEntry | None]:
    """The vendor's entry and the entry for the service ``adapter`` uses; None where nothing is sourced."""
    facts = facts or load_vendor_facts()
    entry = facts.vendors.get(vendor)
    if entry is None:
        return None, None
    return entry, entry.services.get(adapter)
