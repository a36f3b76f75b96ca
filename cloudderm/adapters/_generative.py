"""The base of every vision-language-model adapter: ask with the rendered prompt, parse strictly, score.

Why a base class: a VLM is used as a classifier the same way whatever the vendor. The prompt comes from the
taxonomy (``_vlm_prompt``), the reply is parsed strictly into label | abstained | unparseable
(``_vlm_parse``), and the score has one of three declared sources, recorded in
``provider_details["score_source"]`` for every answer:

* ``stated-confidence``: the model's own ``confidence`` number from the structured answer;
* ``logprobs``: the probability of the chosen label's tokens, where the API returns token logprobs;
* ``vote-share``: ``samples: k`` answers at the configured temperature, each label scored by its share of
  the k votes (with one sample that share is 1 and says nothing about certainty; the details say so).

None of these is calibrated. A subclass only implements ``_ask`` (one call, one reply) and the facts.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlparse

from pydantic import Field, field_validator, model_validator

from cloudderm.adapters._lazy_client import LazyClient
from cloudderm.adapters._vlm_parse import ParsedAnswer, keep, parse_answer
from cloudderm.adapters._vlm_prompt import RenderedPrompt, load_template, render_prompt
from cloudderm.classifier import AdapterSettings, Classifier, RawResult, Usage
from cloudderm.governance.card import ModelFacts
from cloudderm.images import PreparedImage

__all__ = ["GenerativeClassifier", "GenerativeSettings", "RemoteGenerativeClassifier", "Reply"]

GENERAL_PURPOSE_WARNING = (
    "general-purpose vision-language model: no medical intended use, scores are not calibrated probabilities"
)
NO_MEDICAL_USE = (
    "general-purpose multimodal model; the vendor states no medical intended use (not a medical device)"
)
MAX_SAMPLES = 20


class GenerativeSettings(AdapterSettings):
    """Settings common to every VLM adapter (names fixed by the issue: model, temperature, samples, ...)."""

    model: str = Field(min_length=1)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    samples: int = Field(default=1, ge=1, le=MAX_SAMPLES)
    prompt: str | None = None
    max_output_tokens: int = Field(default=64, ge=1, le=4096)
    endpoint_url: str | None = None

    @field_validator("endpoint_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            parsed = urlparse(value)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise ValueError("must be an http(s) URL such as http://127.0.0.1:8080/v1")
        return value

    @model_validator(mode="after")
    def _votes_need_sampling(self) -> GenerativeSettings:
        if self.samples > 1 and self.temperature == 0:
            raise ValueError(
                f"samples: {self.samples} with temperature: 0 repeats one deterministic answer, so the vote "
                "share would mean nothing; set temperature above 0 (e.g. 0.7) or samples: 1"
            )
        return self


@dataclass
class Reply:
    """One call's answer as the adapter decoded it from the vendor's envelope."""

    text: str | None
    usage: Usage | None = None
    model: str | None = None
    request_id: str | None = None
    filtered: str | None = None  # content filter / safety block: the categories, kept as the reason
    refusal: str | None = None  # a refusal the API reports in its own field (OpenAI ``message.refusal``)
    label_probability: float | None = None  # from token logprobs, when the API returned them
    details: dict[str, Any] = field(default_factory=dict)


GenSettingsT = TypeVar("GenSettingsT", bound=GenerativeSettings)


class GenerativeClassifier(Classifier[GenSettingsT]):
    """A vision-language model used as a classifier; subclasses implement ``_ask`` and the facts."""

    Settings: ClassVar[type[AdapterSettings]] = GenerativeSettings
    vendor: ClassVar[str] = "unknown"

    def __init__(self, name: str, settings: GenerativeSettings, **kwargs: Any) -> None:
        super().__init__(name, settings, **kwargs)
        template, source = load_template(settings.prompt)
        self.prompt: RenderedPrompt = render_prompt(template, self.taxonomy, source=source)

    # ---- what a subclass provides ---------------------------------------------------------------
    @abstractmethod
    def _ask(self, image: PreparedImage) -> Reply:
        """Send ``self.prompt_text(image)`` with ``image`` once; decode the reply (parsed later)."""

    # ---- shared behaviour -----------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        return self.settings.model

    def prompt_text(self, image: PreparedImage) -> str:
        """The rendered prompt, plus one line of the image's context (age, sex, site) when it has one."""
        context = image.context
        if context is None or context.is_empty():
            return self.prompt.text
        facts = []
        if context.age is not None:
            facts.append(f"age {context.age:g} years")
        if context.sex is not None:
            facts.append(f"sex {context.sex}")
        if context.site:
            facts.append(f"lesion site {context.site}")
        return f"{self.prompt.text}\nClinical context given with the image: {', '.join(facts)}.\n"

    def hash_extras(self) -> dict[str, Any]:
        return self.prompt.identity()

    def model_facts(self) -> ModelFacts:
        return ModelFacts(
            model_id=self.settings.model,
            intended_use=NO_MEDICAL_USE,
            label_domain="in-domain",
            labels=list(self.prompt.codes),
            source=f"cloudderm {self.adapter} adapter (answers constrained to the taxonomy by the prompt)",
        )

    def _infer(self, images: Sequence[PreparedImage]) -> list[RawResult]:
        return [self._classify_one(image) for image in images]

    def _classify_one(self, image: PreparedImage) -> RawResult:
        replies = [self._ask(image) for _ in range(self.settings.samples)]
        parsed = [self._parse(reply) for reply in replies]
        usage = _sum_usage(r.usage for r in replies)
        last = replies[-1]
        details: dict[str, Any] = {
            "prompt_sha256": self.prompt.sha256,
            "samples": self.settings.samples,
            "temperature": self.settings.temperature,
            "outcomes": [p.outcome for p in parsed],
        }
        for reply in replies:
            details.update(reply.details)
        raw = RawResult(labels=[], model=last.model, request_id=last.request_id, usage=usage, details=details)
        if self.settings.samples == 1:
            return self._single(parsed[0], replies[0], raw)
        return self._vote(parsed, raw)

    def _parse(self, reply: Reply) -> ParsedAnswer:
        if reply.filtered:
            return ParsedAnswer("abstained", reason=keep(f"content filter: {reply.filtered}"))
        if reply.refusal:
            return ParsedAnswer("abstained", reason=keep(f"refusal: {reply.refusal}"))
        return parse_answer(reply.text, self.prompt.codes)

    def _single(self, answer: ParsedAnswer, reply: Reply, raw: RawResult) -> RawResult:
        raw.outcome, raw.reason = answer.outcome, answer.reason
        if answer.outcome != "answered" or answer.label is None:
            return raw
        raw.details["truncated_labels"] = True  # one label, not a distribution: its score need not be 1
        if reply.label_probability is not None:  # measured by the model's own token probabilities
            raw.labels = [(answer.label, reply.label_probability)]
            raw.details["score_source"] = "logprobs"
            if answer.confidence is not None:
                raw.details["stated_confidence"] = answer.confidence
        elif answer.confidence is not None:
            raw.labels = [(answer.label, answer.confidence)]
            raw.details["score_source"] = "stated-confidence"
        else:
            raw.labels = [(answer.label, 1.0)]
            raw.details["score_source"] = "vote-share"
            raw.warnings.append("score is the vote share of 1 sample: it says nothing about certainty")
        return raw

    def _vote(self, parsed: list[ParsedAnswer], raw: RawResult) -> RawResult:
        k = len(parsed)
        votes = Counter(p.label for p in parsed if p.outcome == "answered" and p.label is not None)
        raw.details["score_source"] = "vote-share"
        raw.details["votes"] = dict(votes)
        if not votes:
            first = next((p for p in parsed if p.outcome == "abstained"), parsed[0])
            raw.outcome, raw.reason = first.outcome, first.reason
            return raw
        raw.labels = [(label, count / k) for label, count in votes.most_common()]
        answered = sum(votes.values())
        raw.details["truncated_labels"] = answered < k  # the other shares went to abstentions
        return raw


