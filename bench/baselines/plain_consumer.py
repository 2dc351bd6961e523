"""The Python limit of the worker's job: one confluent-kafka consumer loop, in-memory dicts.

Same semantics and the same output volume as the Faust worker — dedup by customer id, then per
(dimension, key) counters, one output record per key touched per counted customer on the loyalty
and referral topics, one CustomerDeletion fact per counted customer — with none of its fault
tolerance: no changelogs, no state on disk, offsets auto-committed, a crash loses the counts.

    python bench/baselines/plain_consumer.py --bootstrap localhost:9092 --prefix P --group G
"""

from __future__ import annotations

import argparse
import signal
import time
from datetime import UTC, datetime, timedelta

from confluent_kafka import Consumer, Producer

from bench.baselines import baseline_settings
from streams.domain.deltas import LOYALTY_COUNTERS, REFERRAL_COUNTERS, plan, to_millis
from streams.kafka.security import librdkafka_config
from streams.models.serializers.avro import get_codec
from streams.models.serializers.projection import WORKER_FIELDS


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--max-seconds", type=float, default=1800)
    args = ap.parse_args()
    s = baseline_settings(args.bootstrap, topic_prefix=args.prefix)
    codec = get_codec(s)
    # The worker's projected decode (only the fields plan() reads): only the processor differs.
    encode = codec.encode
    decode = codec.projected_decoder("CustomerDeleted", WORKER_FIELDS)
    t_in = s.topic(s.customer_deleted_topic)
    t_loy, t_ref, t_del = (
        s.topic(s.loyalty_topic),
        s.topic(s.referral_topic),
        s.topic(s.deletions_topic),
    )
    consumer = Consumer(
        librdkafka_config(
            s,
            {
                "group.id": args.group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": True,
                "log_level": 3,
            },
        )
    )
    producer = Producer(
        librdkafka_config(
            s,
            {
                "linger.ms": 5,
                "compression.type": "lz4",
                "partitioner": "murmur2_random",
                "acks": "all",
                "log_level": 3,
            },
        )
    )
    consumer.subscribe([t_in])
    seen: set[bytes] = set()
    loyalty: dict[tuple[str, str], list[int]] = {}
    referral: dict[tuple[str, str], list[int]] = {}
    retention = timedelta(days=s.day_retention_days)
    stop = False

    def on_term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    deadline = time.monotonic() + args.max_seconds

    def emit(table, topic, schema, names, dim, key, c, t_ms):  # type: ignore[no-untyped-def]
        cur = table.get((dim, key))
        if cur is None:
            cur = table[(dim, key)] = [0, 0, 0, 0]
        cur[0] += c[0]
        cur[1] += c[1]
        cur[2] += c[2]
        cur[3] = max(cur[3], t_ms)
        rec = {"dimension": dim, "key": key, names[0]: cur[0], names[1]: cur[1]}
        rec[names[2]] = cur[2]
        rec["updated_at"] = cur[3]
        send(topic, f"{dim}:{key}".encode(), encode(schema, rec, topic=topic))

    def send(topic: str, key: bytes, value: bytes) -> None:
        give_up = time.monotonic() + 60
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                return
            except BufferError:
                producer.poll(0.05)
                if time.monotonic() > give_up:
                    raise TimeoutError("producer queue full for 60s") from None

    while not stop and time.monotonic() < deadline:
        msgs = consumer.consume(500, timeout=0.5)
        now = datetime.now(UTC)
        for m in msgs:
            if m.error():
                continue
            try:
                datum = decode(m.value() or b"")
                p = plan(
                    datum, datetime.fromtimestamp(m.timestamp()[1] / 1000, UTC), now, retention
                )
            except Exception:
                continue
            cid = p.customer_id.encode()
            if cid in seen:
                continue
            seen.add(cid)
            t_ms = to_millis(p.t)
            for dim, key, c in p.loyalty:
                emit(loyalty, t_loy, "LoyaltyPointsLost", LOYALTY_COUNTERS, dim, key, c, t_ms)
            for dim, key, c in p.referral:
                emit(referral, t_ref, "ReferralImpact", REFERRAL_COUNTERS, dim, key, c, t_ms)
            send(t_del, cid, encode("CustomerDeletion", p.fact, topic=t_del))
        producer.poll(0)
    producer.flush(30)
    consumer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
