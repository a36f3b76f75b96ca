"""predictions.jsonl lines written by hand for the metrics, summary and report tests.

The scenario (six images, three providers) is small enough that every metric is worked out by hand in
tests/unit/test_summary.py:

    image  truth  sex   A (derm model)    B (ImageNet model)   C (flaky endpoint)
    i1     mel    F     mel 0.90          coffee bean 0.30     mel 0.70
    i2     mel    M     nv  0.60          coffee bean 0.30     error (ProviderTimeout)
    i3     nv     F     nv  0.80          nevus 0.40 -> nv     error (ProviderHTTPError)
    i4     nv     M     nv  0.70          coffee bean 0.30     skipped
    i5     bkl    F     mel 0.55          coffee bean 0.30     skipped
    i6     -      -     nv  0.50          coffee bean 0.30     nv 0.90
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TRUTH = {"i1": "mel", "i2": "mel", "i3": "nv", "i4": "nv", "i5": "bkl", "i6": None}
SEX = {"i1": "F", "i2": "M", "i3": "F", "i4": "M", "i5": "F", "i6": None}


def record(
    image: str,
    provider: str,
    *,
    status: str = "ok",
    label: str | None = None,
    canonical: str | None = None,
    score: float | None = None,
    truth: str | None = None,
    truth_raw: str | None = None,
    latency_ms: float | None = 100.0,
    cost_usd: float | None = None,
    error_type: str | None = None,
    metadata: dict[str, Any] | None = None,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """One predictions.jsonl line with the agreed keys."""
    ok = status == "ok"
    labels = [{"label": label, "score": score}] if ok and label is not None else []
    if ok and labels:
        labels.append({"label": "other", "score": round(max(0.0, 1.0 - score) / 2, 6)})
    return {
        "image": f"{image}.jpg",
        "sha256": f"sha-{image}",
        "provider": provider,
        "model": f"model-{provider}",
        "status": status,
        "labels": labels,
        "canonical": canonical if ok else None,
        "triage": None,
        "truth": truth,
        "truth_raw": truth_raw if truth_raw is not None else truth,
        "latency_ms": latency_ms if ok else None,
        "cost_usd": cost_usd if ok else None,
        "request_id": f"req-{provider}-{image}",
        "warnings": warnings or [],
        "error": None if ok else f"{error_type} from {provider}",
        "error_type": error_type,
        "attempts": 1,
        "metadata": metadata if metadata is not None else {"sex": SEX[image]},
    }


def sample_records() -> list[dict[str, Any]]:
    rows = []
    a = {"i1": ("mel", 0.9), "i2": ("nv", 0.6), "i3": ("nv", 0.8), "i4": ("nv", 0.7), "i5": ("mel", 0.55)}
    a["i6"] = ("nv", 0.5)
    for n, (img, (code, score)) in enumerate(a.items(), 1):
        rows.append(
            record(img, "A", label=code, canonical=code, score=score, truth=TRUTH[img], latency_ms=100.0 * n)
            | {"cost_usd": 0.001}
        )
    ood = "out-of-domain: the model's top label 'coffee bean' is not a skin-lesion class"
    for img in TRUTH:
        if img == "i3":
            rows.append(
                record(img, "B", label="nevus", canonical="nv", score=0.4, truth=TRUTH[img], latency_ms=50)
            )
        else:
            rows.append(
                record(
                    img, "B", label="coffee bean", score=0.3, truth=TRUTH[img], latency_ms=50, warnings=[ood]
                )
            )
    rows.append(record("i1", "C", label="mel", canonical="mel", score=0.7, truth="mel", cost_usd=0.002))
    rows.append(record("i2", "C", status="error", truth="mel", error_type="ProviderTimeout"))
    rows.append(record("i3", "C", status="error", truth="nv", error_type="ProviderHTTPError"))
    rows.append(record("i4", "C", status="skipped", truth="nv", error_type="CircuitOpen"))
    rows.append(record("i5", "C", status="skipped", truth="bkl", error_type="CircuitOpen"))
    rows.append(record("i6", "C", label="nv", canonical="nv", score=0.9, truth=None, cost_usd=0.002))
    rows[5]["truth_raw"] = "unknown-thing"
    return rows


def sample_providers() -> dict[str, dict[str, Any]]:
    """What the runner passes to build_summary for the scenario's three providers."""
    imagenet_card = {
        "provider": "B",
        "adapter": "sagemaker",
        "service": {
            "service": "SageMaker",
            "vendor": "aws",
            "region": "eu-west-2",
            "data_leaves_machine": True,
        },
        "model": {
            "model_id": "mobilenet-v2",
            "intended_use": "general image classification",
            "prohibited_uses": ["medical-diagnosis"],
            "label_domain": "out-of-domain",
            "labels": [f"imagenet-{i}" for i in range(20)],
        },
        "hipaa_eligible": {
            "value": True,
            "source": "https://aws.amazon.com/compliance/hipaa-eligible-services-reference/",
            "as_of": "2025-01-10",
        },
        "warnings": ["model card prohibits medical-diagnosis"],
    }
    derm_card = {
        "provider": "A",
        "adapter": "huggingface",
        "service": {"service": "local", "vendor": "local", "region": None, "data_leaves_machine": False},
        "model": {
            "model_id": "derm-vit",
            "intended_use": "research on skin lesion images",
            "label_domain": "in-domain",
        },
        "hipaa_eligible": None,
    }
    return {
        "A": {
            "adapter": "huggingface",
            "model": "derm-vit",
            "region": None,
            "config_hash": "a1",
            "warnings": [],
            "governance": derm_card,
            "pricing_as_of": "2025-01-15",
        },
        "B": {
            "adapter": "sagemaker",
            "model": "mobilenet-v2",
            "region": "eu-west-2",
            "config_hash": "b1",
            "warnings": ["model card prohibits medical-diagnosis"],
            "governance": imagenet_card,
        },
        "C": {
            "adapter": "vertex",
            "model": "endpoint-1",
            "region": "europe-west2",
            "config_hash": "c1",
            "warnings": [],
            "governance": None,
            "pricing_as_of": "2025-02-01",
        },
    }


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path
