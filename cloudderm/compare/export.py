"""Write ``predictions.jsonl`` from the store: one line per image x provider of the current run.

Streamed from SQLite straight to the file, so the export of 100,000 answers holds one at a time.
Canonical codes, triage and the out-of-domain warning are derived here, and only here, from the stored raw
labels with the provider's current taxonomy and label map (``Taxonomy.map_top``), and the provider's
current standing (card) warnings are added. The config hash leaves label maps, model cards and pricing
out, so adding a label mapping to the config and re-running re-maps old answers without sending anything
again. See docs/architecture.md ("who owns which fact").
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudderm.compare.store import ResultStore
from cloudderm.results import RECORD_KEYS
from cloudderm.taxonomy import Taxonomy, is_out_of_domain_warning

__all__ = ["PREDICTION_KEYS", "ExportTarget", "export_line", "export_predictions"]

PREDICTION_KEYS = RECORD_KEYS  # the line shape is defined once, in cloudderm.results


@dataclass(frozen=True)
class ExportTarget:
    """A provider as exported: its name, config hash, the taxonomy its labels map through (label map
    included) and the standing warnings its governance card gives every answer."""

    name: str
    config_hash: str
    taxonomy: Taxonomy
    standing_warnings: tuple[str, ...] = ()


def export_predictions(
    store: ResultStore, path: Path, providers: Sequence[ExportTarget]
) -> dict[str, Counter]:
    """Write the file atomically (temp file, then rename); returns status counts per provider."""
    by_name = {p.name: p for p in providers}
    counts: dict[str, Counter] = {p.name: Counter() for p in providers}
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for item, name, answer in store.iter_run([(p.name, p.config_hash) for p in providers]):
            record = export_line(item, name, answer, by_name[name])
            counts[name][record["status"]] += 1
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return counts


def export_line(
    item: dict[str, Any], provider: str, answer: dict[str, Any] | None, target: ExportTarget
) -> dict:
    """One ``predictions.jsonl`` record: the one place a stored raw answer gets its code, triage, warnings.

    The app's results tab reads a running store through this too, so a live row equals its exported line.
    """
    if answer is None:
        answer = {"status": "skipped", "error": "no answer recorded (the run was interrupted)", "attempts": 0}
    labels = answer.get("labels") or []
    outcome = (answer.get("outcome") or "answered") if answer.get("status") == "ok" else None
    top = labels[0]["label"] if outcome == "answered" and labels else None
    canonical, triage, out_of_domain = target.taxonomy.map_top(top)
    stored = [
        w for w in answer.get("warnings") or [] if not is_out_of_domain_warning(w)
    ]  # older stores kept it
    warnings = list(
        dict.fromkeys([*target.standing_warnings, *stored, *([out_of_domain] if out_of_domain else [])])
    )
    return {
        "image": item["image"],
        "sha256": item["sha256"],
        "provider": provider,
        "model": answer.get("model"),
        "status": answer["status"],
        "labels": labels,
        "canonical": canonical,
        "triage": triage,
        "truth": item["truth"],
        "truth_raw": item["truth_raw"],
        "latency_ms": answer.get("latency_ms"),
        "cost_usd": answer.get("cost_usd"),
        "request_id": answer.get("request_id"),
        "warnings": warnings,
        "error": answer.get("error"),
        "error_type": answer.get("error_type"),
        "attempts": answer.get("attempts", 0),
        "metadata": item["metadata"],
        "outcome": outcome,
        "reason": answer.get("reason"),
        "usage": answer.get("usage"),
    }
