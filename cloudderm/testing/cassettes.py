"""Recorded HTTP fixtures: record a provider's answers once, replay them offline, keeping no secret or pixel.

Why vcrpy: it patches ``http.client``, urllib3 (botocore's own connection classes included), requests and
httpx at the connection level, so one recorder sees boto3 (SageMaker), azure-core's ``RequestsTransport``
(Azure ML) and the aiplatform REST transport (Vertex AI, requests under google-auth's
``AuthorizedSession``) alike; from vcrpy 9.4 it also patches ``httpx2``, the transport of the openai,
anthropic and google-genai SDKs (tests/adapters/test_openai_cassette.py records from threads and replays).
What is kept of each exchange is decided in :mod:`cloudderm.testing.redact`,
how it is written in :mod:`cloudderm.testing.cassette_format`; this module decides how requests are
matched, when the network is blocked and when a recording is saved.

A request matches a recorded one on method, host (no scheme, no port), path, query (any order, secret
parameters left out) and the SHA-256 of its body. Never on headers: SigV4 and OAuth signatures change on
every call. The same request may be replayed any number of times (retries, the same image sent twice);
recorded answers to one request are played in order, the last one repeating.

Modes: ``replay`` (the cassette must exist; an unmatched request raises :class:`CassetteMiss` naming the
cassette and the request, and no socket is opened), ``record`` (talk to the real endpoint and write a fresh
cassette when the block succeeds) and ``auto`` (replay when the file exists, record otherwise). Usage::

    from cloudderm.testing import cassette

    with cassette("tests/cassettes/vertex/automl.yaml", mode="auto"):
        predictions = clf.classify_batch(images)
"""

from __future__ import annotations

import contextlib
import copy
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from unittest import mock

import vcr.patch
from vcr.cassette import Cassette
from vcr.patch import CassettePatcherBuilder
from vcr.record_mode import RecordMode
from vcr.request import Request

from cloudderm.testing.cassette_format import (
    RERECORD_HINT,
    Persister,
    RecordedRequest,
    dump_document,
    sanitize_request,
    sanitize_response,
    to_document,
    write_atomically,
)
from cloudderm.testing.errors import (
    CassetteError,
    CassetteLeak,
    CassetteMiss,
    CassetteNotFound,
    NetworkBlocked,
)
from cloudderm.testing.redact import describe_body, request_key
from cloudderm.testing.scan import find_leaks_in_text

__all__ = [
    "CassetteError",
    "CassetteLeak",
    "CassetteMiss",
    "CassetteNotFound",
    "NetworkBlocked",
    "Recording",
    "cassette",
]

Mode = Literal["replay", "record", "auto"]
MODES = ("replay", "record", "auto")


def _same_request(r1: RecordedRequest, r2: RecordedRequest) -> None:
    """vcrpy matcher: raises AssertionError unless method, host, path, query and body hash all agree."""
    if r1.key != r2.key:
        raise AssertionError(f"{r1.describe()} != {r2.describe()}")


