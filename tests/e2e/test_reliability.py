"""Reliability of a whole comparison through the emulated clouds: faults, a killed run, and privacy.

Everything goes through the real pieces: ``run_compare`` / ``cloudderm compare``, the SageMaker, Azure ML and
Vertex AI adapters, and the loopback emulators, whose seeded ``FaultPlan`` decides every fault from the
request's bytes and attempt number (so the storm is the same on every run). The emulators' own counters are
the evidence: what arrived, how often, and whether any upload still carried EXIF or GPS.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloudderm.compare import run_compare
from cloudderm.config import parse_config
from cloudderm.emulate import EmulatedEndpoint, Emulator, FaultPlan, Latency, find_metadata
from cloudderm.testing.fakes import FakeClassifier
from tests.conftest import REPO_ROOT, make_jpeg
from tests.e2e.emulator_support import emulator_aws_env
from tests.e2e.process_support import wait_for_answers

pytest.importorskip("boto3")
pytest.importorskip("azure.core")
pytest.importorskip("google.cloud.aiplatform_v1")

PROTOCOLS = ("sagemaker", "azureml", "vertex")
TRANSIENT = ("429", "503", "timeout")


def write_images(folder: Path, n: int, *, gps_every: int = 10) -> dict[str, bytes]:
    """``n`` distinct small JPEGs; every ``gps_every``-th carries EXIF GPS tags. Returns name -> bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for i in range(n):
        color = ((i * 37) % 256, (i * 91) % 256, (i * 53 + i // 256) % 256)
        data = make_jpeg(color, (24 + i % 8, 18), gps=i % gps_every == 0)
        name = f"img{i:03d}.jpg"
        (folder / name).write_bytes(data)
        written[name] = data
    return written


def providers_for(emu: Emulator, **overrides: Any) -> dict[str, dict[str, Any]]:
    """One provider per protocol, all served by endpoint ``ep``; SageMaker and Vertex one image per call."""
    return {
        "sagemaker": {**emu.sagemaker_config("ep"), **overrides},
        "azureml": {**emu.azureml_config("ep"), **overrides},
        "vertex": {**emu.vertex_config("ep"), "max_instances": 1, **overrides},
    }


def final_rows(db: Path) -> list[tuple[str, str, str, int, dict]]:
    """(provider, sha256, status, attempts, record) of every final result in a compare store."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT p.name, r.sha256, r.status, r.attempts, r.record "
            "FROM results r JOIN providers p USING (config_hash) WHERE r.final = 1"
        ).fetchall()
    return [(name, sha, status, attempts, json.loads(record)) for name, sha, status, attempts, record in rows]


def assert_no_metadata_uploaded(emu: Emulator, sources: dict[str, bytes]) -> None:
    carrying = [name for name, data in sources.items() if "exif-gps" in find_metadata(data)]
    assert carrying, "precondition: some source images carry GPS"
    for protocol in PROTOCOLS:
        stats = emu.endpoint_stats(protocol, "ep")
        assert stats.images > 0
        assert not stats.metadata_seen and not stats.gps_seen, (protocol, stats.metadata)


# ---- a fault storm: nothing lost, transient faults retried, permanent ones recorded ---------------------
@pytest.fixture
def storm(tmp_path: Path) -> Iterator[tuple[Emulator, FaultPlan]]:
    plan = FaultPlan(
        rates={"429": 0.05, "503": 0.05, "timeout": 0.02, "malformed": 0.01},
        seed="reliability",
        retry_after_s=0.01,
        timeout_hold_s=1.5,
        max_faults_per_request=3,
    )
    backend = FakeClassifier("backend")
    with emulator_aws_env(tmp_path), Emulator({"ep": EmulatedEndpoint(backend)}, faults=plan) as emu:
        yield emu, plan


def test_fault_storm_loses_nothing_and_retries_every_transient_fault(storm, tmp_path: Path) -> None:
    emu, _ = storm
    n = 200
    sources = write_images(tmp_path / "images", n)
    config = parse_config(
        {
            "defaults": {"timeout_s": 1.0, "max_retries": 4, "concurrency": 4},
            "providers": providers_for(emu),
        }
    )
    summary = run_compare(tmp_path / "images", config=config, out=tmp_path / "out", sleep=lambda s: None)

    rows = final_rows(tmp_path / "out" / "results.sqlite")
    per_provider = Counter(name for name, *_ in rows)
    assert per_provider == {name: n for name in PROTOCOLS}, "every image ends with exactly one final row"
    assert {status for _, _, status, _, _ in rows} <= {"ok", "error"}, "nothing skipped or pending"
    lines = (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 3 * n

    for protocol in PROTOCOLS:
        stats = emu.endpoint_stats(protocol, "ep")
        transient = sum(stats.faults[kind] for kind in TRANSIENT)
        assert all(stats.faults[kind] > 0 for kind in TRANSIENT), (protocol, stats.faults)
        errors = [rec for name, _, status, _, rec in rows if name == protocol and status == "error"]
        # Transient faults never end a pair: each was retried; only malformed answers are permanent.
        assert {rec["error_type"] for rec in errors} <= {"ResponseFormatError"}, (protocol, errors[:2])
        assert len(errors) <= stats.faults["malformed"]
        if protocol != "azureml":  # one image per call, retried by the runner, which counts its calls
            calls = sum(attempts for name, _, _, attempts, _ in rows if name == protocol)
            assert stats.requests == calls, "every call the emulator saw is accounted for in the store"
            # every injected transient fault was followed by another call (a busy machine can add
            # client-side timeouts of its own, so more retries than faults is allowed)
            assert stats.requests >= n + transient, (protocol, stats.requests, transient)
        # The runner retries SageMaker and Vertex calls; Azure ML's pipeline retries inside the call.
        retried = [
            rec
            for name, _, status, attempts, rec in rows
            if name == protocol
            and status == "ok"
            and max(attempts, rec["details"].get("http_attempts", 1)) > 1
        ]
        assert retried, f"{protocol}: no stored answer needed a retry"
        assert summary["providers"][protocol]["n"] == n
    assert_no_metadata_uploaded(emu, sources)


# ---- SIGKILL midway, then resume: no answered image is sent again -----------------------------------------
def _launch(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cloudderm", *args],
        cwd=REPO_ROOT,
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_killed_compare_resumes_without_resending_answered_images(tmp_path: Path) -> None:
    n = 120
    sources = write_images(tmp_path / "images", n)
    backend = FakeClassifier("backend")
    plan = FaultPlan(latency=Latency(ms=25), seed="kill")
    with emulator_aws_env(tmp_path), Emulator({"ep": EmulatedEndpoint(backend)}, faults=plan) as emu:
        config = tmp_path / "cloudderm.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "defaults": {"timeout_s": 10, "max_retries": 2, "concurrency": 2},
                    "providers": providers_for(emu),
                }
            ),
            encoding="utf-8",
        )
        out = tmp_path / "out"
        args = ["compare", str(tmp_path / "images"), "-c", str(config), "-o", str(out), "--no-progress"]
        env = dict(os.environ)
        proc = _launch(args, env)
        wait_for_answers(out / "results.sqlite", proc, at_least=40)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        answered = {(name, sha) for name, sha, status, _, _ in final_rows(out / "results.sqlite")}
        assert 40 <= len(answered) < 3 * n, "killed midway"
        before = {p: emu.endpoint_stats(p, "ep").per_image for p in PROTOCOLS}

        again = _launch(args, env)
        _, stderr = again.communicate(timeout=180)
        assert again.returncode == 0, stderr
        after = {p: emu.endpoint_stats(p, "ep").per_image for p in PROTOCOLS}

        resent = {
            (name, sha[:12]): after[name][sha]
            for name, sha in answered
            if after[name][sha] != before[name][sha] or after[name][sha] != 1
        }
        assert not resent, f"images sent again to a provider that had already answered them: {resent}"
        rows = final_rows(out / "results.sqlite")
        assert Counter(name for name, *_ in rows) == {name: n for name in PROTOCOLS}
        assert {status for _, _, status, _, _ in rows} == {"ok"}
        for protocol in PROTOCOLS:
            assert len(after[protocol]) == n, f"{protocol} did not receive every image"
        assert_no_metadata_uploaded(emu, sources)
        for name in ("predictions.jsonl", "summary.json", "report.md", "report.html"):
            assert (out / name).stat().st_size > 0, name
