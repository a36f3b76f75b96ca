"""``compare --engine ray``: the comparison's CPU work and provider calls on a Ray cluster, one writer here.

Why Ray: a HAM10000- or ISIC-size comparison (10k-70k images x several providers) outgrows one machine
and one set of quotas, and Ray is the well-kept engine for spreading Python work over a cluster, with
actor restarts and task retries built in. What stays on the driver is what must stay single: the runner
(runner.py) walks the dataset, checks the store before anything is sent, retries, trips breakers and is
the one writer of ``results.sqlite`` — so resume and exactly-once work as on one machine, and killing the
driver loses nothing that was stored. What moves to the cluster:

- **Preparation**, sharded by image key: ``crc32(key) mod shards`` picks the preparer actor, so one image
  always lands on the same shard and shards spread over the nodes.
- **Every provider's calls**, through actors that each hold one copy of the provider's client or model
  (adapters pickle and rebuild from their settings). Local models get one replica per shard; a cloud
  provider gets one replica per ``SLOTS_PER_REPLICA`` of its concurrency (up to one per shard), each
  making that many calls at once on threads, since they wait on the network.
- **Limits**, cluster-wide: one actor holds a ``TokenBucket`` (bucket.py) that calls get a grant from,
  which enforces each provider's ``concurrency`` and ``requests_per_second`` however many replicas and
  nodes send. A replica that restarts after a crash reclaims the slots it held. A provider without a
  rate whose replicas' threads add up to exactly its concurrency skips the grants: each replica's
  ``max_concurrency`` then holds the limit by construction, and a grant would cost two actor calls.

Failures: provider actors restart (``max_restarts``) and Ray re-runs the calls they had in flight
(``max_task_retries``); a call that still fails comes back as a retryable ``ProviderError`` for the
runner's own retry policy. An answer already stored is never asked for again, so a worker failure only
repeats calls whose answers were never received.

Credentials never travel through Ray: each actor gets an ``AdapterRecipe`` whose settings hold the
config's ``${VAR}`` references, not their values, and resolves them from its own node's environment (or
the vendor's credential chain there).
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import socket
import threading
import time
import uuid
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cloudderm.compare.bucket import Limit, ManualClock, TokenBucket
from cloudderm.compare.executor import CallNotMade
from cloudderm.compare.records import ProviderPlan
from cloudderm.compare.remote_work import (
    AdapterRecipe,
    configure_threads,
    portable_error,
    prepare_remote,
    runs_in_worker,
    with_thread_setting,
    worker_threads,
)
from cloudderm.errors import (
    ConfigError,
    InvalidImageError,
    MissingDependencyError,
    ProviderError,
    install_hint,
)

if TYPE_CHECKING:
    from cloudderm.classifier import Classifier
    from cloudderm.images import PreparedImage
    from cloudderm.prediction import Prediction

__all__ = ["MAX_DEFAULT_SHARDS", "RayEngine", "check_address", "import_ray"]

MAX_DEFAULT_SHARDS = 8  # shards (preparers, local-model replicas) when --workers is not given: CPUs, up to 8
ACTOR_RESTARTS = 3  # a provider or preparer actor that dies is restarted this many times...
TASK_RETRIES = 3  # ...and the calls it had in flight are re-run this many times before the runner hears
SLOTS_PER_REPLICA = 32  # concurrent calls one cloud-provider replica makes before another replica starts
_POLL_CAP_S = 0.25  # longest single wait before asking again (a rate wait is exact; a full slot 10 ms)
_REFUSED = -1  # no ticket: the bucket was closed because the run is stopping
_CLOSE_TIMEOUT_S = 10.0
_PROBE_TIMEOUT_S = 5.0


def import_ray() -> Any:
    """``import ray``, or the install hint (exit 2) when the ``[ray]`` extra is missing."""
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(install_hint("ray", "Ray for --engine ray")) from None
    return ray


# ---- actors (plain classes: ray.remote wraps them when the engine starts, so importing this is cheap) ----
class BucketActor:
    """The cluster's one ``TokenBucket``; ``clock="manual"`` makes time move only by ``advance`` (tests)."""

    def __init__(self, limits: dict[str, Limit], clock: str = "monotonic") -> None:
        self._manual = ManualClock() if clock == "manual" else None
        self._bucket = TokenBucket(limits, clock=self._manual or time.monotonic)

    def try_acquire(self, provider: str, owner: str) -> tuple[int | None, float]:
        return self._bucket.try_acquire(provider, owner)

    def release(self, provider: str, ticket: int) -> None:
        self._bucket.release(provider, ticket)

    def close(self) -> None:
        self._bucket.close()

    def reclaim(self, owner: str) -> int:
        return self._bucket.reclaim(owner)

    def log(self) -> list:
        return self._bucket.log()

    def advance(self, seconds: float) -> float:
        if self._manual is None:
            raise RuntimeError("this bucket runs on the real clock")
        return self._manual.advance(seconds)


