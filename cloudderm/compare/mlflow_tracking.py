"""Log a finished comparison to MLflow tracking: one parent run, one child run per provider.

Everything is read back from the comparison's output folder (``summary.json``, the reports,
``predictions.jsonl`` and ``results.sqlite``), so logging is one call after the comparison and can be
repeated later. The parent run gets the dataset, its hash, the taxonomy, the comparison's config hash and
the cloudderm version as params, and the four output files as artifacts. Each child run gets its
provider's settings (secret fields are never stored in ``results.sqlite``, so never logged), every numeric
summary metric (flattened: ``balanced_accuracy``, ``melanoma_sensitivity``, ``triage_sensitivity``,
``ece``, ``latency_ms.p50``, ``latency_ms.p95``, ``cost_usd.per_1k``, ``answer_rate`` when present, ...)
and its governance card as ``governance.json``.

Resume: the run ids are kept in ``results.sqlite`` (``meta`` table), keyed by tracking URI, experiment
and comparison, so re-running the same comparison updates the same runs (metrics get the next step).
Failures never touch the comparison's own outputs: ``log_comparison_safely`` warns and returns None.

Where runs go: ``$MLFLOW_TRACKING_URI`` when set, else a file store at ``<out>/mlruns``. Recent MLflow
refuses file stores unless ``MLFLOW_ALLOW_FILE_STORE=true``; cloudderm sets that for its own default only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudderm.errors import CloudDermError, MissingDependencyError
from cloudderm.redact import mask_values

__all__ = [
    "DEFAULT_EXPERIMENT",
    "MlflowLogged",
    "flatten_metrics",
    "log_comparison",
    "log_comparison_safely",
    "require_mlflow",
]

DEFAULT_EXPERIMENT = "cloudderm"
ARTIFACTS = ("summary.json", "report.html", "report.md", "predictions.jsonl")
_META_KEY = "mlflow.runs"
_KIND_TAG = "mlflow.experimentKind"  # model development, not a GenAI (traces) experiment
_NOT_METRICS = ("confusion", "calibration", "prediction_warnings")  # matrices, and counts keyed by free text
_BAD_KEY_CHARS = re.compile(r"[^A-Za-z0-9_\-. /]")
_MAX_PARAM = 6000


@dataclass
class MlflowLogged:
    """Where a comparison was logged."""

    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    child_run_ids: dict[str, str] = field(default_factory=dict)
    step: int = 0
    resumed: bool = False


def require_mlflow() -> None:
    """Fail before any image is sent when ``--mlflow`` is asked for but MLflow is not installed."""
    try:
        import mlflow  # noqa: F401
    except ImportError as e:
        from cloudderm.errors import install_hint

        raise MissingDependencyError(install_hint("mlflow", "MLflow tracking (--mlflow)")) from e


def flatten_metrics(entry: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Every finite numeric leaf reachable through dicts, as ``a.b.c`` keys MLflow accepts."""
    out: dict[str, float] = {}
    for key, value in entry.items():
        name = _BAD_KEY_CHARS.sub("_", f"{prefix}{key}")
        if isinstance(value, Mapping):
            out.update(flatten_metrics(value, f"{name}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[name] = float(value)
    return out


def log_comparison_safely(
    out: str | os.PathLike, *, experiment: str | None = None, warn: Any = None
) -> MlflowLogged | None:
    """``log_comparison``, with any failure turned into a warning (the outputs are already written)."""
    try:
        return log_comparison(out, experiment=experiment)
    except Exception as e:  # tracking must never cost the comparison its outputs
        said = mask_values(str(e), _mlflow_secrets())[:300]
        message = (
            f"MLflow tracking failed ({type(e).__name__}: {said}); the comparison's outputs "
            f"in {out} are complete. Re-run the same command with --mlflow to log it."
        )
        if warn is not None:
            warn(message)
        else:
            import warnings

            warnings.warn(message, stacklevel=2)
        return None


def _mlflow_secrets() -> list[str | None]:
    """MLflow's own credentials (password in the URI, password or token variables), to mask by value."""
    from urllib.parse import urlsplit

    secrets = [os.environ.get(v) for v in ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")]
    try:
        secrets.append(urlsplit(os.environ.get("MLFLOW_TRACKING_URI", "")).password)
    except ValueError:
        pass
    return secrets


def log_comparison(out: str | os.PathLike, *, experiment: str | None = None) -> MlflowLogged:
    """Log the comparison in ``out`` (parent run + one child per provider); reuse runs logged before."""
    require_mlflow()
    out_dir = Path(out)
    summary = json.loads((out_dir / "summary.json").read_text(encoding="utf-8"))
    db = out_dir / "results.sqlite"
    settings, dataset_hash = _from_store(db)
    experiment = experiment or DEFAULT_EXPERIMENT
    providers: dict[str, dict] = summary.get("providers") or {}
    hashes = {name: str(p.get("config_hash")) for name, p in providers.items()}
    comparison_hash = _digest(json.dumps(sorted(hashes.items())))
    with _tracking_uri(out_dir) as tracking_uri:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)  # no registry use
        exp = client.get_experiment_by_name(experiment)
        experiment_id = (
            exp.experiment_id
            if exp is not None
            else client.create_experiment(experiment, tags={_KIND_TAG: "custom_model_development"})
        )
        key = f"{tracking_uri}|{experiment_id}|{comparison_hash}|{dataset_hash}"
        known = _load_ids(db).get(key, {})
        parent_id = _existing(client, known.get("parent"), experiment_id)
        resumed = parent_id is not None
        step = int(known.get("step", -1)) + 1 if resumed else 0
        if parent_id is None:
            parent_id = client.create_run(
                experiment_id, run_name=f"compare {_dataset_name(summary)}"
            ).info.run_id
        logged = MlflowLogged(tracking_uri, experiment_id, parent_id, step=step, resumed=resumed)
        _save_ids(db, key, {"parent": parent_id, "children": known.get("children", {}), "step": step})
        _log_parent(client, parent_id, out_dir, summary, dataset_hash, comparison_hash, step)
        children: dict[str, str] = dict(known.get("children") or {})
        for name, entry in providers.items():
            child_key = f"{name}|{hashes[name]}"
            run_id = _existing(client, children.get(child_key), experiment_id)
            if run_id is None:
                run_id = client.create_run(
                    experiment_id, run_name=name, tags={"mlflow.parentRunId": parent_id}
                ).info.run_id
                children[child_key] = run_id
                _save_ids(db, key, {"parent": parent_id, "children": children, "step": step})
            _log_child(client, run_id, name, entry, summary, settings.get(hashes[name], {}), step)
            logged.child_run_ids[name] = run_id
        client.set_terminated(parent_id)
    return logged


# ---- what goes into each run ------------------------------------------------------------------------------
def _log_parent(
    client: Any, run_id: str, out_dir: Path, summary: dict, dataset_hash: str, comparison_hash: str, step: int
) -> None:
    from mlflow.entities import Metric, Param, RunTag

    from cloudderm import __version__

    dataset = summary.get("dataset") or {}
    params = {
        "dataset": dataset.get("path"),
        "dataset_format": dataset.get("format"),
        "dataset_hash": dataset_hash,
        "labels_file": dataset.get("labels_file"),
        "taxonomy": (summary.get("taxonomy") or {}).get("name"),
        "config_hash": comparison_hash,
        "cloudderm_version": __version__,
        "providers": ", ".join(summary.get("providers") or {}),
    }
    now = int(time.time() * 1000)
    metrics = {f"dataset.{k}": v for k, v in flatten_metrics(dataset).items() if "label_counts" not in k}
    for pair, agreement in (summary.get("agreement") or {}).items():
        for k, v in flatten_metrics(agreement).items():
            metrics[f"agreement.{pair.replace('|', '.vs.')}.{k}"] = v
    client.log_batch(
        run_id,
        metrics=[Metric(_key(k), v, now, step) for k, v in metrics.items()],
        params=_new_params(client, run_id, params, Param),
        tags=[RunTag("cloudderm.kind", "comparison"), RunTag("cloudderm.out", str(out_dir))],
    )
    for name in ARTIFACTS:
        path = out_dir / name
        if path.is_file():
            client.log_artifact(run_id, str(path))


def _log_child(
    client: Any, run_id: str, name: str, entry: dict, summary: dict, settings: Mapping[str, Any], step: int
) -> None:
    from mlflow.entities import Metric, Param, RunTag

    params = {f"settings.{k}": v for k, v in _flat_params(settings).items()}
    params.update(
        {"provider": name, "adapter": entry.get("adapter"), "model": entry.get("model"),
         "config_hash": entry.get("config_hash"), "region": entry.get("region")}
    )  # fmt: skip
    metrics = flatten_metrics({k: v for k, v in entry.items() if k not in _NOT_METRICS})
    cost = (summary.get("cost") or {}).get(name)
    if isinstance(cost, Mapping):
        metrics.update(flatten_metrics(cost, "cost_estimate."))
    now = int(time.time() * 1000)
    flags = entry.get("flags") or []
    tags = [RunTag("cloudderm.kind", "provider"), RunTag("cloudderm.provider", name)]
    if flags:
        tags.append(RunTag("cloudderm.flags", "; ".join(flags)[:_MAX_PARAM]))
    client.log_batch(
        run_id,
        metrics=[Metric(_key(k), v, now, step) for k, v in metrics.items()],
        params=_new_params(client, run_id, params, Param),
        tags=tags,
    )
    card = (summary.get("governance") or {}).get(name)
    if card is not None:
        client.log_dict(run_id, card, "governance.json")
    client.set_terminated(run_id)


def _new_params(client: Any, run_id: str, params: Mapping[str, Any], param_cls: Any) -> list[Any]:
    """Params not yet on the run (MLflow params are write-once; a resumed run already has them)."""
    existing = client.get_run(run_id).data.params
    out = []
    for key, value in params.items():
        if value is None:
            continue
        text = str(value)[:_MAX_PARAM]
        k = _key(key)
        if k not in existing:
            out.append(param_cls(k, text))
    return out


def _flat_params(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, Mapping) and value:
            out.update(_flat_params(value, f"{prefix}{key}."))
        elif value is not None:
            out[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, (list, dict)) else value
    return out


def _key(name: str) -> str:
    return _BAD_KEY_CHARS.sub("_", name)[:250]


def _dataset_name(summary: Mapping[str, Any]) -> str:
    path = (summary.get("dataset") or {}).get("path") or "dataset"
    return Path(str(path)).name or str(path)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---- results.sqlite: settings, the dataset's identity, run ids --------------------------------------------
def _from_store(db: Path) -> tuple[dict[str, dict], str]:
    """(config hash -> public settings, dataset hash over the run's images, their bytes and truths)."""
    if not db.is_file():
        raise CloudDermError(f"{db} is missing: log_comparison needs a finished comparison's output folder")
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
        settings = {h: json.loads(s) for h, s in conn.execute("SELECT config_hash, settings FROM providers")}
        digest = hashlib.sha256()
        for image, sha, truth in conn.execute("SELECT image, sha256, truth FROM run_items ORDER BY seq"):
            digest.update(f"{image}\0{sha}\0{truth}\n".encode())
    return settings, digest.hexdigest()[:16]


def _load_ids(db: Path) -> dict[str, Any]:
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (_META_KEY,)).fetchone()
    return json.loads(row[0]) if row else {}


def _save_ids(db: Path, key: str, value: dict[str, Any]) -> None:
    """Record run ids as soon as they exist, so an interrupted logging run reuses them too."""
    with contextlib.closing(sqlite3.connect(db, timeout=30, isolation_level=None)) as conn:
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (_META_KEY,)).fetchone()
        ids = json.loads(row[0]) if row else {}
        ids[key] = value
        conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (_META_KEY, json.dumps(ids)))
        conn.execute("COMMIT")


def _existing(client: Any, run_id: str | None, experiment_id: str) -> str | None:
    """``run_id`` when that run still exists (not deleted) in the experiment; else None."""
    if not run_id:
        return None
    try:
        run = client.get_run(run_id)
    except Exception:
        return None
    if run.info.experiment_id != experiment_id or run.info.lifecycle_stage != "active":
        return None
    return run_id


@contextlib.contextmanager
def _tracking_uri(out_dir: Path) -> Iterator[str]:
    """``$MLFLOW_TRACKING_URI``, else a file store under ``out`` (file stores allowed for that one only)."""
    configured = os.environ.get("MLFLOW_TRACKING_URI")
    if configured:
        yield configured
        return
    folder = (out_dir / "mlruns").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    previous = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        yield folder.as_uri()
    finally:
        if previous is None:
            os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
        else:
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = previous
