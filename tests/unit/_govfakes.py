"""Fake cloud providers for pricing/governance tests: the FakeClassifier under a cloud adapter's name.

They carry the settings names the real adapters use (``instance_type``/``instance_count``/``region``,
``machine_type``/``node_count``/``location``/``response_format``) and report a cloud vendor, so pricing and
governance see exactly what a real adapter would give them, with no SDK and no network. Config files name
them as ``adapter: "tests.unit._govfakes:FakeVertex"``. Each borrows the real adapter's ``price_query``, so
pricing is tested against the very query the real adapter declares.
"""

from __future__ import annotations

from typing import Any

from cloudderm.adapters.azureml import AzureMLClassifier
from cloudderm.adapters.sagemaker import SageMakerClassifier
from cloudderm.adapters.vertex import VertexClassifier
from cloudderm.facts import ModelFacts, ServiceFacts
from cloudderm.testing.fakes import FakeClassifier, FakeSettings

MOBILENET_V2_INTENDED_USE = (
    "You can use the raw model for image classification. See the model hub to look for fine-tuned versions "
    "on a task that interests you."
)  # google/mobilenet_v2_1.0_224 README, "Intended uses & limitations"
MOBILENET_V2_README = "https://huggingface.co/google/mobilenet_v2_1.0_224/blob/main/README.md"


class CloudSettings(FakeSettings):
    """FakeSettings plus the settings names the real cloud adapters use."""

    region: str | None = None
    instance_type: str | None = None
    instance_count: int = 1
    machine_type: str | None = None
    node_count: int = 1
    location: str | None = None
    response_format: str = "automl"
    card_facts: dict[str, Any] | None = None  # what the adapter would read from the model's own card


class _CloudFake(FakeClassifier):
    vendor = "local"
    service = "fake cloud service"
    Settings = CloudSettings

    def service_facts(self) -> ServiceFacts:
        s = self.settings
        return ServiceFacts(
            service=self.service,
            vendor=self.vendor,
            region=getattr(s, "location", None) or s.region,
            data_leaves_machine=True,
        )

    def model_facts(self) -> ModelFacts:
        facts = dict(getattr(self.settings, "card_facts", None) or {})
        facts.setdefault("model_id", self.model_id)
        return ModelFacts(**facts)


class FakeSageMaker(_CloudFake):
    adapter = "sagemaker"
    vendor = "aws"
    service = "Amazon SageMaker real-time inference"
    price_query = SageMakerClassifier.price_query


class FakeAzureML(_CloudFake):
    adapter = "azureml"
    vendor = "azure"
    service = "Azure ML managed online endpoint"
    price_query = AzureMLClassifier.price_query


class FakeVertex(_CloudFake):
    adapter = "vertex"
    vendor = "gcp"
    service = "Vertex AI endpoint"
    price_query = VertexClassifier.price_query


class FakeLocalWithCard(FakeClassifier):
    """A local model whose own card (as an HF adapter would read it) is given in settings."""

    Settings = CloudSettings

    def model_facts(self) -> ModelFacts:
        facts = dict(self.settings.card_facts or {})  # type: ignore[attr-defined]
        facts.setdefault("model_id", self.model_id)
        return ModelFacts(**facts)
