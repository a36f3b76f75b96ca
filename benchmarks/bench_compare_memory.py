"""Peak memory of a comparison over 500 vs 5,000 generated images with two fake providers.

Why: the runner promises flat memory (bounded queues, streamed images, results only in SQLite). If it
kept images or results, peak RSS would grow ~10x between the two sizes; flat means the growth is the
small per-image bookkeeping (file list, labels) only. Each size runs in a fresh interpreter so peaks do
not mix; the numbers compared are measured in the same run on the same machine.

    python benchmarks/bench_compare_memory.py [--sizes 500 5000] [--full]

``--full`` also runs metrics and reports (``run_compare``) when those modules are installed.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def generate(folder: Path, n: int) -> Path:
    """``n`` distinct small JPEGs and a labels CSV with two metadata columns."""
    import io

    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    codes = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    rows = ["image,label,sex,site"]
    for i in range(n):
        img = Image.new("RGB", (64, 48), ((i * 37) % 256, (i * 91) % 256, 128))
        for bit in range(16):  # the index in 4x4 black/white blocks: survives JPEG, so images are distinct
            shade = 255 if (i >> bit) & 1 else 0
            img.paste((shade, shade, shade), (bit * 4, 40, bit * 4 + 4, 44))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90)
        (folder / f"img{i:05d}.jpg").write_bytes(buf.getvalue())
        rows.append(f"img{i:05d}.jpg,{codes[i % 7]},{'female' if i % 2 else 'male'},site{i % 5}")
    labels = folder.parent / f"labels-{n}.csv"
    labels.write_text("\n".join(rows) + "\n")
    return labels


def measure(folder: str, labels: str, out: str, full: bool) -> dict:
    """Runs in the child process: import, note the baseline peak, compare, note the new peak."""
    from cloudderm.compare.datasets import open_dataset
    from cloudderm.compare.export import ExportTarget, export_predictions
    from cloudderm.compare.runner import ProviderPlan, Runner
    from cloudderm.compare.store import ResultStore, config_hash
    from cloudderm.config import parse_config
    from cloudderm.testing.fakes import FakeClassifier, FakeSettings

    providers = {
        "alpha": {"adapter": "cloudderm.testing.fakes:FakeClassifier", "seed": "a"},
        "beta": {"adapter": "cloudderm.testing.fakes:FakeClassifier", "seed": "b", "batch_size": 4},
    }
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    if full:
        from cloudderm.compare import run_compare

        config = parse_config({"policy": {"allowed_regions": ["local"]}, "providers": providers})
        run_compare(folder, config=config, labels=labels, out=out, concurrency=4, subgroups=["sex"])
    else:
        dataset = open_dataset(folder, labels=labels)
        fakes = [
            FakeClassifier("alpha", FakeSettings(seed="a")),
            FakeClassifier("beta", FakeSettings(seed="b", batch_size=4)),
        ]
        plans = [ProviderPlan(f.name, f, config_hash(f.settings), concurrency=4) for f in fakes]
        with ResultStore(Path(out) / "results.sqlite", resume=False) as store:
            outcome = Runner(plans, store).run(iter(dataset), len(dataset))
            assert not outcome.interrupted, outcome
            assert all(s.ok == len(dataset) for s in outcome.providers.values()), outcome
            targets = [ExportTarget(p.name, p.config_hash, p.classifier.taxonomy) for p in plans]
            export_predictions(store, Path(out) / "predictions.jsonl", targets)
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"baseline_mb": baseline / 1024, "peak_mb": peak / 1024, "seconds": elapsed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 5000])
    parser.add_argument("--full", action="store_true", help="include metrics and reports (run_compare)")
    parser.add_argument(
        "--child", nargs=4, metavar=("FOLDER", "LABELS", "OUT", "FULL"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        folder, labels, out, full = args.child
        print(json.dumps(measure(folder, labels, out, full == "1")))
        return 0
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            folder = Path(tmp) / f"images-{n}"
            labels = generate(folder, n)
            out = Path(tmp) / f"out-{n}"
            out.mkdir()
            child = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    str(folder),
                    str(labels),
                    str(out),
                    "1" if args.full else "0",
                ],
                cwd=REPO,
                capture_output=True,
                text=True,
            )
            if child.returncode != 0:
                sys.exit(f"measuring {n} images failed:\n{child.stderr}")
            results[n] = json.loads(child.stdout.strip().splitlines()[-1])
            lines = len((out / "predictions.jsonl").read_text().splitlines())
            assert lines == 2 * n, (lines, n)
    mode = "runner + store + export + metrics + reports" if args.full else "runner + store + export"
    print(f"compare memory ({mode}), 2 fake providers, 64x48 JPEGs")
    print(f"{'images':>8} {'baseline MB':>12} {'peak MB':>9} {'growth MB':>10} {'images/s':>9}")
    for n, r in results.items():
        growth = r["peak_mb"] - r["baseline_mb"]
        print(
            f"{n:>8} {r['baseline_mb']:>12.1f} {r['peak_mb']:>9.1f} {growth:>10.1f} {n / r['seconds']:>9.0f}"
        )
    if len(results) >= 2:
        small, large = min(results), max(results)
        ratio = results[large]["peak_mb"] / results[small]["peak_mb"]
        print(f"peak RSS ratio {large} / {small} images: {ratio:.2f} (x{large / small:.0f} images)")
        from _common import verdict

        growth = results[large]["peak_mb"] - results[small]["peak_mb"]
        verdict(
            f"peak RSS growth, {large:,} vs {small:,} images",
            growth,
            50,
            " MB",
            key="compare_memory_growth",
            detail=f"peak {results[small]['peak_mb']:.1f} MB vs {results[large]['peak_mb']:.1f} MB",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
