"""The runner's real preparation path on a 24-megapixel camera JPEG, against a naive decode + encode.

Run: ``python benchmarks/bench_prepare.py [--rounds 7] [--baseline REV]``

What is timed is what ``compare`` does for each image: ``prepare(data, max_bytes=<provider limit>)`` with
each remote provider's own limit (SageMaker 6 MiB, Azure ML's 1.5 MB request less base64 and JSON, Vertex
AI's 1.5 MB request less base64 and JSON), plus ``max_side=1024`` (the report thumbnails). The reference is
the least any code can do with the picture: decode every pixel once and encode one JPEG at quality 90.
``--baseline REV`` also times ``cloudderm/images.py`` as it was at git revision REV (loaded from
``git show`` into a temporary module), in the same interleaved rounds, so before and after share one load.

The test image is a real dermoscopic photo from ``examples/images`` upscaled to 6000x4000 with sensor-like
noise and saved at quality 92 with EXIF, so its size and entropy resemble a phone or DSLR picture rather
than a flat colour (which would decode unrealistically fast).

Goal: CPU to prepare under the Vertex AI limit (1,124,850 bytes) <= 0.5x the naive decode + encode.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable
from typing import Any

from _common import ROOT, cpu_table, header, interleaved_cpu, load_revision, median_ms, verdict


def camera_jpeg(width: int = 6000, height: int = 4000) -> bytes:
    import numpy as np
    from PIL import Image

    with Image.open(ROOT / "examples" / "images" / "ISIC_0000026.jpg") as src:
        base = src.convert("RGB").resize((width, height), Image.Resampling.BICUBIC)
    rng = np.random.default_rng(0)
    pixels = np.asarray(base, dtype=np.int16)
    pixels += rng.integers(-6, 7, size=pixels.shape, dtype=np.int16)
    noisy = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    exif = Image.Exif()
    exif[0x010F] = "BenchCamera"
    exif[0x0112] = 1
    buf = io.BytesIO()
    noisy.save(buf, format="JPEG", quality=92, exif=exif.tobytes())
    return buf.getvalue()


def naive(data: bytes) -> bytes:
    """The floor for code that looks at every pixel: one full decode, one JPEG encode at quality 90."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        img.load()
        out = io.BytesIO()
        img.save(out, format="JPEG", quality=90)
    return out.getvalue()


def provider_limits() -> dict[str, dict[str, int]]:
    """Each remote adapter's own ``image_limits()`` (built from settings alone; nothing is called)."""
    from cloudderm.adapters.azureml import AzureMLClassifier, AzureMLSettings
    from cloudderm.adapters.sagemaker import SageMakerClassifier, SageMakerSettings
    from cloudderm.adapters.vertex import VertexClassifier, VertexSettings

    classifiers = {
        "sagemaker": SageMakerClassifier("s", SageMakerSettings(endpoint_name="bench", region="eu-west-2")),
        "azureml": AzureMLClassifier(
            "a", AzureMLSettings(scoring_uri="https://x.invalid/score", api_key="k")
        ),
        "vertex": VertexClassifier(
            "v", VertexSettings(project="p", location="europe-west2", endpoint_id="1", anonymous=True)
        ),
    }
    limits = {
        name: {"max_bytes": int(clf.image_limits().max_bytes or 0)} for name, clf in classifiers.items()
    }
    limits["thumbnail"] = {"max_side": 1024}
    return limits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--baseline", help="git revision whose cloudderm/images.py is timed alongside")
    args = parser.parse_args()
    from cloudderm.images import prepare

    header("prepare a 6000x4000 camera JPEG for each provider's limit")
    data = camera_jpeg()
    print(f"   input {len(data) / 1e6:.2f} MB")
    old: Any = load_revision("cloudderm/images.py", args.baseline) if args.baseline else None
    fns: dict[str, Callable[[], object]] = {"naive decode + encode q90": lambda: naive(data)}
    limits = provider_limits()
    for name, limit in limits.items():
        out = prepare(data, **limit)
        print(f"   {name:9} {limit}: {out.width}x{out.height}, {out.size_bytes:,} B")
        fns[f"prepare {name}"] = lambda limit=limit: prepare(data, **limit)
        if old is not None:
            before = old.prepare(data, **limit)
            print(
                f"   {'':9} before ({args.baseline}): {before.width}x{before.height}, {before.size_bytes:,} B"
            )
            fns[f"before {name}"] = lambda limit=limit: old.prepare(data, **limit)
    wall, cpu = interleaved_cpu(fns, rounds=args.rounds, warmup=1)
    naive_cpu = median_ms(cpu["naive decode + encode q90"])
    cpu_table(wall, cpu, reference="naive decode + encode q90", rounds=args.rounds)
    vertex_cpu = median_ms(cpu["prepare vertex"])
    verdict(
        "prepare under the Vertex AI limit, CPU vs naive",
        vertex_cpu / naive_cpu,
        0.5,
        "x",
        key="prepare_vertex_cpu_ratio",
        detail=f"6000x4000 JPEG: {vertex_cpu:.0f} ms CPU vs naive decode + encode {naive_cpu:.0f} ms",
    )
    if old is not None:
        verdict(
            f"prepare under the Vertex AI limit, CPU vs before ({args.baseline})",
            vertex_cpu / median_ms(cpu["before vertex"]),
            0.5,
            "x",
            key="prepare_vertex_cpu_vs_before",
            detail=f"{vertex_cpu:.0f} ms CPU now vs {median_ms(cpu['before vertex']):.0f} ms before",
        )


if __name__ == "__main__":
    main()
