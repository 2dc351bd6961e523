"""Compact binary formats of the worker's internal messages and table values, and the
idempotent apply that makes the per-key totals exact under at-least-once delivery.

A delta message holds entries, each for one key: three counters, T in epoch millis, and its
origin: `source` (the dedup input partition, tagged with the topic) and the offset of the input
record. All keys of one message belong to the partition the message is sent to. Re-processing
after a crash re-sends the very same (key, source, offset) entries in the same order per key
(how they are grouped into messages may differ), so a key's value keeps, per source, the highest
offset applied and skips anything at or below it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

_DELTA = struct.Struct(">qqqqiq")
_KEY_LEN = struct.Struct(">I")
_HEAD = struct.Struct(">qqqq")
_MARK = struct.Struct(">iq")

Counts = tuple[int, int, int]  # a table's three counters, in the order its names give
Delta = tuple[bytes, Counts, int, int, int]  # key, counts, t_ms, source, offset


def pack_delta(
    key: bytes, counters: tuple[int, int, int], t_ms: int, source: int, offset: int
) -> bytes:
    """One entry of a delta message; a message is entries concatenated (see unpack_deltas)."""
    return (
        _KEY_LEN.pack(len(key))
        + key
        + _DELTA.pack(counters[0], counters[1], counters[2], t_ms, source, offset)
    )


def unpack_deltas(data: bytes) -> list[Delta]:
    """The entries of a delta message, in the order they were packed."""
    out: list[Delta] = []
    pos, end = 0, len(data)
    try:
        while pos < end:
            (n,) = _KEY_LEN.unpack_from(data, pos)
            pos += _KEY_LEN.size
            key = data[pos : pos + n]
            pos += n
            first, second, third, t_ms, src, off = _DELTA.unpack_from(data, pos)
            pos += _DELTA.size
            out.append((key, (first, second, third), t_ms, src, off))
    except struct.error:
        raise ValueError(f"truncated delta message ({end} bytes)") from None
    return out


#: Dedup-table key of a partition's stream time (never a customer id: those are not empty).
STREAM_TIME_KEY = b"\x00stream-time:%d"
_MS = struct.Struct(">q")


def stream_time_key(partition: int) -> bytes:
    return STREAM_TIME_KEY % partition


def pack_ms(ms: int) -> bytes:
    return _MS.pack(ms)


def unpack_ms(data: bytes | None) -> int | None:
    return None if not data else int(_MS.unpack(data)[0])


def pack_mark(source: int, offset: int) -> bytes:
    """The dedup table's value: where a customer id was first counted."""
    return _MARK.pack(source, offset)


@dataclass
class KeyState:
    """A key's totals plus, per source, the highest offset already applied. The three counts are
    named by the key's table (streams.domain.deltas.LOYALTY_COUNTERS, REFERRAL_COUNTERS)."""

    counts: list[int] = field(default_factory=lambda: [0, 0, 0])
    updated_ms: int = 0
    marks: dict[int, int] = field(default_factory=dict)

    @classmethod
    def unpack(cls, data: bytes | None) -> KeyState:
        if not data:
            return cls()
        *counts, t = _HEAD.unpack_from(data, 0)
        marks = {}
        for pos in range(_HEAD.size, len(data), _MARK.size):
            src, off = _MARK.unpack_from(data, pos)
            marks[src] = off
        return cls(counts, t, marks)

    def pack(self) -> bytes:
        parts = [_HEAD.pack(*self.counts, self.updated_ms)]
        parts.extend(_MARK.pack(s, o) for s, o in sorted(self.marks.items()))
        return b"".join(parts)

    def apply(
        self, counts: Counts, t_ms: int, source: int, offset: int, exact: bool = True
    ) -> bool:
        """Add a delta unless this (source, offset) was applied already; True when added.

        With `exact=False` (at_least_once) every delta is added and no offsets are kept: a
        replay after a crash counts again.
        """
        if exact:
            if self.marks.get(source, -1) >= offset:
                return False
            self.marks[source] = offset
        mine = self.counts
        mine[0] += counts[0]
        mine[1] += counts[1]
        mine[2] += counts[2]
        if t_ms > self.updated_ms:
            self.updated_ms = t_ms
        return True

    @property
    def counters(self) -> Counts:
        return (self.counts[0], self.counts[1], self.counts[2])

    def named(self, names: tuple[str, str, str]) -> dict[str, int]:
        """The counts under their table's names."""
        return dict(zip(names, self.counts, strict=True))
