"""What the emulators received, counted per emulated endpoint, thread-safely.

These counters are the evidence behind claims such as "a resumed run sent no image twice" and "no upload
carried GPS": they are taken from the bytes on the wire, not from what the client says it sent.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cloudderm.emulate.uploads import PRIVACY_FINDINGS, find_metadata

__all__ = ["EmulatorStats", "EndpointStats"]


@dataclass
class EndpointStats:
    """Counters for one emulated endpoint (``"<protocol>/<name>"``, e.g. ``"sagemaker/skin"``).

    Attributes:
        requests: HTTP requests routed to this endpoint (every status).
        bytes_received: request body bytes.
        images: images decoded from request bodies.
        per_image: image SHA-256 (of the uploaded bytes) -> times received.
        faults: injected fault kind -> count.
        statuses: HTTP status answered -> count.
        metadata: image SHA-256 -> metadata blocks it carried (EXIF, GPS, XMP, text chunks, ...).
        deployments: Azure ML ``azureml-model-deployment`` header values seen -> count.
        auth_failures: requests refused for a missing or wrong key.
    """

    requests: int = 0
    bytes_received: int = 0
    images: int = 0
    per_image: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    metadata: dict[str, list[str]] = field(default_factory=dict)
    deployments: Counter[str] = field(default_factory=Counter)
    auth_failures: int = 0
    attempts: Counter[str] = field(default_factory=Counter)

    @property
    def metadata_seen(self) -> bool:
        """Whether any upload carried privacy-relevant metadata (ICC colour profiles do not count)."""
        return any(PRIVACY_FINDINGS.intersection(found) for found in self.metadata.values())

    @property
    def gps_seen(self) -> bool:
        """Whether any upload carried EXIF GPS tags."""
        return any("exif-gps" in found for found in self.metadata.values())

    @property
    def repeated_images(self) -> dict[str, int]:
        """Images received more than once (retries or re-sends) -> times received."""
        return {sha: n for sha, n in self.per_image.items() if n > 1}

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "bytes_received": self.bytes_received,
            "images": self.images,
            "unique_images": len(self.per_image),
            "per_image": dict(self.per_image),
            "faults": dict(self.faults),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "metadata": {sha: list(found) for sha, found in self.metadata.items()},
            "metadata_seen": self.metadata_seen,
            "gps_seen": self.gps_seen,
            "deployments": dict(self.deployments),
            "auth_failures": self.auth_failures,
        }


class EmulatorStats:
    """All endpoints' counters behind one lock; snapshots are plain dicts safe to serialise."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._endpoints: dict[str, EndpointStats] = {}

    def _get(self, key: str) -> EndpointStats:
        stats = self._endpoints.get(key)
        if stats is None:
            stats = self._endpoints[key] = EndpointStats()
        return stats

    def record_request(self, key: str, nbytes: int) -> None:
        with self._lock:
            stats = self._get(key)
            stats.requests += 1
            stats.bytes_received += nbytes

    def record_images(self, key: str, images: Sequence[bytes]) -> tuple[str, int]:
        """Count the images of one request; returns ``(request key, attempt number)`` for fault decisions.

        The request key is the SHA-256 of the image hashes in order (the image's own hash for one image),
        and the attempt number counts how many times this endpoint has now seen that exact request.
        """
        hashes = [hashlib.sha256(img).hexdigest() for img in images]
        findings = {sha: find_metadata(img) for sha, img in zip(hashes, images)}
        request_key = hashes[0] if len(hashes) == 1 else hashlib.sha256("".join(hashes).encode()).hexdigest()
        with self._lock:
            stats = self._get(key)
            stats.images += len(images)
            for sha in hashes:
                stats.per_image[sha] += 1
                if findings[sha]:
                    stats.metadata[sha] = findings[sha]
            stats.attempts[request_key] += 1
            return request_key, stats.attempts[request_key]

    def record_fault(self, key: str, fault: str) -> None:
        with self._lock:
            self._get(key).faults[fault] += 1

    def record_status(self, key: str, status: int) -> None:
        with self._lock:
            self._get(key).statuses[status] += 1

    def record_deployment(self, key: str, deployment: str) -> None:
        with self._lock:
            self._get(key).deployments[deployment] += 1

    def record_auth_failure(self, key: str) -> None:
        with self._lock:
            self._get(key).auth_failures += 1

    def endpoint(self, key: str) -> EndpointStats:
        """A copy of one endpoint's counters (zeros when it has seen nothing)."""
        with self._lock:
            stats = self._endpoints.get(key) or EndpointStats()
            return EndpointStats(
                requests=stats.requests,
                bytes_received=stats.bytes_received,
                images=stats.images,
                per_image=Counter(stats.per_image),
                faults=Counter(stats.faults),
                statuses=Counter(stats.statuses),
                metadata={k: list(v) for k, v in stats.metadata.items()},
                deployments=Counter(stats.deployments),
                auth_failures=stats.auth_failures,
                attempts=Counter(stats.attempts),
            )

    def keys(self) -> list[str]:
        with self._lock:
            return sorted(self._endpoints)

    def snapshot(self) -> dict[str, Any]:
        """Every endpoint's counters plus totals, as served at ``GET /_emulator/stats``."""
        endpoints = {key: self.endpoint(key) for key in self.keys()}
        return {
            "endpoints": {key: stats.to_dict() for key, stats in endpoints.items()},
            "totals": {
                "requests": sum(s.requests for s in endpoints.values()),
                "bytes_received": sum(s.bytes_received for s in endpoints.values()),
                "images": sum(s.images for s in endpoints.values()),
                "faults": sum(sum(s.faults.values()) for s in endpoints.values()),
                "metadata_seen": any(s.metadata_seen for s in endpoints.values()),
                "gps_seen": any(s.gps_seen for s in endpoints.values()),
            },
        }

    def reset(self) -> None:
        """Forget everything (attempt numbers too, so fault decisions start over)."""
        with self._lock:
            self._endpoints.clear()
