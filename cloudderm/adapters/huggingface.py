"""Local Hugging Face ``transformers`` image classifier: any image-classification model by hub id or folder.

The local model is the comparison's control: the same prepared bytes go through it on this machine, with
nothing leaving it. Construction only validates settings (``cloudderm providers`` builds every provider
to show its card); the model is loaded on first use, once, under a lock. Two runtimes share one
preprocessing path (the model's own image processor, or a proven-equal fast path):

* ``torch`` — the reference: ``AutoModelForImageClassification`` under ``torch.inference_mode()``.
* ``onnx`` — exported once with ``torch.onnx.export``, verified against torch to 1e-4 on a probe batch,
  cached in ``onnx_cache_dir`` and run with ONNX Runtime (several times faster on CPU).

Thread-safe: concurrent callers decode and preprocess in parallel, while forward passes run one at a
time (each one already uses every core), so decoding overlaps inference instead of oversubscribing.

Governance facts come from the model card (``README.md``) and ``config.json``, read from the model
folder or the local hub cache, never by loading weights.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, ValidationError, model_validator

from cloudderm.classifier import AdapterSettings, Classifier, RawResult
from cloudderm.errors import ConfigError, MissingDependencyError, config_error_from, install_hint
from cloudderm.facts import ModelFacts, ServiceFacts

if TYPE_CHECKING:
    from cloudderm.adapters._hf_preprocess import Preprocessor
    from cloudderm.images import PreparedImage

__all__ = ["HuggingFaceClassifier", "HuggingFaceSettings", "hub_offline"]

_TRUE = {"1", "true", "yes", "on"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[A-Za-z0-9][\w.\-]*)?$")


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` asks for no hub access (read when called, not at import time)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


class HuggingFaceSettings(AdapterSettings):
    """Settings of the ``huggingface`` adapter (reference: docs/huggingface.md)."""

    model: str = Field(min_length=1)
    revision: str | None = None
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    batch_size: int = Field(default=8, ge=1, le=1024)
    runtime: Literal["torch", "onnx"] = "torch"
    onnx_cache_dir: str | None = None
    onnx_threads: int | None = Field(default=None, ge=1)
    local_files_only: bool | None = None

    @model_validator(mode="after")
    def _runtime_options(self) -> HuggingFaceSettings:
        if self.runtime == "onnx":
            if self.dtype not in ("auto", "float32"):
                raise ValueError(f"dtype {self.dtype!r} needs runtime 'torch' (ONNX exports run in float32)")
            if self.device == "mps":
                raise ValueError("device 'mps' needs runtime 'torch' (runtime 'onnx' runs on cpu or cuda)")
        return self


@dataclass
class _Loaded:
    """Everything built on first use."""

    labels: list[str]
    multi_label: bool
    preprocessor: Preprocessor
    run: Callable[[np.ndarray], np.ndarray]  # (N, 3, H, W) float32 pixels -> (N, C) logits
    device: str
    dtype: str
    onnx_path: Path | None = None
    exported_now: bool = False
    pool: ThreadPoolExecutor | None = None  # decodes and resizes a batch's images in parallel
    run_lock: threading.Lock = field(default_factory=threading.Lock)


class HuggingFaceClassifier(Classifier[HuggingFaceSettings]):
    """Classify with a local transformers image-classification model (PyTorch or ONNX Runtime)."""

    adapter = "huggingface"
    vendor = "local"
    runs_in_worker_process = True  # --engine ray replicas (compare --workers keeps it in the parent)
    Settings = HuggingFaceSettings

    def __init__(self, name: str, settings: AdapterSettings, **kwargs: Any) -> None:
        if not isinstance(settings, HuggingFaceSettings):
            try:
                settings = HuggingFaceSettings.model_validate(settings.model_dump())
            except ValidationError as e:
                raise config_error_from(e, provider=name, all_errors=True, what="invalid settings") from None
        super().__init__(name, settings, **kwargs)
        self.max_batch_size = settings.batch_size
        self.local_files_only = (
            hub_offline() if settings.local_files_only is None else settings.local_files_only
        )
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None
        self._facts: ModelFacts | None = None

    # ---- identity and governance -----------------------------------------------------------------
    def worker_startup_is_light(self) -> bool:
        """Never: even ``runtime: onnx`` reads the model's config and image processor through transformers,
        which imports torch (about 3 s of CPU per process measured with transformers 5), so a worker copy
        costs what a torch one does. The model stays in the parent's threads."""
        return False

    @property
    def model_id(self) -> str:
        revision = self.settings.revision
        return f"{self.settings.model}@{revision}" if revision else self.settings.model

    def service_facts(self) -> ServiceFacts:
        return ServiceFacts(
            service="local transformers model", vendor="local", region="local", data_leaves_machine=False
        )

    def model_facts(self) -> ModelFacts:
        """Facts from the model card and config.json (model folder or hub cache); no weights loaded.

        The ``model_card:`` setting is applied on top of these by the governance card.
        """
        if self._facts is None:
            from cloudderm.adapters._hf_card import read_model_facts

            self._facts = read_model_facts(
                self.settings.model, self.settings.revision, self.taxonomy, model_id=self.model_id
            )
        return self._facts

    @property
    def runtime_details(self) -> dict[str, Any]:
        """Runtime, device, dtype and preprocessing path (loads the model); the ONNX file when used."""
        loaded = self._load()
        details: dict[str, Any] = {
            "runtime": self.settings.runtime,
            "device": loaded.device,
            "dtype": loaded.dtype,
            "preprocessing": loaded.preprocessor.kind,
        }
        if loaded.onnx_path is not None:
            details["onnx_path"] = str(loaded.onnx_path)
            details["onnx_exported_now"] = loaded.exported_now
        return details

    # ---- inference --------------------------------------------------------------------------------
    def _infer(self, images: Sequence[PreparedImage]) -> list[RawResult]:
        loaded = self._load()
        pixels = loaded.preprocessor.batch([image.data for image in images], loaded.pool)
        with loaded.run_lock:  # one forward pass at a time; other callers decode meanwhile
            logits = np.asarray(loaded.run(pixels), dtype=np.float32)
        scores = _sigmoid(logits) if loaded.multi_label else _softmax(logits)
        return [
            RawResult(
                labels=list(zip(loaded.labels, row.tolist())),
                model=self.model_id,
                details={"runtime": self.settings.runtime, "device": loaded.device},
                scores_independent=loaded.multi_label,
            )
            for row in scores
        ]

    def close(self) -> None:
        """Drop the model and the decode pool; a later call loads them again."""
        with self._lock:
            loaded, self._loaded = self._loaded, None
        if loaded is not None and loaded.pool is not None:
            loaded.pool.shutdown(wait=False)

    # ---- loading (once, thread-safe) --------------------------------------------------------------
    def warm_up(self) -> None:
        """Load the model (and export/verify the ONNX graph) now rather than inside the first timed call."""
        self._load()

    def _load(self) -> _Loaded:
        loaded = self._loaded
        if loaded is not None:
            return loaded
        with self._lock:
            if self._loaded is None:
                with _BUILD_LOCK:
                    loaded = self._build()
                workers = min(4, os.cpu_count() or 1)
                loaded.pool = ThreadPoolExecutor(workers, thread_name_prefix=f"cloudderm-{self.name}")
                self._facts = None  # loading may have fetched the card into the hub cache
                self._loaded = loaded
            return self._loaded

    def _build(self) -> _Loaded:
        transformers = _import("transformers", "transformers", "hf")
        from cloudderm.adapters._hf_preprocess import build_preprocessor

        source = self._resolve_source()
        common = {"revision": self.settings.revision, "local_files_only": self.local_files_only}
        try:
            config = transformers.AutoConfig.from_pretrained(source, **common)
            processor = transformers.AutoImageProcessor.from_pretrained(source, **common)
        except Exception as e:
            raise self._load_error(e) from e
        labels = _labels(config)
        multi_label = getattr(config, "problem_type", None) == "multi_label_classification"
        preprocessor = build_preprocessor(processor)
        if self.settings.runtime == "onnx":
            loaded = self._build_onnx(transformers, source, common, preprocessor)
        else:
            loaded = self._build_torch(transformers, source, common, config, preprocessor)
        loaded.labels, loaded.multi_label = labels, multi_label
        self._fetch_card(source)
        return loaded

    def _build_torch(
        self, transformers: Any, source: str, common: dict, config: Any, preprocessor: Preprocessor
    ) -> _Loaded:
        torch = _import("torch", "PyTorch", "hf")
        device = self._torch_device(torch)
        dtype = _torch_dtype(torch, self.settings.dtype, device, config)
        model = self._pretrained(transformers, source, common).to(device=device, dtype=dtype).eval()

        def run(pixels: np.ndarray) -> np.ndarray:
            batch = torch.from_numpy(pixels).to(device=device, dtype=dtype)
            with torch.inference_mode():
                return model(pixel_values=batch).logits.float().cpu().numpy()

        return _Loaded([], False, preprocessor, run, device, str(dtype).replace("torch.", ""))

    def _build_onnx(
        self, transformers: Any, source: str, common: dict, preprocessor: Preprocessor
    ) -> _Loaded:
        from cloudderm.adapters import _hf_onnx as onnx
        from cloudderm.adapters._hf_preprocess import probe_images

        ort = _import("onnxruntime", "onnxruntime", "onnx")
        device = self._onnx_device(ort)
        model_dir = self._model_dir(transformers, source, common)
        cache_dir = Path(self.settings.onnx_cache_dir or onnx.default_cache_dir()).expanduser()
        entry = onnx.cache_entry(cache_dir, self.settings.model, model_dir)
        path, exported_now = entry / "model.onnx", False
        if not path.is_file():
            torch = _import("torch", "PyTorch", "hf")
            model = (
                self._pretrained(transformers, source, common).to(device="cpu", dtype=torch.float32).eval()
            )
            probe = np.stack([preprocessor.image(image) for image in probe_images()[:2]])
            try:
                exported = onnx.export_verified(model, probe, entry, device)
            except onnx.ExportMismatch as e:
                raise ConfigError(
                    f"the ONNX export of {self.model_id!r} does not reproduce its PyTorch logits: {e}. "
                    "Fix: use runtime: torch for this model",
                    provider=self.name,
                    field="runtime",
                ) from e
            except MissingDependencyError:
                raise
            except Exception as e:
                raise ConfigError(
                    f"cannot export {self.model_id!r} to ONNX ({type(e).__name__}: {_short(e)}). "
                    "Fix: use runtime: torch for this model",
                    provider=self.name,
                    field="runtime",
                ) from e
            path, exported_now = exported.path, exported.exported_now
        session = onnx.open_session(path, device, self.settings.onnx_threads)

        def run(pixels: np.ndarray) -> np.ndarray:
            return session.run([onnx.OUTPUT_NAME], {onnx.INPUT_NAME: pixels})[0]

        return _Loaded([], False, preprocessor, run, device, "float32", path, exported_now)

    def _pretrained(self, transformers: Any, source: str, common: dict) -> Any:
        try:
            return transformers.AutoModelForImageClassification.from_pretrained(source, **common)
        except Exception as e:
            raise self._load_error(e) from e

    def _model_dir(self, transformers: Any, source: str, common: dict) -> Path:
        """The folder holding the model's files: the local folder, or the hub snapshot of the revision."""
        if Path(source).is_dir():
            return Path(source)
        from transformers.utils import cached_file

        try:
            return Path(cached_file(source, "config.json", **common)).parent
        except Exception as e:
            raise self._load_error(e) from e

    def _resolve_source(self) -> str:
        """The folder or hub id to load; a path that is not a folder is a ConfigError naming the fix."""
        model = self.settings.model
        path = Path(model).expanduser()
        if path.is_dir():
            return str(path)
        if _HUB_ID.match(model) and not path.exists():
            return model
        raise ConfigError(
            f"model folder {model!r} does not exist or is not a folder. Fix: point 'model' to a folder "
            "written by save_pretrained (config.json, weights, preprocessor_config.json) or to a hub id "
            "such as google/mobilenet_v2_1.0_224",
            provider=self.name,
            field="model",
        )

    def _torch_device(self, torch: Any) -> str:
        wanted = self.settings.device
        cuda = torch.cuda.is_available()
        mps_backend = getattr(torch.backends, "mps", None)
        mps = mps_backend is not None and mps_backend.is_available()
        if wanted == "auto":
            return "cuda" if cuda else "mps" if mps else "cpu"
        if (wanted == "cuda" and not cuda) or (wanted == "mps" and not mps):
            raise ConfigError(
                f"device {wanted!r} is not available to this PyTorch build. Fix: set device to auto or cpu",
                provider=self.name,
                field="device",
            )
        return wanted

    def _onnx_device(self, ort: Any) -> str:
        cuda = "CUDAExecutionProvider" in ort.get_available_providers()
        if self.settings.device == "cuda" and not cuda:
            raise ConfigError(
                "device 'cuda' needs onnxruntime-gpu (CUDAExecutionProvider is not available). "
                "Fix: pip install onnxruntime-gpu, or set device to auto or cpu",
                provider=self.name,
                field="device",
            )
        return "cuda" if cuda and self.settings.device in ("auto", "cuda") else "cpu"

    def _fetch_card(self, source: str) -> None:
        """Best effort: put a hub model's README.md in the cache so model_facts can read it offline."""
        if self.local_files_only or Path(source).is_dir():
            return
        try:
            from huggingface_hub import hf_hub_download

            hf_hub_download(source, "README.md", revision=self.settings.revision)
        except Exception:  # a missing card is a fact ("unknown"), not a failure
            return

    def _load_error(self, error: BaseException) -> ConfigError:
        """The one place loading failures become user-facing errors: provider, model and the fix."""
        model = self.settings.model
        if Path(model).expanduser().is_dir():
            problem = f"{_short(error)}. Fix: the folder must hold a transformers image-classification model "
            problem += "saved with save_pretrained (config.json, weights, preprocessor_config.json)"
        elif self.local_files_only and isinstance(error, OSError):
            problem = (
                "it is not in the local Hugging Face cache and hub access is off (HF_HUB_OFFLINE or "
                "local_files_only). Fix: download it once with hub access "
                f"(huggingface-cli download {model}), or point 'model' to a local save_pretrained folder"
            )
        else:
            problem = (
                f"{_short(error)}. Fix: check the hub id and revision, the network and, for gated models, "
                "your token (huggingface-cli login); without hub access set HF_HUB_OFFLINE=1 and use a "
                "cached model or point 'model' to a local save_pretrained folder"
            )
        return ConfigError(
            f"cannot load Hugging Face model {self.model_id!r}: {problem}", provider=self.name, field="model"
        )


