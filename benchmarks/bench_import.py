"""How long ``import cloudderm`` takes in a fresh interpreter (goal <= 0.1 s), and that it stays light.

Run: ``python benchmarks/bench_import.py [--runs 40]``

Each run starts a new interpreter (so nothing is cached in ``sys.modules``), times the import alone with
``perf_counter`` inside it, and lists any heavy SDK the import itself added to ``sys.modules`` (there must
be none; namespace packages that site-packages ``.pth`` files load at start-up are not the import's
doing). The bare interpreter's own start-up is timed too, for context: it is what a CLI user pays on top.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from _common import ROOT, header, median_ms, verdict

HEAVY = ("torch", "transformers", "boto3", "botocore", "azure", "google", "onnxruntime", "pydantic", "PIL")
PROBE = f"""
import sys, time, json
sys.path.insert(0, {str(ROOT)!r})
before = set(sys.modules)
t = time.perf_counter()
import cloudderm
elapsed = time.perf_counter() - t
added = set(sys.modules) - before
heavy = sorted({{m.split('.')[0] for m in added}} & set({list(HEAVY)!r}))
print(json.dumps({{"s": elapsed, "heavy": heavy, "file": cloudderm.__file__}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    header("import cloudderm in a fresh interpreter")
    imports, bare, heavy, where = [], [], set(), ""
    for _ in range(args.runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append(time.perf_counter() - started)
        out = subprocess.run([sys.executable, "-c", PROBE], check=True, capture_output=True, text=True)
        result = json.loads(out.stdout)
        imports.append(result["s"])
        heavy.update(result["heavy"])
        where = result["file"]
    print(f"   {args.runs} runs of {where}")
    print(f"   bare interpreter start-up: median {median_ms(bare):.1f} ms")
    print(f"   import cloudderm: median {median_ms(imports):.1f} ms, max {max(imports) * 1000:.1f} ms")
    print(f"   heavy modules loaded by the import: {', '.join(sorted(heavy)) or 'none'}")
    verdict("median import time", median_ms(imports) / 1000.0, 0.1, " s", key="import_time")


if __name__ == "__main__":
    main()
