"""Local inference throughput: the ``huggingface`` adapter (torch and onnx) vs ``transformers.pipeline``.

Same model folder, same images, one process, rounds interleaved so machine noise hits every contender
alike; the figure of merit is the *ratio* to ``pipeline("image-classification")`` measured in this run.

Models are untrained but realistically sized, built from configs (nothing is downloaded):
MobileNetV2 with the default config (224 px, depth 1.0, 1000 classes) and a ViT-Small-like ViT (224 px,
patch 16, 384 wide, 12 layers, 6 heads, the 7 marmal88 labels). Images: the shared lesion photos when
``../shared/data/images`` exists, else synthetic JPEGs; each is prepared once by ``cloudderm.images.prepare``
and resized to ``--size`` (HAM10000's 600x450 by default). The adapter is timed on ``classify_prepared``
(what the compare runner calls: images are prepared once for all providers); the pipeline gets the same
JPEG bytes as files. Goals (issue 9): onnx >= 5x the pipeline for MobileNetV2 on CPU, >= 1.3x for the ViT.
Goal (issue 15): the onnx adapter's CPU per image >= 25% less than before, on the same images.

Threads are pinned (``--threads``, default 1, for torch's intra- and inter-op pools and ONNX Runtime's
intra-op pool), so CPU ms per image measures the code rather than how many idle cores the machine had.
For the before/after figure, run once with ``CLOUDDERM_BENCH_CODE`` pointing at a checkout of the old code
(recorded as ``..._before``), then again on this checkout, which reports the ratio:

    git worktree add /tmp/before main
    CLOUDDERM_BENCH_CODE=/tmp/before python benchmarks/bench_local_inference.py --models mobilenet
    python benchmarks/bench_local_inference.py --models mobilenet

Run: ``python benchmarks/bench_local_inference.py [--images 32] [--rounds 12] [--threads N] [--models ...]``
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import BEFORE, ROOT, load_results, record, verdict  # puts the code under test on sys.path

REPO = ROOT

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402
from rich.table import Table  # noqa: E402

from cloudderm.images import PreparedImage, prepare  # noqa: E402

SHARED_IMAGES = REPO.parent / "shared" / "data" / "images"
GOALS = {"mobilenet": 5.0, "vit": 1.3}


def _load() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def make_images(count: int, size: tuple[int, int]) -> list[PreparedImage]:
    """Prepared JPEGs of ``size``: real lesion photos when available, else seeded synthetic ones."""
    sources = sorted(SHARED_IMAGES.glob("*.jpg")) + sorted(SHARED_IMAGES.glob("*.png"))
    rng = np.random.default_rng(7)
    out = []
    for i in range(count):
        if sources:
            image = Image.open(sources[i % len(sources)]).convert("RGB")
        else:
            image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
        image = image.resize(size, Image.Resampling.BILINEAR)
        if i >= len(sources):  # distinct bytes for repeats
            image.putpixel((i % size[0], 0), (i % 256, 0, 0))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        out.append(prepare(buffer.getvalue(), source=f"bench-{i}"))
    return out


def build_models(root: Path) -> dict[str, Path]:
    from cloudderm.emulate.models import save_mobilenet_v2, save_vit

    return {
        "mobilenet": save_mobilenet_v2(
            root / "mobilenet_v2", labels=[f"imagenet_class_{i}" for i in range(1000)]
        ),
        "vit": save_vit(root / "vit_small"),
    }


def contenders(
    model_dir: Path, cache: Path, batch: int, threads: int | None
) -> dict[str, tuple[Callable, Callable]]:
    """name -> (setup, run(images, paths)); setup returns the object run needs and is not timed."""
    from transformers import pipeline

    from cloudderm.config import parse_config
    from cloudderm.factory import build_classifier

    def adapter(runtime: str) -> Callable:
        def setup():
            settings = {
                "adapter": "huggingface",
                "model": str(model_dir),
                "runtime": runtime,
                "batch_size": batch,
            }
            if runtime == "onnx":
                settings["onnx_cache_dir"] = str(cache)
                settings["onnx_threads"] = threads
            config = parse_config({"providers": {"bench": settings}})
            classifier = build_classifier("bench", config)
            started = time.perf_counter()
            details = classifier.runtime_details  # loads (and for onnx: exports + verifies) once, untimed
            details["load_s"] = time.perf_counter() - started
            return classifier, details

        return setup

    def run_adapter(obj, images, paths):
        return obj[0].classify_prepared(images)

    def pipe(batch_size: int) -> tuple[Callable, Callable]:
        def setup():
            return pipeline("image-classification", model=str(model_dir), device="cpu"), {}

        def run(obj, images, paths):
            return obj[0]([str(p) for p in paths], batch_size=batch_size)

        return setup, run

    return {
        "pipeline": pipe(1),
        f"pipeline (batch_size={batch})": pipe(batch),
        "adapter torch": (adapter("torch"), run_adapter),
        "adapter onnx": (adapter("onnx"), run_adapter),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=12, help="interleaved chunks per contender")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", default="600x450", help="WxH of the test images")
    parser.add_argument("--models", default="mobilenet,vit")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="intra-op threads for torch and ONNX Runtime, pinned (default 1)",
    )
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    console = Console()
    import torch
    import transformers

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    source = "shared lesion photos" if SHARED_IMAGES.is_dir() else "synthetic"
    console.print(
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"transformers {transformers.__version__}, {args.images} images {width}x{height} ({source}), "
        f"{args.rounds} interleaved chunks of {args.batch}, median reported, load average {_load()}"
    )
    images = make_images(args.images, (width, height))
    with tempfile.TemporaryDirectory(prefix="cloudderm-bench-") as tmp:
        root = Path(tmp)
        paths = []
        for i, image in enumerate(images):
            paths.append(root / f"img{i}.jpg")
            paths[-1].write_bytes(image.data)
        models = build_models(root / "models")
        for key in args.models.split(","):
            run_model(console, key, models[key], root / "onnx", images, paths, args)


def run_model(console: Console, key: str, model_dir: Path, cache: Path, images, paths, args) -> None:
    """Time every contender on the same chunks of images, chunk by chunk in rotating order.

    Short interleaved chunks (rather than one long run per contender) spread the bursts of other load on
    a shared machine evenly over the contenders; the median chunk is reported.
    """
    plan = contenders(model_dir, cache, args.batch, args.threads)
    ready = {}
    for name, (setup, run) in plan.items():
        obj = setup()
        run(obj, images[: args.batch], paths[: args.batch])  # warm-up
        ready[name] = (obj, run)
    names = list(ready)
    rates: dict[str, list[float]] = {name: [] for name in names}
    cpu_ms: dict[str, list[float]] = {name: [] for name in names}
    chunk = args.batch
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(key, total=args.rounds * len(names))
        for r in range(args.rounds):
            start = (r * chunk) % len(images)
            part, part_paths = images[start : start + chunk], paths[start : start + chunk]
            for name in names[r % len(names) :] + names[: r % len(names)]:
                obj, run = ready[name]
                wall, cpu = time.perf_counter(), time.process_time()
                run(obj, part, part_paths)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                rates[name].append(len(part) / wall)
                cpu_ms[name].append(cpu * 1000 / len(part))
                progress.advance(task)
    baseline = statistics.median(rates["pipeline"])
    table = Table(title=f"{key}: median of {args.rounds} interleaved chunks of {chunk} images")
    for column in ("contender", "images/s", "ratio", "CPU ms/image", "notes"):
        table.add_column(column, justify="left" if column in ("contender", "notes") else "right")
    for name in names:
        details = ready[name][0][1]
        notes = ", ".join(
            f"{k}={v:.1f}s" if k == "load_s" else f"{k}={v}"
            for k, v in details.items()
            if k in ("preprocessing", "onnx_exported_now", "load_s")
        )
        median = statistics.median(rates[name])
        table.add_row(
            name,
            f"{median:.1f}",
            f"{median / baseline:.2f}x",
            f"{statistics.median(cpu_ms[name]):.0f}",
            notes,
        )
    console.print(table)
    onnx_ratio = statistics.median(rates["adapter onnx"]) / baseline
    onnx_cpu = statistics.median(cpu_ms["adapter onnx"])
    onnx_rate = statistics.median(rates["adapter onnx"])
    threads = f"{args.threads} thread{'s' if args.threads > 1 else ''}"
    verdict(
        f"{key}: adapter onnx / pipeline, images/s",
        onnx_ratio,
        GOALS[key],
        "x",
        higher_is_better=True,
        key=f"local_{key}_onnx_vs_pipeline",
        detail=f"onnx {onnx_rate:.1f} img/s, pipeline {baseline:.1f} img/s, {threads}",
    )
    console.print(f"   {key}: adapter onnx CPU per image {onnx_cpu:.1f} ms ({threads})")
    record(f"local_{key}_onnx_cpu_ms", label=f"{key}: adapter onnx CPU per image", value=onnx_cpu, unit=" ms")
    before = load_results().get(f"local_{key}_onnx_cpu_ms_before")
    if not BEFORE and before:
        verdict(
            f"{key}: adapter onnx CPU per image, now / before ({before['code']}, {before['date']})",
            onnx_cpu / before["value"],
            0.75,
            "x",
            key=f"local_{key}_onnx_cpu_vs_before",
            detail=f"{onnx_cpu:.1f} ms now vs {before['value']:.1f} ms before, {threads}",
        )


if __name__ == "__main__":
    main()