class PreparerActor:
    """One shard's image preparation (decode once, fit the strictest limits, strip metadata)."""

    def prepare(
        self, data: bytes, max_bytes: int | None, max_side: int | None, source: str
    ) -> tuple[str, Any]:
        return prepare_remote(data, max_bytes, max_side, source)


class ProviderActor:
    """One replica of one provider: its own client or model copy; calls granted by the bucket when needed."""

    def __init__(self, blob: bytes, key: str, owner: str, bucket: str | None, threads: int | None) -> None:
        import ray

        self._ray = ray
        # The bucket is found by name, not passed as a handle: a restarted actor re-reads only plain
        # constructor arguments, which Ray keeps inline (a handle argument lives in the object store).
        # None: this provider's limits hold without grants (see RayEngine._needs_grants).
        self._key, self._owner = key, owner
        self._bucket = ray.get_actor(bucket) if bucket is not None else None
        if threads is not None:
            configure_threads(threads)
        if self._bucket is not None:
            ray.get(self._bucket.reclaim.remote(owner))  # a restart: the calls the dead copy held are gone
        recipe: AdapterRecipe = pickle.loads(blob)
        self._name = recipe.name
        self._startup_error: Exception | None = None
        try:
            self._clf: Classifier = recipe.build()  # its ${VAR}s from this node's environment
            self._clf.warm_up()  # the driver already checked it starts; this loads this copy
        except Exception as e:
            self._startup_error = portable_error(e, recipe.name)

    def classify(self, images: list[PreparedImage]) -> tuple[str, Any]:
        if self._startup_error is not None:
            return "error", self._startup_error
        bucket = self._bucket
        ticket = self._acquire(bucket) if bucket is not None else None
        if ticket == _REFUSED:
            return "stopped", None  # the run is stopping: this call is not made
        try:
            return "ok", self._clf.classify_prepared(images)
        except Exception as e:
            return "error", portable_error(e, self._name)
        finally:
            if bucket is not None:
                bucket.release.remote(self._key, ticket)

    def _acquire(self, bucket: Any) -> int:
        while True:
            ticket, wait = self._ray.get(bucket.try_acquire.remote(self._key, self._owner))
            if ticket is not None:
                return ticket
            if wait < 0:
                return _REFUSED
            time.sleep(min(wait, _POLL_CAP_S))

    def pid(self) -> int:
        return os.getpid()

    def ready(self) -> Exception | None:
        """None once this replica's adapter is built and warmed up, else why not (the driver stops there)."""
        return self._startup_error

    def close(self) -> None:
        if self._startup_error is None:
            self._clf.close()


