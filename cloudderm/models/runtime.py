"""Run a cached zoo model with onnxruntime (default; no torch needed) or with the torch rebuild.

Both runtimes take the model's own input tensors (see :mod:`cloudderm.models.preprocess`) and return
class probabilities in the card's label order, float64, one row per image.
"""

from __future__ import annotations

import threading
from typing import Any, Literal

import numpy as np

from cloudderm.errors import MissingDependencyError, install_hint
from cloudderm.models.cards import ModelCard
from cloudderm.models.store import onnx_path, require, weights_path

__all__ = ["ZooRuntime", "softmax"]

Runtime = Literal["onnx", "torch"]


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


class ZooRuntime:
    """One loaded model; thread-safe lazy load, ``predict(images, metadata)`` -> probabilities."""

    def __init__(self, card: ModelCard, runtime: Runtime = "onnx", threads: int | None = None) -> None:
        self.card = card
        self.runtime = runtime
        self.threads = threads
        self._lock = threading.Lock()
        self._model: Any = None

    def load(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    require(self.card)
                    self._model = self._open_onnx() if self.runtime == "onnx" else self._open_torch()
        return self._model

    def _open_onnx(self) -> Any:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise MissingDependencyError(install_hint("zoo", "onnxruntime to run zoo models")) from e
        options = ort.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        return ort.InferenceSession(
            str(onnx_path(self.card)), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def _open_torch(self) -> Any:
        try:
            import torch
        except ImportError as e:
            raise MissingDependencyError(install_hint("zoo", "torch for runtime: torch")) from e
        from cloudderm.models.export import build_torch

        if self.threads:
            torch.set_num_threads(self.threads)
        return build_torch(self.card, weights_path(self.card))

    def predict(self, images: np.ndarray, metadata: np.ndarray | None = None) -> np.ndarray:
        """Probabilities ``(N, classes)`` for a batch of the model's own input tensors."""
        model = self.load()
        takes_metadata = self.card.name == "sklesion-xception"
        if self.runtime == "onnx":
            feeds = {"image": images.astype(np.float32)}
            if takes_metadata:
                feeds["metadata"] = np.asarray(metadata, dtype=np.float32)
            out = np.asarray(model.run(None, feeds)[0])
        else:
            import torch

            with torch.inference_mode():
                args = [torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))]
                if takes_metadata:
                    args.append(torch.from_numpy(np.asarray(metadata, dtype=np.float32)))
                out = model(*args).numpy()
        return out.astype(np.float64) if takes_metadata else softmax(out)

    def close(self) -> None:
        with self._lock:
            self._model = None
