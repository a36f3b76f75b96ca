"""Small MLflow pyfunc models saved in a temporary folder, and an in-process MLflow scoring server.

``save_card_model`` is shaped like the FashionMNIST model card behind the issue: a PyTorch classifier whose
pyfunc answers ``{"predicted_class": str, "class_probabilities": {class: p}}`` per image, with a 28×28
grayscale float32 tensor signature. Feeding it skin-lesion photos is a documented out-of-domain use: the
images are converted per its signature and its labels are clothes, which cloudderm flags.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

FASHION = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
CARD_MD = """---
license: mit
datasets:
  - fashion_mnist
---
# Tiny FashionMNIST classifier (test fixture)

## Intended uses
Classifying 28x28 grayscale photos of clothing into the ten FashionMNIST classes.

## Out-of-scope use
- skin lesions
- any medical image

Not intended for medical diagnosis.
"""


def quiet_mlflow(monkeypatch: Any) -> None:
    """Telemetry off and the file store allowed, for one test."""
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "true")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")


def tiny_net(seed: int = 0) -> Any:
    """A deterministic 784 -> 10 linear classifier (random weights: only the plumbing is under test)."""
    import torch

    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, len(FASHION))).eval()


def torch_probabilities(net: Any, batch: np.ndarray) -> np.ndarray:
    """What the pyfunc computes, for comparing against the adapter's scores."""
    import torch

    with torch.inference_mode():
        return torch.softmax(net(torch.as_tensor(batch, dtype=torch.float32)), dim=1).double().numpy()


def _python_model_classes() -> dict[str, type]:
    import mlflow.pyfunc

    class CardModel(mlflow.pyfunc.PythonModel):
        """The model card's output: one dict per image."""

        def __init__(self, net: Any) -> None:
            self.net = net

        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            probs = torch_probabilities(self.net, np.asarray(model_input))
            return [
                {
                    "predicted_class": FASHION[int(row.argmax())],
                    "class_probabilities": dict(zip(FASHION, row.tolist())),
                }
                for row in probs
            ]

    class FrameModel(mlflow.pyfunc.PythonModel):
        """A DataFrame with one column per class."""

        def __init__(self, net: Any) -> None:
            self.net = net

        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            import pandas as pd

            return pd.DataFrame(torch_probabilities(self.net, np.asarray(model_input)), columns=FASHION)

    class BytesModel(mlflow.pyfunc.PythonModel):
        """Takes a column of encoded image bytes and answers a 2-D array (class names in metadata)."""

        def __init__(self, net: Any) -> None:
            self.net = net

        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            import io

            from PIL import Image

            rows = []
            for data in model_input["image"]:
                with Image.open(io.BytesIO(data)) as img:
                    rows.append(np.asarray(img.convert("L").resize((28, 28), Image.Resampling.BILINEAR)))
            return torch_probabilities(self.net, np.stack(rows).astype(np.float32) / 255.0)

    class OddModel(mlflow.pyfunc.PythonModel):
        """Answers a shape nobody can read."""

        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            return "cat"

    return {"card": CardModel, "frame": FrameModel, "bytes": BytesModel, "odd": OddModel}


def grayscale_signature() -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Map, Schema, TensorSpec

    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype("float32"), (-1, 28, 28))]),
        outputs=Schema([ColSpec("string", "predicted_class"), ColSpec(Map("double"), "class_probabilities")]),
    )


def save_model(folder: Path, kind: str = "card", *, card: bool = True, seed: int = 0) -> Path:
    """Save one of the test pyfuncs under ``folder/kind`` and return its path."""
    import warnings

    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    cls = _python_model_classes()[kind]
    net = tiny_net(seed)
    signature = grayscale_signature()
    metadata: dict[str, Any] = {"class_names": FASHION}
    if kind == "card":
        metadata["intended_use"] = "clothing photos (FashionMNIST)"
    if kind == "bytes":
        signature = ModelSignature(inputs=Schema([ColSpec("binary", "image")]))
    path = folder / kind
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.pyfunc.save_model(
            str(path),
            python_model=cls() if kind == "odd" else cls(net),
            signature=signature,
            metadata=metadata,
            pip_requirements=["mlflow-skinny", "pandas", "torch"],  # stated: inferring them takes seconds
        )
    if card:
        (path / "model_card.md").write_text(CARD_MD)
    return path


@contextmanager
def scoring_server(model_path: Path) -> Iterator[str]:
    """Serve a saved model with MLflow's own scoring app on loopback; yields the /invocations URL."""
    import mlflow.pyfunc
    import uvicorn
    from mlflow.pyfunc import scoring_server as ss

    app = ss.init(mlflow.pyfunc.load_model(str(model_path)))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the scoring server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/invocations"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def file_store_uri(folder: Path) -> str:
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return folder.resolve().as_uri()