def _sum_usage(usages: Any) -> Usage | None:
    """The tokens of all samples together (each sample is a billed call); None when none reported usage."""
    reported = [u for u in usages if u is not None]
    if not reported:
        return None

    def total(name: str) -> Any:
        values = [getattr(u, name) for u in reported if getattr(u, name) is not None]
        return sum(values) if values else None

    return Usage(total("input_tokens"), total("output_tokens"), total("billed_units"))


def label_probability_from_logprobs(tokens: Sequence[tuple[str, float]], label: str) -> float | None:
    """exp(sum of logprobs) of the tokens that spell ``label`` inside the reply, or None if not found.

    The reply's tokens are concatenated; the label's first occurrence as a JSON string value (``"mel"``)
    is located and the logprobs of the tokens overlapping it are summed.
    """
    text = "".join(t for t, _ in tokens)
    start = text.find(f'"{label}"')
    start = start + 1 if start >= 0 else text.find(label)
    if start < 0:
        return None
    end = start + len(label)
    position, total, touched = 0, 0.0, False
    for token, logprob in tokens:
        token_end = position + len(token)
        if token_end > start and position < end:
            total += logprob
            touched = True
        position = token_end
    return math.exp(total) if touched else None


class RemoteGenerativeClassifier(GenerativeClassifier[GenSettingsT]):
    """A generative provider reached through its vendor SDK client, built once on first use.

    Why here: the client is created lazily (so the adapter pickles as its settings and ``import cloudderm``
    loads no SDK), shared by the runner's threads, and closed with the adapter. Subclasses write only
    ``_build_client``: how to make the vendor's client from the settings.
    """

    default_timeout_s: ClassVar[float] = 60.0  # seconds, when the settings give no timeout_s

    def __init__(self, name: str, settings: GenSettingsT, **kwargs: Any) -> None:
        super().__init__(name, settings, **kwargs)
        self.timeout_s = settings.timeout_s or self.default_timeout_s
        self._client = LazyClient(self._build_client)

    @abstractmethod
    def _build_client(self) -> Any:
        """The vendor SDK's client for these settings (imports the SDK; raises MissingDependencyError)."""

    def warm_up(self) -> None:
        self._client.get()

    @property
    def client(self) -> Any:
        return self._client.get()

    def close(self) -> None:
        self._client.close()
