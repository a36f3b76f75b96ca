"""Config loading: search order, interpolation, validation errors that name file/provider/field, secrets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import SecretStr

import cloudderm
from cloudderm.classifier import AdapterSettings
from cloudderm.config import find_config, load_config, parse_config
from cloudderm.errors import ConfigError
from cloudderm.factory import build_classifier
from cloudderm.testing.fakes import FakeClassifier, FakeSettings

FAKE = "cloudderm.testing.fakes:FakeClassifier"


class SecretSettings(FakeSettings):
    api_key: SecretStr


class SecretFake(FakeClassifier):
    """A fake whose settings hold a secret, to prove it never leaks."""

    Settings = SecretSettings


def write(tmp_path: Path, text: str, name: str = "cloudderm.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_fill_provider_settings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
version: 1
defaults: {{timeout_s: 12, max_retries: 2, concurrency: 3}}
providers:
  a: {{adapter: "{FAKE}", model: m1}}
  b: {{adapter: "{FAKE}", model: m2, timeout_s: 5}}
""",
    )
    config = load_config(path)
    assert list(config.providers) == ["a", "b"]
    a, b = config.provider("a"), config.provider("b")
    assert (a.timeout_s, a.max_retries, a.concurrency) == (12, 2, 3)
    assert b.timeout_s == 5
    assert config.source == str(path)


def test_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_cfg = write(tmp_path, "version: 1\n", "env.yaml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CLOUDDERM_CONFIG", str(env_cfg))
    assert find_config() == env_cfg
    local = write(tmp_path, "version: 1\n")
    assert find_config() == local
    explicit = write(tmp_path, "version: 1\n", "explicit.yaml")
    assert find_config(explicit) == explicit
    monkeypatch.delenv("CLOUDDERM_CONFIG")
    local.unlink()
    with pytest.raises(ConfigError, match="no config given"):
        find_config()
    with pytest.raises(ConfigError, match="not found"):
        find_config(tmp_path / "missing.yaml")


def test_env_interpolation_and_default() -> None:
    data = {"providers": {"p": {"adapter": FAKE, "model": "${MODEL_NAME}", "region": "${REGION:-local}"}}}
    config = parse_config(data, env={"MODEL_NAME": "from-env"})
    assert config.providers["p"].model == "from-env"
    assert config.providers["p"].region == "local"


def test_missing_variable_names_variable_provider_and_field() -> None:
    """Issue #12 item 14: an unset secret is needed only for a call, then it is a ConfigError (exit 2)."""
    data = {"providers": {"p": {"adapter": FAKE, "model": "${NOT_SET_ANYWHERE}"}}}
    config = parse_config(data, source="cfg.yaml", env={})  # reading the config (cost, providers) is fine
    clf = build_classifier("p", config)
    with pytest.raises(ConfigError) as info:
        clf.classify(np.zeros((8, 8, 3), np.uint8))
    message = str(info.value)
    assert "NOT_SET_ANYWHERE" in message and "cfg.yaml" in message and "'p'" in message and "model" in message


def test_unknown_field_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"providers": {"p": {"adapter": FAKE, "modle": "x"}}}, source="c.yaml")
    assert info.value.provider == "p" and info.value.field == "modle"
    assert "unknown field" in str(info.value)


def test_unknown_adapter_lists_valid_names() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"providers": {"p": {"adapter": "sagemakr"}}}, source="c.yaml")
    message = str(info.value)
    for name in ("huggingface", "sagemaker", "azureml", "azureml-onnx", "vertex"):
        assert name in message


def test_missing_adapter_field() -> None:
    with pytest.raises(ConfigError, match="missing required field 'adapter'"):
        parse_config({"providers": {"p": {"model": "x"}}})


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "providers:\n  a: [unclosed\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+"):
        load_config(path)


def test_top_level_validation() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"version": 2})
    assert info.value.field == "version"
    with pytest.raises(ConfigError, match="unknown field"):
        parse_config({"polcy": {}})


def test_secret_never_appears_in_repr_or_errors() -> None:
    secret = "sk-canary-0123456789abcdef"
    target = f"{SecretFake.__module__}:SecretFake"
    config = parse_config({"providers": {"p": {"adapter": target, "api_key": "${KEY}"}}}, env={"KEY": secret})
    settings = config.providers["p"]
    assert settings.api_key.get_secret_value() == secret
    assert secret not in repr(settings) and secret not in str(settings) and secret not in repr(config)
    with pytest.raises(ConfigError) as info:
        parse_config(
            {"providers": {"p": {"adapter": target, "api_key": "${KEY}", "latency_s": "${KEY}"}}},
            env={"KEY": secret},
        )
    assert secret not in str(info.value)
    assert "latency_s" in str(info.value)


def test_load_returns_ready_classifier(tmp_path: Path, sample_images) -> None:
    path = write(tmp_path, f"providers:\n  skin: {{adapter: '{FAKE}', model: demo}}\n")
    classifier = cloudderm.load("skin", config=path)
    assert isinstance(classifier, FakeClassifier)
    prediction = classifier.classify(sample_images[0])
    assert prediction.provider == "skin" and prediction.model == "demo"
    with pytest.raises(ConfigError, match="no provider named 'other'; configured: skin"):
        cloudderm.load("other", config=path)


def test_switching_provider_is_one_name(tmp_path: Path, sample_images) -> None:
    path = write(
        tmp_path,
        f"providers:\n  a: {{adapter: '{FAKE}', seed: one}}\n  b: {{adapter: '{FAKE}', seed: two}}\n",
    )
    for name in ("a", "b"):
        with cloudderm.load(name, config=path) as clf:
            assert clf.classify(sample_images[0]).provider == name


def test_custom_label_map_extends_taxonomy() -> None:
    config = parse_config(
        {
            "labels": {"mole": "nv"},
            "providers": {"p": {"adapter": FAKE, "labels": ["mole", "spot"], "label_map": {"spot": "mel"}}},
        }
    )
    clf = cloudderm.load("p", config=config)
    assert clf.taxonomy.canonical("mole") == "nv"
    assert clf.taxonomy.canonical("spot") == "mel"
    with pytest.raises(ConfigError, match="taxonomy"):
        cloudderm.load("p", config=config.model_copy(update={"taxonomy": "nope"}))


def test_adapter_settings_base_forbids_extra() -> None:
    with pytest.raises(Exception, match="extra"):
        AdapterSettings(adapter="x", surprise=1)  # type: ignore[call-arg]


def test_select_providers() -> None:
    config = parse_config({"providers": {"a": {"adapter": FAKE}, "b": {"adapter": FAKE}}}, source="c.yaml")
    assert config.select(None) == ["a", "b"]
    assert config.select(["b", "a", "b"]) == ["b", "a"]
    with pytest.raises(ConfigError, match="unknown provider"):
        config.select(["z"])
    with pytest.raises(ConfigError, match="names no providers"):
        parse_config({}).select(None)
