"""Fail-closed governance policy: checked before the first byte of any image is sent.

A policy violation in ``enforce`` mode raises ``PolicyViolation`` naming the provider, the rule and the
fact that broke it; in ``warn`` mode the same findings become standing warnings on every Prediction and in
the report, so nobody can miss that the run broke its own rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cloudderm.errors import PolicyViolation

if TYPE_CHECKING:
    from cloudderm.classifier import Classifier
    from cloudderm.config import Policy

__all__ = ["enforce_policy", "policy_findings"]


def policy_findings(classifier: Classifier, policy: Policy) -> list[tuple[str, str]]:
    """Every (rule, fact) the classifier breaks under ``policy``; empty when it complies."""
    findings: list[tuple[str, str]] = []
    facts = classifier.service_facts()
    if policy.allowed_regions is not None:
        region = facts.region if facts.data_leaves_machine else (facts.region or "local")
        if region is None:
            findings.append(
                ("allowed_regions", f"{facts.service} region is unknown; allowed: {policy.allowed_regions}")
            )
        elif region not in policy.allowed_regions:
            findings.append(
                ("allowed_regions", f"{facts.service} region {region!r} is not in {policy.allowed_regions}")
            )
    return findings


def enforce_policy(classifier: Classifier, policy: Policy) -> list[str]:
    """Raise on the first finding in enforce mode; return warnings (and attach them) in warn mode."""
    findings = policy_findings(classifier, policy)
    if not findings:
        return []
    if policy.mode == "enforce":
        rule, fact = findings[0]
        raise PolicyViolation(classifier.name, rule, fact)
    warnings = [f"policy ({rule}) not met: {fact}" for rule, fact in findings]
    classifier.standing_warnings.extend(w for w in warnings if w not in classifier.standing_warnings)
    return warnings
