"""Test support shipped with cloudderm: deterministic fakes, recorded HTTP fixtures and the conformance suite.

The loopback emulators moved to :mod:`cloudderm.emulate` (a product feature). ``ClassifierConformance``
(needs pytest) is the suite every adapter's tests mix in, plugins' included.

Nothing here is imported by ``import cloudderm``; it exists so users can test their own pipelines offline.
``cassette`` (needs vcrpy: ``pip install "cloudderm[test]"``) and ``scan_cassettes`` are loaded on first
use, so importing :mod:`cloudderm.testing.fakes` never pulls in vcrpy.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ClassifierConformance", "cassette", "find_leaks", "scan_cassettes"]

_LAZY = {
    "ClassifierConformance": "cloudderm.testing.conformance",
    "cassette": "cloudderm.testing.cassettes",
    "scan_cassettes": "cloudderm.testing.scan",
    "find_leaks": "cloudderm.testing.scan",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cloudderm.testing' has no attribute {name!r}")
    if module == "cloudderm.testing.cassettes":
        try:
            importlib.import_module("vcr")
        except ImportError as e:
            from cloudderm.errors import MissingDependencyError

            raise MissingDependencyError(
                'Install vcrpy to record or replay cassettes: pip install "cloudderm[test]"'
            ) from e
    return getattr(importlib.import_module(module), name)
