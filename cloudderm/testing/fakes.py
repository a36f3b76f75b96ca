"""A deterministic, configurable fake provider for testing pipelines built on cloudderm.

Its scores are a pure function of the image bytes (so the same image always gets the same answer and
different images usually differ), and it can be told to fail, throttle or be slow for chosen images. It
records every call so tests can assert what was sent and how often. It is a test double: it never
pretends to be a model, its service facts say "fake", and its model facts say so too.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence

from pydantic import Field

from cloudderm.classifier import AdapterSettings, Classifier, ImageLimits, RawResult
from cloudderm.core import ImageContext
from cloudderm.errors import ProviderError
from cloudderm.facts import ModelFacts, ServiceFacts
from cloudderm.images import PreparedImage

__all__ = ["FakeClassifier", "FakeSettings"]

HAM_CODES = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]


class FakeSettings(AdapterSettings):
    """Fake provider settings; from YAML: ``adapter: cloudderm.testing.fakes:FakeClassifier``."""

    adapter: str = "fake"
    model: str = "fake-model"
    labels: list[str] = Field(default_factory=lambda: list(HAM_CODES))
    region: str | None = "local"
    latency_s: float = 0.0
    batch_size: int = 1
    max_bytes: int | None = None
    seed: str = ""
    call_log: str | None = None  # file that gets one line per image sent, so other processes can count calls
    context_log: str | None = None  # file that gets one JSON line per image: its sha256 and the context sent


class FakeClassifier(Classifier[FakeSettings]):
    """Deterministic scores from the image hash; optional scripted faults per call."""

    adapter = "fake"
    vendor = "local"
    Settings = FakeSettings

    def __init__(self, name: str, settings: FakeSettings | None = None, **kwargs) -> None:
        settings = settings or FakeSettings()
        super().__init__(name, settings, **kwargs)
        self.max_batch_size = settings.batch_size
        self.calls: list[list[str]] = []
        self.per_image: Counter[str] = Counter()
        self.contexts: dict[str, ImageContext | None] = {}  # image sha256 -> the context it arrived with
        self.in_flight = 0
        self.max_in_flight = 0
        self.fault: Callable[[PreparedImage, int], ProviderError | None] | None = None
        self._lock = threading.Lock()
        self.closed = False

    @property
    def model_id(self) -> str:
        return self.settings.model

    def service_facts(self) -> ServiceFacts:
        return ServiceFacts(
            service="fake (test double)",
            vendor="local",
            region=self.settings.region,
            data_leaves_machine=False,
        )

    def model_facts(self) -> ModelFacts:
        return ModelFacts(
            model_id=self.model_id,
            intended_use="testing cloudderm pipelines only",
            labels=list(self.settings.labels),
            source="cloudderm.testing.fakes",
        )

    def image_limits(self) -> ImageLimits:
        return ImageLimits(max_bytes=self.settings.max_bytes)

    def scores_for(self, image_sha256: str) -> list[tuple[str, float]]:
        """The deterministic distribution this fake returns for an image."""
        digest = hashlib.sha256((self.settings.seed + image_sha256).encode()).digest()
        raw = [1 + digest[i % len(digest)] for i in range(len(self.settings.labels))]
        total = float(sum(raw))
        return [(label, value / total) for label, value in zip(self.settings.labels, raw)]

    def _infer(self, images: Sequence[PreparedImage]) -> list[RawResult]:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.calls.append([img.sha256 for img in images])
            attempts = []
            for img in images:
                self.per_image[img.sha256] += 1
                attempts.append(self.per_image[img.sha256])
                self.contexts[img.sha256] = img.context
            if self.settings.context_log:
                with open(self.settings.context_log, "a", encoding="utf-8") as log:
                    log.writelines(
                        json.dumps(
                            {
                                "provider": self.name,
                                "sha256": img.sha256,
                                "context": img.context.as_dict() if img.context else None,
                            }
                        )
                        + "\n"
                        for img in images
                    )
            if self.settings.call_log:
                with open(self.settings.call_log, "a", encoding="utf-8") as log:
                    log.writelines(f"{self.name} {img.sha256}\n" for img in images)
        try:
            if self.settings.latency_s:
                time.sleep(self.settings.latency_s)
            if self.fault is not None:
                for img, attempt in zip(images, attempts):
                    error = self.fault(img, attempt)
                    if error is not None:
                        raise error
            return [
                RawResult(labels=self.scores_for(img.sha256), request_id=f"fake-{img.sha256[:8]}")
                for img in images
            ]
        finally:
            with self._lock:
                self.in_flight -= 1

    def close(self) -> None:
        self.closed = True
