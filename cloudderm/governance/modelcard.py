"""Read governance facts out of a model card (a Hugging Face style ``README.md``) without loading the model.

A model card is where a model's authors say what it is for, what it was trained on, under which licence,
and — crucially for a dermatology comparison — whether it may be used for medical diagnosis. Cards are free
text with optional YAML front matter, so this module is deliberately forgiving: it extracts what is
present, returns ``None`` / empty lists for what is not, and never raises on odd input.

Public API (pure functions, no I/O, no heavy imports):

* :func:`parse_model_card` — front matter + sections -> a :class:`ModelCardFacts` dict whose keys match
  :class:`cloudderm.governance.card.ModelFacts` fields (plus ``pipeline_tag``, ``tags``, ``base_model``).
* :func:`detect_prohibitions` — scan any text for use prohibitions, e.g. ``["medical-diagnosis"]`` for
  "not intended for medical diagnosis", "do not use for medical diagnosis", "not for clinical use".
* :data:`PROHIBITION_RULES` — the category -> regex table behind it, for reuse and extension.
* :func:`split_front_matter` — the YAML header and the Markdown body.

Example:
    >>> facts = parse_model_card("---\\nlicense: mit\\n---\\n# M\\nNot for clinical use.")
    >>> facts["license"], facts["prohibited_uses"]
    ('mit', ['medical-diagnosis'])
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypedDict

import yaml

__all__ = [
    "PROHIBITION_RULES",
    "ModelCardFacts",
    "detect_prohibitions",
    "parse_model_card",
    "split_front_matter",
]

MAX_TEXT_CHARS = 1000

_FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_CODE_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.DOTALL | re.MULTILINE)
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"[*_`]+")
_BULLET = re.compile(r"^[ \t]*(?:[-*+]|\d+[.)])[ \t]+(.+)$", re.MULTILINE)
_DATASET_LINK = re.compile(r"huggingface\.co/datasets/([A-Za-z0-9][\w.\-]*/[\w.\-]+|[A-Za-z0-9][\w.\-]+)")
_PLACEHOLDER = re.compile(r"^\[?\s*more information needed\s*\]?\.?$", re.IGNORECASE)

_MEDICAL = r"(?:medical|clinical|diagnostic)"
_MEDICAL_PURPOSE = (
    r"(?:diagnos\w*|use|uses|usage|purposes?|decisions?(?:[- ]making)?|advice|applications?|settings?"
    r"|practice|care|treatment|screening)"
)
_ART = r"(?:(?:a|an|any|the)\s+)?"

PROHIBITION_RULES: Mapping[str, tuple[re.Pattern[str], ...]] = {
    "medical-diagnosis": tuple(
        re.compile(pattern)
        for pattern in (
            # "not intended for medical diagnosis", "is not designed for use in clinical settings"
            rf"\bnot\s+(?:be\s+)?(?:intended|designed|meant|suitable|approved|validated|cleared|to\s+be\s+used)"
            rf"\s+(?:to\s+be\s+used\s+)?(?:for|as|in)\s+(?:use\s+(?:in|for|as)\s+)?{_ART}(?:\w+\s+)?{_MEDICAL}"
            rf"\s+{_MEDICAL_PURPOSE}",
            # "do not use this model for medical diagnosis", "should not be used in clinical practice"
            rf"\b(?:do|does|should|must|may|can|shall)\s*(?:not|n't)\s+(?:be\s+)?used?\s+(?:\S+\s+){{0,4}}?"
            rf"(?:for|in|as)\s+{_ART}(?:\w+\s+)?{_MEDICAL}\s+{_MEDICAL_PURPOSE}",
            # "not for clinical use", "not for diagnostic purposes"
            rf"\bnot\s+for\s+(?:use\s+in\s+)?{_ART}{_MEDICAL}\s+{_MEDICAL_PURPOSE}",
            # "not intended to diagnose", "should not be used to diagnose"
            r"\bnot\s+(?:be\s+)?(?:intended|designed|meant|used)\s+to\s+(?:diagnose|make\s+(?:a\s+)?diagnos\w*)",
            # "is not a medical device", "not a substitute for professional medical advice"
            r"\bnot\s+(?:a\s+|an\s+)?(?:certified\s+|approved\s+)?medical\s+device",
            r"\bnot\s+(?:be\s+)?(?:a\s+)?(?:substitute|replacement)\s+for\s+(?:a\s+)?(?:professional\s+)?"
            r"(?:medical|clinical)\s+(?:advice|diagnos\w*|judg\w*)",
        )
    ),
}


class ModelCardFacts(TypedDict):
    """What a model card says. Keys shared with ``ModelFacts`` can be passed to it unchanged."""

    license: str | None
    training_data: list[str]
    pipeline_tag: str | None
    tags: list[str]
    base_model: list[str]
    intended_use: str | None
    out_of_scope_uses: list[str]
    known_biases: str | None
    prohibited_uses: list[str]


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """The card's YAML front matter (``{}`` when absent or invalid) and the Markdown body after it."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        meta = None
    return (meta if isinstance(meta, dict) else {}), text[match.end() :]


