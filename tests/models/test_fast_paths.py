"""The generated fast paths against their references: the Avro writer generated from a schema
against fastavro, and parse_webhook's generated fast path against the contract's converters."""

from __future__ import annotations

import copy
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.models import customer_deleted as cd
from streams.models.errors import ValidationError
from streams.models.serializers import writer
from streams.models.serializers.writer import Unsupported
from tests.models.strategies import DATETIMES, LONGS, MUTATED_WEBHOOKS, TEXT, WEBHOOKS

# -- the generated Avro writer -----------------------------------------------------------------

# Constructs the project's schemas do not use yet, but the generator compiles.
EXTRA_SCHEMAS: list[dict[str, Any]] = [
    {
        "type": "record",
        "name": "Node",
        "fields": [
            {"name": "label", "type": "string"},
            {"name": "next", "type": ["null", "Node"], "default": None},
            {"name": "children", "type": {"type": "array", "items": "Node"}},
        ],
    },
    {
        "type": "record",
        "name": "Mixed",
        "fields": [
            {"name": "u", "type": ["string", "long", "null"]},
            {"name": "v", "type": ["long", "null"]},
            {"name": "w", "type": ["null", "boolean"]},
            {"name": "b", "type": ["null", "bytes"]},
            {"name": "i", "type": "int"},
            {"name": "oi", "type": ["null", "int"]},
            {"name": "d", "type": "double"},
            {"name": "od", "type": ["null", "double"]},
            {"name": "f", "type": "float"},
            {"name": "micros", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {
                "name": "omillis",
                "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}],
            },
            {"name": "m", "type": {"type": "map", "values": ["null", "string"]}},
            {"name": "a", "type": {"type": "array", "items": ["null", "long"]}},
            {
                "name": "inner",
                "type": [
                    "null",
                    {
                        "type": "record",
                        "name": "Inner",
                        "fields": [{"name": "x", "type": "long", "default": 7}],
                    },
                ],
            },
            {"name": "again", "type": "Inner"},
            {"name": "with_default", "type": "string", "default": "dflt"},
        ],
    },
]


def _datums(schema: Any, named: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Datums of a parsed schema, with the types the writer accepts beside the obvious ones."""
    if isinstance(schema, list):
        return st.one_of(*(_datums(b, named, depth) for b in schema))
    if isinstance(schema, str):
        primitives: dict[str, st.SearchStrategy[Any]] = {
            "null": st.none(),
            "string": TEXT,
            "long": LONGS,
            "int": st.integers(-(2**31), 2**31 - 1),
            "bytes": st.binary(max_size=80),
            "boolean": st.booleans(),
            "double": st.floats(allow_nan=False) | st.integers(-(2**53), 2**53),
            "float": st.floats(width=32, allow_nan=False),
        }
        if schema in primitives:
            return primitives[schema]
        if depth > 3:
            return st.nothing()
        return st.deferred(lambda: _datums(named[schema], named, depth + 1))
    logical = schema.get("logicalType")
    if logical in ("timestamp-millis", "timestamp-micros"):
        naive = DATETIMES.map(lambda dt: dt.replace(tzinfo=None))
        micros = DATETIMES.map(lambda dt: dt + timedelta(microseconds=123))
        return DATETIMES | naive | micros | st.integers(-(2**50), 2**50)
    kind = schema["type"]
    if kind == "record":
        return st.fixed_dictionaries(
            {
                f["name"]: _datums(f["type"], named, depth)
                for f in schema["fields"]
                if "default" not in f
            },
            optional={
                f["name"]: _datums(f["type"], named, depth)
                for f in schema["fields"]
                if "default" in f
            },
        )
    if kind == "array":
        return st.lists(_datums(schema["items"], named, depth), max_size=3 if depth < 3 else 0)
    if kind == "map":
        return st.dictionaries(TEXT, _datums(schema["values"], named, depth), max_size=3)
    return _datums(kind, named, depth)


def _parsed(raw: dict[str, Any]) -> dict[str, Any]:
    parsed: dict[str, Any] = fastavro.parse_schema(raw, named_schemas={})  # type: ignore[assignment]
    return parsed


def _write(write: Any, datum: Any) -> bytes:
    buf = bytearray()
    write(buf, datum)
    return bytes(buf)


@pytest.mark.parametrize("raw", EXTRA_SCHEMAS, ids=[s["name"] for s in EXTRA_SCHEMAS])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_writer_matches_fastavro(raw: dict[str, Any], data: st.DataObject) -> None:
    schema = _parsed(raw)
    generated = writer.compile_writer(schema)
    datum = data.draw(_datums(schema, dict(schema["__named_schemas"])))
    expected = io.BytesIO()
    fastavro.schemaless_writer(expected, schema, datum)
    assert _write(generated, datum) == expected.getvalue()


BAD_DATUMS = [
    {"u": 1.5},
    {"u": True},
    {"v": "1"},
    {"v": 2**63},
    {"w": 1},
    {"b": "text"},
    {"i": 2**31},
    {"oi": True},
    {"d": "1.0"},
    {"f": None},
    {"micros": "now"},
    {"omillis": 1.5},
    {"m": {"k": 1}},
    {"m": {1: "v"}},
    {"m": []},
    {"a": [1, "2"]},
    {"a": "12"},
    {"inner": {"x": "7"}},
    {"inner": []},
    {"again": None},
    {"with_default": None},
    {"with_default": "\ud800"},
]


@pytest.mark.parametrize("change", BAD_DATUMS, ids=[repr(c) for c in BAD_DATUMS])
def test_generated_writer_rejects_bad_datums(change: dict[str, Any]) -> None:
    schema = _parsed(EXTRA_SCHEMAS[1])
    good: dict[str, Any] = {
        "u": None,
        "v": None,
        "w": None,
        "b": None,
        "i": 1,
        "oi": None,
        "d": 1.0,
        "od": None,
        "f": 1.0,
        "micros": datetime(2024, 1, 1, tzinfo=UTC),
        "omillis": None,
        "m": {},
        "a": [],
        "inner": None,
        "again": {},
    }
    _write(writer.compile_writer(schema), good)  # the baseline encodes
    bad = {**good, **change}
    with pytest.raises(Exception):  # noqa: B017 - the caller explains any exception
        _write(writer.compile_writer(schema), bad)


@pytest.mark.parametrize(
    "raw",
    [
        {
            "type": "record",
            "name": "E",
            "fields": [{"name": "e", "type": {"type": "enum", "name": "K", "symbols": ["A"]}}],
        },
        {
            "type": "record",
            "name": "F",
            "fields": [{"name": "f", "type": ["null", "float", "double"]}],
        },
        {"type": "record", "name": "G", "fields": [{"name": "g", "type": ["int", "long"]}]},
        {
            "type": "record",
            "name": "H",
            "fields": [{"name": "h", "type": {"type": "int", "logicalType": "date"}}],
        },
    ],
)
def test_generator_declines_what_it_does_not_compile(raw: dict[str, Any]) -> None:
    with pytest.raises(Unsupported):
        writer.compile_writer(_parsed(raw))


def test_generated_source_is_straight_line(codec: Any) -> None:
    source = writer.source_of(codec.schema("CustomerDeleted"))
    assert source.count("def ") == 1  # every nested record inlined
    recursive = writer.source_of(_parsed(EXTRA_SCHEMAS[0]))
    assert recursive.count("def ") == 2  # the self-referencing record is a function


# -- parse_webhook's fast path -----------------------------------------------------------------


def _strict(value: Any) -> Any:
    """`value` with types made visible, so 1 != 1.0 and True != 1 in comparisons."""
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict(v) for v in value]
    return (type(value).__name__, value)


def _agree(payload: Any) -> None:
    """The fast path either declines, or returns exactly what the converters return."""
    before = copy.deepcopy(payload)
    try:
        fast = cd._fast_envelope(payload)
    except Exception:
        fast = None
    assert payload == before  # never mutates its input
    try:
        slow = cd._parse_slowly(payload)
    except ValidationError as exc:
        assert fast is None, f"fast path accepted what the converters reject: {exc}"
        with pytest.raises(ValidationError) as info:
            cd.parse_webhook(payload)
        assert str(info.value) == str(exc)
        return
    if fast is not None:
        assert _strict(fast) == _strict(slow)
    assert _strict(cd.parse_webhook(payload)) == _strict(slow)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(WEBHOOKS)
def test_fast_path_agrees_on_generated_webhooks(pair: tuple[Any, Any]) -> None:
    raw, _ = pair
    _agree(json.loads(json.dumps(raw)))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(MUTATED_WEBHOOKS)
def test_fast_path_agrees_on_mutated_webhooks(payload: Any) -> None:
    _agree(payload)


def test_fast_path_takes_the_usual_webhook(example_payload: dict[str, Any]) -> None:
    datum = cd._fast_envelope(example_payload)
    assert _strict(datum) == _strict(cd._parse_slowly(example_payload))


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {},
        {"data": None},
        {"data": {"customer": {"id": ""}}},
        {"data": {"customer": {"id": "c", "name": "\ud800"}}},
        {"type": "customer.created", "data": {"customer": {"id": "c"}}},
        {"data": {"customer": {"id": "c", "loyalty": {"campaigns": {"\ud800": {}}}}}},
        {"data": {"customer": {"id": "c", "loyalty": {"campaigns": {"x": None}}}}},
        {"data": {"customer": {"id": "c", "created_at": "2024-13-01T00:00:00Z"}}},
    ],
)
def test_fast_path_declines_bad_payloads(payload: Any) -> None:
    _agree(payload)
    with pytest.raises(ValidationError):
        cd.parse_webhook(payload)
