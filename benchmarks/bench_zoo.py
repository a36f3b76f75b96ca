"""Built-in zoo models: images per second with onnxruntime against the torch rebuild, side by side.

Run: ``python benchmarks/bench_zoo.py [--rounds 5] [--batch 8] [--threads N]``

What is timed: the model's forward pass on a batch of its own input tensors (preprocessed once, outside the
timer), for sklesion-xception (254x254 + metadata) and EfficientNet-Lite0 (224x224), with each runtime. The
runtimes alternate round by round so machine noise hits both alike. CPU time of this process is printed next
to wall time: a CPU/wall ratio above 1 means the runtime used several cores. No goal is set by the issue;
the table is the evidence for choosing ``runtime: onnx`` (the default) or ``runtime: torch``.
Needs the models in the cache (``cloudderm models fetch --all``).
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
from _common import ROOT, header, interleaved_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: runtime's)")
    args = parser.parse_args()

    from cloudderm.models.cards import CARDS
    from cloudderm.models.metadata import UNKNOWN_METADATA
    from cloudderm.models.preprocess import effnet_tensor, sklesion_tensor
    from cloudderm.models.runtime import ZooRuntime
    from cloudderm.models.store import fetch_command, is_ready

    header(f"zoo models: onnxruntime vs torch, batch {args.batch}, {args.rounds} rounds (forward pass only)")
    files = sorted((ROOT / "examples" / "images").iterdir())
    raws = [files[i % len(files)].read_bytes() for i in range(args.batch)]
    print(f"   {'model':<20} {'runtime':<8} {'img/s (wall)':>13} {'ms/img':>8} {'CPU/wall':>9}")
    for name, card in CARDS.items():
        if not is_ready(card):
            print(f"   {name}: not cached, skipped (run `{fetch_command(card)}`)")
            continue
        if name == "sklesion-xception":
            pixels = np.stack([sklesion_tensor(r) for r in raws])
            metadata = np.stack([UNKNOWN_METADATA] * len(raws))
        else:
            pixels, metadata = np.stack([effnet_tensor(r) for r in raws]), None
        runtimes = {rt: ZooRuntime(card, rt, args.threads) for rt in ("onnx", "torch")}
        for runtime in runtimes.values():
            runtime.load()
        calls = {rt: (lambda r=r, x=pixels, m=metadata: r.predict(x, m)) for rt, r in runtimes.items()}
        wall, cpu = interleaved_cpu(calls, rounds=args.rounds, warmup=1)
        for rt in runtimes:
            seconds = statistics.median(wall[rt])
            ratio = statistics.median(cpu[rt]) / seconds if seconds else float("nan")
            per_image = seconds / len(raws)
            print(f"   {name:<20} {rt:<8} {1 / per_image:>13.1f} {per_image * 1000:>8.1f} {ratio:>9.2f}")


if __name__ == "__main__":
    main()
