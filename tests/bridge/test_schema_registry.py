"""The bridge with a real Schema Registry: refuses an incompatible schema, 503 while the registry
is down, recovers on its own; what it publishes reads with confluent-kafka's AvroDeserializer."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from support.tcp_proxy import TcpProxy

from streams.bridge.app import run
from streams.dev.ports import free_port
from streams.dev.reader import read_topic
from streams.models.serializers.avro import AvroCodec
from streams.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.registry]


def _proxied(url: str) -> tuple[str, TcpProxy]:
    """A URL for the registry through a proxy that is not listening yet."""
    parts = urlsplit(url)
    port = free_port()
    proxy = TcpProxy(port, (parts.hostname or "127.0.0.1", parts.port or 80))
    return f"{parts.scheme}://127.0.0.1:{port}{parts.path}", proxy


def test_incompatible_schema_refuses_to_start(
    bridge_settings: Settings, schema_registry: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = bridge_settings.with_(schema_registry_url=schema_registry, bridge_port=free_port())
    subject = settings.topic(settings.customer_deleted_topic) + "-value"
    # Another producer got there first with a schema the bridge's cannot read.
    theirs = json.loads(AvroCodec().schema_text("CustomerDeleted"))
    first = theirs["fields"][0]
    first["type"] = "int" if first["type"] == "boolean" else "boolean"
    first.pop("default", None)
    client = SchemaRegistryClient({"url": schema_registry})
    client.register_schema(subject, Schema(json.dumps(theirs), "AVRO"))
    with caplog.at_level(logging.ERROR, logger="streams.bridge"):
        assert run(settings) == 2
    refusal = " ".join(r.getMessage() for r in caplog.records)
    assert "refusing to start" in refusal and subject in refusal and "incompatible" in refusal
    assert client.get_versions(subject) == [1]  # nothing registered, nothing published
    assert not read_topic(
        settings.bootstrap_servers,
        settings.topic(settings.customer_deleted_topic),
        timeout=3,
        idle=1,
    )


def test_registry_down_then_recovers(
    start_bridge: Callable[..., Any],
    bridge_settings: Settings,
    schema_registry: str,
    example_body: bytes,
) -> None:
    url, proxy = _proxied(schema_registry)
    settings = bridge_settings.with_(schema_registry_url=url)
    bridge = start_bridge(settings)  # starts although the registry does not answer
    try:
        ready = bridge.request("GET", "/readyz")
        assert ready.status == 503 and "registry" in ready.json()["message"]
        reply = bridge.post(example_body)
        assert reply.status == 503 and reply.headers["retry-after"] == "7"
        assert "schema registry" in reply.json()["message"]
        assert b"bridge_schemas_registered 0" in bridge.request("GET", "/metrics").body
        proxy.start()
        deadline = time.monotonic() + 20
        while bridge.request("GET", "/readyz").status != 200:
            assert time.monotonic() < deadline, "the bridge did not recover"
            time.sleep(0.2)
        assert bridge.post(example_body).status == 200
        # Registered: a registry outage no longer matters to the bridge (ids are cached).
        proxy.stop()
        assert bridge.request("GET", "/readyz").status == 200
        assert bridge.post(example_body).status == 200
    finally:
        proxy.stop()
    topic = settings.topic(settings.customer_deleted_topic)
    msgs = read_topic(settings.bootstrap_servers, topic, timeout=10, idle=1.5)
    assert len(msgs) == 2
    deserialize = AvroDeserializer(SchemaRegistryClient({"url": schema_registry}))
    for m in msgs:
        datum = deserialize(m.value(), SerializationContext(topic, MessageField.VALUE))
        assert datum["type"] == "customer.deleted"
