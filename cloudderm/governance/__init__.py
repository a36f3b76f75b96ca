"""Governance: where data goes, what a model is for, and whether policy allows using it."""

from cloudderm.facts import Fact, GovernanceCard, ModelFacts, ServiceFacts

__all__ = ["Fact", "GovernanceCard", "ModelFacts", "ServiceFacts"]
