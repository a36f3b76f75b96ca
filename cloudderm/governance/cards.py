"""Build a provider's governance card: adapter facts + sourced vendor facts + the user's model card.

Order of trust: the adapter says where images go and what the model's own card says; ``providers.yaml``
adds the vendor's dated statements; the ``model_card:`` mapping in the provider's config settings wins over
both for the model, because for a cloud endpoint only the user knows what was deployed. The card's
warnings (prohibited uses, out-of-domain labels) are what every Prediction of that provider carries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from cloudderm.errors import config_error_from
from cloudderm.facts import GovernanceCard, ModelFacts
from cloudderm.governance.facts import lookup

if TYPE_CHECKING:
    from cloudderm.classifier import Classifier
    from cloudderm.taxonomy import Taxonomy

__all__ = ["ModelCardOverride", "attach_card_warnings", "build_card", "card_warnings", "slug"]

IMAGENET_WARNING = "labels are ImageNet classes: out-of-domain for dermatology"


def slug(text: str) -> str:
    """Compare use names loosely: 'Medical diagnosis', 'medical_diagnosis' and 'medical-diagnosis' match."""
    return "-".join(text.strip().lower().replace("_", " ").replace("-", " ").split())


class ModelCardOverride(BaseModel):
    """The ``model_card:`` mapping of a provider; every field given replaces the adapter's."""

    model_config = ConfigDict(extra="forbid")

    intended_use: str | None = None
    out_of_scope_uses: list[str] | None = None
    prohibited_uses: list[str] | None = None
    training_data: list[str] | None = None
    license: str | None = None
    known_biases: str | None = None
    label_domain: Literal["in-domain", "out-of-domain", "unknown"] | None = None
    labels: list[str] | None = None
    source: str | None = None

    @field_validator("out_of_scope_uses", "prohibited_uses", "training_data", "labels", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


def _apply_override(name: str, model: ModelFacts, raw: Mapping[str, Any] | None) -> ModelFacts:
    if not raw:
        return model
    try:
        override = ModelCardOverride.model_validate(dict(raw))
    except ValidationError as e:
        raise config_error_from(e, provider=name, prefix="model_card") from None
    update = override.model_dump(exclude_none=True)
    if "source" not in update:
        own = f"config: providers.{name}.model_card"
        update["source"] = f"{model.source}; {own}" if model.source and own not in model.source else own
    return model.model_copy(update=update)


def _infer_label_domain(model: ModelFacts, taxonomy: Taxonomy) -> ModelFacts:
    """Fill an unknown label domain from the model's labels or training data (never from free text).

    The only place a label domain is worked out (``Taxonomy.label_domain``'s rule); adapters report labels,
    and a ``model_card: {label_domain: ...}`` setting wins.
    """
    if model.label_domain != "unknown":
        return model
    if model.labels:
        return model.model_copy(update={"label_domain": taxonomy.label_domain(model.labels)})
    if _trained_on_imagenet(model):
        return model.model_copy(update={"label_domain": "out-of-domain"})
    return model


def _trained_on_imagenet(model: ModelFacts) -> bool:
    """Trained only on ImageNet (1k/21k): its labels are objects and animals, not lesions.

    Only when *every* listed dataset is ImageNet: a model fine-tuned on lesion images from an ImageNet
    backbone lists both, and is not out of domain for that reason.
    """
    return bool(model.training_data) and all(
        "imagenet" in slug(d).replace("-", "") for d in model.training_data
    )


GENERAL_PURPOSE_WARNING = (
    "general-purpose vision-language model: images go to a general-purpose model provider; no medical "
    "intended use; its scores are not calibrated probabilities"
)


def card_warnings(card: GovernanceCard, taxonomy_name: str = "ham10000") -> list[str]:
    """The warnings every Prediction of this provider carries: prohibited uses and out-of-domain labels."""
    warnings = [
        f"model card prohibits {slug(use).replace('-', ' ')} use" for use in card.model.prohibited_uses
    ]
    if card.service.general_purpose_model:
        warnings.append(GENERAL_PURPOSE_WARNING)
    if card.model.label_domain == "out-of-domain":
        if _trained_on_imagenet(card.model):
            warnings.append(IMAGENET_WARNING)
        else:
            warnings.append(
                f"model labels are outside the {taxonomy_name} taxonomy: out-of-domain for dermatology"
            )
    return list(dict.fromkeys(warnings))


def build_card(classifier: Classifier) -> GovernanceCard:
    """The card for one configured provider: service, vendor and model facts, plus its warnings."""
    service = classifier.service_facts()
    model = classifier.model_facts() or ModelFacts(model_id=classifier.model_id)
    if model.model_id is None:
        model = model.model_copy(update={"model_id": classifier.model_id})
    model = _apply_override(classifier.name, model, getattr(classifier.settings, "model_card", None))
    model = _infer_label_domain(model, classifier.taxonomy)
    vendor, svc = lookup(service.vendor, classifier.adapter) if service.data_leaves_machine else (None, None)
    card = GovernanceCard(
        provider=classifier.name,
        adapter=classifier.adapter,
        service=service,
        model=model,
        baa_available=vendor.baa_available.to_fact() if vendor and vendor.baa_available else None,
        hipaa_eligible=svc.hipaa_eligible.to_fact() if svc and svc.hipaa_eligible else None,
        certifications=svc.certifications.to_fact() if svc and svc.certifications else None,
        data_retention=svc.data_retention.to_fact() if svc and svc.data_retention else None,
        training_use=svc.training_use.to_fact() if svc and svc.training_use else None,
    )
    card.warnings = card_warnings(card, classifier.taxonomy.name)
    return card


def attach_card_warnings(classifier: Classifier) -> list[str]:
    """Put the card's warnings into ``classifier.standing_warnings`` so every Prediction carries them."""
    warnings = classifier.governance.warnings
    classifier.standing_warnings.extend(w for w in warnings if w not in classifier.standing_warnings)
    return warnings
