"""``compare --workers N``: the same answers as one process, the same resume after a kill, clean usage errors.

A tiny Hugging Face model (built from a config, random weights) runs in the worker processes; a fake
cloud-like provider stays on the parent's threads. Metrics and reports are stubbed (tests.stub_reports).
"""

from __future__ import annotations

import json
import os
import pickle
import signal
from pathlib import Path

import pytest

from cloudderm.cli import main
from cloudderm.compare.pool import WorkerPool, default_workers
from cloudderm.errors import InvalidImageError, ProviderHTTPError
from cloudderm.testing.fakes import FakeClassifier
from tests.e2e.process_support import wait_for_answers
from tests.e2e.test_compare_cli import (
    FAKE,
    _answered,
    _calls,
    _launch,
    make_dataset,
    read_jsonl,
    write_config,
)

HAM = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
# Scores are float32 softmax outputs in [0, 1]. One process runs the model with the runtime's own threads and
# whatever batches the queue held; a worker runs it with 1 thread. Both change the order of the float32 sums
# in each convolution (eps 1.2e-7, ~10^2-10^3 terms per output, ~20 layers), so a few 1e-6 of drift in a
# probability is the arithmetic, not a bug; 1e-4 leaves a wide margin and still catches a wrong image/model.
SCORE_TOL = 1e-4


@pytest.fixture(scope="module")
def local_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    from cloudderm.emulate.models import save_mobilenet_v2

    root = tmp_path_factory.mktemp("hf")
    return save_mobilenet_v2(root / "cnn", labels=HAM, image_size=64, depth_multiplier=0.35)


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny exported model for ``azureml-onnx``: a worker loads it with onnxruntime alone."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from tests.adapters.test_azureml_onnx import export, tiny_model

    folder = tmp_path_factory.mktemp("automl")
    export(tiny_model(), folder / "model.onnx")
    (folder / "labels.json").write_text(json.dumps(HAM))
    return folder / "model.onnx"


def _config(path: Path, model: Path) -> Path:
    path.write_text(
        f"""version: 1
defaults: {{concurrency: 2, max_retries: 1}}
policy: {{allowed_regions: [local]}}
providers:
  local: {{adapter: azureml-onnx, model_path: "{model}", resize_size: 36, batch_size: 2}}
  cloud: {{adapter: "{FAKE}", model: cloud-model, seed: c, batch_size: 2}}
"""
    )
    return path


def _by_pair(out: Path) -> dict[tuple[str, str], dict]:
    return {(r["image"], r["provider"]): r for r in read_jsonl(out / "predictions.jsonl")}


def test_two_workers_give_the_same_answers_as_one(tmp_path: Path, onnx_model: Path, monkeypatch) -> None:
    from tests import stub_reports

    stub_reports.install(monkeypatch)
    images, labels = make_dataset(tmp_path, 8, broken=True)
    config = _config(tmp_path / "c.yaml", onnx_model)
    runs = {}
    for n in (1, 2):
        out = tmp_path / f"out{n}"
        args = ["compare", str(images), "-c", str(config), "--labels", str(labels), "-o", str(out)]
        assert main([*args, "--no-progress", "--workers", str(n)]) == 1  # the broken image is an error
        assert json.loads((out / "summary.json").read_text())["run"]["workers"] == n
        runs[n] = _by_pair(out)
    one, two = runs[1], runs[2]
    assert one.keys() == two.keys() and len(one) == 2 * 9
    for pair, a in one.items():
        b = two[pair]
        assert (a["status"], a["outcome"], a["sha256"], a["error_type"]) == (
            b["status"],
            b["outcome"],
            b["sha256"],
            b["error_type"],
        ), pair
        scores_a = {x["label"]: x["score"] for x in a["labels"] or []}
        scores_b = {x["label"]: x["score"] for x in b["labels"] or []}
        assert scores_a.keys() == scores_b.keys(), pair
        for label, score in scores_a.items():
            assert scores_b[label] == pytest.approx(score, abs=SCORE_TOL), (pair, label)
        ranked = sorted(scores_a.values(), reverse=True)
        if len(ranked) < 2 or ranked[0] - ranked[1] > 2 * SCORE_TOL:  # a near-tie may flip; anything else not
            assert a["canonical"] == b["canonical"], pair
    assert {r["status"] for p, r in one.items() if p[0] == "broken.jpg"} == {"error"}
    assert sum(r["status"] == "ok" and r["provider"] == "local" for r in one.values()) == 8


