"""Operator tools: `voucherify-streams dead-letters list|show|redrive` and `tail TOPIC`.

Dead letters hold the body of a request the bridge refused (or input bytes the worker could not
decode), which may carry personal data: it is printed only with `--show-body`.

`redrive` re-validates every dead letter with today's code — the bridge's own classification,
personal-data policy and encoding for a refused webhook, the codec for a worker's undecodable
record — and publishes those that now pass to the input topic, keyed by customer id. Idempotent:
once the broker acknowledged a republished record, the dead letter's position is written to a
small compacted topic (STREAMS_REDRIVEN_TOPIC), and a later redrive skips every position found
there. Should a run stop between the two writes, the next republishes that record once more,
and the worker drops it as a duplicate of a customer already counted: the totals stay exact.
The broker is asked first: down, nothing is published and the command exits non-zero.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, Producer
from confluent_kafka import TopicPartition as KafkaTP

from streams.kafka.security import librdkafka_config
from streams.models.errors import DecodeError
from streams.models.serializers.registry import (
    RegistryAuthError,
    RegistryUnavailable,
    SchemaRegistrationError,
)
from streams.progress import Progress
from streams.settings import Settings

#: Exit codes: 0 fine, 1 an error (broker down, unknown topic, some records not published).
OK, ERROR = 0, 1
#: The operator tools' consumers each take a group of their own, named from this (ACLs grant
#: the operator role these groups by prefix: streams.kafka.acls).
OPERATOR_GROUP_PREFIX = "voucherify-streams-operator-"


class OperatorError(RuntimeError):
    """A clear, one-line reason to stop (printed as `error: ...`, never a traceback)."""


@dataclass
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None


def _consumer(settings: Settings) -> Consumer:
    return Consumer(
        librdkafka_config(
            settings,
            {
                "group.id": f"{OPERATOR_GROUP_PREFIX}{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "isolation.level": "read_committed",
                "log_level": 0,
            },
        )
    )


def partitions(consumer: Consumer, topic: str, timeout: float = 10.0) -> list[int] | None:
    """The partitions of `topic`; None when it does not exist. Raises OperatorError when the
    broker does not answer."""
    try:
        meta = consumer.list_topics(topic, timeout=timeout)
    except Exception as exc:
        raise OperatorError(f"Kafka does not answer ({exc})") from None
    found = meta.topics.get(topic)
    if found is None or found.error is not None:
        code = found.error.code() if found is not None and found.error is not None else None
        if found is None or code == KafkaError.UNKNOWN_TOPIC_OR_PART:
            return None
        raise OperatorError(f"{topic}: {found.error}")
    return sorted(found.partitions)


def read_all(settings: Settings, topic: str, missing_ok: bool = False) -> list[Record]:
    """Every record of `topic` up to its current end (a bounded read)."""
    consumer = _consumer(settings)
    try:
        parts = partitions(consumer, topic)
        if parts is None:
            if missing_ok:
                return []
            raise OperatorError(f"topic {topic} does not exist")
        ends = {}
        for p in parts:
            low, high = consumer.get_watermark_offsets(KafkaTP(topic, p), timeout=10)
            if high > low:
                ends[p] = high
        if not ends:
            return []
        consumer.assign([KafkaTP(topic, p, OFFSET_BEGINNING) for p in ends])
        out: list[Record] = []
        done: set[int] = set()
        deadline = time.monotonic() + 60
        while len(done) < len(ends) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            p = msg.partition() or 0
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    done.add(p)
                    continue
                raise OperatorError(f"reading {topic}[{p}]: {err}")
            offset = msg.offset() or 0
            out.append(Record(p, offset, msg.key(), msg.value(), msg.timestamp()[1]))
            if offset + 1 >= ends[p]:
                done.add(p)
        return out
    finally:
        consumer.close()


# --- decoding for people -------------------------------------------------------------------


def _jsonable(value: Any, show_body: bool) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v, show_body) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v, show_body) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(value).decode()
    return value


def _withhold_body(schema: str, datum: dict[str, Any], show_body: bool) -> dict[str, Any]:
    if schema == "DeadLetter" and not show_body:
        body = datum.get("body") or b""
        return {**datum, "body": f"<{len(body)} bytes withheld: --show-body prints them>"}
    return datum


def describe(codec: Any, value: bytes | None, show_body: bool = False) -> tuple[str, Any]:
    """(schema name, JSON-able datum) of a record's value; raises DecodeError."""
    if value is None:
        return "tombstone", None
    name, datum = codec.decode(value)
    return name, _jsonable(_withhold_body(name, datum, show_body), show_body)


