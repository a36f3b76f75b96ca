"""Emulated protocols by name: one row per protocol, each module imported only when first used.

Add a protocol by writing ``cloudderm/emulate/<name>.py`` with a :class:`~cloudderm.emulate.protocol.Protocol`
subclass and adding its row here; nothing else changes.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cloudderm.emulate.protocol import Protocol

__all__ = ["PROTOCOLS", "get_protocol", "protocol_names"]

PROTOCOLS: Mapping[str, str] = MappingProxyType(
    {
        "sagemaker": "cloudderm.emulate.sagemaker:SageMakerProtocol",
        "azureml": "cloudderm.emulate.azureml:AzureMLProtocol",
        "vertex": "cloudderm.emulate.vertex:VertexProtocol",
        "openai": "cloudderm.emulate.openai_chat:OpenAIChatProtocol",
    }
)


def protocol_names() -> list[str]:
    """Every protocol the emulator can serve, in registry order."""
    return list(PROTOCOLS)


@functools.cache
def get_protocol(name: str) -> Protocol:
    """The protocol registered as ``name``.

    Raises:
        ValueError: the name is not registered (the message lists the known ones).
    """
    target = PROTOCOLS.get(name)
    if target is None:
        raise ValueError(f"unknown emulated protocol {name!r}; known: {', '.join(PROTOCOLS)}")
    module_name, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    return cls()
