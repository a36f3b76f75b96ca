"""Which price applies to a configured provider: the user's override, else the catalog, else unknown.

Pricing knows no adapter: each adapter declares ``vendor`` and answers ``price_query()`` with a
:class:`cloudderm.core.PriceQuery` (catalog entries, service, SKU, region, instance count). A provider
whose price cannot be sourced resolves to no model plus a sentence saying why and how to fix it, so the
cost table can print "unknown" with a reason instead of a number nobody can defend.
See docs/architecture.md ("who owns which fact").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cloudderm.core import PriceQuery
from cloudderm.errors import ConfigError, config_error_from
from cloudderm.pricing.catalog import Catalog, PriceEntry, Tier, load_catalog
from cloudderm.pricing.models import AlwaysOnPricing, LocalPricing, PerCallPricing, TokenPricing

if TYPE_CHECKING:
    from cloudderm.classifier import AdapterSettings, Classifier
    from cloudderm.pricing import PricingModel

__all__ = ["PricingOverride", "PricingTarget", "Resolution", "resolve"]


class PricingOverride(BaseModel):
    """The ``pricing:`` mapping of a provider: a negotiated or measured price that beats the catalog."""

    model_config = ConfigDict(extra="forbid")

    hourly_usd: float | None = Field(default=None, ge=0)
    per_1k_usd: float | None = Field(default=None, ge=0)
    monthly_usd: float | None = Field(default=None, ge=0)
    catalog_id: str | None = None
    instance_count: int | None = Field(default=None, ge=1)
    free_units_per_month: int = Field(default=0, ge=0)
    as_of: str | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _one_price(self) -> PricingOverride:
        given = [
            k
            for k in ("hourly_usd", "per_1k_usd", "monthly_usd", "catalog_id")
            if getattr(self, k) is not None
        ]
        if len(given) > 1:
            raise ValueError(f"give one of hourly_usd, per_1k_usd, monthly_usd, catalog_id (got {given})")
        return self


@dataclass(frozen=True)
class PricingTarget:
    """What pricing needs to know about one configured provider: its name, settings, vendor and query."""

    name: str
    adapter: str
    settings: Any
    vendor: str | None
    query: PriceQuery = field(default_factory=PriceQuery)

    @classmethod
    def of(cls, classifier: Classifier) -> PricingTarget:
        """From a built classifier: its declared vendor and price query."""
        return cls(
            name=classifier.name,
            adapter=classifier.adapter,
            settings=classifier.settings,
            vendor=type(classifier).vendor,
            query=classifier.price_query(),
        )

    @classmethod
    def from_settings(
        cls, name: str, settings: AdapterSettings, adapter_cls: type[Classifier]
    ) -> PricingTarget:
        """From config settings and the adapter class, without building the adapter.

        ``price_query`` reads only ``name`` and ``settings`` by contract, so it is asked on a bare instance.
        The class comes from the caller (``cloudderm.factory.pricing_target`` resolves it by name): pricing
        never imports the adapter registry.
        """
        bare = adapter_cls.__new__(adapter_cls)
        bare.name, bare.settings = name, settings
        return cls(
            name=name,
            adapter=getattr(adapter_cls, "adapter", settings.adapter),
            settings=settings,
            vendor=adapter_cls.vendor,
            query=adapter_cls.price_query(bare),
        )


@dataclass(frozen=True)
class Resolution:
    """A pricing model, or None with the reason no sourced price applies."""

    model: PricingModel | None
    reason: str | None = None
    catalog_as_of: str | None = None


def parse_override(name: str, raw: Mapping[str, Any] | None) -> PricingOverride | None:
    """Validate a provider's ``pricing:`` mapping; mistakes are ConfigErrors naming provider and field."""
    if not raw:
        return None
    try:
        return PricingOverride.model_validate(dict(raw))
    except ValidationError as e:
        raise config_error_from(e, provider=name, prefix="pricing") from None


def resolve(target: PricingTarget, catalog: Catalog | None = None) -> Resolution:
    """The pricing model for ``target``: override, then the catalog entry for its settings, else unknown."""
    catalog = catalog or load_catalog()
    as_of = catalog.as_of.isoformat()
    override = parse_override(target.name, getattr(target.settings, "pricing", None))
    if override is not None and override.catalog_id is None:
        return Resolution(_from_override(target, override), catalog_as_of=as_of)
    if override is not None and override.catalog_id is not None:
        entry_id = override.catalog_id
        entry = catalog.get(entry_id)
        if entry is None:
            raise ConfigError(
                f"no catalog entry {entry_id!r}; known: {', '.join(e.id for e in catalog.entries)}",
                provider=target.name,
                field="pricing.catalog_id",
            )
        return Resolution(_from_entry(target, entry, _count(target)), catalog_as_of=as_of)
    model, reason = _from_catalog(target, catalog)
    return Resolution(model, reason, as_of)


