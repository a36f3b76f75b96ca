"""What every provider's answer becomes: one ``Prediction`` per image, whatever the vendor's wire format.

Scores are kept exactly as the provider gave them (its own label text, 0..1); the canonical code and
triage bucket are added by the taxonomy so answers from different vendors can be compared. ``cost_usd``
is ``None`` when unknown — never a guess — and ``warnings`` carries anything a reader must see beside the
numbers (out-of-domain model, intended-use prohibition, scores not normalised).

``outcome`` says whether the model answered at all: a generative model may abstain (a refusal is never a
label) or answer something that cannot be parsed; such a prediction may have no labels, no canonical code
and no out-of-domain warning, and ``reason`` says why. Classifiers always answer.
"""

from __future__ import annotations

from functools import partial
from operator import attrgetter
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from cloudderm.core import Outcome, Usage

__all__ = ["LabelScore", "Outcome", "Prediction", "Triage", "Usage"]

Triage = Literal["benign", "concerning"]

NOT_A_DIAGNOSIS = "Research output only: this is not a diagnosis and must not be used for clinical decisions."


class LabelScore(BaseModel):
    """One label as the provider names it, with its score in 0..1."""

    model_config = ConfigDict(frozen=True)

    label: str
    score: float = Field(ge=0.0, le=1.0)


# The contract "labels sorted by score, descending", kept whatever order the vendor (or a caller) used. The
# validator is ``sorted`` itself with a C-level key, so validating every Prediction runs no Python frame
# for it; the sort is stable, so equal scores keep their order.
SortedLabels = Annotated[
    list[LabelScore], AfterValidator(partial(sorted, key=attrgetter("score"), reverse=True))
]


class Prediction(BaseModel):
    """One provider's answer for one image, normalised for comparison."""

    provider: str
    adapter: str
    model: str
    image_sha256: str
    labels: SortedLabels
    canonical: str | None = None
    triage: Triage | None = None
    latency_ms: float
    cost_usd: float | None = None
    request_id: str | None = None
    warnings: list[str] = Field(default_factory=list)
    provider_details: dict[str, Any] = Field(default_factory=dict)
    outcome: Outcome = "answered"
    reason: str | None = None
    usage: Usage | None = None

    @property
    def answered(self) -> bool:
        return self.outcome == "answered"

    @property
    def top(self) -> LabelScore | None:
        """The highest-scoring label, or None when there is none (an abstention, an unparseable answer)."""
        return self.labels[0] if self.labels else None

    def __str__(self) -> str:
        top = self.top
        if top is None:
            why = f": {self.reason}" if self.reason else ""
            return f"{self.provider}: {self.outcome}{why} ({self.latency_ms:.0f} ms)"
        code = f" [{self.canonical}]" if self.canonical else ""
        return f"{self.provider}: {top.label}{code} {top.score:.3f} ({self.latency_ms:.0f} ms)"
