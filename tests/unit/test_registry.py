"""Adapter registry: built-ins, entry-point plugins, dotted paths and helpful errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cloudderm.errors import ConfigError, MissingDependencyError
from cloudderm.registry import BUILTIN_ADAPTERS, adapter_names, install_hint, resolve_adapter
from cloudderm.testing.fakes import FakeClassifier


@pytest.fixture
def plugin_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An installed-looking distribution that registers an adapter through the entry-point group."""
    package = tmp_path / "derm_plugin_pkg"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from cloudderm.testing.fakes import FakeClassifier\n\n"
        "class PluginClassifier(FakeClassifier):\n    adapter = 'plugin-fake'\n"
    )
    dist = tmp_path / "derm_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: derm-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[cloudderm.adapters]\nplugin-fake = derm_plugin_pkg:PluginClassifier\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "plugin-fake"
    sys.modules.pop("derm_plugin_pkg", None)


def test_builtins_are_read_only() -> None:
    with pytest.raises(TypeError):
        BUILTIN_ADAPTERS["evil"] = BUILTIN_ADAPTERS["vertex"]  # type: ignore[index]
    assert list(adapter_names())[:5] == ["huggingface", "sagemaker", "azureml", "azureml-onnx", "vertex"]


def test_entry_point_plugin_is_discovered(plugin_dist: str) -> None:
    assert plugin_dist in adapter_names()
    cls = resolve_adapter(plugin_dist)
    assert issubclass(cls, FakeClassifier) and cls.adapter == "plugin-fake"


def test_dotted_path() -> None:
    assert resolve_adapter("cloudderm.testing.fakes:FakeClassifier") is FakeClassifier


def test_unknown_name_lists_valid_ones() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_adapter("nope")
    assert "valid adapters: huggingface, sagemaker, azureml, azureml-onnx, vertex" in str(info.value)


def test_not_a_classifier() -> None:
    with pytest.raises(ConfigError, match="is not a cloudderm Classifier"):
        resolve_adapter("cloudderm.retry:RetryPolicy")


def test_unimportable_dotted_path() -> None:
    with pytest.raises(ConfigError, match="cannot import"):
        resolve_adapter("no_such_module_xyz:Thing")


def test_missing_sdk_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    """A built-in adapter whose module cannot import its SDK names the exact pip extra."""
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == "cloudderm.adapters.vertex":
            raise ImportError("No module named 'google'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "cloudderm.adapters.vertex", raising=False)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    monkeypatch.setattr("importlib.import_module", lambda name: fake_import(name))
    with pytest.raises(MissingDependencyError) as info:
        resolve_adapter("vertex")
    assert 'pip install "cloudderm[gcp]"' in str(info.value)
    assert isinstance(info.value, ImportError)


def test_install_hint_text() -> None:
    assert install_hint("aws", "boto3 to use the SageMaker adapter") == (
        'Install boto3 to use the SageMaker adapter: pip install "cloudderm[aws]"'
    )
