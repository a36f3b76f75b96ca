"""What one emulated wire protocol provides: its route, its handler and the adapter settings that reach it.

A new protocol (OpenAI-compatible chat, KServe v2, a managed vision API, ...) is one module with a
``Protocol`` subclass plus one row in :mod:`cloudderm.emulate.registry`; the app, the server, the
``Emulator`` class and ``cloudderm emulate --protocol NAME`` pick it up from the registry. See
docs/architecture.md ("Emulators") and docs/emulators.md.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from cloudderm.emulate.app import EmulatedEndpoint, EmulatorApp
    from cloudderm.emulate.emulator import Emulator
    from cloudderm.emulate.wire import Reply

__all__ = ["Protocol"]


class Protocol(ABC):
    """One provider's wire protocol as the emulator serves it; stateless (one instance per process).

    Counters and fault-plan keys of an endpoint under this protocol are ``"<name>/<endpoint>"``.
    """

    name: ClassVar[str]  # registry name, e.g. "sagemaker"
    title: ClassVar[str]  # shown in banners, e.g. "SageMaker"
    adapter: ClassVar[str]  # the cloudderm adapter whose settings ``config`` returns
    methods: ClassVar[tuple[str, ...]] = ("POST",)
    route: ClassVar[re.Pattern[str]]  # matched against the request path (query string removed)

    def check(self, endpoint: EmulatedEndpoint) -> None:
        """Refuse endpoint options this protocol cannot serve (raise ValueError naming the option)."""

    @abstractmethod
    def handle(
        self, app: EmulatorApp, match: re.Match[str], headers: Mapping[str, str], body: bytes
    ) -> Reply:
        """Answer one request whose path matched ``route`` (count it, apply faults, run the backend)."""

    @abstractmethod
    def config(self, emulator: Emulator, name: str) -> dict[str, Any]:
        """Settings for ``adapter`` that point at endpoint ``name`` of a running emulator."""

    @abstractmethod
    def banner(self, emulator: Emulator, name: str) -> str:
        """One line for ``cloudderm emulate``: how a client reaches endpoint ``name``."""

    def env(self, emulator: Emulator) -> dict[str, str]:
        """Environment variables a client of this protocol needs against the emulator (none by default)."""
        return {}
