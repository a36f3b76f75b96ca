"""The HTTP adapters read the proxy and CA environment once, when their session is built, and pool enough.

Per-call CPU is measured by benchmarks/bench_adapter_overhead.py; here only the behaviour is checked:
the environment is still honoured (proxy, NO_PROXY, CA bundle), then no longer consulted per call.
"""

from __future__ import annotations

import pytest

requests = pytest.importorskip("requests")
from cloudderm.adapters._http import MIN_POOL, pin_environment  # noqa: E402

URL = "https://derm.uksouth.inference.ml.azure.com/score"


@pytest.fixture
def proxied(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "NO_PROXY",
        "no_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "CURL_CA_BUNDLE",
        "ALL_PROXY",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp.example:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/corp/ca.pem")


def test_the_environment_is_honoured_once_then_not_read(
    proxied: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = pin_environment(requests.Session(), URL, pool_size=4)
    assert session.trust_env is False
    assert session.proxies["https"] == "http://proxy.corp.example:3128"
    assert session.verify == "/etc/corp/ca.pem"
    monkeypatch.setenv("HTTPS_PROXY", "http://other.example:1")  # read once: later changes do not apply
    settings = session.merge_environment_settings(URL, {}, None, None, None)
    assert settings["proxies"]["https"] == "http://proxy.corp.example:3128"


def test_no_proxy_exempts_the_endpoint(proxied: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", ".azure.com")
    session = pin_environment(requests.Session(), URL)
    assert "https" not in session.proxies


@pytest.mark.parametrize(("concurrency", "expected"), [(None, MIN_POOL), (4, MIN_POOL), (48, 48)])
def test_pool_holds_the_providers_concurrency(concurrency: int | None, expected: int) -> None:
    session = pin_environment(requests.Session(), URL, pool_size=concurrency)
    assert session.get_adapter(URL)._pool_maxsize == expected


def test_azureml_session_is_pinned(proxied: None) -> None:
    pytest.importorskip("azure.core")
    from cloudderm.adapters.azureml import AzureMLClassifier, AzureMLSettings

    clf = AzureMLClassifier("a", AzureMLSettings(scoring_uri=URL, api_key="k", concurrency=32))
    clf.warm_up()
    transport = clf._pipeline_transport
    assert transport.session.trust_env is False
    assert transport.session.proxies["https"] == "http://proxy.corp.example:3128"
    assert transport.connection_config.verify == "/etc/corp/ca.pem"
    assert transport.session.get_adapter(URL)._pool_maxsize == 32
    clf.close()


def test_vertex_session_is_pinned(proxied: None) -> None:
    pytest.importorskip("google.cloud.aiplatform_v1")
    from cloudderm.adapters.vertex import VertexClassifier, VertexSettings

    settings = VertexSettings(
        project="p", location="europe-west2", endpoint_id="1", anonymous=True, concurrency=24
    )
    clf = VertexClassifier("v", settings)
    clf.warm_up()
    session = clf._get_client().transport._session
    url = "https://europe-west2-aiplatform.googleapis.com/v1/x"
    assert session.trust_env is False
    assert session.proxies["https"] == "http://proxy.corp.example:3128"
    assert session.verify == "/etc/corp/ca.pem"
    assert session.get_adapter(url)._pool_maxsize == 24
    clf.close()