def _key(key: bytes | None) -> str | None:
    if key is None:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(key).decode()


def _resolve_topic(settings: Settings, consumer: Consumer, name: str) -> tuple[str, list[int]]:
    """`name` as given, else with the topic prefix."""
    candidates = [name] if name.startswith(settings.topic_prefix) else []
    candidates += [settings.topic(name), name]
    for topic in dict.fromkeys(candidates):
        parts = partitions(consumer, topic)
        if parts is not None:
            return topic, parts
    raise OperatorError(f"topic {name} does not exist (also looked for {settings.topic(name)})")


def tail(
    settings: Settings,
    topic: str,
    *,
    from_beginning: bool = False,
    as_json: bool = False,
    show_body: bool = False,
    exit_at_end: bool = False,
    max_records: int | None = None,
    out: Any = None,
) -> int:
    """Print `topic`'s records decoded from Avro (either framing), like `kcat -C`."""
    from streams.models.serializers.avro import get_codec

    out = out or sys.stdout
    codec = get_codec(settings)
    consumer = _consumer(settings)
    printed = 0
    try:
        full, parts = _resolve_topic(settings, consumer, topic)
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        consumer.assign([KafkaTP(full, p, start) for p in parts])
        at_end: set[int] = {p for p in parts if exit_at_end and not from_beginning}
        while True:
            if exit_at_end and len(at_end) >= len(parts):
                return OK
            if max_records is not None and printed >= max_records:
                return OK
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition() or 0)
                    continue
                raise OperatorError(f"reading {full}: {err}")
            _print_record(codec, full, msg, as_json, show_body, out)
            printed += 1
    except KeyboardInterrupt:
        return OK
    except BrokenPipeError:  # `| head`: the reader has gone, which is fine
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes at exit
        return OK
    finally:
        consumer.close()


def _print_record(
    codec: Any, topic: str, msg: Any, as_json: bool, show_body: bool, out: Any
) -> None:
    where = f"{msg.partition()}:{msg.offset()}"
    key = _key(msg.key())
    try:
        schema, datum = describe(codec, msg.value(), show_body)
        problem = None
    except DecodeError as exc:
        schema, datum, problem = None, None, str(exc)
    except RegistryAuthError as exc:  # no record would decode: stop, with the reason
        raise OperatorError(str(exc)) from None
    except Exception as exc:  # e.g. the registry does not answer for a Confluent-framed record
        schema, datum, problem = None, None, f"{type(exc).__name__}: {exc}"
    if as_json:
        line: dict[str, Any] = {
            "topic": topic,
            "partition": msg.partition(),
            "offset": msg.offset(),
            "key": key,
            "timestamp": msg.timestamp()[1],
        }
        if problem is None:
            line.update(schema=schema, value=datum)
        else:
            line.update(error=f"could not be decoded: {problem}")
        print(json.dumps(line, ensure_ascii=False), file=out, flush=True)
    elif problem is None:
        text = json.dumps(datum, ensure_ascii=False)
        print(f"{where} key={key} {schema} {text}", file=out, flush=True)
    else:
        print(f"{where} key={key} could not be decoded: {problem}", file=out, flush=True)


# --- dead letters --------------------------------------------------------------------------


