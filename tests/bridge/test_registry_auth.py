"""A real bridge process against a Schema Registry that enforces TLS and credentials (the
`secured_registry` fixture: the session's registry behind nginx). With a wrong password it stays
up, answers customer.deleted webhooks 503 + Retry-After and /readyz 503 naming the cause, logs
that cause once (never the password), and publishes as soon as the password file is fixed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from support.bridge_client import Client
from support.nginx import SecuredRegistry, write_secret
from support.processes import Service

from streams.dev.reader import read_topic
from streams.models.serializers.registry import new_client
from streams.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.registry]

REFUSED = "refused the credentials (HTTP 401)"


class Bridge(Client):
    def __init__(self, service: Service) -> None:
        self.service, self.port = service, service.port


def test_wrong_password_then_fixed(
    bridge_settings: Settings,
    secured_registry: SecuredRegistry,
    tmp_path: Path,
    example_body: bytes,
) -> None:
    wrong = "wrong-password-never-logged"
    registry = secured_registry.client_settings("basic", tmp_path, password=wrong)
    settings = bridge_settings.with_(**registry)
    service = Service("bridge", settings, tmp_path / "bridge.log").start()
    bridge = Bridge(service)
    try:
        service.wait_answering("/readyz", timeout=60)
        ready = bridge.request("GET", "/readyz")
        assert ready.status == 503, ready.body
        cause = (
            f"schema registry at {secured_registry.url('basic')} {REFUSED}: check "
            "SCHEMA_REGISTRY_USERNAME(_FILE) and SCHEMA_REGISTRY_PASSWORD(_FILE)"
        )
        assert cause in ready.json()["message"]
        for _ in range(20):  # a sender retrying: one line in the log, not one per request
            reply = bridge.post(example_body)
            assert reply.status == 503 and reply.headers["retry-after"] == "7", reply.body
            assert "schema registry" in reply.json()["message"]
        time.sleep(1)
        log = service.tail(100_000)
        assert service.alive, log
        assert log.count(REFUSED) == 1, log
        assert cause in log and "Traceback" not in log

        # The operator fixes the secret file: the next attempt reads it again.
        write_secret(Path(registry["schema_registry_password_file"]), secured_registry.password)
        deadline = time.monotonic() + 30
        while bridge.request("GET", "/readyz").status != 200:
            assert time.monotonic() < deadline, service.tail()
            time.sleep(0.2)
        assert bridge.post(example_body).status == 200
    finally:
        service.stop()
    log = service.tail(100_000)
    assert wrong not in log and secured_registry.password not in log
    assert "schemas registered with the schema registry; accepting webhooks again" in log

    topic = settings.topic(settings.customer_deleted_topic)
    msgs = read_topic(settings.bootstrap_servers, topic, timeout=10, idle=1.5)
    assert len(msgs) == 1
    deserialize = AvroDeserializer(new_client(settings))  # the fixed file: the right password
    datum = deserialize(msgs[0].value(), SerializationContext(topic, MessageField.VALUE))
    assert datum["type"] == "customer.deleted"
