"""``compare --explain N``: explain the N images the providers disagree on most, then re-write the reports.

Runs after the comparison (its answers are what decide which images disagree), through the same engine as
``cloudderm explain``: every call counted and priced before the first, the budget (``--max-calls``/``--yes``)
checked before any is made, perturbed answers cached in the comparison's own ``results.sqlite``. The
maps go to ``OUT/explain/``; ``summary["explain"]`` carries their records for the report section.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from cloudderm.compare.datasets import Dataset
    from cloudderm.config import Config

__all__ = ["EXPLAIN_DIR", "explain_disagreements"]

EXPLAIN_DIR = "explain"


def _most_disagreed(predictions: Path, providers: Sequence[str], count: int) -> list[str]:
    """Image keys, most distinct answers first (ties: labelled first, then file order)."""
    from cloudderm.report.details import collect_details

    details = collect_details(predictions, list(providers))
    ranked = sorted(details.disagreements, key=lambda d: -len({a.outcome for a in d.answers.values()}))
    return [d.key for d in ranked[:count]]


def explain_disagreements(
    dataset: Dataset,
    config: Config,
    summary: dict[str, Any],
    out: Path,
    *,
    count: int,
    providers: Sequence[str] | None,
    max_calls: int | None,
    yes: bool,
    baseline: Path | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Explain, add ``summary["explain"]``, re-write summary.json/report.md/report.html; returns the summary.

    Raises:
        CallBudgetExceeded: more calls needed than allowed (nothing sent; the comparison's outputs stay).
    """
    from cloudderm.classifier import ImageLimits
    from cloudderm.compare.api import PREDICTIONS, RESULTS_DB
    from cloudderm.compare.store import ResultStore
    from cloudderm.explain.api import Explainer, ExplainOptions
    from cloudderm.explain.session import run_explanations
    from cloudderm.factory import build_classifier
    from cloudderm.images import prepare
    from cloudderm.report import write_reports

    names = config.select(providers)
    keys = _most_disagreed(out / PREDICTIONS, names, count)
    section: dict[str, Any] = {
        "dir": str((out / EXPLAIN_DIR).resolve()),
        "relative_dir": EXPLAIN_DIR,
        "images": [],
    }
    if not keys:
        section["note"] = "no image had disagreeing answers, so none was explained"
    else:
        classifiers = []
        try:
            for name in names:
                classifiers.append(build_classifier(name, config))  # policy checked before any send
            limits = ImageLimits()
            for clf in classifiers:
                limits = limits.merge(clf.image_limits())
            wanted = set(keys)
            found = {
                item.key: prepare(
                    item.load(), max_bytes=limits.max_bytes, max_side=limits.max_side, source=item.key
                )
                for item in dataset
                if item.key in wanted
            }
            images = [(Path(key).stem, found[key]) for key in keys if key in found]
            with ResultStore(out / RESULTS_DB) as store:
                run = run_explanations(
                    Explainer(ExplainOptions(), store),
                    images,
                    classifiers,
                    out / EXPLAIN_DIR,
                    max_calls=max_calls,
                    yes=yes,
                    console=console,
                )
        finally:
            for clf in classifiers:
                clf.close()
        for key in keys:
            section["images"].append(
                {
                    "key": key,
                    "explanations": [e.record() for e in run.explanations if e.image == key],
                    "errors": [err for err in run.errors if err["image"] == key],
                }
            )
        section["calls"] = {"announced": run.announced_calls, "made": sum(e.calls for e in run.explanations)}
    summary = {**summary, "explain": section}
    write_reports(out, summary, out / PREDICTIONS, images_root=dataset.images_root, baseline_dir=baseline)
    return summary
