"""The one interface every provider is used through.

An adapter only *encodes a request, makes the call and decodes the answer* (``_infer``). Everything that
must be identical across providers lives here, once: image preparation, timing, sorting, taxonomy mapping,
out-of-domain and intended-use warnings, cost attribution and retries for direct use. That is what makes
"change one name in the YAML, keep the code" true.
"""

from __future__ import annotations

import functools
import math
import operator
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter

from cloudderm.core import ImageContext, Outcome, PriceQuery, Usage, truncate_reason
from cloudderm.images import ImageLike, PreparedImage, prepare
from cloudderm.prediction import LabelScore, Prediction
from cloudderm.retry import RetryPolicy, call_with_retries
from cloudderm.taxonomy import HAM10000, Taxonomy

if TYPE_CHECKING:
    from cloudderm.explain.types import Explanation
    from cloudderm.facts import GovernanceCard, ModelFacts, ServiceFacts
    from cloudderm.pricing import PricingModel

__all__ = [
    "AdapterSettings",
    "BatchItem",
    "Classifier",
    "ImageContext",
    "ImageLimits",
    "PriceQuery",
    "RawResult",
    "Usage",
]

ContextLike = ImageContext | Mapping[str, Any] | None
# One item of ``classify_batch``: an image, or an ``(image, context)`` pair.
BatchItem = ImageLike | PreparedImage | tuple[ImageLike | PreparedImage, ContextLike]

NOT_NORMALISED_WARNING = "scores not normalised: they sum to {total:.3f}, not 1"
INDEPENDENT_SCORES_WARNING = (
    "scores are independent per-label probabilities (multi-label), not a distribution"
)


