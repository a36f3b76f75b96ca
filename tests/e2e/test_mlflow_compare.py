"""``cloudderm compare --mlflow``: a pyfunc next to emulated clouds, logged to a file store and read back.

The comparison is the real one (metrics, reports): the FashionMNIST-shaped pyfunc from
``tests.adapters.mlflow_support`` beside SageMaker and Azure ML endpoints served by the loopback emulator.
``MlflowClient`` then reads the tracking store back: the run tree, each child's metrics against
``summary.json``, the artifacts, and no planted secret in any param or tag. A second run must update the
same runs; a broken tracking store must cost nothing but a warning.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("mlflow.pyfunc")
pytest.importorskip("torch")
pytest.importorskip("boto3")
pytest.importorskip("azure.core")

from cloudderm.cli import main
from cloudderm.compare.mlflow_tracking import ARTIFACTS
from cloudderm.emulate import EmulatedEndpoint, Emulator
from cloudderm.testing.fakes import FakeClassifier
from tests.adapters.mlflow_support import save_model
from tests.conftest import REPO_ROOT
from tests.e2e.emulator_support import emulator_aws_env

EXAMPLES = REPO_ROOT / "examples"
CANARY = "canary-azure-key-0d5e"
NAMED_METRICS = {
    "balanced_accuracy": ("balanced_accuracy",),
    "melanoma_sensitivity": ("melanoma_sensitivity",),
    "triage_sensitivity": ("triage_sensitivity",),
    "ece": ("ece",),
    "latency_ms.p50": ("latency_ms", "p50"),
    "latency_ms.p95": ("latency_ms", "p95"),
    "cost_usd.per_1k": ("cost_usd", "per_1k"),
    "answer_rate": ("answer_rate",),
}


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    model = save_model(tmp_path / "models", "card")
    registry = register(model, tmp_path / "registry", monkeypatch)
    endpoint = EmulatedEndpoint(backend=FakeClassifier("backend"), azure_key=CANARY)
    with Emulator({"skin": endpoint}) as emulator, emulator_aws_env(tmp_path):
        providers = {
            "fashion-pyfunc": {  # a registered model, by alias, from its own registry
                "adapter": "mlflow",
                "model_uri": "models:/fashion-card@champion",
                "tracking_uri": registry,
                "registry_uri": registry,
            },
            "skin-sagemaker": emulator.sagemaker_config("skin"),
            "skin-azureml": {**emulator.azureml_config("skin"), "api_key": "${AZ_TEST_KEY}"},
        }
        monkeypatch.setenv("AZ_TEST_KEY", CANARY)
        config = tmp_path / "cloudderm.yaml"
        config.write_text(json.dumps({"version": 1, "providers": providers}))
        yield tmp_path, config


def register(model: Path, folder: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Register the saved pyfunc as fashion-card@champion in a file-based registry; returns its URI."""
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # the registry is a file store too
    uri = folder.resolve().as_uri()
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("fashion-card", description="Clothing classifier (FashionMNIST).")
    version = client.create_model_version("fashion-card", source=str(model))
    client.set_registered_model_alias("fashion-card", "champion", version.version)
    return uri


def compare(config: Path, out: Path, *extra: str) -> int:
    args = ["compare", str(EXAMPLES / "images"), "-c", str(config), "--labels", str(EXAMPLES / "labels.csv")]
    return main([*args, "-o", str(out), "--no-progress", *extra])


def client_for(out: Path):
    from mlflow import MlflowClient

    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # reading the file store back (monkeypatch restores)
    return MlflowClient(tracking_uri=(out / "mlruns").resolve().as_uri())


def dig(entry: dict, path: tuple[str, ...]):
    for key in path:
        entry = entry.get(key) if isinstance(entry, dict) else None
    return entry


