"""Models whose correct explanation is known by construction, and a classifier that serves them.

``QuadrantNet``'s logits depend only on the top-left quadrant of its input: a fixed mask zeroes every
feature outside it before the last convolution. Any faithful map must therefore put (almost) all its mass
there; the only spill allowed is the last convolution's one-pixel reach across the quadrant's edge.

``train_blob_net`` trains a tiny CNN to detect a bright blob anywhere in noise, so its Grad-CAM depends on
learnt weights, not on the architecture: the randomisation check must separate it from its randomised copy.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from pydantic import Field

from cloudderm.classifier import AdapterSettings, Classifier, RawResult
from cloudderm.explain.torch_target import TorchTarget
from cloudderm.governance.card import ModelFacts, ServiceFacts
from cloudderm.images import PreparedImage

SIZE = 32
LABELS = ["mel", "nv"]


class QuadrantNet(torch.nn.Module):
    def __init__(self, size: int = SIZE) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.conv1 = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.head = torch.nn.Linear(4, 2)
        with torch.no_grad():  # positive features of brightness; class 0 rises with them, class 1 falls
            self.conv1.weight.copy_(torch.rand(self.conv1.weight.shape, generator=generator) / 9)
            self.conv1.bias.zero_()
            self.conv2.weight.copy_(torch.rand(self.conv2.weight.shape, generator=generator) / 9)
            self.head.weight.copy_(torch.tensor([[4.0] * 4, [-4.0] * 4]))
            self.head.bias.copy_(torch.tensor([-2.0, 2.0]))
        mask = torch.zeros(1, 1, size, size)
        mask[..., : size // 2, : size // 2] = 1.0
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = torch.relu(self.conv1(x)) * self.mask
        features = torch.relu(self.conv2(features))
        return self.head(features.mean(dim=(2, 3)))


def preprocess(image: Image.Image) -> np.ndarray:
    pixels = np.asarray(
        image.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR), dtype=np.float32
    )
    return (pixels / 255.0).transpose(2, 0, 1)


def torch_target(model: torch.nn.Module, top_layers: Sequence[str] = ("head", "conv2")) -> TorchTarget:
    return TorchTarget(
        model=model.eval(),
        labels=list(LABELS),
        preprocess=preprocess,
        gradcam_layer="conv2",
        top_layers=top_layers,
    )


class NetSettings(AdapterSettings):
    adapter: str = "tests.explain.models:NetClassifier"
    model: str = Field(default="quadrant")


class NetClassifier(Classifier):
    """A local classifier answering with a torch model; hands the model out for gradient methods."""

    adapter = "quadrant-test"
    Settings = NetSettings

    def __init__(
        self, name: str, settings: NetSettings | None = None, *, net: torch.nn.Module | None = None, **kw
    ):
        super().__init__(name, settings or NetSettings(), **kw)
        self.net = net if net is not None else QuadrantNet()
        self.sent = 0

    @property
    def model_id(self) -> str:
        return self.settings.model  # type: ignore[attr-defined]

    def service_facts(self) -> ServiceFacts:
        return ServiceFacts(service="test network", vendor="local", region="local", data_leaves_machine=False)

    def model_facts(self) -> ModelFacts:
        return ModelFacts(model_id=self.model_id, intended_use="tests", labels=list(LABELS), source="tests")

    def explain_target(self) -> TorchTarget:
        return torch_target(self.net)

    def _infer(self, images: Sequence[PreparedImage]) -> list[RawResult]:
        self.sent += len(images)
        batch = torch.from_numpy(np.stack([preprocess(img.to_pil()) for img in images]))
        with torch.no_grad():
            probs = torch.softmax(self.net(batch), dim=-1).numpy()
        return [RawResult(labels=list(zip(LABELS, row.tolist()))) for row in probs]


def textured_image(size: int = 64, seed: int = 0) -> bytes:
    """Mid-grey noise with bright squares in the top-left and bottom-right quadrants (the latter a decoy)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(60, 120, size=(size, size, 3)).astype(np.uint8)
    q = size // 2
    pixels[q // 4 : q - q // 4, q // 4 : q - q // 4] = 230
    pixels[q + q // 4 : size - q // 4, q + q // 4 : size - q // 4] = 230
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def quadrant_share(saliency: np.ndarray) -> float:
    height, width = saliency.shape
    total = float(saliency.sum())
    return float(saliency[: height // 2, : width // 2].sum()) / total if total > 0 else 0.0


class BlobNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.head = torch.nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        return self.head(x.amax(dim=(2, 3)))


def blob_batch(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise images; label 0 ('mel') when a bright 6x6 blob sits at a random place, else 1."""
    x = torch.rand(n, 3, SIZE, SIZE, generator=generator) * 0.5
    y = torch.randint(0, 2, (n,), generator=generator)
    for i in range(n):
        if y[i] == 0:
            r, c = torch.randint(0, SIZE - 6, (2,), generator=generator).tolist()
            x[i, :, r : r + 6, c : c + 6] = 1.0
    return x, y


def train_blob_net(steps: int = 120, seed: int = 0) -> BlobNet:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    net = BlobNet()
    optimiser = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(steps):
        x, y = blob_batch(32, generator)
        loss = torch.nn.functional.cross_entropy(net(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return net.eval()


def blob_image(size: int = 64, seed: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = (rng.random((size, size, 3)) * 127).astype(np.uint8)
    pixels[40:52, 12:24] = 255
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()
