"""Loopback emulators of provider endpoints (SageMaker, Azure ML, Vertex AI, ...), backed by any Classifier.

Why: the cloud adapters must be tested — and demonstrated — without an account, and a mock that returns
canned JSON proves little. These emulators speak each provider's real wire protocol on 127.0.0.1, so the
real SDK clients (boto3 with ``endpoint_url``, azure-core/requests, the Vertex REST transport with
``endpoint_url``) talk to them unchanged, while a real local model produces the answers. A seeded
``FaultPlan`` adds latency, throttling, outages, timeouts and malformed bodies reproducibly, and the
counters record exactly what arrived (requests, bytes, repeats per image, leftover EXIF/GPS metadata).
Which protocols exist is decided by :mod:`cloudderm.emulate.registry`; this class knows none by itself.

Example:
    >>> from cloudderm.emulate import Emulator, FaultPlan
    >>> with Emulator(backends={"skin": my_classifier}, faults=FaultPlan.parse("429=0.1", seed=1)) as emu:
    ...     emu.sagemaker_url, emu.azure_scoring_uri("skin"), emu.vertex_api_endpoint  # doctest: +SKIP
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from cloudderm.emulate.app import EmulatedEndpoint, EmulatorApp
from cloudderm.emulate.faults import FAULT_KINDS, FaultPlan, Latency
from cloudderm.emulate.registry import get_protocol, protocol_names
from cloudderm.emulate.sagemaker import FAKE_AWS_ENV
from cloudderm.emulate.server import EmulatorServer
from cloudderm.emulate.stats import EmulatorStats, EndpointStats
from cloudderm.emulate.uploads import find_metadata

if TYPE_CHECKING:
    from cloudderm.classifier import Classifier

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


class Emulator:
    """Serve every backend under the same name through every chosen protocol (all registered by default).

    Args:
        backends: endpoint name -> a ``Classifier`` (served with default settings) or an
            ``EmulatedEndpoint`` (to choose the SageMaker format, Azure flavour, key, fault plan...).
        faults: one ``FaultPlan`` for everything, or a mapping whose keys are ``"*"`` (the default), an
            endpoint name (all its protocols) or ``"<protocol>/<name>"`` (a registered protocol, e.g.
            ``"vertex/skin"``).
        host: interface to bind; loopback by default, since the emulator checks no real credentials.
        port: 0 picks a free port (see ``.port``).
        region: the AWS region quoted in SageMaker messages and snippets.
        azure_region: the Azure region written into Azure ML snippets.
        vertex_project: the project id written into Vertex snippets.
        vertex_location: the location written into Vertex snippets (any project/location is served).
        log_requests: print one access-log line per request to stderr.
        protocols: which registered protocols to serve (default: all; see ``protocol_names()``).
    """

    def __init__(
        self,
        backends: Mapping[str, Classifier | EmulatedEndpoint],
        *,
        faults: FaultPlan | Mapping[str, FaultPlan] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        region: str = "eu-west-2",
        azure_region: str = "uksouth",
        vertex_project: str = "cloudderm-emulator",
        vertex_location: str = "europe-west2",
        log_requests: bool = False,
        protocols: Sequence[str] | None = None,
    ) -> None:
        if not backends:
            raise ValueError("an emulator needs at least one backend")
        endpoints = {
            name: replace(value) if isinstance(value, EmulatedEndpoint) else EmulatedEndpoint(backend=value)
            for name, value in backends.items()
        }
        for name in endpoints:
            if not name or "/" in name or ":" in name or name.startswith("_"):
                raise ValueError(
                    f"endpoint name {name!r} must be non-empty, without '/' or ':', not start '_'"
                )
        chosen = list(protocols) if protocols else protocol_names()
        default, overrides = _split_faults(faults, endpoints, chosen)
        self.app = EmulatorApp(
            endpoints, faults=default, region=region, stop=threading.Event(), protocols=chosen
        )
        self.app.fault_overrides.update(overrides)
        self.host = host
        self.region = region
        self.azure_region = azure_region
        self.vertex_project = vertex_project
        self.vertex_location = vertex_location
        self._requested_port = port
        self._log_requests = log_requests
        self._server: EmulatorServer | None = None

    # ---- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> Emulator:
        """Bind and serve in the background; returns self."""
        if self._server is None:
            self.app.stop.clear()
            self._server = EmulatorServer(self.app, self.host, self._requested_port, log=self._log_requests)
            self._server.start()
        return self

    def close(self) -> None:
        """Stop serving, cut held connections short and join every server thread."""
        if self._server is not None:
            self._server.close()
            self._server = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._server is not None

    # ---- addresses ----------------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not running; use it as a context manager or call start()")
        return self._server.port

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def stats_url(self) -> str:
        return f"{self.base_url}/_emulator/stats"

    @property
    def protocols(self) -> list[str]:
        """The protocols this emulator serves."""
        return [protocol.name for protocol in self.app.protocols]

    # ---- per-protocol addresses (kept for callers of the three original protocols) -----------------------
    @property
    def sagemaker_url(self) -> str:
        """boto3 ``endpoint_url`` for the ``sagemaker-runtime`` client."""
        return self.base_url

    @property
    def vertex_api_endpoint(self) -> str:
        """The Vertex adapter's ``endpoint_url`` (``client_options={"api_endpoint": ...}`` for the SDK)."""
        return self.base_url

    def azure_scoring_uri(self, name: str) -> str:
        """The scoring URI of endpoint ``name`` (``/score`` alone also works when the key is unique)."""
        from cloudderm.emulate.azureml import scoring_uri

        return scoring_uri(self, name)

    def azure_key(self, name: str) -> str:
        return self.endpoint(name).azure_key

    def vertex_endpoint_path(self, name: str) -> str:
        """The full Vertex endpoint resource name for ``PredictionServiceClient.predict(endpoint=...)``."""
        from cloudderm.emulate.vertex import endpoint_path

        return endpoint_path(self, name)

    # ---- counters -------------------------------------------------------------------------------------
    @property
    def stats(self) -> EmulatorStats:
        return self.app.stats

    def endpoint_stats(self, protocol: str, name: str) -> EndpointStats:
        """Counters of one endpoint under one protocol (``sagemaker``, ``azureml`` or ``vertex``)."""
        return self.app.stats.endpoint(f"{protocol}/{name}")

    # ---- config snippets ----------------------------------------------------------------------------------
    def config(self, protocol: str, name: str) -> dict[str, Any]:
        """Adapter settings that reach endpoint ``name`` through ``protocol`` (e.g. ``"vertex"``)."""
        return get_protocol(protocol).config(self, name)

    def sagemaker_config(self, name: str) -> dict[str, Any]:
        return self.config("sagemaker", name)

    def azureml_config(self, name: str) -> dict[str, Any]:
        return self.config("azureml", name)

    def vertex_config(self, name: str) -> dict[str, Any]:
        return self.config("vertex", name)

    def providers(self, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """A ``providers:`` mapping with ``<name>-<protocol>`` for every endpoint and served protocol."""
        out: dict[str, dict[str, Any]] = {}
        for name in names or sorted(self.app.endpoints):
            for protocol in self.app.protocols:
                out[f"{name}-{protocol.name}"] = protocol.config(self, name)
        return out

    def providers_yaml(self, names: list[str] | None = None) -> str:
        """The ``providers:`` block to paste into cloudderm.yaml."""
        import yaml

        return yaml.safe_dump({"providers": self.providers(names)}, sort_keys=False)

    def client_env(self) -> dict[str, str]:
        """Environment variables the clients of the served protocols need (fake AWS credentials, ...)."""
        env: dict[str, str] = {}
        for protocol in self.app.protocols:
            env.update(protocol.env(self))
        return env

    def fake_aws_env(self) -> dict[str, str]:
        """Environment variables that let boto3 sign requests to the emulator."""
        return get_protocol("sagemaker").env(self)

    def endpoint(self, name: str) -> EmulatedEndpoint:
        """The emulated endpoint ``name``; a KeyError lists the emulated ones."""
        return self._endpoint(name)

    def _endpoint(self, name: str) -> EmulatedEndpoint:
        try:
            return self.app.endpoints[name]
        except KeyError:
            known = ", ".join(sorted(self.app.endpoints))
            raise KeyError(f"no emulated endpoint {name!r}; emulated: {known}") from None

    def __repr__(self) -> str:
        where = self.base_url if self.running else "not running"
        return f"Emulator({', '.join(sorted(self.app.endpoints))} at {where})"


def _split_faults(
    faults: FaultPlan | Mapping[str, FaultPlan] | None,
    endpoints: dict[str, EmulatedEndpoint],
    protocols: Sequence[str],
) -> tuple[FaultPlan | None, dict[str, FaultPlan]]:
    """The default plan and per-``protocol/name`` overrides; plans keyed by bare name go onto endpoints."""
    if faults is None or isinstance(faults, FaultPlan):
        return faults, {}
    default = None
    overrides: dict[str, FaultPlan] = {}
    for key, plan in faults.items():
        if key == "*":
            default = plan
        elif "/" in key:
            protocol, _, name = key.partition("/")
            if protocol not in protocols or name not in endpoints:
                raise ValueError(f"fault plan key {key!r} names no emulated protocol/endpoint")
            overrides[key] = plan
        elif key in endpoints:
            endpoints[key].faults = plan
        else:
            raise ValueError(
                f"fault plan key {key!r} names no emulated endpoint; known: {', '.join(endpoints)}"
            )
    return default, overrides
