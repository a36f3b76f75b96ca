"""The ``azureml-onnx`` adapter on tiny models exported here with ``torch.onnx.export``.

Exporter: torch 2.13 defaults to the torch.export-based exporter, which needs ``onnxscript`` (not
installed, and not needed by cloudderm); the TorchScript exporter (``dynamo=False``) works offline and
writes the names AutoML uses (``input1``/``output1``) with a dynamic batch axis.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cloudderm.adapters.azureml_onnx import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    AzureMLOnnxClassifier,
    AzureMLOnnxSettings,
    preprocess,
)
from cloudderm.classifier import INDEPENDENT_SCORES_WARNING
from cloudderm.config import parse_config
from cloudderm.errors import ConfigError
from cloudderm.factory import build_classifier
from cloudderm.testing import ClassifierConformance
from tests.conftest import make_jpeg
from tests.tolerances import KERNEL_SCORE_TOL, assert_same_scores, sum_tolerance

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

HAM = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
SIZE = 32  # the tiny models take 32x32 crops; resize_size 36 keeps the AutoML resize-then-crop shape


def tiny_model(classes: int = len(HAM), seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 3, stride=2),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(6, classes),
    ).eval()


def export(
    model: torch.nn.Module, path: Path, *, input_name="input1", dynamic_hw=False, batch_dynamic=True
) -> Path:
    axes: dict[str, dict[int, str]] = {}
    if batch_dynamic:
        axes = {input_name: {0: "batch"}, "output1": {0: "batch"}}
    if dynamic_hw:
        axes.setdefault(input_name, {}).update({2: "height", 3: "width"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, SIZE, SIZE),),
            str(path),
            input_names=[input_name],
            output_names=["output1"],
            dynamic_axes=axes or None,
            dynamo=False,
        )
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[torch.nn.Module, Path]:
    folder = tmp_path_factory.mktemp("automl")
    model = tiny_model()
    export(model, folder / "model.onnx")
    (folder / "labels.json").write_text(json.dumps(HAM))
    return model, folder


def make(folder: Path, **overrides) -> AzureMLOnnxClassifier:
    values = {"model_path": str(folder / "model.onnx"), "resize_size": 36, "batch_size": 8}
    values.update(overrides)
    return AzureMLOnnxClassifier("azure-onnx", AzureMLOnnxSettings(**values))


class RunSpy:
    """Wraps an InferenceSession to record the batch shape of every run."""

    def __init__(self, session) -> None:
        self.session = session
        self.shapes: list[tuple[int, ...]] = []

    def run(self, outputs, feed):
        self.shapes.extend(v.shape for v in feed.values())
        return self.session.run(outputs, feed)

    def __getattr__(self, name):
        return getattr(self.session, name)


def numpy_reference(image: Image.Image, resize_size: int, crop: int) -> np.ndarray:
    """AutoML's validation transform written out independently in float64 NumPy."""
    w, h = image.size
    scale = resize_size / min(w, h)
    size = (resize_size, int(resize_size * h / w)) if w <= h else (int(resize_size * w / h), resize_size)
    resized = (
        image.convert("RGB") if scale == 1 else image.convert("RGB").resize(size, Image.Resampling.BILINEAR)
    )
    a = np.asarray(resized, dtype=np.float64)
    top = round((a.shape[0] - crop) / 2.0)
    left = round((a.shape[1] - crop) / 2.0)
    a = a[top : top + crop, left : left + crop] / 255.0
    return ((a - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]).transpose(2, 0, 1)


def square_sample(image: Image.Image, resize_size: int, crop: int, resample=None) -> np.ndarray:
    """Microsoft's "Without PyTorch" sample: ``image.resize((256, 256))`` (PIL default filter), then crop."""
    rgb = image.convert("RGB")
    square = (
        rgb.resize((resize_size, resize_size))
        if resample is None
        else rgb.resize((resize_size,) * 2, resample)
    )
    a = np.asarray(square, dtype=np.float64)
    off = (resize_size - crop) // 2
    a = a[off : off + crop, off : off + crop] / 255.0
    return ((a - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]).transpose(2, 0, 1)