class _Tape(Cassette):
    """vcrpy's cassette with cloudderm's storage, repeatable playback and a precise miss error."""

    def __init__(self, path: Path, *, replay: bool) -> None:
        super().__init__(
            path,
            persister=Persister,
            record_mode=RecordMode.NONE if replay else RecordMode.ALL,
            match_on=(_same_request,),
            before_record_request=self._filter,
            before_record_response=sanitize_response,
        )
        self.misses: list[CassetteMiss] = []
        self._lock = threading.Lock()
        self._local = threading.local()

    def _filter(self, request: Request) -> RecordedRequest | None:
        if getattr(self._local, "unrecorded", False) and not isinstance(request, RecordedRequest):
            return None
        return sanitize_request(request)

    @contextlib.contextmanager
    def unrecorded(self) -> Iterator[None]:
        self._local.unrecorded = True
        try:
            yield
        finally:
            self._local.unrecorded = False

    def __contains__(self, request: Request) -> bool:
        return any(True for _ in self._responses(request))

    def can_play_response_for(self, request: Request) -> bool:
        if self.record_mode == RecordMode.ALL:
            return False
        recorded = self._before_record_request(request)
        if recorded is not None and recorded in self:
            return True
        miss = self._miss(request, recorded)
        if recorded is not None:
            # Credential exchanges are refused but not re-raised when the block ends: background
            # refreshers (google-auth's access-boundary lookup) tolerate the failure, and code that needs
            # the token fails at the call with this message anyway.
            with self._lock:
                self.misses.append(miss)
        raise miss

    def play_response(self, request: Request) -> dict[str, Any]:
        with self._lock:
            matches = [index for index, _ in self._responses(request)]
            if not matches:
                raise self._miss(request, self._before_record_request(request))
            index = next((i for i in matches if self.play_counts[i] == 0), matches[-1])
            self.play_counts[index] += 1
            return copy.deepcopy(self.data[index][1])

    def _miss(self, live: Request, recorded: RecordedRequest | None) -> CassetteMiss:
        path = str(self._path)
        if recorded is None:
            method, host, url_path, _ = request_key(live.method, live.uri)
            return CassetteMiss(
                f"cassette {path}: {method} {host}{url_path} is a credential exchange (OAuth, STS or "
                "instance metadata), which cassettes never record. Replay with static or anonymous "
                "credentials (e.g. AWS_ACCESS_KEY_ID=testing, a dummy api_key, Vertex `anonymous: true`).",
                cassette=path,
                method=method,
                host=host,
                path=url_path,
                body_sha256="",
            )
        method, host, url_path, _ = request_key(recorded.method, recorded.uri)
        same_place = [r for r, _ in self.data if r.key[:3] == recorded.key[:3]]
        lines = [f"cassette {path} has no recorded answer for {recorded.describe()}."]
        if same_place:
            lines.append(f"It holds {len(same_place)} answer(s) for {method} {host}{url_path}:")
            lines += [f"  - {r.describe()}" for r in same_place[:5]]
            lines.append("The body differs: another image, other parameters or a changed encoding.")
        else:
            lines.append(f"It holds nothing for {method} {host}{url_path} ({len(self.data)} interactions).")
        lines.append(f"{RERECORD_HINT}; nothing was sent over the network.")
        return CassetteMiss(
            "\n".join(lines),
            cassette=path,
            method=method,
            host=host,
            path=url_path,
            body_sha256=recorded.body_info["sha256"],
        )


# ---- the context ------------------------------------------------------------------------------------------
@dataclass
class Recording:
    """The cassette in use, as the ``with`` block sees it."""

    path: Path
    mode: Literal["replay", "record"]
    tape: _Tape = field(repr=False)
    blocked: list[str] = field(default_factory=list)
    discarded: bool = False

    @property
    def recording(self) -> bool:
        return self.mode == "record"

    @property
    def interactions(self) -> int:
        return len(self.tape)

    @property
    def play_count(self) -> int:
        return self.tape.play_count

    @property
    def misses(self) -> list[CassetteMiss]:
        return self.tape.misses

    @contextlib.contextmanager
    def unrecorded(self) -> Iterator[None]:
        """While recording, send this thread's requests without storing them (test-server setup calls)."""
        if not self.recording:
            raise CassetteError(
                f"cassette {self.path} is replaying: unrecorded() only applies while recording"
            )
        with self.tape.unrecorded():
            yield

    def discard(self) -> None:
        """Do not write this recording (the pytest plugin calls it when the test failed)."""
        self.discarded = True