# transformers resolves its public names lazily on first import; two adapters importing and loading it at
# the same moment from different threads can see a half-initialised module ("no attribute AutoConfig").
# Loading is serialised across every instance: it is a one-off cost and CPU-bound anyway.
_BUILD_LOCK = threading.Lock()


def _import(module: str, what: str, extra: str) -> Any:
    """Import an optional SDK, or raise the project-wide install hint."""
    try:
        return __import__(module)
    except ImportError as e:
        raise MissingDependencyError(install_hint(extra, f"{what} to use the Hugging Face adapter")) from e


def _short(error: BaseException) -> str:
    return " ".join(str(error).split())[:200] or type(error).__name__


def _labels(config: Any) -> list[str]:
    id2label = getattr(config, "id2label", None) or {}
    count = int(getattr(config, "num_labels", len(id2label)))
    return [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(count)]


def _torch_dtype(torch: Any, wanted: str, device: str, config: Any) -> Any:
    """'auto': float32 on CPU (exact; half precision is slow there), the checkpoint's own dtype on GPUs."""
    if wanted != "auto":
        return getattr(torch, wanted)
    stored = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    stored = str(stored).replace("torch.", "") if stored is not None else "float32"
    if device != "cpu" and stored in ("float16", "bfloat16"):
        return getattr(torch, stored)
    return torch.float32


def _softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))
