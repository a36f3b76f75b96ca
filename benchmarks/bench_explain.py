"""Explanation throughput: maps per second per method on CPU, and calls per image for occlusion.

Models are untrained but realistically sized, built from configs (nothing downloaded): MobileNetV2
(224 px, depth 1.0, 1000 classes) for Grad-CAM, integrated gradients and occlusion, and a ViT-Small-like
ViT (224 px, patch 16, 384 wide, 12 layers) for rollout. Images: one bundled example prepared at HAM10000's
600x450. Each map is timed alone (checks off: ``deletion=False``), rounds interleaved; wall and process CPU
seconds are both reported (CPU time of this process is what a shared machine inflates least; ratios
above 1 mean several cores worked). Occlusion is timed against the local model, so its time is the cost
of preparing and classifying grid**2 + 1 images; against a cloud endpoint the network dominates, and
the call count, printed here, is what matters.

Run: ``python benchmarks/bench_explain.py [--rounds 3] [--grid 7]``
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _common import ROOT, header, interleaved_cpu, median_ms


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--grid", type=int, default=7)
    args = parser.parse_args()
    header("explain: maps per second (CPU) and occlusion calls per image")

    from PIL import Image

    from cloudderm.adapters.huggingface import HuggingFaceClassifier, HuggingFaceSettings
    from cloudderm.explain.api import Explainer, ExplainOptions
    from cloudderm.images import prepare
    from cloudderm.testing.hf_models import save_mobilenet_v2, save_vit

    with tempfile.TemporaryDirectory() as tmp:
        cnn = HuggingFaceClassifier(
            "cnn", HuggingFaceSettings(adapter="huggingface", model=str(save_mobilenet_v2(Path(tmp) / "cnn")))
        )
        vit = HuggingFaceClassifier(
            "vit", HuggingFaceSettings(adapter="huggingface", model=str(save_vit(Path(tmp) / "vit")))
        )
        with Image.open(ROOT / "examples" / "images" / "ISIC_0000000.jpg") as img:
            image = prepare(img.convert("RGB").resize((600, 450)))
        cases = {
            "gradcam (MobileNetV2)": (cnn, "gradcam"),
            "integrated-gradients 32 steps (MobileNetV2)": (cnn, "integrated-gradients"),
            "rollout (ViT-S/16)": (vit, "rollout"),
            f"occlusion {args.grid}x{args.grid} (MobileNetV2, local calls)": (cnn, "occlusion"),
        }
        explainers = {
            name: Explainer(ExplainOptions(method=m, deletion=False, grid=args.grid))
            for name, (_, m) in cases.items()
        }
        calls: dict[str, int] = {}

        def job(name: str):
            clf, _ = cases[name]
            explainer = explainers[name]

            def run() -> None:
                budget = explainer.plan([(image, clf)])
                exp = explainer.explain(budget.pairs[0])
                calls[name] = exp.images_sent + exp.cached_calls

            return run

        wall, cpu = interleaved_cpu({name: job(name) for name in cases}, rounds=args.rounds, warmup=1)
    print(
        f"   {'method':48} {'maps/s':>8} {'wall ms':>9} {'cpu ms':>9} {'cpu/wall':>9} {'maps/cpu-s':>10} "
        f"{'images sent':>12}"
    )
    for name in cases:
        wall_ms, cpu_ms = median_ms(wall[name]), median_ms(cpu[name])
        print(
            f"   {name:48} {1000.0 / wall_ms:8.2f} {wall_ms:9.0f} {cpu_ms:9.0f} {cpu_ms / wall_ms:9.2f} "
            f"{calls[name]:12d}"
        )
    print(
        f"   occlusion defaults: {args.grid}x{args.grid} tiles + 1 baseline = {args.grid**2 + 1} images "
        "per map, + 2 for the deletion check; one call each on SageMaker, fewer on batching adapters"
    )


if __name__ == "__main__":
    main()