def detect_prohibitions(text: str) -> list[str]:
    """Use categories that ``text`` prohibits, in :data:`PROHIBITION_RULES` order; ``[]`` when none.

    Matching is case-insensitive and ignores Markdown emphasis, links and line breaks, so
    "**Not** for\\nclinical use" counts. Affirmative statements ("intended for clinical research") do not.
    """
    flat = _flatten(text).lower()
    return [category for category, rules in PROHIBITION_RULES.items() if any(r.search(flat) for r in rules)]


def parse_model_card(text: str) -> ModelCardFacts:
    """Extract licence, training data, intended use, out-of-scope uses, limitations and prohibitions.

    Front matter supplies ``license`` (``"other: <license_name>"`` when the licence is "other" and named),
    ``datasets``, ``pipeline_tag``, ``tags`` and ``base_model``; dataset links in the body
    (``huggingface.co/datasets/owner/name``) add to ``training_data``. Sections are found by heading:
    "Intended use(s)", "Direct use" or "Uses" for ``intended_use``; "Out-of-scope use" for
    ``out_of_scope_uses``; "Bias, risks and limitations" / "Limitations" for ``known_biases``. Template
    placeholders ("[More Information Needed]") count as absent.
    """
    meta, body = split_front_matter(text)
    body = _CODE_FENCE.sub("", _HTML_COMMENT.sub("", body))
    sections = _sections(body)
    training = _as_list(meta.get("datasets"))
    training += [m.group(1).rstrip(".") for m in _DATASET_LINK.finditer(body)]
    return ModelCardFacts(
        license=_license(meta),
        training_data=list(dict.fromkeys(training)),
        pipeline_tag=_as_str(meta.get("pipeline_tag")),
        tags=_as_list(meta.get("tags")),
        base_model=_as_list(meta.get("base_model")),
        intended_use=_first_text(sections, (r"intended\s+uses?", r"direct\s+uses?", r"^uses?$")),
        out_of_scope_uses=_items(_first_text(sections, (r"out[-\s]of[-\s]scope",), flatten=False)),
        known_biases=_first_text(sections, (r"bias|risks|limitations",), exclude=r"intended"),
        prohibited_uses=detect_prohibitions(text),
    )


def _sections(body: str) -> list[tuple[str, str]]:
    """(heading, text up to the next heading of any level) for every Markdown heading."""
    headings = list(_HEADING.finditer(body))
    out = []
    for i, match in enumerate(headings):
        end = headings[i + 1].start() if i + 1 < len(headings) else len(body)
        out.append((_flatten(match.group(2)).strip().lower(), body[match.end() : end]))
    return out


def _first_text(
    sections: list[tuple[str, str]], patterns: tuple[str, ...], *, exclude: str | None = None, flatten=True
) -> str | None:
    """Text of the first section whose heading matches a pattern (earlier patterns win) and has content."""
    for pattern in patterns:
        for heading, content in sections:
            if not re.search(pattern, heading) or (exclude and re.search(exclude, heading)):
                continue
            text = _flatten(content) if flatten else content.strip()
            if text and not _PLACEHOLDER.match(_flatten(text)):
                return text[:MAX_TEXT_CHARS]
    return None


def _items(text: str | None) -> list[str]:
    """Bullet items of a section, or its whole text as one item when it has no bullets."""
    if not text:
        return []
    bullets = [_flatten(b) for b in _BULLET.findall(text)]
    return [b for b in bullets if b] or [_flatten(text)[:MAX_TEXT_CHARS]]


def _flatten(text: str) -> str:
    """Plain one-line text: links become their text, emphasis marks and HTML comments go."""
    text = _LINK.sub(r"\1", _HTML_COMMENT.sub(" ", text))
    return " ".join(_EMPHASIS.sub("", text).split())


def _license(meta: Mapping[str, Any]) -> str | None:
    value = _as_str(meta.get("license"))
    name = _as_str(meta.get("license_name"))
    if value == "other" and name:
        return f"other: {name}"
    return value


def _as_str(value: Any) -> str | None:
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value if v is not None)
    return str(value).strip() or None if value is not None else None


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if v is not None and str(v).strip()]
    return [str(value).strip()] if str(value).strip() else []
