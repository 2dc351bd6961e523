"""The limit under the bridge: raw confluent-kafka producer throughput of the same Avro bytes.

Takes the bodies file the load generator sends, turns each into exactly what the bridge
publishes (parse_webhook -> PII policy -> Avro, same headers, keyed by customer id; done before
the clock starts), then produces with the bridge's own producer settings (acks, idempotence,
linger, compression: streams.kafka.producer.DEFAULT_CONFIG +
streams.bridge.service.producer_config).

- `pipelined`: as fast as librdkafka takes them, for `--seconds` (the throughput ceiling);
- `sync`: one record in flight — produce, then wait for its ack (the ceiling at concurrency 1).

Prints one JSON line: records/s and the produce->ack latency percentiles (Message.latency()).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from confluent_kafka import Producer

from bench.baselines import baseline_settings
from streams.bridge.service import producer_config
from streams.kafka.producer import DEFAULT_CONFIG
from streams.kafka.security import librdkafka_config
from streams.models.customer_deleted import EVENT_TYPE, parse_webhook
from streams.models.pii import PiiPolicy
from streams.models.serializers.avro import get_codec


def _pct(vals: list[float], q: float) -> float | None:
    if not vals:
        return None
    k = max(0, min(len(vals) - 1, math.ceil(q / 100 * len(vals)) - 1))
    return vals[k]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--bodies", required=True)
    ap.add_argument("--mode", choices=["pipelined", "sync"], default="pipelined")
    ap.add_argument("--seconds", type=float, default=10)
    args = ap.parse_args()
    s = baseline_settings(args.bootstrap)
    codec = get_codec(s)
    pii = PiiPolicy(s.pii_policy, s.pii_hash_key)
    fp = codec.fingerprint("CustomerDeleted").hex()
    records = []
    for line in Path(args.bodies).read_bytes().splitlines():
        _sig, cid, body = line.split(b"\t", 2)
        payload = json.loads(body)
        datum = pii.apply(parse_webhook(payload))
        headers = [
            ("event_type", EVENT_TYPE),
            ("schema_fingerprint", fp),
            ("sendout_id", payload["id"]),
            ("event_id", payload["event"]["id"]),
        ]
        value = codec.encode("CustomerDeleted", datum, topic=args.topic)
        records.append((cid, value, headers))
    config = librdkafka_config(producer_config(s), {"log_level": 3}, defaults=DEFAULT_CONFIG)
    p = Producer(config)
    p.list_topics(args.topic, timeout=10)
    lat: list[float] = []
    failed = 0

    def on_delivery(err, msg):  # type: ignore[no-untyped-def]
        nonlocal failed
        if err is not None:
            failed += 1
        else:
            lat.append(msg.latency())

    # Warm-up: connections, metadata, the idempotent producer id.
    for cid, value, headers in records[:100]:
        p.produce(args.topic, key=cid, value=value, headers=headers)
    p.flush(30)
    n = 0
    m = len(records)
    t0 = time.monotonic()
    stop = t0 + args.seconds
    if args.mode == "sync":
        while time.monotonic() < stop:
            cid, value, headers = records[n % m]
            p.produce(args.topic, key=cid, value=value, headers=headers, on_delivery=on_delivery)
            p.flush(10)
            n += 1
    else:
        while time.monotonic() < stop:
            for _ in range(100):
                cid, value, headers = records[n % m]
                try:
                    p.produce(
                        args.topic, key=cid, value=value, headers=headers, on_delivery=on_delivery
                    )
                    n += 1
                except BufferError:
                    p.poll(0.01)
                    break
            p.poll(0)
        p.flush(60)
    secs = time.monotonic() - t0
    lat.sort()
    ms = [x * 1000 for x in lat]
    print(
        json.dumps(
            {
                "mode": args.mode,
                "records": n,
                "acked": len(lat),
                "failed": failed,
                "seconds": round(secs, 2),
                "rps": round(len(lat) / secs, 1),
                "value_bytes_avg": round(sum(len(r[1]) for r in records) / m, 1),
                "ack_p50_ms": _pct(ms, 50),
                "ack_p99_ms": _pct(ms, 99),
                "ack_p999_ms": _pct(ms, 99.9),
                "config": {
                    k: config[k]
                    for k in ("acks", "enable.idempotence", "linger.ms", "compression.type")
                },
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
