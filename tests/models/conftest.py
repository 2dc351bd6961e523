"""Fixtures of the model/codec tests (no Kafka needed)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.models.serializers.avro import AvroCodec
from tests.models.sr_server import Registry, schema_registry

EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "customer-deleted.webhook.json"


@pytest.fixture(scope="session")
def example_payload() -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    return payload


@pytest.fixture(scope="session")
def codec() -> AvroCodec:
    return AvroCodec()


@pytest.fixture
def registry() -> Iterator[tuple[str, Registry]]:
    """(URL, state) of an in-process Schema Registry (no Confluent server on this machine)."""
    with schema_registry() as served:
        yield served
