"""The sklesion Keras model rebuilt in PyTorch from its ``config.json`` and ``model.weights.h5``.

Why not TensorFlow: ``sklesion`` pins ``tensorflow==2.17.0``, which our users cannot always install and the
project must never need. The Keras 3 archive is plain data (a JSON graph and an HDF5 weight file), so this
module walks the graph and runs the same arithmetic in torch. What matters for exact parity, each checked
against the original (tests/fixtures/zoo, max abs probability difference well under 1e-4):

* TF "same" padding is asymmetric on stride-2 convolutions and pools (the extra row/column goes after);
* Keras BatchNormalization epsilon is 1e-3 (read from the config, not torch's 1e-5 default);
* kernels are stored channels-last: Conv2D ``(kh, kw, in, out)``, depthwise ``(kh, kw, in, 1)``,
  pointwise ``(1, 1, in, out)``, Dense ``(in, out)``, so each is transposed for torch;
* Keras 3 stores weights under class-name-plus-counter paths in config order (the config's
  ``block1_conv1`` is ``layers/functional/layers/conv2d``), not under the layer names;
* ``Normalization`` is ``(x - mean) / max(sqrt(var), 1e-7)`` with mean and variance from the h5 file.
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from typing import Any

import numpy as np

__all__ = ["build_sklesion", "read_keras_archive"]


def read_keras_archive(keras_bytes: bytes) -> tuple[dict[str, Any], Any]:
    """The graph config and an open h5py file of a ``.keras`` zip, read from memory."""
    import zipfile

    import h5py

    with zipfile.ZipFile(io.BytesIO(keras_bytes)) as zf:
        config = json.loads(zf.read("config.json"))
        weights = zf.read("model.weights.h5")
    return config, h5py.File(io.BytesIO(weights), "r")


def _snake(class_name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower().replace("2_d", "2d")


def _weight_paths(layers: list[dict[str, Any]], prefix: str) -> dict[str, str]:
    """Layer name -> its h5 group, by Keras 3's class-name-plus-counter rule in config order."""
    counts: Counter[str] = Counter()
    paths = {}
    for layer in layers:
        base = _snake(layer["class_name"])
        n = counts[base]
        counts[base] += 1
        paths[layer["config"]["name"]] = f"{prefix}/{base}" + (f"_{n}" if n else "")
    return paths


def _sources(layer: dict[str, Any]) -> list[str]:
    """Names of the layers feeding ``layer`` (its first inbound node)."""
    found: list[str] = []

    def walk(obj: Any) -> None:
        if isinstance(obj, dict):
            if obj.get("class_name") == "__keras_tensor__":
                found.append(obj["config"]["keras_history"][0])
                return
            for value in obj.values():
                walk(value)
        elif isinstance(obj, list):
            for value in obj:
                walk(value)

    nodes = layer.get("inbound_nodes") or []
    if nodes:
        walk(nodes[0].get("args", []))
    return found


