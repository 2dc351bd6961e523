"""Confluent wire format through confluent-kafka's SchemaRegistryClient (in-process registry)."""

from __future__ import annotations

from typing import Any

import pytest

from streams.models import DecodeError, parse_webhook
from streams.models.serializers.avro import AvroCodec
from tests.models.sr_server import Registry

TOPIC = "voucherify.customer.deleted"


def test_confluent_framing_round_trip(
    registry: tuple[str, Registry], example_payload: dict[str, Any]
) -> None:
    url, state = registry
    codec = AvroCodec(url)
    datum = parse_webhook(example_payload)
    data = codec.encode("CustomerDeleted", datum, topic=TOPIC)
    assert data[0] == 0
    schema_id = int.from_bytes(data[1:5], "big")
    assert state.subjects == {f"{TOPIC}-value": [schema_id]}
    assert codec.decode(data) == ("CustomerDeleted", datum)
    # Registered once, then cached: later encodes make no HTTP call.
    calls = len(state.requests)
    codec.encode("CustomerDeleted", datum, topic=TOPIC)
    assert len(state.requests) == calls
    # Another process (fresh codec) fetches the writer schema by id.
    assert AvroCodec(url).decode(data) == ("CustomerDeleted", datum)
    assert ("GET", f"/schemas/ids/{schema_id}") in state.requests


def test_both_framings_on_one_topic(
    registry: tuple[str, Registry], example_payload: dict[str, Any]
) -> None:
    url, _ = registry
    datum = parse_webhook(example_payload)
    single_object = AvroCodec().encode("CustomerDeleted", datum)
    confluent = AvroCodec(url).encode("CustomerDeleted", datum, topic=TOPIC)
    reader = AvroCodec(url)
    assert reader.decode(single_object) == reader.decode(confluent) == ("CustomerDeleted", datum)


def test_registry_needs_a_topic(registry: tuple[str, Registry]) -> None:
    with pytest.raises(ValueError, match="needs the topic"):
        AvroCodec(registry[0]).encode("CustomerDeleted", {})


def test_unknown_registry_id(registry: tuple[str, Registry]) -> None:
    with pytest.raises(DecodeError, match="schema registry id 99"):
        AvroCodec(registry[0]).decode(b"\x00\x00\x00\x00\x63\x00")


def test_foreign_schema_id_is_rejected(registry: tuple[str, Registry]) -> None:
    url, state = registry
    schema_id = state.register("other-value", '{"type":"record","name":"x.Other","fields":[]}')
    with pytest.raises(DecodeError, match=r"x\.Other, not ours"):
        AvroCodec(url).decode(b"\x00" + schema_id.to_bytes(4, "big"))
