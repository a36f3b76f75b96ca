"""Compare providers on one image set: datasets, the resumable runner and store, metrics and summary.

The entry point is :func:`run_compare` (also the ``cloudderm compare`` command)::

    from cloudderm.compare import run_compare
    summary = run_compare("images/", config="cloudderm.yaml", labels="labels.csv", out="out")

Submodules load on first use so importing the package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cloudderm._lazy import lazy_getattr

if TYPE_CHECKING:
    from cloudderm.compare.api import CompareInterrupted, run_compare
    from cloudderm.compare.datasets import Dataset, DatasetItem, open_dataset

__all__ = ["CompareInterrupted", "Dataset", "DatasetItem", "open_dataset", "run_compare"]

_LAZY = {
    "run_compare": "cloudderm.compare.api",
    "CompareInterrupted": "cloudderm.compare.api",
    "Dataset": "cloudderm.compare.datasets",
    "DatasetItem": "cloudderm.compare.datasets",
    "open_dataset": "cloudderm.compare.datasets",
}

__getattr__ = lazy_getattr(__name__, _LAZY)
