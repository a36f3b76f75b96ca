"""An Azure AutoML image-classification model exported to ONNX, run locally with onnxruntime.

AutoML for images writes ``model.onnx`` and ``labels.json`` (class names, index = class id) to the best
run's ``train_artifacts``. Source for everything below: Microsoft Learn "how-to-inference-onnx-automl-
image-models" (multi-class and multi-label tabs): input ``input1`` float32 ``(batch, 3, H, W)``; output
``output1`` logits ``(batch, num_classes)``, softmax for multi-class and sigmoid for multi-label; the
validation transform is resize ``valid_resize_size`` (256), centre-crop ``valid_crop_size`` (224), /255,
ImageNet mean/std.

Preprocessing follows that article's "With PyTorch" sample, i.e. torchvision ``Resize(256)`` (the
*shorter* side becomes 256, aspect kept, bilinear) then ``CenterCrop``; that is the transform AutoML
validates with. The article's "Without PyTorch" sample resizes to a 256x256 *square* instead, which
distorts non-square images and gives different scores; this adapter does not copy it.

No image leaves the machine: the governance card says so, and the model facts come from ``labels.json``
and, when present, the MLflow ``MLmodel`` file next to the model.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field

from cloudderm.classifier import AdapterSettings, Classifier, RawResult
from cloudderm.errors import ConfigError, MissingDependencyError, ResponseFormatError, install_hint
from cloudderm.facts import ModelFacts, ServiceFacts
from cloudderm.images import PreparedImage

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "AzureMLOnnxClassifier", "AzureMLOnnxSettings", "preprocess"]

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
DEFAULT_CROP = 224
PREFERRED_OUTPUT = "output1"
MLMODEL = "MLmodel"


class AzureMLOnnxSettings(AdapterSettings):
    """Settings of one exported AutoML ONNX model (see docs/azureml.md)."""

    adapter: str = "azureml-onnx"
    model_path: str
    labels_path: str | None = None
    task: Literal["multiclass", "multilabel"] = "multiclass"
    resize_size: int = Field(default=256, ge=1)
    crop_size: int | None = Field(default=None, ge=1)
    providers: list[str] | None = None
    batch_size: int = Field(default=16, ge=1)
    intra_op_threads: int | None = Field(default=None, ge=1)


def preprocess(image: Image.Image, resize_size: int, crop: tuple[int, int]) -> np.ndarray:
    """One image as AutoML's validation transform makes it: a float32 ``(3, H, W)`` array.

    Same arithmetic as torchvision's ``Resize(resize_size)`` on a PIL image (shorter side to
    ``resize_size``, longer side ``int(resize_size * long / short)``, PIL bilinear), ``CenterCrop(crop)``
    (offsets ``int(round((size - crop) / 2))``), ``ToTensor`` and ``Normalize(ImageNet mean, std)``.
    """
    from PIL import Image as PILImage

    rgb = image.convert("RGB")
    width, height = rgb.size
    short, long = (width, height) if width <= height else (height, width)
    if short != resize_size:
        new_long = int(resize_size * long / short)
        size = (resize_size, new_long) if width <= height else (new_long, resize_size)
        rgb = rgb.resize(size, PILImage.Resampling.BILINEAR)
    crop_h, crop_w = crop
    width, height = rgb.size
    top = round((height - crop_h) / 2.0)
    left = round((width - crop_w) / 2.0)
    pixels = np.asarray(rgb.crop((left, top, left + crop_w, top + crop_h)), dtype=np.float32) / 255.0
    return ((pixels - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (max-shifted, so large logits cannot overflow)."""
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Element-wise sigmoid in float64: one independent probability per label (multi-label)."""
    return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))


class _Model:
    """A loaded session and what was read from its declared input and output."""

    def __init__(
        self, session: Any, input_name: str, output_name: str, crop: tuple[int, int], batch: int | None
    ) -> None:
        self.session = session
        self.input_name = input_name
        self.output_name = output_name
        self.crop = crop
        self.fixed_batch = batch


class AzureMLOnnxClassifier(Classifier[AzureMLOnnxSettings]):
    """Score images with an exported AutoML ONNX model; several images per ``session.run``."""

    adapter = "azureml-onnx"
    vendor = "local"
    runs_in_worker_process = True  # compare --workers runs it in worker processes
    Settings = AzureMLOnnxSettings

    def __init__(self, name: str, settings: AzureMLOnnxSettings, **kwargs: Any) -> None:
        super().__init__(name, settings, **kwargs)
        self.max_batch_size = settings.batch_size
        self.model_path = self._existing(settings.model_path, "model_path")
        labels_file = settings.labels_path or str(self.model_path.parent / "labels.json")
        self.labels_path = self._existing(labels_file, "labels_path")
        self.labels = self._read_labels()
        self.mlmodel, self.mlmodel_path = self._read_mlmodel()
        if settings.crop_size is not None and settings.crop_size > settings.resize_size:
            raise self._fail(
                f"crop_size {settings.crop_size} exceeds resize_size {settings.resize_size}", "crop_size"
            )
        self._lock = threading.Lock()
        self._model: _Model | None = None

    # ---- files ------------------------------------------------------------------------------------
    def _fail(self, message: str, field: str) -> ConfigError:
        return ConfigError(message, provider=self.name, field=field)

    def _existing(self, value: str, field: str) -> Path:
        path = Path(value).expanduser()
        if not path.is_file():
            hint = (
                " (labels.json is expected beside model.onnx; set labels_path)"
                if field == "labels_path"
                else ""
            )
            raise self._fail(f"no such file: {path}{hint}", field)
        return path

    def _read_labels(self) -> list[str]:
        try:
            labels = json.loads(self.labels_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise self._fail(f"{self.labels_path} is not readable JSON ({e})", "labels_path") from None
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
            raise self._fail(
                f"{self.labels_path} must be a JSON list of class names (index = id)", "labels_path"
            )
        return labels

    def _read_mlmodel(self) -> tuple[dict[str, Any], Path | None]:
        """The MLflow ``MLmodel`` beside the model or labels, when the user downloaded it too."""
        import yaml

        for folder in dict.fromkeys([self.model_path.parent, self.labels_path.parent]):
            candidate = folder / MLMODEL
            if candidate.is_file():
                try:
                    data = yaml.safe_load(candidate.read_text(encoding="utf-8"))
                except (OSError, yaml.YAMLError) as e:
                    raise self._fail(f"{candidate} is not readable YAML ({e})", "model_path") from None
                return (data if isinstance(data, dict) else {}), candidate
        return {}, None

    # ---- identity and governance -----------------------------------------------------------------
    @property
    def model_id(self) -> str:
        return self.settings.model_path

    def service_facts(self) -> ServiceFacts:
        return ServiceFacts(
            service="Azure AutoML ONNX export, run locally with onnxruntime",
            vendor="local",
            region="local",
            data_leaves_machine=False,
        )

    def model_facts(self) -> ModelFacts:
        """What ``labels.json`` and ``MLmodel`` say; the governance card adds the label domain and the
        ``model_card:`` setting."""
        metadata = self.mlmodel.get("metadata")
        facts: dict[str, Any] = {
            k: v
            for k, v in (metadata if isinstance(metadata, dict) else {}).items()
            if k in ModelFacts.model_fields
        }
        sources = [str(self.labels_path), *([str(self.mlmodel_path)] if self.mlmodel_path else [])]
        facts.update(model_id=self.model_id, labels=list(self.labels), source=", ".join(sources))
        return ModelFacts.model_validate(facts)

    # ---- the session (lazy, once, thread-safe) ----------------------------------------------------
    def warm_up(self) -> None:
        """Open the ONNX Runtime session now rather than inside the first timed call."""
        self._load()

    def _load(self) -> _Model:
        if self._model is not None:
            return self._model
        with self._lock:
            if self._model is None:
                self._model = self._open_session()
        return self._model

    def _open_session(self) -> _Model:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise MissingDependencyError(
                install_hint("onnx", "onnxruntime to run exported Azure AutoML models")
            ) from e
        from cloudderm.adapters._ort import session_options

        available = ort.get_available_providers()
        providers = self.settings.providers or [
            p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available
        ]
        missing = [p for p in providers if p not in available]
        if missing:
            raise self._fail(f"onnxruntime here lacks {missing}; available: {available}", "providers")
        options = session_options(ort, self.settings.intra_op_threads)
        try:
            session = ort.InferenceSession(str(self.model_path), sess_options=options, providers=providers)
        except Exception as e:
            raise self._fail(f"{self.model_path} is not a loadable ONNX model ({e})", "model_path") from e
        return self._inspect(session)

    def _inspect(self, session: Any) -> _Model:
        """Input name, crop size and batch from the session; output checked against labels.json."""
        declared = session.get_inputs()[0]
        shape = list(declared.shape)
        channels_ok = len(shape) == 4 and (not isinstance(shape[1], int) or shape[1] == 3)
        if declared.type != "tensor(float)" or not channels_ok:
            raise self._fail(
                f"input {declared.name!r} is {declared.type} {shape}, not float32 (N, 3, H, W)", "model_path"
            )
        fixed = [d if isinstance(d, int) and d > 0 else None for d in shape]
        if fixed[2] and fixed[3]:
            crop = (fixed[2], fixed[3])
            if (
                self.settings.crop_size is not None
                and (self.settings.crop_size, self.settings.crop_size) != crop
            ):
                raise self._fail(
                    f"crop_size {self.settings.crop_size} but the model takes {crop[0]}x{crop[1]}",
                    "crop_size",
                )
        else:
            size = self.settings.crop_size or DEFAULT_CROP
            crop = (size, size)
        if max(crop) > self.settings.resize_size:
            raise self._fail(
                f"the model takes {crop[0]}x{crop[1]}, larger than resize_size {self.settings.resize_size}",
                "resize_size",
            )
        outputs = session.get_outputs()
        output = next((o for o in outputs if o.name == PREFERRED_OUTPUT), outputs[0])
        classes = output.shape[-1] if output.shape else None
        if isinstance(classes, int) and classes != len(self.labels):
            raise self._fail(
                f"the model has {classes} outputs but {self.labels_path} lists {len(self.labels)} labels",
                "labels_path",
            )
        return _Model(session, declared.name, output.name, crop, fixed[0])

    # ---- the call ---------------------------------------------------------------------------------
    def _infer(self, images: Sequence[PreparedImage]) -> list[RawResult]:
        model = self._load()
        pixels = np.stack(
            [preprocess(image.to_pil(), self.settings.resize_size, model.crop) for image in images]
        )
        logits = self._run(model, pixels)
        if logits.ndim != 2 or logits.shape != (len(images), len(self.labels)):
            raise ResponseFormatError(
                f"logits of shape {logits.shape}, expected ({len(images)}, {len(self.labels)})",
                provider=self.name,
                endpoint=self.model_id,
            )
        multilabel = self.settings.task == "multilabel"
        scores = sigmoid(logits) if multilabel else softmax(logits)
        details = {"input_name": model.input_name, "input_size": list(model.crop), "task": self.settings.task}
        if self.mlmodel.get("run_id"):
            details["mlflow_run_id"] = self.mlmodel["run_id"]
        return [
            RawResult(
                labels=list(zip(self.labels, row.tolist())),
                model=self.model_id,
                details=dict(details),
                scores_independent=multilabel,
            )
            for row in scores
        ]

    def _run(self, model: _Model, pixels: np.ndarray) -> np.ndarray:
        """Run in slices the model accepts; a fixed batch dimension is filled with zero images."""
        step = model.fixed_batch or len(pixels)
        parts = []
        for start in range(0, len(pixels), step):
            part = pixels[start : start + step]
            pad = step - len(part)
            if pad:
                part = np.concatenate([part, np.zeros((pad, *part.shape[1:]), dtype=part.dtype)])
            out = model.session.run([model.output_name], {model.input_name: part})[0]
            parts.append(np.asarray(out)[: len(part) - pad])
        return np.concatenate(parts)

    def close(self) -> None:
        with self._lock:
            self._model = None
