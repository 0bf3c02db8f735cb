"""The resource-usage message the Steward executor sends about its task, through Mesos MESSAGE.

Every few seconds the executor reads the container's Docker stats and sends one JSON object as the
``data`` of an executor MESSAGE call; the master relays it to Steward as a MESSAGE event, and the
runtime hands the bytes to the metrics usage table, which keeps the latest report per task and
exports it as the per-task series (``steward_task_cpu_seconds_total``...). Steward never answers
and never relies on a report arriving: usage is best effort, like MESSAGE itself.

::

    {"type": "usage", "task_id": "squid.0.a1b2", "container": "3f2a...", "timestamp": 1714.2,
     "cpu_seconds_total": 12.5, "memory_bytes": 104857600,
     "net_rx_bytes": 1048576, "net_tx_bytes": 2097152}

Counters (``cpu_seconds_total``, ``net_*``) are totals since the container started, as Docker
reports them, so a lost message loses nothing. ``timestamp`` is the executor's wall clock (seconds
since the epoch): only used to drop a report older than one already kept.

Values only: no I/O.
"""

from __future__ import annotations

import math
from typing import Final, Literal

import msgspec

__all__ = ["MAX_USAGE_MESSAGE_BYTES", "UsageError", "UsageReport", "decode_usage", "encode_usage"]

MAX_USAGE_MESSAGE_BYTES: Final = 4096
"""A report is a few hundred bytes; anything much larger is not one (and is not parsed)."""


class UsageError(ValueError):
    """The bytes are not a usage report; the message says why."""


class UsageReport(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=False):
    """One sample of a task's container usage. Unknown fields are ignored (a newer executor may
    send more); the ones below are required, and must be finite and not negative."""

    type: Literal["usage"] = "usage"
    """Message kind, so executors can send other messages later on the same channel."""
    task_id: str
    """The Mesos task ID the container runs."""
    container: str
    """Docker container ID (or name) the numbers come from."""
    timestamp: float
    """When the executor read the stats (wall clock, seconds since the epoch)."""
    cpu_seconds_total: float
    """CPU time used by the container since it started (user + system), seconds."""
    memory_bytes: float
    """Memory in use now (Docker's usage minus page cache), bytes."""
    net_rx_bytes: float
    """Bytes received over all the container's interfaces since it started."""
    net_tx_bytes: float
    """Bytes sent over all the container's interfaces since it started."""


_DECODER: Final = msgspec.json.Decoder(UsageReport)
_ENCODER: Final = msgspec.json.Encoder()
_NUMBERS: Final = ("timestamp", "cpu_seconds_total", "memory_bytes", "net_rx_bytes", "net_tx_bytes")


def decode_usage(data: bytes) -> UsageReport:
    """Parse and check a report; raises :class:`UsageError` for anything else."""
    if len(data) > MAX_USAGE_MESSAGE_BYTES:
        raise UsageError(f"usage message of {len(data)} bytes is larger than {MAX_USAGE_MESSAGE_BYTES}")
    try:
        report = _DECODER.decode(data)
    except msgspec.DecodeError as exc:
        raise UsageError(f"not a usage report: {exc}") from None
    if not report.task_id or len(report.task_id) > 256:
        raise UsageError("usage report: task_id must be 1-256 characters")
    for name in _NUMBERS:
        value = getattr(report, name)
        if not math.isfinite(value) or value < 0:
            raise UsageError(f"usage report: {name} must be a finite number >= 0")
    return report


def encode_usage(report: UsageReport) -> bytes:
    """The JSON bytes an executor sends (every field, ``type`` included)."""
    return _ENCODER.encode(report)
