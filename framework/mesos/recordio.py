"""RecordIO framing of the v1 event streams, sans I/O: bytes in, records out.

A Mesos event stream is a sequence of ``<decimal byte count>\\n<that many bytes>`` records with
nothing in between (protocol brief, section 1.3). HTTP chunk boundaries have nothing to do with
record boundaries, so the decoder buffers across :meth:`RecordIODecoder.feed` calls and never reads
sockets itself: the transport hands it whatever bytes arrived, and the tests feed it byte by byte.

The decoder is strict, because a framing error means the two sides no longer agree where a record
starts and nothing after it can be trusted: the caller drops the connection and resubscribes. Once it
has raised, the decoder stays broken and raises again on every later call.
"""

from __future__ import annotations

from typing import Final

from framework.mesos.errors import LocalProtocolError, RemoteProtocolError

__all__ = ["DEFAULT_MAX_RECORD_SIZE", "MAX_LENGTH_DIGITS", "RecordIODecoder", "encode"]

DEFAULT_MAX_RECORD_SIZE: Final = 64 * 1024 * 1024
"""A record larger than this is refused: an OFFERS event from a big cluster is a few MiB at most."""

MAX_LENGTH_DIGITS: Final = 20
"""An unsigned 64-bit count has at most 20 decimal digits; a longer prefix is not a length."""

_COMPACT_AT: Final = 64 * 1024
"""Consumed bytes are dropped from the buffer's front once there are this many (or all are consumed),
so many small records cost O(n) in total instead of one memmove per record."""


class RecordIODecoder:
    """Incremental RecordIO decoder.

    ``feed`` returns every record completed by the new bytes (possibly none); bytes of an unfinished
    record stay buffered (see ``buffered``). Records are returned as ``bytes`` copies, so the caller
    may keep them.
    """

    __slots__ = ("_buf", "_data", "_error", "_max_record_size", "_need", "_pos")

    def __init__(self, max_record_size: int = DEFAULT_MAX_RECORD_SIZE) -> None:
        if max_record_size < 1:
            raise ValueError("max_record_size must be positive")
        self._max_record_size = max_record_size
        self._buf = bytearray()
        self._pos = 0  # start of the first unconsumed byte (a length prefix)
        # Length and data offset of the record we are waiting for, once its prefix has been parsed,
        # so a large record arriving in many pieces is not re-parsed each time.
        self._need: int | None = None
        self._data = 0
        self._error: RemoteProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a record (a partial length prefix or record)."""
        return len(self._buf) - self._pos

    @property
    def at_record_boundary(self) -> bool:
        """True when no partial record is pending: a stream ending now ended cleanly."""
        return self.buffered == 0

    @property
    def max_record_size(self) -> int:
        return self._max_record_size

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data`` and return the records it completed, in order.

        Raises ``RemoteProtocolError`` on a malformed length prefix; so does every later call.
        """
        if self._error is not None:
            raise RemoteProtocolError(f"RecordIO decoder unusable after an earlier error: {self._error}")
        if data:
            self._buf += data
        records: list[bytes] = []
        try:
            self._parse(records)
        except RemoteProtocolError as exc:
            self._error = exc
            raise
        self._compact()
        return records

    def _parse(self, records: list[bytes]) -> None:
        buf = self._buf
        while True:
            if self._need is None:
                newline = buf.find(b"\n", self._pos)
                if newline < 0:
                    self._check_partial_prefix()
                    return
                self._need = self._parse_length(bytes(buf[self._pos : newline]))
                self._data = newline + 1
            end = self._data + self._need
            if len(buf) < end:
                return
            records.append(bytes(buf[self._data : end]))
            self._pos = end
            self._need = None

    def _check_partial_prefix(self) -> None:
        """Fail early on a prefix that cannot become a valid length, rather than buffering garbage."""
        prefix = bytes(self._buf[self._pos :])
        if len(prefix) > MAX_LENGTH_DIGITS:
            raise RemoteProtocolError(
                f"RecordIO length prefix longer than {MAX_LENGTH_DIGITS} bytes without a newline: "
                f"{prefix[:40]!r}"
            )
        if prefix and not prefix.isdigit():
            raise RemoteProtocolError(f"RecordIO length prefix is not a decimal number: {prefix!r}")

    def _parse_length(self, prefix: bytes) -> int:
        # bytes.isdigit() is ASCII-only and false for b"", so signs, spaces, underscores and
        # non-ASCII digits that int() would accept are all refused here.
        if not prefix.isdigit() or len(prefix) > MAX_LENGTH_DIGITS:
            raise RemoteProtocolError(f"malformed RecordIO length prefix: {prefix[:40]!r}")
        length = int(prefix)
        if length == 0:
            raise RemoteProtocolError("RecordIO record of length 0 (the format forbids empty records)")
        if length > self._max_record_size:
            raise RemoteProtocolError(
                f"RecordIO record of {length} bytes exceeds the limit of {self._max_record_size}"
            )
        return length

    def _compact(self) -> None:
        if self._pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        elif self._pos >= _COMPACT_AT:
            del self._buf[: self._pos]
            self._data -= self._pos
            self._pos = 0


def encode(record: bytes) -> bytes:
    """Frame one record: ``b"<len>\\n" + record``. Empty records do not exist in RecordIO."""
    if not record:
        raise LocalProtocolError("RecordIO cannot carry an empty record")
    return b"%d\n%s" % (len(record), record)
