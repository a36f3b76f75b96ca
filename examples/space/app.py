"""A Hugging Face Space (or any machine) running ``cloudderm app`` on the bundled example images.

Providers, run locally: the built-in trained models (``cloudderm models fetch --all``: a HAM10000
Xception and an ImageNet EfficientNet-Lite0, out of domain on purpose, its cards carry the warning) when
they are fetched; otherwise the demo's two seed models (an ImageNet MobileNetV2 and a skin-lesion ViT),
or, when those are neither cached nor downloadable, untrained stand-ins of the same architectures. The
page says which above everything else: a stand-in's numbers show the pipeline, never a model's skill.
"""

from __future__ import annotations

import os
from pathlib import Path

from cloudderm.app.server import launch
from cloudderm.config import parse_config
from cloudderm.demo import UNTRAINED_WARNING, find_examples, resolve_models

HERE = Path(__file__).resolve().parent


def providers_and_notice() -> tuple[dict[str, dict[str, str]], str]:
    """The built-in models when fetched, else the demo's models or stand-ins; and what to announce."""
    try:
        from cloudderm.models.cards import CARDS
        from cloudderm.models.store import is_ready

        ready = [name for name, card in CARDS.items() if is_ready(card)]
    except ImportError:  # the zoo extra is not installed
        ready = []
    if ready:
        return {name: {"adapter": "zoo", "model": name} for name in ready}, (
            "models: the built-in trained models (cloudderm models). Neither is a medical device."
        )
    models = resolve_models(note=print)
    untrained = f" {UNTRAINED_WARNING.capitalize()}." if models.untrained else ""
    providers = {
        "imagenet-mobilenet": {"adapter": "huggingface", "model": models.mobilenet},
        "skin-vit": {"adapter": "huggingface", "model": models.skin_vit},
    }
    return providers, f"models: {models.origin} (the built-in models are not fetched).{untrained}"


def main() -> None:
    providers, notice = providers_and_notice()
    config = parse_config(
        {"policy": {"allowed_regions": ["local"], "intended_use": "research"}, "providers": providers},
        source="examples/space/app.py",
    )
    print(notice)
    images = (
        HERE / "images" if (HERE / "images").is_dir() else HERE.parent / "images"
    )  # copied, or the repo's
    examples, _ = find_examples(images)
    launch(
        config,
        host=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        # A Space is public behind Hugging Face's own proxy; anywhere else, keep loopback or use an auth file.
        insecure_public=os.environ.get("SPACE_ID") is not None,
        auth_file=os.environ.get("CLOUDDERM_AUTH_FILE"),
        examples=examples.resolve(),
        notice=notice,
    )


if __name__ == "__main__":
    main()
