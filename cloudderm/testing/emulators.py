"""Moved to :mod:`cloudderm.emulate` (the emulators are a product feature, not test support).

This alias keeps old imports working for one release; it warns once per process.
"""

from __future__ import annotations

import warnings

from cloudderm.emulate.app import EmulatedEndpoint
from cloudderm.emulate.emulator import FAKE_AWS_ENV, Emulator
from cloudderm.emulate.faults import FAULT_KINDS, FaultPlan, Latency
from cloudderm.emulate.stats import EmulatorStats, EndpointStats
from cloudderm.emulate.uploads import find_metadata

__all__ = [
    "FAKE_AWS_ENV",
    "FAULT_KINDS",
    "EmulatedEndpoint",
    "Emulator",
    "EmulatorStats",
    "EndpointStats",
    "FaultPlan",
    "Latency",
    "find_metadata",
]

warnings.warn(
    "cloudderm.testing.emulators moved to cloudderm.emulate; import from there",
    DeprecationWarning,
    stacklevel=2,
)