def build_sklesion(keras_bytes: bytes) -> Any:
    """A ``torch.nn.Module`` computing ``probs = model(image_nhwc_0_255, meta10)``, in eval mode."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    config, h5 = read_keras_archive(keras_bytes)

    def var(group: str, i: int) -> torch.Tensor:
        return torch.from_numpy(np.asarray(h5[f"{group}/vars/{i}"], dtype=np.float32))

    def same_pad(x: torch.Tensor, k: tuple[int, int], s: tuple[int, int], value: float = 0.0) -> torch.Tensor:
        pads = []  # python ints: constants in an ONNX trace (the input size is fixed), exact in eager mode
        for size, kk, ss in ((int(x.shape[3]), k[1], s[1]), (int(x.shape[2]), k[0], s[0])):
            total = max(((size + ss - 1) // ss - 1) * ss + kk - size, 0)
            pads += [total // 2, total - total // 2]
        return F.pad(x, pads, value=value) if any(pads) else x

    class Graph(nn.Module):
        """One Keras Functional graph, run layer by layer in config order (already topological)."""

        def __init__(self, spec: dict[str, Any], prefix: str) -> None:
            super().__init__()
            self.spec = spec["config"]["layers"]
            self.inputs = [x[0] for x in spec["config"]["input_layers"]]
            outs = spec["config"]["output_layers"]
            self.output = (outs[0] if isinstance(outs[0], list) else outs)[0]
            self.paths = _weight_paths(self.spec, prefix)
            self.mods = nn.ModuleDict()
            self.plan: list[tuple[str, str, list[str], dict[str, Any]]] = []
            for layer in self.spec:
                kind, cfg, name = layer["class_name"], layer["config"], layer["config"]["name"]
                if kind == "InputLayer":
                    continue
                path = self.paths[name]
                key = name.replace(".", "_")
                if kind == "Functional":
                    self.mods[key] = Graph(layer, f"{path}/layers")
                elif kind == "Conv2D":
                    w = var(path, 0).permute(3, 2, 0, 1)
                    conv = nn.Conv2d(
                        w.shape[1], w.shape[0], w.shape[2:], stride=cfg["strides"], bias=cfg["use_bias"]
                    )
                    conv.weight.data = w
                    if cfg["use_bias"]:
                        conv.bias.data = var(path, 1)
                    self.mods[key] = conv
                elif kind == "SeparableConv2D":
                    dw = var(path, 0).permute(2, 3, 0, 1)  # (kh, kw, in, 1) -> (in, 1, kh, kw)
                    pw = var(path, 1).permute(3, 2, 0, 1)
                    depth = nn.Conv2d(
                        dw.shape[0],
                        dw.shape[0],
                        dw.shape[2:],
                        stride=cfg["strides"],
                        groups=dw.shape[0],
                        bias=False,
                    )
                    depth.weight.data = dw
                    point = nn.Conv2d(pw.shape[1], pw.shape[0], 1, bias=cfg["use_bias"])
                    point.weight.data = pw
                    if cfg["use_bias"]:
                        point.bias.data = var(path, 2)
                    self.mods[key] = nn.ModuleDict({"depth": depth, "point": point})
                elif kind == "BatchNormalization":
                    gamma, beta, mean, variance = (var(path, i) for i in range(4))
                    bn = nn.BatchNorm1d(len(gamma), eps=cfg["epsilon"])
                    bn.weight.data, bn.bias.data = gamma, beta
                    bn.running_mean.data, bn.running_var.data = mean, variance
                    self.mods[key] = bn
                elif kind == "Dense":
                    dense = nn.Linear(*h5[f"{path}/vars/0"].shape)
                    dense.weight.data, dense.bias.data = var(path, 0).T.contiguous(), var(path, 1)
                    self.mods[key] = dense
                elif kind == "Normalization":
                    mean, variance = var(path, 0), var(path, 1)
                    self.register_buffer(f"{key}_mean", mean.reshape(-1))
                    self.register_buffer(f"{key}_std", variance.reshape(-1).sqrt().clamp_min(1e-7))
                elif kind not in (
                    "Activation",
                    "Add",
                    "MaxPooling2D",
                    "GlobalAveragePooling2D",
                    "Dropout",
                    "Concatenate",
                ):
                    raise ValueError(f"sklesion graph: unsupported Keras layer {kind} ({name})")
                self.plan.append((kind, key, _sources(layer), cfg))

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            values = dict(zip(self.inputs, inputs))
            for kind, key, srcs, cfg in self.plan:
                x = values[srcs[0]] if srcs else None
                values[cfg["name"]] = self._layer(kind, key, cfg, x, [values[s] for s in srcs])
            return values[self.output]

        def _layer(self, kind: str, key: str, cfg: dict[str, Any], x: Any, xs: list[Any]) -> torch.Tensor:
            if kind == "Functional":
                return self.mods[key](*xs)
            if kind == "Normalization":  # channels-last input (N, H, W, C) -> channels-first for the convs
                normed = (x - getattr(self, f"{key}_mean")) / getattr(self, f"{key}_std")
                return normed.permute(0, 3, 1, 2)
            if kind in ("Conv2D", "SeparableConv2D"):
                k, s = tuple(cfg["kernel_size"]), tuple(cfg["strides"])
                if cfg["padding"] == "same":
                    x = same_pad(x, k, s)
                if kind == "Conv2D":
                    return self.mods[key](x)
                return self.mods[key]["point"](self.mods[key]["depth"](x))
            if kind == "BatchNormalization":
                bn = self.mods[key]
                shape = (1, -1, 1, 1) if x.dim() == 4 else (1, -1)
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                return (x - bn.running_mean.reshape(shape)) * scale.reshape(shape) + bn.bias.reshape(shape)
            if kind == "Dense":
                y = self.mods[key](x)
                return _activation(y, cfg.get("activation", "linear"))
            if kind == "Activation":
                return _activation(x, cfg["activation"])
            if kind == "Add":
                out = xs[0]
                for other in xs[1:]:
                    out = out + other
                return out
            if kind == "MaxPooling2D":
                k, s = tuple(cfg["pool_size"]), tuple(cfg["strides"])
                if cfg["padding"] == "same":
                    x = same_pad(x, k, s, value=float("-inf"))
                return F.max_pool2d(x, k, s)
            if kind == "GlobalAveragePooling2D":
                return x.mean(dim=(2, 3))
            if kind == "Concatenate":
                return torch.cat(xs, dim=-1)
            return x  # Dropout: identity at inference

    def _activation(x: torch.Tensor, name: str) -> torch.Tensor:
        if name == "relu":
            return torch.relu(x)
        if name == "softmax":
            return torch.softmax(x, dim=-1)
        if name == "linear":
            return x
        raise ValueError(f"sklesion graph: unsupported activation {name}")

    model = Graph(config, "layers")
    h5.close()
    return model.eval()