class _Replicas:
    """A provider's actors on the driver side: calls go to the live one with the fewest in flight.

    A replica that Ray reports dead (its restarts used up) is dropped, and the slots it held in the
    bucket are given back, so it neither attracts calls by failing fast nor shrinks the concurrency.
    """

    def __init__(self, name: str, actors: list[Any], owners: list[str], bucket: Any | None) -> None:
        self.name = name
        self.actors = actors
        self.owners = owners
        self._bucket = bucket
        self._busy = [0] * len(actors)
        self._dead: set[int] = set()
        self._lock = threading.Lock()

    def call(self, ray: Any, images: list[PreparedImage]) -> tuple[str, Any]:
        with self._lock:
            live = [i for i in range(len(self.actors)) if i not in self._dead]
            if not live:
                raise ProviderError(
                    f"every Ray replica of {self.name} has died (restarts used up); see Ray's log",
                    provider=self.name,
                    retryable=False,
                )
            index = min(live, key=self._busy.__getitem__)
            self._busy[index] += 1
        try:
            return ray.get(self.actors[index].classify.remote(images))
        except ray.exceptions.ActorDiedError:
            with self._lock:
                self._dead.add(index)
            if self._bucket is not None:
                self._bucket.reclaim.remote(self.owners[index])
            raise
        finally:
            with self._lock:
                self._busy[index] -= 1


