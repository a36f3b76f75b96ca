"""Stand-ins for ``build_summary``, ``write_reports`` and ``render_terminal`` so the runner's tests do not
depend on how metrics and reports are implemented (they have their own tests). They honour the agreed
signatures,
read ``predictions.jsonl`` for real and write the three report files, recording what they were given.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

CALLS: dict[str, list[dict[str, Any]]] = {
    "build_summary": [],
    "write_reports": [],
    "render_terminal": [],
    "check_baseline": [],
}


def build_summary(
    predictions_jsonl: Path,
    *,
    providers: dict[str, dict],
    dataset: dict,
    subgroups: list[str],
    taxonomy: Any,
    pricing_as_of: str | None = None,
) -> dict:
    CALLS["build_summary"].append(
        {"path": predictions_jsonl, "providers": providers, "dataset": dataset, "subgroups": subgroups}
    )
    counts: dict[str, Counter] = {name: Counter() for name in providers}
    with open(predictions_jsonl, encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            counts[record["provider"]][record["status"]] += 1
    return {
        "providers": {
            name: {**info, "n": sum(c.values()), "ok": c["ok"], "errors": c["error"]}
            for name, info in providers.items()
            for c in [counts[name]]
        },
        "agreement": {},
        "dataset": dict(dataset),
        "pricing_as_of": None,
    }


def write_reports(
    out_dir: Path,
    summary: dict,
    predictions_jsonl: Path,
    *,
    images_root: Path | None,
    baseline_dir: Path | None = None,
) -> dict[str, Path]:
    CALLS["write_reports"].append({"out": out_dir, "images_root": images_root, "baseline_dir": baseline_dir})
    paths = {name: out_dir / name for name in ("summary.json", "report.md", "report.html")}
    paths["summary.json"].write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")
    paths["report.md"].write_text("# stub report\n", encoding="utf-8")
    paths["report.html"].write_text("<html><body>stub</body></html>", encoding="utf-8")
    return paths


def check_baseline(baseline_dir: Path) -> None:
    CALLS["check_baseline"].append({"baseline_dir": baseline_dir})


def render_terminal(summary: dict, console: Any) -> None:
    CALLS["render_terminal"].append({"providers": list(summary["providers"])})
    for name, entry in summary["providers"].items():
        console.print(f"STUB-TABLE {name} n={entry['n']} ok={entry['ok']}")


def install(monkeypatch: Any = None) -> None:
    """Point the real modules' functions at the stand-ins (through ``monkeypatch`` when given, so it is
    undone). The modules themselves stay in place: only three attributes change."""
    import cloudderm.compare.summary as summary_module
    import cloudderm.report as report_module

    for values in CALLS.values():
        values.clear()
    targets = (
        (summary_module, "build_summary", build_summary),
        (report_module, "write_reports", write_reports),
        (report_module, "render_terminal", render_terminal),
        (report_module, "check_baseline", check_baseline),
    )
    for module, attr, stand_in in targets:
        if monkeypatch is not None:
            monkeypatch.setattr(module, attr, stand_in)
        else:
            setattr(module, attr, stand_in)