def _count(target: PricingTarget) -> int:
    settings = target.settings
    override = parse_override(target.name, getattr(settings, "pricing", None))
    if override is not None and override.instance_count is not None:
        return override.instance_count
    return max(1, int(target.query.count))


def _from_override(target: PricingTarget, override: PricingOverride) -> PricingModel:
    notes = [f"override note: {override.note}"] if override.note else []
    local = target.vendor == "local" or target.query.local
    if override.hourly_usd is not None:
        unit = "machine" if local else _unit_label(target)
        return AlwaysOnPricing(
            target.name,
            override.hourly_usd,
            _count(target),
            unit,
            as_of=override.as_of,
            kind="local" if local else "always-on",
            notes=notes,
        )
    if override.monthly_usd is not None:
        return AlwaysOnPricing(
            target.name,
            override.monthly_usd / 730.0,
            1,
            "deployment billed a fixed monthly_usd",
            as_of=override.as_of,
            kind="local" if local else "always-on",
            notes=notes,
        )
    tiers = [Tier(first_unit=1, last_unit=None, price_per_1k=override.per_1k_usd or 0.0)]
    if override.free_units_per_month:
        tiers = [
            Tier(first_unit=1, last_unit=override.free_units_per_month, price_per_1k=0.0),
            Tier(
                first_unit=override.free_units_per_month + 1,
                last_unit=None,
                price_per_1k=override.per_1k_usd or 0.0,
            ),
        ]
    return PerCallPricing(target.name, tiers, "call", as_of=override.as_of, notes=notes)


def _from_entry(target: PricingTarget, entry: PriceEntry, count: int) -> PricingModel:
    notes = [f"note from the price page: {entry.note}"] if entry.note else []
    if entry.kind == "per_token":
        return TokenPricing(
            target.name,
            float(entry.input_per_mtok or 0.0),
            float(entry.output_per_mtok or 0.0),
            entry.as_of.isoformat(),
            entry.source,
            notes,
        )
    if entry.kind == "per_1k_units":
        return PerCallPricing(
            target.name,
            list(entry.tiers),
            entry.operation + " unit",
            entry.as_of.isoformat(),
            entry.source,
            notes,
        )
    return AlwaysOnPricing(
        target.name,
        float(entry.price or 0.0),
        count,
        entry.unit.removesuffix(" hour")
        if entry.sku is None
        else f"{entry.sku} {entry.unit.removesuffix(' hour')}",
        entry.as_of.isoformat(),
        entry.source,
        notes=notes,
    )


def _unit_label(target: PricingTarget) -> str:
    sku = target.query.sku
    return f"{sku} instance" if sku else "instance"


def _from_catalog(target: PricingTarget, catalog: Catalog) -> tuple[PricingModel | None, str | None]:
    query = target.query
    fix = f"set providers.{target.name}.pricing.hourly_usd"
    for entry_id in query.entry_ids:
        entry = catalog.get(entry_id)
        if entry is not None:
            return _from_entry(target, entry, _count(target)), None
    if query.service is not None:
        if query.sku is None and query.sku_required:
            return None, (
                f"{query.label}: {query.sku_field} is not set, so the instance price is unknown; "
                f"set it or {fix}"
            )
        entry = catalog.find(query.service, sku=query.sku, region=query.region)
        if entry is not None:
            return _from_entry(target, entry, _count(target)), None
        where = f" in {query.region}" if query.region else ""
        return None, (
            f"no sourced price for {query.label} {query.sku or f'an unstated {query.sku_field}'}{where} "
            f"in the catalog (as of {catalog.as_of}); {fix}"
        )
    if query.local or target.vendor == "local":
        return LocalPricing(target.name), None
    return None, (
        f"no catalog price for adapter {target.adapter!r} (vendor {target.vendor or 'unknown'}); set "
        f"providers.{target.name}.pricing (hourly_usd, per_1k_usd, monthly_usd or catalog_id)"
    )
