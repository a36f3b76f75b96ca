"""Pricing: what a provider costs per call and per month, from a dated, sourced catalog.

``pricing_for(classifier)`` gives the model a Prediction's ``cost_usd`` comes from; ``estimate`` gives a
monthly ``CostEstimate`` with its assumptions, or an unknown one saying why. The catalog is read on first
use, never at import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from cloudderm.pricing.models import HOURS_PER_MONTH, CostEstimate

if TYPE_CHECKING:
    from cloudderm.classifier import Classifier
    from cloudderm.pricing.catalog import Catalog
    from cloudderm.pricing.resolve import PricingTarget

__all__ = [
    "HOURS_PER_MONTH",
    "CostEstimate",
    "PricingModel",
    "catalog_as_of",
    "describe_pricing",
    "estimate",
    "pricing_for",
]


class PricingModel(Protocol):
    """How one configured provider is charged."""

    def cost_per_call(self, batch_size: int) -> float | None:
        """USD attributable to one image of a call carrying ``batch_size`` images; None if not per-call."""
        ...

    def monthly_cost(self, volume: int, measured_images_per_second: float | None = None) -> CostEstimate:
        """Cost of ``volume`` images a month, every assumption spelled out."""
        ...


def pricing_for(classifier: Classifier) -> PricingModel | None:
    """The pricing model for a configured provider, or None when no sourced price applies."""
    from cloudderm.pricing.resolve import PricingTarget, resolve

    return resolve(PricingTarget.of(classifier)).model


def describe_pricing(classifier: Classifier) -> str:
    """One line on how ``classifier`` is priced, or why its price is unknown (for `cloudderm providers`)."""
    from cloudderm.pricing.resolve import PricingTarget, resolve

    resolution = resolve(PricingTarget.of(classifier))
    if resolution.model is None:
        return f"unknown: {resolution.reason}"
    describe = getattr(resolution.model, "describe", None)
    return describe() if callable(describe) else type(resolution.model).__name__


def catalog_as_of() -> str:
    """The date the shipped price catalog was compiled (ISO format), printed wherever a cost is shown."""
    from cloudderm.pricing.catalog import load_catalog

    return load_catalog().as_of.isoformat()


def estimate(
    provider: Classifier | PricingTarget,
    volume: int,
    measured_images_per_second: float | None = None,
    *,
    catalog: Catalog | None = None,
) -> CostEstimate:
    """Monthly cost of ``provider`` at ``volume`` images/month; ``kind="unknown"`` (with why) if unpriced.

    Args:
        provider: a built classifier, or a ``PricingTarget`` (``cloudderm.factory.pricing_target(name,
            settings)`` makes one straight from a config, without building the adapter).
        volume: images a month.
        measured_images_per_second: throughput measured in a run, for always-on endpoints.
        catalog: a catalog to price from (default: the shipped one).
    """
    from cloudderm.pricing.resolve import PricingTarget, resolve

    target = provider if isinstance(provider, PricingTarget) else PricingTarget.of(provider)
    resolution = resolve(target, catalog)
    if resolution.model is None:
        return CostEstimate(
            provider=target.name,
            kind="unknown",
            volume=volume,
            monthly_usd=None,
            per_1k_usd=None,
            assumptions=[resolution.reason or "no sourced price"],
            as_of=resolution.catalog_as_of,
        )
    result = resolution.model.monthly_cost(volume, measured_images_per_second)
    if result.as_of is None and result.kind == "local":
        result.as_of = resolution.catalog_as_of
    return result
