"""The ``huggingface`` adapter on tiny models built from configs (no hub, no network).

Models are saved with ``save_pretrained`` into a session temp dir (with a README.md model card) and loaded
through the real loading code: ``cloudderm.load`` on a config, ``AutoImageProcessor`` and
``AutoModelForImageClassification`` underneath.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import cloudderm  # noqa: E402
from cloudderm.adapters import _hf_onnx  # noqa: E402
from cloudderm.adapters._hf_preprocess import (  # noqa: E402
    FastPreprocessor,
    build_preprocessor,
    decode_rgb,
    probe_images,
)
from cloudderm.adapters.huggingface import HuggingFaceClassifier, HuggingFaceSettings  # noqa: E402
from cloudderm.config import parse_config  # noqa: E402
from cloudderm.emulate.models import (  # noqa: E402
    IMAGENET_STYLE_LABELS,
    MARMAL88_LABELS,
    SKIN_VIT_CARD,
    save_mobilenet_v2,
    save_vit,
)
from cloudderm.errors import ConfigError, MissingDependencyError  # noqa: E402
from cloudderm.images import prepare  # noqa: E402
from cloudderm.taxonomy import HAM10000  # noqa: E402
from cloudderm.testing import ClassifierConformance  # noqa: E402
from tests.conftest import REPO_ROOT, make_jpeg  # noqa: E402
from tests.tolerances import KERNEL_SCORE_TOL, assert_same_scores, sum_tolerance  # noqa: E402

TINY_VIT = {"image_size": 32, "patch_size": 8, "hidden_size": 32, "num_layers": 2, "num_heads": 2}
TINY_MOBILENET = {"image_size": 32, "depth_multiplier": 0.35}
# The stand-in card plus a limitations section that prohibits clinical use (the real seed card has none).
PROHIBITING_CARD = SKIN_VIT_CARD + (
    "\n## Limitations\n\nTrained on dermoscopic images of mostly light skin. Not for clinical use.\n"
)


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Path]:
    """Tiny MobileNetV2 (ImageNet-style labels), ViT (marmal88 labels) and a multi-label ViT, built once."""
    root = tmp_path_factory.mktemp("hf-models")
    return {
        "mobilenet": save_mobilenet_v2(root / "mobilenet", **TINY_MOBILENET),
        "vit": save_vit(root / "vit", card=PROHIBITING_CARD, **TINY_VIT),
        "multilabel": save_vit(root / "multilabel", problem_type="multi_label_classification", **TINY_VIT),
    }


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(autouse=True)
def _offline(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def load(model: Path | str, name: str = "local", **settings) -> HuggingFaceClassifier:
    """Build the provider through the real config path: YAML-shaped mapping -> cloudderm.load."""
    config = parse_config({"providers": {name: {"adapter": "huggingface", "model": str(model), **settings}}})
    classifier = cloudderm.load(name, config=config)
    assert isinstance(classifier, HuggingFaceClassifier)
    return classifier


def images(n: int = 5) -> list[bytes]:
    sizes = [(64, 48), (48, 64), (80, 80), (20, 14), (120, 90), (33, 77)]
    colours = [(200, 120, 90), (90, 60, 40), (230, 200, 190), (10, 200, 30), (120, 20, 220), (0, 0, 0)]
    return [make_jpeg(colours[i % 6], sizes[i % 6]) for i in range(n)]


def reference_scores(model_dir: Path, data: bytes, multi_label: bool = False) -> np.ndarray:
    """Scores computed with plain transformers (processor + model), independent of the adapter."""
    import torch

    processor = transformers.AutoImageProcessor.from_pretrained(model_dir)
    model = transformers.AutoModelForImageClassification.from_pretrained(model_dir).eval()
    pixels = processor(images=[prepare(data).to_pil()], return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        logits = model(pixel_values=pixels).logits[0]
    return (torch.sigmoid(logits) if multi_label else torch.softmax(logits, dim=-1)).numpy()


def by_label(prediction) -> dict[str, float]:
    return {ls.label: ls.score for ls in prediction.labels}


# ---- conformance -----------------------------------------------------------------------------------
class TestTorchConformance(ClassifierConformance):
    @pytest.fixture
    def classifier(self, models):
        return load(models["vit"], name="skin-vit", batch_size=2)


class TestOnnxConformance(ClassifierConformance):
    @pytest.fixture
    def classifier(self, models, onnx_cache):
        return load(models["mobilenet"], name="mnv2-onnx", runtime="onnx", onnx_cache_dir=str(onnx_cache))


# ---- construction, settings, errors ----------------------------------------------------------------
def test_module_import_stays_light() -> None:
    code = (
        "import sys, cloudderm.adapters.huggingface, cloudderm.adapters._hf_card;"
        "names = ('torch', 'transformers', 'onnxruntime', 'huggingface_hub');"
        "heavy = [m for m in names if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    )
    assert out.stdout.strip() == "[]"


def test_two_adapters_loading_at_once_in_a_fresh_process(models) -> None:
    """The compare runner loads every provider's model from its own thread on first use; transformers'
    lazy first import must not be raced (it once gave "module 'transformers' has no attribute ...")."""
    code = (
        "import sys, threading\n"
        "from cloudderm.adapters.huggingface import HuggingFaceClassifier, HuggingFaceSettings\n"
        "from tests.conftest import make_jpeg\n"
        "clfs = [HuggingFaceClassifier(f'p{i}', HuggingFaceSettings(adapter='huggingface', model=m))"
        " for i, m in enumerate(sys.argv[1:])]\n"
        "barrier, errors = threading.Barrier(len(clfs)), []\n"
        "def go(c):\n"
        "    barrier.wait()\n"
        "    try: c.classify(make_jpeg((90, 60, 40)))\n"
        "    except Exception as e: errors.append(repr(e))\n"
        "threads = [threading.Thread(target=go, args=(c,)) for c in clfs]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "print(errors)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(models["mobilenet"]), str(models["vit"]), str(models["multilabel"])],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"},
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr


def test_constructor_validates_only_and_loads_lazily(tmp_path) -> None:
    missing = tmp_path / "no-such-model"
    classifier = load(missing, name="lazy")  # constructing needs no files
    assert classifier.max_batch_size == 8
    assert classifier.service_facts().data_leaves_machine is False
    with pytest.raises(ConfigError) as info:
        classifier.classify(images(1)[0])
    message = str(info.value)
    assert "'lazy'" in message and str(missing) in message and "save_pretrained" in message
    assert info.value.field == "model"


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"runtime": "onnx", "dtype": "float16"}, "dtype"),
        ({"runtime": "onnx", "device": "mps"}, "device"),
        ({"batch_size": 0}, "batch_size"),
        ({"device": "tpu"}, "device"),
        ({"modle": "typo"}, "modle"),
    ],
)
def test_invalid_settings_are_config_errors(models, settings, field) -> None:
    with pytest.raises(ConfigError) as info:
        load(models["vit"], **settings)
    assert field in str(info.value)


def test_incomplete_model_folder_names_the_fix(tmp_path, models) -> None:
    (tmp_path / "config.json").write_bytes((models["vit"] / "config.json").read_bytes())
    with pytest.raises(ConfigError) as info:
        load(tmp_path, name="half").classify(images(1)[0])
    assert str(tmp_path) in str(info.value) and "preprocessor_config.json" in str(info.value)


def test_offline_uncached_hub_model_names_the_fix() -> None:
    classifier = load("cloudderm-tests/not-in-any-cache", name="hub")
    assert classifier.local_files_only is True  # follows HF_HUB_OFFLINE
    with pytest.raises(ConfigError) as info:
        classifier.classify(images(1)[0])
    message = str(info.value)
    assert "cloudderm-tests/not-in-any-cache" in message and "'hub'" in message
    assert "HF_HUB_OFFLINE" in message and "local save_pretrained folder" in message


def test_local_files_only_follows_env_unless_set(monkeypatch, models) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert load(models["vit"]).local_files_only is False
    assert load(models["vit"], local_files_only=True).local_files_only is True


def test_missing_transformers_gives_install_hint(monkeypatch, models) -> None:
    classifier = load(models["vit"])
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "cloudderm\[hf\]"'):
        classifier.classify(images(1)[0])


def test_missing_onnxruntime_gives_install_hint(monkeypatch, models, onnx_cache) -> None:
    classifier = load(models["vit"], runtime="onnx", onnx_cache_dir=str(onnx_cache))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "cloudderm\[onnx\]"'):
        classifier.classify(images(1)[0])


def test_loads_from_a_yaml_file(tmp_path, models) -> None:
    path = tmp_path / "cloudderm.yaml"
    path.write_text(
        f"providers:\n  skin-vit: {{adapter: huggingface, model: '{models['vit']}', batch_size: 4}}\n",
        encoding="utf-8",
    )
    with cloudderm.load("skin-vit", config=path) as classifier:
        assert classifier.max_batch_size == 4
        assert classifier.classify(images(1)[0]).adapter == "huggingface"


# ---- inference -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["vit", "mobilenet"])
def test_scores_equal_plain_transformers(models, kind) -> None:
    data = images(3)[2]
    prediction = load(models[kind]).classify(data)
    expected = reference_scores(models[kind], data)
    labels = MARMAL88_LABELS if kind == "vit" else IMAGENET_STYLE_LABELS
    scores = by_label(prediction)
    assert sorted(scores) == sorted(labels)  # every class, labels from config.id2label
    np.testing.assert_allclose([scores[label] for label in labels], expected, atol=KERNEL_SCORE_TOL)
    assert sum(scores.values()) == pytest.approx(1.0, abs=sum_tolerance(len(scores)))


def test_batches_equal_one_by_one(models) -> None:
    classifier = load(models["mobilenet"], batch_size=3)
    data = images(5)
    batched = classifier.classify_batch(data)
    assert [p.provider_details.get("batch_size") for p in batched] == [3, 3, 3, 2, 2]
    for prediction, single in zip(batched, (classifier.classify(d) for d in data)):
        assert prediction.image_sha256 == single.image_sha256
        assert_same_scores(by_label(prediction), by_label(single))  # batch 3 vs 1: different kernels


def test_skin_vit_maps_to_ham10000(models) -> None:
    assert all(HAM10000.canonical(label) for label in MARMAL88_LABELS)
    assert HAM10000.canonical("melanocytic_Nevi") == "nv"
    assert HAM10000.canonical("benign_keratosis-like_lesions") == "bkl"
    for prediction in load(models["vit"]).classify_batch(images(4)):
        assert prediction.canonical == HAM10000.canonical(prediction.top.label)
        assert prediction.canonical in HAM10000.codes
        assert prediction.triage in ("benign", "concerning")
        assert not any("out-of-domain" in w for w in prediction.warnings)


def test_imagenet_mobilenet_is_out_of_domain(models) -> None:
    prediction = load(models["mobilenet"]).classify(images(1)[0])
    assert prediction.top.label in IMAGENET_STYLE_LABELS
    assert prediction.canonical is None and prediction.triage is None
    assert any("out-of-domain" in w for w in prediction.warnings)


def test_multi_label_model_uses_sigmoid(models) -> None:
    data = images(1)[0]
    prediction = load(models["multilabel"]).classify(data)
    expected = reference_scores(models["multilabel"], data, multi_label=True)
    scores = by_label(prediction)
    np.testing.assert_allclose([scores[label] for label in MARMAL88_LABELS], expected, atol=KERNEL_SCORE_TOL)
    assert any("independent" in w for w in prediction.warnings)


def test_lazy_load_happens_once_across_threads(monkeypatch, models) -> None:
    classifier = load(models["vit"])
    builds = []
    original = classifier._build
    monkeypatch.setattr(classifier, "_build", lambda: builds.append(1) or original())
    results: list = []
    threads = [
        threading.Thread(target=lambda: results.append(classifier.classify(images(1)[0]))) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 1 and len(results) == 4
    assert len({tuple((ls.label, round(ls.score, 6)) for ls in r.labels) for r in results}) == 1


def test_close_then_use_again(models) -> None:
    classifier = load(models["vit"])
    first = classifier.classify(images(1)[0])
    classifier.close()
    assert by_label(classifier.classify(images(1)[0])) == pytest.approx(by_label(first), abs=1e-6)


def test_runtime_details(models) -> None:
    details = load(models["vit"], device="cpu", dtype="float32").runtime_details
    assert details == {"runtime": "torch", "device": "cpu", "dtype": "float32", "preprocessing": "fast"}


# ---- fast preprocessing ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["vit", "mobilenet"])
def test_fast_preprocessing_equals_the_processor(models, kind) -> None:
    processor = transformers.AutoImageProcessor.from_pretrained(models[kind])
    preprocessor = build_preprocessor(processor)
    assert preprocessor.kind == "fast"
    for data in [*images(6), *(_png(p) for p in probe_images())]:
        image = decode_rgb(prepare(data).data)
        np.testing.assert_allclose(
            preprocessor.image(image), preprocessor.with_processor([image])[0], atol=1e-6
        )


def test_fast_preprocessing_on_real_images(models, shared_data) -> None:
    files = sorted((shared_data / "images").glob("*"))[:12]
    if not files:
        pytest.skip("no images in shared data")
    for kind in ("vit", "mobilenet"):
        preprocessor = build_preprocessor(transformers.AutoImageProcessor.from_pretrained(models[kind]))
        for path in files:
            image = decode_rgb(prepare(path).data)
            expected = preprocessor.with_processor([image])[0]
            np.testing.assert_allclose(preprocessor.image(image), expected, atol=1e-6)


def test_fast_path_falls_back_when_it_cannot_reproduce() -> None:
    class OddProcessor:
        """Resizes by its own rule (not PIL's), so the fast path must not be used."""

        do_resize, size, resample = True, {"height": 8, "width": 8}, 2
        do_rescale, rescale_factor = True, 1 / 255

        def __call__(self, images, do_resize=True, do_center_crop=True, return_tensors="np"):
            images = images if isinstance(images, list) else [images]
            arrays = [np.asarray(i, dtype=np.float32).transpose(2, 0, 1) / 255 for i in images]
            if do_resize:
                arrays = [a[:, ::4, ::4][:, :8, :8] for a in arrays]
            return {"pixel_values": np.stack(arrays)}

    assert FastPreprocessor.from_processor(OddProcessor()) is not None
    assert build_preprocessor(OddProcessor()).kind == "processor"

    class Padding(OddProcessor):
        do_pad = True

    assert FastPreprocessor.from_processor(Padding()) is None


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# ---- ONNX runtime ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["vit", "mobilenet"])
def test_onnx_scores_equal_torch_and_cache_is_reused(models, tmp_path, kind) -> None:
    data = images(4)
    torch_predictions = load(models[kind], batch_size=4).classify_batch(data)
    first = load(models[kind], runtime="onnx", onnx_cache_dir=str(tmp_path), batch_size=4)
    onnx_predictions = first.classify_batch(data)
    for got, expected in zip(onnx_predictions, torch_predictions):
        reference = by_label(expected)
        assert_same_scores(by_label(got), reference)  # ONNX Runtime vs PyTorch kernels
        assert got.provider_details["runtime"] == "onnx"
    details = first.runtime_details
    assert details["onnx_exported_now"] is True
    onnx_file = Path(details["onnx_path"])
    meta = json.loads((onnx_file.parent / "meta.json").read_text())
    assert meta["max_abs_logit_diff"] <= _hf_onnx.LOGIT_TOLERANCE
    stamp = onnx_file.stat().st_mtime_ns

    second = load(models[kind], runtime="onnx", onnx_cache_dir=str(tmp_path))
    assert second.runtime_details["onnx_exported_now"] is False
    assert second.runtime_details["onnx_path"] == str(onnx_file)
    assert onnx_file.stat().st_mtime_ns == stamp
    assert_same_scores(by_label(second.classify(data[0])), by_label(onnx_predictions[0]))  # batch 1 vs 4


def test_onnx_export_that_does_not_match_is_refused(monkeypatch, models, tmp_path) -> None:
    original = _hf_onnx._logits_only

    def shifted(model):
        import torch

        class Shifted(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = original(model)

            def forward(self, pixel_values):
                return self.inner(pixel_values) + 0.01

        return Shifted().eval()

    monkeypatch.setattr(_hf_onnx, "_logits_only", shifted)
    classifier = load(models["vit"], name="bad-export", runtime="onnx", onnx_cache_dir=str(tmp_path))
    with pytest.raises(ConfigError) as info:
        classifier.classify(images(1)[0])
    assert "does not reproduce" in str(info.value) and "runtime: torch" in str(info.value)
    assert not list(tmp_path.rglob("*.onnx"))


def test_onnx_cache_key_tracks_the_model_files(models, tmp_path) -> None:
    entry = _hf_onnx.cache_entry(tmp_path, "m", models["vit"])
    assert entry == _hf_onnx.cache_entry(tmp_path, "m", models["vit"])
    assert entry != _hf_onnx.cache_entry(tmp_path, "m", models["mobilenet"])
    snapshot = tmp_path / "models--o--n" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    assert _hf_onnx.cache_entry(tmp_path, "o/n", snapshot).name.startswith("o--n-")


# ---- governance ------------------------------------------------------------------------------------
def test_service_facts(models) -> None:
    facts = load(models["vit"]).service_facts()
    assert (facts.service, facts.vendor, facts.region, facts.data_leaves_machine) == (
        "local transformers model",
        "local",
        "local",
        False,
    )


def test_model_facts_read_without_loading_weights(monkeypatch, models) -> None:
    def no_weights(*args, **kwargs):
        raise AssertionError("model_facts must not load weights")

    monkeypatch.setattr(transformers.AutoModelForImageClassification, "from_pretrained", no_weights)
    mobilenet = load(models["mobilenet"]).model_facts()
    assert mobilenet.license == "other"
    assert mobilenet.training_data == ["imagenet-1k"]
    assert "image classification" in (mobilenet.intended_use or "")
    assert mobilenet.prohibited_uses == []
    assert load(models["mobilenet"]).governance.model.label_domain == "out-of-domain"  # the card decides
    assert mobilenet.labels == list(IMAGENET_STYLE_LABELS)

    vit = load(models["vit"]).model_facts()
    assert vit.license == "apache-2.0"
    assert vit.training_data == ["marmal88/skin_cancer"]
    assert vit.prohibited_uses == ["medical-diagnosis"]
    assert "Not for clinical use" in (vit.known_biases or "")
    assert load(models["vit"]).governance.model.label_domain == "in-domain"
    assert "README.md" in (vit.source or "")


def test_governance_card_carries_model_facts(models) -> None:
    classifier = load(models["vit"], name="skin-vit")
    card = classifier.governance
    assert card.model.prohibited_uses == ["medical-diagnosis"]
    assert card.service.vendor == "local"
    prediction = classifier.classify(images(1)[0])
    assert any("prohibits medical diagnosis" in w for w in prediction.warnings)


def test_prohibiting_card_is_refused_by_policy(models) -> None:
    config = parse_config(
        {
            "policy": {"forbid_models_prohibited_for": ["medical-diagnosis"]},
            "providers": {"skin-vit": {"adapter": "huggingface", "model": str(models["vit"])}},
        }
    )
    with pytest.raises(cloudderm.PolicyViolation, match="medical-diagnosis"):
        cloudderm.load("skin-vit", config=config)


def test_stand_in_cards_mirror_the_seed_cards(models) -> None:
    assert "prohibit" not in " ".join(load(models["mobilenet"]).governance.warnings)
    from cloudderm.governance.modelcard import parse_model_card

    facts = parse_model_card(SKIN_VIT_CARD)
    assert (facts["license"], facts["training_data"], facts["prohibited_uses"]) == (
        "apache-2.0",
        ["marmal88/skin_cancer"],
        [],
    )


def test_model_card_setting_overrides_the_card(models) -> None:
    classifier = load(models["mobilenet"], model_card={"intended_use": "benchmarking only"})
    assert classifier.model_facts().intended_use.startswith("Use the raw model")
    card = classifier.governance.model
    assert card.intended_use == "benchmarking only"
    assert card.license == "other"


def test_model_facts_from_the_hub_cache(monkeypatch, tmp_path, models) -> None:
    import huggingface_hub

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--acme--skin-vit"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for name in ("README.md", "config.json"):
        (snapshot / name).write_bytes((models["vit"] / name).read_bytes())
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    facts = load("acme/skin-vit").model_facts()
    assert load("acme/skin-vit").governance.model.label_domain == "in-domain"
    assert facts.prohibited_uses == ["medical-diagnosis"]
    assert facts.source and facts.source.startswith("hub cache")
    unknown = load("acme/never-downloaded").model_facts()
    assert (unknown.label_domain, unknown.license, unknown.source) == ("unknown", None, None)


def test_settings_class_is_registered() -> None:
    from cloudderm.registry import resolve_adapter

    assert resolve_adapter("huggingface") is HuggingFaceClassifier
    assert HuggingFaceClassifier.Settings is HuggingFaceSettings


def test_onnx_session_does_not_spin_and_takes_onnx_threads(models, onnx_cache, monkeypatch) -> None:
    """Spin-waiting burns CPU between runs (see cloudderm/adapters/_ort.py); threads come from settings."""
    import onnxruntime as ort

    seen = []
    real = ort.InferenceSession

    def spy(path, options=None, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(options)
        return real(path, options, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", spy)
    load(models["mobilenet"], runtime="onnx", onnx_cache_dir=str(onnx_cache), onnx_threads=1).classify(
        images(1)[0]
    )
    options = seen[-1]
    assert options.intra_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == "0"


def test_pickles_before_and_after_warm_up_and_answers_the_same(models) -> None:
    """Process pools and Ray ship adapters to workers: rebuilt from settings, the model loads again lazily."""
    import pickle

    classifier = load(models["vit"])
    assert pickle.loads(pickle.dumps(classifier)).model_id == classifier.model_id
    classifier.warm_up()
    first = classifier.classify(images(1)[0])
    copy = pickle.loads(pickle.dumps(classifier))
    assert by_label(copy.classify(images(1)[0])) == pytest.approx(by_label(first), abs=1e-6)