def test_compare_logs_a_run_tree_that_matches_summary_and_resumes(setup, capsys) -> None:
    tmp, config = setup
    out = tmp / "out"
    assert compare(config, out, "--mlflow-experiment", "derm-vs-clouds") == 0
    captured = capsys.readouterr()
    printed = captured.out
    for name in ("fashion-pyfunc", "skin-sagemaker", "skin-azureml"):  # one table, pyfunc beside the clouds
        assert name in printed
    assert "MLflow: run" in printed, captured.err
    summary = json.loads((out / "summary.json").read_text())
    assert any("OUT-OF-DOMAIN" in f for f in summary["providers"]["fashion-pyfunc"]["flags"])

    client = client_for(out)
    experiment = client.get_experiment_by_name("derm-vs-clouds")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and len(runs) == 4
    parent = parents[0]
    children = {r.data.tags["mlflow.runName"]: r for r in runs if r is not parent}
    assert set(children) == set(summary["providers"])
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in children.values())

    params = parent.data.params
    assert params["dataset"] == str(EXAMPLES / "images") and params["taxonomy"] == "ham10000"
    assert len(params["dataset_hash"]) == 16 and len(params["config_hash"]) == 16
    assert params["cloudderm_version"]
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= set(ARTIFACTS)

    for name, run in children.items():
        entry = summary["providers"][name]
        checked = 0
        for key, path in NAMED_METRICS.items():
            value = dig(entry, path)
            if value is None:
                assert key not in run.data.metrics
                continue
            assert run.data.metrics[key] == pytest.approx(value, rel=1e-12, abs=0)
            checked += 1
        assert checked >= 5, name
        for key, value in run.data.metrics.items():  # and every logged metric is a summary.json value
            source = summary["cost"][name] if key.startswith("cost_estimate.") else entry
            path = key.split(".")[1:] if key.startswith("cost_estimate.") else key.split(".")
            assert dig(source, tuple(path)) == pytest.approx(value, rel=1e-12, abs=0), key
        assert not any(k.startswith("prediction_warnings") for k in run.data.metrics)
        assert run.data.params["config_hash"] == entry["config_hash"]
        card = json.loads(
            Path(client.download_artifacts(run.info.run_id, "governance.json", str(tmp))).read_text()
        )
        assert card == summary["governance"][name]
    assert children["skin-azureml"].data.params["settings.scoring_uri"].startswith("http://127.0.0.1:")
    assert children["fashion-pyfunc"].data.params["settings.model_uri"] == "models:/fashion-card@champion"
    assert (
        summary["governance"]["fashion-pyfunc"]["model"]["intended_use"]
        == "Clothing classifier (FashionMNIST)."
    )

    for run in runs:  # the planted key is in no param or tag (secret fields never reach the store)
        for text in [*run.data.params.values(), *run.data.tags.values()]:
            assert CANARY not in text

    # the same command again: the same four runs are updated, metrics at the next step
    assert compare(config, out, "--mlflow-experiment", "derm-vs-clouds") == 0
    again = client.search_runs([experiment.experiment_id])
    assert {r.info.run_id for r in again} == {r.info.run_id for r in runs}
    history = client.get_metric_history(children["skin-sagemaker"].info.run_id, "balanced_accuracy")
    assert sorted(m.step for m in history) == [0, 1]


def test_tracking_failure_warns_and_keeps_outputs(setup, monkeypatch, capsys) -> None:
    tmp, config = setup
    # a tracking store that cannot be created (its folder would sit inside a regular file)
    (tmp / "not-a-folder").write_text("")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp / "not-a-folder" / "mlruns").as_uri())
    out = tmp / "out"
    assert compare(config, out, "--mlflow") == 0
    err = capsys.readouterr().err
    assert "MLflow tracking failed" in err and "outputs" in err
    for name in ARTIFACTS:
        assert (out / name).is_file()


def test_missing_mlflow_is_exit_2_before_any_call(setup, monkeypatch, capsys) -> None:
    tmp, config = setup
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow raises ImportError
    assert compare(config, tmp / "out", "--mlflow") == 2
    assert 'pip install "cloudderm[mlflow]"' in capsys.readouterr().err
    assert not (tmp / "out").exists()


def test_default_store_allows_the_file_store_for_itself_only(tmp_path, monkeypatch) -> None:
    from cloudderm.compare.mlflow_tracking import _tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    with _tracking_uri(tmp_path) as uri:
        assert uri == (tmp_path / "mlruns").resolve().as_uri()
        assert os.environ["MLFLOW_ALLOW_FILE_STORE"] == "true"
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    with _tracking_uri(tmp_path) as uri:
        assert uri == "http://127.0.0.1:5000" and "MLFLOW_ALLOW_FILE_STORE" not in os.environ


def test_tracking_warning_never_quotes_mlflow_credentials(tmp_path, monkeypatch) -> None:
    from cloudderm.compare import mlflow_tracking
    from cloudderm.compare.mlflow_tracking import log_comparison_safely

    uri = "https://user:canary-pass-77@127.0.0.1:1/"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "canary-token-88")

    def failing(out, experiment=None):  # as MLflow's client errors do, quote the URI and the request
        raise RuntimeError(f"API request to {uri}api/2.0 failed (Authorization: Bearer canary-token-88)")

    monkeypatch.setattr(mlflow_tracking, "log_comparison", failing)
    messages: list[str] = []
    assert log_comparison_safely(tmp_path, warn=messages.append) is None
    assert len(messages) == 1 and "MLflow tracking failed" in messages[0]
    assert "canary-pass-77" not in messages[0] and "canary-token-88" not in messages[0]
