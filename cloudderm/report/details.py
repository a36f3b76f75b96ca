"""Per-image facts the summary does not keep: latency samples and the images providers disagree on.

Why two passes over predictions.jsonl: the first keeps one small integer per image x provider (its
outcome) and one float per answer (its latency) to find the disagreements with NumPy; the second reads
the full answers (labels, scores) of only the few images the report shows. Memory stays a few bytes per
line however large the run.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cloudderm.results import image_key, iter_records_at, read_records_at

__all__ = ["Answer", "Details", "ImageAnswers", "collect_details"]

DEFAULT_LIMIT = 50
_ABSENT = -1


@dataclass(frozen=True)
class Answer:
    """One provider's top answer for one image (or why there is none)."""

    status: str
    canonical: str | None = None
    label: str | None = None
    score: float | None = None

    @property
    def outcome(self) -> str:
        """What is compared between providers: the canonical code, "out-of-domain", or the status."""
        if self.status != "ok":
            return self.status
        return self.canonical or "out-of-domain"


@dataclass
class ImageAnswers:
    """Every provider's answer for one image."""

    key: str
    sha256: str | None
    truth: str | None
    answers: dict[str, Answer] = field(default_factory=dict)


@dataclass
class Details:
    """Latency samples per provider and the (capped) list of images with disagreeing answers."""

    latencies: dict[str, np.ndarray]
    disagreements: list[ImageAnswers]
    n_disagreements: int
    n_compared: int


def _outcome(rec: dict) -> tuple[str, bool]:
    if rec.get("status") != "ok":
        return str(rec.get("status") or "error"), False
    return str(rec.get("canonical") or "out-of-domain"), True


def collect_details(
    predictions_jsonl: Path, providers: Sequence[str], *, limit: int = DEFAULT_LIMIT
) -> Details:
    """Latencies and disagreements from predictions.jsonl.

    An image counts as compared when at least two providers answered it (status ok); it is a
    disagreement when their outcomes differ (an out-of-domain answer is an outcome of its own). Labelled
    images come first, then images with the most distinct answers, then file order.
    """
    path = Path(predictions_jsonl)
    images: dict[str, int] = {}
    labelled = array("b")
    outcome_ids: dict[str, int] = {}
    answered_outcome: list[bool] = []
    grid: dict[str, array] = {name: array("h") for name in providers}
    latencies: dict[str, array] = {name: array("d") for name in providers}
    line_offset, line_image = array("q"), array("q")
    for offset, rec in iter_records_at(path):
        name = str(rec.get("provider") or "")
        key = image_key(rec)
        index = images.get(key)
        if index is None:
            index = images[key] = len(images)
            labelled.append(rec.get("truth") is not None)
        line_offset.append(offset)
        line_image.append(index)
        outcome, ok = _outcome(rec)
        oid = outcome_ids.get(outcome)
        if oid is None:
            oid = outcome_ids[outcome] = len(outcome_ids)
            answered_outcome.append(ok)
        row = grid.get(name)
        if row is None:
            row = grid[name] = array("h")
            latencies[name] = array("d")
        if len(row) <= index:
            row.extend([_ABSENT] * (index + 1 - len(row)))
        row[index] = oid
        if ok and isinstance(rec.get("latency_ms"), (int, float)):
            latencies[name].append(float(rec["latency_ms"]))
    keys = list(images)
    chosen, n_split, n_compared = _select(grid, len(images), answered_outcome, labelled, limit)
    lines = np.isin(np.frombuffer(line_image, dtype=np.int64), chosen)
    offsets = np.frombuffer(line_offset, dtype=np.int64)[lines].tolist()
    return Details(
        latencies={n: np.frombuffer(v, dtype=float) for n, v in latencies.items()},
        disagreements=_read_answers(path, [keys[i] for i in chosen], offsets),
        n_disagreements=n_split,
        n_compared=n_compared,
    )


def _select(
    grid: dict[str, array],
    n_images: int,
    answered_outcome: list[bool],
    labelled: array,
    limit: int,
) -> tuple[list[int], int, int]:
    """The ids of the disagreements to show, the number of disagreements, and of compared images.

    Order: labelled first, then more distinct answers first, then first seen in the file.
    """
    if not grid or n_images == 0:
        return [], 0, 0
    matrix = np.full((len(grid), n_images), _ABSENT, dtype=np.int64)
    for i, row in enumerate(grid.values()):
        matrix[i, : len(row)] = np.frombuffer(row, dtype=np.int16)
    is_answer = np.array([*answered_outcome, False])  # index -1 (absent) -> False
    ok = is_answer[matrix]
    compared = ok.sum(axis=0) >= 2
    ordered = np.sort(np.where(ok, matrix, _ABSENT), axis=0)
    valid = ordered != _ABSENT
    distinct = valid[0].astype(int) + ((ordered[1:] != ordered[:-1]) & valid[1:]).sum(axis=0)
    split = np.flatnonzero(compared & (distinct > 1))
    is_labelled = np.frombuffer(labelled, dtype=np.int8)[split].astype(bool)
    order = np.lexsort((split, -distinct[split], ~is_labelled))
    return split[order][:limit].tolist(), int(split.size), int(compared.sum())


def _read_answers(path: Path, keys: list[str], offsets: list[int]) -> list[ImageAnswers]:
    """Second pass: full answers of the chosen images only (their lines, by offset), in the chosen order."""
    if not keys:
        return []
    rows = {key: ImageAnswers(key=key, sha256=None, truth=None) for key in keys}
    for rec in read_records_at(path, offsets):
        row = rows.get(image_key(rec))
        if row is None:
            continue
        row.sha256 = row.sha256 or rec.get("sha256")
        row.truth = row.truth or rec.get("truth")
        labels = rec.get("labels") or []
        top = labels[0] if labels else {}
        row.answers[str(rec.get("provider") or "")] = Answer(
            status=str(rec.get("status") or "error"),
            canonical=rec.get("canonical"),
            label=top.get("label"),
            score=top.get("score"),
        )
    return [rows[key] for key in keys]