@contextlib.contextmanager
def _network_blocked(session: Recording) -> Iterator[None]:
    """Make any IP connection attempt fail loudly, so a replay can never reach a real endpoint."""
    cls = socket.socket
    saved = {name: cls.__dict__.get(name) for name in ("connect", "connect_ex")}
    originals = {name: getattr(cls, name) for name in saved}

    def guarded(name: str) -> Any:
        def attempt(sock: socket.socket, address: Any, *args: Any) -> Any:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                session.blocked.append(repr(address))
                raise NetworkBlocked(
                    f"cassette {session.path} is replaying: a connection to {address!r} was blocked "
                    "(a library bypassed the recorder, or a request was not in the cassette)"
                )
            return originals[name](sock, address, *args)

        return attempt

    for name in saved:
        setattr(cls, name, guarded(name))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                delattr(cls, name)
            else:
                setattr(cls, name, value)


@contextlib.contextmanager
def _no_reset() -> Iterator[None]:
    yield


@contextlib.contextmanager
def cassette(
    path: str | os.PathLike[str], mode: Mode = "replay", *, scan: bool = True
) -> Iterator[Recording]:
    """Record or replay every HTTP request made inside the block.

    Args:
        path: the cassette file (``.yaml``).
        mode: ``replay`` (file must exist; network blocked), ``record`` (real calls; the file is rewritten
            when the block succeeds) or ``auto`` (replay if the file exists, else record).
        scan: refuse to write a recording that :func:`cloudderm.testing.scan.find_leaks` flags.

    Raises:
        CassetteNotFound: replay of a cassette that does not exist.
        CassetteMiss: a request had no recorded answer (raised where the request was made, and again when
            the block ends, so a library that swallows errors cannot hide a failed replay).
        NetworkBlocked: something tried to open a connection during replay.
        CassetteLeak: the recording would store a secret or image data (nothing is written).
    """
    if mode not in MODES:
        raise ValueError(f"cassette mode must be one of {', '.join(MODES)}, not {mode!r}")
    file = Path(path)
    replay = mode == "replay" or (mode == "auto" and file.is_file())
    if replay and not file.is_file():
        raise CassetteNotFound(
            f"cassette {file} does not exist. Record it with mode='record' or 'auto' "
            "(pytest: --cloudderm-record=once)."
        )
    tape = _Tape(file, replay=replay)
    if replay:
        tape._load()
    session = Recording(path=file, mode="replay" if replay else "record", tape=tape)
    with contextlib.ExitStack() as stack:
        for patcher in CassettePatcherBuilder(tape).build():
            stack.enter_context(patcher)
        # vcrpy un-patches every connection class process-wide while one thread talks to a real server
        # (force_reset), so a request another thread starts meanwhile escapes the recorder (vcrpy #212,
        # #849). The stubs build their real connections from the saved original classes, so the reset is
        # not needed for http.client, urllib3, requests or botocore; without it, threaded recording is safe.
        stack.enter_context(mock.patch.object(vcr.patch, "force_reset", _no_reset))
        if replay:
            stack.enter_context(_network_blocked(session))
        try:
            yield session
        except CassetteError:
            raise
        except BaseException as error:
            if tape.misses:
                raise tape.misses[0] from error
            raise
    if tape.misses:
        raise tape.misses[0]
    if session.blocked:
        raise NetworkBlocked(
            f"cassette {file} is replaying: connections to {', '.join(session.blocked)} blocked"
        )
    if not replay and not session.discarded:
        _save(file, tape, scan=scan)


def _save(file: Path, tape: _Tape, *, scan: bool) -> None:
    text = dump_document(to_document(list(tape.data)))
    if scan:
        findings = find_leaks_in_text(text, str(file))
        if findings:
            listed = "\n".join(f"  - {f}" for f in findings[:10])
            raise CassetteLeak(f"not writing cassette {file}: it would store\n{listed}", findings)
    write_atomically(file, text)


def body_sha256(data: bytes) -> str:
    """The hash a cassette matches a request body on (canonical form for JSON), as a miss reports it."""
    return str(describe_body(data)["sha256"])
