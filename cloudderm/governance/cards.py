"""Build a provider's governance card from what its adapter knows first-hand."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cloudderm.governance.card import GovernanceCard, ModelFacts

if TYPE_CHECKING:
    from cloudderm.classifier import Classifier

__all__ = ["build_card"]


def build_card(classifier: Classifier) -> GovernanceCard:
    """The card for one configured provider: service facts plus the model's own card."""
    model = classifier.model_facts() or ModelFacts(model_id=classifier.model_id)
    return GovernanceCard(
        provider=classifier.name,
        adapter=classifier.adapter,
        service=classifier.service_facts(),
        model=model,
    )
