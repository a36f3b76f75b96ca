"""``compare --engine ray`` on a local 2-CPU Ray on loopback: the same answers as the local engine,
cluster-wide limits shown from the token bucket's grant log under an injected clock, a killed worker that
loses nothing and re-bills nothing, a killed driver that resumes, and clean usage errors.

One Ray is started for the module (about 3 s and 700 MB here); each test's actors are stopped with it.
The emulator and the fake providers' call logs live in this process and on this disk, which the Ray
workers (other processes on this machine) reach over loopback and the file system.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cloudderm.cli import main
from cloudderm.compare.records import ProviderPlan
from cloudderm.emulate import FAKE_AWS_ENV, EmulatedEndpoint, Emulator
from cloudderm.testing.fakes import FakeClassifier, FakeSettings
from tests.e2e.emulator_support import hash_backend
from tests.e2e.process_support import wait_for_answers
from tests.e2e.test_compare_cli import FAKE, _answered, _calls, _launch, make_dataset, read_jsonl
from tests.unit.test_bucket import limit_violations

ray = pytest.importorskip("ray", reason="compare --engine ray needs the [ray] extra")

HAM = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
# Both engines run the same model code on the same bytes, one image per call and one thread (onnx_threads:
# 1), so every kernel sums in the same order: the scores are expected to be equal bit for bit. 1e-6 (the
# issue's bar) is a margin for float formatting only; a wrong image or model moves scores by far more.
SCORE_TOL = 1e-6


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A local Ray with 2 CPUs; its workers inherit this environment (fake AWS keys for the emulator)."""
    saved = dict(os.environ)
    aws = tmp_path_factory.mktemp("aws")
    os.environ.update(FAKE_AWS_ENV)
    os.environ.update(
        {
            "AWS_CONFIG_FILE": str(aws / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(aws / "credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    os.environ.pop("AWS_PROFILE", None)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        yield ray
    finally:
        ray.shutdown()
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="module")
def local_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    from cloudderm.emulate.models import save_mobilenet_v2

    root = tmp_path_factory.mktemp("hf")
    return save_mobilenet_v2(root / "cnn", labels=HAM, image_size=64, depth_multiplier=0.35)


def _pairs(out: Path) -> dict[tuple[str, str], dict]:
    return {(r["image"], r["provider"]): r for r in read_jsonl(out / "predictions.jsonl")}


def test_ray_engine_gives_the_same_answers_as_the_local_engine(
    ray_cluster, tmp_path: Path, local_model: Path, monkeypatch
) -> None:
    from tests import stub_reports

    stub_reports.install(monkeypatch)
    images, labels = make_dataset(tmp_path, 10, broken=True)
    served = {"ep": EmulatedEndpoint(backend=hash_backend())}
    with Emulator(served, protocols=["sagemaker", "azureml"]) as emu:
        local = {
            "adapter": "huggingface",
            "model": str(local_model),
            "runtime": "onnx",
            "onnx_threads": 1,
            "onnx_cache_dir": str(tmp_path / "onnx"),
            "batch_size": 1,
        }
        providers = {
            "local": local,
            "sagemaker": emu.config("sagemaker", "ep"),
            "azureml": {**emu.config("azureml", "ep"), "batch_size": 1},
        }
        config = tmp_path / "c.yaml"
        config.write_text(
            json.dumps(
                {"version": 1, "defaults": {"concurrency": 2, "max_retries": 1}, "providers": providers}
            )
        )
        runs = {}
        for engine in ("local", "ray"):
            out = tmp_path / engine
            args = ["compare", str(images), "-c", str(config), "--labels", str(labels), "-o", str(out)]
            assert main([*args, "--no-progress", "--engine", engine]) == 1  # the broken image is an error
            summary = json.loads((out / "summary.json").read_text())
            assert summary["run"]["engine"] == engine
            runs[engine] = _pairs(out)
        served = {p: emu.endpoint_stats(p, "ep").per_image for p in ("sagemaker", "azureml")}
    here, there = runs["local"], runs["ray"]
    assert here.keys() == there.keys() and len(here) == 3 * 11
    for pair, a in here.items():
        b = there[pair]
        for key in ("status", "outcome", "sha256", "canonical", "error_type"):
            assert a[key] == b[key], (pair, key)
        scores_a = {x["label"]: x["score"] for x in a["labels"] or []}
        scores_b = {x["label"]: x["score"] for x in b["labels"] or []}
        assert scores_a.keys() == scores_b.keys(), pair
        for label, score in scores_a.items():
            assert scores_b[label] == pytest.approx(score, abs=SCORE_TOL), (pair, label)
    assert sum(r["status"] == "ok" for r in there.values()) == 3 * 10
    for (
        protocol,
        per_image,
    ) in served.items():  # each engine sent each good image once: no retries, no doubles
        assert len(per_image) == 10 and set(per_image.values()) == {2}, protocol


def _plan(name: str, clf: FakeClassifier, key: str, concurrency: int, rate: float | None) -> ProviderPlan:
    return ProviderPlan(name, clf, key, concurrency=concurrency, requests_per_second=rate)


def test_cluster_wide_limits_hold_across_replicas_in_the_grant_log(ray_cluster) -> None:
    """Eight callers at once, two replicas of each provider, the bucket on a clock moved by this test.

    ``steady`` (3 at a time, no rate) runs on 2 replicas of 2 slots each, so only the bucket keeps it at 3;
    ``quota`` (5 calls per second, bursts of 1) must spread its 20 calls over at least 3.8 clock seconds.
    """
    from cloudderm.compare.ray_engine import RayEngine
    from cloudderm.images import prepare
    from cloudderm.testing.samples import make_jpeg

    steady = FakeClassifier("steady", FakeSettings(latency_s=0.2))
    quota = FakeClassifier("quota", FakeSettings(seed="q"))
    plans = [_plan("steady", steady, "h-steady", 3, None), _plan("quota", quota, "h-quota", 8, 5.0)]
    images = [prepare(make_jpeg((i, 2 * i, 3 * i), (16, 12))) for i in range(20)]
    with RayEngine(plans, workers=2, clock="manual", slots_per_replica=2) as engine:
        with ThreadPoolExecutor(8) as callers:
            futures = [
                callers.submit(engine.classify, key, [img])
                for key in ("h-steady", "h-quota")
                for img in images
            ]
            while not all(f.done() for f in futures):
                ray.get(engine.bucket.advance.remote(0.05))
                time.sleep(0.01)
            answers = [f.result() for f in futures]
        log = engine.grant_log()
        limits = engine.limits
    assert all(len(a) == 1 and a[0].labels for a in answers)
    assert limit_violations(log, limits) == []
    steady_log = [e for e in log if e.provider == "h-steady"]
    assert max(e.in_flight for e in steady_log) == 3, "the concurrency limit was never reached"
    assert {e.owner for e in steady_log if e.event == "grant"} == {"steady#0", "steady#1"}
    quota_grants = [e.at for e in log if e.provider == "h-quota" and e.event == "grant"]
    assert len(quota_grants) == 20
    assert quota_grants[-1] - quota_grants[0] >= (20 - 1) / 5.0 - 1e-9  # burst 1: one grant per 0.2 s


def _run_until_first_call(runner, data, log: Path, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    """Start ``runner`` on ``data`` in a thread; return once the provider logged its first call.

    Returns the thread, a dict that gets the ``RunOutcome`` under ``"result"``, and the deadline.
    """
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.update(result=runner.run(iter(data), len(data))))
    thread.start()
    deadline = time.monotonic() + timeout
    while not (log.exists() and log.read_text().count("\n") >= 1):
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.02)
    return thread, outcome, deadline


def test_a_killed_worker_loses_nothing_and_rebills_nothing(ray_cluster, tmp_path: Path) -> None:
    """The clock is frozen after the first call, so every other call waits for a token, unsent; the
    provider's only replica is then killed. Ray restarts it and re-runs the waiting calls: each image
    reaches the provider once, and every answer is stored."""
    from cloudderm.compare.datasets import open_dataset
    from cloudderm.compare.ray_engine import RayEngine
    from cloudderm.compare.runner import Runner
    from cloudderm.compare.store import ResultStore

    n = 8
    images, labels = make_dataset(tmp_path, n)
    log = tmp_path / "calls.log"
    clf = FakeClassifier("cloud", FakeSettings(call_log=str(log)))
    plan = _plan("cloud", clf, "h-cloud", 2, 1.0)
    data = open_dataset(images, labels=labels)
    with RayEngine([plan], workers=1, clock="manual") as engine, ResultStore(tmp_path / "r.sqlite") as store:
        runner = Runner([plan], store, pool=engine)
        [pid] = engine.pids("h-cloud")  # asked now: once the run starts, its calls fill the replica's slots
        thread, outcome, deadline = _run_until_first_call(runner, data, log)
        time.sleep(0.3)  # the other calls are now waiting in the replica for a token that cannot come
        assert log.read_text().count("\n") == 1
        os.kill(pid, signal.SIGKILL)
        while thread.is_alive():
            assert time.monotonic() < deadline, "the run did not finish after the worker was killed"
            ray.get(engine.bucket.advance.remote(1.0))
            time.sleep(0.05)
        thread.join()
        [restarted] = engine.pids("h-cloud")
    assert restarted != pid
    assert outcome["result"].providers["cloud"].ok == n
    assert set(_calls(log).values()) == {1} and len(_calls(log)) == n, "an image was billed twice or never"
    with sqlite3.connect(tmp_path / "r.sqlite") as conn:
        stored = conn.execute("SELECT COUNT(*) FROM results WHERE status = 'ok' AND final = 1").fetchone()[0]
    assert stored == n


def test_a_killed_driver_loses_nothing_stored_and_the_rerun_resends_nothing(tmp_path: Path) -> None:
    """The CLI starts its own local Ray; SIGKILL it midway, then run the same command again."""
    n = 40  # 40 calls of 0.1 s two at a time: about 2 s left to run when the kill comes after 5 answers
    images, labels = make_dataset(tmp_path, n)
    log = tmp_path / "calls.log"
    config = tmp_path / "c.yaml"
    config.write_text(
        f"""version: 1
defaults: {{concurrency: 2, max_retries: 1}}
policy: {{allowed_regions: [local]}}
providers:
  alpha: {{adapter: "{FAKE}", model: alpha-model, latency_s: 0.1, call_log: '{log}'}}
"""
    )
    out = tmp_path / "out"
    args = ["compare", str(images), "-c", str(config), "--labels", str(labels), "-o", str(out)]
    args += ["--no-progress", "--engine", "ray"]
    proc = _launch(args, tmp_path)
    wait_for_answers(out / "results.sqlite", proc, at_least=5, timeout=120)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    answered = _answered(out / "results.sqlite")
    assert 5 <= len(answered) < n
    before = _calls(log)
    assert all(before[pair] == 1 for pair in answered)

    again = _launch(args, tmp_path)
    _, stderr = again.communicate(timeout=240)
    assert again.returncode == 0, stderr
    calls = _calls(log)
    assert not {pair for pair in answered if calls[pair] != 1}, (
        "answers stored before the kill were sent again"
    )
    assert len(calls) == n
    lines = read_jsonl(out / "predictions.jsonl")
    assert len(lines) == n and {r["status"] for r in lines} == {"ok"}
    assert Counter(r["provider"] for r in lines) == {"alpha": n}


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--ray-address", "127.0.0.1:6379"], "--ray-address needs --engine ray"),
        (["--engine", "ray", "--ray-address", "127.0.0.1:1"], "cannot reach the Ray cluster"),
        (["--engine", "ray", "--ray-address", "no-port"], "expected HOST:PORT"),
    ],
)
def test_ray_usage_mistakes_are_exit_2_with_the_fix(
    tmp_path: Path, capsys, extra: list[str], expected: str
) -> None:
    images, _labels = make_dataset(tmp_path, 2)
    config = tmp_path / "c.yaml"
    config.write_text(f'version: 1\nproviders:\n  alpha: {{adapter: "{FAKE}"}}\n')
    out = tmp_path / "o"
    assert main(["compare", str(images), "-c", str(config), "-o", str(out), "--no-progress", *extra]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_engine_ray_without_ray_installed_names_the_install(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    images, _labels = make_dataset(tmp_path, 2)
    config = tmp_path / "c.yaml"
    config.write_text(f'version: 1\nproviders:\n  alpha: {{adapter: "{FAKE}"}}\n')
    args = ["compare", str(images), "-c", str(config), "-o", str(tmp_path / "o"), "--engine", "ray"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert 'pip install "cloudderm[ray]"' in err and "Traceback" not in err
    assert not (tmp_path / "o").exists(), "nothing is built or written before the engine is known to work"


def test_a_provider_that_cannot_start_on_the_cluster_is_exit_2_before_any_image(
    ray_cluster, tmp_path: Path, capsys, monkeypatch
) -> None:
    """This process has ``$CANARY_SEED``; the Ray workers (started before it was set) do not. The run
    stops at start-up naming the provider and the variable, with nothing sent."""
    monkeypatch.setenv("CANARY_SEED", "s1")
    images, _labels = make_dataset(tmp_path, 3)
    log = tmp_path / "calls.log"
    config = tmp_path / "c.yaml"
    config.write_text(
        f"""version: 1
policy: {{allowed_regions: [local]}}
providers:
  alpha: {{adapter: "{FAKE}", seed: "${{CANARY_SEED}}", call_log: '{log}'}}
"""
    )
    args = ["compare", str(images), "-c", str(config), "-o", str(tmp_path / "o"), "--engine", "ray"]
    assert main([*args, "--no-progress"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "alpha" in err and "CANARY_SEED" in err and "cannot start on the Ray cluster" in err
    assert not log.exists(), "nothing was sent"


def test_stopping_gives_up_the_calls_still_waiting_for_a_grant(ray_cluster, tmp_path: Path) -> None:
    """Ctrl-C (``Runner.stop``) closes the bucket: the calls queued in a replica behind a rate that the
    frozen clock never refills are not made, nothing is recorded for them, and a resume sends them."""
    from cloudderm.compare.datasets import open_dataset
    from cloudderm.compare.ray_engine import RayEngine
    from cloudderm.compare.runner import Runner
    from cloudderm.compare.store import ResultStore

    n = 6
    images, labels = make_dataset(tmp_path, n)
    log = tmp_path / "calls.log"
    clf = FakeClassifier("cloud", FakeSettings(call_log=str(log)))
    plan = _plan("cloud", clf, "h-cloud", 2, 1.0)
    data = open_dataset(images, labels=labels)
    with RayEngine([plan], workers=1, clock="manual") as engine, ResultStore(tmp_path / "r.sqlite") as store:
        runner = Runner([plan], store, pool=engine)
        thread, outcome, _ = _run_until_first_call(runner, data, log)
        time.sleep(0.3)  # two more calls now wait in the replica for a token the frozen clock never gives
        runner.stop()
        thread.join(timeout=60)
        assert not thread.is_alive(), "stop() did not end the run"
        assert outcome["result"].interrupted
        assert log.read_text().count("\n") == 1, "a call waiting for a grant was sent after the stop"
        with sqlite3.connect(tmp_path / "r.sqlite") as conn:
            rows = conn.execute("SELECT status, final FROM results").fetchall()
        assert rows == [("ok", 1)], "only the answered call is stored; the given-up ones are not errors"


def test_a_replica_killed_during_a_granted_call_gives_its_slot_back(ray_cluster, tmp_path: Path) -> None:
    """Concurrency 1, and the only replica dies in the middle of its call, holding the one slot. Its
    restart reclaims the slot (without that the run would wait forever), Ray re-runs the call, and every
    image is answered; only the call that was in flight is sent twice, since its answer never came back."""
    from cloudderm.compare.datasets import open_dataset
    from cloudderm.compare.ray_engine import RayEngine
    from cloudderm.compare.runner import Runner
    from cloudderm.compare.store import ResultStore

    n = 3
    images, labels = make_dataset(tmp_path, n)
    log = tmp_path / "calls.log"
    clf = FakeClassifier("cloud", FakeSettings(call_log=str(log), latency_s=1.0))
    plan = _plan("cloud", clf, "h-cloud", 1, 100.0)  # a rate, so calls take grants
    data = open_dataset(images, labels=labels)
    with RayEngine([plan], workers=1) as engine, ResultStore(tmp_path / "r.sqlite") as store:
        runner = Runner([plan], store, pool=engine)
        [pid] = engine.pids("h-cloud")
        thread, outcome, _ = _run_until_first_call(runner, data, log, timeout=90)
        os.kill(pid, signal.SIGKILL)  # mid-call: the call sleeps 1 s after logging itself
        thread.join(timeout=90)
        assert not thread.is_alive(), "the run never finished: the dead replica's slot was not given back"
        events = engine.grant_log()
    assert outcome["result"].providers["cloud"].ok == n
    assert [e.owner for e in events if e.event == "reclaim"] == ["cloud#0"]
    assert max(e.in_flight for e in events) == 1
    calls = _calls(log)
    assert len(calls) == n and sorted(calls.values()) == [1] * (n - 1) + [2]
