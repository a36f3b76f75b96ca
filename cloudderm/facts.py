"""The governance card: sourced facts about a provider's service and model, shown beside its numbers.

Adapters state what they know first-hand (service, region, whether data leaves the machine, the model
card); vendor facts (HIPAA eligibility, certifications, retention) come from the dated, sourced catalog.
A fact nobody can source stays ``None`` — the report prints "unknown", never a guess.

These are plain fact types in the core layer (they import nothing from cloudderm), so adapters state their
facts without importing governance; ``governance/cards.py`` builds the card from them. See
docs/architecture.md.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = ["Fact", "GovernanceCard", "ModelFacts", "ServiceFacts"]


class Fact(BaseModel):
    """A value with where it came from and when it was checked."""

    value: Any
    source: str | None = None
    as_of: str | None = None


class ServiceFacts(BaseModel):
    """What an adapter knows about where the image goes."""

    service: str
    vendor: str  # key into governance/providers.yaml, e.g. "aws", "azure", "gcp", "local"
    region: str | None = None
    data_leaves_machine: bool = True
    general_purpose_model: bool = False  # a general multimodal model (VLM), not a purpose-built classifier


class ModelFacts(BaseModel):
    """What the model's own card (or the user, for cloud endpoints) says the model is for."""

    model_id: str | None = None
    intended_use: str | None = None
    out_of_scope_uses: list[str] = Field(default_factory=list)
    prohibited_uses: list[str] = Field(default_factory=list)  # e.g. ["medical-diagnosis"]
    training_data: list[str] = Field(default_factory=list)
    license: str | None = None
    known_biases: str | None = None
    label_domain: Literal["in-domain", "out-of-domain", "unknown"] = "unknown"
    labels: list[str] = Field(default_factory=list)
    source: str | None = None  # where these facts were read (model card path/URL, config)


class GovernanceCard(BaseModel):
    """Side-by-side governance facts for one configured provider."""

    provider: str
    adapter: str
    service: ServiceFacts
    model: ModelFacts
    hipaa_eligible: Fact | None = None
    baa_available: Fact | None = None
    certifications: Fact | None = None
    data_retention: Fact | None = None
    training_use: Fact | None = None
    warnings: list[str] = Field(default_factory=list)
