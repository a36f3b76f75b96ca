"""The prompt a vision-language model is asked with, rendered from the taxonomy (pure: no SDK, no network).

Why rendered, not hand-written per provider: every VLM must be asked the *same* question about the same
label set, or the comparison measures prompt wording instead of models. The label list is written as
``code — long name`` lines so a model sees what each code means, and the answer is asked for as JSON with
an enum of the codes plus ``cannot_determine``: a model that is not sure has a sanctioned way to abstain
instead of being pushed into a guess. The rendered text (and so any edit of a template file) enters the
config hash through ``Classifier.hash_extras``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudderm.errors import ConfigError
from cloudderm.taxonomy import Taxonomy

__all__ = [
    "ABSTAIN_LABEL",
    "DEFAULT_TEMPLATE",
    "TEMPLATE_VERSION",
    "RenderedPrompt",
    "answer_schema",
    "load_template",
    "render_prompt",
]

ABSTAIN_LABEL = "cannot_determine"
TEMPLATE_VERSION = "cloudderm-vlm-prompt/1"
LABELS_PLACEHOLDER = "{labels}"
CODES_PLACEHOLDER = "{codes}"

DEFAULT_TEMPLATE = """\
You are helping evaluate image classifiers for a research benchmark. This is not a diagnosis and no \
clinical decision will be based on your answer.

Classify the skin-lesion photograph into exactly one of these classes (code — name):
{labels}

If the image does not let you choose, answer with the code "cannot_determine".
Answer with JSON only, no other text, in exactly this form:
{"label": "<one of: {codes}, cannot_determine>", "confidence": <a number from 0 to 1>}
"""


@dataclass(frozen=True)
class RenderedPrompt:
    """The text sent with each image, the codes it allows, and its identity for the config hash."""

    text: str
    codes: tuple[str, ...]
    template_source: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def identity(self) -> dict[str, Any]:
        """What the config hash records: the template's source and the exact rendered text's digest."""
        return {"prompt_sha256": self.sha256, "template": self.template_source, "version": TEMPLATE_VERSION}


def load_template(prompt: str | None, *, base_dir: Path | None = None) -> tuple[str, str]:
    """The template text and where it came from: the default, a file path, or inline text.

    A value is a path when it names an existing file or ends in ``.txt``/``.md``/``.prompt`` (a missing
    file is then a ConfigError naming it, not a prompt that says "prompts/derm.txt").
    """
    if prompt is None or not prompt.strip():
        return DEFAULT_TEMPLATE, "default"
    candidate = Path(prompt).expanduser()
    if base_dir is not None and not candidate.is_absolute():
        candidate = base_dir / candidate
    looks_like_path = "\n" not in prompt and (
        candidate.suffix in (".txt", ".md", ".prompt") or (len(prompt) < 4096 and candidate.is_file())
    )
    if looks_like_path:
        try:
            return candidate.read_text(encoding="utf-8"), f"file:{candidate.name}"
        except OSError as e:
            raise ConfigError(
                f"prompt template file {candidate} cannot be read ({e.strerror or e}); give an existing "
                "file or the template text itself",
                field="prompt",
            ) from None
    return prompt, "inline"


def render_prompt(template: str, taxonomy: Taxonomy, *, source: str = "inline") -> RenderedPrompt:
    """Fill ``{labels}`` (one ``code — name`` line each) and ``{codes}`` (comma-separated codes).

    Raises:
        ConfigError: the template has neither placeholder, so the model would not see the classes.
    """
    if LABELS_PLACEHOLDER not in template and CODES_PLACEHOLDER not in template:
        raise ConfigError(
            "the prompt template must contain {labels} (or {codes}) where the label list goes "
            f"(it is rendered as lines like 'mel — {taxonomy.long_names.get('mel', 'melanoma')}')",
            field="prompt",
        )
    lines = "\n".join(f"- {code} — {taxonomy.long_names.get(code, code)}" for code in taxonomy.codes)
    text = template.replace(LABELS_PLACEHOLDER, lines).replace(CODES_PLACEHOLDER, ", ".join(taxonomy.codes))
    return RenderedPrompt(text=text, codes=tuple(taxonomy.codes), template_source=source)


def answer_schema(codes: tuple[str, ...]) -> dict[str, Any]:
    """JSON schema of the answer: one enum label (or ``cannot_determine``) and a confidence in 0..1.

    Both fields are required and no others are allowed, as OpenAI's ``strict`` structured outputs demand.
    """
    return {
        "type": "object",
        "properties": {
            "label": {"type": "string", "enum": [*codes, ABSTAIN_LABEL]},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "required": ["label", "confidence"],
        "additionalProperties": False,
    }
