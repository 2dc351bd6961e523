"""Which partition a key belongs to, and the per-partition grouping of delta entries.

The worker routes re-keyed entries itself, with the same function as aiokafka's default
partitioner (Java's murmur2), so a key always lands in one partition of its delta topic and of
its table, whichever worker sends it, and the web views can tell which keys a worker owns.
"""

from __future__ import annotations

from aiokafka.partitioner import murmur2


def partition_of(key: bytes, partitions: int) -> int:
    """The partition aiokafka's default partitioner (Java's murmur2) gives `key`."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


#: Largest delta message (bytes): well under Kafka's default 1 MB record and request limits.
MAX_MESSAGE_BYTES = 512 * 1024


class DeltaBatch:
    """Packed delta entries grouped by destination partition, in the order they were added."""

    __slots__ = ("_cache", "_max_bytes", "_partitions", "_parts")

    def __init__(self, partitions: int, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self._partitions = partitions
        self._max_bytes = max_bytes
        self._parts: dict[int, list[bytes]] = {}
        self._cache: dict[bytes, int] = {}

    def add(self, key: bytes, entry: bytes) -> None:
        p = self._cache.get(key)
        if p is None:
            p = self._cache[key] = partition_of(key, self._partitions)
        self._parts.setdefault(p, []).append(entry)

    def messages(self) -> list[tuple[int, bytes]]:
        """(partition, message value) for the entries, in order per partition, each message at
        most `max_bytes` (or one entry); then empties the batch."""
        out: list[tuple[int, bytes]] = []
        for p, entries in sorted(self._parts.items()):
            chunk: list[bytes] = []
            size = 0
            for entry in entries:
                if chunk and size + len(entry) > self._max_bytes:
                    out.append((p, b"".join(chunk)))
                    chunk, size = [], 0
                chunk.append(entry)
                size += len(entry)
            out.append((p, b"".join(chunk)))
        self._parts.clear()
        return out

    def clear(self) -> None:
        self._parts.clear()

    def __len__(self) -> int:
        return sum(len(e) for e in self._parts.values())
