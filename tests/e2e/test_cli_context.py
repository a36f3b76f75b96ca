"""``cloudderm classify --age/--sex/--site``: the per-image context from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloudderm.cli import main

FAKE = "cloudderm.testing.fakes:FakeClassifier"


@pytest.fixture
def image(tmp_path: Path, sample_images) -> str:
    path = tmp_path / "lesion.jpg"
    path.write_bytes(sample_images[0])
    return str(path)


def _fake_config(tmp_path: Path) -> tuple[Path, Path]:
    log = tmp_path / "contexts.jsonl"
    config = tmp_path / "c.yaml"
    config.write_text(f"version: 1\nproviders:\n  fake: {{adapter: '{FAKE}', context_log: '{log}'}}\n")
    return config, log


def _sent(log: Path) -> list:
    return [json.loads(line)["context"] for line in log.read_text().splitlines()]


def test_flags_reach_the_adapter_as_the_image_context(tmp_path: Path, image: str, capsys) -> None:
    config, log = _fake_config(tmp_path)
    flags = ["--age", "55", "--sex", "female", "--site", " back "]
    argv = ["classify", image, "-c", str(config), "--json", *flags]
    assert main(argv) == 0
    assert _sent(log) == [{"age": 55.0, "sex": "female", "site": "back"}]


def test_one_flag_leaves_the_others_unknown_and_no_flag_sends_no_context(
    tmp_path: Path, image: str, capsys
) -> None:
    config, log = _fake_config(tmp_path)
    assert main(["classify", image, "-c", str(config), "--json", "--sex", "male"]) == 0
    assert main(["classify", image, "-c", str(config), "--json"]) == 0
    assert _sent(log) == [{"age": None, "sex": "male", "site": None}, None]


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--age", "abc"], "age must be years in 0..150, got 'abc'"),
        (["--age", "-3"], "age must be years in 0..150"),
        (["--age", "200"], "age must be years in 0..150"),
        (["--age", "nan"], "age must be years in 0..150"),
        (["--sex", "F"], "invalid choice: 'F'"),
        (["--site", "  "], "site must not be empty"),
    ],
)
def test_bad_values_are_exit_2_with_a_clean_message_before_any_call(
    tmp_path: Path, image: str, capsys, flags: list[str], said: str
) -> None:
    config, log = _fake_config(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["classify", image, "-c", str(config), *flags])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err
    assert not log.exists(), "nothing is classified when a flag is bad"


@pytest.mark.slow
def test_zoo_use_metadata_gets_the_context_from_the_cli(tmp_path: Path, shared_data, capsys) -> None:
    pytest.importorskip("onnxruntime", reason='needs the zoo extra: pip install "cloudderm[zoo]"')
    from cloudderm.models.cards import CARDS
    from cloudderm.models.store import fetch_command, is_ready

    card = CARDS["sklesion-xception"]
    if not is_ready(card):
        pytest.skip(f"sklesion-xception is not in the model cache: run `{fetch_command(card)}`")
    config = tmp_path / "zoo.yaml"
    config.write_text(
        "version: 1\nproviders:\n"
        "  plain: {adapter: zoo, model: sklesion-xception}\n"
        "  meta: {adapter: zoo, model: sklesion-xception, use_metadata: true}\n"
    )
    image = str(shared_data / "images" / "PAT_46_881_939.png")
    argv = ["classify", image, "-c", str(config), "--json", "--age", "70", "--sex", "male", "--site", "face"]
    assert main(argv) == 0
    rows = {r["provider"]: r for r in json.loads(capsys.readouterr().out)}
    meta = rows["meta"]["provider_details"]["metadata"]
    assert meta["sklesion_site"] == "head-or-neck" and meta["age"] == 70
    assert str(rows["plain"]["provider_details"]["metadata"]).startswith("unknown")
    scores = {name: [ls["score"] for ls in rows[name]["labels"]] for name in rows}
    assert scores["meta"] != scores["plain"], "the metadata changed sklesion's answer"