class AdapterSettings(BaseModel):
    """Settings every adapter accepts; each adapter subclasses this with its own fields.

    ``extra="forbid"`` so a typo in the YAML is an error naming the field, not a silently ignored key.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    adapter: str
    timeout_s: float | None = Field(default=None, gt=0)
    max_retries: int | None = Field(default=None, ge=0)
    concurrency: int | None = Field(default=None, ge=1)
    requests_per_second: float | None = Field(default=None, gt=0)
    label_map: dict[str, str] = Field(default_factory=dict)
    model_card: dict[str, Any] | None = None
    pricing: dict[str, Any] | None = None
    # (field path, variable, config file) of each ``${VAR}`` the environment lacked when the config was
    # read. Secrets are needed only for a call, so the check is at warm-up / first call (require_env).
    _missing_env: tuple[tuple[str, str, str], ...] = PrivateAttr(default=())
    # (path, template) of each value the config wrote with ``${VAR}``: what config.without_env_values puts
    # back before settings leave this machine (Ray), so secret values never travel and each node resolves
    # its own.
    _env_templates: tuple[tuple[tuple[Any, ...], str], ...] = PrivateAttr(default=())

    def require_env(self, provider: str) -> None:
        """Raise the ConfigError (exit 2) naming the unset variable, if these settings still hold one.

        Called when a provider is about to be warmed up or called, never when a config is only read: ``cost``
        and ``providers`` make no call, so they never need the secrets.

        It runs before every call, so it reads the private value from ``__pydantic_private__`` (a slot)
        rather than through ``BaseModel.__getattr__``, a Python-level lookup on every call.
        """
        private = self.__pydantic_private__ or {}
        missing: tuple[tuple[str, str, str], ...] = private.get("_missing_env", ())
        if missing:
            from cloudderm.errors import unset_variable_error

            field, var, source = missing[0]
            raise unset_variable_error(var, source, provider, field)


@dataclass(frozen=True)
class ImageLimits:
    """What a provider accepts; the runner prepares each image once to the strictest of these."""

    max_bytes: int | None = None
    max_side: int | None = None

    def merge(self, other: ImageLimits) -> ImageLimits:
        """The stricter of two limits, field by field."""

        def stricter(a: int | None, b: int | None) -> int | None:
            return b if a is None else a if b is None else min(a, b)

        return ImageLimits(stricter(self.max_bytes, other.max_bytes), stricter(self.max_side, other.max_side))


@dataclass
class RawResult:
    """What an adapter decoded from one image's answer, before normalisation.

    ``outcome`` is "answered" for every classifier; a generative model's refusal is "abstained" (with the
    reason) and an answer that cannot be read is "unparseable" (with the text, at most 200 characters);
    both may have no labels. ``usage`` is what the call consumed (tokens, billed units) when the provider
    reports it; pricing reads it.
    """

    labels: list[tuple[str, float]]
    model: str | None = None
    request_id: str | None = None
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    scores_independent: bool = False
    usage: Usage | None = None
    outcome: Outcome = "answered"
    reason: str | None = None


SettingsT = TypeVar("SettingsT", bound=AdapterSettings)


class Classifier(ABC, Generic[SettingsT]):
    """Classify images through one provider. Sync by design; the compare runner adds concurrency.

    Generic in its settings: ``class MyClassifier(Classifier[MySettings])`` makes ``self.settings`` a
    ``MySettings`` for type checkers, with no per-adapter alias. Subclasses set ``adapter``, ``vendor`` and
    ``Settings`` and implement ``_infer``, ``model_id`` and ``service_facts``; they override
    ``image_limits``, ``model_facts``, ``price_query``, ``warm_up`` and ``close`` where relevant and set
    ``max_batch_size`` above 1 when the provider accepts several images per call.
    """

    adapter: ClassVar[str]
    # Who is paid / who receives the images: "aws", "azure", "gcp", "openai", ..., or "local" (this machine).
    vendor: ClassVar[str] = "unknown"
    Settings: ClassVar[type[AdapterSettings]] = AdapterSettings
    # A local model whose inference may run in another process (it pickles, and is CPU-bound): ``compare
    # --workers`` and ``--engine ray`` replicas; see also ``worker_startup_is_light``.
    runs_in_worker_process: ClassVar[bool] = False
    max_batch_size: int = 1

    def __init__(
        self,
        name: str,
        settings: SettingsT,
        *,
        taxonomy: Taxonomy = HAM10000,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        if not isinstance(settings, self.Settings):
            from cloudderm.errors import ConfigError

            raise ConfigError(
                f"settings must be {self.Settings.__name__}, not {type(settings).__name__}",
                provider=name,
                field="adapter",
            )
        self.name = name
        self.settings: SettingsT = settings
        self._base_taxonomy = taxonomy
        self.taxonomy = taxonomy.with_synonyms(settings.label_map)
        self.retry_policy = retry_policy or RetryPolicy(max_retries=settings.max_retries or 0)
        self.standing_warnings: list[str] = []
        self._governance: GovernanceCard | None = None
        self._pricing_resolved = False
        self._pricing: PricingModel | None = None

    # ---- what each adapter provides -------------------------------------------------------------
    @abstractmethod
    def _infer(self, images: Sequence[PreparedImage]) -> list[RawResult]:
        """Send ``images`` (at most ``max_batch_size``) and decode one RawResult per image, in order."""

    @property
    @abstractmethod
    def model_id(self) -> str:
        """The model id / endpoint / deployed model as the provider names it."""

    @abstractmethod
    def service_facts(self) -> ServiceFacts:
        """Where images go when this adapter is used (service, vendor, region, leaves machine?)."""

    def model_facts(self) -> ModelFacts | None:
        """Facts from the model's own card, when the adapter can read one."""
        return None

    def image_limits(self) -> ImageLimits:
        """The provider's request limits, used to prepare images that fit."""
        return ImageLimits()

    def worker_startup_is_light(self) -> bool:
        """Whether a fresh process loads this local model cheaply next to the work it then does.

        ``compare --workers N`` gives every worker its own copy. A runtime whose import alone costs seconds
        of CPU (torch: about 1.9 s with transformers) doubled the CPU of a 24-photo comparison with two
        workers (benchmarks/bench_compare_workers.py), while in the parent it already spreads each call
        over its own intra-op threads and releases the GIL; such an adapter answers False and stays in the
        parent. ``--engine ray`` ignores this: there each node pays its start-up once for a large run.
        """
        return True

    def hash_extras(self) -> dict[str, Any]:
        """What changes this provider's answers besides its wire settings (a generative adapter returns its
        rendered prompt template here); folded into the config hash, so changing it re-sends."""
        return {}

    def price_query(self) -> PriceQuery:
        """What the price catalog needs to price this provider (see ``cloudderm.core.PriceQuery``).

        It must read only ``self.name`` and ``self.settings``: pricing may call it on an adapter that was
        never built (``cloudderm cost`` from a config). The default prices "local" adapters at zero and
        leaves every other vendor unknown until the adapter says which catalog entry applies.
        """
        return PriceQuery(local=self.vendor == "local")

    def warm_up(self) -> None:
        """One-off setup before timed calls (load the model, build the SDK client); sends no image.

        The compare runner calls it for every provider before the first image, so a model load, an ONNX
        export or an SDK import is not counted as the first image's latency. Safe to call more than once.
        """

    def close(self) -> None:
        """Release clients, sessions and models."""

    # ---- provided to users ----------------------------------------------------------------------
    def prepare(self, image: ImageLike | PreparedImage) -> PreparedImage:
        """Prepare one input for this provider's limits (metadata stripped, RGB, fitted)."""
        limits = self.image_limits()
        return prepare(image, max_bytes=limits.max_bytes, max_side=limits.max_side)

    def classify(self, image: ImageLike | PreparedImage, context: ContextLike = None) -> Prediction:
        """Classify one image; retryable provider faults are retried per the settings.

        ``context`` (an ``ImageContext`` or a mapping with ``age``, ``sex``, ``site``) reaches the adapter as
        ``image.context``; adapters that cannot use it ignore it.
        """
        return self.classify_batch([(image, context)])[0]

    def classify_batch(self, items: Sequence[BatchItem]) -> list[Prediction]:
        """Classify several images, in provider-sized batches; one Prediction per image, in order.

        Each item is an image, or an ``(image, context)`` pair.
        """
        prepared = [self._prepare_item(item) for item in items]
        results: list[Prediction] = []
        for chunk in self.plan_batches(prepared):
            results.extend(call_with_retries(lambda c=chunk: self.classify_prepared(c), self.retry_policy))
        return results

    def classify_prepared(self, images: Sequence[PreparedImage]) -> list[Prediction]:
        """Classify already-prepared images without retrying (the runner owns retries and pacing)."""
        self.settings.require_env(self.name)  # never send a literal ``${VAR}`` as a credential
        out: list[Prediction] = []
        for chunk in self.plan_batches(images):
            started = time.perf_counter()
            raws = self._infer(chunk)
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            if len(raws) != len(chunk):
                from cloudderm.errors import ResponseFormatError

                raise ResponseFormatError(
                    f"{len(raws)} results for {len(chunk)} images", provider=self.name, endpoint=self.model_id
                )
            per_image_ms = elapsed_ms / len(chunk)
            for image, raw in zip(chunk, raws):
                out.append(self._finish(image, raw, per_image_ms, len(chunk)))
        return out

    def explain(
        self,
        image: ImageLike | PreparedImage,
        *,
        method: str = "auto",
        target: str | None = None,
        sanity: bool = False,
        max_calls: int | None = None,
        yes: bool = False,
    ) -> Explanation:
        """A saliency map of ``image`` for ``target`` (default: the top label); see docs/explain.md.

        ``method``: ``auto`` (Grad-CAM for local CNNs, rollout for local ViTs, occlusion otherwise),
        ``gradcam``, ``integrated-gradients``, ``rollout`` or ``occlusion``. Occlusion sends many images:
        above ``max_calls`` (default: the 200-call budget, unless ``yes``) it refuses before the first.
        """
        from cloudderm.explain.api import explain_one

        return explain_one(
            self, image, method=method, target=target, sanity=sanity, max_calls=max_calls, yes=yes
        )

    @property
    def governance(self) -> GovernanceCard:
        """This provider's governance card (service, vendor and model facts, sourced and dated)."""
        if self._governance is None:
            from cloudderm.governance.cards import build_card

            self._governance = build_card(self)
        return self._governance

    @property
    def pricing(self) -> PricingModel | None:
        """How this provider is priced, or None when no sourced price is known."""
        if not self._pricing_resolved:
            from cloudderm.pricing import pricing_for

            self._pricing = pricing_for(self)
            self._pricing_resolved = True
        return self._pricing

    def __enter__(self) -> Classifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, model={self.model_id!r})"

    def plan_batches(self, images: Sequence[PreparedImage]) -> list[Sequence[PreparedImage]]:
        """Split images into the groups sent per call: ``max_batch_size`` at a time by default.

        Adapters whose provider limits a request by bytes rather than by count (Vertex AI) override this.
        """
        size = max(1, self.max_batch_size)
        if 0 < len(images) <= size:  # the usual case (one image, or one batch): no slicing, no range
            return [images]
        return [images[i : i + size] for i in range(0, len(images), size)]

    # ---- internals ------------------------------------------------------------------------------
    def _prepare_item(self, item: BatchItem) -> PreparedImage:
        if isinstance(item, tuple):
            if len(item) != 2:
                raise TypeError("a batch item is an image or an (image, context) pair")
            image, context = item
            prepared = self.prepare(image)
            coerced = ImageContext.of(context)
            return prepared if coerced is None else prepared.with_context(coerced)
        return self.prepare(item)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as "rebuild from settings": clients, locks and models are created again on first use.

        What a constructor was handed besides settings (a test transport, a credential object) is not
        carried; the rebuilt adapter resolves them from the environment, as a configured one does.
        """
        state = {"standing_warnings": list(self.standing_warnings)}
        return (
            _rebuild,
            (type(self), self.name, self.settings, self._base_taxonomy, self.retry_policy, state),
        )

    def _finish(self, image: PreparedImage, raw: RawResult, latency_ms: float, batch: int) -> Prediction:
        """Normalise one decoded answer into a Prediction with taxonomy, warnings and cost.

        The labels are sorted and clamped here (``label_rows``) and validated once, as part of the
        ``Prediction`` itself: building ``LabelScore``s in a pass of their own and then validating the
        ``Prediction`` around them cost a second trip through pydantic on every answer. This runs for every
        answer of every provider, so it does no work twice (issue #15 measured it against the SDK call).
        """
        rows = label_rows(raw.labels)
        warnings = [*self.standing_warnings, *raw.warnings]
        answered = bool(rows) and raw.outcome == "answered"
        canonical, triage, out_of_domain = self.taxonomy.map_top(rows[0]["label"] if answered else None)
        if out_of_domain:
            warnings.append(out_of_domain)
        if answered:
            total = sum(map(_SCORE, rows))
            if raw.scores_independent:
                warnings.append(INDEPENDENT_SCORES_WARNING)
            elif not math.isclose(total, 1.0, abs_tol=0.02) and self._returns_all_labels(raw):
                warnings.append(NOT_NORMALISED_WARNING.format(total=total))
        # Validation copies the dict into the Prediction, so raw.details is neither copied here nor mutated.
        details = raw.details
        if batch > 1 and "batch_size" not in details:
            details = {**details, "batch_size": batch}
        pricing = self.pricing
        cost = pricing.cost_per_call(batch) if pricing is not None else None
        if raw.usage is not None:
            cost_for_usage = getattr(pricing, "cost_for_usage", None)
            if cost_for_usage is not None:
                cost = cost_for_usage(raw.usage)  # token-priced: this call's own measured usage
        # The model's own validator, called directly: the same full validation as Prediction(**fields),
        # without BaseModel.__init__'s Python frame around it (measurable on every answer; issue #15).
        prediction: Prediction = Prediction.__pydantic_validator__.validate_python(
            {
                "provider": self.name,
                "adapter": self.adapter,
                "model": raw.model or self.model_id,
                "image_sha256": image.sha256,
                "labels": rows,  # validated into LabelScores here (one pass, see the docstring)
                "canonical": canonical,
                "triage": triage,
                "latency_ms": latency_ms,
                "cost_usd": cost,
                "request_id": raw.request_id,
                "warnings": list(dict.fromkeys(warnings)),
                "provider_details": details,
                "outcome": raw.outcome,
                "reason": truncate_reason(raw.reason),
                "usage": raw.usage,
            }
        )
        return prediction

    def _returns_all_labels(self, raw: RawResult) -> bool:
        """Whether the answer is a full distribution (so its sum should be 1); adapters may refine."""
        return not raw.details.get("truncated_labels", False)


def _rebuild(
    cls: type[Classifier],
    name: str,
    settings: AdapterSettings,
    taxonomy: Taxonomy,
    retry_policy: RetryPolicy,
    state: dict[str, Any],
) -> Classifier:
    """Unpickle an adapter: built from its settings alone, then given back its standing warnings."""
    classifier = cls(name, settings, taxonomy=taxonomy, retry_policy=retry_policy)
    classifier.standing_warnings = list(state.get("standing_warnings", []))
    return classifier


@functools.cache
def _label_score_list() -> TypeAdapter[list[LabelScore]]:
    return TypeAdapter(list[LabelScore])


_SCORE = operator.itemgetter("score")


def label_scores(pairs: Sequence[tuple[str, float]]) -> list[LabelScore]:
    """``(label, score)`` pairs as LabelScores, highest score first, validated in one pass.

    Why one pass: an ImageNet-sized answer has 1,000 labels, and building each ``LabelScore`` on its own
    costs ~2 µs of Python per label (2 ms per image); pydantic validates the whole list in its core in a
    third of that. Scores a hair outside 0..1 are clamped first; anything further out still fails.
    ``Classifier._finish`` goes one step further and validates the rows inside its ``Prediction``.
    """
    return _label_score_list().validate_python(label_rows(pairs))


def label_rows(pairs: Sequence[tuple[str, float]]) -> list[dict[str, Any]]:
    """``(label, score)`` pairs as the ``{"label", "score"}`` rows a LabelScore is validated from: text
    labels, float scores (clamped), highest score first; not validated yet.

    A label that is already text with a float score already in 0..1 (every label of a well-formed answer)
    is taken as it is, without a Python call per label; anything else goes through ``str`` and ``_clamp``
    as before. The sort is stable, so equal scores keep the provider's order.
    """
    rows = [
        {"label": label, "score": score}
        if type(label) is str and type(score) is float and 0.0 <= score <= 1.0
        else {"label": str(label), "score": _clamp(score)}
        for label, score in pairs
    ]
    rows.sort(key=_SCORE, reverse=True)
    return rows


def _clamp(score: float) -> float:
    """Tolerate float noise just outside 0..1 (e.g. 1.0000001) without hiding real range errors."""
    value = float(score)
    if -1e-6 <= value < 0.0:
        return 0.0
    if 1.0 < value <= 1.0 + 1e-6:
        return 1.0
    return value
