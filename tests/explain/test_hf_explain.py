"""Gradient maps on the ``huggingface`` adapter: tiny MobileNetV2 (Grad-CAM, IG) and ViT (rollout).

The weights are random, so these tests check the plumbing every real model goes through (layer choice,
crop geometry, map size and range, files), not what the maps show; what maps show is tested on models
with known attributions (test_known_attribution.py) and on the real skin model when it is cached.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("captum")
pytest.importorskip("transformers")

from cloudderm.adapters.huggingface import HuggingFaceClassifier, HuggingFaceSettings
from cloudderm.cli import main
from cloudderm.testing.hf_models import save_mobilenet_v2, save_vit
from tests.conftest import REPO_ROOT

IMAGE = REPO_ROOT / "examples" / "images" / "ISIC_0000000.jpg"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    return {
        "cnn": save_mobilenet_v2(root / "cnn", image_size=64, depth_multiplier=0.35),
        "vit": save_vit(root / "vit", image_size=32, patch_size=8, hidden_size=32, num_layers=2, num_heads=2),
    }


def _clf(path: Path, name: str = "local") -> HuggingFaceClassifier:
    return HuggingFaceClassifier(name, HuggingFaceSettings(adapter="huggingface", model=str(path)))


def test_gradcam_reads_the_last_conv_and_leaves_the_cropped_margin_empty(models) -> None:
    clf = _clf(models["cnn"])
    exp = clf.explain(IMAGE, sanity=True)
    prepared = clf.prepare(IMAGE)
    assert exp.method == "gradcam" and exp.parameters["layer"].endswith("conv_1x1.convolution")
    assert exp.saliency.shape == (prepared.height, prepared.width) and exp.saliency.dtype == np.float32
    assert exp.saliency.min() >= 0.0 and exp.saliency.max() == pytest.approx(1.0)
    # resize shortest edge to 73 then centre-crop 64: the model never sees the left and right margins
    margin = int(prepared.width * (1 - (64 / 73) * prepared.height / prepared.width) / 2) - 2
    assert exp.saliency[:, :margin].max() == 0.0 and exp.saliency[:, -margin:].max() == 0.0
    assert exp.sanity["randomised_layers"][0] == "inner.classifier"
    assert -1.0 <= exp.sanity["spearman"] <= 1.0
    assert exp.target_label == max(clf.classify(prepared).labels, key=lambda ls: ls.score).label


def test_integrated_gradients_on_the_cnn(models) -> None:
    exp = _clf(models["cnn"]).explain(IMAGE, method="integrated-gradients")
    assert exp.parameters["steps"] == 32 and exp.saliency.max() == pytest.approx(1.0)


def test_rollout_is_auto_for_a_vit_and_covers_the_whole_image(models) -> None:
    clf = _clf(models["vit"])
    exp = clf.explain(IMAGE, sanity=True)
    assert exp.method == "rollout" and exp.parameters["class_agnostic"] is True
    assert exp.saliency.min() == pytest.approx(0.0) and exp.saliency.max() == pytest.approx(1.0)
    assert exp.sanity["required"] is False, "the < 0.5 requirement is Grad-CAM's"
    head, block = exp.sanity["randomised_layers"]
    assert head == "inner.classifier" and "layer" in block and block.endswith(".1"), "the last of 2 blocks"


def test_gradcam_on_a_vit_names_the_fix(models) -> None:
    from cloudderm.errors import ConfigError

    with pytest.raises(ConfigError, match="rollout"):
        _clf(models["vit"]).explain(IMAGE, method="gradcam")


def test_cli_writes_maps_overlays_and_explain_json(models, tmp_path: Path) -> None:
    config = tmp_path / "cloudderm.yaml"
    config.write_text(
        "version: 1\nproviders:\n"
        f"  cnn:\n    adapter: huggingface\n    model: {models['cnn']}\n"
        f"  vit:\n    adapter: huggingface\n    model: {models['vit']}\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    assert main(["explain", str(IMAGE), "-c", str(config), "-o", str(out), "--sanity"]) == 0
    for name in ("ISIC_0000000.cnn.gradcam", "ISIC_0000000.vit.rollout"):
        saliency = np.load(out / f"{name}.npy")
        assert saliency.dtype == np.float32 and saliency.min() >= 0.0 and saliency.max() <= 1.0
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((out / "explain.json").read_text())
    assert report["calls"] == {"announced": 0, "made": 0, "images_sent": 0, "cached": 0}
    pairs = {(e["provider"], e["method"]) for e in report["explanations"]}
    assert pairs == {("cnn", "gradcam"), ("vit", "rollout")}
    for entry in report["explanations"]:
        assert {"sanity", "deletion", "focus", "target", "parameters", "cost_usd"} <= set(entry)
    assert main(["explain", str(IMAGE), "-c", str(config), "-o", str(out), "--target", "nosuch"]) == 2
    bad = json.loads((out / "explain.json").read_text())
    assert bad["errors"] and "nosuch" in bad["errors"][0]["error"]
    assert main(["explain", str(IMAGE), "-c", str(config), "-o", str(out), "--method", "lime"]) == 2
