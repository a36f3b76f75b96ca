"""How each kind of provider is charged, and what N images a month would cost, assumptions spelled out.

Three shapes cover every provider cloudderm talks to:

* always-on endpoints (SageMaker, Azure ML online endpoints, Vertex AI endpoints): instance or node hours
  times the instance count, billed whether or not images arrive. A per-call price is meaningless; the
  per-image cost depends on throughput, so it is computed from the throughput measured in a run.
* per-call services (Cloud Vision and the like): calls times a tiered unit price, free tier explicit.
* local models: free at the margin, or the machine's ``hourly_usd`` when the user states it.

Every estimate carries its assumptions as sentences and the catalog date, because a cost without them
cannot be checked by the architect reading the report.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field

from cloudderm.pricing.catalog import Tier

__all__ = [
    "HOURS_PER_MONTH",
    "AlwaysOnPricing",
    "CostEstimate",
    "LocalPricing",
    "PerCallPricing",
    "tiered_cost",
]

HOURS_PER_MONTH = 730  # 365 days x 24 h / 12: the convention AWS, Azure and Google calculators use
SECONDS_PER_HOUR = 3600

Kind = Literal["always-on", "per-call", "per-token", "local", "unknown"]


class CostEstimate(BaseModel):
    """Monthly cost of one provider at a stated volume; None where a figure is unknown, never a guess."""

    provider: str
    kind: Kind
    volume: int = Field(ge=0)
    monthly_usd: float | None
    per_1k_usd: float | None
    fixed_monthly_usd: float | None = None
    per_image_usd_at_throughput: float | None = None
    instances: int | None = None
    utilisation: float | None = None
    assumptions: list[str] = Field(default_factory=list)
    as_of: str | None = None
    sources: list[str] = Field(default_factory=list)
    basis: str | None = None  # the pricing model in words: "always-on endpoint, 1 × ml.m5.xlarge instance"


def _money(x: float) -> str:
    """Dollars with cents, and up to 4 decimals where the rate has them ($1.375, $0.0015)."""
    whole, _, frac = f"{x:,.4f}".partition(".")
    return f"${whole}.{frac.rstrip('0').ljust(2, '0')}"


def _provenance(as_of: str | None, source: str | None) -> str:
    if source is None:
        return "price from the provider's `pricing:` override in the config (not from the catalog)"
    return f"list price from {source}, as of {as_of}"


def tiered_cost(units: int, tiers: Sequence[Tier]) -> float:
    """USD for ``units`` in one month under a tiered per-1,000 price, counted per unit (prorated)."""
    total = 0.0
    for tier in tiers:
        if units < tier.first_unit:
            break
        last = units if tier.last_unit is None else min(units, tier.last_unit)
        total += (last - tier.first_unit + 1) * tier.price_per_1k / 1000.0
    return total


@dataclass
class AlwaysOnPricing:
    """Instances or nodes billed per hour while deployed, whatever the traffic."""

    provider: str
    hourly_usd: float
    count: int
    unit: str  # e.g. "ml.m5.xlarge instance", "AutoML image node"
    as_of: str | None = None
    source: str | None = None
    kind: Kind = "always-on"
    notes: list[str] = field(default_factory=list)

    def cost_per_call(self, batch_size: int) -> float | None:
        """None: an always-on endpoint costs the same with or without this call."""
        return None

    def describe(self) -> str:
        """One line for `cloudderm providers`: rate, count, monthly, date."""
        when = f"list price as of {self.as_of}" if self.source else "config override"
        return (
            f"{_money(self.hourly_usd)}/h x {self.count} {self.unit} = "
            f"{_money(self.fixed_monthly_usd())}/month always on ({when})"
        )

    def fixed_monthly_usd(self, count: int | None = None) -> float:
        """What the deployment costs in a month of 730 hours."""
        return self.hourly_usd * (self.count if count is None else count) * HOURS_PER_MONTH

    def per_image_usd(self, images_per_second: float) -> float:
        """USD per image when the deployment is kept busy at ``images_per_second``."""
        return self.hourly_usd * self.count / (images_per_second * SECONDS_PER_HOUR)

    def monthly_cost(self, volume: int, measured_images_per_second: float | None = None) -> CostEstimate:
        """Fixed monthly cost, and per 1,000 images at ``volume`` images/month.

        With a measured throughput (images/s of the whole deployment, as measured in a run), the estimate
        also says how busy the deployment would be and scales the instance count up when the configured
        count cannot serve ``volume``.
        """
        assumptions = [
            f"{self.count} x {self.unit} at {_money(self.hourly_usd)}/h, {HOURS_PER_MONTH} h/month, "
            "billed while deployed whether or not images arrive",
            _provenance(self.as_of, self.source),
        ]
        count = self.count
        per_image = utilisation = None
        if measured_images_per_second and measured_images_per_second > 0:
            capacity = measured_images_per_second * SECONDS_PER_HOUR * HOURS_PER_MONTH
            needed = math.ceil(self.count * volume / capacity) if volume else self.count
            count = max(self.count, needed)
            utilisation = volume / (capacity * count / self.count)
            per_image = self.per_image_usd(measured_images_per_second)
            assumptions.append(
                f"throughput measured in the run: {measured_images_per_second:.2f} images/s with "
                f"{self.count} {self.unit}(s), i.e. {capacity:,.0f} images/month at full load"
            )
            if count > self.count:
                assumptions.append(
                    f"{volume:,} images/month exceeds that: the estimate scales to {count} {self.unit}s"
                )
            assumptions.append(
                f"utilisation {utilisation:.1%}; fully busy, one image would cost {_money(per_image)}"
            )
        else:
            assumptions.append(
                "throughput not measured: assumes the configured count serves the volume (run `compare` "
                "to measure it)"
            )
        assumptions.extend(self.notes)
        monthly = self.fixed_monthly_usd(count)
        return CostEstimate(
            provider=self.provider,
            kind=self.kind,
            volume=volume,
            monthly_usd=monthly,
            per_1k_usd=monthly / volume * 1000 if volume else None,
            fixed_monthly_usd=monthly,
            basis=f"{'always-on endpoint' if self.kind == 'always-on' else 'your machine'}, {count} × {self.unit}",  # noqa: E501
            per_image_usd_at_throughput=per_image,
            instances=count,
            utilisation=utilisation,
            assumptions=assumptions,
            as_of=self.as_of,
            sources=[self.source] if self.source else [],
        )


@dataclass
class PerCallPricing:
    """Billed per image (per feature unit), with a monthly tiered price and an explicit free tier."""

    provider: str
    tiers: list[Tier]
    unit: str
    as_of: str | None = None
    source: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def marginal_usd(self) -> float:
        """USD per image at the first paid tier: what one more call costs once the free tier is used."""
        paid = [t for t in self.tiers if t.price_per_1k > 0]
        return (paid[0].price_per_1k if paid else 0.0) / 1000.0

    @property
    def free_units(self) -> int:
        """Units a month priced at zero (the free tier)."""
        return sum(
            (t.last_unit or 0) - t.first_unit + 1
            for t in self.tiers
            if t.price_per_1k == 0 and t.last_unit is not None
        )

    def cost_per_call(self, batch_size: int) -> float | None:
        """Per image, at the first paid tier (the free tier is per month and per account, not per call)."""
        return self.marginal_usd

    def describe(self) -> str:
        """One line for `cloudderm providers`: paid rate, free tier, date."""
        when = f"list price as of {self.as_of}" if self.source else "config override"
        free = f" after {self.free_units:,} free/month" if self.free_units else ""
        return f"{_money(self.marginal_usd * 1000)} per 1,000 images{free} ({when})"

    def monthly_cost(self, volume: int, measured_images_per_second: float | None = None) -> CostEstimate:
        """Tiered cost of ``volume`` calls in one month; throughput does not change a per-call bill."""
        monthly = tiered_cost(volume, self.tiers)
        bands = ", ".join(
            f"units {t.first_unit:,}-{t.last_unit:,}: {_money(t.price_per_1k)}/1k"
            if t.last_unit is not None
            else f"units {t.first_unit:,}+: {_money(t.price_per_1k)}/1k"
            for t in self.tiers
        )
        assumptions = [
            f"one {self.unit} per image; monthly tiers {bands}",
            f"free tier: first {self.free_units:,} units/month"
            if self.free_units
            else "no free tier assumed",
            _provenance(self.as_of, self.source),
            *self.notes,
        ]
        return CostEstimate(
            provider=self.provider,
            kind="per-call",
            volume=volume,
            monthly_usd=monthly,
            per_1k_usd=monthly / volume * 1000 if volume else None,
            basis=f"per call, one {self.unit} per image",
            assumptions=assumptions,
            as_of=self.as_of,
            sources=[self.source] if self.source else [],
        )


@dataclass
class LocalPricing:
    """A model on the user's own machine: nothing per call; the machine's cost only if stated."""

    provider: str

    def cost_per_call(self, batch_size: int) -> float | None:
        """Zero: no provider bills a local inference (the machine is not priced; see ``hourly_usd``)."""
        return 0.0

    def describe(self) -> str:
        """One line for `cloudderm providers`."""
        return "local: no per-call charge (machine not priced; set pricing.hourly_usd)"

    def monthly_cost(self, volume: int, measured_images_per_second: float | None = None) -> CostEstimate:
        """Zero, marked local, saying what is not counted."""
        return CostEstimate(
            provider=self.provider,
            kind="local",
            volume=volume,
            monthly_usd=0.0,
            per_1k_usd=0.0 if volume else None,
            fixed_monthly_usd=0.0,
            basis="local model, machine not priced",
            assumptions=[
                "local: runs on your own machine, no provider charge per call",
                "the machine itself is not priced; set `pricing: {hourly_usd: ...}` to include it",
            ],
        )


@dataclass
class TokenPricing:
    """A generative model billed per input and output token (images are billed as input tokens).

    A call's cost is its own reported usage times the rates (``cost_for_usage``); before any call the
    per-image cost is unknown, because an image's token count depends on its size and the reply. The
    monthly projection uses the mean tokens per image measured so far in this process, and says so.
    """

    provider: str
    input_per_mtok: float
    output_per_mtok: float
    as_of: str | None = None
    source: str | None = None
    notes: list[str] = field(default_factory=list)
    _calls: int = field(default=0, repr=False)
    _input: int = field(default=0, repr=False)
    _output: int = field(default=0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def cost_per_call(self, batch_size: int) -> float | None:
        """Unknown without the call's usage (see ``cost_for_usage``)."""
        return None

    def cost_for_usage(self, usage: object) -> float | None:
        """USD for one call's reported tokens; None when the provider did not report both counts."""
        tokens_in = getattr(usage, "input_tokens", None)
        tokens_out = getattr(usage, "output_tokens", None)
        if tokens_in is None or tokens_out is None:
            return None
        with self._lock:
            self._calls += 1
            self._input += tokens_in
            self._output += tokens_out
        return (tokens_in * self.input_per_mtok + tokens_out * self.output_per_mtok) / 1_000_000

    def describe(self) -> str:
        """One line for `cloudderm providers`."""
        when = f"list price as of {self.as_of}" if self.source else "config override"
        return (
            f"{_money(self.input_per_mtok)} per 1M input tokens (images count as input), "
            f"{_money(self.output_per_mtok)} per 1M output tokens ({when})"
        )

    def monthly_cost(self, volume: int, measured_images_per_second: float | None = None) -> CostEstimate:
        """``volume`` images at the mean tokens per image measured so far; unknown before any call."""
        rates = (
            f"{_money(self.input_per_mtok)}/1M input tokens, {_money(self.output_per_mtok)}/1M output tokens"
        )
        assumptions = [rates, _provenance(self.as_of, self.source), *self.notes]
        with self._lock:
            calls, tokens_in, tokens_out = self._calls, self._input, self._output
        if not calls:
            assumptions.insert(0, "no call measured yet: tokens per image unknown (run compare to measure)")
            per_1k = monthly = None
        else:
            mean_in, mean_out = tokens_in / calls, tokens_out / calls
            per_image = (mean_in * self.input_per_mtok + mean_out * self.output_per_mtok) / 1_000_000
            per_1k, monthly = per_image * 1000, per_image * volume
            assumptions.insert(
                0, f"measured mean {mean_in:,.0f} input + {mean_out:,.0f} output tokens per call over {calls}"
            )
        return CostEstimate(
            provider=self.provider,
            kind="per-token",
            volume=volume,
            monthly_usd=monthly,
            per_1k_usd=per_1k,
            assumptions=assumptions,
            as_of=self.as_of,
            sources=[self.source] if self.source else [],
        )
