"""A consumer group's offsets as the broker has them, read with confluent-kafka (blocking).

Used beside Faust's own consumer, never instead of it: where an assignment starts (committed
offset, else the first offset kept), whether a partition holds records in an offset range, how
far behind a group is. The client never joins the group.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from streams.kafka.security import ClientConfig, librdkafka_config

if TYPE_CHECKING:
    from streams.settings import Settings

Part = tuple[str, int]


class GroupOffsets:
    """One confluent-kafka client for one group; thread-safe (calls are serialised)."""

    def __init__(self, kafka: Settings | ClientConfig, group: str, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._lock = threading.Lock()
        self._consumer = Consumer(
            librdkafka_config(
                kafka,
                {
                    "group.id": group,
                    "client.id": f"{group}-offsets-{uuid.uuid4().hex[:6]}",
                    "enable.auto.commit": False,
                    "enable.partition.eof": True,
                    # What Faust's at-least-once consumer reads: transaction markers are gaps.
                    "isolation.level": "read_uncommitted",
                    "log_level": 0,
                },
            )
        )

    def close(self) -> None:
        with self._lock:
            self._consumer.close()

    def committed(self, parts: Iterable[Part]) -> dict[Part, int | None]:
        """The group's committed offset per partition (None: nothing committed)."""
        tps = [TopicPartition(t, p) for t, p in parts]
        if not tps:
            return {}
        with self._lock:
            out: dict[Part, int | None] = {}
            for tp in self._consumer.committed(tps, timeout=self.timeout):
                if tp.error is not None:
                    raise RuntimeError(f"{tp.topic}[{tp.partition}]: {tp.error}")
                out[(tp.topic, tp.partition)] = tp.offset if tp.offset >= 0 else None
            return out

    def watermarks(self, parts: Iterable[Part]) -> dict[Part, tuple[int, int]]:
        """(first offset kept, end offset) per partition."""
        with self._lock:
            return {
                (t, p): self._consumer.get_watermark_offsets(
                    TopicPartition(t, p), timeout=self.timeout
                )
                for t, p in parts
            }

    def starts(self, parts: Iterable[Part]) -> dict[Part, int]:
        """Where a member assigned these partitions starts: the committed offset, else (the
        group has none: `auto.offset.reset=earliest`) the first offset kept."""
        committed = self.committed(parts)
        missing = [part for part, off in committed.items() if off is None]
        low = self.watermarks(missing)
        return {part: off if off is not None else low[part][0] for part, off in committed.items()}

    def first_offset_from(
        self, part: Part, offset: int, timeout: float | None = None
    ) -> int | None:
        """The offset of the first record at or after `offset`; None when none arrives within
        `timeout` (or the partition ends before one)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        with self._lock:
            start = offset if offset >= 0 else OFFSET_BEGINNING
            self._consumer.assign([TopicPartition(part[0], part[1], start)])
            try:
                while time.monotonic() < deadline:
                    msg = self._consumer.poll(max(0.05, deadline - time.monotonic()))
                    if msg is None:
                        continue
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:  # nothing there
                            return None
                        continue
                    offset_at = msg.offset()
                    return None if offset_at is None else int(offset_at)
                return None
            finally:
                self._consumer.unassign()

    def partitions(self, topic: str) -> list[int]:
        """The partitions of `topic` (empty when it does not exist)."""
        with self._lock:
            meta = self._consumer.list_topics(topic, timeout=self.timeout)
        found = meta.topics.get(topic)
        if found is None or found.error is not None:
            return []
        return sorted(found.partitions)

    def lag(self, topics: Iterable[str]) -> int:
        """Records of `topics` the group has not committed yet."""
        with self._lock:
            meta = self._consumer.list_topics(timeout=self.timeout)
        parts = [(t, p) for t in topics if t in meta.topics for p in meta.topics[t].partitions]
        committed = self.committed(parts)
        marks = self.watermarks(parts)
        total = 0
        for part, (low, high) in marks.items():
            start = committed.get(part)
            total += max(0, high - (start if start is not None else low))
        return total
