"""The app's logic without a browser: binding rules, auth file, caps, results folder, secrets, CLI codes."""

from __future__ import annotations

import io
import shutil
import sqlite3
from pathlib import Path

import pytest
from PIL import Image

from cloudderm.app.results import inside, load_run
from cloudderm.app.server import is_loopback, read_auth_file
from cloudderm.app.uploads import MAX_UPLOAD_BYTES, prepare_upload
from cloudderm.classifier import ImageLimits
from cloudderm.cli import main
from cloudderm.config import parse_config
from cloudderm.errors import ConfigError, InvalidImageError
from tests.app.app_support import EXAMPLES, FAKE, write_run


def test_loopback_addresses() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.org")


def test_non_loopback_without_auth_is_refused_before_anything_starts(tmp_path: Path, capsys) -> None:
    pytest.importorskip("gradio")
    config = tmp_path / "c.yaml"
    config.write_text(f"version: 1\nproviders:\n  f: {{adapter: '{FAKE}'}}\n", encoding="utf-8")
    assert main(["app", "-c", str(config), "--host", "0.0.0.0"]) == 2
    assert "--auth-file" in capsys.readouterr().err


def test_auth_file_lines(tmp_path: Path) -> None:
    good = tmp_path / "auth"
    good.write_text("# team\nalice:s3cret:with:colons\n\nbob:pw\n", encoding="utf-8")
    assert read_auth_file(good) == [("alice", "s3cret:with:colons"), ("bob", "pw")]
    bad = tmp_path / "bad"
    bad.write_text("alice\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="line 1"):
        read_auth_file(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        read_auth_file(tmp_path / "missing")


def test_uploads_are_capped_and_stripped(tmp_path: Path) -> None:
    big = tmp_path / "big.jpg"
    with big.open("wb") as f:
        f.truncate(MAX_UPLOAD_BYTES + 1)
    with pytest.raises(InvalidImageError, match="20 MB"):
        prepare_upload(big, ImageLimits())
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (64, 48), "red").save(photo, exif=exif)
    prepared = prepare_upload(photo, ImageLimits())
    assert b"CameraMaker" not in prepared.data
    with Image.open(io.BytesIO(prepared.data)) as img:
        assert not img.getexif()


def test_inside_refuses_traversal(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    assert inside(tmp_path / "run", "plot.png") == (tmp_path / "run" / "plot.png").resolve()
    for escape in ("../secret.txt", "/etc/passwd", "a/../../secret.txt"):
        with pytest.raises(ValueError, match="outside"):
            inside(tmp_path / "run", escape)
    (tmp_path / "run" / "link.png").symlink_to(tmp_path / "secret.png")
    with pytest.raises(ValueError, match="outside"):
        inside(tmp_path / "run", "link.png")


def test_results_of_a_run_still_going_are_read_from_the_store_without_its_lock(tmp_path: Path) -> None:
    run = write_run(tmp_path)
    finished = load_run(run)
    images = len({r["image"] for r in finished.rows})
    assert not finished.live and images >= 13 and len(finished.rows) == 2 * images
    live = tmp_path / "live"
    live.mkdir()
    shutil.copy(run / "results.sqlite", live / "results.sqlite")
    shutil.copy(run / "predictions.jsonl", live / "predictions.jsonl")  # from an earlier run
    writer = sqlite3.connect(live / "results.sqlite")
    try:
        writer.execute("UPDATE results SET updated = updated + 3600")  # answers landed after it
        writer.commit()
        writer.execute("BEGIN IMMEDIATE")  # a writer holding its lock while the tab reads
        going = load_run(live)
        writer.rollback()
    finally:
        writer.close()
    assert going.live
    key = {(r["image"], r["provider"]): r["canonical"] for r in finished.rows}
    assert {(r["image"], r["provider"]): r["canonical"] for r in going.rows} == key
    _, rows = going.table("only melanoma")
    assert rows and all(r[1] == "mel" or any(str(c).startswith("mel") for c in r[2:-1]) for r in rows)


def test_results_folder_that_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a compare output folder"):
        load_run(tmp_path)


def test_secrets_of_the_config_are_scrubbed_from_reasons() -> None:
    from cloudderm.app.providers import config_secrets

    config = parse_config(
        {
            "providers": {
                "a": {"adapter": "azureml", "scoring_uri": "http://127.0.0.1:9/s", "api_key": "k-12345"}
            }
        }
    )
    assert config_secrets(config) == ["k-12345"]


def test_examples_exist() -> None:
    assert any(EXAMPLES.glob("*.jpg"))


def test_saliency_overlay_on_a_local_model(app_files, monkeypatch) -> None:
    from cloudderm.app.overlay import explain_available, overlay_html
    from cloudderm.config import load_config
    from cloudderm.factory import build_classifier
    from cloudderm.images import prepare

    if not explain_available():
        pytest.skip('the saliency overlay needs the explain extra: pip install "cloudderm[explain]"')
    monkeypatch.setenv("CD_APP_CANARY", "not-used-here")
    config = load_config(app_files["config"])
    with build_classifier("skin-vit", config) as classifier:
        html = overlay_html(classifier, prepare(EXAMPLES / "ISIC_0000000.jpg"))
    assert 'src="data:image/png;base64,' in html and "not evidence of a diagnosis" in html
