"""Governance: where data goes, what a model is for, and whether policy allows using it."""

from cloudderm.governance.card import Fact, GovernanceCard, ModelFacts, ServiceFacts

__all__ = ["Fact", "GovernanceCard", "ModelFacts", "ServiceFacts"]
