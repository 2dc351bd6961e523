"""The worker with a real Schema Registry: counts Confluent-framed and single-object input mixed,
skips (counts, logs, keeps) records it cannot decode, keeps going through a registry outage, and
everything it publishes reads with confluent-kafka's own AvroDeserializer."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from support.tcp_proxy import TcpProxy
from support.worker import diff, expected, make_datums, produce, wait_exact

from streams.dev.http import scrape_metrics
from streams.dev.ports import free_port
from streams.dev.reader import read_topic
from streams.models.serializers.avro import AvroCodec
from streams.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.registry]

UNKNOWN_ID = b"\x00\x00\x0f\x42\x3f\x02"  # Confluent framing, schema id 999999
GARBAGE = b"\xc3\x01 not an avro record"


def test_registry_path_end_to_end(settings: Settings, workers: Any, schema_registry: str) -> None:
    parts = urlsplit(schema_registry)
    proxy = TcpProxy(free_port(), (parts.hostname or "127.0.0.1", parts.port or 80)).start()
    url = f"http://127.0.0.1:{proxy.port}{parts.path}"
    settings = settings.with_(schema_registry_url=url)
    topic = settings.topic(settings.customer_deleted_topic)
    datums = make_datums(120)
    first, legacy, later = datums[:60], datums[60:80], datums[80:]
    try:
        w = workers("w1", schema_registry_url=url)
        produce(settings, first)
        # Records from before the migration (single-object framing) on the same topic.
        soe = AvroCodec()
        p = Producer({"bootstrap.servers": settings.bootstrap_servers})
        for d in legacy:
            key = d["data"]["customer"]["id"].encode()
            p.produce(topic, key=key, value=soe.encode("CustomerDeleted", d))
        for value in (UNKNOWN_ID, GARBAGE):
            p.produce(topic, key=b"cust_bad", value=value, headers=[("injected", b"1")])
        assert p.flush(30) == 0
        want = expected(first + legacy)
        got = wait_exact(settings, want, [w])
        assert got == want, (diff(got, want)[:10], w.tail())
        metrics = scrape_metrics(w.url + "/metrics")
        assert metrics['streams_worker_skipped_records_total{reason="unknown_schema_id"}'] == 1
        assert metrics['streams_worker_skipped_records_total{reason="undecodable"}'] == 1
        assert "unknown_schema_id" in w.tail() and "schema registry id 999999" in w.tail()

        # The registry goes away: the worker (and the producers) know their schemas already.
        proxy.stop()
        produce(settings, later)
        want = expected(datums)
        got = wait_exact(settings, want, [w])
        assert got == want, (diff(got, want)[:10], w.tail())
        assert w.proc is not None and w.proc.poll() is None
    finally:
        proxy.stop()

    # A downstream consumer written only with confluent-kafka reads every record type.
    deserialize = AvroDeserializer(SchemaRegistryClient({"url": schema_registry}))

    def read(name: str) -> list[tuple[Any, dict[str, Any]]]:
        t = settings.topic(name)
        msgs = read_topic(settings.bootstrap_servers, t, timeout=15, idle=2)
        return [  # tombstones (expired days) carry no record
            (m, deserialize(m.value(), SerializationContext(t, MessageField.VALUE)))
            for m in msgs
            if m.value()
        ]

    inputs = [
        m
        for m in read_topic(settings.bootstrap_servers, topic, timeout=15, idle=2)
        if not m.headers() and m.value()[:1] == b"\x00"
    ]
    assert len(inputs) == len(first) + len(later)
    for m in inputs:
        datum = deserialize(m.value(), SerializationContext(topic, MessageField.VALUE))
        assert datum["data"]["customer"]["id"] == m.key().decode()
    assert {d["customer_id"] for _, d in read(settings.deletions_topic)} == {
        d["data"]["customer"]["id"] for d in datums
    }
    loyalty = {m.key(): d for m, d in read(settings.loyalty_topic)}
    assert loyalty[b"total:all"]["customers"] == len(datums)
    assert read(settings.referral_topic)
    dead = read(settings.dead_letter_topic)
    assert sorted(d["reason"] for _, d in dead) == ["undecodable", "unknown_schema_id"]
    assert {d["body"] for _, d in dead} == {UNKNOWN_ID, GARBAGE}
    assert all(d["headers"]["source_topic"] == topic for _, d in dead)
