"""The demo's trained models (the built-in zoo) and the findings its report leads with.

Why a module of its own: ``demo.py`` runs the comparison; this one decides *what* it compares and says what
the numbers show. The four providers are always the same, so the demo reads the same on every machine:

| provider | what | served by |
|---|---|---|
| ``local-sklesion`` | zoo sklesion, onnx | — |
| ``sagemaker-imagenet`` | SageMaker emulator, JumpStart verbose format | EfficientNet-Lite0 (ImageNet) |
| ``azureml-sklesion`` | Azure ML emulator, AutoML format | the sklesion ONNX export |
| ``vertex-sklesion-meta`` | Vertex emulator | sklesion given each patient's age, sex and site |

The metadata endpoint stands for a deployment that joins each uploaded image to the patient's record on
the server (as a hospital endpoint joins the health record): the emulated endpoint matches the image it
receives to ``labels.csv`` by a small thumbnail, never by file name, and feeds age, sex and site to the model.
So "image only" against "image + metadata" is one real difference users meet, shown on the same images.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cloudderm.models.cards import CARDS

__all__ = ["ZOO_ENDPOINTS", "fetch_zoo", "findings", "zoo_backends", "zoo_providers"]

ZOO_ENDPOINTS = ("imagenet", "sklesion", "sklesion-meta")
_THUMB = 16
_MATCH_LEVELS = 12.0  # mean absolute grey-level difference accepted as "the same image" after re-encoding


def fetch_zoo(note: Callable[[str], object]) -> str | None:
    """Fetch both built-in models (once; cached after); None when ready, else why not (for the banner)."""
    try:
        from cloudderm.models.store import fetch

        for name in CARDS:
            fetch(name, note=note)
    except Exception as e:  # offline, hash mismatch, missing extra: the demo falls back, loudly
        return f"{type(e).__name__}: {e}"
    return None


def _thumb(data: bytes, *, orient: bool) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as img:
        img = ImageOps.exif_transpose(img) if orient else img
        grey = img.convert("L").resize((_THUMB, _THUMB), Image.Resampling.BILINEAR)
        return np.asarray(grey, dtype=np.float32)


class RecordTable:
    """Patient records (age, sex, site) of the example images, found by what an image looks like."""

    def __init__(self, folder: Path, csv_path: Path | None) -> None:
        self.thumbs: list[np.ndarray] = []
        self.records: list[dict[str, Any]] = []
        if csv_path is None:
            return
        with csv_path.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                path = folder / row.get("image", "")
                if not path.is_file():
                    continue
                self.thumbs.append(_thumb(path.read_bytes(), orient=True))
                age = row.get("age") or None
                self.records.append(
                    {
                        "age": float(age) if age else None,
                        "sex": row.get("sex") or None,
                        "site": row.get("site") or None,
                    }
                )

    def lookup(self, data: bytes) -> dict[str, Any] | None:
        if not self.thumbs:
            return None
        thumb = _thumb(data, orient=False)
        distances = [float(np.abs(thumb - t).mean()) for t in self.thumbs]
        best = int(np.argmin(distances))
        return self.records[best] if distances[best] <= _MATCH_LEVELS else None


def zoo_backends(folder: Path, csv_path: Path | None) -> dict[str, Any]:
    """The emulated endpoints' models: EfficientNet-Lite0, sklesion, sklesion with the record join."""
    from cloudderm.adapters.zoo import ZooClassifier, ZooSettings
    from cloudderm.core import ImageContext
    from cloudderm.images import PreparedImage

    table = RecordTable(folder, csv_path)

    class RecordJoin(ZooClassifier):
        """sklesion with ``use_metadata``; each received image is joined to its record server-side."""

        def _infer(self, images: Sequence[PreparedImage]) -> list:
            joined = [i.with_context(ImageContext.of(table.lookup(i.data))) for i in images]
            return super()._infer(joined)

    return {
        "imagenet": ZooClassifier("imagenet", ZooSettings(model="efficientnet-lite0")),
        "sklesion": ZooClassifier("sklesion", ZooSettings(model="sklesion-xception")),
        "sklesion-meta": RecordJoin(
            "sklesion-meta", ZooSettings(model="sklesion-xception", use_metadata=True)
        ),
    }