def noise_image(width: int, height: int, seed: int = 1) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


# ---- conformance ---------------------------------------------------------------------------------
class TestAzureMLOnnxConformance(ClassifierConformance):
    @pytest.fixture
    def classifier(self, exported):
        _, folder = exported
        clf = make(folder, batch_size=2)
        yield clf
        clf.close()


# ---- scores --------------------------------------------------------------------------------------
def test_scores_equal_torch_softmax_with_real_batching(exported, sample_images):
    model, folder = exported
    clf = make(folder)
    session = clf._load()
    spy = RunSpy(session.session)
    session.session = spy
    predictions = clf.classify_batch(sample_images)
    assert spy.shapes == [(3, 3, SIZE, SIZE)]  # one run for the three images
    for image, prediction in zip(sample_images, predictions):
        pixels = preprocess(clf.prepare(image).to_pil(), 36, (SIZE, SIZE))
        with torch.no_grad():
            expected = torch.softmax(model(torch.from_numpy(pixels[None])), dim=1)[0].tolist()
        got = {ls.label: ls.score for ls in prediction.labels}
        assert_same_scores(got, dict(zip(HAM, expected)))  # ONNX Runtime batch of 3 vs PyTorch single
        assert prediction.provider_details["input_name"] == "input1"
        assert prediction.cost_usd == 0.0  # local, no `hourly_usd` override: nothing per call
        assert not any("not normalised" in w for w in prediction.warnings)


def test_multilabel_uses_sigmoid_and_marks_scores_independent(exported, sample_images):
    model, folder = exported
    clf = make(folder, task="multilabel")
    prediction = clf.classify(sample_images[0])
    pixels = preprocess(clf.prepare(sample_images[0]).to_pil(), 36, (SIZE, SIZE))
    with torch.no_grad():
        expected = torch.sigmoid(model(torch.from_numpy(pixels[None])))[0].tolist()
    got = {ls.label: ls.score for ls in prediction.labels}
    assert [got[label] for label in HAM] == pytest.approx(expected, abs=KERNEL_SCORE_TOL)
    assert INDEPENDENT_SCORES_WARNING in prediction.warnings
    assert sum(got.values()) != pytest.approx(1.0, abs=0.02)


def test_input_name_and_dynamic_size_are_read_from_the_session(tmp_path, sample_images):
    model = tiny_model(seed=3)
    export(model, tmp_path / "model.onnx", input_name="images", dynamic_hw=True)
    (tmp_path / "labels.json").write_text(json.dumps(HAM))
    clf = make(tmp_path, crop_size=40, resize_size=48)
    prediction = clf.classify(sample_images[2])
    assert prediction.provider_details["input_name"] == "images"
    assert prediction.provider_details["input_size"] == [40, 40]
    pixels = preprocess(clf.prepare(sample_images[2]).to_pil(), 48, (40, 40))
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(pixels[None])), dim=1)[0].tolist()
    assert_same_scores({ls.label: ls.score for ls in prediction.labels}, dict(zip(HAM, expected)))


def test_fixed_batch_model_is_run_in_slices(tmp_path, sample_images):
    export(tiny_model(), tmp_path / "model.onnx", batch_dynamic=False)
    (tmp_path / "labels.json").write_text(json.dumps(HAM))
    clf = make(tmp_path)
    session = clf._load()
    spy = RunSpy(session.session)
    session.session = spy
    batch = clf.classify_batch(sample_images)
    assert spy.shapes == [(1, 3, SIZE, SIZE)] * 3
    singles = [clf.classify(image) for image in sample_images]
    assert [p.top for p in batch] == [p.top for p in singles]


# ---- preprocessing -------------------------------------------------------------------------------
@pytest.mark.parametrize(("width", "height"), [(320, 256), (512, 384), (300, 420), (301, 256), (97, 61)])
def test_preprocessing_matches_numpy_reference(width, height):
    image = noise_image(width, height)
    ours = preprocess(image, 256, (224, 224))
    assert ours.dtype == np.float32 and ours.shape == (3, 224, 224)
    np.testing.assert_allclose(ours, numpy_reference(image, 256, 224), atol=1e-5)