def test_pool_prepares_and_reports_invalid_images_by_name() -> None:
    from tests.conftest import make_jpeg

    with WorkerPool(2) as pool:
        image = pool.prepare(make_jpeg((10, 20, 30), (40, 30)), max_bytes=None, max_side=None, source="a.jpg")
        assert (image.width, image.height, image.source) == (40, 30, "a.jpg")
        with pytest.raises(InvalidImageError, match=r"bad\.jpg"):
            pool.prepare(b"not an image", max_bytes=None, max_side=None, source="bad.jpg")


class WorkerLocalFake(FakeClassifier):
    """A "local model" that says which process answered (its request id is the process id)."""

    runs_in_worker_process = True

    def _infer(self, images):  # type: ignore[no-untyped-def]
        return [replace_request_id(raw) for raw in super()._infer(images)]


def replace_request_id(raw):  # type: ignore[no-untyped-def]
    raw.request_id = str(os.getpid())
    return raw


def test_local_adapters_run_in_the_workers_and_cloud_ones_in_the_parent(tmp_path: Path, monkeypatch) -> None:
    from tests import stub_reports

    stub_reports.install(monkeypatch)
    images, labels = make_dataset(tmp_path, 6)
    config = tmp_path / "c.yaml"
    config.write_text(
        """version: 1
policy: {allowed_regions: [local]}
providers:
  local: {adapter: "tests.e2e.test_compare_workers:WorkerLocalFake", model: m}
  cloud: {adapter: "tests.e2e.test_compare_workers:WorkerLocalFake", model: m, seed: c}
"""
    )
    # the second provider is told apart as "cloud": same class, but not allowed into workers
    monkeypatch.setattr("cloudderm.compare.api.runs_in_worker", lambda clf: clf.name == "local")
    out = tmp_path / "out"
    args = ["compare", str(images), "-c", str(config), "--labels", str(labels), "-o", str(out)]
    assert main([*args, "--no-progress", "--workers", "2"]) == 0
    pids = {(r["provider"], r["request_id"]) for r in read_jsonl(out / "predictions.jsonl")}
    local = {pid for name, pid in pids if name == "local"}
    assert {pid for name, pid in pids if name == "cloud"} == {str(os.getpid())}
    assert local and str(os.getpid()) not in local and len(local) <= 2


def test_errors_that_do_not_pickle_come_back_as_provider_errors() -> None:
    from cloudderm.compare.remote_work import portable_error as _portable

    error = ProviderHTTPError("server said no", status=503, provider="local")
    try:
        pickle.loads(pickle.dumps(error))
        unpicklable = False
    except TypeError:
        unpicklable = True
    back = pickle.loads(pickle.dumps(_portable(error, "local")))
    assert "server said no" in str(back) and back.retryable == error.retryable
    assert unpicklable or type(back) is ProviderHTTPError


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_bad_worker_counts_are_usage_errors(tmp_path: Path, value: str, capsys) -> None:
    images, _labels = make_dataset(tmp_path, 2)
    config = write_config(tmp_path / "c.yaml")
    with pytest.raises(SystemExit) as exc:
        main(["compare", str(images), "-c", str(config), "-o", str(tmp_path / "o"), "--workers", value])
    assert exc.value.code == 2
    assert "--workers" in capsys.readouterr().err