def _card(name: str, served: str) -> dict[str, Any]:
    card = CARDS[name]
    return {
        "source": f"emulated endpoint serving {served} ({card.pip_spec}, built-in card)",
        "intended_use": card.intended_use,
        "prohibited_uses": ["medical-diagnosis"],
        "training_data": list(card.training_data),
        "license": f"{card.licence}. {card.licence_notes}",
        "label_domain": card.label_domain,
        **({"labels": list(card.labels)} if card.labels else {}),
    }


def zoo_providers(emu: Any) -> dict[str, dict[str, Any]]:
    """The four demo providers on trained models (see the module docstring)."""
    return {
        "local-sklesion": {"adapter": "zoo", "model": "sklesion-xception", "runtime": "onnx"},
        "sagemaker-imagenet": {
            **emu.sagemaker_config("imagenet"),
            "instance_type": "ml.m5.xlarge",
            "model_card": _card("efficientnet-lite0", "EfficientNet-Lite0 (JumpStart ImageNet)"),
        },
        "azureml-sklesion": {
            **emu.azureml_config("sklesion"),
            "endpoint_name": "sklesion",
            "instance_type": "Standard_DS3_v2",
            "model_card": _card("sklesion-xception", "the sklesion ONNX export (AutoML format)"),
        },
        "vertex-sklesion-meta": {
            **emu.vertex_config("sklesion-meta"),
            "machine_type": "n1-standard-2",
            "model_card": _card("sklesion-xception", "sklesion with each patient's age, sex and site"),
        },
    }


# ---- findings ------------------------------------------------------------------------------------------
def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """Wilson score interval of a proportion (well behaved at 0 and 1 and at small n)."""
    if n <= 0:
        return None
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _rate(hits: int, n: int) -> str:
    interval = wilson(hits, n)
    if interval is None:
        return "n/a"
    return f"{hits}/{n} = {hits / n:.0%} [95% CI {interval[0]:.0%}–{interval[1]:.0%}]"


def findings(summary: Mapping[str, Any], predictions: Sequence[Mapping[str, Any]]) -> list[str]:
    """What the run shows, in words, for the head of every report: source gaps, the OOD model, agreement."""
    out: list[str] = []
    providers = summary.get("providers") or {}
    for name, entry in providers.items():
        groups = (entry.get("subgroups") or {}).get("modality") or {}
        parts = []
        for value, g in groups.items():
            n, acc = g.get("n_scored") or 0, g.get("accuracy")
            if n and acc is not None:
                parts.append((value, round(acc * n), n))
        if len(parts) >= 2 and "imagenet" not in name:
            text = "; ".join(f"{v} {_rate(h, n)}" for v, h, n in parts)
            rates = [h / n for _, h, n in parts]
            out.append(f"{name}: accuracy {text} — a gap of {abs(rates[0] - rates[-1]) * 100:.0f} points.")
    ood = [n for n in providers if "imagenet" in n]
    for name in ood:
        tops = Counter(
            (p.get("labels") or [{}])[0].get("label")
            for p in predictions
            if p.get("provider") == name and p.get("labels")
        )
        common = ", ".join(f"{label} x{count}" for label, count in tops.most_common(4))
        out.append(
            f"{name} (EfficientNet-Lite0, ImageNet): out of domain on every lesion; its top labels were "
            f"{common}. A general-purpose model answers confidently about objects, never about skin."
        )
    for pair in (summary.get("agreement") or {}).values():
        a, b = pair["providers"]
        if "imagenet" in a or "imagenet" in b or pair.get("agreement") is None:
            continue
        out.append(f"agreement {a} vs {b}: {pair['agreement']:.0%} of {pair['n']} images.")
    return out
