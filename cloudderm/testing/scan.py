"""Scan cassettes (or any fixture files) for secrets and image data before they reach git.

Why a second line of defence: the recorder redacts what it knows about, but cassettes can also be edited
by hand, recorded by older tools or hold a secret in a field nobody predicted. This scanner looks at the
text (line by line, so findings have line numbers) and at the parsed YAML/JSON (so values split over lines,
``!!binary`` blocks and JSON inside response bodies are seen decoded). It reports AWS access key ids and
session tokens, bearer/basic credentials, JWTs, Google API keys and OAuth tokens, Azure keys and SAS
signatures, private keys, unredacted secret-named fields, and image data: JPEG/PNG/GIF/WebP magic numbers,
raw or base64 (``/9j/``, ``iVBORw0KGgo``...), EXIF blocks, binary blobs and long high-entropy base64 runs.
Findings show a masked excerpt, never the value.

Command line (exit 1 when anything is found)::

    python -m cloudderm.testing.scan tests/cassettes
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import math
import re
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cloudderm.testing.errors import CassetteLeak
from cloudderm.testing.redact import REDACTED, image_type, is_secret_header, is_secret_name

__all__ = ["Finding", "find_leaks", "find_leaks_in_text", "main", "scan_cassettes"]

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern))
    for kind, pattern in (
        (
            "aws-access-key-id",
            r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|AKPA|ANPA|ANVA|APKA|AROA|ASCA)[A-Z0-9]{16}"
            r"(?![A-Z0-9])",
        ),
        (
            "aws-secret-access-key",
            r"(?i)(?:secret_?access_?key|aws_?secret)[\"'\s]*[:=]\s*[\"']?[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])",
        ),
        ("aws-session-token", r"(?:IQoJb3JpZ2lu|FwoGZXIvYXdz|FQoGZXIvYXdz)[A-Za-z0-9/+=]{16,}"),
        ("bearer-token", r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]{8,}=*"),
        ("basic-credentials", r"(?i)\bbasic\s+[A-Za-z0-9+/]{12,}={0,2}"),
        ("jwt", r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
        ("google-api-key", r"\bAIza[0-9A-Za-z_-]{35}"),
        ("google-oauth-token", r"\bya29\.[0-9A-Za-z_-]{16,}"),
        ("google-refresh-token", r"(?<![\w/])1//0[0-9A-Za-z_-]{20,}"),
        ("private-key", r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"),
        ("azure-key", r"(?i)\b(?:AccountKey|SharedAccessKey|SharedAccessSignature)=[^;\s\"']{16,}"),
        ("azure-sas-signature", r"[?&]sig=[A-Za-z0-9%+/=]{20,}"),
        ("azure-key", r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{86}==(?![A-Za-z0-9+/=])"),
        (
            "azure-key",
            r"(?i)(?:api[-_]?key|subscription[-_]?key|prediction[-_]?key|functions[-_]key|primary[-_]?key"
            r"|secondary[-_]?key)[\"'\s]*[:=]\s*[\"']?(?!<redacted>)[A-Za-z0-9+/_\-.~=]{16,}",
        ),
        (
            "secret-value",
            r"(?i)(?:client[-_]?secret|password|passwd)[\"'\s]*[:=]\s*[\"']?(?!<redacted>)[^\s\"',}]{8,}",
        ),
        ("jpeg-base64", r"(?<![A-Za-z0-9+/])/9j/[A-Za-z0-9+/]{8,}|(?<![\w-])_9j_[A-Za-z0-9_-]{8,}"),
        ("png-base64", r"iVBORw0KGgo"),
        ("gif-base64", r"R0lGOD[dl]h"),
        ("webp-base64", r"UklGR[A-Za-z0-9+/]{5}XRUJQ"),
        ("exif-base64", r"RXhpZgAA|(?i:\\x45\\x78\\x69\\x66\\x00\\x00)"),
        ("jpeg-bytes", r"\u00ff\u00d8\u00ff|(?i:\\xff\\xd8\\xff|\\u00ff\\u00d8\\u00ff)"),
        ("png-bytes", r"\u0089PNG|(?i:\\x89PNG|\\u0089PNG)"),
        ("exif-bytes", r"Exif\x00\x00|Exif\\0\\0|(?i:Exif\\x00\\x00|Exif\\u0000\\u0000)"),
    )
)
_RUNS = (re.compile(r"[A-Za-z0-9+/]{120,}={0,2}"), re.compile(r"[A-Za-z0-9_-]{120,}={0,2}"))
_B64_CHUNK = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
# Shannon entropy (bits/char) of base64 of random bytes is ~6; URL paths and identifiers stay near 4.
MIN_RUN_ENTROPY = 4.8
MIN_SECRET_CHARS = 8
MIN_BINARY_BYTES = 64
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"GIF87a", b"Exif\x00\x00")


@dataclass(frozen=True)
class Finding:
    """One suspicious value: where it is, what it looks like, and a masked excerpt."""

    file: str
    where: str
    kind: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.file}:{self.where}: {self.kind} ({self.excerpt})"


def _mask(value: str) -> str:
    shown = value[:4].replace("\n", " ")
    return f"{shown}… {len(value)} chars"


def _entropy(text: str) -> float:
    counts = Counter(text)
    total = len(text)
    return -sum(n / total * math.log2(n / total) for n in counts.values())


def _looks_like_base64_blob(run: str) -> bool:
    core = run.rstrip("=")
    has_mix = (
        any(c.isupper() for c in core) and any(c.islower() for c in core) and any(c.isdigit() for c in core)
    )
    return has_mix and _entropy(core) >= MIN_RUN_ENTROPY


def _text_hits(text: str) -> Iterator[tuple[str, str]]:
    """(kind, matched text) for every suspicious pattern in a piece of text."""
    variants = [text]
    if "\\/" in text:
        variants.append(text.replace("\\/", "/"))
    for variant in variants:
        for kind, pattern in _PATTERNS:
            for match in pattern.finditer(variant):
                yield kind, match.group(0)
        for runs in _RUNS:
            for match in runs.finditer(variant):
                if _looks_like_base64_blob(match.group(0)):
                    yield "base64-run", match.group(0)


def _decoded_images(text: str) -> Iterator[str]:
    """Base64 chunks of a string that decode to image data (whatever their length)."""
    for match in _B64_CHUNK.finditer(text):
        chunk = match.group(0)
        padded = chunk + "=" * (-len(chunk.rstrip("=")) % 4)
        try:
            if "-" in chunk or "_" in chunk:
                data = base64.urlsafe_b64decode(padded)
            else:
                data = base64.b64decode(padded)
        except (binascii.Error, ValueError):
            continue
        kind = image_type(data)
        if kind:
            yield kind


class _Scanner:
    def __init__(self, name: str) -> None:
        self.name = name
        self.findings: list[Finding] = []
        self._seen: set[tuple[str, str]] = set()

    def add(self, where: str, kind: str, value: str) -> None:
        excerpt = _mask(value)
        if (kind, excerpt) not in self._seen:
            self._seen.add((kind, excerpt))
            self.findings.append(Finding(self.name, where, kind, excerpt))

    def scan_lines(self, text: str) -> None:
        for number, line in enumerate(text.splitlines(), start=1):
            for kind, value in _text_hits(line):
                self.add(f"line {number}", kind, value)
        for kind, value in _text_hits(text.replace("\n", "")):
            if kind in ("private-key", "base64-run"):
                self.add("file", kind, value)

    def walk(self, value: Any, where: str, *, headers: bool = False) -> None:
        if isinstance(value, dict):
            for name, item in value.items():
                label = f"{where}.{name}" if where else str(name)
                self._check_named(str(name), item, label, headers=headers)
                self.walk(item, label, headers=str(name).lower() == "headers")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self.walk(item, f"{where}[{index}]", headers=headers)
        elif isinstance(value, (bytes, bytearray)):
            self._check_bytes(bytes(value), where)
        elif isinstance(value, str):
            for kind, hit in _text_hits(value):
                self.add(where, kind, hit)
            for kind in _decoded_images(value):
                self.add(where, f"{kind} (base64)", value)
            self._walk_embedded_json(value, where)

    def _check_named(self, name: str, value: Any, where: str, *, headers: bool) -> None:
        secret = is_secret_header(name) if headers else is_secret_name(name)
        if not secret:
            return
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, str) and item != REDACTED and len(item) >= MIN_SECRET_CHARS:
                self.add(where, "secret-field", f"{name}={item}")

    def _check_bytes(self, data: bytes, where: str) -> None:
        kind = image_type(data)
        if kind or any(magic in data for magic in _IMAGE_MAGIC):
            self.add(where, f"{kind or 'image'} (binary)", data[:8].hex())
        elif len(data) >= MIN_BINARY_BYTES:
            self.add(where, "binary-data", data[:8].hex())

    def _walk_embedded_json(self, text: str, where: str) -> None:
        stripped = text.lstrip()
        if stripped[:1] not in ("{", "["):
            return
        try:
            parsed = json.loads(stripped)
        except ValueError:
            return
        self.walk(parsed, f"{where}<json>")


def find_leaks_in_text(text: str, name: str = "<text>") -> list[Finding]:
    """Findings in one cassette's text (YAML or JSON; other text is scanned line by line only)."""
    scanner = _Scanner(name)
    scanner.scan_lines(text)
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        document = None
    if isinstance(document, (dict, list)):
        scanner.walk(document, "")
    return scanner.findings


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))


