"""ONNX Runtime fast path for local transformers image classifiers: export once, verify, cache, run.

Why: on CPU, ONNX Runtime runs small vision models several times faster than eager PyTorch (fused
conv+pad+activation kernels, no Python per layer). The export is only trusted after it reproduced the
PyTorch logits on a probe batch (to :data:`LOGIT_TOLERANCE`); the verified file is cached under a key of
the model's identity (hub commit, or the local directory's files) and the library versions, so the
second run loads it directly without loading PyTorch weights at all.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import tempfile
import threading
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "LOGIT_TOLERANCE",
    "ExportMismatch",
    "OnnxModel",
    "cache_entry",
    "default_cache_dir",
    "export_verified",
    "open_session",
]

LOGIT_TOLERANCE = 1e-4
OPSET = 17
EXPORT_FORMAT = "cloudderm-onnx-1"
INPUT_NAME = "pixel_values"
OUTPUT_NAME = "logits"
_EXPORT_LOCK = threading.Lock()
_SNAPSHOT = re.compile(r"[/\\]snapshots[/\\]([0-9a-f]{40})$")


class ExportMismatch(RuntimeError):
    """The exported graph does not reproduce the PyTorch logits; the file was not cached."""

    def __init__(self, max_abs_diff: float) -> None:
        self.max_abs_diff = max_abs_diff
        super().__init__(
            f"ONNX logits differ from PyTorch by up to {max_abs_diff:.3g} (tolerance {LOGIT_TOLERANCE:g})"
        )


@dataclass(frozen=True)
class OnnxModel:
    """A cached, verified export: where it is and whether this process just created it."""

    path: Path
    exported_now: bool
    max_abs_diff: float | None


def default_cache_dir() -> Path:
    """``$CLOUDDERM_ONNX_CACHE``, else ``$XDG_CACHE_HOME/cloudderm/onnx`` (``~/.cache/cloudderm/onnx``)."""
    explicit = os.environ.get("CLOUDDERM_ONNX_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "cloudderm" / "onnx"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def cache_entry(cache_dir: Path, model_name: str, model_dir: Path) -> Path:
    """The folder holding the export of the model stored in ``model_dir``.

    The key is the hub commit for a hub snapshot (content-addressed already), else every file's name,
    size and modification time in the local directory; plus torch/transformers versions and the opset,
    so an upgrade or a re-saved model never reuses a stale export.
    """
    digest = hashlib.sha256()
    snapshot = _SNAPSHOT.search(str(model_dir))
    if snapshot:
        digest.update(f"hub:{model_name}@{snapshot.group(1)}".encode())
    else:
        digest.update(f"dir:{model_dir.resolve()}".encode())
        for item in sorted(model_dir.iterdir()):
            if item.is_file():
                stat = item.stat()
                digest.update(f"|{item.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    for dist in ("torch", "transformers"):
        digest.update(f"|{dist}={_version(dist)}".encode())
    digest.update(f"|opset={OPSET}|{EXPORT_FORMAT}".encode())
    slug = re.sub(r"[^A-Za-z0-9._-]+", "--", model_name.strip("/\\.~"))[-60:] or "model"
    return cache_dir / f"{slug}-{digest.hexdigest()[:16]}"


def open_session(path: Path, device: str, threads: int | None = None) -> Any:
    """An ONNX Runtime session for ``path`` on ``device`` ('cpu' or 'cuda'); ``threads`` intra-op threads."""
    import onnxruntime as ort

    from cloudderm.adapters._ort import session_options

    options = session_options(ort, threads)  # spin-waiting off: see _ort.py
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    providers = ["CPUExecutionProvider"]
    if device == "cuda":
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(str(path), options, providers=providers)


def export_verified(model: Any, probe: np.ndarray, entry: Path, device: str) -> OnnxModel:
    """Export ``model`` (a float32 eval-mode transformers classifier) to ``entry``, verified, atomically.

    Concurrent exports of the same entry in one process are serialised; across processes the file only
    appears (``os.replace``) once verified, so a reader never sees a half-written or unverified model.

    Raises:
        ExportMismatch: the exported logits differ from PyTorch beyond :data:`LOGIT_TOLERANCE`.
    """
    final = entry / "model.onnx"
    with _EXPORT_LOCK:
        if final.is_file():
            return OnnxModel(final, exported_now=False, max_abs_diff=None)
        entry.mkdir(parents=True, exist_ok=True)
        handle, tmp_name = tempfile.mkstemp(prefix="export-", suffix=".onnx", dir=entry)
        os.close(handle)
        tmp = Path(tmp_name)
        try:
            _export(model, probe, tmp)
            max_diff = _verify(model, probe, tmp, device)
            meta = {
                "format": EXPORT_FORMAT,
                "opset": OPSET,
                "max_abs_logit_diff": max_diff,
                "probe_shape": list(probe.shape),
                "torch": _version("torch"),
                "transformers": _version("transformers"),
                "onnxruntime": _version("onnxruntime"),
            }
            (entry / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        return OnnxModel(final, exported_now=True, max_abs_diff=max_diff)


def _logits_only(model: Any) -> Any:
    """Wrap ``model`` in a module returning bare logits (ONNX wants tensors out, not a ModelOutput)."""
    import torch

    class LogitsOnly(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            return self.inner(pixel_values=pixel_values).logits

    # eval() on the wrapper too: exporting a module left in training mode flips the whole tree back to
    # training afterwards, and BatchNorm would then use batch statistics.
    return LogitsOnly(model).eval()


def _export(model: Any, probe: np.ndarray, path: Path) -> None:
    """TorchScript-based export (needs no onnxscript); the dynamo exporter when that one fails."""
    import torch

    wrapper = _logits_only(model)
    example = (torch.from_numpy(probe),)
    names = {"input_names": [INPUT_NAME], "output_names": [OUTPUT_NAME], "opset_version": OPSET}
    legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                wrapper,
                example,
                str(path),
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                do_constant_folding=True,
                **legacy,
                **names,
            )
        except Exception as legacy_error:
            try:
                import onnxscript  # noqa: F401  (the dynamo exporter's dependency)
            except ImportError:
                raise legacy_error from None
            batch = torch.export.Dim("batch", min=1)
            torch.onnx.export(
                wrapper, example, str(path), dynamo=True, dynamic_shapes={INPUT_NAME: {0: batch}}, **names
            )
    model.eval()


def _verify(model: Any, probe: np.ndarray, path: Path, device: str) -> float:
    """Max |logit difference| between ONNX Runtime and PyTorch on the probe batch and its first image."""
    import torch

    session = open_session(path, device)
    worst = 0.0
    for batch in (probe, probe[:1]):
        with torch.inference_mode():
            expected = model(pixel_values=torch.from_numpy(batch)).logits.float().numpy()
        got = session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
        if got.shape != expected.shape:
            raise ExportMismatch(float("inf"))
        worst = max(worst, float(np.max(np.abs(got - expected))))
    if not worst <= LOGIT_TOLERANCE:
        raise ExportMismatch(worst)
    return worst
