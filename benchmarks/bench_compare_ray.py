"""``compare --engine ray`` on a local 2-CPU Ray against the local engine, on the same emulated run.

Run: ``python benchmarks/bench_compare_ray.py [--images 500] [--latency-ms 100] [--concurrency 16]``

Goals: identical answers (image, provider, status, labels and scores to 1e-6, canonical label, outcome;
never latency or request ids) and wall(ray) / wall(local) <= 1.5. The run is ``bench_compare_wall``'s:
distinct small JPEGs sent to the real SageMaker, Azure ML and Vertex AI adapters against one emulator in
its own process with a fixed latency, one image per call. Ray is started after the local run and before
the Ray run's clock starts, as a user with a cluster would have it (``ray start --head``, then
``--ray-address``); its start-up is printed apart. Each engine's wall includes everything
``run_compare`` does, the actors' start-up included.

CPU per call is reported next to the wall ratio: for the local engine, this process and its worker
processes; for Ray, this
process plus every process Ray started (GCS, raylet, workers), read from /proc every 0.2 s, so a process
that ends between two readings loses at most 0.2 s of its count. The emulator's process is never counted.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import threading
import time
from pathlib import Path

from _common import EmulatorProcess, header, load_average, verdict
from bench_compare_wall import emulated_providers, write_images

GOAL = 1.5
TICKS = os.sysconf("SC_CLK_TCK")


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds so far) for every process on the machine."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS)
    return table


class TreeCpu:
    """CPU seconds of this process and its descendants, minus ``exclude``'s tree, sampled until stopped."""

    def __init__(self, exclude: int | None) -> None:
        self.exclude = exclude
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def sample(self) -> None:
        table = _proc_table()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        stack = [os.getpid()]
        while stack:
            pid = stack.pop()
            if pid == self.exclude or pid not in table:
                continue
            self.seen[pid] = table[pid][1]
            stack.extend(children.get(pid, []))

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            self.sample()

    def __enter__(self) -> TreeCpu:
        self.sample()
        self.start = dict(self.seen)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    @property
    def seconds(self) -> float:
        return sum(cpu - self.start.get(pid, 0.0) for pid, cpu in self.seen.items())


def _answers(out: Path) -> dict[tuple[str, str], tuple]:
    import json

    rows = {}
    for line in (out / "predictions.jsonl").read_text().splitlines():
        r = json.loads(line)
        labels = tuple((x["label"], x["score"]) for x in r["labels"] or [])
        rows[(r["image"], r["provider"])] = (r["status"], r["canonical"], r["outcome"], labels)
    return rows


def _same(a: dict, b: dict) -> list[str]:
    problems = [f"missing {k}" for k in a.keys() ^ b.keys()]
    for key in a.keys() & b.keys():
        (sa, ca, oa, la), (sb, cb, ob, lb) = a[key], b[key]
        if (sa, ca, oa) != (sb, cb, ob) or [x for x, _ in la] != [x for x, _ in lb]:
            problems.append(f"{key}: {a[key][:3]} vs {b[key][:3]}")
        elif any(abs(x - y) > 1e-6 for (_, x), (_, y) in zip(la, lb)):
            problems.append(f"{key}: scores differ")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    import ray

    from cloudderm.compare import run_compare
    from cloudderm.config import parse_config
    from cloudderm.emulate import FAKE_AWS_ENV

    os.environ.update(FAKE_AWS_ENV)  # before Ray starts: its workers inherit this environment
    header(
        f"compare {args.images} images x 3 emulated providers, {args.latency_ms:g} ms latency, "
        f"concurrency {args.concurrency}: --engine ray (local 2-CPU Ray) vs --engine local"
    )
    calls = 3 * args.images
    ideal = math.ceil(args.images / args.concurrency) * args.latency_ms / 1000.0
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images"
        write_images(images, args.images)
        with EmulatorProcess({"ep": {}}, latency_ms=args.latency_ms) as emu:
            defaults = {"timeout_s": 30, "max_retries": 2, "concurrency": args.concurrency}
            config = parse_config({"defaults": defaults, "providers": emulated_providers(emu)})
            runs = {}
            for engine in ("local", "ray"):
                if engine == "ray":  # after the local run, so Ray's idle processes are not counted there
                    started = time.perf_counter()
                    ray.init(
                        address="local",
                        num_cpus=2,
                        include_dashboard=False,
                        log_to_driver=False,
                        logging_level="ERROR",
                    )
                    print(f"   Ray start-up (not in the ratio): {time.perf_counter() - started:.2f} s")
                out = Path(tmp) / engine
                with TreeCpu(exclude=emu._process.pid) as cpu:
                    t0 = time.perf_counter()
                    summary = run_compare(images, config=config, out=out, progress=False, engine=engine)
                    wall = time.perf_counter() - t0
                runs[engine] = {"wall": wall, "cpu": cpu.seconds, "answers": _answers(out)}
                print(
                    f"   --engine {engine}: wall {wall:.2f} s ({wall / ideal:.2f}x the latency ideal "
                    f"{ideal:.2f} s), CPU {1000 * cpu.seconds / calls:.2f} ms per call; "
                    f"statuses {summary['run']['status']}; {load_average()}"
                )
            ray.shutdown()
    problems = _same(runs["local"]["answers"], runs["ray"]["answers"])
    print(f"   answers: {len(runs['ray']['answers'])} pairs, differences: {problems[:5] or 'none'}")
    if problems:
        raise SystemExit("the engines gave different answers")
    ratio = runs["ray"]["wall"] / runs["local"]["wall"]
    verdict(
        f"--engine ray / local, {args.images} images x 3 emulated providers, wall",
        ratio,
        GOAL,
        "x",
        key="compare_ray_wall",
        detail=f"identical answers ({len(runs['ray']['answers'])} pairs); CPU per call "
        f"{1000 * runs['ray']['cpu'] / calls:.2f} ms (ray, all its processes) vs "
        f"{1000 * runs['local']['cpu'] / calls:.2f} ms (local)",
    )


if __name__ == "__main__":
    main()
