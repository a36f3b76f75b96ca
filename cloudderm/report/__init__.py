"""Reports of a comparison: terminal table, summary.json, report.md and a self-contained report.html.

Only the standard library, NumPy and rich are needed; matplotlib (the ``report`` extra) adds plots to the
HTML report and is imported only when a report is written.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from cloudderm.errors import CloudDermError

__all__ = ["check_baseline", "render_terminal", "write_reports"]


def render_terminal(summary: dict, console: Any) -> None:
    """Print the side-by-side comparison table (and agreement, warnings, changes) to a rich Console."""
    from cloudderm.report.terminal import render_terminal as _render

    _render(summary, console)


def check_baseline(baseline_dir: Path) -> None:
    """Raise ConfigError before a run when ``--baseline`` does not hold an earlier run's outputs."""
    from cloudderm.report.diff import check_baseline as _check

    _check(baseline_dir)


def write_reports(
    out_dir: Path,
    summary: dict,
    predictions_jsonl: Path,
    *,
    images_root: Path | None,
    baseline_dir: Path | None = None,
) -> dict[str, Path]:
    """Write summary.json, report.md and report.html into ``out_dir``.

    Args:
        out_dir: the compare run's output folder.
        summary: a ``summary.json`` dict (shape: :class:`cloudderm.results.Summary`; not modified).
        predictions_jsonl: the run's per-answer lines, read again for latency plots and disagreements.
        images_root: where the dataset's images live, for thumbnails (None: no thumbnails).
        baseline_dir: an earlier run's output folder; adds a run-vs-run diff (``summary["baseline_diff"]``).
            A baseline that cannot be read becomes a note in the reports rather than a lost run.

    Returns:
        ``{"summary": path, "markdown": path, "html": path}``.
    """
    from cloudderm.report.details import collect_details
    from cloudderm.report.diff import run_diff
    from cloudderm.report.html import render_html
    from cloudderm.report.jsonfile import write_json, write_text
    from cloudderm.report.markdown import render_markdown

    _check_shape(summary)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = copy.deepcopy(summary)
    if baseline_dir is not None:
        try:
            summary["baseline_diff"] = run_diff(summary, Path(predictions_jsonl), Path(baseline_dir))
        except (CloudDermError, OSError, ValueError) as e:
            summary["baseline_diff"] = {"baseline": str(baseline_dir), "error": f"baseline not compared: {e}"}
    details = collect_details(Path(predictions_jsonl), list(summary.get("providers") or {}))
    return {
        "summary": write_json(out / "summary.json", summary),
        "markdown": write_text(out / "report.md", render_markdown(summary, details)),
        "html": write_text(out / "report.html", render_html(summary, details, images_root=images_root)),
    }


def _check_shape(summary: dict) -> None:
    """Refuse a summary that does not have the ``cloudderm.results.Summary`` shape the reports read."""
    from pydantic import ValidationError

    from cloudderm.results import Summary

    try:
        Summary.model_validate(summary)
    except ValidationError as e:
        item = e.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(p) for p in item["loc"])
        raise CloudDermError(
            f"summary.json does not have the results shape at {where}: {item['msg']}"
        ) from None
