"""Preparing a 24-megapixel camera JPEG for a model: draft (DCT-scaled) decoding vs a naive full decode.

Run: ``python benchmarks/bench_prepare.py [--max-side 1024] [--rounds 9]``

Goal: ``cloudderm.images.prepare(data, max_side=1024)`` on a 6000x4000 JPEG in <= 60 ms, against ~190 ms
for the naive path (decode every pixel, orient, convert, LANCZOS thumbnail, re-encode). The test image is a
real dermoscopic photo from ``examples/images`` upscaled to 6000x4000 with sensor-like noise and saved at
quality 92 with EXIF, so its size and entropy resemble a phone or DSLR picture rather than a flat colour
(which would decode unrealistically fast).
"""

from __future__ import annotations

import argparse
import io

from _common import ROOT, header, interleaved_cpu, median_ms, verdict


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


def naive(data: bytes, max_side: int) -> bytes:
    """What code without draft decoding does: full decode, orient, RGB, thumbnail, re-encode."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as img:
        img.load()
        rgb = (ImageOps.exif_transpose(img) or img).convert("RGB")
    rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    rgb.info = {}
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=95)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-side", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    from cloudderm.images import prepare

    header(f"prepare a 6000x4000 JPEG with max_side={args.max_side}")
    data = camera_jpeg()
    prepared = prepare(data, max_side=args.max_side)
    size = f"{prepared.width}x{prepared.height}, {prepared.size_bytes:,} B"
    print(f"   input {len(data) / 1e6:.1f} MB; prepared {size}")
    wall, cpu = interleaved_cpu(
        {
            "prepare": lambda: prepare(data, max_side=args.max_side),
            "naive": lambda: naive(data, args.max_side),
        },
        rounds=args.rounds,
        warmup=1,
    )
    draft_wall, naive_wall = median_ms(wall["prepare"]), median_ms(wall["naive"])
    draft_cpu, naive_cpu = median_ms(cpu["prepare"]), median_ms(cpu["naive"])
    print(f"   medians over {args.rounds} interleaved runs   wall        CPU")
    print(f"   prepare (draft decoding)         {draft_wall:7.1f} ms  {draft_cpu:7.1f} ms")
    print(f"   naive full decode + resize       {naive_wall:7.1f} ms  {naive_cpu:7.1f} ms")
    print(f"   speed-up: {naive_wall / draft_wall:.2f}x wall, {naive_cpu / draft_cpu:.2f}x CPU")
    verdict("prepare, CPU time (what an idle core takes)", draft_cpu, 60, " ms")
    verdict("prepare, wall time", draft_wall, 60, " ms")
    verdict(
        "speed-up over naive, CPU (goal ratio ~190/60)",
        naive_cpu / draft_cpu,
        190 / 60,
        "x",
        higher_is_better=True,
    )


if __name__ == "__main__":
    main()