class RayEngine:
    """The ``Executor`` for ``--engine ray``: connects (or starts a local Ray), starts the actors.

    Args:
        plans: the providers as the runner drives them; each adapter (built and warmed up here) is pickled
            into its actors, and its concurrency and requests_per_second become cluster-wide limits.
        workers: shards — preparers and local-model replicas (default: the cluster's CPUs, up to 8).
        address: a Ray cluster (``ray://host:10001`` or ``host:6379``); None: ``$RAY_ADDRESS``, else a new
            local Ray on this machine.
        clock: ``"manual"`` puts the bucket on a clock that moves only by ``bucket.advance`` (tests).
        slots_per_replica: concurrent calls one replica of a cloud provider makes (its threads); a
            provider gets ``ceil(concurrency / slots_per_replica)`` replicas, up to one per shard. Calls
            wait on the network, so one process carries many; each replica costs a process start.
    """

    def __init__(
        self,
        plans: Sequence[ProviderPlan],
        *,
        workers: int | None = None,
        address: str | None = None,
        clock: str = "monotonic",
        slots_per_replica: int = SLOTS_PER_REPLICA,
    ) -> None:
        if workers is not None and workers < 1:
            raise ConfigError("--workers must be at least 1")
        for plan in plans:
            _require_pickles(plan.classifier)
        self._ray = ray = import_ray()
        self._started = _connect(ray, address)
        self._actors: list[Any] = []
        self._replicas: dict[str, _Replicas] = {}
        self._slots_per_replica = max(1, slots_per_replica)
        try:
            cpus = int(ray.cluster_resources().get("CPU", 1))
            self.workers = workers or max(1, min(MAX_DEFAULT_SHARDS, cpus))
            self.limits = {plan.config_hash: self._limit(plan) for plan in plans}
            self._bucket_name = f"cloudderm-bucket-{uuid.uuid4().hex}"
            bucket = ray.remote(num_cpus=0)(BucketActor).options(
                name=self._bucket_name, scheduling_strategy=_on_this_node(ray)
            )
            self.bucket = bucket.remote(self.limits, clock)
            self._actors.append(self.bucket)
            preparer = ray.remote(
                num_cpus=0,
                max_restarts=ACTOR_RESTARTS,
                max_task_retries=TASK_RETRIES,
                scheduling_strategy="SPREAD",
            )(PreparerActor)
            self._preparers = [preparer.remote() for _ in range(self.workers)]
            self._actors += self._preparers
            for plan in plans:
                self._replicas[plan.config_hash] = self._start_provider(plan)
            self._check_ready()
        except BaseException:
            self.close()
            raise

    def lane_threads(self, plan: ProviderPlan) -> int:
        """Driver threads feeding this provider: enough to keep every replica's slots busy."""
        return self.limits[plan.config_hash].concurrency

    # ---- Executor ------------------------------------------------------------------------------
    def runs(self, config_hash: str) -> bool:
        return config_hash in self._replicas

    def paces(self, config_hash: str) -> bool:
        return config_hash in self._replicas  # the bucket enforces requests_per_second cluster-wide

    def prepare(
        self, data: bytes, *, max_bytes: int | None, max_side: int | None, source: str
    ) -> PreparedImage:
        shard = self._preparers[zlib.crc32(source.encode("utf-8")) % len(self._preparers)]
        try:
            outcome, value = self._ray.get(shard.prepare.remote(data, max_bytes, max_side, source))
        except self._ray.exceptions.RayError as e:  # the shard kept dying: this image is not the problem
            raise ProviderError(f"Ray preparer failed: {_ray_reason(e)}", retryable=True) from None
        if outcome == "invalid":
            raise InvalidImageError(source, value)
        return value

    def classify(self, config_hash: str, images: Sequence[PreparedImage]) -> list[Prediction]:
        replicas = self._replicas[config_hash]
        try:
            outcome, value = replicas.call(self._ray, list(images))
        except self._ray.exceptions.RayError as e:
            raise ProviderError(
                f"Ray worker failed: {_ray_reason(e)}", provider=replicas.name, retryable=True
            ) from None
        if outcome == "error":
            raise value
        if outcome == "stopped":
            raise CallNotMade(replicas.name)
        return value

    def stop(self) -> None:
        """Close the bucket: replicas still waiting for a grant give their calls up unsent."""
        try:
            self.bucket.close.remote()
        except Exception:  # already gone (close() ran): nothing waits any more
            pass

    def pids(self, config_hash: str) -> list[int]:
        """The process of each of this provider's replicas (tests kill one)."""
        return self._ray.get([actor.pid.remote() for actor in self._replicas[config_hash].actors])

    def grant_log(self) -> list:
        """The bucket's events (``bucket.GrantEvent``), oldest first."""
        return self._ray.get(self.bucket.log.remote())

    def close(self) -> None:
        ray = self._ray
        closing = [a.close.remote() for r in self._replicas.values() for a in r.actors]
        if closing:
            try:
                ray.wait(closing, num_returns=len(closing), timeout=_CLOSE_TIMEOUT_S)
            except Exception:
                pass
        for actor in self._actors:
            try:
                ray.kill(actor)
            except Exception:
                pass
        self._actors = []
        if self._started:
            ray.shutdown()
            self._started = False

    def __enter__(self) -> RayEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- internals -------------------------------------------------------------------------------
    def _limit(self, plan: ProviderPlan) -> Limit:
        """A provider's cluster-wide limits: its concurrency (a local model: one per replica) and its rate."""
        local = runs_in_worker(plan.classifier)
        concurrency = max(plan.concurrency, self.workers) if local else plan.concurrency
        return Limit(concurrency=concurrency, rate=plan.requests_per_second)

    @staticmethod
    def _needs_grants(limit: Limit, slots: int) -> bool:
        """Whether calls must ask the bucket: a rate to keep, or replicas whose threads add up to more
        than the provider's concurrency. Otherwise Ray's ``max_concurrency`` on each replica already holds
        the limit cluster-wide (also for the calls Ray re-runs after a restart), and a grant would only add
        two actor calls to every call."""
        return limit.rate is not None or slots > limit.concurrency

    def _start_provider(self, plan: ProviderPlan) -> _Replicas:
        clf, limit = plan.classifier, self.limits[plan.config_hash]
        local = runs_in_worker(clf)
        wanted = math.ceil(limit.concurrency / self._slots_per_replica)
        count = self.workers if local else max(1, min(self.workers, wanted))
        per_actor = math.ceil(limit.concurrency / count)
        blob = pickle.dumps(AdapterRecipe.of(with_thread_setting(clf) if local else clf))
        threads = worker_threads(clf) if local else None
        remote = self._ray.remote(
            num_cpus=0,
            max_restarts=ACTOR_RESTARTS,
            max_task_retries=TASK_RETRIES,
            max_concurrency=per_actor,
            scheduling_strategy="SPREAD",
        )(ProviderActor)
        key = plan.config_hash
        name = self._bucket_name if self._needs_grants(limit, count * per_actor) else None
        owners = [f"{clf.name}#{i}" for i in range(count)]
        actors = [remote.remote(blob, key, owner, name, threads) for owner in owners]
        self._actors += actors
        return _Replicas(clf.name, actors, owners, self.bucket if name is not None else None)

    def _check_ready(self) -> None:
        """Every replica built its adapter and warmed up, or the run stops before any image (exit 2).

        A node can lack what this machine has (a ``${VAR}``, the model files, an SDK); finding it now
        names the provider and the reason once, instead of failing every call sent to that replica.
        """
        for replicas in self._replicas.values():
            for owner, actor in zip(replicas.owners, replicas.actors):
                try:
                    error = self._ray.get(actor.ready.remote())
                except self._ray.exceptions.RayError as e:
                    error = e
                if error is not None:
                    raise ConfigError(
                        f"cannot start on the Ray cluster (replica {owner}): {_ray_reason(error)}. Fix: give "
                        "every node the provider's SDK, model files and environment variables",
                        provider=replicas.name,
                    )


