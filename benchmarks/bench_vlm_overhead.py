"""What the ``openai`` VLM adapter adds on top of the raw SDK call, against the same zero-latency emulator.

Run: ``python benchmarks/bench_vlm_overhead.py [--rounds 300]``

Goal: adapter call / raw SDK call <= 1.10 (median). Both sides send the same prepared image as a data URL
with the same rendered prompt and JSON schema to the same loopback OpenAI-compatible emulator (protocol
``openai``, no latency, no faults, backed by the ``FakeClassifier``), through the same ``openai.OpenAI``
client settings (no SDK retries). The raw side is what a user writes by hand: ``chat.completions.create``
then ``json.loads`` of the message content. The adapter side is ``Classifier.classify_prepared`` (request
building, strict parsing, score source, usage, cost from the token price, the ``Prediction``). The emulator
runs in its own process, so the CPU column is the client's work only; calls alternate.
"""

from __future__ import annotations

import argparse
import json

from _common import ROOT, EmulatorProcess, header, interleaved_cpu, median_ms, verdict

GOAL = 1.10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()

    import openai

    from cloudderm.config import parse_config
    from cloudderm.factory import build_classifier
    from cloudderm.images import prepare

    header("openai adapter call vs raw openai SDK call, zero-latency emulator in its own process")
    image = prepare(ROOT / "examples" / "images" / "ISIC_0000000.jpg", max_side=224)
    print(f"   one prepared image: {image.width}x{image.height}, {image.size_bytes:,} B")
    with EmulatorProcess({"gpt-4o": {}}) as emu:
        settings = emu.config("openai", "gpt-4o")
        adapter = build_classifier("vlm", parse_config({"providers": {"vlm": settings}}))
        adapter.warm_up()
        client = openai.OpenAI(
            base_url=settings["base_url"], api_key=settings["api_key"], max_retries=0, timeout=60.0
        )
        body = adapter.request_body(image)

        def raw() -> object:
            completion = client.chat.completions.create(**body)
            return json.loads(completion.choices[0].message.content)

        fns = {"adapter": lambda: adapter.classify_prepared([image]), "raw": raw}
        wall, cpu = interleaved_cpu(fns, rounds=args.rounds, warmup=10)
        raw_wall, raw_cpu = median_ms(wall["raw"]), median_ms(cpu["raw"])
        print(f"   {args.rounds} interleaved calls each; medians (CPU = this process only):")
        print("   variant            wall       CPU   wall/raw  CPU/raw")
        for variant in fns:
            w, c = median_ms(wall[variant]), median_ms(cpu[variant])
            label = "raw SDK call" if variant == "raw" else "adapter"
            print(f"   {label:<14} {w:7.2f} ms {c:6.2f} ms {w / raw_wall:7.2f}x {c / raw_cpu:7.2f}x")
        adapter.close()
        client.close()
        adapter_cpu = median_ms(cpu["adapter"])
        verdict(
            "openai adapter / raw SDK call (wall median)",
            median_ms(wall["adapter"]) / raw_wall,
            GOAL,
            "x",
            key="overhead_openai_wall",
            detail=f"client CPU {adapter_cpu:.2f} vs {raw_cpu:.2f} ms ({adapter_cpu / raw_cpu:.2f}x)",
        )


if __name__ == "__main__":
    main()
