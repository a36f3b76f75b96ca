"""Loopback emulators of provider endpoints, backed by real local models: a product feature.

``cloudderm emulate`` and ``cloudderm demo`` serve local models as SageMaker, Azure ML and Vertex AI
endpoints (and any protocol added to :mod:`cloudderm.emulate.registry`), so the real cloud adapters run
offline against real answers. ``cloudderm.emulate.models`` builds the untrained stand-in models the demo
uses when the seed models are not available. Nothing here is imported by ``import cloudderm``.

See docs/emulators.md and docs/architecture.md ("Emulators").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cloudderm._lazy import lazy_getattr

if TYPE_CHECKING:
    from cloudderm.emulate.app import EmulatedEndpoint
    from cloudderm.emulate.emulator import FAKE_AWS_ENV, Emulator
    from cloudderm.emulate.faults import FAULT_KINDS, FaultPlan, Latency
    from cloudderm.emulate.protocol import EndpointRequest, Protocol
    from cloudderm.emulate.registry import PROTOCOLS, get_protocol, protocol_names
    from cloudderm.emulate.stats import EmulatorStats, EndpointStats
    from cloudderm.emulate.uploads import find_metadata

__all__ = [
    "FAKE_AWS_ENV",
    "FAULT_KINDS",
    "PROTOCOLS",
    "EmulatedEndpoint",
    "Emulator",
    "EmulatorStats",
    "EndpointRequest",
    "EndpointStats",
    "FaultPlan",
    "Latency",
    "Protocol",
    "find_metadata",
    "get_protocol",
    "protocol_names",
]

_LAZY = {
    "FAKE_AWS_ENV": "cloudderm.emulate.emulator",
    "Emulator": "cloudderm.emulate.emulator",
    "EmulatedEndpoint": "cloudderm.emulate.app",
    "FAULT_KINDS": "cloudderm.emulate.faults",
    "FaultPlan": "cloudderm.emulate.faults",
    "Latency": "cloudderm.emulate.faults",
    "EndpointRequest": "cloudderm.emulate.protocol",
    "Protocol": "cloudderm.emulate.protocol",
    "PROTOCOLS": "cloudderm.emulate.registry",
    "get_protocol": "cloudderm.emulate.registry",
    "protocol_names": "cloudderm.emulate.registry",
    "EmulatorStats": "cloudderm.emulate.stats",
    "EndpointStats": "cloudderm.emulate.stats",
    "find_metadata": "cloudderm.emulate.uploads",
}

# The emulator pulls in PIL and the HTTP server only when one of these names is first used.
__getattr__ = lazy_getattr(__name__, _LAZY)
