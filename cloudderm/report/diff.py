"""Run-vs-run diff: what changed per provider since a baseline OUT folder, and which images flipped.

Why: after changing a model, a label map or a provider setting, the question is not only "did accuracy
move" but "on which images did the answer change, and did it get better or worse". Images are matched by
their dataset name (stable across runs even when preparation limits change the bytes), else by hash.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cloudderm.errors import ConfigError
from cloudderm.results import image_key, iter_records

__all__ = ["DIFF_METRICS", "check_baseline", "run_diff"]

DIFF_METRICS = (
    "n",
    "ok",
    "errors",
    "accuracy",
    "balanced_accuracy",
    "macro_f1",
    "melanoma_sensitivity",
    "triage_sensitivity",
    "triage_specificity",
    "ece",
    "out_of_domain_rate",
    "latency_ms.p50",
    "latency_ms.p95",
    "cost_usd.per_1k",
)
MAX_FLIPS = 500


def check_baseline(baseline_dir: Path) -> tuple[Path, Path]:
    """The baseline's summary.json and predictions.jsonl paths.

    Raises:
        ConfigError: naming the folder and the missing file, so ``--baseline`` can be fixed before a run.
    """
    folder = Path(baseline_dir)
    summary, predictions = folder / "summary.json", folder / "predictions.jsonl"
    for path in (summary, predictions):
        if not path.is_file():
            raise ConfigError(
                f"{path.name} not found; --baseline must be the -o folder of an earlier compare run",
                file=str(folder),
                field="baseline",
            )
    return summary, predictions


def _dig(mapping: Any, path: str) -> Any:
    for part in path.split("."):
        mapping = mapping.get(part) if isinstance(mapping, Mapping) else None
    return mapping


def _outcome(rec: Mapping[str, Any]) -> str:
    if rec.get("status") != "ok":
        return str(rec.get("status") or "error")
    return str(rec.get("canonical") or "out-of-domain")


def _metric_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, dict]:
    changes = {}
    for path in DIFF_METRICS:
        old, new = _dig(before, path), _dig(after, path)
        if old == new:
            continue
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (old, new))
        changes[path] = {"before": old, "after": new, "delta": (new - old) if numeric else None}
    return changes


def run_diff(
    summary: Mapping[str, Any], predictions_jsonl: Path, baseline_dir: Path, *, max_flips: int = MAX_FLIPS
) -> dict[str, Any]:
    """Compare this run with the baseline folder's run.

    Returns:
        ``{"baseline", "providers": {name: {"status": "both"|"added"|"removed", "changes", "model",
        "config_changed", "images_added", "images_removed"}}, "flipped": [...], "flipped_total",
        "flipped_by_provider": {name: {"fixed", "broke", "changed"}}}``. A flip is an image whose outcome
        (canonical code, "out-of-domain", or error/skipped status) differs between the runs; "fixed" means
        wrong before and right now, "broke" the reverse, "changed" anything else.
    """
    summary_path, predictions_path = check_baseline(baseline_dir)
    old_summary = json.loads(summary_path.read_text(encoding="utf-8"))
    old: dict[tuple[str, str], str] = {}
    for rec in iter_records(predictions_path):
        old[(str(rec.get("provider")), image_key(rec))] = _outcome(rec)
    flips: list[dict[str, Any]] = []
    counts: dict[str, Counter] = {}
    seen: set[tuple[str, str]] = set()
    added: Counter = Counter()
    for rec in iter_records(Path(predictions_jsonl)):
        pair = (str(rec.get("provider")), image_key(rec))
        seen.add(pair)
        if pair not in old:
            added[pair[0]] += 1
            continue
        before, after = old[pair], _outcome(rec)
        if before == after:
            continue
        truth = rec.get("truth")
        direction = "changed"
        if truth is not None and (before == truth) != (after == truth):
            direction = "fixed" if after == truth else "broke"
        counts.setdefault(pair[0], Counter())[direction] += 1
        if len(flips) < max_flips:
            flips.append(
                {
                    "provider": pair[0],
                    "image": pair[1],
                    "before": before,
                    "after": after,
                    "truth": truth,
                    "direction": direction,
                }
            )
    removed = Counter(p for p, _ in old.keys() - seen)
    return {
        "baseline": str(baseline_dir),
        "image_set": image_set_note({i for _, i in seen}, {i for _, i in old}),
        "providers": _provider_changes(old_summary, summary, added, removed),
        "flipped": sorted(flips, key=lambda f: ({"broke": 0, "fixed": 1}.get(f["direction"], 2), f["image"])),
        "flipped_total": sum(sum(c.values()) for c in counts.values()),
        "flipped_by_provider": {
            name: {k: c.get(k, 0) for k in ("fixed", "broke", "changed")} for name, c in counts.items()
        },
    }


def image_set_note(now: set[str], before: set[str]) -> str | None:
    """None when both runs saw the same images; else the sentence every report puts above the diff.

    Metric changes over different images mix a model change with a data change, so a reader must be told
    before reading any number (issue #12 item 18).
    """
    if now == before:
        return None
    return (
        f"different image sets: {len(now - before)} image(s) only in this run, {len(before - now)} only in "
        f"the baseline, {len(now & before)} in both; metric changes mix data and model changes"
    )


def _provider_changes(
    old_summary: Mapping[str, Any], summary: Mapping[str, Any], added: Counter, removed: Counter
) -> dict[str, dict]:
    old_p = old_summary.get("providers") or {}
    new_p = summary.get("providers") or {}
    out: dict[str, dict] = {}
    for name in list(new_p) + [n for n in old_p if n not in new_p]:
        if name not in old_p:
            out[name] = {"status": "added"}
            continue
        if name not in new_p:
            out[name] = {"status": "removed"}
            continue
        before, after = old_p[name], new_p[name]
        entry: dict[str, Any] = {
            "status": "both",
            "changes": _metric_changes(before, after),
            "config_changed": bool(
                before.get("config_hash") and after.get("config_hash") != before.get("config_hash")
            ),
            "images_added": added.get(name, 0),
            "images_removed": removed.get(name, 0),
        }
        if before.get("model") != after.get("model"):
            entry["model"] = {"before": before.get("model"), "after": after.get("model")}
        out[name] = entry
    return out
