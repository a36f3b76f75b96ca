"""Risk register / DPIA notes generated from a compare summary, the governance cards and the policy.

Every entry is ``{risk, severity, provider, detail, mitigation}`` (``provider`` is None for dataset-wide
risks). The register states what the evidence shows (a measured gap, a missing fact, a card's
prohibition); it never rates a provider "safe". The report helper renders ``summary["risks"]``::

    summary["risks"] = risk_register(summary, summary["governance"], config.policy)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloudderm.governance.cards import slug

__all__ = ["IMBALANCE_RATIO", "MIN_SUBGROUP_N", "SUBGROUP_GAP", "risk_register"]

SUBGROUP_GAP = 0.10  # balanced-accuracy spread across one subgroup column that counts as a gap
MIN_SUBGROUP_N = 30  # fewer scored images than this and a subgroup's metrics are too noisy to trust
MIN_GAP_N = 5  # groups smaller than this say nothing about a gap: they are listed as small subgroups only
IMBALANCE_RATIO = 10.0  # largest / smallest class count above which the dataset is called imbalanced
_SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2}
_VENDOR_FACTS = ("hipaa_eligible", "baa_available", "certifications", "data_retention", "training_use")


def _entry(risk: str, severity: str, provider: str | None, detail: str, mitigation: str) -> dict[str, Any]:
    return {
        "risk": risk,
        "severity": severity,
        "provider": provider,
        "detail": detail,
        "mitigation": mitigation,
    }


def _policy_dict(policy: Any) -> dict[str, Any]:
    if policy is None:
        return {}
    if isinstance(policy, Mapping):
        return dict(policy)
    return policy.model_dump()


def _model_risks(name: str, card: Mapping[str, Any], entry: Mapping[str, Any], policy: dict) -> list[dict]:
    model = card.get("model") or {}
    out: list[dict] = []
    ood = entry.get("out_of_domain_rate")
    if model.get("label_domain") == "out-of-domain":
        measured = f"; {ood:.0%} of its answers fell outside the taxonomy" if isinstance(ood, float) else ""
        out.append(
            _entry(
                "out-of-domain model",
                "high",
                name,
                "the model's labels are not skin-lesion classes "
                f"(card: {model.get('source') or 'adapter'}){measured}",
                "Exclude it from any accuracy claim; use it only as a negative control.",
            )
        )
    elif isinstance(ood, (int, float)) and ood > 0:
        out.append(
            _entry(
                "out-of-domain model",
                "high" if ood >= 0.5 else "medium",
                name,
                f"{ood:.0%} of its answers fell outside the taxonomy",
                "Check the label mapping (`labels:` / `label_map:`) before reading its metrics.",
            )
        )
    prohibited = [str(u) for u in model.get("prohibited_uses") or []]
    if prohibited:
        out.append(
            _entry(
                "prohibited intended use",
                "high",
                name,
                f"the model card prohibits: {', '.join(prohibited)}",
                "Do not use its output for these purposes; keep it to research comparison.",
            )
        )
    use = policy.get("intended_use")
    if use:
        scope = {slug(u) for u in model.get("out_of_scope_uses") or []}
        if slug(use) in scope and slug(use) not in {slug(u) for u in prohibited}:
            out.append(
                _entry(
                    "prohibited intended use",
                    "high",
                    name,
                    f"the policy's intended use {use!r} is listed as out of scope by the model card",
                    "Choose a model whose card covers this use, or change the stated intended use.",
                )
            )
    return out


def _region_risk(name: str, card: Mapping[str, Any], policy: dict) -> list[dict]:
    allowed = policy.get("allowed_regions")
    service = card.get("service") or {}
    if allowed is None:
        return []
    region = (
        service.get("region")
        if service.get("data_leaves_machine", True)
        else (service.get("region") or "local")
    )
    if region in allowed:
        return []
    return [
        _entry(
            "region outside policy",
            "high",
            name,
            f"{service.get('service', 'service')} region {region or 'unknown'!s} is not in {allowed}",
            "Redeploy in an allowed region or remove the provider; `policy.mode: enforce` refuses it.",
        )
    ]


def _unknown_risks(
    name: str, card: Mapping[str, Any], entry: Mapping[str, Any], cost: Mapping[str, Any] | None, policy: dict
) -> list[dict]:
    out: list[dict] = []
    projected = (entry.get("cost_usd") or {}).get("projected") or {}
    if cost is not None and projected.get("monthly", cost.get("monthly_usd")) is None:
        reason = (cost.get("assumptions") or ["no sourced price"])[0]
        out.append(
            _entry(
                "unknown price",
                "medium",
                name,
                reason,
                "Set `pricing:` for this provider from your contract.",
            )
        )
    elif cost is None and (entry.get("cost_usd") or {}).get("total") is None and entry.get("ok"):
        out.append(
            _entry(
                "unknown price",
                "medium",
                name,
                "no cost known for its answers",
                "Set `pricing:` for this provider, or add its price with a source to the catalog.",
            )
        )
    if (card.get("service") or {}).get("data_leaves_machine", True):
        missing = [f for f in _VENDOR_FACTS if card.get(f) is None]
        if missing:
            hipaa = "hipaa_eligible" in missing and policy.get("require_hipaa_eligible")
            out.append(
                _entry(
                    "unknown vendor facts",
                    "high" if hipaa else "medium",
                    name,
                    f"no sourced vendor statement for: {', '.join(missing)}",
                    "Obtain them from the vendor (contract, BAA, trust portal) before sending personal data.",
                )
            )
        out.append(
            _entry(
                "personal data sent to a processor",
                "low",
                name,
                f"images go to {(card.get('service') or {}).get('service', 'a cloud service')} "
                f"({(card.get('service') or {}).get('vendor', '?')}); metadata is stripped before sending",
                "Record the processor, region and legal basis in the DPIA; send de-identified images only.",
            )
        )
    return out


def _scored(metrics: Mapping[str, Any]) -> int:
    """A subgroup's scored (labelled, answered) images: the summary's ``n_scored``, as its table shows.

    ``n`` counts every image of the group, failed and unlabelled ones included, so it cannot be the
    count a metric's reliability is judged by (issue #12 item 6: 1/18/16 here vs 0/17/14 in the table).
    """
    return int(metrics.get("n_scored", metrics.get("n")) or 0)


def _subgroup_risks(summary: Mapping[str, Any], gap: float, min_n: int) -> list[dict]:
    out: list[dict] = []
    sizes: dict[tuple[str, str], int] = {}
    for name, entry in (summary.get("providers") or {}).items():
        for column, values in (entry.get("subgroups") or {}).items():
            scored = {
                str(v): m
                for v, m in values.items()
                if isinstance(m.get("balanced_accuracy"), (int, float)) and _scored(m) >= MIN_GAP_N
            }
            for value, metrics in values.items():
                n = _scored(metrics)
                sizes[(column, str(value))] = max(sizes.get((column, str(value)), 0), n)
            if len(scored) < 2:
                continue
            lo = min(scored, key=lambda v: scored[v]["balanced_accuracy"])
            hi = max(scored, key=lambda v: scored[v]["balanced_accuracy"])
            spread = scored[hi]["balanced_accuracy"] - scored[lo]["balanced_accuracy"]
            if spread > gap:
                reliable = min(_scored(scored[lo]), _scored(scored[hi])) >= min_n
                severity = "high" if spread >= 2 * gap else "medium"
                caveat = (
                    "" if reliable else f" (a group has fewer than {min_n} images: confirm with more data)"
                )
                out.append(
                    _entry(
                        "subgroup performance gap",
                        severity,
                        name,
                        f"balanced accuracy across {column} ranges from "
                        f"{scored[lo]['balanced_accuracy']:.2f} "
                        f"({column}={lo}, n={_scored(scored[lo])}) to {scored[hi]['balanced_accuracy']:.2f} "
                        f"({column}={hi}, n={_scored(scored[hi])}): gap {spread:.2f} > {gap:.2f}{caveat}",
                        "Do not deploy for the weaker subgroup without more data and a fairness review.",
                    )
                )
    for (column, value), n in sorted(sizes.items()):
        if n < min_n:
            out.append(
                _entry(
                    "small subgroup",
                    "medium",
                    None,
                    f"{column}={value} has {n} scored image(s) (< {min_n}): its metrics are not reliable",
                    "Collect more images of this subgroup before drawing conclusions about it.",
                )
            )
    return out


def _dataset_risks(summary: Mapping[str, Any], ratio: float, min_n: int) -> list[dict]:
    dataset = summary.get("dataset") or {}
    counts = dataset.get("class_counts") or dataset.get("label_counts") or {}
    counts = {str(k): int(v) for k, v in counts.items() if v is not None}
    if not counts:
        return []
    out: list[dict] = []
    missing = sorted(code for code, n in counts.items() if n == 0)
    if missing:
        out.append(
            _entry(
                "class imbalance",
                "medium",
                None,
                f"no labelled images of: {', '.join(missing)}; sensitivity for them cannot be measured",
                "Add labelled images of these classes (dataset sample --per-stratum).",
            )
        )
    present = {code: n for code, n in counts.items() if n > 0}
    if len(present) >= 2:
        big = max(present, key=present.__getitem__)
        small = min(present, key=present.__getitem__)
        if present[big] / present[small] > ratio:
            out.append(
                _entry(
                    "class imbalance",
                    "medium",
                    None,
                    f"{big} has {present[big]} images, {small} only {present[small]} "
                    f"(ratio {present[big] / present[small]:.1f} > {ratio:g}); "
                    f"accuracy is dominated by {big}",
                    "Read balanced accuracy and per-class sensitivity, not accuracy; "
                    "rebalance with stratified sampling.",
                )
            )
        few = sorted(code for code, n in present.items() if n < min_n)
        if few:
            out.append(
                _entry(
                    "class imbalance",
                    "low",
                    None,
                    f"fewer than {min_n} labelled images of: {', '.join(few)}",
                    "Treat per-class sensitivity for these as indicative only.",
                )
            )
    return out


def risk_register(
    summary: Mapping[str, Any],
    cards: Mapping[str, Mapping[str, Any]],
    policy: Any = None,
    *,
    subgroup_gap: float = SUBGROUP_GAP,
    min_subgroup_n: int = MIN_SUBGROUP_N,
    imbalance_ratio: float = IMBALANCE_RATIO,
) -> list[dict[str, Any]]:
    """The risks the evidence shows, most severe first.

    Args:
        summary: the compare summary (``providers``, ``dataset`` with ``class_counts`` {code: n}, and
            ``cost`` from ``cost_section`` when present).
        cards: ``{provider: GovernanceCard as a dict}``.
        policy: the config's ``Policy`` (or its dict); None when there is none.
        subgroup_gap: balanced-accuracy spread within one subgroup column flagged as a gap.
        min_subgroup_n: subgroups (and classes) with fewer images are flagged as small.
        imbalance_ratio: largest/smallest class count above which the dataset is flagged as imbalanced.
    """
    pol = _policy_dict(policy)
    providers = summary.get("providers") or {}
    costs = summary.get("cost")
    risks: list[dict] = []
    for name in list(cards) + [p for p in providers if p not in cards]:
        card = cards.get(name) or {}
        entry = providers.get(name) or {}
        risks += _model_risks(name, card, entry, pol)
        if card:
            risks += _region_risk(name, card, pol)
        risks += _unknown_risks(
            name, card, entry, (costs or {}).get(name) if costs is not None else None, pol
        )
    risks += _subgroup_risks(summary, subgroup_gap, min_subgroup_n)
    risks += _dataset_risks(summary, imbalance_ratio, min_subgroup_n)
    return sorted(risks, key=lambda r: _SEVERITY_ORDER[r["severity"]])
