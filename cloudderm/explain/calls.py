"""Black-box calls for explanations: the normal adapter path, cached in the results store, counted.

Every perturbed image is prepared like any other (``Classifier.prepare``: decoded from pixels, re-encoded,
metadata-free, fitted to the provider's limits), sent in the provider's batch sizes with its retry policy,
and paced by its ``requests_per_second``. Each answer is written to ``results.sqlite`` keyed by (provider
config hash, image SHA-256), the same key the comparison uses, so a rerun answers from the store and
sends nothing. ``missing`` tells the planner which images would cost a call before any is made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cloudderm.retry import call_with_retries

if TYPE_CHECKING:
    from cloudderm.classifier import Classifier
    from cloudderm.compare.store import ResultStore
    from cloudderm.images import PreparedImage

__all__ = ["Answer", "CachedCaller"]


@dataclass(frozen=True)
class Answer:
    """The labels one image got (provider's own label text -> score) and whether it cost a call."""

    labels: dict[str, float]
    cached: bool
    cost_usd: float | None


class CachedCaller:
    """Send images to one provider through its adapter, answering from ``store`` where it can."""

    def __init__(self, clf: Classifier, store: ResultStore | None) -> None:
        from cloudderm.compare.store import config_hash

        self.clf = clf
        self.store = store
        self.chash = config_hash(clf.settings)
        self.calls = 0  # requests sent (a batching adapter packs several images into one)
        self.images_sent = 0
        self.cached = 0
        self.cost_usd: float | None = 0.0
        self._limiter = None
        rate = clf.settings.requests_per_second
        if rate:
            from cloudderm.compare.pacing import RateLimiter

            self._limiter = RateLimiter(rate)
        if store is not None:
            store.register_provider(self.chash, clf.name, clf.settings, clf.model_id)

    def _stored(self, image: PreparedImage) -> dict[str, float] | None:
        if self.store is None:
            return None
        row = self.store.result(self.chash, image.sha256)
        if row is None or row.get("status") != "ok":
            return None
        return {item["label"]: float(item["score"]) for item in row.get("labels", [])}

    def unanswered(self, images: Sequence[PreparedImage]) -> list[PreparedImage]:
        """The distinct images among ``images`` with no stored answer, i.e. those that would be sent."""
        unique = {img.sha256: img for img in images}
        return [img for img in unique.values() if self._stored(img) is None]

    def quote(self, images: Sequence[PreparedImage]) -> tuple[int, int, float | None]:
        """(requests, images, estimated USD) to answer ``images``, batched as ``answer`` will send them.

        The cost is what the price catalog attributes to each image of a call of that batch size, as
        ``Prediction.cost_usd`` will (None: no sourced price, or an always-on endpoint billed by the hour).
        """
        todo = self.unanswered(images)
        batches = self.clf.plan_batches(todo)
        pricing = self.clf.pricing
        cost: float | None = 0.0
        for batch in batches:
            each = pricing.cost_per_call(len(batch)) if pricing is not None else None
            cost = None if cost is None or each is None else cost + each * len(batch)
        return len(batches), len(todo), cost

    def answer(self, images: Sequence[PreparedImage]) -> list[Answer]:
        """One Answer per image, in order: stored ones first, the rest sent in provider-sized batches."""
        from cloudderm.compare.records import ok_record

        found: dict[str, Answer] = {}
        to_send: list[PreparedImage] = []
        for img in images:
            if img.sha256 in found or any(s.sha256 == img.sha256 for s in to_send):
                continue
            stored = self._stored(img)
            if stored is not None:
                found[img.sha256] = Answer(stored, True, 0.0)
                self.cached += 1
            else:
                to_send.append(img)
        for chunk in self.clf.plan_batches(to_send):
            if self._limiter is not None:
                self._limiter.acquire()
            predictions = call_with_retries(
                lambda c=chunk: self.clf.classify_prepared(c), self.clf.retry_policy
            )
            self.calls += 1
            self.images_sent += len(chunk)
            for img, prediction in zip(chunk, predictions):
                if prediction.cost_usd is None:
                    self.cost_usd = None
                elif self.cost_usd is not None:
                    self.cost_usd += prediction.cost_usd  # the catalog prices each image of a call
                labels = {ls.label: ls.score for ls in prediction.labels}
                found[img.sha256] = Answer(labels, False, prediction.cost_usd)
                if self.store is not None:
                    self.store.put(
                        self.chash,
                        img.sha256,
                        self.clf.name,
                        "ok",
                        final=True,
                        attempts=1,
                        record=ok_record(prediction),
                    )
        return [found[img.sha256] for img in images]