def find_leaks(path: str | Path) -> list[Finding]:
    """Findings in a file or in every file under a directory (image files count as findings)."""
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"nothing to scan at {root}")
    findings: list[Finding] = []
    for file in _files(root):
        raw = file.read_bytes()
        kind = image_type(raw)
        if kind or any(magic in raw for magic in _IMAGE_MAGIC):
            findings.append(Finding(str(file), "file", f"{kind or 'image'} (binary)", raw[:8].hex()))
        findings.extend(find_leaks_in_text(raw.decode("utf-8", errors="replace"), str(file)))
    return findings


def scan_cassettes(path: str | Path) -> list[Path]:
    """Scan a cassette file or directory: the files scanned, or :class:`CassetteLeak` listing findings."""
    findings = find_leaks(path)
    if findings:
        listed = "\n".join(f"  - {f}" for f in findings)
        raise CassetteLeak(
            f"{len(findings)} suspicious value(s) in cassettes under {path}:\n{listed}", findings
        )
    return _files(Path(path))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cloudderm.testing.scan",
        description="Fail on secrets or image data in recorded HTTP fixtures.",
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="cassette file or directory")
    args = parser.parse_args(argv)
    status, scanned = 0, 0
    for path in args.paths:
        try:
            findings = find_leaks(path)
        except FileNotFoundError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        scanned += len(_files(path))
        for finding in findings:
            print(finding)
        status = 1 if findings else status
    if status == 0:
        print(f"scanned {scanned} file(s): no secrets or image data found")
    return status


if __name__ == "__main__":
    sys.exit(main())