def test_bad_workers_environment_is_exit_2(tmp_path: Path, monkeypatch, capsys) -> None:
    images, _labels = make_dataset(tmp_path, 2)
    config = write_config(tmp_path / "c.yaml")
    monkeypatch.setenv("CLOUDDERM_WORKERS", "zero")
    assert main(["compare", str(images), "-c", str(config), "-o", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "CLOUDDERM_WORKERS" in capsys.readouterr().err
    monkeypatch.delenv("CLOUDDERM_WORKERS")
    cores = len(os.sched_getaffinity(0))
    assert default_workers() == max(1, min(8, cores)), "unset: one worker per core, up to 8"
    monkeypatch.setenv("CLOUDDERM_WORKERS", "3")
    assert default_workers() == 3


@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_killed_run_with_workers_resumes_without_repeating_any_answered_call(
    tmp_path: Path, how: str
) -> None:
    n = 40
    images, labels = make_dataset(tmp_path, n)
    log = tmp_path / "calls.log"
    config = write_config(tmp_path / "c.yaml", latency=0.04, log=log)
    out = tmp_path / "out"
    args = ["compare", str(images), "-c", str(config), "--labels", str(labels), "-o", str(out)]
    args += ["--no-progress", "--workers", "2"]
    proc = _launch(args, tmp_path)
    wait_for_answers(out / "results.sqlite", proc, at_least=10)
    proc.send_signal(getattr(signal, how))
    _, stderr = proc.communicate(
        timeout=60
    )  # returns only once the workers have gone too (they hold its pipes)
    assert proc.returncode == (-signal.SIGKILL if how == "SIGKILL" else 130), stderr
    answered = _answered(out / "results.sqlite")
    before = _calls(log)
    assert 10 <= len(answered) < 2 * n
    assert all(before[pair] == 1 for pair in answered)

    again = _launch(args, tmp_path)
    _, stderr = again.communicate(timeout=180)
    assert again.returncode == 0, stderr
    calls = _calls(log)
    assert not {pair for pair in answered if calls[pair] != 1}, "answered pairs were sent again"
    assert len(calls) == 2 * n
    lines = read_jsonl(out / "predictions.jsonl")
    assert len(lines) == 2 * n and {r["status"] for r in lines} == {"ok"}


def test_workers_use_the_providers_threads_and_one_when_unset(local_model: Path) -> None:
    from cloudderm.adapters.huggingface import HuggingFaceClassifier, HuggingFaceSettings
    from cloudderm.compare.remote_work import runs_in_worker, worker_threads
    from cloudderm.compare.remote_work import with_thread_setting as _with_threads

    unset = HuggingFaceClassifier(
        "local", HuggingFaceSettings(adapter="huggingface", model=str(local_model), runtime="onnx")
    )
    three = HuggingFaceClassifier(
        "local",
        HuggingFaceSettings(adapter="huggingface", model=str(local_model), runtime="onnx", onnx_threads=3),
    )
    assert runs_in_worker(unset) and not runs_in_worker(FakeClassifier("cloud"))
    assert (worker_threads(unset), worker_threads(three)) == (1, 3)
    copy = _with_threads(unset)
    assert (
        copy.settings.onnx_threads == 1 and unset.settings.onnx_threads is None
    )  # the parent's is untouched
    assert _with_threads(three) is three


def test_only_models_that_load_without_torch_go_to_the_workers(local_model: Path, onnx_model: Path) -> None:
    """A worker copy of a Hugging Face model imports transformers, hence torch (seconds of CPU), even with
    ``runtime: onnx``; ``azureml-onnx`` needs onnxruntime alone. Only the latter goes to the workers."""
    from cloudderm.adapters.azureml_onnx import AzureMLOnnxClassifier, AzureMLOnnxSettings
    from cloudderm.adapters.huggingface import HuggingFaceClassifier, HuggingFaceSettings
    from cloudderm.compare.api import _executor
    from cloudderm.compare.records import ProviderPlan

    def hf(name: str, runtime: str) -> ProviderPlan:
        settings = HuggingFaceSettings(adapter="huggingface", model=str(local_model), runtime=runtime)
        return ProviderPlan(name, HuggingFaceClassifier(name, settings), f"h-{name}", concurrency=1)

    settings = AzureMLOnnxSettings(adapter="azureml-onnx", model_path=str(onnx_model), resize_size=36)
    automl = ProviderPlan("automl", AzureMLOnnxClassifier("automl", settings), "h-automl", concurrency=1)
    plans = [hf("torch", "torch"), hf("onnx", "onnx"), automl]
    assert [p.classifier.worker_startup_is_light() for p in plans] == [False, False, True]
    with _executor("local", plans, 2, None) as pool:
        assert [pool.runs(p.config_hash) for p in plans] == [False, False, True]
    assert [p.concurrency for p in plans] == [1, 1, 2]  # one feeding thread per worker


def test_compare_without_workers_flag_or_environment_uses_one_worker_per_core(
    tmp_path: Path, monkeypatch
) -> None:
    images, _labels = make_dataset(tmp_path, 2)
    config = write_config(tmp_path / "c.yaml")
    monkeypatch.delenv("CLOUDDERM_WORKERS", raising=False)
    out = tmp_path / "o"
    assert main(["compare", str(images), "-c", str(config), "-o", str(out), "--no-progress"]) == 0
    expected = max(1, min(8, len(os.sched_getaffinity(0))))
    assert json.loads((out / "summary.json").read_text())["run"]["workers"] == expected
