"""Micro-benchmark of the Avro codec on the example customer.deleted event (not a test).

Prints the median µs per operation over several repetitions, beside json.dumps/json.loads of
the same payload, and the ratios. Also each generated fast path against what it replaces (the
contract's converters, fastavro's writer, fastavro's full decode): a generated path stays only
while it is faster. Run: `python bench/codec_bench.py [--repeat 7] [--number N]`.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastavro
import msgspec

from bench.msgspec_contract import decode as msgspec_decode
from bench.msgspec_contract import to_datum
from streams.bridge.handlers import loads
from streams.models import parse_webhook
from streams.models.customer_deleted import _parse_slowly
from streams.models.serializers.avro import AvroCodec
from streams.models.serializers.projection import WORKER_FIELDS
from streams.records import CustomerDeletedRecords
from streams.settings import Settings

EXAMPLE = Path(__file__).resolve().parents[1] / "tests" / "data" / "customer-deleted.webhook.json"


def median_us(fn: Callable[[], Any], number: int, repeat: int) -> float:
    runs = timeit.repeat(fn, number=number, repeat=repeat)
    return statistics.median(runs) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", type=Path, default=EXAMPLE)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--number", type=int, default=5000)
    args = parser.parse_args()

    body = args.example.read_bytes()
    payload = json.loads(body)
    text = json.dumps(payload)
    codec = AvroCodec()
    datum = parse_webhook(payload)
    data = codec.encode("CustomerDeleted", datum)
    assert codec.decode(data) == ("CustomerDeleted", datum)
    # What the worker decodes: only the fields it reads (streams.models.serializers.projection).
    projected = codec.projected_decoder("CustomerDeleted", WORKER_FIELDS)
    schema = codec.schema("CustomerDeleted")
    records = CustomerDeletedRecords(Settings(), codec)
    assert records.from_payload(loads(body)) == records.build(parse_webhook(loads(body)))

    def fastavro_encode() -> bytes:
        out = io.BytesIO()
        fastavro.schemaless_writer(out, schema, datum)
        return out.getvalue()

    rows = {
        "json.loads": median_us(lambda: json.loads(text), args.number, args.repeat),
        "json.dumps": median_us(lambda: json.dumps(payload), args.number, args.repeat),
        "parse_webhook": median_us(lambda: parse_webhook(payload), args.number, args.repeat),
        # Without the generated fast path: the converters alone.
        "parse converters": median_us(lambda: _parse_slowly(payload), args.number, args.repeat),
        "avro encode": median_us(
            lambda: codec.encode("CustomerDeleted", datum), args.number, args.repeat
        ),
        # Without the generated writer (the body only, no framing).
        "fastavro encode": median_us(fastavro_encode, args.number, args.repeat),
        "avro decode": median_us(lambda: codec.decode(data), args.number, args.repeat),
        "worker decode": median_us(lambda: projected(data), args.number, args.repeat),
        # The bridge's parse today (msgspec's untyped decode, then the generated fast path)
        # against msgspec's one pass from bytes to a typed value (Structs derived from the
        # Avro schema), and that value made the Avro datum (bench/msgspec_contract.py).
        "msgspec.decode": median_us(lambda: msgspec.json.decode(body), args.number, args.repeat),
        "bridge parse": median_us(lambda: parse_webhook(loads(body)), args.number, args.repeat),
        "msgspec typed": median_us(lambda: msgspec_decode(body), args.number, args.repeat),
        "msgspec datum": median_us(
            lambda: to_datum(msgspec_decode(body)), args.number, args.repeat
        ),
        # The bridge's record from the body: step by step (decode, parse_webhook, the
        # personal-data policy, the codec), and in one pass (decode, then the generated
        # JSON -> Avro function of streams/models/serializers/from_webhook.py).
        "record in steps": median_us(
            lambda: records.build(parse_webhook(loads(body))), args.number, args.repeat
        ),
        "record one pass": median_us(
            lambda: records.from_payload(loads(body)), args.number, args.repeat
        ),
    }
    print(f"example: {len(text)} bytes JSON, {len(data)} bytes Avro (single-object framing)")
    print(f"median of {args.repeat} x {args.number} runs")
    for name, us in rows.items():
        print(f"  {name:<16} {us:8.2f} µs")
    print(f"  encode / json.dumps   {rows['avro encode'] / rows['json.dumps']:6.2f}x")
    print(f"  decode / json.loads   {rows['avro decode'] / rows['json.loads']:6.2f}x")
    print(f"  worker decode / decode {rows['worker decode'] / rows['avro decode']:6.2f}x")
    print(f"  parse_webhook / converters {rows['parse_webhook'] / rows['parse converters']:6.2f}x")
    print(f"  encode / fastavro encode   {rows['avro encode'] / rows['fastavro encode']:6.2f}x")
    print(f"  record one pass / in steps {rows['record one pass'] / rows['record in steps']:6.2f}x")
    print(f"  bridge record (decode + one pass): {1e6 / rows['record one pass']:,.0f}/s")
    print(f"  msgspec datum / bridge parse {rows['msgspec datum'] / rows['bridge parse']:6.2f}x")
    print(f"  msgspec typed / bridge parse {rows['msgspec typed'] / rows['bridge parse']:6.2f}x")


if __name__ == "__main__":
    main()
