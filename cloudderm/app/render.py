"""Provider cards, the unavailable list and the banner as HTML; every value is escaped.

Order inside a card is a safety rule: warnings (out-of-domain model, intended-use prohibition, policy)
come first, then the numbers, then the governance facts. The canonical code of an out-of-domain model
is shown as "out-of-domain", never as a lesion class.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from cloudderm.governance.card import Fact, GovernanceCard
from cloudderm.prediction import NOT_A_DIAGNOSIS, Prediction

__all__ = ["banner_html", "error_card", "prediction_card", "unavailable_html"]

TOP_K = 5


def banner_html() -> str:
    return (
        '<div class="cd-banner" role="alert" style="background:#7a1c1c;color:#fff;padding:10px 14px;'
        f'border-radius:6px;font-weight:600">⚠ {escape(NOT_A_DIAGNOSIS)}</div>'
    )


def prediction_card(prediction: Prediction, card: GovernanceCard, overlay_html: str = "") -> str:
    """One provider's answer: warnings, then labels and scores, canonical + triage, cost; then governance."""
    p = prediction
    warnings = "".join(f"<li>{escape(w)}</li>" for w in p.warnings)
    warn_block = (
        f'<div class="cd-warnings" style="background:#fff3cd;color:#5c4400;padding:6px 10px;'
        f'border-radius:4px"><b>Warnings</b><ul>{warnings}</ul></div>'
        if p.warnings
        else '<div class="cd-warnings cd-none" style="color:#555">No standing warnings for this model.</div>'
    )
    if p.answered:
        rows = "".join(
            f"<tr><td>{escape(ls.label)}</td><td>{ls.score:.3f}</td></tr>" for ls in p.labels[:TOP_K]
        )
        head = "<tr><th>label (the provider's own)</th><th>score</th></tr>"
        numbers = f'<table class="cd-labels">{head}{rows}</table>'
    else:
        numbers = f"<p><b>{escape(p.outcome)}</b>: {escape(p.reason or 'no reason given')}</p>"
    canonical = escape(p.canonical) if p.canonical else "out-of-domain (no HAM10000 code)"
    cost = f"${p.cost_usd:.6f}" if p.cost_usd is not None else "unknown"
    return (
        f'<div class="cd-card" data-provider="{escape(p.provider)}" style="border:1px solid #999;'
        f'border-radius:8px;padding:10px;margin:8px 0">'
        f"<h3>{escape(p.provider)} <small>({escape(p.adapter)} · {escape(p.model)})</small></h3>"
        f"{warn_block}{numbers}"
        f"<p>canonical: <b>{canonical}</b> · triage: <b>{escape(p.triage or '-')}</b> · "
        f"latency: {p.latency_ms:.0f} ms · cost: {cost}</p>"
        f"{overlay_html}{_governance(card)}</div>"
    )


def error_card(error: dict[str, str]) -> str:
    return (
        f'<div class="cd-card cd-error" data-provider="{escape(error["provider"])}" '
        'style="border:1px solid #b00;border-radius:8px;padding:10px;margin:8px 0">'
        f"<h3>{escape(error['provider'])}</h3><p><b>{escape(error['kind'])}</b>: "
        f"{escape(error['message'])}</p><p>No result; nothing is shown as an answer.</p></div>"
    )


def unavailable_html(items: Sequence[Any]) -> str:
    """The providers not offered, each with its reason (policy rule, missing credential, uncached model)."""
    if not items:
        return "<p>Every configured provider is available.</p>"
    rows = "".join(
        f'<li class="cd-unavailable" data-provider="{escape(i.provider)}"><b>{escape(i.provider)}</b> — '
        f"{escape(i.kind)}: {escape(i.reason)}</li>"
        for i in items
    )
    return f"<div><b>Not offered</b><ul>{rows}</ul></div>"


def _governance(card: GovernanceCard) -> str:
    m = card.model
    facts: list[tuple[str, str]] = [
        ("intended use", m.intended_use or "unknown"),
        ("prohibited uses", ", ".join(m.prohibited_uses) or "none stated"),
        ("label domain", m.label_domain),
        ("licence", m.license or "unknown"),
        ("service", f"{card.service.service} ({card.service.vendor}, region {card.service.region or '?'})"),
        ("image leaves this machine", "yes" if card.service.data_leaves_machine else "no"),
        ("HIPAA eligible", _fact(card.hipaa_eligible)),
        ("data retention", _fact(card.data_retention)),
        ("training use of inputs", _fact(card.training_use)),
    ]
    rows = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in facts)
    return f'<details class="cd-governance"><summary>Governance card</summary><table>{rows}</table></details>'


def _fact(fact: Fact | None) -> str:
    if fact is None or fact.value is None:
        return "unknown"
    return f"{fact.value}" + (f" (as of {fact.as_of})" if fact.as_of else "")
