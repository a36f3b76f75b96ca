"""Loopback emulators of SageMaker, Azure ML and Vertex AI endpoints, backed by any local Classifier.

Why: the cloud adapters must be tested — and demonstrated — without an account, and a mock that returns
canned JSON proves little. These emulators speak each provider's real wire protocol on 127.0.0.1, so the
real SDK clients (boto3 with ``endpoint_url``, azure-core/requests, the Vertex REST transport with
``api_endpoint``) talk to them unchanged, while a real local model produces the answers. A seeded
``FaultPlan`` adds latency, throttling, outages, timeouts and malformed bodies reproducibly, and the
counters record exactly what arrived (requests, bytes, repeats per image, leftover EXIF/GPS metadata).

Example:
    >>> from cloudderm.testing.emulators import Emulator, FaultPlan
    >>> with Emulator(backends={"skin": my_classifier}, faults=FaultPlan.parse("429=0.1", seed=1)) as emu:
    ...     emu.sagemaker_url, emu.azure_scoring_uri("skin"), emu.vertex_api_endpoint  # doctest: +SKIP
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from cloudderm.testing.emulator_app import EmulatedEndpoint, EmulatorApp
from cloudderm.testing.emulator_server import EmulatorServer
from cloudderm.testing.faults import FAULT_KINDS, FaultPlan, Latency
from cloudderm.testing.stats import EmulatorStats, EndpointStats
from cloudderm.testing.uploads import find_metadata

if TYPE_CHECKING:
    from cloudderm.classifier import Classifier

__all__ = [
    "FAULT_KINDS",
    "EmulatedEndpoint",
    "Emulator",
    "EmulatorStats",
    "EndpointStats",
    "FaultPlan",
    "Latency",
    "find_metadata",
]

FAKE_AWS_ENV = {"AWS_ACCESS_KEY_ID": "emulator", "AWS_SECRET_ACCESS_KEY": "emulator"}
"""Any credentials satisfy the emulator (signatures are not checked); boto3 only needs *some*."""


class Emulator:
    """Serve every backend as a SageMaker, an Azure ML and a Vertex AI endpoint of the same name.

    Args:
        backends: endpoint name -> a ``Classifier`` (served with default settings) or an
            ``EmulatedEndpoint`` (to choose the SageMaker format, Azure flavour, key, fault plan...).
        faults: one ``FaultPlan`` for everything, or a mapping whose keys are ``"*"`` (the default), an
            endpoint name (all its protocols) or ``"<protocol>/<name>"`` (``sagemaker``, ``azureml`` or
            ``vertex``, e.g. ``"vertex/skin"``).
        host: interface to bind; loopback by default, since the emulator checks no real credentials.
        port: 0 picks a free port (see ``.port``).
        region: the AWS region quoted in SageMaker messages and snippets.
        azure_region: the Azure region written into Azure ML snippets.
        vertex_project: the project id written into Vertex snippets.
        vertex_location: the location written into Vertex snippets (any project/location is served).
        log_requests: print one access-log line per request to stderr.
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
        default, overrides = _split_faults(faults, endpoints)
        self.app = EmulatorApp(endpoints, faults=default, region=region, stop=threading.Event())
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
    def sagemaker_url(self) -> str:
        """boto3 ``endpoint_url`` for the ``sagemaker-runtime`` client."""
        return self.base_url

    @property
    def vertex_api_endpoint(self) -> str:
        """``client_options={"api_endpoint": ...}`` for ``PredictionServiceClient(transport="rest")``."""
        return self.base_url

    @property
    def stats_url(self) -> str:
        return f"{self.base_url}/_emulator/stats"

    def azure_scoring_uri(self, name: str) -> str:
        """The scoring URI of endpoint ``name`` (``/score`` alone also works when the key is unique)."""
        self._endpoint(name)
        return f"{self.base_url}/azureml/{name}/score"

    def azure_key(self, name: str) -> str:
        return self._endpoint(name).azure_key

    def vertex_endpoint_path(self, name: str) -> str:
        """The full Vertex endpoint resource name for ``PredictionServiceClient.predict(endpoint=...)``."""
        self._endpoint(name)
        return f"projects/{self.vertex_project}/locations/{self.vertex_location}/endpoints/{name}"

    # ---- counters -------------------------------------------------------------------------------------
    @property
    def stats(self) -> EmulatorStats:
        return self.app.stats

    def endpoint_stats(self, protocol: str, name: str) -> EndpointStats:
        """Counters of one endpoint under one protocol (``sagemaker``, ``azureml`` or ``vertex``)."""
        return self.app.stats.endpoint(f"{protocol}/{name}")

    # ---- config snippets ----------------------------------------------------------------------------------
    def sagemaker_config(self, name: str) -> dict[str, Any]:
        """Settings for the ``sagemaker`` adapter; boto3 also needs credentials (see ``FAKE_AWS_ENV``).

        The probability-only formats (``jumpstart``, ``builtin``) carry no class names on the wire, so the
        adapter needs them from config: the snippet lists the backend's labels in the order the emulator
        sends probabilities (omitted when the backend publishes none; the adapter then asks for them).
        """
        endpoint = self._endpoint(name)
        snippet: dict[str, Any] = {
            "adapter": "sagemaker",
            "endpoint_name": name,
            "region": self.region,
            "endpoint_url": self.sagemaker_url,
            "response_format": endpoint.sagemaker_format,
        }
        if endpoint.sagemaker_format in ("jumpstart", "builtin"):
            labels = self.app.label_order(f"sagemaker/{name}", endpoint)
            if labels:
                snippet["labels"] = list(labels)
        return snippet

    def azureml_config(self, name: str) -> dict[str, Any]:
        """Settings for the ``azureml`` adapter (key auth against the emulated endpoint)."""
        endpoint = self._endpoint(name)
        return {
            "adapter": "azureml",
            "scoring_uri": self.azure_scoring_uri(name),
            "api_key": endpoint.azure_key,
            "deployment": endpoint.azure_deployment,
            "region": self.azure_region,
            "response_format": endpoint.azure_flavor,
        }

    def vertex_config(self, name: str) -> dict[str, Any]:
        """Settings for the ``vertex`` adapter (anonymous credentials: the emulator checks none)."""
        self._endpoint(name)
        return {
            "adapter": "vertex",
            "project": self.vertex_project,
            "location": self.vertex_location,
            "endpoint_id": name,
            "endpoint_url": self.vertex_api_endpoint,
            "anonymous": True,
        }

    def providers(self, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """A ``providers:`` mapping with ``<name>-sagemaker``, ``<name>-azureml`` and ``<name>-vertex``."""
        out: dict[str, dict[str, Any]] = {}
        for name in names or sorted(self.app.endpoints):
            out[f"{name}-sagemaker"] = self.sagemaker_config(name)
            out[f"{name}-azureml"] = self.azureml_config(name)
            out[f"{name}-vertex"] = self.vertex_config(name)
        return out

    def providers_yaml(self, names: list[str] | None = None) -> str:
        """The ``providers:`` block to paste into cloudderm.yaml."""
        import yaml

        return yaml.safe_dump({"providers": self.providers(names)}, sort_keys=False)

    def fake_aws_env(self) -> dict[str, str]:
        """Environment variables that let boto3 sign requests to the emulator."""
        return {**FAKE_AWS_ENV, "AWS_DEFAULT_REGION": self.region}

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
    faults: FaultPlan | Mapping[str, FaultPlan] | None, endpoints: dict[str, EmulatedEndpoint]
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
            if protocol not in ("sagemaker", "azureml", "vertex") or name not in endpoints:
                raise ValueError(f"fault plan key {key!r} names no emulated protocol/endpoint")
            overrides[key] = plan
        elif key in endpoints:
            endpoints[key].faults = plan
        else:
            raise ValueError(
                f"fault plan key {key!r} names no emulated endpoint; known: {', '.join(endpoints)}"
            )
    return default, overrides
