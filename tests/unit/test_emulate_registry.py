"""A new emulated protocol is one module plus one registry row: the app, Emulator and CLI pick it up."""

from __future__ import annotations

import json
import re
from types import MappingProxyType
from typing import Any

import pytest

from cloudderm.cli import EXIT_USAGE, main
from cloudderm.emulate import Emulator, EndpointRequest, Protocol, get_protocol, protocol_names
from cloudderm.emulate import registry as registry_module
from cloudderm.emulate.app import BackendFailed
from cloudderm.emulate.wire import Reply, b64_image, json_reply
from cloudderm.images import prepare
from cloudderm.testing.fakes import FakeClassifier
from cloudderm.testing.samples import make_jpeg
from tests.unit.emulator_http import b64, post


class EchoTopProtocol(Protocol):
    """A toy protocol: ``POST /echo/{name}`` with ``{"image": b64}`` answers ``{"top": label}``."""

    name = "echo"
    title = "Echo"
    adapter = "echo"
    route = re.compile(r"^/echo/(?P<name>[^/]+)$")

    def not_found(self, name: str, match: re.Match[str]) -> Reply:
        return json_reply(404, {"error": "no such endpoint"})

    def serve(self, request: EndpointRequest) -> Reply:
        app, key, endpoint = request.app, request.key, request.endpoint
        image = b64_image(json.loads(request.body)["image"], lambda msg: json_reply(400, {"error": msg}))

        def answer() -> Reply:
            try:
                (scores,) = app.run_backend(key, endpoint, [image])
            except BackendFailed as e:
                return json_reply(500, {"error": e.message})
            return json_reply(200, {"top": max(scores, key=lambda ls: ls[1])[0]})

        faults = {"429": lambda: json_reply(429, {"error": "slow down"})}
        return app.with_faults(key, endpoint, [image], faults, answer)

    def config(self, emulator: Emulator, name: str) -> dict[str, Any]:
        return {"adapter": "echo", "url": f"{emulator.base_url}/echo/{name}"}

    def banner(self, emulator: Emulator, name: str) -> str:
        return f"POST {emulator.base_url}/echo/{name}"


@pytest.fixture
def with_echo(monkeypatch: pytest.MonkeyPatch):
    rows = {**registry_module.PROTOCOLS, "echo": f"{__name__}:EchoTopProtocol"}
    monkeypatch.setattr(registry_module, "PROTOCOLS", MappingProxyType(rows))
    get_protocol.cache_clear()
    yield
    get_protocol.cache_clear()


BUILT_IN = [
    "sagemaker", "azureml", "vertex", "openai",
    "custom-vision", "cloud-vision", "rekognition", "hf-inference", "kserve",
]  # fmt: skip


def test_the_built_in_protocols_are_registered() -> None:
    assert protocol_names() == BUILT_IN
    assert [get_protocol(n).adapter for n in protocol_names()] == BUILT_IN  # each named after its adapter
    with pytest.raises(ValueError, match="known: sagemaker, azureml, vertex, openai, custom-vision"):
        get_protocol("triton")


def test_a_registered_protocol_is_served_with_faults_counters_and_snippets(with_echo) -> None:
    backend = FakeClassifier("skin")
    prepared = prepare(make_jpeg((10, 20, 30)))  # the emulator runs the model on the very bytes received
    image = prepared.data
    with Emulator({"skin": backend}, protocols=["echo", "vertex"]) as emu:
        assert emu.protocols == ["echo", "vertex"]
        status, _, body = post(f"{emu.base_url}/echo/skin", json.dumps({"image": b64(image)}).encode())
        assert status == 200
        expected = backend.classify_prepared([prepared])[0].top.label
        assert json.loads(body) == {"top": expected}
        assert emu.endpoint_stats("echo", "skin").requests == 1
        assert post(f"{emu.base_url}/echo/nobody", b"{}")[0] == 404  # the template's lookup and counters
        assert emu.endpoint_stats("echo", "nobody").statuses == {404: 1}
        assert set(emu.providers()) == {"skin-echo", "skin-vertex"}
        assert emu.providers()["skin-echo"]["url"].endswith("/echo/skin")
        status, _, _ = post(f"{emu.base_url}/endpoints/skin/invocations", image)  # sagemaker: not served
        assert status == 404


def test_fault_plans_may_name_a_registered_protocol(with_echo) -> None:
    from cloudderm.emulate import FaultPlan

    plan = FaultPlan.parse("429=1", seed=1)
    with Emulator({"skin": FakeClassifier("skin")}, faults={"echo/skin": plan}, protocols=["echo"]) as emu:
        body = json.dumps({"image": b64(make_jpeg((1, 2, 3)))}).encode()
        assert post(f"{emu.base_url}/echo/skin", body)[0] == 429
    with pytest.raises(ValueError, match="names no emulated protocol"):
        Emulator({"skin": FakeClassifier("skin")}, faults={"sagemaker/skin": plan}, protocols=["echo"])


def test_cli_refuses_an_unknown_protocol_before_serving(capsys) -> None:
    assert main(["emulate", "--protocol", "triton"]) == EXIT_USAGE
    assert "known: sagemaker, azureml, vertex, openai, custom-vision" in " ".join(
        capsys.readouterr().err.split()
    )
