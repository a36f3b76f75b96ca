"""One ``requests`` session setup for the HTTP adapters (Azure ML, Vertex AI); imported at warm-up only.

Why: with ``trust_env`` on, ``requests`` re-reads the proxy variables, ``NO_PROXY`` and the CA bundle
variables on *every* call (about 0.1 ms of CPU each, a twentieth of a whole scoring call's client CPU).
The environment does not change under a running comparison, so it is read once, when the session is
built, for the endpoint the session talks to, and the session stops looking (``trust_env=False``). What
the environment said is kept: the proxy for that URL (``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``,
unless ``NO_PROXY`` exempts the host) and ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``. ``.netrc`` is not
read: credentials come from the adapter's settings or the vendor's credential chain, never from there.

The connection pool holds as many connections as the provider's workers can use at once, so none is
opened and thrown away per call; ``urllib3`` only caps the idle connections it keeps, so a floor of
``MIN_POOL`` costs nothing where concurrency is lower.
"""

from __future__ import annotations

import os

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

__all__ = ["MIN_POOL", "ca_bundle", "pin_environment"]

MIN_POOL = 16  # the runner's default concurrency per provider; a provider's own ``concurrency`` raises it


def ca_bundle() -> str | bool:
    """The CA bundle ``requests`` would take from the environment, or True (its default certifi store)."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True


def pin_environment(session: requests.Session, url: str, *, pool_size: int | None = None) -> requests.Session:
    """Resolve ``url``'s proxy and CA bundle from the environment once, then stop reading it per call.

    Args:
        session: the session to configure (a plain ``requests.Session`` or google-auth's
            ``AuthorizedSession``); returned for chaining.
        url: the endpoint the session will call (its scheme and host decide the proxy).
        pool_size: the provider's concurrency; connections kept per host are ``max(MIN_POOL, pool_size)``.
            urllib3 retries stay off: the adapters retry with the vendor's policy.
    """
    session.proxies.update(requests.utils.get_environ_proxies(url))
    if session.verify is True:
        session.verify = ca_bundle()
    session.trust_env = False
    adapter = HTTPAdapter(
        pool_connections=1,
        pool_maxsize=max(MIN_POOL, pool_size or 0),
        max_retries=Retry(total=False, redirect=False, raise_on_status=False),
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