def _on_this_node(ray: Any) -> Any:
    """The bucket lives beside the driver (soft: elsewhere if this node cannot host it, e.g. Ray Client):
    every grant is a round trip to it, and the driver's node is the one the run cannot lose anyway."""
    try:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        return NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=True)
    except Exception:
        return "DEFAULT"


def _require_pickles(clf: Classifier) -> None:
    try:
        pickle.dumps(clf)
    except Exception as e:
        raise ConfigError(
            f"provider {clf.name!r} ({clf.adapter}) cannot be sent to Ray workers: it does not pickle "
            f"({type(e).__name__}). Fix: run it with --engine local",
            provider=clf.name,
        ) from None


def _connect(ray: Any, address: str | None) -> bool:
    """Join ``address`` (or start a local Ray); True when this call started it, so close() stops it."""
    if ray.is_initialized():
        return False
    probe = address if address is not None else os.environ.get("RAY_ADDRESS")
    if probe not in (None, "", "auto", "local"):
        check_address(probe)  # ray.init retries an address where nothing answers for minutes
    # A new local Ray turns on token authentication (good) and says so on stderr; the notice is not ours
    # to show on every compare run.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="ERROR",
            configure_logging=False,
        )
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray"
        raise ConfigError(
            f"cannot connect to {where}: {_ray_reason(e)}. Fix: check that `ray status --address {address}` "
            "answers from this machine, or leave --ray-address out to start a local Ray"
            if address
            else f"cannot start {where}: {_ray_reason(e)}. Fix: see `ray start --head`, or use --engine local"
        ) from None
    return True


def check_address(address: str) -> None:
    """A clean, fast exit 2 when nothing listens at ``address`` (``HOST:PORT`` or ``ray://HOST:PORT``)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"--ray-address {address!r}: expected HOST:PORT (the head's GCS, e.g. 10.0.0.5:6379) or "
            "ray://HOST:PORT (Ray Client, e.g. ray://10.0.0.5:10001)"
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=_PROBE_TIMEOUT_S):
            pass
    except OSError as e:
        raise ConfigError(
            f"cannot reach the Ray cluster at {address!r}: {e.strerror or e}. Fix: start it with "
            "`ray start --head` (or check the address and firewall), or leave --ray-address out to run a "
            "local Ray"
        ) from None


def _ray_reason(error: BaseException) -> str:
    from cloudderm.redact import scrub_text

    text = str(error).strip().splitlines()
    return scrub_text(f"{type(error).__name__}: {text[0] if text else ''}")[:300]
