"""Fault plans are reproducible, timeouts are bounded, counters tell the truth, shutdown leaves no threads.

No test asserts on wall-clock time (the machine is shared and noisy); waits are bounded by joins with
generous limits, and every request goes to 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image, PngImagePlugin

from cloudderm.emulate import EmulatedEndpoint, Emulator, FaultPlan, Latency, find_metadata
from cloudderm.errors import ProviderHTTPError
from cloudderm.images import prepare
from cloudderm.testing.fakes import FakeClassifier
from tests.conftest import REPO_ROOT, make_jpeg
from tests.unit.emulator_http import automl_body, post

KEY = {"Authorization": "Bearer emulator-key"}


def images(n: int) -> list[bytes]:
    return [make_jpeg((i * 5 % 256, 100, 255 - i * 3 % 256), (32, 24)) for i in range(n)]


def emulator_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name != "MainThread" and t.is_alive()]


# ---- FaultPlan and Latency ---------------------------------------------------------------------------
def test_parse_cli_spec_and_aliases() -> None:
    plan = FaultPlan.parse("429=0.1, 503=0.05,timeout=0.02,malformed=0.01", latency="50-150", seed="s")
    assert plan.rates == {"429": 0.1, "503": 0.05, "timeout": 0.02, "malformed": 0.01}
    assert plan.latency == Latency(kind="uniform", ms=50, high_ms=150)
    assert FaultPlan(rates={"throttle": 0.2, "model_error": 0.1}).rates == {"429": 0.2, "424": 0.1}
    assert "429=0.1" in plan.describe() and "seed s" in plan.describe()


@pytest.mark.parametrize("spec", ["429", "418=0.1", "429=x", "429=1.5", "429=0.6,503=0.6"])
def test_bad_fault_specs_are_rejected(spec: str) -> None:
    with pytest.raises(ValueError):
        FaultPlan.parse(spec)


def test_latency_forms() -> None:
    assert Latency.parse("100").sample(0.9) == 100
    assert Latency.parse(None).sample(0.3) == 0
    uniform = Latency.parse("50-150ms")
    assert [uniform.sample(u) for u in (0.0, 0.5, 0.999)] == pytest.approx([50, 100, 149.9])
    lognormal = Latency.parse("lognormal:100:0.5")
    assert lognormal.sample(0.5) == pytest.approx(100)
    assert lognormal.sample(0.1) < 100 < lognormal.sample(0.9)
    assert Latency(kind="lognormal", ms=100, sigma=3, max_ms=500).sample(0.999999) == 500
    for bad in ("fast", "lognormal:x", "150-50"):
        with pytest.raises(ValueError):
            Latency.parse(bad)


def test_decisions_are_a_pure_function_of_seed_endpoint_request_and_attempt() -> None:
    plan = FaultPlan.parse(
        "429=0.1,503=0.05,424=0.05,timeout=0.02,malformed=0.08", latency="lognormal:80:0.4", seed=7
    )
    keys = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(4000)]
    first = [plan.decide("sagemaker/x", k, 1) for k in keys]
    assert first == [plan.decide("sagemaker/x", k, 1) for k in keys]
    observed = {kind: sum(d.fault == kind for d in first) / len(keys) for kind in plan.rates}
    assert observed == pytest.approx(plan.rates, abs=0.015)
    other_seed = FaultPlan(rates=plan.rates, seed=8)
    assert [d.fault for d in first] != [other_seed.decide("sagemaker/x", k, 1).fault for k in keys]
    assert [d.fault for d in first] != [plan.decide("sagemaker/y", k, 1).fault for k in keys]
    assert [d.fault for d in first] != [plan.decide("sagemaker/x", k, 2).fault for k in keys]


def test_max_faults_per_request_lets_retries_through() -> None:
    plan = FaultPlan(rates={"503": 1.0}, max_faults_per_request=2)
    assert [plan.decide("e", "k", a).fault for a in (1, 2, 3, 4)] == ["503", "503", None, None]


# ---- faults over HTTP ----------------------------------------------------------------------------------
def outcome(status: int, body: bytes) -> str | None:
    """What a client saw: None for a good answer, else the fault it corresponds to."""
    if status == 200:
        try:
            json.loads(body)
            return None
        except json.JSONDecodeError:
            return "malformed"
    return {429: "429", 503: "503", 424: "424", 408: "timeout"}[status]


def run_concurrently(plan: FaultPlan, uploads: list[bytes]) -> tuple[dict[str, str | None], dict]:
    with Emulator({"skin": FakeClassifier("fake")}, faults=plan) as emu, ThreadPoolExecutor(8) as pool:
        url = emu.azure_scoring_uri("skin")
        results = list(pool.map(lambda img: outcome(*post(url, automl_body(img), KEY)[::2]), uploads))
        stats = emu.endpoint_stats("azureml", "skin")
    return {hashlib.sha256(img).hexdigest(): r for img, r in zip(uploads, results)}, dict(stats.faults)


def test_fault_outcomes_are_reproducible_under_concurrency() -> None:
    uploads = images(40)
    plan = FaultPlan.parse("429=0.2,503=0.1,424=0.1,malformed=0.1", seed=11)
    first, faults = run_concurrently(plan, uploads)
    second, _ = run_concurrently(plan, list(reversed(uploads)))
    assert first == second
    predicted = {sha: plan.decide("azureml/skin", sha, 1).fault for sha in first}
    assert first == predicted
    assert sum(faults.values()) == sum(v is not None for v in first.values()) > 0
    assert run_concurrently(FaultPlan(rates=plan.rates, seed=12), uploads)[0] != first


def test_retries_of_one_image_follow_the_attempt_sequence() -> None:
    plan = FaultPlan.parse("429=0.3,503=0.3", seed=3, retry_after_s=0.5)
    image = make_jpeg((10, 20, 30))
    sha = hashlib.sha256(image).hexdigest()
    with Emulator({"skin": FakeClassifier("fake")}, faults=plan) as emu:
        seen = []
        for _ in range(12):
            status, headers, body = post(emu.azure_scoring_uri("skin"), automl_body(image), KEY)
            seen.append(outcome(status, body))
            if status == 429:
                assert headers["Retry-After"] == "0.5"
        assert emu.endpoint_stats("azureml", "skin").per_image[sha] == 12
    assert seen == [plan.decide("azureml/skin", sha, a).fault for a in range(1, 13)]
    assert {"429", "503", None} <= set(seen)


def test_malformed_bodies_are_200_with_unparseable_json() -> None:
    fake = FakeClassifier("fake")
    with Emulator({"s": fake}, faults=FaultPlan(rates={"malformed": 1.0})) as emu:
        for url, body, headers in [
            (emu.azure_scoring_uri("s"), automl_body(make_jpeg((1, 2, 3))), KEY),
            (
                f"{emu.sagemaker_url}/endpoints/s/invocations",
                make_jpeg((1, 2, 3)),
                {"Content-Type": "application/x-image"},
            ),
            (
                f"{emu.base_url}/v1/{emu.vertex_endpoint_path('s')}:predict",
                json.dumps(
                    {"instances": [{"content": base64.b64encode(make_jpeg((1, 2, 3))).decode()}]}
                ).encode(),
                {},
            ),
        ]:
            status, answer_headers, answer = post(url, body, headers)
            assert status == 200 and answer_headers["Content-Type"].startswith("application/json")
            with pytest.raises(json.JSONDecodeError):
                json.loads(answer)


def test_timeout_holds_past_the_client_timeout_and_close_cuts_it_short() -> None:
    before = emulator_threads()  # process-wide daemons started by other tests (e.g. tqdm's monitor) stay
    emu = Emulator(
        {"s": FakeClassifier("fake")}, faults=FaultPlan(rates={"timeout": 1.0}, timeout_hold_s=120)
    )
    emu.start()
    try:
        with pytest.raises((TimeoutError, urllib.error.URLError)):
            post(emu.azure_scoring_uri("s"), automl_body(make_jpeg((5, 5, 5))), KEY, timeout=0.3)
        deadline = time.monotonic() + 30  # on a busy machine the server may count it after the client gave up
        while emu.endpoint_stats("azureml", "s").faults != {"timeout": 1} and time.monotonic() < deadline:
            time.sleep(0.05)
        assert emu.endpoint_stats("azureml", "s").faults == {"timeout": 1}
    finally:
        closer = threading.Thread(target=emu.close)
        closer.start()
        closer.join(30)
    assert not closer.is_alive(), "close() must not wait for the 120 s hold"
    assert emulator_threads() == before


def test_short_holds_end_with_each_providers_timeout_answer() -> None:
    image = make_jpeg((5, 6, 7))
    with Emulator(
        {"s": FakeClassifier("fake")}, faults=FaultPlan(rates={"timeout": 1.0}, timeout_hold_s=0.05)
    ) as emu:
        status, _, body = post(
            f"{emu.sagemaker_url}/endpoints/s/invocations", image, {"Content-Type": "application/x-image"}
        )
        assert status == 424 and json.loads(body)["OriginalStatusCode"] == 0
        assert post(emu.azure_scoring_uri("s"), automl_body(image), KEY)[0] == 408
        vertex = json.dumps({"instances": [{"content": base64.b64encode(image).decode()}]}).encode()
        status, _, body = post(f"{emu.base_url}/v1/{emu.vertex_endpoint_path('s')}:predict", vertex)
        assert status == 504 and json.loads(body)["error"]["status"] == "DEADLINE_EXCEEDED"


def test_backend_failures_and_undecodable_images_become_provider_errors() -> None:
    fake = FakeClassifier("fake")
    fake.fault = lambda image, attempt: ProviderHTTPError("boom", status=500, provider="fake")
    with Emulator({"s": fake}) as emu:
        status, _, body = post(
            f"{emu.sagemaker_url}/endpoints/s/invocations",
            make_jpeg((1, 1, 1)),
            {"Content-Type": "application/x-image"},
        )
        assert status == 424 and json.loads(body)["OriginalStatusCode"] == 500
        status, headers, _ = post(emu.azure_scoring_uri("s"), automl_body(make_jpeg((1, 1, 1))), KEY)
        assert status == 424 and headers["ms-azureml-model-error-statuscode"] == "500"
        status, _, body = post(
            f"{emu.sagemaker_url}/endpoints/s/invocations",
            b"not an image",
            {"Content-Type": "application/x-image"},
        )
        assert status == 424 and json.loads(body)["OriginalStatusCode"] == 400
        garbage = json.dumps({"instances": [{"content": base64.b64encode(b"nope").decode()}]}).encode()
        status, _, body = post(f"{emu.base_url}/v1/{emu.vertex_endpoint_path('s')}:predict", garbage)
        assert status == 400 and json.loads(body)["error"]["status"] == "INVALID_ARGUMENT"


# ---- counters and metadata -------------------------------------------------------------------------------
def test_counters_and_metadata_detection() -> None:
    gps, clean = make_jpeg((90, 60, 40), gps=True), make_jpeg((200, 120, 90))
    stripped = prepare(gps).data
    with Emulator({"s": FakeClassifier("fake")}) as emu:
        url = f"{emu.sagemaker_url}/endpoints/s/invocations"
        for body in (gps, clean, clean, stripped):
            assert post(url, body, {"Content-Type": "application/x-image"})[0] == 200
        stats = emu.endpoint_stats("sagemaker", "s")
        assert (stats.requests, stats.images, stats.bytes_received) == (
            4,
            4,
            len(gps) + 2 * len(clean) + len(stripped),
        )
        assert stats.repeated_images == {hashlib.sha256(clean).hexdigest(): 2}
        assert stats.metadata == {hashlib.sha256(gps).hexdigest(): ["exif", "exif-gps"]}
        assert stats.gps_seen and stats.metadata_seen
        assert stats.statuses == {200: 4}
        with urllib.request.urlopen(emu.stats_url, timeout=10) as response:
            served = json.loads(response.read())
        assert served["endpoints"]["sagemaker/s"]["per_image"][hashlib.sha256(clean).hexdigest()] == 2
        assert served["totals"]["gps_seen"] is True and served["endpoints_configured"] == ["s"]
        assert post(f"{emu.base_url}/_emulator/reset", b"")[0] == 204
        assert emu.stats.snapshot()["totals"]["requests"] == 0
    assert find_metadata(stripped) == [] and find_metadata(clean) == []


def png_with(**kwargs: object) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buf, format="PNG", **kwargs)
    return buf.getvalue()


def test_find_metadata_covers_jpeg_png_and_webp_blocks() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "someone")
    info.add_itxt("Place", "somewhere", zip=False)
    info.add_text("Note", "x" * 50, zip=True)
    assert find_metadata(png_with(pnginfo=info)) == ["png-text", "png-itxt", "png-ztxt"]
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0)}
    assert find_metadata(png_with(exif=exif.tobytes())) == ["png-exif", "exif-gps"]
    assert find_metadata(png_with()) == []
    jpeg = io.BytesIO()
    Image.new("RGB", (8, 8)).save(jpeg, format="JPEG", comment=b"taken at home")
    assert find_metadata(jpeg.getvalue()) == ["jpeg-comment"]
    xmp_payload = b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta/>"
    data = make_jpeg((1, 2, 3))
    with_xmp = data[:2] + b"\xff\xe1" + (len(xmp_payload) + 2).to_bytes(2, "big") + xmp_payload + data[2:]
    assert find_metadata(with_xmp) == ["xmp"]
    no_gps = Image.Exif()
    no_gps[0x010F] = "Camera"
    assert find_metadata(png_with(exif=no_gps.tobytes())) == ["png-exif"]
    if "WEBP" in Image.SAVE:
        webp = io.BytesIO()
        Image.new("RGB", (8, 8)).save(webp, format="WEBP", exif=exif.tobytes())
        assert find_metadata(webp.getvalue())[:2] == ["webp-exif", "exif-gps"]
    for junk in (b"", b"\xff\xd8\xff", b"GIF89a", make_jpeg((1, 2, 3))[:40]):
        assert find_metadata(junk) == []


# ---- lifecycle -----------------------------------------------------------------------------------------
def test_close_with_idle_keepalive_connection_leaves_no_threads() -> None:
    before = emulator_threads()
    emu = Emulator({"s": FakeClassifier("fake")}).start()
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=10)
    conn.request("GET", "/_emulator/health")
    assert conn.getresponse().read() == b'{"status":"ok"}'  # the connection stays open (HTTP/1.1 keep-alive)
    closer = threading.Thread(target=emu.close)
    closer.start()
    closer.join(30)
    conn.close()
    assert not closer.is_alive()
    assert emulator_threads() == before
    emu.start()  # an emulator can be started again after close
    try:
        assert post(f"{emu.base_url}/_emulator/reset", b"")[0] == 204
    finally:
        emu.close()
    assert emulator_threads() == before


def test_endpoint_names_and_fault_keys_are_validated() -> None:
    fake = FakeClassifier("fake")
    for bad in ({"a/b": fake}, {"_x": fake}, {}):
        with pytest.raises(ValueError):
            Emulator(bad)
    with pytest.raises(ValueError, match="names no emulated"):
        Emulator({"a": fake}, faults={"b": FaultPlan()})
    with pytest.raises(ValueError, match="protocol/endpoint"):
        Emulator({"a": fake}, faults={"gcp/a": FaultPlan()})
    with pytest.raises(ValueError):
        EmulatedEndpoint(fake, sagemaker_format="tensorflow")
    with pytest.raises(RuntimeError, match="not running"):
        _ = Emulator({"a": fake}).port


# ---- CLI -----------------------------------------------------------------------------------------------
def test_cli_rejects_bad_fault_specs_before_serving(capsys: pytest.CaptureFixture[str]) -> None:
    from cloudderm.cli import main

    assert main(["emulate", "--faults", "429=2"]) == 2
    assert "--faults" in capsys.readouterr().err


def test_cli_serves_a_configured_backend_until_interrupted(tmp_path) -> None:
    config = tmp_path / "cloudderm.yaml"
    config.write_text(
        "version: 1\nproviders:\n  skin:\n"
        "    adapter: cloudderm.testing.fakes:FakeClassifier\n    model: tiny\n"
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cloudderm",
            "emulate",
            "-c",
            str(config),
            "--backend",
            "skin",
            "--faults",
            "429=1",
            "--seed",
            "4",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        banner = []
        for _ in range(200):
            line = process.stdout.readline()
            banner.append(line)
            if "Ctrl-C" in line or not line:
                break
        text = "".join(banner)
        base = re.search(r"listening on (http://127\.0\.0\.1:\d+)", text)[1]
        assert f"scoring_uri: {base}/azureml/skin/score" in text and "FAKE" not in text
        status, headers, _ = post(f"{base}/azureml/skin/score", automl_body(make_jpeg((3, 3, 3))), KEY)
        assert status == 429 and headers["Retry-After"] == "1"
    finally:
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    assert "stopped: 1 requests, 1 images" in out
