"""Fail-closed governance policy: checked before the first byte of any image is sent.

A policy violation in ``enforce`` mode raises ``PolicyViolation`` naming the provider, the rule and the
fact that broke it; in ``warn`` mode the same findings become standing warnings on every Prediction and in
the report, so nobody can miss that the run broke its own rules.

Rules (``policy:`` in the config):

* ``allowed_regions``: where images may go; a local model counts as region ``local``; unknown fails.
* ``require_hipaa_eligible``: the service must be HIPAA eligible per a sourced vendor fact; an unknown
  eligibility fails (fail closed). Local models pass: images never leave the machine.
* ``forbid_models_prohibited_for: [medical-diagnosis]``: refuse models whose card prohibits those uses.
* ``intended_use``: refuse a model whose card prohibits, or lists as out of scope, that use.
* ``allow_general_purpose_models: false``: refuse every general-purpose VLM provider (OpenAI, ...).
* ``trusted_model_uris``: glob patterns (``models:/derm-*``, ``/srv/models/*``); a provider whose loading
  executes the model's own Python code (an adapter's ``executes_code_from``, e.g. an MLflow pyfunc loaded
  in-process) is refused unless its URI matches one. Unset: no such check.

Use names match loosely ("Medical diagnosis" == "medical-diagnosis").
"""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING, Literal

from cloudderm.errors import PolicyViolation
from cloudderm.governance.cards import slug

if TYPE_CHECKING:
    from cloudderm.classifier import Classifier
    from cloudderm.config import Config, Policy

__all__ = ["enforce_policy", "policy_findings", "with_policy_mode"]


def _region_findings(classifier: Classifier, policy: Policy) -> list[tuple[str, str]]:
    facts = classifier.service_facts()
    if policy.allowed_regions is None:
        return []
    region = facts.region if facts.data_leaves_machine else (facts.region or "local")
    if region is None:
        return [("allowed_regions", f"{facts.service} region is unknown; allowed: {policy.allowed_regions}")]
    if region not in policy.allowed_regions:
        return [("allowed_regions", f"{facts.service} region {region!r} is not in {policy.allowed_regions}")]
    return []


def _hipaa_findings(classifier: Classifier, policy: Policy) -> list[tuple[str, str]]:
    if not policy.require_hipaa_eligible:
        return []
    card = classifier.governance
    if not card.service.data_leaves_machine:
        return []
    fact = card.hipaa_eligible
    if fact is None or fact.value is None:
        return [
            (
                "require_hipaa_eligible",
                f"HIPAA eligibility of {card.service.service} ({card.service.vendor}) is unknown: no sourced "
                "vendor fact, and unknown fails closed",
            )
        ]
    if fact.value is not True:
        return [
            (
                "require_hipaa_eligible",
                f"{card.service.service} is not HIPAA eligible per {fact.source} (as of {fact.as_of})",
            )
        ]
    return []


def _use_findings(classifier: Classifier, policy: Policy) -> list[tuple[str, str]]:
    card = classifier.governance
    model = card.model
    where = f"model {model.model_id or classifier.model_id!r} (card: {model.source or 'adapter'})"
    prohibited = {slug(u): u for u in model.prohibited_uses}
    out_of_scope = {slug(u): u for u in model.out_of_scope_uses}
    findings: list[tuple[str, str]] = []
    forbidden = [prohibited[slug(u)] for u in policy.forbid_models_prohibited_for if slug(u) in prohibited]
    if forbidden:
        findings.append(("forbid_models_prohibited_for", f"{where} prohibits use for {', '.join(forbidden)}"))
    if policy.intended_use:
        use = slug(policy.intended_use)
        if use in prohibited:
            findings.append(
                ("intended_use", f"intended use {policy.intended_use!r} is prohibited by the card of {where}")
            )
        elif use in out_of_scope:
            findings.append(
                (
                    "intended_use",
                    f"intended use {policy.intended_use!r} is out of scope per the card of {where}",
                )
            )
    return findings


def _general_purpose_findings(classifier: Classifier, policy: Policy) -> list[tuple[str, str]]:
    if policy.allow_general_purpose_models:
        return []
    facts = classifier.service_facts()
    if not facts.general_purpose_model:
        return []
    return [
        (
            "allow_general_purpose_models",
            f"{facts.service} is a general-purpose model provider ({facts.vendor}, model "
            f"{classifier.model_id!r}) and the policy forbids sending images to one",
        )
    ]


def _trust_findings(classifier: Classifier, policy: Policy) -> list[tuple[str, str]]:
    patterns = policy.trusted_model_uris
    uri = getattr(classifier, "executes_code_from", None)
    if patterns is None or not uri or any(fnmatch.fnmatchcase(uri, p) for p in patterns):
        return []
    return [
        (
            "trusted_model_uris",
            f"loading {uri!r} executes the model's Python code, and it matches none of the trusted "
            f"patterns {patterns}",
        )
    ]


def policy_findings(classifier: Classifier, policy: Policy) -> list[tuple[str, str]]:
    """Every (rule, fact) the classifier breaks under ``policy``; empty when it complies."""
    return [
        *_general_purpose_findings(classifier, policy),
        *_trust_findings(classifier, policy),
        *_region_findings(classifier, policy),
        *_hipaa_findings(classifier, policy),
        *_use_findings(classifier, policy),
    ]


def enforce_policy(classifier: Classifier, policy: Policy) -> list[str]:
    """Raise on the first finding in enforce mode; return warnings (and attach them) in warn mode."""
    findings = policy_findings(classifier, policy)
    if not findings:
        return []
    if policy.mode == "enforce":
        rule, fact = findings[0]
        more = len(findings) - 1
        if more:
            rules = ", ".join(r for r, _ in findings[1:])
            fact += f" (and {more} more finding{'s' if more > 1 else ''}: {rules})"
        raise PolicyViolation(classifier.name, rule, fact)
    warnings = [f"policy ({rule}) not met: {fact}" for rule, fact in findings]
    classifier.standing_warnings.extend(w for w in warnings if w not in classifier.standing_warnings)
    return warnings


def with_policy_mode(config: Config, mode: Literal["enforce", "warn"] | None) -> Config:
    """``config`` with its policy mode replaced (for a CLI ``--policy warn``); unchanged for None."""
    if mode is None or mode == config.policy.mode:
        return config
    return config.model_copy(update={"policy": config.policy.model_copy(update={"mode": mode})})
