"""Input records the worker cannot count: skipped, counted, logged and kept.

A record whose bytes do not decode, or whose Confluent schema id the registry does not know, is
not retried (it would fail the same way forever and stall its partition): it is forwarded as a
`DeadLetter` to the dead-letter topic, counted by reason (`GET /metrics` on the worker's web
port: `streams_worker_skipped_records_total`) and logged with its position, never its content.

A registry that does not answer is not the record's fault: `RegistryUnavailable` is raised on,
the batch fails and the worker restarts to re-read it (streams.agents.exit_for_restart). Nor is a
registry that refuses the worker's credentials (`RegistryAuthError`): the worker exits at once to
be restarted, with that one line, and reads the credentials files again at start.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from streams.agents import Topology, exit_for_restart
from streams.kafka.batch_producer import BatchSender
from streams.models.errors import DecodeError
from streams.models.serializers.registry import (
    RegistryAuthError,
    RegistryUnavailable,
    UnknownSchemaId,
)

log = logging.getLogger("streams.agents.skipped")


def reason_of(exc: Exception) -> str:
    if isinstance(exc, UnknownSchemaId):
        return "unknown_schema_id"
    if isinstance(exc, DecodeError):
        return "undecodable"
    return "invalid_record"  # decoded, but not countable (no customer id, value out of range)


class Skipped:
    """Skips records for one agent: `skipped(msg, exc)` keeps `msg` on the dead-letter topic
    through `sender`, so it is acknowledged before the batch that skipped it."""

    def __init__(self, topo: Topology, sender: BatchSender) -> None:
        settings = topo.settings
        self.codec = topo.codec
        self.sender = sender
        self.topic = settings.topic(settings.dead_letter_topic)
        self.counts: Counter[str] = Counter()

    @classmethod
    def register(cls, topo: Topology, sender: BatchSender) -> Skipped:
        """A Skipped whose counts the worker's `GET /metrics` shows (streams.agents.metrics)."""
        skipped = cls(topo, sender)
        topo.metrics.skipped = skipped
        return skipped

    def __call__(self, msg: Any, exc: Exception) -> None:
        if isinstance(exc, RegistryUnavailable):
            raise exc
        if isinstance(exc, RegistryAuthError):
            exit_for_restart("%s", exc, reason="registry")
        reason = reason_of(exc)
        self.counts[reason] += 1
        # Position and reason only: the record may hold personal data.
        log.warning(
            "skipped %s[%s]@%s (%s), kept on %s: %s",
            msg.topic,
            msg.partition,
            msg.offset,
            reason,
            self.topic,
            str(exc)[:300],
        )
        value = msg.value if isinstance(msg.value, bytes) else b""
        record = {
            "body": value,
            "reason": reason,
            "message": str(exc)[:1000],
            "headers": {
                "source_topic": str(msg.topic),
                "source_partition": str(msg.partition),
                "source_offset": str(msg.offset),
                "stage": "worker",
            },
            "received_at": datetime.now(UTC),
        }
        key = msg.key if isinstance(msg.key, bytes) else None
        self.sender.send(self.topic, key, self.codec.encode("DeadLetter", record, topic=self.topic))
