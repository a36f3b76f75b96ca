"""What an adapter adds on top of the vendor SDK call it is built on, against the same zero-latency emulator.

Run: ``python benchmarks/bench_adapter_overhead.py [--rounds 300]``

Goals, per provider, medians: client CPU per call, adapter / SDK call <= 1.15 (what the issue #15 asks
of Azure ML and Vertex AI; CPU is what a loaded machine inflates least); wall, adapter / SDK call <= 1.10.
Every variant sends the same prepared bytes to the same loopback emulator (no latency, no faults), backed
by the ``FakeClassifier``, so the difference is the adapter's own work: request encoding, response
decoding, sorting, taxonomy mapping, warnings and building the ``Prediction``. The baselines ("SDK call")
are what a user of the vendor SDK would write by hand:

- SageMaker: one boto3 ``sagemaker-runtime`` client, ``invoke_endpoint`` + ``Body.read()`` + ``json.loads``;
- Azure ML: the azure-core pipeline the adapter builds (same policies, headers and body), ``run`` +
  ``read`` + ``json.loads``;
- Vertex AI: a plain ``PredictionServiceClient(transport="rest", client_options={"api_endpoint": ...},
  credentials=AnonymousCredentials()).predict(...)`` with the same instances and parameters.

For Azure ML and Vertex AI a plain ``requests.Session().post`` of the same JSON is timed too ("raw
requests"), which shows what the SDK layer itself costs; for Vertex AI, so is the adapter's own tuned
client called alone (environment pinned, pool sized), which splits the adapter's share from the client's.
The adapter side is ``Classifier.classify_prepared`` (what the compare runner calls; no retry wrapper).
The emulator runs in a separate process, so the CPU column is the client's work only. Calls alternate so
machine noise hits every variant alike.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
from collections.abc import Callable

from _common import BEFORE, ROOT, EmulatorProcess, header, interleaved_cpu, load_results, median_ms, verdict

GOAL = 1.10
CPU_GOAL = 1.15


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()

    import boto3
    import requests
    from botocore.config import Config

    from cloudderm.config import parse_config
    from cloudderm.emulate import FAKE_AWS_ENV
    from cloudderm.factory import build_classifier
    from cloudderm.images import prepare

    os.environ.update(FAKE_AWS_ENV)
    header("adapter call vs raw client call, zero-latency emulator in its own process")
    image = prepare(ROOT / "examples" / "images" / "ISIC_0000000.jpg", max_side=224)
    print(f"   one prepared image: {image.width}x{image.height}, {image.size_bytes:,} B")
    with EmulatorProcess({"ep": {"sagemaker_format": "jumpstart-verbose"}}) as emu:
        providers = {
            "sagemaker": emu.config("sagemaker", "ep"),
            "azureml": {**emu.config("azureml", "ep"), "batch_size": 1},
            "vertex": emu.config("vertex", "ep"),
        }
        config = parse_config({"providers": providers})
        adapters = {name: build_classifier(name, config) for name in providers}
        session = requests.Session()
        sm = boto3.client(
            "sagemaker-runtime",
            endpoint_url=emu.info["base_url"],
            region_name=emu.info["region"],
            config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
        )
        b64 = base64.b64encode(image.data).decode("ascii")
        azure_uri = providers["azureml"]["scoring_uri"]
        azure_body = json.dumps({"input_data": {"columns": ["image"], "data": [b64]}}).encode()
        azure_headers = {
            "Authorization": f"Bearer {emu.info['azure_keys']['ep']}",
            "Content-Type": "application/json",
            "azureml-model-deployment": "blue",
        }
        vertex_url = f"{emu.info['base_url']}/v1/{emu.info['vertex_paths']['ep']}:predict"
        vertex_body = {
            "instances": [{"content": b64}],
            "parameters": adapters["vertex"]._parameters,
        }

        def raw_sagemaker() -> object:
            """The boto3 call the SageMaker adapter is built on (its SDK call)."""
            response = sm.invoke_endpoint(
                EndpointName="ep",
                Body=image.data,
                ContentType="application/x-image",
                Accept="application/json;verbose",
            )
            return json.loads(response["Body"].read())

        def raw_azure() -> object:
            response = session.post(azure_uri, data=azure_body, headers=azure_headers)
            response.raise_for_status()
            return response.json()

        def raw_vertex() -> object:
            response = session.post(vertex_url, json=vertex_body)
            response.raise_for_status()
            return response.json()

        def sdk_azure() -> object:
            """The azure-core pipeline the adapter builds, run by hand (no decoding, no Prediction)."""
            from azure.core.rest import HttpRequest

            pipeline, uri = adapters["azureml"]._client()
            response = pipeline.run(
                HttpRequest("POST", uri, content=azure_body),
                connection_timeout=10.0,
                read_timeout=30.0,
                retry_on_methods=frozenset({"POST"}),
            )
            response.http_response.read()
            return json.loads(response.http_response.content)

        from google.auth.credentials import AnonymousCredentials
        from google.cloud.aiplatform_v1 import PredictionServiceClient

        vertex = adapters["vertex"]
        plain_vertex = PredictionServiceClient(
            transport="rest",
            client_options={"api_endpoint": providers["vertex"]["endpoint_url"]},
            credentials=AnonymousCredentials(),
        )

        def vertex_predict(client: object) -> Callable[[], object]:
            def call() -> object:
                return client.predict(  # type: ignore[attr-defined]
                    endpoint=vertex.model_id,
                    instances=[{"content": b64}],
                    parameters=vertex._parameters,
                    timeout=60.0,
                    retry=None,
                )

            return call

        calls: dict[str, dict[str, Callable[[], object]]] = {
            "sagemaker": {"sdk": raw_sagemaker},
            "azureml": {"sdk": sdk_azure, "requests": raw_azure},
            "vertex": {
                "sdk": vertex_predict(plain_vertex),
                "tuned": vertex_predict(vertex._get_client()),
                "requests": raw_vertex,
            },
        }
        labels = {
            "adapter": "adapter",
            "sdk": "SDK call",
            "tuned": "adapter's client alone",
            "requests": "raw requests",
        }
        print(f"   {args.rounds} interleaved calls each; medians (CPU = this process only):")
        print("   provider   variant                   wall       CPU   wall/SDK  CPU/SDK")
        ratios: dict[str, tuple[float, float, str]] = {}
        for name, adapter in adapters.items():
            fns = {"adapter": lambda a=adapter: a.classify_prepared([image]), **calls[name]}
            wall, cpu = interleaved_cpu(fns, rounds=args.rounds, warmup=10)
            sdk_wall, sdk_cpu = median_ms(wall["sdk"]), median_ms(cpu["sdk"])
            for variant in fns:
                w, c = median_ms(wall[variant]), median_ms(cpu[variant])
                ratio = f"{w / sdk_wall:7.2f}x {c / sdk_cpu:7.2f}x"
                print(f"   {name:<10} {labels[variant]:<24} {w:7.2f} ms {c:6.2f} ms {ratio}")
            adapter_cpu = median_ms(cpu["adapter"])
            detail = f"adapter {adapter_cpu:.2f} ms CPU vs SDK call {sdk_cpu:.2f} ms"
            if "tuned" in fns:
                detail += f"; the adapter's tuned client alone {median_ms(cpu['tuned']):.2f} ms"
            if "requests" in fns:
                raw_cpu = median_ms(cpu["requests"])
                detail += (
                    f"; raw requests {raw_cpu:.2f} ms (adapter / raw requests {adapter_cpu / raw_cpu:.2f}x, "
                    f"SDK call / raw requests {sdk_cpu / raw_cpu:.2f}x)"
                )
            ratios[name] = (median_ms(wall["adapter"]) / sdk_wall, adapter_cpu / sdk_cpu, detail)
        plain_vertex.transport.close()
        for adapter in adapters.values():
            adapter.close()
        recorded = load_results()
        for name, (wall_ratio, cpu_ratio, detail) in ratios.items():
            before = recorded.get(f"overhead_{name}_cpu_before")
            if before and not BEFORE:
                # Older runs compared against "raw": boto3 for SageMaker, a bare requests post otherwise.
                old_baseline = "SDK call" if name == "sagemaker" else "raw requests"
                detail += (
                    f"; before this change ({before['code']}, {before['date']}): "
                    f"{before['label'].removeprefix(name).strip().replace('/ raw (', f'/ {old_baseline} (')} "
                    f"{before['value']:.2f}x"
                )
            verdict(
                f"{name} adapter / SDK call (CPU median)",
                cpu_ratio,
                CPU_GOAL,
                "x",
                key=f"overhead_{name}_cpu",
                detail=detail,
            )
            verdict(
                f"{name} adapter / SDK call (wall median)", wall_ratio, GOAL, "x", key=f"overhead_{name}_wall"
            )


if __name__ == "__main__":
    main()
