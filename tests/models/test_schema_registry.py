"""The Confluent wire format through confluent-kafka's SchemaRegistryClient: unit tests on its
`mock://` client, then the same contract against the real registry (the `schema_registry`
session fixture: Apicurio Registry's Confluent-compatible API)."""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from streams.dev.ports import free_port
from streams.models import DecodeError, parse_webhook
from streams.models.serializers.avro import AvroCodec
from streams.models.serializers.registry import (
    COMPATIBILITY,
    IncompatibleSchema,
    RegistryUnavailable,
    SchemaRegistrationError,
    SchemaRegistry,
    UnknownSchemaId,
    new_client,
)
from tests.models.samples import SAMPLES

TOPIC = "voucherify.customer.deleted"


class Counting:
    """A registry client that counts the calls made through it."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return attr(*args, **kwargs)

        return call


# --- unit: confluent-kafka's mock:// client ------------------------------------------------


def test_confluent_framing_round_trip(mock_registry: Any, example_payload: dict[str, Any]) -> None:
    client = Counting(mock_registry)
    codec = AvroCodec(registry_client=client)
    datum = parse_webhook(example_payload)
    data = codec.encode("CustomerDeleted", datum, topic=TOPIC)
    assert data[0] == 0
    schema_id = int.from_bytes(data[1:5], "big")
    assert mock_registry.get_subjects() == [f"{TOPIC}-value"]
    assert codec.decode(data) == ("CustomerDeleted", datum)
    # Registered once, then cached: later encodes make no call.
    calls = len(client.calls)
    codec.encode("CustomerDeleted", datum, topic=TOPIC)
    assert len(client.calls) == calls
    # Another process (fresh codec) fetches the writer schema by id, once.
    reader = Counting(mock_registry)
    fresh = AvroCodec(registry_client=reader)
    assert fresh.decode(data) == fresh.decode(data) == ("CustomerDeleted", datum)
    assert reader.calls == ["get_schema"]
    assert mock_registry.get_schema(schema_id).schema_str == codec.schema_text("CustomerDeleted")


def test_both_framings_on_one_topic(mock_registry: Any, example_payload: dict[str, Any]) -> None:
    datum = parse_webhook(example_payload)
    single_object = AvroCodec().encode("CustomerDeleted", datum)
    confluent = AvroCodec(registry_client=mock_registry).encode(
        "CustomerDeleted", datum, topic=TOPIC
    )
    reader = AvroCodec(registry_client=mock_registry)
    assert reader.decode(single_object) == reader.decode(confluent) == ("CustomerDeleted", datum)


def test_registry_needs_a_topic(mock_registry: Any) -> None:
    with pytest.raises(ValueError, match="needs the topic"):
        AvroCodec(registry_client=mock_registry).encode("CustomerDeleted", {})


def test_unknown_registry_id(mock_registry: Any) -> None:
    with pytest.raises(UnknownSchemaId, match="schema registry id 99 is unknown"):
        AvroCodec(registry_client=mock_registry).decode(b"\x00\x00\x00\x00\x63\x00")


def test_foreign_schema_id_is_rejected(mock_registry: Any) -> None:
    from confluent_kafka.schema_registry import Schema

    other = Schema('{"type":"record","name":"x.Other","fields":[]}', "AVRO")
    schema_id = mock_registry.register_schema("other-value", other)
    with pytest.raises(DecodeError, match=r"x\.Other, not ours"):
        AvroCodec(registry_client=mock_registry).decode(b"\x00" + schema_id.to_bytes(4, "big"))


def test_unreachable_registry_is_not_the_records_fault() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RegistryUnavailable) as raised:
        AvroCodec(url).decode(b"\x00\x00\x00\x00\x07\x00")
    assert not isinstance(raised.value, DecodeError)  # never skipped as a bad record
    with pytest.raises(RegistryUnavailable, match=r"voucherify\.customer\.deleted-value"):
        AvroCodec(url).register("CustomerDeleted", TOPIC)


# --- the real registry --------------------------------------------------------------------


@pytest.mark.registry
def test_subjects_level_and_ids(schema_registry: str, unique: str) -> None:
    codec = AvroCodec(schema_registry)
    topics = {name: f"t{unique}.{name.lower()}" for name in codec.schema_names}
    ids = {name: codec.register(name, topic) for name, topic in topics.items()}
    client = SchemaRegistryClient({"url": schema_registry})
    for name, topic in topics.items():
        subject = f"{topic}-value"
        assert client.get_compatibility(subject) == COMPATIBILITY
        latest = client.get_latest_version(subject)
        assert latest.schema_id == int.from_bytes(ids[name][1:], "big")
    # Confluent id semantics (Apicurio's content-id mode): same schema, other subject, same id.
    again = AvroCodec(schema_registry).register("DeadLetter", f"t{unique}.other")
    assert again == ids["DeadLetter"]


@pytest.mark.registry
def test_confluent_deserializer_reads_the_codecs_records(
    schema_registry: str, unique: str, example_payload: dict[str, Any]
) -> None:
    """Every record type, written by the codec, read back by confluent-kafka alone."""
    codec = AvroCodec(schema_registry)
    client = SchemaRegistryClient({"url": schema_registry})
    deserialize = AvroDeserializer(client)
    datums = {"CustomerDeleted": parse_webhook(example_payload), **SAMPLES}
    for name, datum in datums.items():
        topic = f"t{unique}.{name}"
        got = deserialize(
            codec.encode(name, datum, topic=topic),
            SerializationContext(topic, MessageField.VALUE),
        )
        assert AvroCodec().decode(AvroCodec().encode(name, got))[1] == datum


def _evolved(codec: AvroCodec) -> dict[str, Any]:
    """The current CustomerDeleted plus an optional field: a compatible evolution."""
    schema: dict[str, Any] = json.loads(codec.schema_text("CustomerDeleted"))
    schema["fields"].append({"name": "channel", "type": ["null", "string"], "default": None})
    return schema


def _broken(codec: AvroCodec) -> dict[str, Any]:
    """The current CustomerDeleted with its first field's type changed: incompatible."""
    schema: dict[str, Any] = json.loads(codec.schema_text("CustomerDeleted"))
    field = schema["fields"][0]
    field["type"] = "int" if field["type"] == "boolean" else "boolean"
    field.pop("default", None)
    return schema


