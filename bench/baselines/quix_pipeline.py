"""The worker's pipeline written with Quix Streams, the Python stream processor a user would pick.

Runs in bench/.venv-quix (Quix pins its own confluent-kafka) with PYTHONPATH=<repo>, decoding and
encoding with the project's Avro codec and planning with the project's pure domain functions, so
only the stream processor differs:

    input (Avro CustomerDeleted, keyed by customer id)
      -> stateful filter: dedup by customer id (RocksDB state, changelogged)
           -> branch 1: CustomerDeletion fact -> analytics.customer-deletions
           -> branch 2: expand to per-(dimension, key) deltas -> group_by "kind|dimension:key"
                (repartition topic) -> stateful counters (RocksDB, changelogged)
                -> loyalty records -> analytics.loyalty-points-lost
                -> referral records -> analytics.referral-impact

    .venv-quix/bin/python bench/baselines/quix_pipeline.py --bootstrap B --prefix P --group G \
        [--guarantee exactly-once|at-least-once] --state-dir DIR
"""

from __future__ import annotations

import argparse
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from quixstreams import Application
from quixstreams.models import Deserializer, Serializer

from streams.domain.deltas import LOYALTY_COUNTERS, REFERRAL_COUNTERS, plan, to_millis
from streams.models.serializers.avro import get_codec
from streams.models.serializers.projection import WORKER_FIELDS
from streams.settings import Settings

CODEC = get_codec(Settings())
# The worker's projected decode (only the fields plan() reads): only the processor differs.
DECODE = CODEC.projected_decoder("CustomerDeleted", WORKER_FIELDS)


class AvroIn(Deserializer):
    def __call__(self, value: bytes, ctx: Any) -> Any:
        return DECODE(value)


class AvroOut(Serializer):
    def __init__(self, schema: str) -> None:
        self.schema = schema

    def __call__(self, value: Any, ctx: Any) -> bytes:
        return CODEC.encode(self.schema, value)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--guarantee", default="at-least-once")
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--log-level", default="WARNING", help="Quix Streams' log level")
    args = ap.parse_args()
    s = Settings(bootstrap_servers=args.bootstrap, topic_prefix=args.prefix)
    retention = timedelta(days=s.day_retention_days)

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        processing_guarantee=args.guarantee,
        state_dir=args.state_dir,
        loglevel=args.log_level.upper(),
        producer_extra_config={"partitioner": "murmur2_random"},
    )
    t_in = app.topic(
        s.topic(s.customer_deleted_topic), key_deserializer="bytes", value_deserializer=AvroIn()
    )
    t_loy = app.topic(
        s.topic(s.loyalty_topic),
        key_serializer="bytes",
        value_serializer=AvroOut("LoyaltyPointsLost"),
    )
    t_ref = app.topic(
        s.topic(s.referral_topic),
        key_serializer="bytes",
        value_serializer=AvroOut("ReferralImpact"),
    )
    t_del = app.topic(
        s.topic(s.deletions_topic),
        key_serializer="bytes",
        value_serializer=AvroOut("CustomerDeletion"),
    )

    def first_time(datum: Any, key: Any, timestamp: int, headers: Any, state: Any) -> bool:
        if state.get("counted"):
            return False
        state.set("counted", 1)
        return True

    def planned(datum: Any, key: Any, timestamp: int, headers: Any) -> Any:
        now = datetime.now(UTC)
        return plan(datum, datetime.fromtimestamp(timestamp / 1000, UTC), now, retention)

    sdf = app.dataframe(t_in)
    sdf = sdf.filter(first_time, stateful=True, metadata=True)
    sdf = sdf.apply(planned, metadata=True)

    facts = sdf.apply(lambda p: p.fact)
    facts.to_topic(t_del, key=lambda fact: fact["customer_id"].encode())

    def deltas(p: Any) -> list[dict[str, Any]]:
        t_ms = to_millis(p.t)
        out = [{"k": f"l|{d}:{k}", "c": list(c), "t": t_ms} for d, k, c in p.loyalty]
        out += [{"k": f"r|{d}:{k}", "c": list(c), "t": t_ms} for d, k, c in p.referral]
        return out

    dl = sdf.apply(deltas, expand=True)
    dl = dl.group_by(lambda d: d["k"], name="dimkey")

    def accumulate(d: dict[str, Any], state: Any) -> dict[str, Any]:
        cur = state.get("v") or [0, 0, 0, 0]
        c = d["c"]
        cur = [cur[0] + c[0], cur[1] + c[1], cur[2] + c[2], max(cur[3], d["t"])]
        state.set("v", cur)
        kind, _, dk = d["k"].partition("|")
        dim, _, key = dk.partition(":")
        names = LOYALTY_COUNTERS if kind == "l" else REFERRAL_COUNTERS
        return {
            "kind": kind,
            "rec": {
                "dimension": dim,
                "key": key,
                names[0]: cur[0],
                names[1]: cur[1],
                names[2]: cur[2],
                "updated_at": cur[3],
            },
        }

    dl = dl.apply(accumulate, stateful=True)
    loy = dl[dl["kind"] == "l"].apply(lambda v: v["rec"])
    loy.to_topic(t_loy, key=lambda r: f"{r['dimension']}:{r['key']}".encode())
    ref = dl[dl["kind"] == "r"].apply(lambda v: v["rec"])
    ref.to_topic(t_ref, key=lambda r: f"{r['dimension']}:{r['key']}".encode())

    logging.getLogger("quixstreams").setLevel(args.log_level.upper())
    app.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
