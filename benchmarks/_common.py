"""Shared helpers for the benchmark scripts: import this checkout, time things, print verdicts.

Why ratios: the machine these run on is shared and noisy, so an absolute time says little; each script
measures its subject and its reference in the same run, interleaved, and reports medians and their ratio.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The code under test: this checkout's cloudderm, not whatever the venv installed; or, for a "before"
# figure, another checkout (``git worktree add /tmp/before main``; CLOUDDERM_BENCH_CODE=/tmp/before).
CODE = Path(os.environ.get("CLOUDDERM_BENCH_CODE") or ROOT).resolve()
BEFORE = CODE != ROOT
if str(CODE) not in sys.path:
    sys.path.insert(0, str(CODE))


def header(title: str) -> None:
    """Name the benchmark and the machine it ran on."""
    print(f"== {title}")
    print(f"   python {platform.python_version()} on {platform.machine()}; {load_average()}; {time.ctime()}")


def _cpus() -> int:

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000.0


def interleaved(
    fns: dict[str, Callable[[], object]], *, rounds: int, per_round: int = 1, warmup: int = 3
) -> dict[str, list[float]]:
    """Wall seconds per call for each function, measured in alternating rounds so drift hits all alike."""
    return interleaved_cpu(fns, rounds=rounds, per_round=per_round, warmup=warmup)[0]


def interleaved_cpu(
    fns: dict[str, Callable[[], object]], *, rounds: int, per_round: int = 1, warmup: int = 3
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU seconds per call (CPU time of this process: what a busy machine inflates least)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(per_round):
                started, started_cpu = time.perf_counter(), time.process_time()
                fn()
                cpu[name].append(time.process_time() - started_cpu)
                wall[name].append(time.perf_counter() - started)
    return wall, cpu


def load_average() -> str:
    """The 1-minute load average against the CPU count: a busy machine inflates every wall time."""

    try:
        return f"load average {os.getloadavg()[0]:.2f} on {_cpus()} CPUs"
    except OSError:
        return "load average unknown"


RESULTS = ROOT / "benchmarks" / "results.json"


def verdict(
    label: str,
    value: float,
    goal: float,
    unit: str = "",
    *,
    higher_is_better: bool = False,
    key: str | None = None,
    detail: str = "",
) -> bool:
    """Print one figure against its goal; with ``key``, also record it for the README table.

    Recorded figures go to ``benchmarks/results.json`` (one entry per key, the latest run wins) with the
    command that produced them; ``python benchmarks/readme_table.py`` renders them into the README.
    """
    met = value >= goal if higher_is_better else value <= goal
    sign = ">=" if higher_is_better else "<="
    print(f"   {label}: {value:.3f}{unit} (goal {sign} {goal:g}{unit}) -> {'MET' if met else 'MISSED'}")
    if key:
        record(key, label=label, value=value, goal=goal, unit=unit, sign=sign, met=met, detail=detail)
    return met


def record(key: str, **fields: Any) -> None:
    """Store one figure under ``key`` in results.json, with the script, its arguments, date and load."""
    import json

    results = load_results()
    if BEFORE:
        key, fields["code"] = f"{key}_before", _describe_code()
    command = " ".join(["python", f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]])
    results[key] = {**fields, "command": command, "date": time.strftime("%Y-%m-%d"), "load": load_average()}
    RESULTS.write_text(json.dumps(dict(sorted(results.items())), indent=1, ensure_ascii=False) + "\n")


def load_results() -> dict[str, Any]:
    import json

    return json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}


def _describe_code() -> str:
    import subprocess

    rev = subprocess.run(
        ["git", "-C", str(CODE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return f"{CODE.name}@{rev.stdout.strip()}" if rev.returncode == 0 else CODE.name


def cpu_table(
    wall: dict[str, list[float]], cpu: dict[str, list[float]], *, reference: str, rounds: int
) -> None:
    """Medians of wall and CPU ms per call for each subject, and each one's ratio to ``reference``."""
    ref_wall, ref_cpu = median_ms(wall[reference]), median_ms(cpu[reference])
    print(f"   medians over {rounds} interleaved rounds      wall ms   CPU ms   wall/ref  CPU/ref")
    for name in wall:
        w, c = median_ms(wall[name]), median_ms(cpu[name])
        print(f"   {name:38} {w:8.1f} {c:8.1f}   {w / ref_wall:6.2f}x  {c / ref_cpu:6.2f}x")


def load_revision(path: str, revision: str) -> Any:
    """Import ``path`` as it was at git ``revision`` (``git show``) as a throwaway module (before/after)."""
    import importlib.util
    import subprocess
    import tempfile

    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{revision}:{path}"], check=True, capture_output=True, text=True
    ).stdout
    target = Path(tempfile.mkdtemp(prefix="cloudderm-before-")) / Path(path).name
    target.write_text(source)
    spec = importlib.util.spec_from_file_location(f"before_{Path(path).stem}", target)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _serve(conn: Any, spec: dict[str, Any]) -> None:
    """Child process: run an emulator of FakeClassifier backends and report its snippets, until told."""
    from cloudderm.emulate import EmulatedEndpoint, Emulator, FaultPlan, Latency
    from cloudderm.testing.fakes import FakeClassifier

    backend = FakeClassifier("backend")
    endpoints = {name: EmulatedEndpoint(backend, **options) for name, options in spec["endpoints"].items()}
    plan = FaultPlan(latency=Latency(ms=spec.get("latency_ms", 0.0)))
    with Emulator(endpoints, faults=plan) as emu:
        conn.send(
            {
                "base_url": emu.base_url,
                "region": emu.region,
                "providers": {name: _snippets(emu, name) for name in endpoints},
                "azure_keys": {name: emu.azure_key(name) for name in endpoints},
                "vertex_paths": {name: emu.vertex_endpoint_path(name) for name in endpoints},
            }
        )
        conn.recv()  # anything (or EOF) means stop
        conn.send(emu.stats.snapshot())


def _snippets(emu: Any, name: str) -> dict[str, dict[str, Any]]:
    return {
        "sagemaker": emu.sagemaker_config(name),
        "azureml": emu.azureml_config(name),
        "vertex": emu.vertex_config(name),
        "openai": emu.config("openai", name),
    }


class EmulatorProcess:
    """An emulator in its own process, so its serving threads do not share the benchmark's GIL.

    Args:
        endpoints: endpoint name -> ``EmulatedEndpoint`` keyword options (``sagemaker_format``...); every
            endpoint is backed by the ``FakeClassifier``, whose answers cost next to nothing.
        latency_ms: fixed latency added to every answer.
    """

    def __init__(self, endpoints: dict[str, dict[str, Any]], *, latency_ms: float = 0.0) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(
            target=_serve, args=(child, {"endpoints": endpoints, "latency_ms": latency_ms}), daemon=True
        )
        self.info: dict[str, Any] = {}
        self.stats: dict[str, Any] = {}

    def __enter__(self) -> EmulatorProcess:
        self._process.start()
        if not self._conn.poll(60):
            self._process.kill()
            raise RuntimeError("the emulator process did not start within 60 s")
        self.info = self._conn.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._conn.send("stop")
            if self._conn.poll(30):
                self.stats = self._conn.recv()
        finally:
            self._process.join(10)
            if self._process.is_alive():
                self._process.kill()

    def config(self, protocol: str, name: str) -> dict[str, Any]:
        return dict(self.info["providers"][name][protocol])
