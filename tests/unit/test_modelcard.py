"""Model card parsing and prohibition detection (cloudderm.governance.modelcard)."""

from __future__ import annotations

import pytest

from cloudderm.facts import ModelFacts
from cloudderm.governance.modelcard import detect_prohibitions, parse_model_card, split_front_matter

# Same structure and front matter as the google/mobilenet_v2_1.0_224 card (wording paraphrased).
MOBILENET_CARD = """---
license: other
tags:
- vision
- image-classification
datasets:
- imagenet-1k
widget:
- src: https://example.org/tiger.jpg
  example_title: Tiger
---

# MobileNet V2

MobileNet V2 pre-trained on ImageNet-1k at 224x224.

## Model description

Small, low-latency, low-power models.

## Intended uses & limitations

You can use the raw model for image classification. Look on the [model hub](https://huggingface.co/models)
for fine-tuned versions on a task that interests you.

### How to use

```python
from transformers import AutoImageProcessor  # not a heading: # Intended use
```
"""

# Same structure as the Anwarkh1/Skin_Cancer-Image_Classification card (wording paraphrased).
SKIN_CARD = """---
license: apache-2.0
---
# Skin Cancer Image Classification Model

## Introduction

Classifies skin lesion images into seven categories.

## Dataset

- Dataset Name: Skin Cancer Dataset
- Source: [marmal88 on Hugging Face](https://huggingface.co/datasets/marmal88/skin_cancer)

## Training

- Optimizer: Adam
"""

TEMPLATE_CARD = """---
license: mit
datasets: [ham10000, isic-2019]
pipeline_tag: image-classification
base_model: google/vit-base-patch16-224-in21k
---
## Uses

### Direct Use

Research on dermoscopic image classification.

### Out-of-Scope Use

- Any **medical diagnosis**: this model is not intended for medical diagnosis.
- Surveillance.

## Bias, Risks, and Limitations

Trained mostly on light skin types.

## Training Details

[More Information Needed]
"""


def test_mobilenet_style_card() -> None:
    facts = parse_model_card(MOBILENET_CARD)
    assert facts["license"] == "other"
    assert facts["training_data"] == ["imagenet-1k"]
    assert facts["tags"] == ["vision", "image-classification"]
    assert facts["intended_use"] and facts["intended_use"].startswith("You can use the raw model")
    assert "model hub" in facts["intended_use"] and "](" not in facts["intended_use"]
    assert facts["prohibited_uses"] == []
    assert facts["known_biases"] is None


def test_skin_style_card_dataset_link_is_training_data() -> None:
    facts = parse_model_card(SKIN_CARD)
    assert facts["license"] == "apache-2.0"
    assert facts["training_data"] == ["marmal88/skin_cancer"]
    assert facts["intended_use"] is None
    assert facts["prohibited_uses"] == []


def test_template_card_sections() -> None:
    facts = parse_model_card(TEMPLATE_CARD)
    assert facts["training_data"] == ["ham10000", "isic-2019"]
    assert facts["pipeline_tag"] == "image-classification"
    assert facts["base_model"] == ["google/vit-base-patch16-224-in21k"]
    assert facts["intended_use"] == "Research on dermoscopic image classification."
    assert facts["out_of_scope_uses"] == [
        "Any medical diagnosis: this model is not intended for medical diagnosis.",
        "Surveillance.",
    ]
    assert facts["known_biases"] == "Trained mostly on light skin types."
    assert facts["prohibited_uses"] == ["medical-diagnosis"]
    model_facts = ModelFacts(**{k: v for k, v in facts.items() if k in ModelFacts.model_fields})
    assert model_facts.prohibited_uses == ["medical-diagnosis"]


def test_placeholder_sections_count_as_absent() -> None:
    card = (
        "# M\n\n## Intended uses & limitations\n\nMore information needed\n\n"
        "## Uses\n\n[More Information Needed]\n"
    )
    assert parse_model_card(card)["intended_use"] is None


def test_license_other_with_name() -> None:
    assert (
        parse_model_card("---\nlicense: other\nlicense_name: acme-rail\n---\n")["license"]
        == "other: acme-rail"
    )


@pytest.mark.parametrize(
    "text",
    [
        "This model is not intended for medical diagnosis.",
        "Do not use this model for medical diagnosis.",
        "NOT FOR CLINICAL USE",
        "It should not be used for clinical decision-making.",
        "**Not** for\nclinical use.",
        "This is not a medical device.",
        "It is not a substitute for professional medical advice.",
        "The model must not be used in clinical practice.",
        "not intended for use in medical diagnosis or treatment",
        "Not intended to diagnose any disease.",
        "It shouldn't be used for medical diagnosis.",
        "Not for diagnostic purposes.",
        "This model should not be used to diagnose skin cancer.",
    ],
)
def test_prohibitions_detected(text: str) -> None:
    assert detect_prohibitions(text) == ["medical-diagnosis"]


@pytest.mark.parametrize(
    "text",
    [
        "This model is intended for medical diagnosis research.",
        "It can support clinical decision making.",
        "You can use the raw model for image classification.",
        "Designed for clinical use.",
        "The model is designed to assist in the early detection of skin cancer.",
        "",
    ],
)
def test_no_false_prohibitions(text: str) -> None:
    assert detect_prohibitions(text) == []


@pytest.mark.parametrize(
    "text", ["", "no front matter", "---\n: : not yaml [\n---\nbody", "---\n- a list\n---\n"]
)
def test_odd_cards_never_raise(text: str) -> None:
    meta, _ = split_front_matter(text)
    assert isinstance(meta, dict)
    facts = parse_model_card(text)
    assert facts["license"] is None and facts["training_data"] == []