@pytest.mark.registry
def test_history_then_current_then_evolved_are_compatible(
    schema_registry: str, unique: str, example_payload: dict[str, Any]
) -> None:
    codec = AvroCodec(schema_registry)
    sr = codec.schema_registry()
    subject = f"t{unique}.in-value"
    old = next(s for s in codec.history if s.name == "CustomerDeleted")
    sr.register(subject, old.text)
    assert sr.compatible(subject, codec.schema_text("CustomerDeleted"))
    codec.register("CustomerDeleted", f"t{unique}.in")
    evolved = json.dumps(_evolved(codec))
    assert sr.compatible(subject, evolved)
    evolved_id = sr.register(subject, evolved)
    # A record written by a newer producer: this codec resolves it to its current schema.
    writer = fastavro.parse_schema(json.loads(evolved), named_schemas={})
    out = io.BytesIO()
    datum = parse_webhook(example_payload)
    fastavro.schemaless_writer(out, writer, {**datum, "channel": "api"})
    data = b"\x00" + evolved_id.to_bytes(4, "big") + out.getvalue()
    assert AvroCodec(schema_registry).decode(data) == ("CustomerDeleted", datum)


@pytest.mark.registry
def test_incompatible_change_is_refused(schema_registry: str, unique: str) -> None:
    codec = AvroCodec(schema_registry)
    codec.register("CustomerDeleted", f"t{unique}.in")
    sr = SchemaRegistry(new_client(schema_registry))
    subject = f"t{unique}.in-value"
    broken = json.dumps(_broken(codec))
    assert not sr.compatible(subject, broken)
    with pytest.raises(IncompatibleSchema, match=subject) as refused:
        sr.register(subject, broken)
    assert refused.value.subject == subject


class Racing:
    """A registry client that loses the race for a subject's level and version `losses`
    times: another process sets the level (or registers the schema) between this one's read
    and write, and the registry answers 409 as Apicurio does."""

    def __init__(self, client: Any, losses: int = 1, level_after: str = COMPATIBILITY) -> None:
        self.client = client
        self.losses = {"set_config": losses, "register_schema": losses}
        self.level_after = level_after

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def _lose(self, name: str, subject: str, win: Any) -> None:
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        if self.losses[name] > 0:
            self.losses[name] -= 1
            win()  # the other process's write lands first
            raise SchemaRegistryError(409, 409, "A rule named 'COMPATIBILITY' already exists.")

    def set_config(self, subject: str, config: Any) -> Any:
        from confluent_kafka.schema_registry import ConfigCompatibilityLevel, ServerConfig

        level = ServerConfig(compatibility=ConfigCompatibilityLevel(self.level_after))
        self._lose("set_config", subject, lambda: self.client.set_config(subject, level))
        return self.client.set_config(subject, config)

    def register_schema(self, subject: str, schema: Any) -> int:
        self._lose("register_schema", subject, lambda: self.client.register_schema(subject, schema))
        return int(self.client.register_schema(subject, schema))


def test_a_level_set_by_another_process_meanwhile_is_success(mock_registry: Any) -> None:
    racing = Racing(mock_registry)
    codec = AvroCodec(registry_client=racing)
    framing = codec.register("DeadLetter", "race")
    assert racing.losses == {"set_config": 0, "register_schema": 0}  # both races were lost
    assert framing[0] == 0
    assert SchemaRegistry(mock_registry).ensure_compatibility("race-value") == COMPATIBILITY


def test_a_level_that_stays_too_weak_is_not_blamed_on_the_schema(mock_registry: Any) -> None:
    racing = Racing(mock_registry, losses=100, level_after="BACKWARD")
    level = "compatibility level of subject s-value"
    with pytest.raises(SchemaRegistrationError, match=level) as refused:
        SchemaRegistry(racing).ensure_compatibility("s-value")
    assert not isinstance(refused.value, IncompatibleSchema)
    assert "incompatible" not in str(refused.value)


def _register_all_at_once(url: str, prefix: str, go: Any, out: Any) -> None:
    """One process of the start-up race: every schema the bridge and the worker register at
    start, on many fresh topics in the same order as the other processes (one race each)."""
    from streams.models.serializers.registry import TOPIC_SETTING

    codec = AvroCodec(url)
    go.wait()
    try:
        for round_ in range(RACE_ROUNDS):
            for name in TOPIC_SETTING:
                codec.register(name, f"{prefix}{round_}.{name}")
        out.put("ok")
    except Exception as exc:
        out.put(f"{type(exc).__name__}: {exc}")


RACE_ROUNDS = 6


@pytest.mark.registry
def test_processes_starting_together_on_fresh_subjects(schema_registry: str, unique: str) -> None:
    """Processes register every schema at the same moment on fresh subjects (a worker and a
    bridge started together, many times over): each succeeds, none is told its schema is
    incompatible."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    go, out = ctx.Barrier(4), ctx.Queue()
    procs = [
        ctx.Process(target=_register_all_at_once, args=(schema_registry, f"t{unique}.", go, out))
        for _ in range(4)
    ]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(30)
    assert results == ["ok"] * 4
