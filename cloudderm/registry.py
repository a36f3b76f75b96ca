"""Adapter names -> classes, imported only when first used.

Built-in adapters are a read-only table of dotted paths (so ``import cloudderm`` stays light and a missing
cloud SDK only matters for the adapter that needs it). Third parties add adapters through the entry-point
group ``cloudderm.adapters``; a config may also name a class directly as ``"package.module:Class"``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from cloudderm.errors import ConfigError, MissingDependencyError, install_hint

if TYPE_CHECKING:
    from cloudderm.classifier import Classifier

__all__ = ["BUILTIN_ADAPTERS", "AdapterSpec", "adapter_names", "install_hint", "resolve_adapter"]

ENTRY_POINT_GROUP = "cloudderm.adapters"


@dataclass(frozen=True)
class AdapterSpec:
    """Where an adapter lives and which extra installs what it needs."""

    target: str
    extra: str | None
    description: str


BUILTIN_ADAPTERS: Mapping[str, AdapterSpec] = MappingProxyType(
    {
        "huggingface": AdapterSpec(
            "cloudderm.adapters.huggingface:HuggingFaceClassifier", "hf", "local transformers model"
        ),
        "sagemaker": AdapterSpec(
            "cloudderm.adapters.sagemaker:SageMakerClassifier", "aws", "AWS SageMaker real-time endpoint"
        ),
        "azureml": AdapterSpec(
            "cloudderm.adapters.azureml:AzureMLClassifier", "azure", "Azure ML managed online endpoint"
        ),
        "azureml-onnx": AdapterSpec(
            "cloudderm.adapters.azureml_onnx:AzureMLOnnxClassifier", "onnx", "Azure AutoML ONNX export, local"
        ),
        "vertex": AdapterSpec(
            "cloudderm.adapters.vertex:VertexClassifier", "gcp", "Google Vertex AI endpoint"
        ),
        "openai": AdapterSpec(
            "cloudderm.adapters.openai_vlm:OpenAIClassifier",
            "openai",
            "vision-language model via OpenAI / Azure OpenAI / OpenAI-compatible chat completions",
        ),
        "anthropic": AdapterSpec(
            "cloudderm.adapters.anthropic_vlm:AnthropicClassifier",
            "anthropic",
            "vision-language model via the Anthropic Messages API",
        ),
        "bedrock": AdapterSpec(
            "cloudderm.adapters.bedrock_vlm:BedrockClassifier",
            "bedrock",
            "vision-language model via Amazon Bedrock Converse",
        ),
        "gemini": AdapterSpec(
            "cloudderm.adapters.gemini_vlm:GeminiClassifier",
            "gemini",
            "vision-language model via Gemini generateContent (Gemini API or Vertex AI)",
        ),
        "paligemma": AdapterSpec(
            "cloudderm.adapters.paligemma:PaliGemmaClassifier",
            "hf",
            "local PaliGemma vision-language model (transformers image-to-text)",
        ),
        "zoo": AdapterSpec(
            "cloudderm.adapters.zoo:ZooClassifier", "zoo", "built-in trained model from a PyPI wheel, local"
        ),
        "custom-vision": AdapterSpec(
            "cloudderm.adapters.custom_vision:CustomVisionClassifier", "custom-vision", "Azure Custom Vision"
        ),
        "cloud-vision": AdapterSpec(
            "cloudderm.adapters.cloud_vision:CloudVisionClassifier",
            "cloud-vision",
            "Google Cloud Vision labels",
        ),
        "rekognition": AdapterSpec(
            "cloudderm.adapters.rekognition:RekognitionClassifier", "aws", "AWS Rekognition (Custom) Labels"
        ),
        "hf-inference": AdapterSpec(
            "cloudderm.adapters.hf_inference:HFInferenceClassifier", "hf-inference", "Hugging Face Inference"
        ),
        "kserve": AdapterSpec(
            "cloudderm.adapters.kserve:KServeClassifier",
            "kserve",
            "Open Inference Protocol (KServe v2) server",
        ),
        "mlflow": AdapterSpec(
            "cloudderm.adapters.mlflow_model:MlflowClassifier", "mlflow", "MLflow pyfunc or model server"
        ),
    }
)


def _entry_points() -> dict[str, str]:
    """Third-party adapters; read on demand because importlib.metadata is slow to import."""
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def adapter_names() -> list[str]:
    """Every adapter name a config may use: built-ins first, then plugins."""
    plugins = sorted(n for n in _entry_points() if n not in BUILTIN_ADAPTERS)
    return [*BUILTIN_ADAPTERS, *plugins]


def _target_for(name: str) -> str:
    if name in BUILTIN_ADAPTERS:
        return BUILTIN_ADAPTERS[name].target
    plugins = _entry_points()
    if name in plugins:
        return plugins[name]
    if ":" in name:
        return name
    valid = ", ".join(adapter_names())
    raise ConfigError(f"unknown adapter {name!r}; valid adapters: {valid}", field="adapter")


def resolve_adapter(name: str) -> type[Classifier]:
    """Import and return the Classifier class registered under ``name``.

    Raises:
        ConfigError: the name is unknown (the message lists the valid ones) or does not name a Classifier.
        MissingDependencyError: the adapter's module needs an SDK that is not installed.
    """
    from cloudderm.classifier import Classifier

    target = _target_for(name)
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except MissingDependencyError:
        raise
    except ImportError as e:
        spec = BUILTIN_ADAPTERS.get(name)
        if spec and spec.extra:
            raise MissingDependencyError(install_hint(spec.extra, f"the {name} adapter's SDK")) from e
        raise ConfigError(f"adapter {name!r}: cannot import {module_name} ({e})", field="adapter") from e
    cls = getattr(module, attr, None) if attr else None
    if not (isinstance(cls, type) and issubclass(cls, Classifier)):
        raise ConfigError(f"adapter {name!r}: {target} is not a cloudderm Classifier class", field="adapter")
    return cls
