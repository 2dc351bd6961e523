"""The generated projection reader against fastavro's full decode: the fields it keeps are equal,
the worker's plan is equal, bad bytes fail as DecodeError, other writers fall back to decode."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.domain.deltas import plan
from streams.models.errors import DecodeError
from streams.models.serializers.avro import AvroCodec
from streams.models.serializers.projection import (
    WORKER_FIELDS,
    Unsupported,
    compile_reader,
)
from tests.models.strategies import from_schema

CODEC = AvroCodec()
SCHEMA = CODEC.schema("CustomerDeleted")
DECODE = CODEC.projected_decoder("CustomerDeleted", WORKER_FIELDS)
NOW = datetime(2026, 11, 26, tzinfo=UTC)


@pytest.fixture
def example_datum(example_payload: dict[str, Any]) -> dict[str, Any]:
    from streams.models import parse_webhook

    return parse_webhook(example_payload)


def kept(value: Any, keep: Any, schema: Any = SCHEMA) -> Any:
    """`value` (fastavro's full decode of `schema`) with only the `keep` fields of its records."""
    named = SCHEMA.get("__named_schemas", {})
    schema = named.get(schema, schema) if isinstance(schema, str) else schema
    if keep is True or value is None:
        return value
    if isinstance(schema, list):  # the union branch that holds this value
        branches = [named.get(b, b) if isinstance(b, str) else b for b in schema]
        kinds = {"list": "array", "dict": ("map", "record")}.get(type(value).__name__)
        match = [b for b in branches if isinstance(b, dict) and b.get("type") in (kinds or ())]
        return kept(value, keep, match[0]) if match else value
    if schema["type"] == "array":
        return [kept(v, keep, schema["items"]) for v in value]
    if schema["type"] == "map":
        return {k: kept(v, keep, schema["values"]) for k, v in value.items()}
    types = {f["name"]: f["type"] for f in schema["fields"]}
    return {k: kept(v, keep[k], types[k]) for k, v in value.items() if k in keep}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(from_schema(SCHEMA))
def test_projection_equals_fastavro_on_the_kept_fields(datum: dict[str, Any]) -> None:
    data = CODEC.encode("CustomerDeleted", datum)
    _, full = CODEC.decode(data)
    got = DECODE(data)
    assert got == kept(full, WORKER_FIELDS)
    if full["data"]["customer"]["id"]:  # plan() needs an id
        assert plan(got, NOW) == plan(full, NOW)


def test_the_example_webhook(example_datum: dict[str, Any]) -> None:
    data = CODEC.encode("CustomerDeleted", example_datum)
    got, full = DECODE(data), CODEC.decode(data)[1]
    assert got == kept(full, WORKER_FIELDS)
    assert plan(got, NOW) == plan(full, NOW)


SCALARS = {
    "type": "record",
    "name": "Scalars",
    "fields": [
        {"name": "b", "type": "boolean"},
        {"name": "i", "type": "int"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "raw", "type": "bytes"},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B", "C"]}},
        {"name": "x", "type": {"type": "fixed", "name": "X", "size": 3}},
        {"name": "m", "type": {"type": "map", "values": ["null", "long", "string"]}},
        {"name": "big", "type": "long"},
    ],
}


@pytest.mark.parametrize("keep_all", [True, False])
@given(
    st.fixed_dictionaries(
        {
            "b": st.booleans(),
            "i": st.integers(-(2**31), 2**31 - 1),
            "f": st.floats(width=32, allow_nan=False),
            "d": st.floats(allow_nan=False),
            "raw": st.binary(max_size=20),
            "e": st.sampled_from(["A", "B", "C"]),
            "x": st.binary(min_size=3, max_size=3),
            "m": st.dictionaries(
                st.text(max_size=5), st.none() | st.integers(-(2**63), 2**63 - 1) | st.text()
            ),
            "big": st.integers(-(2**63), 2**63 - 1),
        }
    )
)
def test_every_primitive_read_and_skipped(keep_all: bool, datum: dict[str, Any]) -> None:
    parsed = fastavro.parse_schema(SCALARS)
    out = io.BytesIO()
    fastavro.schemaless_writer(out, parsed, datum)
    data = out.getvalue() + b"\x00tail"  # the reader reports where the record ends
    keep = {k: True for k in datum} if keep_all else {"big": True}
    got, end = compile_reader(parsed, keep)(data, 0)
    assert end == len(data) - 5
    assert got == ({**datum} if keep_all else {"big": datum["big"]})


def test_blocks_with_byte_sizes_are_skipped() -> None:
    # Writers may frame array/map blocks with a negative count and a byte size.
    schema = fastavro.parse_schema(
        {
            "type": "record",
            "name": "R",
            "fields": [
                {"name": "a", "type": {"type": "array", "items": "string"}},
                {"name": "n", "type": "long"},
            ],
        }
    )
    # a: one block of -2 items, 4 bytes ("x", "y"), then the end; n = 7
    data = bytes([3, 8, 2]) + b"x" + bytes([2]) + b"y" + bytes([0, 14])
    assert compile_reader(schema, {"n": True})(data, 0) == ({"n": 7}, len(data))
    assert compile_reader(schema, {"a": True, "n": True})(data, 0) == (
        {"a": ["x", "y"], "n": 7},
        len(data),
    )


def test_recursive_records_are_declined() -> None:
    schema = fastavro.parse_schema(
        {
            "type": "record",
            "name": "Node",
            "fields": [{"name": "next", "type": ["null", "Node"]}],
        }
    )
    with pytest.raises(Unsupported):
        compile_reader(schema, {"next": True})


def test_bad_bytes_are_decode_errors(example_datum: dict[str, Any]) -> None:
    data = CODEC.encode("CustomerDeleted", example_datum)
    for bad in (data[:-3], data + b"\x00", data[:12]):
        with pytest.raises(DecodeError):
            DECODE(bad)
    other = CODEC.encode(
        "CustomerDeletion",
        {
            "customer_id": "c",
            "deleted_at": NOW,
            "points_lost": 0,
            "campaigns": [],
            "tiers": [],
            "referral_campaigns": [],
            "referrers": [],
            "referred_customers": 0,
        },
    )
    with pytest.raises(DecodeError, match="not CustomerDeleted"):
        DECODE(other)


def test_other_writers_fall_back_to_the_full_decode(example_datum: dict[str, Any]) -> None:
    # An older writer version resolves through fastavro: the whole datum, reader defaults.
    older = [s for s in CODEC.history if s.name == "CustomerDeleted"]
    assert older, "schemas/history holds earlier CustomerDeleted versions"
    out = io.BytesIO()
    out.write(b"\xc3\x01" + older[0].fingerprint)
    fastavro.schemaless_writer(out, older[0].parsed, example_datum)
    data = out.getvalue()
    assert DECODE(data) == CODEC.decode(data)[1]
