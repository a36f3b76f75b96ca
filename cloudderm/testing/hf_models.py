"""Moved to :mod:`cloudderm.emulate.models` (the demo's stand-in models are a product feature).

This alias keeps old imports working for one release; it warns once per process.
"""

from __future__ import annotations

import warnings

from cloudderm.emulate.models import *  # noqa: F403
from cloudderm.emulate.models import __all__  # noqa: F401

warnings.warn(
    "cloudderm.testing.hf_models moved to cloudderm.emulate.models; import from there",
    DeprecationWarning,
    stacklevel=2,
)
