"""Fixtures of the model/codec tests (no Kafka needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from streams.models.serializers.avro import AvroCodec
from streams.models.serializers.registry import new_client

EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "customer-deleted.webhook.json"


@pytest.fixture(scope="session")
def example_payload() -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    return payload


@pytest.fixture(scope="session")
def codec() -> AvroCodec:
    return AvroCodec()


@pytest.fixture
def mock_registry() -> Any:
    """confluent-kafka's in-process mock SchemaRegistryClient (unit tests; the real registry is
    the session's `schema_registry` fixture)."""
    return new_client("mock://unit")
