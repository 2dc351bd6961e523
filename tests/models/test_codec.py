"""The Avro codec: framing, round trips, fingerprints and the errors of bad bytes or datums."""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro
import pytest
from fastavro.schema import fingerprint as fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.models import DecodeError, ValidationError, datum_to_json, parse_webhook
from streams.models.serializers.avro import (
    SCHEMA_DIR,
    AvroCodec,
    get_codec,
    load_schema_file,
    schema_files,
)
from streams.settings import Settings
from tests.models.samples import SAMPLES
from tests.models.strategies import WEBHOOKS, from_schema, without_nones


def test_schema_dir_and_names(codec: AvroCodec) -> None:
    assert (SCHEMA_DIR / "CustomerDeleted.avsc").is_file()
    assert set(codec.schema_names) == {"CustomerDeleted", *SAMPLES}
    for name in codec.schema_names:
        assert codec.schema(name)["name"] == f"io.voucherify.streams.{name}"


def _crc64_avro(data: bytes) -> int:
    """CRC-64-AVRO (Rabin) exactly as the Avro specification gives it: the reference."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def test_fingerprints_are_the_specs_crc64_avro(codec: AvroCodec) -> None:
    # The Avro spec's test vector: fingerprint64('"null"') == 7195948357588979594.
    assert _crc64_avro(b'"null"') == 7195948357588979594
    assert (
        fastavro_fingerprint('"null"', "CRC-64-AVRO")
        == (7195948357588979594).to_bytes(8, "little").hex()
    )
    # Every schema the codec knows, current and history: the framing bytes are the spec's CRC.
    schemas = [*codec.current.values(), *codec.history]
    assert len(schemas) == len(schema_files(SCHEMA_DIR)) + len(schema_files(SCHEMA_DIR / "history"))
    for schema in schemas:
        pcf = to_parsing_canonical_form(json.loads(schema.text))
        assert schema.fingerprint == _crc64_avro(pcf.encode("utf-8")).to_bytes(8, "little")
    for name in codec.schema_names:
        raw = load_schema_file(SCHEMA_DIR / f"{name}.avsc")
        pcf = to_parsing_canonical_form(raw)
        assert codec.fingerprint(name) == bytes.fromhex(fastavro_fingerprint(pcf, "CRC-64-AVRO"))


def test_example_round_trips_single_object(
    codec: AvroCodec, example_payload: dict[str, Any]
) -> None:
    datum = parse_webhook(example_payload)
    data = codec.encode("CustomerDeleted", datum)
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == codec.fingerprint("CustomerDeleted")
    name, back = codec.decode(data)
    assert name == "CustomerDeleted"
    assert back == datum
    assert without_nones(datum_to_json(back)) == example_payload


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_record_schemas_round_trip(codec: AvroCodec, name: str) -> None:
    data = codec.encode(name, SAMPLES[name])
    assert codec.decode(data) == (name, SAMPLES[name])


def test_defaults_fill_missing_fields(codec: AvroCodec) -> None:
    partial = {
        k: v for k, v in SAMPLES["LoyaltyPointsLost"].items() if k != "customers_with_points"
    }
    _, back = codec.decode(codec.encode("LoyaltyPointsLost", partial))
    assert back["customers_with_points"] == 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(WEBHOOKS)
def test_generated_webhooks_round_trip(codec: AvroCodec, pair: tuple[Any, Any]) -> None:
    raw, expected = pair
    datum = parse_webhook(json.loads(json.dumps(raw)))
    name, back = codec.decode(codec.encode("CustomerDeleted", datum))
    assert name == "CustomerDeleted"
    assert back == datum
    assert datum_to_json(back) == expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_compiled_writer_is_byte_identical_to_fastavro(
    codec: AvroCodec, data: st.DataObject
) -> None:
    for name in codec.schema_names:
        schema = codec.schema(name)
        datum = data.draw(from_schema(schema), label=name)
        expected = io.BytesIO()
        fastavro.schemaless_writer(expected, schema, datum)
        assert codec.encode(name, datum)[10:] == expected.getvalue()


ENCODE_ERRORS = [
    ("LoyaltyPointsLost", {"points_lost": "3"}, "points_lost: expected integer, got string"),
    (
        "LoyaltyPointsLost",
        {"points_lost": 2**63},
        "points_lost: expected 64-bit integer, got an out-of-range integer",
    ),
    ("LoyaltyPointsLost", {"key": None}, "key: must not be null"),
    (
        "LoyaltyPointsLost",
        {"updated_at": "now"},
        "updated_at: expected timestamp (datetime), got string",
    ),
    ("DeadLetter", {"body": "text"}, "body: expected bytes, got string"),
    ("DeadLetter", {"headers": {"a": 1}}, 'headers["a"]: expected string, got integer'),
    ("CustomerDeletion", {"campaigns": ["a", None]}, "campaigns[1]: must not be null"),
    ("CustomerDeletion", {"tiers": "ltr_1"}, "tiers: expected array, got string"),
    ("CustomerDeletion", {"tiers": None}, "tiers: expected array, got null"),
    ("DeadLetter", {"headers": {1: "v"}}, "headers: expected string keys, got integer"),
    ("LoyaltyPointsLost", {"points_lost": ""}, "points_lost: expected integer, got string"),
]


@pytest.mark.parametrize(
    ("name", "change", "message"), ENCODE_ERRORS, ids=[m for *_, m in ENCODE_ERRORS]
)
def test_bad_datums_name_path_and_rule(
    codec: AvroCodec, name: str, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as info:
        codec.encode(name, {**SAMPLES[name], **change})
    assert str(info.value) == message


def test_missing_required_field(codec: AvroCodec) -> None:
    datum = {k: v for k, v in SAMPLES["CustomerDeletion"].items() if k != "customer_id"}
    with pytest.raises(ValidationError, match=r"^customer_id: required field is missing$"):
        codec.encode("CustomerDeletion", datum)


def test_bad_nested_customer_datum(codec: AvroCodec, example_payload: dict[str, Any]) -> None:
    datum = parse_webhook(example_payload)
    datum["data"]["customer"]["loyalty"]["points"] = "many"
    with pytest.raises(
        ValidationError, match=r"^data\.customer\.loyalty\.points: expected integer"
    ):
        codec.encode("CustomerDeleted", datum)


def test_unknown_schema_name(codec: AvroCodec) -> None:
    with pytest.raises(ValueError, match="unknown schema 'Nope'"):
        codec.encode("Nope", {})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "unknown framing"),
        (b"{}", "unknown framing"),
        (b"\x01abc", "unknown framing"),
        (b"\xc3\x01\x00", "truncated single-object header"),
        (b"\xc3\x01" + b"\xff" * 8 + b"\x00", "unknown writer schema fingerprint ffffffffffffffff"),
        (b"\x00\x00\x00", "truncated Confluent header"),
        (b"\x00\x00\x00\x00\x07\x00", "schema id 7) but no SCHEMA_REGISTRY_URL"),
    ],
)
def test_decode_rejects_unknown_bytes(codec: AvroCodec, data: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match="^.*" + message.replace("(", r"\(").replace(")", r"\)")):
        codec.decode(data)


def test_decode_rejects_corrupt_and_trailing_bodies(codec: AvroCodec) -> None:
    good = codec.encode("CustomerDeletion", SAMPLES["CustomerDeletion"])
    with pytest.raises(DecodeError, match="trailing bytes"):
        codec.decode(good + b"\x00")
    with pytest.raises(DecodeError, match="corrupt CustomerDeletion body"):
        codec.decode(good[:-3])


def test_get_codec_is_cached_per_registry_url() -> None:
    a = get_codec(Settings())
    assert get_codec(Settings()) is a
    assert get_codec(Settings(schema_registry_url="http://127.0.0.1:1")) is not a
