"""The VLM prompt is rendered from the taxonomy; answers are parsed strictly (no nearest-label guessing)."""

from __future__ import annotations

import pytest

from cloudderm.adapters._generative import GenerativeSettings, label_probability_from_logprobs
from cloudderm.adapters._vlm_parse import KEPT_TEXT_CHARS, parse_answer
from cloudderm.adapters._vlm_prompt import (
    ABSTAIN_LABEL,
    DEFAULT_TEMPLATE,
    answer_schema,
    load_template,
    render_prompt,
)
from cloudderm.errors import ConfigError
from cloudderm.taxonomy import HAM10000

CODES = HAM10000.codes


def test_prompt_lists_codes_with_names() -> None:
    rendered = render_prompt(DEFAULT_TEMPLATE, HAM10000, source="default")
    assert "- mel — melanoma" in rendered.text.lower()
    for code in CODES:
        assert f"- {code} — " in rendered.text
    assert "{labels}" not in rendered.text and "{codes}" not in rendered.text
    assert rendered.codes == CODES


def test_prompt_identity_changes_with_the_text(tmp_path) -> None:
    a = render_prompt("Classes:\n{labels}\nJSON please", HAM10000)
    b = render_prompt("Classes:\n{labels}\nJSON only", HAM10000)
    assert a.identity()["prompt_sha256"] != b.identity()["prompt_sha256"]


def test_template_from_file_and_missing_file(tmp_path) -> None:
    path = tmp_path / "derm.txt"
    path.write_text("Pick one of:\n{labels}\n", encoding="utf-8")
    text, source = load_template(str(path))
    assert text.startswith("Pick one of") and source == "file:derm.txt"
    with pytest.raises(ConfigError, match=r"nope\.txt"):
        load_template(str(tmp_path / "nope.txt"))
    assert load_template(None)[1] == "default"
    assert load_template("inline {labels}") == ("inline {labels}", "inline")


def test_template_without_labels_placeholder_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"\{labels\}"):
        render_prompt("Is this a melanoma?", HAM10000)


def test_schema_is_an_enum_with_abstention_and_confidence() -> None:
    schema = answer_schema(CODES)
    assert schema["properties"]["label"]["enum"] == [*CODES, ABSTAIN_LABEL]
    assert schema["required"] == ["label", "confidence"]
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize(
    ("text", "outcome", "label", "confidence"),
    [
        ('{"label": "mel", "confidence": 0.82}', "answered", "mel", 0.82),
        ('```json\n{"label": "BCC", "confidence": 1}\n```', "answered", "bcc", 1.0),
        ("nv", "answered", "nv", None),
        ("nv.", "answered", "nv", None),
        ('{"label": "cannot_determine", "confidence": 0.0}', "abstained", None, None),
        ("I'm sorry, but I can't help with diagnosing skin conditions.", "abstained", None, None),
        ("It is not possible to determine this from the photo.", "abstained", None, None),
        ("This looks like a melanocytic nevus to me.", "unparseable", None, None),  # never mapped to nv
        ('{"label": "melanoma", "confidence": 0.9}', "unparseable", None, None),  # a name, not a code
        ('{"label": "mel", "confidence": 1.7}', "unparseable", None, None),
        ('{"label": "mel", "confid', "unparseable", None, None),
        ("", "unparseable", None, None),
    ],
)
def test_parse_is_strict(text, outcome, label, confidence) -> None:
    parsed = parse_answer(text, CODES)
    assert (parsed.outcome, parsed.label, parsed.confidence) == (outcome, label, confidence)
    if outcome != "answered":
        assert parsed.reason


def test_unparseable_text_is_kept_to_200_chars() -> None:
    parsed = parse_answer("blah " * 100, CODES)
    assert parsed.outcome == "unparseable"
    assert len(parsed.reason) == KEPT_TEXT_CHARS


def test_samples_with_temperature_zero_is_rejected() -> None:
    with pytest.raises(ValueError, match="temperature"):
        GenerativeSettings(adapter="x", model="m", samples=3, temperature=0)
    assert GenerativeSettings(adapter="x", model="m", samples=3, temperature=0.7).samples == 3


def test_label_probability_from_token_logprobs() -> None:
    tokens = [('{"', -0.01), ("label", 0.0), ('":"', 0.0), ("m", -0.2), ("el", -0.1), ('"', 0.0)]
    p = label_probability_from_logprobs(tokens, "mel")
    assert p == pytest.approx(2.718281828 ** (-0.3), rel=1e-9)
    assert label_probability_from_logprobs(tokens, "bcc") is None
