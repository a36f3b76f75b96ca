"""What one emulated wire protocol provides: its route, its handler and the adapter settings that reach it.

A new protocol (OpenAI-compatible chat, KServe v2, a managed vision API, ...) is one module with a
``Protocol`` subclass plus one row in :mod:`cloudderm.emulate.registry`; the app, the server, the
``Emulator`` class and ``cloudderm emulate --protocol NAME`` pick it up from the registry. See
docs/architecture.md ("Emulators") and docs/emulators.md.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from cloudderm.emulate.wire import Reply, WireError

if TYPE_CHECKING:
    from cloudderm.emulate.app import EmulatedEndpoint, EmulatorApp
    from cloudderm.emulate.emulator import Emulator

__all__ = ["EndpointRequest", "Protocol"]


@dataclass(frozen=True)
class EndpointRequest:
    """One request for an endpoint that exists, as ``Protocol.serve`` gets it (one argument, not six).

    ``key`` is the endpoint's counter and fault-plan key, ``"<protocol>/<endpoint>"``; ``match`` is the
    route's match (path parameters such as a project or a model version).
    """

    app: EmulatorApp
    key: str
    endpoint: EmulatedEndpoint
    match: re.Match[str]
    headers: Mapping[str, str]
    body: bytes


class Protocol(ABC):
    """One provider's wire protocol as the emulator serves it; stateless (one instance per process).

    Counters and fault-plan keys of an endpoint under this protocol are ``"<name>/<endpoint>"``.
    """

    name: ClassVar[str]  # registry name, e.g. "sagemaker"
    title: ClassVar[str]  # shown in banners, e.g. "SageMaker"
    adapter: ClassVar[str]  # the cloudderm adapter whose settings ``config`` returns
    methods: ClassVar[tuple[str, ...]] = ("POST",)
    # matched against the request path (query string removed); the template reads the endpoint from ``name``
    route: ClassVar[re.Pattern[str]]

    def check(self, endpoint: EmulatedEndpoint) -> None:
        """Refuse endpoint options this protocol cannot serve (raise ValueError naming the option)."""

    def handle(
        self, app: EmulatorApp, match: re.Match[str], headers: Mapping[str, str], body: bytes
    ) -> Reply:
        """Answer one request whose path matched ``route``: find the endpoint the ``name`` group names, then
        answer it counted (``not_found`` when there is none, else ``serve``).

        A template method so that the lookup and the counters live in one place and every protocol counts
        alike. Override it only where a request is not "the path names the endpoint" (a name in the body,
        a check before the lookup, uncounted routes), keep counting through ``counted`` and say why there.
        """
        name = match["name"]
        key = f"{self.name}/{name}"
        endpoint = app.endpoints.get(name)

        def answer() -> Reply:
            if endpoint is None:
                return self.not_found(name, match)
            return self.serve(EndpointRequest(app, key, endpoint, match, headers, body))

        return self.counted(app, key, body, answer)

    def counted(self, app: EmulatorApp, key: str, body: bytes, answer: Callable[[], Reply]) -> Reply:
        """``answer()`` with the request and its status counted under ``key``; a ``WireError`` is its reply.

        The one owner of ``record_request`` (before any work) and ``record_status`` (after every answer,
        refusals and injected faults included), so the counters of every protocol mean the same.
        """
        app.stats.record_request(key, len(body))
        try:
            reply = answer()
        except WireError as e:
            reply = e.reply
        app.stats.record_status(key, reply.status)
        return reply

    def not_found(self, name: str, match: re.Match[str]) -> Reply:
        """The service's own answer when no endpoint ``name`` is emulated (each provider words it its way)."""
        raise NotImplementedError(f"{type(self).__name__} must define not_found or override handle")

    def serve(self, request: EndpointRequest) -> Reply:
        """The protocol's own work for an existing endpoint: checks, ``app.with_faults`` and the backend.

        Raise ``WireError`` to refuse the request with the service's answer; it is counted like any reply.
        """
        raise NotImplementedError(f"{type(self).__name__} must define serve or override handle")

    @abstractmethod
    def config(self, emulator: Emulator, name: str) -> dict[str, Any]:
        """Settings for ``adapter`` that point at endpoint ``name`` of a running emulator."""

    @abstractmethod
    def banner(self, emulator: Emulator, name: str) -> str:
        """One line for ``cloudderm emulate``: how a client reaches endpoint ``name``."""

    def env(self, emulator: Emulator) -> dict[str, str]:
        """Environment variables a client of this protocol needs against the emulator (none by default)."""
        return {}
