"""``compare --workers 2`` against ``--workers 1``: large photos, a local model and two emulated providers.

Run: ``python benchmarks/bench_compare_workers.py [--images 24] [--width 6000] [--height 4000] [--rounds 1]``

Goal: wall(--workers 1) / wall(--workers 2) >= 1.6 on 2 otherwise idle cores. The work is CPU-bound on
purpose: each photo is a 24-megapixel JPEG that must be decoded, fitted and re-encoded once, and a local
Hugging Face model (a MobileNetV2 built from its config, 224x224 input) classifies every image; the two
emulated providers (SageMaker and Azure ML adapters over HTTP to an emulator in its own process, 50 ms per
answer) stay on the parent's threads. CPU per image is reported next to the wall ratio: this process plus
its reaped worker processes (the emulator's own CPU is not counted), so a loaded machine shows up as a wall
ratio below the CPU ratio instead of being hidden.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import tempfile
import time
from pathlib import Path

from _common import EmulatorProcess, header, load_average, verdict

GOAL = 1.6
HAM = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]


def write_photos(folder: Path, n: int, size: tuple[int, int]) -> None:
    """Distinct photo-like JPEGs: a smooth random field upscaled plus fine noise (decoding is real work)."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        coarse = Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).resize(
            size, Image.BICUBIC
        )
        pixels = np.asarray(coarse, dtype=np.int16) + rng.integers(
            -6, 7, (size[1], size[0], 3), dtype=np.int16
        )
        buf = io.BytesIO()
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
        (folder / f"photo_{i:03d}.jpg").write_bytes(buf.getvalue())


def _cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _run(run_compare, images: Path, config, out: Path, workers: int) -> dict:
    started, cpu = time.perf_counter(), _cpu_s()
    summary = run_compare(images, config=config, out=out, progress=False, workers=workers, resume=False)
    return {
        "wall": time.perf_counter() - started,
        "cpu": _cpu_s() - cpu,  # workers are reaped when the pool closes inside run_compare
        "status": summary["run"]["status"],
        "run": summary["run"]["seconds"]["run"],  # the phase --workers parallelises (not start-up, reports)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--width", type=int, default=6000)
    parser.add_argument("--height", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=1, help="alternating (1, 2) rounds; medians reported")
    args = parser.parse_args()

    from cloudderm.compare import run_compare
    from cloudderm.config import parse_config
    from cloudderm.emulate import FAKE_AWS_ENV
    from cloudderm.emulate.models import save_mobilenet_v2

    os.environ.update(FAKE_AWS_ENV)
    header(f"compare {args.images} photos of {args.width}x{args.height}, local model + 2 emulated providers")
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images"
        write_photos(images, args.images, (args.width, args.height))
        model = save_mobilenet_v2(Path(tmp) / "model", labels=HAM, image_size=224)
        with EmulatorProcess({"ep": {}}, latency_ms=50.0) as emu:
            providers = {
                "local": {"adapter": "huggingface", "model": str(model), "batch_size": 1},
                "sagemaker": emu.config("sagemaker", "ep"),
                "azureml": {**emu.config("azureml", "ep"), "batch_size": 1},
            }
            defaults = {"timeout_s": 60, "max_retries": 2, "concurrency": 4}
            config = parse_config({"defaults": defaults, "providers": providers})
            results: dict[int, list[dict]] = {1: [], 2: []}
            for r in range(args.rounds):
                for workers in (1, 2):
                    results[workers].append(
                        _run(run_compare, images, config, Path(tmp) / f"o{workers}", workers)
                    )
                    last = results[workers][-1]
                    print(
                        f"   round {r + 1} --workers {workers}: wall {last['wall']:.2f} s "
                        f"(of which the run itself {last['run']:.2f} s), "
                        f"CPU {last['cpu']:.2f} s ({1000 * last['cpu'] / args.images:.0f} ms/image); "
                        f"{load_average()}"
                    )
    wall = {w: sorted(x["wall"] for x in runs)[len(runs) // 2] for w, runs in results.items()}
    cpu = {w: sorted(x["cpu"] for x in runs)[len(runs) // 2] for w, runs in results.items()}
    run = {w: sorted(x["run"] for x in runs)[len(runs) // 2] for w, runs in results.items()}
    print(f"   statuses (--workers 2): {results[2][-1]['status']}")
    for w in (1, 2):
        print(f"   --workers {w}: wall {wall[w]:.2f} s, CPU {1000 * cpu[w] / args.images:.0f} ms per image")
    verdict(
        f"compare {args.images} photos {args.width}x{args.height}, local model + 2 emulated, "
        "wall --workers 1 / --workers 2",
        wall[1] / wall[2],
        GOAL,
        "x",
        higher_is_better=True,
        key="compare_workers",
        detail=f"CPU per image {1000 * cpu[1] / args.images:.0f} ms (1 worker) vs "
        f"{1000 * cpu[2] / args.images:.0f} ms (2 workers), this process + reaped workers; the run phase "
        f"alone (no start-up, summary or reports) {run[1]:.2f} s vs {run[2]:.2f} s = {run[1] / run[2]:.2f}x",
    )


if __name__ == "__main__":
    main()