@dataclass
class DeadLetter:
    partition: int
    offset: int
    datum: dict[str, Any] | None  # None: the record itself did not decode
    problem: str = ""

    @property
    def id(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def reason(self) -> str:
        return str(self.datum["reason"]) if self.datum else "undecodable_dead_letter"

    @property
    def stage(self) -> str:
        if self.datum is None:
            return "-"
        headers = self.datum.get("headers") or {}
        return str(headers.get("stage", "bridge"))

    @property
    def received_at(self) -> datetime | None:
        value = (self.datum or {}).get("received_at")
        return value if isinstance(value, datetime) else None


def dead_letters(settings: Settings) -> list[DeadLetter]:
    from streams.models.serializers.avro import get_codec

    codec = get_codec(settings)
    topic = settings.topic(settings.dead_letter_topic)
    out = []
    for rec in read_all(settings, topic, missing_ok=True):
        try:
            name, datum = codec.decode(rec.value or b"")
            if name != "DeadLetter":
                raise DecodeError(f"a {name} record, not a DeadLetter")
            out.append(DeadLetter(rec.partition, rec.offset, datum))
        except RegistryAuthError as exc:  # not the record's fault: stop, with the reason
            raise OperatorError(str(exc)) from None
        except Exception as exc:
            out.append(DeadLetter(rec.partition, rec.offset, None, str(exc)))
    return sorted(out, key=lambda d: (d.received_at or datetime.min.replace(tzinfo=UTC), d.id))


_RELATIVE = re.compile(r"^(\d+)([smhd])$")


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """`2h`, `30m`, `7d`, a date `2025-01-31` or a time `2025-01-31T12:00` (UTC unless given)."""
    now = now or datetime.now(UTC)
    found = _RELATIVE.match(value.strip())
    if found:
        n, unit = int(found.group(1)), found.group(2)
        return now - timedelta(
            **{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: n}
        )
    try:
        t = datetime.fromisoformat(value.strip())
    except ValueError:
        raise OperatorError(
            f"--since: expected e.g. 2h, 7d, 2025-01-31 or 2025-01-31T12:00, got {value!r}"
        ) from None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _selected(letters: list[DeadLetter], since: str | None, reason: str | None) -> list[DeadLetter]:
    if since is not None:
        t = parse_since(since)
        letters = [d for d in letters if d.received_at is not None and d.received_at >= t]
    if reason is not None:
        letters = [d for d in letters if d.reason == reason]
    return letters


def list_dead_letters(
    settings: Settings,
    since: str | None = None,
    reason: str | None = None,
    show_body: bool = False,
    out: Any = None,
) -> int:
    out = out or sys.stdout
    letters = _selected(dead_letters(settings), since, reason)
    if not letters:
        print("no dead letters" + (" match" if since or reason else ""), file=out)
        return OK
    print(f"{'id':<10} {'received at (UTC)':<20} {'stage':<7} {'reason':<22} message", file=out)
    for d in letters:
        t = d.received_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if d.received_at else "-"
        message = (d.datum or {}).get("message") or d.problem
        # The message names a JSON path and a rule, never a value (see the bridge).
        print(f"{d.id:<10} {t:<20} {d.stage:<7} {d.reason:<22} {str(message)[:100]}", file=out)
        if show_body and d.datum:
            print(f"  body: {_jsonable(d.datum.get('body') or b'', True)}", file=out)
    print(f"{len(letters)} dead letter(s)", file=out)
    return OK


def show_dead_letter(
    settings: Settings, position: str, partition: int | None, show_body: bool, out: Any = None
) -> int:
    out = out or sys.stdout
    p, o = _position(position, partition)
    for d in dead_letters(settings):
        if (d.partition, d.offset) == (p, o):
            if d.datum is None:
                print(f"{d.id}: could not be decoded: {d.problem}", file=out)
                return OK
            shown = _jsonable(_withhold_body("DeadLetter", d.datum, show_body), show_body)
            print(json.dumps({"id": d.id, **shown}, indent=2, ensure_ascii=False), file=out)
            return OK
    raise OperatorError(
        f"no dead letter at {p}:{o} on {settings.topic(settings.dead_letter_topic)}"
    )


def _position(text: str, partition: int | None) -> tuple[int, int]:
    found = re.fullmatch(r"(?:(\d+):)?(\d+)", text.strip())
    if not found:
        raise OperatorError(f"expected OFFSET or PARTITION:OFFSET (as `list` shows), got {text!r}")
    p = found.group(1)
    return (int(p) if p is not None else (partition or 0)), int(found.group(2))


@dataclass
class Outcome:
    letter: DeadLetter
    status: str  # "redriven", "would redrive", "already redriven", "still invalid"
    detail: str = ""
    customer_id: str = ""


def _revalidate(settings: Settings, d: DeadLetter, records: Any, codec: Any) -> tuple[Any, str]:
    """(key, value, headers) of the input record it would be now, or (None, why not)."""
    from streams.bridge.handlers import CustomerDeleted, OtherEvent, classify

    if d.datum is None:
        return None, f"the dead letter itself does not decode: {d.problem}"
    body = d.datum.get("body") or b""
    if d.stage == "worker":  # input bytes the worker could not read: are they readable now?
        try:
            name, datum = codec.decode(body)
        except Exception as exc:
            return None, str(exc)[:200]
        if name != "CustomerDeleted":
            return None, f"a {name} record, not a CustomerDeleted"
        cid = ((datum.get("data") or {}).get("customer") or {}).get("id")
        if not cid:
            return None, "no customer id"
        return (cid, body, [("event_type", "customer.deleted")]), ""
    found = classify(body)
    if type(found) is CustomerDeleted:
        return records.build(found.datum), ""
    if type(found) is OtherEvent:
        return None, f"not a customer.deleted ({found.event_type})"
    return None, f"{found.reason}: {found.message}"  # type: ignore[union-attr]


def _redriven(settings: Settings) -> set[str]:
    topic = settings.topic(settings.redriven_topic)
    return {
        (r.key or b"").decode()
        for r in read_all(settings, topic, missing_ok=True)
        if r.value is not None
    }


def redrive(
    settings: Settings,
    reason: str | None = None,
    dry_run: bool = False,
    progress: bool = True,
    out: Any = None,
) -> int:
    from streams.kafka.producer import DEFAULT_CONFIG
    from streams.kafka.topics import ensure_project_topics
    from streams.models.serializers.avro import get_codec
    from streams.records import CustomerDeletedRecords

    out = out or sys.stdout
    probe = _consumer(settings)
    try:  # before anything: a broker that does not answer means nothing is published
        partitions(probe, settings.topic(settings.dead_letter_topic), timeout=5.0)
    finally:
        probe.close()
    codec = get_codec(settings)
    records = CustomerDeletedRecords(settings, codec)
    letters = _selected(dead_letters(settings), None, reason)
    done = _redriven(settings)
    outcomes: list[Outcome] = []
    ready: list[tuple[Outcome, Any]] = []
    for d in letters:
        if d.id in done:
            outcomes.append(Outcome(d, "already redriven"))
            continue
        record, why = _revalidate(settings, d, records, codec)
        if record is None:
            outcomes.append(Outcome(d, "still invalid", why))
            continue
        outcome = Outcome(d, "would redrive" if dry_run else "redriven", customer_id=record[0])
        outcomes.append(outcome)
        ready.append((outcome, record))
    failed: list[str] = []
    if ready and not dry_run:
        if settings.schema_registry_url:
            try:
                codec.register("CustomerDeleted", records.topic)
            except (SchemaRegistrationError, RegistryUnavailable, RegistryAuthError) as exc:
                raise OperatorError(str(exc)) from None
        ensure_project_topics(settings)  # the redrive marks' topic among them
        failed = _publish(settings, ready, progress, DEFAULT_CONFIG)
    for o in outcomes:
        if o.letter.id in failed:
            o.status, o.detail = "not published", "the broker did not acknowledge it"
        detail = f": {o.detail}" if o.detail else ""
        print(f"{o.letter.id:<10} {o.letter.reason:<22} {o.status}{detail}", file=out)
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    order = ("redriven", "would redrive", "already redriven", "still invalid", "not published")
    summary = ", ".join(f"{counts[s]} {s}" for s in order if s in counts) or "no dead letters"
    print(summary, file=out)
    if failed:
        raise OperatorError(
            f"{len(failed)} record(s) were not acknowledged by Kafka; run redrive again "
            "(records already published are skipped)"
        )
    return OK


def _publish(
    settings: Settings, ready: list[tuple[Outcome, Any]], progress: bool, base: dict[str, Any]
) -> list[str]:
    """Publish each record, then (once acknowledged) its mark; the ids not acknowledged."""
    dead_topic = settings.topic(settings.dead_letter_topic)
    input_topic = settings.topic(settings.customer_deleted_topic)
    marks_topic = settings.topic(settings.redriven_topic)
    producer = Producer(librdkafka_config(settings, base, {"message.timeout.ms": 30_000}))
    acked: list[Outcome] = []
    failed: list[str] = []

    def report(outcome: Outcome) -> Any:
        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                failed.append(outcome.letter.id)
            else:
                acked.append(outcome)

        return delivered

    bar = Progress(len(ready), "redrive", enabled=progress and sys.stderr.isatty())
    for outcome, (key, value, headers) in ready:
        headers = [*headers, ("redriven_from", f"{dead_topic}:{outcome.letter.id}")]
        while True:
            try:
                producer.produce(
                    input_topic, value, key, headers=headers, on_delivery=report(outcome)
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        bar.advance()
    bar.close()
    producer.flush(60)
    for outcome in acked:  # marks only for what the broker holds
        mark = {
            "customer_id": outcome.customer_id,
            "input_topic": input_topic,
            "redriven_at": datetime.now(UTC).isoformat(),
        }
        producer.produce(marks_topic, json.dumps(mark).encode(), outcome.letter.id)
    if producer.flush(30) != 0:
        raise OperatorError(
            f"published {len(acked)} record(s) but could not record them as redriven: a next "
            "redrive sends them again, and the worker drops them as customers already counted"
        )
    unacked = {o.letter.id for o, _ in ready} - {o.letter.id for o in acked}
    return sorted(set(failed) | unacked)
