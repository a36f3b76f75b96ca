"""Wall time of a real comparison against emulated providers, over the ideal set by latency alone.

Run: ``python benchmarks/bench_compare_wall.py [--images 500] [--latency-ms 100] [--concurrency 16]``

Goal: wall / ideal <= 1.25, where ideal = ceil(images / concurrency) x latency: each provider has its own
``concurrency`` threads answering one image per call, so it needs that many rounds of one latency each, and
the three run side by side, so three providers ideally take as long as one. Client CPU per call is
reported next to it: the wall ratio grows with the machine's load, the CPU per call much less.
``run_compare`` drives the real SageMaker, Azure ML and Vertex AI adapters against one emulator that adds a
fixed latency to every answer; it runs in its own process so its serving threads do not share this
process's GIL. Every provider sends one image per call (Azure ``batch_size: 1``, Vertex
``max_instances: 1``): with batching a call carries several images and the "ideal" above would no longer be
a bound. The images are distinct 96x72 JPEGs, so preparation costs little and the measurement is of the
runner: threads, queues, pacing and the store.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import tempfile
import time
from pathlib import Path

from _common import EmulatorProcess, header, verdict

GOAL = 1.25


def emulated_providers(emu: EmulatorProcess) -> dict[str, dict]:
    """The three real cloud adapters against endpoint ``ep``, one image per call (so the ideal is a bound)."""
    return {
        "sagemaker": emu.config("sagemaker", "ep"),
        "azureml": {**emu.config("azureml", "ep"), "batch_size": 1},
        "vertex": {**emu.config("vertex", "ep"), "max_instances": 1},
    }


def write_images(folder: Path, n: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = Image.new("RGB", (96, 72), (i % 256, (i // 256) * 40 % 256, 120))
        img.putpixel((i % 96, (i // 96) % 72), (255, 255, 255))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90)
        (folder / f"img_{i:05d}.jpg").write_bytes(buf.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    from cloudderm.compare import run_compare
    from cloudderm.config import parse_config
    from cloudderm.emulate import FAKE_AWS_ENV

    os.environ.update(FAKE_AWS_ENV)
    header(
        f"compare {args.images} images x 3 emulated providers, {args.latency_ms:g} ms latency, "
        f"concurrency {args.concurrency}"
    )
    rounds = math.ceil(args.images / args.concurrency)
    ideal = rounds * args.latency_ms / 1000.0
    calls = 3 * args.images
    defaults = {"timeout_s": 30, "max_retries": 2, "concurrency": args.concurrency}
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images"
        write_images(images, args.images)

        with EmulatorProcess({"ep": {}}, latency_ms=args.latency_ms) as emu:
            config = parse_config({"defaults": defaults, "providers": emulated_providers(emu)})
            emulated = _timed(run_compare, images, config, Path(tmp) / "emulated")
        print("   1) real adapters -> emulator (HTTP on loopback, emulator in its own process)")
        _report(emulated, ideal)
        for key in sorted(emu.stats["endpoints"]):
            counts = emu.stats["endpoints"][key]
            seen = f"{counts['requests']} requests, {counts['unique_images']} distinct images"
            print(f"      emulator {key}: {seen}")

        fake = {"adapter": "cloudderm.testing.fakes:FakeClassifier", "latency_s": args.latency_ms / 1000.0}
        providers = {f"fake-{i}": {**fake, "seed": str(i)} for i in range(3)}
        config = parse_config({"defaults": defaults, "providers": providers})
        runner_only = _timed(run_compare, images, config, Path(tmp) / "fakes")
        print("   2) runner only: in-process fake providers that sleep the same latency (no HTTP, no SDK)")
        _report(runner_only, ideal)
    print(
        f"   ideal = ceil({args.images} / {args.concurrency}) = {rounds} rounds"
        f" x {args.latency_ms:g} ms = {ideal:.2f} s"
    )
    cpu_per_call = emulated["cpu"] * 1000 / calls
    verdict(
        "1) emulated providers, wall / ideal",
        emulated["wall"] / ideal,
        GOAL,
        "x",
        key="compare_wall_emulated",
        detail=f"client CPU {cpu_per_call:.2f} ms per call ({calls} calls)",
    )
    verdict(
        "2) runner only, wall / ideal",
        runner_only["wall"] / ideal,
        GOAL,
        "x",
        key="compare_wall_runner",
        detail=f"CPU {runner_only['cpu'] * 1000 / calls:.2f} ms per call",
    )
    verdict(
        "2) runner only, without report writing",
        (runner_only["wall"] - runner_only["reports"]) / ideal,
        GOAL,
        "x",
    )


def _timed(run_compare, images: Path, config, out: Path) -> dict:
    """Run a comparison; time it whole and time the report writing inside it separately."""
    import cloudderm.report as report

    write_reports = report.write_reports
    spent = {"reports": 0.0}

    def timed_write(*args, **kwargs):
        started = time.perf_counter()
        try:
            return write_reports(*args, **kwargs)
        finally:
            spent["reports"] += time.perf_counter() - started

    report.write_reports = timed_write
    try:
        started, cpu_started = time.perf_counter(), time.process_time()
        summary = run_compare(images, config=config, out=out, progress=False)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    finally:
        report.write_reports = write_reports
    return {"wall": wall, "cpu": cpu, "reports": spent["reports"], "status": summary["run"]["status"]}


def _report(result: dict, ideal: float) -> None:
    run = result["wall"] - result["reports"]
    print(f"      statuses: {result['status']}")
    print(
        f"      wall {result['wall']:.2f} s = {result['wall'] / ideal:.2f}x ideal; writing the reports "
        f"{result['reports']:.2f} s; the run alone {run:.2f} s = {run / ideal:.2f}x ideal"
    )
    print(f"      client CPU {result['cpu']:.2f} s (one process: above the ideal wall, the run is CPU-bound)")


if __name__ == "__main__":
    main()
