"""`voucherify-streams replay FILE`: backfill webhooks from JSON Lines through the bridge's path.

Each line is a webhook envelope or a bare `{"customer": {...}}` data object. Lines go through the
same validation, personal-data policy and encoding as the bridge, and are published with the
same key and headers; rejects are reported with their line numbers.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from confluent_kafka import KafkaException, Producer

from streams import logs
from streams.bridge.service import producer_config
from streams.kafka.producer import DEFAULT_CONFIG
from streams.kafka.security import librdkafka_config
from streams.kafka.topics import ensure_project_topics
from streams.models.customer_deleted import envelope_from_data, parse_webhook
from streams.models.errors import ValidationError
from streams.progress import Progress
from streams.records import CustomerDeletedRecords
from streams.settings import Settings


@dataclass
class Reject:
    line: int
    reason: str


@dataclass
class Summary:
    published: int = 0
    duplicates: int = 0
    rejected: list[Reject] = field(default_factory=list)

    def report(self) -> str:
        lines = [
            f"published: {self.published}",
            f"duplicates (same customer id, skipped): {self.duplicates}",
            f"rejected: {len(self.rejected)}",
        ]
        by_reason = Counter(r.reason for r in self.rejected)
        for reason, n in by_reason.most_common():
            where = [str(r.line) for r in self.rejected if r.reason == reason]
            shown = ", ".join(where[:10]) + (" ..." if len(where) > 10 else "")
            lines.append(f"  {n} x {reason} (lines {shown})")
        return "\n".join(lines)


def parse_line(text: str) -> dict[str, Any]:
    """One JSON Lines entry -> a validated CustomerDeleted datum (raises ValidationError)."""
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            "", f"malformed JSON: {exc.msg} at column {exc.colno}", "malformed_json"
        ) from None
    if isinstance(payload, dict) and "type" not in payload and "customer" in payload:
        return envelope_from_data(payload)
    if isinstance(payload, dict) and payload.get("type") not in (None, "customer.deleted"):
        raise ValidationError(
            "type", f"expected customer.deleted, got {payload['type']!r}", "unsupported_type"
        )
    return parse_webhook(payload)


def _lines(stream: IO[str]) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(stream, start=1):
        if line.strip():
            yield number, line


def replay(
    settings: Settings,
    lines: Iterable[tuple[int, str]],
    total: int | None = None,
    progress: bool = True,
) -> Summary:
    """Publish every valid line; waits for the broker to acknowledge all of them."""
    ensure_project_topics(settings)
    records = CustomerDeletedRecords(settings)
    if settings.schema_registry_url:
        # Before anything is sent: a refused schema, an unreachable registry or one refusing the
        # credentials stops the backfill with its reason instead of a traceback after the first
        # line.
        from streams.models.serializers.registry import (
            RegistryAuthError,
            RegistryUnavailable,
            SchemaRegistrationError,
        )

        try:
            records.codec.register("CustomerDeleted", records.topic)
        except (SchemaRegistrationError, RegistryUnavailable, RegistryAuthError) as exc:
            raise SystemExit(f"error: {exc}") from None
    config = librdkafka_config(
        producer_config(settings),
        {"linger.ms": 20, "message.timeout.ms": 120_000},
        defaults=DEFAULT_CONFIG,
    )
    producer = Producer(config)
    summary = Summary()
    seen: set[str] = set()
    failures: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    bar = Progress(total, "replay", enabled=progress)
    for number, text in lines:
        bar.advance()
        try:
            datum = parse_line(text)
        except ValidationError as exc:
            summary.rejected.append(Reject(number, str(exc).removeprefix(": ")))
            continue
        customer_id = datum["data"]["customer"]["id"]
        if customer_id in seen:
            summary.duplicates += 1
            continue
        seen.add(customer_id)
        key, value, headers = records.build(datum)
        while True:
            try:
                producer.produce(
                    records.topic, value=value, key=key, headers=headers, on_delivery=delivered
                )
                break
            except BufferError:
                producer.poll(0.1)
            except KafkaException as exc:
                raise SystemExit(f"error: cannot publish: {exc}") from None
        producer.poll(0)
        summary.published += 1
    bar.close()
    if producer.flush(60) != 0 or failures:
        raise SystemExit(
            f"error: {len(failures) or 'some'} records were not acknowledged "
            f"by Kafka: {failures[:3]}"
        )
    return summary


def run(settings: Settings, path: str, allow_rejects: bool = False) -> int:
    logs.install(settings)
    if path == "-":
        summary = replay(settings, _lines(sys.stdin), progress=sys.stderr.isatty())
    else:
        with open(path, encoding="utf-8") as f:
            total = sum(1 for line in f if line.strip())
        with open(path, encoding="utf-8") as f:
            summary = replay(settings, _lines(f), total=total)
    print(summary.report())
    if summary.rejected and not allow_rejects:
        return 1
    return 0
