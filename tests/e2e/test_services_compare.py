"""``cloudderm compare`` puts the five managed-service adapters next to the existing providers in one run.

Everything runs through loopback emulators (one port, every protocol) backed by deterministic local models:
a HAM10000 model behind the custom-model services, a generic-label model behind the two label-detection
services, which must show as out-of-domain with their raw labels kept.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cloudderm.cli import main
from cloudderm.emulate import Emulator
from cloudderm.emulate.rekognition import custom_labels_arn
from cloudderm.testing.fakes import FakeClassifier, FakeSettings
from tests.conftest import make_jpeg
from tests.e2e.emulator_support import emulator_aws_env
from tests.hub_offline import hub_registry_offline  # noqa: F401  (autouse fixture)

pytest.importorskip("boto3")
pytest.importorskip("huggingface_hub")
pytest.importorskip("google.auth")

GENERIC = ["skin", "close-up", "hand", "flesh", "pattern"]


def custom_labels(emu: Emulator, project: str) -> dict:
    return {
        **emu.config("rekognition", project),
        "project_version_arn": custom_labels_arn(emu.region, project),
    }


SERVICES = ["custom-vision", "cloud-vision", "rekognition", "rekognition-custom", "hf-inference", "kserve"]


def dataset(root: Path) -> tuple[Path, Path]:
    images = root / "images"
    images.mkdir()
    rows = ["image,label"]
    for i, code in enumerate(["nv", "mel", "bkl", "bcc"]):
        (images / f"img{i}.jpg").write_bytes(make_jpeg(((i * 61) % 256, 120, (i * 29) % 256), (32, 24)))
        rows.append(f"img{i}.jpg,{code}")
    labels = root / "labels.csv"
    labels.write_text("\n".join(rows) + "\n")
    return images, labels


def test_compare_runs_all_five_services_beside_the_existing_providers(tmp_path: Path) -> None:
    images, labels = dataset(tmp_path)
    backends = {
        "derm": FakeClassifier("derm-backend"),
        "generic": FakeClassifier("generic-backend", FakeSettings(model="generic", labels=GENERIC)),
    }
    with Emulator(backends) as emu, emulator_aws_env(tmp_path):
        providers = {
            "local": {"adapter": "cloudderm.testing.fakes:FakeClassifier", "model": "local-model"},
            "sagemaker": emu.sagemaker_config("derm"),
            "azureml": emu.azureml_config("derm"),
            "custom-vision": emu.config("custom-vision", "derm"),
            "cloud-vision": emu.config("cloud-vision", "generic"),
            "rekognition": emu.config("rekognition", "generic"),
            "rekognition-custom": custom_labels(emu, "derm"),
            "hf-inference": {**emu.config("hf-inference", "derm"), "top_k": 7},
            "kserve": emu.config("kserve", "derm"),
        }
        config = tmp_path / "cloudderm.yaml"
        config.write_text(yaml.safe_dump({"version": 1, "providers": providers}, sort_keys=False))
        out = tmp_path / "out"
        code = main(["compare", str(images), "-c", str(config), "--labels", str(labels), "-o", str(out)])
    assert code == 0
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    by_provider: dict[str, list[dict]] = {}
    for row in rows:
        by_provider.setdefault(row["provider"], []).append(row)
    assert set(by_provider) == set(providers)
    assert all(len(r) == 4 and {x["status"] for x in r} == {"ok"} for r in by_provider.values())
    for name in ("cloud-vision", "rekognition"):  # generic labels: out-of-domain, raw labels visible
        for row in by_provider[name]:
            assert row["canonical"] is None
            assert {item["label"] for item in row["labels"]} <= set(GENERIC)
            assert any("out-of-domain" in w for w in row["warnings"])
    for name in ("custom-vision", "rekognition-custom", "hf-inference", "kserve"):
        assert all(row["canonical"] for row in by_provider[name])
    # The same deterministic backend answers every custom-model service: the top labels agree.
    tops = {
        name: [r["labels"][0]["label"] for r in by_provider[name]] for name in ("custom-vision", "kserve")
    }
    assert tops["custom-vision"] == tops["kserve"]
    summary = json.loads((out / "summary.json").read_text())
    assert set(SERVICES) <= set(summary["providers"])
    cost = summary["cost"]
    vision = cost["cloud-vision"]  # sourced: LABEL_DETECTION list price, first 1,000 units free
    projected = summary["providers"]["cloud-vision"]["cost_usd"]["projected"]
    assert vision["kind"] == "per-call" and projected["per_1k"] > 0 and projected["monthly"] > 0
    assert any("https://cloud.google.com/vision/pricing" in a for a in vision["assumptions"])
    for name in ("custom-vision", "rekognition", "rekognition-custom", "hf-inference"):
        assert cost[name]["kind"] == "unknown"
        assert summary["providers"][name]["cost_usd"]["projected"]["monthly"] is None  # never guessed
        assert any("pricing" in a for a in cost[name]["assumptions"])


def test_cli_exit_codes_for_service_mistakes(tmp_path: Path, capsys) -> None:
    """A config mistake is exit 2 before any call; a provider refusal (wrong key) is exit 1, named, no key."""
    image = tmp_path / "a.jpg"
    image.write_bytes(make_jpeg((10, 20, 30)))
    config = tmp_path / "cloudderm.yaml"
    kserve = {"adapter": "kserve", "url": "http://127.0.0.1:9", "model_name": "derm"}  # no labels
    config.write_text(yaml.safe_dump({"version": 1, "providers": {"ks": kserve}}))
    assert main(["classify", str(image), "-c", str(config)]) == 2
    assert "labels" in capsys.readouterr().err
    with Emulator({"derm": FakeClassifier("derm")}) as emu:
        wrong = {**emu.config("custom-vision", "derm"), "prediction_key": "not-the-key-42"}
        config.write_text(yaml.safe_dump({"version": 1, "providers": {"cv": wrong}}))
        assert main(["classify", str(image), "-c", str(config)]) == 1
    output = capsys.readouterr()
    assert "401" in output.err + output.out and "not-the-key-42" not in output.err + output.out
