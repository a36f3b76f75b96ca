"""Strict parsing of a vision-language model's answer text into label | abstained | unparseable (pure).

Why strict: a VLM answers in prose when it likes, and mapping "this looks like it could be a melanocytic
lesion" to ``nv`` would put a label in the results that the model never gave. So only two shapes count as
an answer: the requested JSON object whose ``label`` is exactly one of the codes (case and surrounding
space ignored), or a reply that is exactly one code. A refusal or "cannot determine" is an abstention with
its reason kept; anything else is ``unparseable`` with at most 200 characters of the text kept.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Literal

from cloudderm.adapters._vlm_prompt import ABSTAIN_LABEL

__all__ = ["KEPT_TEXT_CHARS", "ParsedAnswer", "parse_answer"]

KEPT_TEXT_CHARS = 200
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL | re.IGNORECASE)
# Phrases with which models decline or say they cannot tell; matched only when no label was parsed.
_REFUSAL = re.compile(
    r"\b(?:i\s*(?:'m|am)\s*(?:sorry|unable|not able)|i\s*(?:can(?:'|no)t|cannot|won'?t|will not)"
    r"|unable to (?:determine|classify|provide|help|assist|identify)|cannot (?:be )?determined?"
    r"|can(?:'|no)t (?:determine|tell|classify|diagnose|provide)|not (?:able|possible) to (?:determine|tell)"
    r"|consult (?:a|your) (?:dermatologist|doctor|physician|healthcare))",
    re.IGNORECASE,
)
_ABSTAIN_WORDS = frozenset({ABSTAIN_LABEL, "cannot determine", "unknown", "abstain", "none"})


@dataclass(frozen=True)
class ParsedAnswer:
    """One parsed reply. ``reason`` is the abstention reason or the kept unparseable text."""

    outcome: Literal["answered", "abstained", "unparseable"]
    label: str | None = None
    confidence: float | None = None
    reason: str | None = None


def keep(text: str) -> str:
    """At most 200 characters of a reply, whitespace collapsed, marked when cut."""
    flat = " ".join(text.split())
    return flat if len(flat) <= KEPT_TEXT_CHARS else flat[: KEPT_TEXT_CHARS - 1] + "…"


def _match_code(value: str, codes: tuple[str, ...]) -> str | None:
    wanted = value.strip().strip(".").strip().lower()
    for code in codes:
        if code.lower() == wanted:
            return code
    return None


def parse_answer(text: str | None, codes: tuple[str, ...]) -> ParsedAnswer:
    """Parse one reply against the allowed ``codes``; never guesses a label from free text."""
    if text is None or not text.strip():
        return ParsedAnswer("unparseable", reason="(empty reply)")
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    if body.startswith("{"):
        return _parse_json(body, text, codes)
    code = _match_code(body, codes)
    if code is not None:
        return ParsedAnswer("answered", label=code)
    if body.strip().strip(".").lower() in _ABSTAIN_WORDS or _REFUSAL.search(body):
        return ParsedAnswer("abstained", reason=keep(body))
    return ParsedAnswer("unparseable", reason=keep(text))


def _parse_json(body: str, original: str, codes: tuple[str, ...]) -> ParsedAnswer:
    try:
        obj = json.loads(body)
    except json.JSONDecodeError:
        return ParsedAnswer("unparseable", reason=keep(original))
    if not isinstance(obj, dict) or not isinstance(obj.get("label"), str):
        return ParsedAnswer("unparseable", reason=keep(original))
    label = obj["label"]
    confidence = obj.get("confidence")
    if confidence is not None:
        if isinstance(confidence, bool) or not isinstance(confidence, (int, float)):
            return ParsedAnswer("unparseable", reason=keep(original))
        confidence = float(confidence)
        if not (math.isfinite(confidence) and 0.0 <= confidence <= 1.0):
            return ParsedAnswer("unparseable", reason=keep(original))
    if label.strip().lower() in _ABSTAIN_WORDS:
        why = obj.get("reason")
        return ParsedAnswer("abstained", reason=keep(why) if isinstance(why, str) and why else label)
    code = _match_code(label, codes)
    if code is None:
        return ParsedAnswer("unparseable", reason=keep(original))
    return ParsedAnswer("answered", label=code, confidence=confidence)
