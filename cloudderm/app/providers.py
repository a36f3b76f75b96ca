"""Which configured providers the app can offer, and why the others are not offered.

At start-up each provider is built without sending anything; the policy is checked exactly as the CLI
checks it (``enforce_policy``: a refused provider keeps its rule and is never called); then it is warmed
up, which is where secrets are resolved and local models loaded, so a missing credential or an uncached
hub model shows up here as a reason instead of as a failure in front of a stakeholder.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, SecretBytes, SecretStr

from cloudderm.classifier import Classifier, ImageLimits
from cloudderm.config import Config
from cloudderm.errors import CloudDermError, PolicyViolation
from cloudderm.images import PreparedImage
from cloudderm.prediction import Prediction

__all__ = ["ClassifyOutcome", "ProviderPool", "Unavailable"]


@dataclass(frozen=True)
class Unavailable:
    """A provider the app does not offer: ``kind`` is refused-by-policy, missing-credential, unavailable."""

    provider: str
    kind: str
    reason: str


@dataclass
class ClassifyOutcome:
    """One image through the chosen providers: the predictions and the per-provider errors."""

    predictions: list[Prediction] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The ``/classify`` API's answer."""
        return {
            "predictions": [p.model_dump(mode="json") for p in self.predictions],
            "errors": list(self.errors),
        }


class ProviderPool:
    """The usable classifiers of a config, built and warmed once; the rest with their reasons."""

    def __init__(self, config: Config, unreadable: Sequence[Unavailable] = ()) -> None:
        self.config = config
        self._secrets = config_secrets(config)
        self.usable: dict[str, Classifier] = {}
        self.unavailable: list[Unavailable] = list(unreadable)
        for name in config.providers:
            self._add(name)

    def _add(self, name: str) -> None:
        from cloudderm.factory import build_classifier

        try:
            classifier = build_classifier(name, self.config)  # enforce_policy runs here, before any send
        except PolicyViolation as e:
            self.unavailable.append(Unavailable(name, "refused-by-policy", self._scrub(str(e))))
            return
        except CloudDermError as e:
            self.unavailable.append(Unavailable(name, _kind(e), self._scrub(str(e))))
            return
        try:
            classifier.warm_up()
        except Exception as e:  # a vendor SDK's credential or load error: shown, never raised at start-up
            classifier.close()
            self.unavailable.append(Unavailable(name, _kind(e), self._scrub(f"{type(e).__name__}: {e}")))
            return
        self.usable[name] = classifier

    def _scrub(self, text: str) -> str:
        """``text`` with every secret of the config replaced, so none reaches the browser."""
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text

    @property
    def names(self) -> list[str]:
        return list(self.usable)

    def limits(self, names: Sequence[str]) -> ImageLimits:
        """The strictest image limits of the chosen providers (one preparation fits them all)."""
        limits = ImageLimits()
        for name in names:
            limits = limits.merge(self.usable[name].image_limits())
        return limits

    def classify(self, image: PreparedImage, names: Sequence[str]) -> ClassifyOutcome:
        """Send the prepared image to each chosen provider; a provider's failure is an error entry."""
        outcome = ClassifyOutcome()
        for name in names:
            classifier = self.usable.get(name)
            if classifier is None:
                outcome.errors.append(
                    {"provider": name, "kind": "not-offered", "message": self._why_not(name)}
                )
                continue
            try:
                outcome.predictions.append(classifier.classify(image))
            except CloudDermError as e:
                outcome.errors.append(
                    {"provider": name, "kind": type(e).__name__, "message": self._scrub(str(e))}
                )
        return outcome

    def _why_not(self, name: str) -> str:
        for item in self.unavailable:
            if item.provider == name:
                return f"{item.kind}: {item.reason}"
        return f"no provider named {name!r} in the config"

    def close(self) -> None:
        for classifier in self.usable.values():
            classifier.close()


def _kind(error: BaseException) -> str:
    text = f"{type(error).__name__} {error}".lower()
    if any(word in text for word in ("credential", "api_key", "api key", "token", "environment variable")):
        return "missing-credential"
    if any(word in text for word in ("cache", "offline", "local_files_only", "hub")):
        return "model-not-cached"
    if type(error).__name__ == "MissingDependencyError":
        return "missing-dependency"
    return "unavailable"


_SECRET_NAME = re.compile(r"key|secret|token|password|credential|connection_string", re.IGNORECASE)


def config_secrets(config: Config) -> list[str]:
    """Every secret value in the config's provider settings (SecretStr fields and secret-named strings)."""
    found: list[str] = []

    def visit(name: str, value: Any) -> None:
        if isinstance(value, SecretStr | SecretBytes):
            raw = value.get_secret_value()
            found.append(raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw)
        elif isinstance(value, str) and _SECRET_NAME.search(name):
            found.append(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                visit(str(key), item)
        elif isinstance(value, BaseModel):
            for key in type(value).model_fields:
                visit(key, getattr(value, key))

    for settings in config.providers.values():
        visit("", settings)
    return sorted({s for s in found if len(s) >= 4}, key=len, reverse=True)
