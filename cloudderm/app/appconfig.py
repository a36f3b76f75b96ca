"""Loading the config for the app: a provider whose settings cannot be read (typically an unset
``${SECRET}`` variable) is listed as not offered instead of stopping the whole app, so the app starts
without secrets."""

from __future__ import annotations

import os

from cloudderm.app.providers import Unavailable
from cloudderm.config import Config, find_config, parse_config, read_config_file
from cloudderm.errors import ConfigError

__all__ = ["load_app_config"]


def load_app_config(path: str | os.PathLike | None) -> tuple[Config, list[Unavailable]]:
    """The config with every readable provider, and the unreadable ones with the reason.

    Raises:
        ConfigError: the file itself is unreadable or invalid outside ``providers``.
    """
    file = find_config(path)
    data = read_config_file(file) or {}
    try:
        return parse_config(data, source=str(file)), []
    except ConfigError:
        if not isinstance(data, dict) or not isinstance(data.get("providers"), dict):
            raise
    kept: dict[str, object] = {}
    skipped: list[Unavailable] = []
    for name, raw in data["providers"].items():
        try:
            parse_config({**data, "providers": {name: raw}}, source=str(file))
        except ConfigError as e:
            text = str(e)
            kind = "missing-credential" if "environment variable" in text else "invalid-settings"
            skipped.append(Unavailable(str(name), kind, text))
            continue
        kept[name] = raw
    return parse_config({**data, "providers": kept}, source=str(file)), skipped
