"""Reading a ``compare`` output folder for the Results tab: read-only, lock-free, inside the folder only.

A finished run has ``predictions.jsonl`` newer than ``results.sqlite``; a run still going has only the
store, which is read through a read-only SQLite connection (``mode=ro``) that takes no lock of the
runner's, so the tab can watch it fill. Any file served (plots) is resolved and must lie inside the folder:
``inside()`` refuses ``..``, absolute paths and symlinks that lead out.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cloudderm.errors import ConfigError

__all__ = ["TABLE_FILTERS", "Run", "inside", "load_run"]

TABLE_FILTERS = ("all", "only disagreements", "only melanoma")
METRICS = ("n", "ok", "errors", "accuracy", "balanced_accuracy", "macro_f1", "melanoma_sensitivity", "ece")
PLOT_SUFFIXES = (".png", ".svg", ".jpg", ".jpeg")


def inside(folder: Path, relative: str | Path) -> Path:
    """``folder/relative`` resolved, or ValueError when it would leave ``folder``."""
    root = folder.resolve()
    target = (root / relative).resolve()
    if target != root and root not in target.parents:
        raise ValueError(f"{relative!s} is outside the results folder {root}")
    return target


class Run:
    """What one output folder holds right now: rows (image × provider), summary metrics, plot files."""

    def __init__(self, folder: Path, rows: list[dict[str, Any]], summary: dict[str, Any], live: bool):
        self.folder = folder
        self.rows = rows
        self.summary = summary
        self.live = live

    @property
    def providers(self) -> list[str]:
        return list(dict.fromkeys(r["provider"] for r in self.rows))

    def table(self, which: str = "all") -> tuple[list[str], list[list[Any]]]:
        """Images × providers: truth, each provider's ``code label score`` and an agreement flag."""
        providers = self.providers
        by_image: dict[str, dict[str, Any]] = {}
        for row in self.rows:
            entry = by_image.setdefault(row["image"], {"truth": row.get("truth"), "answers": {}})
            entry["answers"][row["provider"]] = row
        headers = ["image", "truth", *providers, "agree"]
        out: list[list[Any]] = []
        for image, entry in by_image.items():
            codes = {a.get("canonical") for a in entry["answers"].values() if a.get("status") == "ok"}
            agree = len(codes) <= 1 and None not in codes
            melanoma = entry["truth"] == "mel" or "mel" in codes
            if which == "only disagreements" and agree:
                continue
            if which == "only melanoma" and not melanoma:
                continue
            cells = [_cell(entry["answers"].get(p)) for p in providers]
            out.append([image, entry["truth"] or "", *cells, "yes" if agree else "no"])
        return headers, out

    def metrics(self) -> tuple[list[str], list[list[Any]]]:
        rows = [
            [name, *[_num(stats.get(key)) for key in METRICS]]
            for name, stats in (self.summary.get("providers") or {}).items()
        ]
        return ["provider", *METRICS], rows

    def plots(self) -> list[Path]:
        """Image files of the report inside the folder (symlinks leading out are skipped)."""
        found: list[Path] = []
        for path in sorted(self.folder.rglob("*")):
            if path.suffix.lower() in PLOT_SUFFIXES:
                try:
                    found.append(inside(self.folder, path.relative_to(self.folder)))
                except ValueError:
                    continue
        return found

    def image_file(self, image: str) -> Path | None:
        """The dataset file of one of this run's images, when the summary's dataset folder is readable."""
        dataset = (self.summary.get("dataset") or {}).get("path")
        if not dataset or image not in {r["image"] for r in self.rows}:
            return None
        for base in (Path(dataset), self.folder.parent / dataset):
            try:
                candidate = inside(base, image)
            except ValueError:
                return None
            if candidate.is_file():
                return candidate
        return None


def load_run(folder: str | Path) -> Run:
    """The run in ``folder`` as it is now (finished or still being written)."""
    root = Path(folder)
    store, jsonl, summary_file = root / "results.sqlite", root / "predictions.jsonl", root / "summary.json"
    if not store.is_file() and not jsonl.is_file():
        raise ConfigError(f"{root} is not a compare output folder (no results.sqlite or predictions.jsonl)")
    summary = _json_file(summary_file)
    finished = jsonl.is_file() and (not store.is_file() or jsonl.stat().st_mtime >= _last_answer(store))
    if finished:
        rows = list(_jsonl_rows(jsonl))
    else:
        rows = list(_store_rows(store, (summary.get("taxonomy") or {}).get("name", "ham10000")))
    return Run(root, rows, summary, live=not finished)


def _json_file(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _jsonl_rows(path: Path) -> Iterable[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            try:
                yield json.loads(line)
            except ValueError:  # a line being written
                continue


def _connect(path: Path) -> sqlite3.Connection:
    """A read-only connection: it takes no write lock, so the runner keeps writing."""
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)


def _last_answer(store: Path) -> float:
    """When the last answer landed (``predictions.jsonl`` written later means the run finished)."""
    conn = _connect(store)
    try:
        (updated,) = conn.execute("SELECT MAX(updated) FROM results").fetchone()
    finally:
        conn.close()
    return float(updated or 0.0)


def _store_rows(path: Path, taxonomy_name: str) -> Iterable[dict[str, Any]]:
    """Rows of a run still being written, shaped exactly as ``predictions.jsonl`` will have them."""
    from cloudderm.compare.export import ExportTarget, export_line  # the one owner of code/triage/warnings
    from cloudderm.taxonomy import get_taxonomy

    taxonomy = get_taxonomy(taxonomy_name)
    conn = _connect(path)
    try:
        query = (
            "SELECT i.image, i.sha256, i.truth, i.truth_raw, i.metadata, r.provider, r.status, r.attempts, "
            "r.record FROM run_items i JOIN results r ON r.sha256 = i.sha256 ORDER BY i.seq"
        )
        for image, sha, truth, truth_raw, metadata, provider, status, attempts, record in conn.execute(query):
            item = {
                "image": image,
                "sha256": sha,
                "truth": truth,
                "truth_raw": truth_raw,
                "metadata": json.loads(metadata),
            }
            answer = {"status": status, "attempts": attempts, **json.loads(record)}
            yield export_line(item, provider, answer, ExportTarget(provider, "", taxonomy))
    finally:
        conn.close()


def _cell(answer: dict[str, Any] | None) -> str:
    if answer is None:
        return "pending"
    if answer.get("status") != "ok":
        return f"error: {answer.get('error_type') or answer.get('status')}"
    labels = answer.get("labels") or []
    if not labels:
        return answer.get("outcome") or "-"
    code = answer.get("canonical") or "out-of-domain"
    return f"{code} · {labels[0]['label']} {labels[0]['score']:.2f}"


def _num(value: Any) -> Any:
    return round(value, 3) if isinstance(value, float) else value
