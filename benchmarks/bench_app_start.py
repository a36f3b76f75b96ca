"""How long ``cloudderm app -c examples/cloudderm.yaml`` takes to answer HTTP (goal <= 10 s).

Run: ``python benchmarks/bench_app_start.py [--runs 3]``

Each run starts the real command on a free loopback port with no secrets set and ``HF_HUB_OFFLINE=1`` (so
the example config's providers are: one offered, the others listed with their reason), and stops the clock
at the first HTTP answer. The process's CPU seconds at that moment (``/proc/PID/stat``) are printed beside
the wall time: on a shared, busy machine the wall time is inflated and the CPU time is the steadier figure.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from _common import ROOT, header, verdict

GOAL_S = 10.0


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_once() -> tuple[float, float]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE", "AWS_", "GOOGLE"))}
    env["HF_HUB_OFFLINE"] = "1"
    command = [sys.executable, "-m", "cloudderm", "app", "-c", "examples/cloudderm.yaml", "--port", str(port)]
    began = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"cloudderm app exited with {process.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1):
                    return time.perf_counter() - began, _cpu_s(process.pid)
            except OSError:
                time.sleep(0.05)
    finally:
        process.terminate()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    header("cloudderm app start-up on the example config")
    samples = [start_once() for _ in range(args.runs)]
    for wall, cpu in samples:
        print(f"   wall {wall:.2f} s, CPU {cpu:.2f} s (wall/CPU {wall / cpu:.2f})")
    best_wall = min(w for w, _ in samples)
    verdict("fastest start, wall", best_wall, GOAL_S, " s")
    verdict("fastest start, CPU", min(c for _, c in samples), GOAL_S, " s")


if __name__ == "__main__":
    main()
