"""A small yet diverse validation set: a seeded, stratified sample of a dataset.

Paying a cloud endpoint to classify 10,000 near-identical nevi says little; a few images of every
(label x sex x site ...) combination says more, and shows where the data is too thin to say anything.
Strata are the label (canonical code, or the raw text when it is outside the taxonomy) crossed with the
``--by`` columns; each gives up to ``per_stratum`` images chosen with a seeded RNG, so the same command
gives the same sample. Unlabelled images are left out and counted.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cloudderm.compare.datasets import Dataset
from cloudderm.compare.labels import DatasetError, Entry

__all__ = ["MISSING", "Sample", "Stratum", "stratified_sample", "write_sample_csv"]

MISSING = "(missing)"


@dataclass(frozen=True)
class Stratum:
    """One combination of label and ``--by`` values, with how many images it has and how many were taken."""

    values: tuple[str, ...]
    available: int
    selected: int


@dataclass
class Sample:
    """The chosen entries (dataset order), every stratum's coverage, and what was left out."""

    entries: list[Entry]
    strata: list[Stratum]
    per_stratum: int
    by: list[str]
    unlabelled: int

    @property
    def short(self) -> list[Stratum]:
        """Strata with fewer images than asked for: too thin to measure on their own."""
        return [s for s in self.strata if s.available < self.per_stratum]


def stratified_sample(dataset: Dataset, per_stratum: int, by: Sequence[str] = (), seed: int = 0) -> Sample:
    """Up to ``per_stratum`` images from every stratum of label x ``by`` columns, seeded.

    Raises:
        DatasetError: ``per_stratum`` is below 1, a ``by`` column does not exist, or no image is labelled.
    """
    if per_stratum < 1:
        raise DatasetError("--per-stratum must be at least 1")
    missing = [c for c in by if c not in dataset.columns]
    if missing:
        raise DatasetError(
            f"no metadata column {', '.join(map(repr, missing))}; "
            f"columns: {', '.join(dataset.columns) or 'none'}"
        )
    positions = [dataset.columns.index(c) for c in by]
    groups: dict[tuple[str, ...], list[Entry]] = {}
    unlabelled = 0
    for entry in dataset.entries:
        label = entry.truth or entry.truth_raw
        if label is None:
            unlabelled += 1
            continue
        key = (label, *(entry.meta[i] or MISSING for i in positions))
        groups.setdefault(key, []).append(entry)
    if not groups:
        raise DatasetError(
            f"no labelled images in {dataset.path}: give --labels with a label (or dx) column",
        )
    rng = random.Random(seed)
    chosen: list[Entry] = []
    strata: list[Stratum] = []
    for key in sorted(groups):
        members = groups[key]
        picked = rng.sample(members, min(per_stratum, len(members)))
        chosen.extend(picked)
        strata.append(Stratum(key, len(members), len(picked)))
    chosen.sort(key=lambda e: e.index)
    return Sample(chosen, strata, per_stratum, list(by), unlabelled)


def write_sample_csv(dataset: Dataset, sample: Sample, path: str | Path) -> Path:
    """A labels CSV (``image``, ``label``, every metadata column) usable as ``--labels`` for compare."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = [c for c in dataset.columns if c.lower() not in ("image", "label")]
    positions = [dataset.columns.index(c) for c in columns]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "label", *columns])
        for entry in sample.entries:
            label = entry.truth or entry.truth_raw or ""
            writer.writerow([entry.key, label, *((entry.meta[i] or "") for i in positions)])
    return path
