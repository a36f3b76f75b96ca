"""Build ready-to-use classifiers from a config: the one call behind ``cloudderm.load``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from cloudderm.config import Config, load_config
from cloudderm.errors import ConfigError
from cloudderm.retry import RetryPolicy
from cloudderm.taxonomy import get_taxonomy

if TYPE_CHECKING:
    from cloudderm.classifier import AdapterSettings, Classifier
    from cloudderm.pricing.resolve import PricingTarget

__all__ = ["build_classifier", "load", "pricing_target"]


def build_classifier(name: str, config: Config, *, check_policy: bool = True) -> Classifier:
    """Instantiate provider ``name`` from ``config``; the policy is checked before it can send anything.

    The governance card's warnings (prohibited uses, out-of-domain labels) become standing warnings, so
    every Prediction of this provider carries them.
    """
    from cloudderm.governance.cards import attach_card_warnings
    from cloudderm.governance.policy import enforce_policy
    from cloudderm.registry import resolve_adapter

    settings = config.provider(name)
    cls = resolve_adapter(settings.adapter)
    try:
        taxonomy = get_taxonomy(config.taxonomy, config.labels)
    except ValueError as e:
        raise ConfigError(str(e), file=config.source, field="taxonomy") from None
    classifier = cls(
        name, settings, taxonomy=taxonomy, retry_policy=RetryPolicy(max_retries=settings.max_retries or 0)
    )
    try:
        if check_policy:
            enforce_policy(classifier, config.policy)
        attach_card_warnings(classifier)
        _ = classifier.pricing  # a malformed `pricing:` override fails here, before any image is sent
    except BaseException:
        classifier.close()
        raise
    return classifier


def pricing_target(name: str, settings: AdapterSettings) -> PricingTarget:
    """What pricing needs about a configured provider, from its settings alone (the adapter is not built)."""
    from cloudderm.pricing.resolve import PricingTarget
    from cloudderm.registry import resolve_adapter

    return PricingTarget.from_settings(name, settings, resolve_adapter(settings.adapter))


def load(name: str, config: Config | str | os.PathLike | None = None) -> Classifier:
    """A ready Classifier for provider ``name`` of a config (a path, a Config, or found as usual).

    Example:
        >>> clf = cloudderm.load("skin-vit", config="cloudderm.yaml")  # doctest: +SKIP
        >>> clf.classify("lesion.jpg").top  # doctest: +SKIP
    """
    cfg = config if isinstance(config, Config) else load_config(config)
    return build_classifier(name, cfg)
