"""``run_compare``: the whole comparison as one call (the ``cloudderm compare`` command is a thin shell).

Order matters and is the contract: (1) read the config and open the dataset (bad input fails before
anything else), (2) build every chosen provider, which checks the governance policy, so a refused
provider stops the run before the first byte of any image is sent to any provider, (3) run, storing
each answer as it arrives, (4) export ``predictions.jsonl`` from the store, (5) summarise and write the
reports, (6) print the side-by-side table when a console is given.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cloudderm.compare.datasets import Dataset, DatasetError, open_dataset
from cloudderm.compare.export import ExportTarget, export_predictions
from cloudderm.compare.outdir import OutputFolder
from cloudderm.compare.pool import WorkerPool, default_workers, runs_in_worker
from cloudderm.compare.progress import make_progress
from cloudderm.compare.runner import DEFAULT_BREAKER_THRESHOLD, ProviderPlan, Runner, RunOutcome
from cloudderm.compare.store import ResultStore, config_hash
from cloudderm.config import Config, load_config
from cloudderm.errors import CompareInterrupted, ConfigError
from cloudderm.startup import start_providers
from cloudderm.taxonomy import get_taxonomy

if TYPE_CHECKING:
    from cloudderm.classifier import Classifier

__all__ = ["CompareInterrupted", "run_compare"]

RESULTS_DB = "results.sqlite"
PREDICTIONS = "predictions.jsonl"


def run_compare(
    dataset: str | os.PathLike | Dataset,
    *,
    config: Config | str | os.PathLike | None = None,
    providers: Sequence[str] | None = None,
    out: str | os.PathLike = "cloudderm-out",
    labels: str | os.PathLike | None = None,
    subgroups: Sequence[str] = (),
    concurrency: int | None = None,
    limit: int | None = None,
    resume: bool = True,
    policy: Literal["enforce", "warn"] | None = None,
    baseline: str | os.PathLike | None = None,
    volume: int | None = None,
    split: str | None = None,
    progress: bool | None = None,
    console: Any = None,
    breaker_threshold: int = DEFAULT_BREAKER_THRESHOLD,
    resume_hint: str | None = None,
    sleep: Callable[[float], None] | None = None,
    workers: int | None = None,
    engine: Literal["local", "ray"] = "local",
    ray_address: str | None = None,
) -> dict:
    """Send every image of ``dataset`` to every chosen provider and write the comparison to ``out``.

    Writes ``results.sqlite`` (resumable store), ``predictions.jsonl``, ``summary.json``, ``report.md``
    and ``report.html`` under ``out``. Re-running with the same arguments resumes: an (image, provider
    settings) pair already answered is never sent again.

    Args:
        dataset: a folder of images, a parquet/arrow file or folder, a ``.npz``, or an opened ``Dataset``.
        config: a ``Config``, a path, or None for the usual search (``./cloudderm.yaml``,
            ``$CLOUDDERM_CONFIG``).
        providers: provider names from the config (default: all of them).
        out: output folder.
        labels: labels CSV (see ``open_dataset``).
        subgroups: metadata columns to break metrics down by (e.g. ``sex``, ``localization``).
        concurrency: threads per provider, overriding each provider's ``concurrency`` setting.
        limit: only the first ``limit`` images.
        resume: False deletes the store first (``--no-resume``).
        policy: override the config's policy mode: ``"enforce"`` refuses, ``"warn"`` records.
        baseline: an earlier output folder to diff against in the report.
        volume: images per month, recorded for cost projections in the report.
        split: dataset split for ``.npz`` / multi-split tables.
        progress: draw progress bars (None: only when ``console`` is a terminal).
        console: a ``rich.console.Console`` for bars and the final table; None prints nothing.
        breaker_threshold: consecutive failed calls that stop calling a provider (0: never).
        resume_hint: the command to show when interrupted (the CLI passes its own command line).
        sleep: wait function for retries and rate limiting (tests inject a fake).
        workers: processes for preparation and the local models that load cheaply (None:
            ``$CLOUDDERM_WORKERS``, else one per core up to 8; 1: everything in this process). Cloud
            calls stay on threads here. With ``engine="ray"``: shards (preparers and local-model
            replicas) on the cluster, default its CPUs up to 8.
        engine: ``"local"`` (this machine) or ``"ray"``: preparation and every provider's calls run on a
            Ray cluster, under cluster-wide limits, while this process stays the one writer of the store
            (docs/compare.md, "Scaling out with Ray").
        ray_address: the Ray cluster to join (``engine="ray"`` only; default ``$RAY_ADDRESS``, else a
            local Ray started for this run).

    Returns:
        The ``summary.json`` dict (``cloudderm.results.Summary``) plus this run's counts under ``run``.

    Raises:
        ConfigError / DatasetError: bad config, dataset, labels or subgroup column.
        PolicyViolation: a chosen provider breaks the policy in ``enforce`` mode (nothing was sent).
        CompareInterrupted: Ctrl-C; answers so far are stored, and re-running resumes.

    Example:
        >>> from rich.console import Console
        >>> summary = run_compare("images/", config="cloudderm.yaml", labels="labels.csv",
        ...                       out="out", console=Console())  # doctest: +SKIP
        >>> summary["providers"]["skin-vit"]["balanced_accuracy"]  # doctest: +SKIP
    """
    cfg = config if isinstance(config, Config) else load_config(config)
    if policy is not None:
        cfg = cfg.model_copy(update={"policy": cfg.policy.model_copy(update={"mode": policy})})
    names = cfg.select(providers)
    try:
        taxonomy = get_taxonomy(cfg.taxonomy, cfg.labels)
    except ValueError as e:
        raise ConfigError(str(e), file=cfg.source, field="taxonomy") from None
    if isinstance(dataset, Dataset):
        if labels is not None or split is not None:
            raise ConfigError("labels and split apply when opening a dataset: pass them to open_dataset()")
        data = dataset
    else:
        data = open_dataset(dataset, labels=labels, taxonomy=taxonomy, split=split)
    unknown = [c for c in subgroups if c not in data.columns]
    if unknown:
        raise DatasetError(
            f"no metadata column {', '.join(map(repr, unknown))} for --subgroup; "
            f"columns: {', '.join(data.columns) or 'none (give --labels with metadata columns)'}"
        )
    if limit is not None and limit < 1:
        raise ConfigError("--limit must be at least 1")
    data = data.head(limit)
    out_dir = Path(out)
    if engine not in ("local", "ray"):
        raise ConfigError(f"unknown engine {engine!r}: expected 'local' or 'ray'")
    if ray_address is not None and engine != "ray":
        raise ConfigError("--ray-address needs --engine ray")
    if engine == "ray":
        from cloudderm.compare.ray_engine import check_address, import_ray

        import_ray()  # a missing [ray] extra, or no cluster at the address, is exit 2 before any model loads
        probe = ray_address if ray_address is not None else os.environ.get("RAY_ADDRESS")
        if probe not in (None, "", "auto", "local"):
            check_address(probe)
        n_workers = workers  # None: the cluster's CPUs, up to 8 (known once connected)
    else:
        n_workers = default_workers() if workers is None else workers
    if n_workers is not None and n_workers < 1:
        raise ConfigError("--workers must be at least 1")
    if baseline is not None:
        from cloudderm.report import check_baseline

        check_baseline(Path(baseline))  # a mistyped --baseline fails now, not after the run
    classifiers = _build_all(cfg, names)  # policy first: a refused run leaves nothing on disk
    try:
        folder = OutputFolder(out_dir).acquire()  # a bad or busy -o fails before any model loads
    except BaseException:
        _close_all(classifiers)
        raise
    with folder:
        try:
            started = time.perf_counter()
            start_providers(classifiers)  # secrets checked; model loads never count as the first latency
            seconds = {"start": time.perf_counter() - started}
            plans = [
                ProviderPlan(
                    name=clf.name,
                    classifier=clf,
                    config_hash=config_hash(clf.settings, clf.hash_extras()),
                    concurrency=concurrency or clf.settings.concurrency or cfg.defaults.concurrency,
                    requests_per_second=clf.settings.requests_per_second,
                )
                for clf in classifiers
            ]
            with (
                _executor(engine, plans, n_workers, ray_address) as pool,
                ResultStore(out_dir / RESULTS_DB, resume=resume) as store,
            ):
                runner = Runner(
                    plans,
                    store,
                    progress=make_progress(progress, console),
                    sleep=sleep,
                    breaker_threshold=breaker_threshold,
                    pool=pool,
                )
                started = time.perf_counter()
                outcome = runner.run(iter(data), len(data))
                seconds["run"] = time.perf_counter() - started
                started = time.perf_counter()
                if outcome.interrupted:
                    hint = resume_hint or "call run_compare again with the same arguments"
                    message = (
                        f"interrupted: every answer received so far is saved in {out_dir / RESULTS_DB}. "
                        f"To resume without repeating any call, run: {hint}"
                    )
                    raise CompareInterrupted(message, outcome, out_dir)
                counts = export_predictions(
                    store,
                    out_dir / PREDICTIONS,
                    [
                        ExportTarget(
                            p.name,
                            p.config_hash,
                            p.classifier.taxonomy,
                            tuple(p.classifier.standing_warnings),
                        )
                        for p in plans
                    ],
                )
            summary = _summarise(
                out_dir, data, plans, outcome, counts, subgroups, taxonomy, limit, volume, cfg.policy
            )
            summary["run"]["workers"] = pool.workers if pool is not None else 1
            summary["run"]["engine"] = engine
            seconds["summarise"] = time.perf_counter() - started  # export, metrics, cost, risks
            # where the wall time went (start-up, the run itself, summarising; reports come after this is
            # written): what `--workers` / `--engine` can speed up is "run"
            summary["run"]["seconds"] = {key: round(value, 3) for key, value in seconds.items()}
            from cloudderm.report import render_terminal, write_reports

            write_reports(
                out_dir,
                summary,
                out_dir / PREDICTIONS,
                images_root=data.images_root,
                baseline_dir=Path(baseline) if baseline is not None else None,
            )
            if baseline is not None:  # write_reports diffs a copy; the terminal and the caller see it too
                written = json.loads((out_dir / "summary.json").read_text(encoding="utf-8"))
                summary["baseline_diff"] = written.get("baseline_diff")
            if console is not None:
                render_terminal(summary, console)
            return summary
        finally:
            _close_all(classifiers)


def _executor(
    engine: str, plans: Sequence[ProviderPlan], workers: int | None, ray_address: str | None
) -> Any:
    """Where CPU work and calls run (a context manager yielding an ``Executor``, or None for threads here).

    A provider whose calls move out of this process gets enough of the runner's threads to keep every
    worker or replica busy (``plan.concurrency`` is raised to match).
    """
    if engine == "ray":
        from cloudderm.compare.ray_engine import RayEngine

        ray_engine = RayEngine(plans, workers=workers, address=ray_address)
        for plan in plans:
            plan.concurrency = ray_engine.lane_threads(plan)
        return ray_engine
    if not workers or workers <= 1:
        return nullcontext()
    local = {
        p.config_hash: p.classifier
        for p in plans
        if runs_in_worker(p.classifier) and p.classifier.worker_startup_is_light()
    }
    for plan in plans:
        if plan.config_hash in local:
            plan.concurrency = max(plan.concurrency, workers)
    return WorkerPool(workers, local)


def _close_all(classifiers: Sequence[Classifier]) -> None:
    for clf in classifiers:
        clf.close()


def _build_all(cfg: Config, names: Sequence[str]) -> list[Classifier]:
    """Build every provider (policy checked in each) before any is used; on failure close what was built."""
    from cloudderm.factory import build_classifier

    built: list[Classifier] = []
    try:
        for name in names:
            built.append(build_classifier(name, cfg))
    except BaseException:
        for clf in built:
            clf.close()
        raise
    return built


def _summarise(
    out_dir: Path,
    data: Dataset,
    plans: Sequence[ProviderPlan],
    outcome: RunOutcome,
    counts: dict,
    subgroups: Sequence[str],
    taxonomy: Any,
    limit: int | None,
    volume: int | None,
    policy: Any,
) -> dict:
    """Metrics, then the cost projection and risk register that read them (all into summary.json)."""
    from cloudderm.compare.summary import build_summary
    from cloudderm.governance.risk import risk_register
    from cloudderm.pricing import catalog_as_of
    from cloudderm.pricing.section import DEFAULT_VOLUME, attach_projections, cost_section

    providers: dict[str, dict] = {}
    for plan in plans:
        clf = plan.classifier
        warnings = list(clf.standing_warnings)
        stats = outcome.providers[plan.name]
        if stats.breaker:
            warnings.append(stats.breaker)
        providers[plan.name] = {
            "adapter": clf.adapter,
            "model": clf.model_id,
            "region": clf.service_facts().region,
            "config_hash": plan.config_hash,
            "warnings": warnings,
            "governance": clf.governance.model_dump(mode="json"),
        }
    dataset = {**data.describe(), "limit": limit, "invalid_images": outcome.invalid_images}
    summary = build_summary(
        out_dir / PREDICTIONS,
        providers=providers,
        dataset=dataset,
        subgroups=list(subgroups),
        taxonomy=taxonomy,
        pricing_as_of=catalog_as_of(),
    )
    summary["volume"] = {"images_per_month": volume or DEFAULT_VOLUME, "assumed": volume is None}
    section = cost_section([p.classifier for p in plans], summary, volume or DEFAULT_VOLUME)
    summary["cost"] = attach_projections(summary, section)  # figures: providers.*.cost_usd.projected
    summary["risks"] = risk_register(summary, summary.get("governance") or {}, policy)
    summary["run"] = {
        "out": str(out_dir),
        "status": {name: dict(c) for name, c in counts.items()},
        "calls": {name: s.calls for name, s in outcome.providers.items()},
        "reused": {name: s.reused for name, s in outcome.providers.items()},
        "breaker": {name: s.breaker for name, s in outcome.providers.items() if s.breaker},
        "unprepared": dict(outcome.unprepared),
    }
    return summary
