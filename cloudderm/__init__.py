"""cloudderm: send the same images to every vision-model provider and compare what comes back.

No output of this package is a diagnosis. It is a research and vendor-evaluation tool.

Imports stay light (no cloud SDK, no torch): adapters load their SDKs on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cloudderm._lazy import lazy_getattr
from cloudderm.errors import (
    CloudDermError,
    CompareInterrupted,
    ConfigError,
    DatasetError,
    InvalidImageError,
    MissingDependencyError,
    PolicyViolation,
    ProviderAuthError,
    ProviderError,
    ProviderHTTPError,
    ProviderThrottled,
    ProviderTimeout,
    ResponseFormatError,
)

if TYPE_CHECKING:
    from cloudderm.classifier import Classifier
    from cloudderm.config import Config, load_config
    from cloudderm.core import ImageContext, PriceQuery, Usage
    from cloudderm.factory import load
    from cloudderm.images import PreparedImage, prepare
    from cloudderm.prediction import LabelScore, Prediction

__version__ = "0.1.0"

__all__ = [
    "Classifier",
    "CloudDermError",
    "CompareInterrupted",
    "Config",
    "ConfigError",
    "DatasetError",
    "ImageContext",
    "InvalidImageError",
    "LabelScore",
    "MissingDependencyError",
    "PolicyViolation",
    "Prediction",
    "PreparedImage",
    "PriceQuery",
    "ProviderAuthError",
    "ProviderError",
    "ProviderHTTPError",
    "ProviderThrottled",
    "ProviderTimeout",
    "ResponseFormatError",
    "Usage",
    "__version__",
    "load",
    "load_config",
    "prepare",
]

_LAZY = {
    "LabelScore": "cloudderm.prediction",
    "Prediction": "cloudderm.prediction",
    "Classifier": "cloudderm.classifier",
    "Config": "cloudderm.config",
    "ImageContext": "cloudderm.core",
    "PriceQuery": "cloudderm.core",
    "Usage": "cloudderm.core",
    "load_config": "cloudderm.config",
    "load": "cloudderm.factory",
    "PreparedImage": "cloudderm.images",
    "prepare": "cloudderm.images",
}

# pydantic, PIL and YAML load only when one of these names is first used, so ``import cloudderm`` is fast.
__getattr__ = lazy_getattr(__name__, _LAZY)
