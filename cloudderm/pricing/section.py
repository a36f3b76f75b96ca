"""``summary["cost"]`` for the compare report: monthly cost per provider at a stated volume.

The compare runner calls, after the summary is computed::

    summary["cost"] = cost_section(classifiers, summary, volume=args.volume or DEFAULT_VOLUME)

and the report renders, per provider, ``monthly_usd``, ``per_1k_usd``, ``assumptions`` (sentences) and
``as_of`` (the catalog date, or the override's). Always-on endpoints are priced at the throughput the run
measured: ``summary["providers"][name]["images_per_second"]`` when the runner records it (answered images
divided by the wall-clock seconds that provider was busy), else one request at a time at the median
latency, which the assumptions then say.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from cloudderm.pricing import estimate

if TYPE_CHECKING:
    from cloudderm.classifier import AdapterSettings, Classifier
    from cloudderm.config import Config
    from cloudderm.pricing.resolve import PricingTarget

__all__ = ["DEFAULT_VOLUME", "attach_projections", "cost_section", "measured_throughput", "projected_cost"]

DEFAULT_VOLUME = 10_000


def measured_throughput(summary: Mapping[str, Any], name: str) -> tuple[float | None, str | None]:
    """Images/second for ``name`` from a summary, and the sentence that says how it was obtained."""
    entry = (summary.get("providers") or {}).get(name) or {}
    ips = entry.get("images_per_second")
    if isinstance(ips, (int, float)) and ips > 0:
        return float(ips), None
    p50 = (entry.get("latency_ms") or {}).get("p50")
    if isinstance(p50, (int, float)) and p50 > 0:
        return 1000.0 / p50, (
            f"throughput derived from the median latency ({p50:.0f} ms) assuming one request at a time; "
            "concurrent requests would serve more per instance"
        )
    return None, None


def _targets(
    classifiers_or_settings: Config | Mapping[str, Classifier | AdapterSettings] | Iterable[Classifier],
) -> list[Classifier | PricingTarget]:
    """Built classifiers as they are; settings become pricing targets without building anything."""
    from cloudderm.classifier import Classifier
    from cloudderm.config import Config
    from cloudderm.factory import pricing_target

    if isinstance(classifiers_or_settings, Config):
        config = classifiers_or_settings
        return [pricing_target(name, config.provider(name)) for name in config.providers]
    if isinstance(classifiers_or_settings, Mapping):
        return [
            value if isinstance(value, Classifier) else pricing_target(name, value)
            for name, value in classifiers_or_settings.items()
        ]
    return list(classifiers_or_settings)


def cost_section(
    classifiers_or_settings: Config | Mapping[str, Classifier | AdapterSettings] | Iterable[Classifier],
    summary: Mapping[str, Any],
    volume: int = DEFAULT_VOLUME,
) -> dict[str, dict[str, Any]]:
    """Per provider ``{monthly_usd, per_1k_usd, kind, instances, assumptions, as_of, sources, volume}``.

    Args:
        classifiers_or_settings: the run's classifiers (a list or ``{name: classifier}``), or a Config /
            ``{name: settings}`` when no classifier is at hand.
        summary: the compare summary (for measured throughput); ``{}`` gives list-price estimates.
        volume: images a month to price.

    Returns:
        ``{provider_name: CostEstimate as a JSON-ready dict}``; unknown prices are ``None`` with the reason
        as the first assumption.
    """
    out: dict[str, dict[str, Any]] = {}
    for target in _targets(classifiers_or_settings):
        name = target.name
        ips, how = measured_throughput(summary, name)
        result = estimate(target, volume, ips)
        if how and result.kind in ("always-on", "local") and result.per_image_usd_at_throughput is not None:
            result.assumptions.append(how)
        if result.kind == "per-token" and result.per_1k_usd is None:
            _from_measured_tokens(result, summary, name, volume)
        out[name] = result.model_dump(mode="json")
    return out


PROJECTED_FIGURES = ("per_1k_usd", "monthly_usd")


def projected_cost(estimate: Mapping[str, Any]) -> dict[str, Any]:
    """``summary.json``'s ``cost_usd.projected``: ``{per_1k, monthly, volume, basis}`` of one estimate.

    The projection's figures live only here (``summary["cost"]`` keeps the reasoning: assumptions,
    sources, instances), so a report cannot show two different "per 1,000 images" for one provider.
    """
    return {
        "per_1k": estimate.get("per_1k_usd"),
        "monthly": estimate.get("monthly_usd"),
        "volume": estimate.get("volume"),
        "basis": estimate.get("basis") or estimate.get("kind"),
    }


def attach_projections(summary: dict[str, Any], section: Mapping[str, Mapping[str, Any]]) -> dict:
    """Move each provider's projected figures into ``providers[name]["cost_usd"]["projected"]``.

    Returns ``summary["cost"]``: the estimates without the figures now owned by ``cost_usd.projected``.
    """
    details: dict[str, dict[str, Any]] = {}
    for name, est in section.items():
        entry = (summary.get("providers") or {}).get(name)
        if isinstance(entry, dict):
            entry.setdefault("cost_usd", {})["projected"] = projected_cost(est)
        details[name] = {k: v for k, v in est.items() if k not in PROJECTED_FIGURES}
    return details


def _from_measured_tokens(result: Any, summary: Mapping[str, Any], name: str, volume: int) -> None:
    """A token-priced provider's projection from the run's own calls (each priced from its token usage)."""
    measured = ((summary.get("providers") or {}).get(name) or {}).get("cost_usd") or {}
    per_1k = measured.get("per_1k")
    if per_1k is None:
        return
    result.per_1k_usd = float(per_1k)
    result.monthly_usd = float(per_1k) * volume / 1000.0
    result.assumptions = [
        f"measured in this run: ${float(per_1k):.4f} per 1,000 images, each call priced from its own token "
        "usage (images count as input tokens)",
        *[a for a in result.assumptions if not a.startswith("no call measured yet")],
    ]
