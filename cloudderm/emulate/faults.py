"""Seeded, deterministic fault injection for the endpoint emulators.

Why hashing instead of a random generator: a shared RNG makes the outcome of a request depend on the order
in which concurrent clients happen to arrive, so a flaky test could never be replayed. Here every decision
is a pure function of ``(seed, endpoint, request key, attempt number)``: the request key identifies *what*
was sent (the SHA-256 of the uploaded image bytes) and the attempt number counts how often that endpoint
has already seen it. Two runs with the same seed and the same images see the same faults, whatever the
thread interleaving, and a retry of a faulted request gets a fresh, still deterministic, draw.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Literal

__all__ = ["FAULT_KINDS", "Decision", "FaultPlan", "Latency"]

FAULT_KINDS: tuple[str, ...] = (
    "429", "503", "424", "timeout", "malformed", "refusal", "content_filter", "filter400"
)  # fmt: skip
"""What can go wrong, in the order the cumulative draw checks them:

- ``429``: throttled, with a ``Retry-After`` header (SageMaker: ``ThrottlingException``);
- ``503``: service unavailable;
- ``424``: the model container failed (SageMaker ``ModelError``, Azure ML 424 with model-error headers,
  Vertex ``INTERNAL``);
- ``timeout``: the connection is held for ``timeout_hold_s`` before the provider's own timeout answer,
  so a client with a shorter timeout sees a read timeout;
- ``malformed``: HTTP 200 with a truncated, unparseable body (generative protocols: cut-off JSON content);
- ``refusal``, ``content_filter``, ``filter400``: generative protocols only (``openai``): a refusal, a
  ``finish_reason: content_filter`` answer, Azure's HTTP 400 ``content_filter`` error. Protocols without
  such answers serve the request normally.
