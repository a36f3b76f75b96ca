"""``--engine ray`` planning that needs no cluster: when calls need the bucket, and address checks."""

from __future__ import annotations

import socket

import pytest

from cloudderm.compare.bucket import Limit
from cloudderm.compare.ray_engine import RayEngine, check_address
from cloudderm.errors import ConfigError


@pytest.mark.parametrize(
    ("limit", "slots", "needed"),
    [
        (Limit(concurrency=16), 16, False),  # one replica with 16 threads: Ray's max_concurrency is the limit
        (Limit(concurrency=3), 4, True),  # 2 replicas x 2 threads could make 4 calls: only grants keep 3
        (Limit(concurrency=16, rate=5.0), 16, True),  # a rate is kept by the bucket alone
    ],
)
def test_grants_are_asked_only_when_threads_alone_could_break_a_limit(
    limit: Limit, slots: int, needed: bool
) -> None:
    assert RayEngine._needs_grants(limit, slots) is needed


def test_an_address_with_nothing_listening_is_a_clean_config_error() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConfigError, match="cannot reach the Ray cluster"):
        check_address(f"127.0.0.1:{port}")
    with pytest.raises(ConfigError, match="expected HOST:PORT"):
        check_address("ray://head-without-port")


def test_an_address_where_something_listens_passes_the_check() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        check_address(f"127.0.0.1:{server.getsockname()[1]}")
        check_address(f"ray://127.0.0.1:{server.getsockname()[1]}")


def test_the_resume_command_repeats_the_engine_and_its_address() -> None:
    """Ctrl-C prints the command that resumes: it must resume on the same engine, not on this machine."""
    from cloudderm.cli import build_parser
    from cloudderm.cli.cmd_compare import resume_command

    parser = build_parser()
    ray_args = parser.parse_args(["compare", "imgs", "--engine", "ray", "--ray-address", "10.0.0.5:6379"])
    assert resume_command(ray_args).endswith("--engine ray --ray-address 10.0.0.5:6379")
    local_args = parser.parse_args(["compare", "imgs", "--workers", "3"])
    assert "--engine" not in resume_command(local_args) and "--workers 3" in resume_command(local_args)


SECRET = "sk-CANARY-8c1f2e"


def _azure_config(env: dict[str, str]):
    from cloudderm.config import parse_config

    provider = {
        "adapter": "azureml",
        "scoring_uri": "https://ep.uksouth.inference.ml.azure.com/score",
        "api_key": "${CANARY_KEY}",
        "region": "uksouth",
    }
    return parse_config({"providers": {"az": provider}}, env=env)


def test_a_recipe_for_another_machine_carries_the_variable_not_the_secret(monkeypatch) -> None:
    """What Ray stores and sends (the pickled recipe) holds ``${CANARY_KEY}``; the node resolves it."""
    import pickle

    from cloudderm.compare.remote_work import AdapterRecipe
    from cloudderm.factory import build_classifier

    clf = build_classifier("az", _azure_config({"CANARY_KEY": SECRET}), check_policy=False)
    assert clf.settings.api_key.get_secret_value() == SECRET
    blob = pickle.dumps(AdapterRecipe.of(clf))
    assert SECRET.encode() not in blob and b"${CANARY_KEY}" in blob
    assert SECRET.encode() in pickle.dumps(clf), "the check above would pass vacuously otherwise"

    monkeypatch.setenv("CANARY_KEY", "node-value")
    built = pickle.loads(blob).build()
    assert built.settings.api_key.get_secret_value() == "node-value"
    assert (built.name, built.settings.scoring_uri) == ("az", clf.settings.scoring_uri)

    monkeypatch.delenv("CANARY_KEY")
    with pytest.raises(ConfigError, match="CANARY_KEY"):
        pickle.loads(blob).build()


def test_settings_made_in_python_travel_as_they_are() -> None:
    from cloudderm.compare.remote_work import AdapterRecipe
    from cloudderm.testing.fakes import FakeClassifier, FakeSettings

    clf = FakeClassifier("f", FakeSettings(seed="s"))
    assert AdapterRecipe.of(clf).build().settings == clf.settings


def test_a_closed_bucket_refuses_every_later_grant() -> None:
    """Ctrl-C closes the cluster's bucket: calls still waiting for a grant are given up, never sent."""
    from cloudderm.compare.bucket import ManualClock, TokenBucket

    bucket = TokenBucket({"p": Limit(concurrency=1)}, clock=ManualClock())
    held, _ = bucket.try_acquire("p", "a")
    assert held is not None
    bucket.close()
    assert bucket.try_acquire("p", "b") == (None, -1.0)
    bucket.release("p", held)
    assert bucket.try_acquire("p", "b") == (None, -1.0)
