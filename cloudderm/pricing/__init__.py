"""Pricing: what a provider costs per call and per month, from a dated, sourced catalog."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from cloudderm.classifier import Classifier

__all__ = ["PricingModel", "pricing_for"]


class PricingModel(Protocol):
    """How one configured provider is charged."""

    def cost_per_call(self, batch_size: int) -> float | None:
        """USD attributable to one image of a call carrying ``batch_size`` images; None if not per-call."""
        ...


def pricing_for(classifier: Classifier) -> PricingModel | None:
    """The pricing model for a configured provider, or None when no sourced price applies."""
    return None