def test_preprocessing_keeps_aspect_and_crops_the_centre_exactly():
    image = noise_image(320, 256)  # shorter side already 256: no resampling, so pixels are exact
    raw = np.asarray(image, dtype=np.float32)
    expected = ((raw[16:240, 48:272] / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)
    np.testing.assert_array_equal(preprocess(image, 256, (224, 224)), expected)


def test_centre_crop_offset_rounds_like_torchvision():
    image = noise_image(301, 256)  # (301 - 224) / 2 = 38.5 -> Python round -> 38
    raw = np.asarray(image, dtype=np.float32)
    expected = ((raw[16:240, 38:262] / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)
    np.testing.assert_array_equal(preprocess(image, 256, (224, 224)), expected)


def test_microsofts_square_resize_sample_gives_different_pixels():
    bilinear = Image.Resampling.BILINEAR
    image = noise_image(512, 384)  # non-square: the sample squashes it, AutoML's transform keeps the aspect
    assert not np.allclose(
        preprocess(image, 256, (224, 224)), square_sample(image, 256, 224, bilinear), atol=1e-3
    )
    square = noise_image(400, 400)  # square: same geometry, and the same pixels with the same filter ...
    ours = preprocess(square, 256, (224, 224))
    np.testing.assert_allclose(ours, square_sample(square, 256, 224, bilinear), atol=1e-5)
    # ... but the sample's resize uses PIL's default filter (bicubic), not torchvision's bilinear
    assert not np.allclose(ours, square_sample(square, 256, 224), atol=1e-3)


def test_grayscale_and_rgba_inputs_become_rgb(exported):
    _, folder = exported
    clf = make(folder)
    gray = Image.fromarray(np.full((50, 70), 120, dtype=np.uint8), "L")
    rgba = Image.fromarray(np.zeros((50, 70, 4), dtype=np.uint8), "RGBA")
    assert len(clf.classify_batch([png(gray), png(rgba)])) == 2


# ---- governance and model facts ------------------------------------------------------------------
def test_governance_is_local_and_facts_come_from_files(tmp_path):
    export(tiny_model(), tmp_path / "model.onnx")
    (tmp_path / "labels.json").write_text(json.dumps(HAM))
    (tmp_path / "MLmodel").write_text(
        "run_id: automl_run_42\nutc_time_created: '2024-05-01 10:00:00'\n"
        "metadata:\n  license: proprietary\n  intended_use: dermoscopy research\n  base_model_name: vit\n"
    )
    clf = make(tmp_path, model_card={"prohibited_uses": ["medical-diagnosis"]})
    card = clf.governance
    assert card.service.vendor == "local" and card.service.data_leaves_machine is False
    assert card.service.region == "local"
    assert card.model.labels == HAM and card.model.label_domain == "in-domain"
    assert card.model.license == "proprietary" and card.model.intended_use == "dermoscopy research"
    assert card.model.prohibited_uses == ["medical-diagnosis"]
    assert "labels.json" in card.model.source and "MLmodel" in card.model.source
    assert clf.classify(make_jpeg((120, 80, 60))).provider_details["mlflow_run_id"] == "automl_run_42"


def test_out_of_domain_labels_are_flagged(tmp_path):
    export(tiny_model(classes=4), tmp_path / "model.onnx")
    (tmp_path / "labels.json").write_text(json.dumps(["can", "carton", "milk_bottle", "water_bottle"]))
    clf = make(tmp_path)
    assert clf.governance.model.label_domain == "out-of-domain"
    prediction = clf.classify(make_jpeg((20, 200, 20)))
    assert prediction.canonical is None and any("out-of-domain" in w for w in prediction.warnings)


def test_loads_from_yaml_config(exported):
    _, folder = exported
    config = parse_config(
        {
            "policy": {"allowed_regions": ["uksouth", "local"]},
            "providers": {
                "azure-onnx": {"adapter": "azureml-onnx", "model_path": str(folder / "model.onnx")}
            },
        }
    )
    clf = build_classifier("azure-onnx", config)
    assert isinstance(clf, AzureMLOnnxClassifier)
    assert clf.labels_path == folder / "labels.json"
    assert clf.classify(make_jpeg((90, 60, 40))).adapter == "azureml-onnx"


# ---- configuration errors ------------------------------------------------------------------------
def test_missing_files_and_bad_labels_are_config_errors(tmp_path, exported):
    _, folder = exported
    with pytest.raises(ConfigError, match="no such file") as info:
        make(tmp_path)
    assert info.value.field == "model_path"
    export(tiny_model(), tmp_path / "model.onnx")
    with pytest.raises(ConfigError, match=r"labels\.json is expected beside model\.onnx") as info:
        make(tmp_path)
    assert info.value.field == "labels_path"
    (tmp_path / "labels.json").write_text('{"0": "nv"}')
    with pytest.raises(ConfigError, match="JSON list of class names"):
        make(tmp_path)
    with pytest.raises(ConfigError, match="exceeds resize_size"):
        make(folder, crop_size=300)


def test_model_and_labels_that_disagree_fail_on_load(tmp_path, sample_images):
    export(tiny_model(), tmp_path / "model.onnx")
    (tmp_path / "labels.json").write_text(json.dumps(HAM[:5]))
    clf = make(tmp_path)
    with pytest.raises(ConfigError, match=r"7 outputs but .* lists 5 labels"):
        clf.classify(sample_images[0])


def test_fixed_input_size_wins_over_a_conflicting_setting(exported, sample_images):
    _, folder = exported
    with pytest.raises(ConfigError, match="crop_size 30 but the model takes 32x32"):
        make(folder, crop_size=30).classify(sample_images[0])
    with pytest.raises(ConfigError, match="larger than resize_size"):
        make(folder, resize_size=20).classify(sample_images[0])


def test_unavailable_execution_provider_is_a_config_error(exported, sample_images):
    _, folder = exported
    with pytest.raises(ConfigError, match="lacks") as info:
        make(folder, providers=["NoSuchExecutionProvider"]).classify(sample_images[0])
    assert info.value.field == "providers"


def test_not_an_onnx_file_is_a_config_error(tmp_path, sample_images):
    (tmp_path / "model.onnx").write_bytes(b"not a model")
    (tmp_path / "labels.json").write_text(json.dumps(HAM))
    with pytest.raises(ConfigError, match="not a loadable ONNX model"):
        make(tmp_path).classify(sample_images[0])


def test_real_lesion_photos_batch_like_singles(exported, shared_data):
    _, folder = exported
    photos = sorted((shared_data / "images").glob("ISIC_*.jpg"))[:4]
    assert photos, "shared data has no ISIC photos"
    clf = make(folder, batch_size=4)
    batch = clf.classify_batch(photos)
    for path, prediction in zip(photos, batch):
        single = clf.classify(path)
        assert sum(ls.score for ls in prediction.labels) == pytest.approx(1.0, abs=sum_tolerance(len(HAM)))
        assert_same_scores(
            {ls.label: ls.score for ls in prediction.labels}, {ls.label: ls.score for ls in single.labels}
        )


def test_session_does_not_spin_and_takes_the_configured_threads(exported, sample_images, monkeypatch):
    """Spin-waiting burns CPU between runs (see cloudderm/adapters/_ort.py); threads come from settings."""
    import onnxruntime as ort

    seen = []
    real = ort.InferenceSession

    def spy(path, sess_options=None, **kwargs):
        seen.append(sess_options)
        return real(path, sess_options=sess_options, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", spy)
    make(exported[1], intra_op_threads=1).classify(sample_images[0])
    (options,) = seen
    assert options.intra_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == "0"


def test_pickles_before_and_after_warm_up_and_answers_the_same(exported, sample_images):
    import pickle

    _, folder = exported
    clf = make(folder)
    assert pickle.loads(pickle.dumps(clf)).model_id == clf.model_id
    clf.warm_up()
    first = clf.classify(sample_images[0])
    again = pickle.loads(pickle.dumps(clf)).classify(sample_images[0])
    assert [ls.label for ls in again.labels] == [ls.label for ls in first.labels]
    assert [ls.score for ls in again.labels] == pytest.approx([ls.score for ls in first.labels], abs=1e-6)
