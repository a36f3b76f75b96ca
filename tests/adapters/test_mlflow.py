"""The ``mlflow`` adapter against real pyfuncs saved in a temporary folder, in-process and served.

The card model is a tiny PyTorch classifier shaped like the FashionMNIST model card: 28×28 grayscale
float32 input, ``predicted_class`` + ``class_probabilities`` output. Classifying the repository's lesion
photos with it is the documented out-of-domain use: every answer must be flagged, and the scores must be
exactly what the network computes on the photo converted per the signature (grayscale, bilinear 28×28,
0..1).
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("mlflow.pyfunc")
pytest.importorskip("torch")

from cloudderm.adapters import _mlflow_io as mio
from cloudderm.adapters.mlflow_model import (
    CODE_EXECUTION_WARNING,
    ImageDoesNotFit,
    MlflowClassifier,
    MlflowSettings,
)
from cloudderm.config import parse_config
from cloudderm.errors import ConfigError, PolicyViolation, ResponseFormatError
from cloudderm.factory import build_classifier
from cloudderm.images import prepare
from cloudderm.testing import ClassifierConformance
from tests.adapters.mlflow_support import (
    FASHION,
    save_model,
    scoring_server,
    tiny_net,
    torch_probabilities,
)
from tests.conftest import REPO_ROOT

EXAMPLES = sorted((REPO_ROOT / "examples" / "images").glob("*"))[:4]
# float32 softmax of a 784-term dot product: batched and single kernels differ by a few ulp of the logits
# (~1e-6 relative); probabilities in (0, 1) move by less than that, so 1e-5 leaves a wide margin.
TOL = 1e-5


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mlflow-models")
    return {kind: save_model(root, kind) for kind in ("card", "frame", "bytes", "odd")}


def make(name: str = "fashion", **settings) -> MlflowClassifier:
    return MlflowClassifier(name, MlflowSettings(**settings))


def expected_scores(path: Path) -> dict[str, float]:
    """What the network computes on the prepared photo converted per the 28×28 grayscale spec."""
    prepared = prepare(path)
    with Image.open(io.BytesIO(prepared.data)) as img:
        pixels = np.asarray(img.convert("L").resize((28, 28), Image.Resampling.BILINEAR))
    probs = torch_probabilities(tiny_net(), (pixels.astype(np.float32) / np.float32(255.0))[None])
    return dict(zip(FASHION, probs[0].tolist()))


class TestCardModelConformance(ClassifierConformance):
    @pytest.fixture
    def classifier(self, models):
        return make(model_uri=str(models["card"]))


@pytest.fixture(scope="module")
def served(models):
    with scoring_server(models["card"]) as url:
        yield url


class TestServedConformance(ClassifierConformance):
    @pytest.fixture
    def classifier(self, models, served):
        return make(scoring_uri=served, model_uri=str(models["card"]), api_key="canary-mlflow-key")

    @pytest.fixture
    def secret_values(self) -> list[str]:
        return ["canary-mlflow-key"]


def test_card_model_classifies_lesion_photos_as_clothes_and_says_so(models) -> None:
    config = parse_config({"providers": {"fashion": {"adapter": "mlflow", "model_uri": str(models["card"])}}})
    with build_classifier("fashion", config) as clf:
        predictions = clf.classify_batch(EXAMPLES)
    for path, prediction in zip(EXAMPLES, predictions):
        want = expected_scores(path)
        assert {ls.label for ls in prediction.labels} == set(FASHION)
        assert all(abs(ls.score - want[ls.label]) <= TOL for ls in prediction.labels)
        assert prediction.canonical is None and prediction.triage is None
        assert any("out-of-domain" in w for w in prediction.warnings)
        assert "model card prohibits medical diagnosis use" in prediction.warnings
        assert prediction.provider_details["input"].startswith("tensor float32 (-1, 28, 28) (28×28 grayscale")


def test_governance_card_reads_metadata_and_logged_card_and_warns_about_code(models) -> None:
    card = make(model_uri=str(models["card"])).governance
    assert card.service.data_leaves_machine is False and card.service.vendor == "local"
    model = card.model
    assert model.license == "mit"
    assert model.training_data == ["fashion_mnist"]
    assert "clothing" in (model.intended_use or "")
    assert model.prohibited_uses == ["medical-diagnosis"]
    assert model.labels == FASHION and model.label_domain == "out-of-domain"
    assert "MLmodel metadata" in (model.source or "") and "model_card.md" in (model.source or "")
    assert CODE_EXECUTION_WARNING in card.warnings


@pytest.mark.parametrize("kind", ["frame", "bytes"])
def test_dataframe_and_array_outputs_give_the_same_scores(models, kind) -> None:
    card = make(model_uri=str(models["card"])).classify_batch(EXAMPLES[:2])
    other = make(model_uri=str(models[kind])).classify_batch(EXAMPLES[:2])
    for a, b in zip(card, other):
        assert [ls.label for ls in a.labels] == [ls.label for ls in b.labels]
        assert max(abs(x.score - y.score) for x, y in zip(a.labels, b.labels)) <= TOL


def test_bytes_column_model_reads_its_spec(models) -> None:
    clf = make(model_uri=str(models["bytes"]))
    clf.warm_up()
    assert clf._input_spec().describe() == "column 'image' of binary (encoded image bytes)"


def test_unknown_output_shape_is_a_response_format_error_quoting_it(models) -> None:
    with pytest.raises(ResponseFormatError, match=r"unexpected model output: str 'cat'"):
        make(model_uri=str(models["odd"])).classify(EXAMPLES[0])


def test_exact_fit_refuses_an_image_of_another_size_naming_the_spec(models) -> None:
    clf = make(model_uri=str(models["card"]), fit="exact")
    with pytest.raises(ImageDoesNotFit, match=r"tensor float32 \(-1, 28, 28\) \(28×28 grayscale") as info:
        clf.classify(EXAMPLES[0])
    assert info.value.retryable is False
    tiny = Image.new("RGB", (28, 28), (120, 80, 60))
    assert clf.classify(tiny).labels  # an image that fits goes through


def test_pickles_before_and_after_loading(models) -> None:
    clf = make(model_uri=str(models["card"]))
    copy = pickle.loads(pickle.dumps(clf))
    clf.warm_up()
    again = pickle.loads(pickle.dumps(clf))
    assert again._model is None
    a, b = copy.classify(EXAMPLES[0]), again.classify(EXAMPLES[0])
    assert [ls.label for ls in a.labels] == [ls.label for ls in b.labels]


def test_served_model_gives_the_in_process_answers(models) -> None:
    local = make(model_uri=str(models["bytes"])).classify_batch(EXAMPLES)
    with scoring_server(models["bytes"]) as url:
        served = make(scoring_uri=url, model_uri=str(models["bytes"]))  # dataframe_split of base64 bytes
        answers = served.classify_batch(EXAMPLES)
        assert served.governance.service.data_leaves_machine is False
        assert CODE_EXECUTION_WARNING not in served.governance.warnings
    for a, b in zip(local, answers):
        assert [x.label for x in a.labels] == [x.label for x in b.labels]
        assert [x.score for x in a.labels] == pytest.approx([x.score for x in b.labels], abs=TOL)


@pytest.mark.slow
def test_mlflow_models_serve_on_loopback(models, tmp_path) -> None:
    """The real ``mlflow models serve --env-manager local`` in a subprocess, called through scoring_uri."""
    import shutil
    import socket
    import subprocess
    import sys
    import time

    import requests

    cli = shutil.which("mlflow", path=str(Path(sys.executable).parent))
    if cli is None:
        pytest.skip("the mlflow command is not installed beside this Python")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),  # the pickled model refers to tests.adapters helpers
        "PATH": f"{Path(cli).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # it execs uvicorn from there
    }
    args = [cli, "models", "serve", "-m", str(models["bytes"]), "--env-manager", "local"]
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [*args, "--host", "127.0.0.1", "--port", str(port)], env=env, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"mlflow models serve did not start: {(tmp_path / 'serve.log').read_text()[-2000:]}"
                )
            time.sleep(0.5)
        served = make(scoring_uri=f"http://127.0.0.1:{port}/invocations", model_uri=str(models["bytes"]))
        answers = served.classify_batch(EXAMPLES[:2])
    finally:
        server.terminate()
        server.wait(30)
        log.close()
    local = make(model_uri=str(models["bytes"])).classify_batch(EXAMPLES[:2])
    for a, b in zip(local, answers):
        assert [x.label for x in a.labels] == [x.label for x in b.labels]
        assert [x.score for x in a.labels] == pytest.approx([x.score for x in b.labels], abs=TOL)


@pytest.mark.parametrize("request_format", ["inputs", "instances"])
def test_served_tensor_model_without_model_uri(models, request_format) -> None:
    local = make(model_uri=str(models["frame"])).classify(EXAMPLES[0])
    with scoring_server(models["frame"]) as url:
        served = make(
            scoring_uri=url, tensor_shape=[-1, 28, 28], labels=None, request_format=request_format
        ).classify(EXAMPLES[0])
    assert [ls.label for ls in served.labels] == [ls.label for ls in local.labels]
    assert max(abs(a.score - b.score) for a, b in zip(served.labels, local.labels)) <= TOL


def test_registered_model_by_alias_with_registry_facts(models, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    import mlflow
    from mlflow import MlflowClient

    uri = (tmp_path / "mlruns").as_uri()
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(
        "fashion-card", description="Research demo: clothing classifier.", tags={"license": "apache-2.0"}
    )
    version = client.create_model_version("fashion-card", source=str(models["card"]))
    client.set_registered_model_alias("fashion-card", "champion", version.version)
    clf = make(model_uri="models:/fashion-card@champion", tracking_uri=uri, registry_uri=uri)
    facts = clf.model_facts()
    assert facts.license == "apache-2.0"  # the registry's tag wins over the logged card's "mit"
    assert facts.intended_use == "Research demo: clothing classifier."
    assert "registered model 'fashion-card'" in (facts.source or "")
    assert {ls.label for ls in clf.classify(EXAMPLES[0]).labels} == set(FASHION)
    # the provider's servers were used through explicit clients: MLflow's process-wide URIs are untouched
    assert mlflow.get_tracking_uri() != uri and mlflow.get_registry_uri() != uri
    assert "MLFLOW_TRACKING_URI" not in os.environ and "MLFLOW_REGISTRY_URI" not in os.environ


def test_endpoint_url_redirects_and_pricing_follows_where_it_runs(models, served) -> None:
    redirected = make(
        scoring_uri="https://mlflow.example.org/invocations",
        endpoint_url=served.rsplit("/", 1)[0],
        tensor_shape=[-1, 28, 28],
    )
    assert redirected.url == served and redirected.classify(EXAMPLES[0]).labels
    assert redirected.price_query().local is True  # loopback: this machine
    remote = make(scoring_uri="https://mlflow.example.org/invocations", tensor_shape=[-1, 28, 28])
    assert remote.price_query().local is False and remote.service_facts().data_leaves_machine is True
    assert make(model_uri=str(models["card"])).price_query().local is True


def test_runs_uri_from_a_provider_specific_tracking_server(models, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from mlflow import MlflowClient

    uri = (tmp_path / "mlruns").as_uri()
    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(client.create_experiment("models")).info.run_id
    client.log_artifacts(run, str(models["card"]), "model")
    clf = make(model_uri=f"runs:/{run}/model", tracking_uri=uri)
    assert clf.model_facts().license == "mit"  # the logged model card, fetched from the run
    want = make(model_uri=str(models["card"])).classify(EXAMPLES[0])
    got = clf.classify(EXAMPLES[0])
    assert [(ls.label, ls.score) for ls in got.labels] == [(ls.label, ls.score) for ls in want.labels]
    assert "MLFLOW_TRACKING_URI" not in os.environ


def test_policy_refuses_untrusted_model_uri_before_loading(models) -> None:
    raw = {
        "policy": {"trusted_model_uris": ["models:/derm-*"]},
        "providers": {"fashion": {"adapter": "mlflow", "model_uri": str(models["card"])}},
    }
    with pytest.raises(PolicyViolation, match="trusted_model_uris"):
        build_classifier("fashion", parse_config(raw))
    raw["policy"]["trusted_model_uris"] = [str(models["card"].parent) + "/*"]
    assert build_classifier("fashion", parse_config(raw)).executes_code_from == str(models["card"])


def test_settings_errors_are_config_errors(models) -> None:
    with pytest.raises(ConfigError, match="model_uri"):
        parse_config({"providers": {"m": {"adapter": "mlflow"}}})
    with pytest.raises(ConfigError, match="scoring_uri"):
        parse_config({"providers": {"m": {"adapter": "mlflow", "scoring_uri": "http://example.com/x"}}})
    with pytest.raises(ConfigError, match="tracking_uri"):
        parse_config(
            {"providers": {"m": {"adapter": "mlflow", "model_uri": "x", "tracking_uri": "https://u:p@h/"}}}
        )
    with pytest.raises(ConfigError, match="cannot read the MLmodel"):
        make(model_uri=str(models["card"].parent / "missing")).warm_up()


# ---- the conversions on their own -------------------------------------------------------------------------
def test_tensor_layouts_and_dtypes() -> None:
    png = io.BytesIO()
    Image.new("RGB", (10, 6), (255, 0, 0)).save(png, "PNG")
    data = [("red.png", png.getvalue())]
    hwc = mio.encode_tensor(data, mio.tensor_spec([-1, 4, 5, 3], "uint8"))
    assert hwc.shape == (1, 4, 5, 3) and hwc.dtype == np.uint8 and hwc[0, 0, 0].tolist() == [255, 0, 0]
    chw = mio.encode_tensor(data, mio.tensor_spec([-1, 3, 4, 5], "float32"))
    assert chw.shape == (1, 3, 4, 5) and chw[0, 0].max() == pytest.approx(1.0)
    raw = mio.encode_tensor(data, mio.tensor_spec([-1, -1, -1, 1], "float64"), float_scale="byte")
    assert raw.shape == (1, 6, 10, 1) and raw.max() == pytest.approx(76.0, abs=1)  # L of pure red
    with pytest.raises(mio.SpecError, match="not an image layout"):
        mio.tensor_spec([-1, 784], "float32")


def test_decode_output_shapes() -> None:
    pd = pytest.importorskip("pandas")
    card = {"predicted_class": "a", "class_probabilities": {"a": 0.7, "b": 0.3}}
    assert mio.decode_output(card, 1, None) == [[("a", 0.7), ("b", 0.3)]]
    assert mio.decode_output([card, card], 2, None)[1] == [("a", 0.7), ("b", 0.3)]
    frame = pd.DataFrame({"a": [0.1, 0.6], "b": [0.9, 0.4]})
    assert mio.decode_output(frame, 2, None) == [[("a", 0.1), ("b", 0.9)], [("a", 0.6), ("b", 0.4)]]
    rows = pd.DataFrame({"label": ["b", "a"], "score": [0.9, 0.6]})
    assert mio.decode_output(rows, 2, None) == [[("b", 0.9)], [("a", 0.6)]]
    lists = pd.DataFrame({"labels": [["b", "a"]], "scores": [[0.9, 0.1]]})
    assert mio.decode_output(lists, 1, None) == [[("b", 0.9), ("a", 0.1)]]
    assert mio.decode_output(np.array([[0.2, 0.8]]), 1, ["a", "b"]) == [[("a", 0.2), ("b", 0.8)]]
    with pytest.raises(mio.UnknownShape, match=r"without class names"):
        mio.decode_output(np.array([[0.2, 0.8]]), 1, None)
    with pytest.raises(mio.UnknownShape, match=r"ndarray of shape \(2, 2, 2\)"):
        mio.decode_output(np.zeros((2, 2, 2)), 2, ["a", "b"])
    with pytest.raises(mio.UnknownShape, match=r"1 answers for 2 images"):
        mio.decode_output([card], 2, None)