"""

_ALIASES = {"throttle": "429", "unavailable": "503", "model_error": "424", "timeouts": "timeout"}


@dataclass(frozen=True)
class Latency:
    """A latency distribution in milliseconds, sampled from a uniform draw so it stays deterministic.

    Attributes:
        kind: ``fixed`` (always ``ms``), ``uniform`` (between ``ms`` and ``high_ms``) or ``lognormal``
            (median ``ms``, shape ``sigma``; long right tail like real network latency).
        ms: the fixed value, the uniform lower bound or the lognormal median.
        high_ms: the uniform upper bound.
        sigma: the lognormal shape parameter (standard deviation of the log).
        max_ms: samples are capped here so a tail draw cannot stall a test run.
    """

    kind: Literal["fixed", "uniform", "lognormal"] = "fixed"
    ms: float = 0.0
    high_ms: float | None = None
    sigma: float = 0.5
    max_ms: float = 60_000.0

    def __post_init__(self) -> None:
        if self.kind not in ("fixed", "uniform", "lognormal"):
            raise ValueError(f"latency kind must be fixed, uniform or lognormal, not {self.kind!r}")
        if self.ms < 0 or (self.high_ms is not None and self.high_ms < self.ms):
            raise ValueError("latency must be >= 0 ms and high_ms >= ms")
        if self.kind == "uniform" and self.high_ms is None:
            raise ValueError("uniform latency needs high_ms")
        if self.sigma < 0:
            raise ValueError("lognormal sigma must be >= 0")

    def sample(self, u: float) -> float:
        """The latency in ms for a uniform draw ``u`` in [0, 1)."""
        if self.kind == "fixed":
            value = self.ms
        elif self.kind == "uniform":
            value = self.ms + (float(self.high_ms or self.ms) - self.ms) * u
        else:
            z = NormalDist().inv_cdf(min(max(u, 1e-12), 1 - 1e-12))
            value = self.ms * math.exp(self.sigma * z)
        return min(value, self.max_ms)

    @classmethod
    def parse(cls, spec: str | float | int | None) -> Latency:
        """``"100"`` (fixed), ``"50-150"`` (uniform) or ``"lognormal:100:0.5"`` (median 100 ms, sigma 0.5)."""
        if spec is None or spec == "":
            return cls()
        if isinstance(spec, (int, float)):
            return cls(ms=float(spec))
        text = spec.strip().lower().removesuffix("ms")
        try:
            if text.startswith("lognormal:"):
                parts = text.split(":")
                return cls(
                    kind="lognormal", ms=float(parts[1]), sigma=float(parts[2]) if len(parts) > 2 else 0.5
                )
            if re.fullmatch(r"[0-9.]+-[0-9.]+", text):
                low, high = text.split("-")
                return cls(kind="uniform", ms=float(low), high_ms=float(high))
            return cls(ms=float(text))
        except (ValueError, IndexError) as e:
            raise ValueError(
                f"cannot read latency {spec!r}: use 100 (fixed ms), 50-150 (uniform) or lognormal:100:0.5"
            ) from e


@dataclass(frozen=True)
class Decision:
    """What the emulator does with one request: an injected fault (or None) and the latency to add."""

    fault: str | None
    latency_ms: float


@dataclass(frozen=True)
class FaultPlan:
    """Rates of injected faults and a latency distribution, reproducible from ``seed``.

    Attributes:
        rates: fault kind (see ``FAULT_KINDS``) -> probability per attempt; they must sum to <= 1.
        latency: added to every answer, faults included.
        seed: any string or int; the same seed and the same requests give the same outcomes.
        retry_after_s: the ``Retry-After`` value sent with 429s.
        timeout_hold_s: how long a ``timeout`` fault holds the connection before answering (bounded, and
            cut short when the emulator stops).
        max_faults_per_request: when set, attempts after this many for the same request are never
            faulted, so a client that retries enough always gets through.
    """

    rates: Mapping[str, float] = field(default_factory=dict)
    latency: Latency = field(default_factory=Latency)
    seed: str | int = 0
    retry_after_s: float = 1.0
    timeout_hold_s: float = 10.0
    max_faults_per_request: int | None = None

    def __post_init__(self) -> None:
        normalised: dict[str, float] = {}
        for kind, rate in dict(self.rates).items():
            key = _ALIASES.get(str(kind).lower(), str(kind).lower())
            if key not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
            if not 0.0 <= float(rate) <= 1.0:
                raise ValueError(f"fault rate for {key} must be between 0 and 1, not {rate}")
            normalised[key] = normalised.get(key, 0.0) + float(rate)
        if sum(normalised.values()) > 1.0 + 1e-9:
            raise ValueError(f"fault rates sum to {sum(normalised.values()):.3f}, more than 1")
        if self.retry_after_s < 0 or self.timeout_hold_s < 0:
            raise ValueError("retry_after_s and timeout_hold_s must be >= 0")
        object.__setattr__(self, "rates", normalised)

    @classmethod
    def parse(
        cls,
        spec: str | None,
        *,
        latency: Latency | str | float | None = None,
        seed: str | int = 0,
        **kwargs: float | int | None,
    ) -> FaultPlan:
        """Build a plan from the CLI form ``"429=0.1,503=0.05,timeout=0.02,malformed=0.01"``."""
        rates: dict[str, float] = {}
        for part in (spec or "").split(","):
            part = part.strip()
            if not part:
                continue
            kind, sep, value = part.partition("=")
            if not sep:
                raise ValueError(f"cannot read fault {part!r}: use KIND=RATE, e.g. 429=0.1")
            try:
                rates[kind.strip()] = float(value)
            except ValueError as e:
                raise ValueError(f"fault rate {value!r} for {kind.strip()} is not a number") from e
        lat = latency if isinstance(latency, Latency) else Latency.parse(latency)
        return cls(rates=rates, latency=lat, seed=seed, **kwargs)  # type: ignore[arg-type]

    @property
    def active(self) -> bool:
        """Whether this plan changes anything at all (faults or latency)."""
        return any(self.rates.values()) or self.latency.ms > 0 or bool(self.latency.high_ms)

    def decide(self, endpoint: str, request_key: str, attempt: int) -> Decision:
        """The fault (or None) and latency for the ``attempt``-th time ``endpoint`` sees ``request_key``."""
        digest = hashlib.sha256(f"{self.seed}|{endpoint}|{request_key}|{attempt}".encode()).digest()
        u_fault = int.from_bytes(digest[:8], "big") / 2.0**64
        u_latency = int.from_bytes(digest[8:16], "big") / 2.0**64
        fault = None
        if self.max_faults_per_request is None or attempt <= self.max_faults_per_request:
            threshold = 0.0
            for kind in FAULT_KINDS:
                threshold += self.rates.get(kind, 0.0)
                if u_fault < threshold:
                    fault = kind
                    break
        return Decision(fault=fault, latency_ms=self.latency.sample(u_latency))

    def describe(self) -> str:
        """A one-line summary for banners and logs."""
        rates = ", ".join(f"{k}={v:g}" for k, v in self.rates.items() if v) or "no faults"
        lat = self.latency
        if lat.kind == "fixed":
            latency = f"{lat.ms:g} ms"
        elif lat.kind == "uniform":
            latency = f"uniform {lat.ms:g}-{lat.high_ms:g} ms"
        else:
            latency = f"lognormal median {lat.ms:g} ms sigma {lat.sigma:g}"
        return f"{rates}; latency {latency}; seed {self.seed}"
