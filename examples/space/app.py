"""A Hugging Face Space (or any machine) running ``cloudderm app`` on the bundled example images.

Providers: the two seed models of the demo, run locally: an ImageNet MobileNetV2 (out of domain on
purpose: its cards carry the warning) and a skin-lesion ViT. When the real weights are neither cached
nor downloadable within a few seconds, untrained stand-ins of the same architectures are built, and the
page says so above everything else: their numbers show the pipeline, never a model's skill.
"""

from __future__ import annotations

import os
from pathlib import Path

from cloudderm.app.server import launch
from cloudderm.config import parse_config
from cloudderm.demo import UNTRAINED_WARNING, find_examples, resolve_models

HERE = Path(__file__).resolve().parent


def main() -> None:
    models = resolve_models(note=print)
    config = parse_config(
        {
            "policy": {"allowed_regions": ["local"], "intended_use": "research"},
            "providers": {
                "imagenet-mobilenet": {"adapter": "huggingface", "model": models.mobilenet},
                "skin-vit": {"adapter": "huggingface", "model": models.skin_vit},
            },
        },
        source="examples/space/app.py",
    )
    notice = f"models: {models.origin}." + (f" {UNTRAINED_WARNING.capitalize()}." if models.untrained else "")
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
