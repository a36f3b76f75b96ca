"""The governance card types; they live in :mod:`cloudderm.facts` (the core layer adapters import).

Kept so ``from cloudderm.governance.card import ModelFacts`` goes on working.
"""

from cloudderm.facts import Fact, GovernanceCard, ModelFacts, ServiceFacts

__all__ = ["Fact", "GovernanceCard", "ModelFacts", "ServiceFacts"]
