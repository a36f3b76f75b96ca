"""Network facts the adapters share."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

__all__ = ["is_loopback"]


def is_loopback(target: str | None) -> bool:
    """Whether a URL, ``host:port`` or bare host names this machine (an emulator or a local server).

    The governance card says images do not leave the machine only when this is true, and plain ``http``
    is accepted only for such targets.
    """
    if not target:
        return False
    try:  # a bare address, IPv6 included ("::1" does not parse as a URL host)
        return ipaddress.ip_address(target).is_loopback
    except ValueError:
        pass
    host = urlsplit(target if "://" in target else f"//{target}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
