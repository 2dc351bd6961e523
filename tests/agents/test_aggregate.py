"""The aggregation agents under Faust's `agent.test_context()`, with a recording producer.

These are unit tests: no broker. Faust's `Topic.send` starts the app's producer, so the app's
producer is replaced by one that records what the agent sends and acknowledges it at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from faust.types import TP, RecordMetadata

from streams.app import build_app
from streams.domain.state import KeyState, pack_delta
from streams.models.serializers.avro import get_codec
from streams.settings import Settings


class RecordingProducer:
    """Stands in for Faust's producer: keeps (topic, key, value) and acknowledges at once."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None]] = []

    async def send(self, topic: str, key: Any, value: Any, **_: Any) -> asyncio.Future[Any]:
        self.sent.append((topic, key, value))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        offset = len(self.sent) - 1
        fut.set_result(RecordMetadata(topic, 0, TP(topic, 0), offset))
        return fut


@pytest.fixture
def topo(tmp_path: Any) -> Any:
    s = Settings.from_env({}, store="memory://", app_id="unit", data_dir=str(tmp_path))
    app = build_app(s)
    app.finalize()
    app.conf.store = "memory://"  # type: ignore[assignment]
    producer = RecordingProducer()

    async def maybe_start_producer() -> RecordingProducer:
        return producer

    app.maybe_start_producer = maybe_start_producer  # type: ignore[method-assign]
    topology = app.topology  # type: ignore[attr-defined]
    topology.recorded = producer
    return topology


def test_loyalty_agent_applies_each_origin_once(topo: Any) -> None:
    async def scenario() -> KeyState:
        async with topo.agents["loyalty"].test_context() as agent:
            await agent.put(pack_delta((10, 1, 1), 1000, 0, 5), key=b"total:all")
            await agent.put(pack_delta((10, 1, 1), 1000, 0, 5), key=b"total:all")  # replay
            await agent.put(pack_delta((3, 1, 0), 2000, 2, 1), key=b"total:all")
            return KeyState.unpack(topo.loyalty[b"total:all"])

    st = asyncio.run(scenario())
    assert st.counters == (13, 2, 1)
    assert st.updated_ms == 2000
    sent = topo.recorded.sent
    # One output per delta message; the replay re-emits the unchanged totals.
    assert [k for _, k, _ in sent] == [b"total:all"] * 3
    _, last = get_codec().decode(sent[-1][2])
    assert (last["dimension"], last["key"], last["points_lost"], last["customers"]) == (
        "total",
        "all",
        13,
        2,
    )


def test_empty_message_expires_a_key(topo: Any) -> None:
    async def scenario() -> tuple[Any, Any]:
        async with topo.agents["loyalty"].test_context() as agent:
            await agent.put(pack_delta((7, 1, 0), 1000, 0, 1), key=b"day:2020-01-01")
            await agent.put(pack_delta((5, 1, 0), 1000, 0, 2), key=b"day:2020-01-02")
            await agent.put(b"", key=b"day:2020-01-01")
            await agent.put(b"", key=b"day:1999-01-01")  # unknown key: nothing to do
            return topo.loyalty.get(b"day:2020-01-01"), topo.loyalty.get(b"day:2020-01-02")

    gone, kept = asyncio.run(scenario())
    assert gone is None
    assert KeyState.unpack(kept).counters == (5, 1, 0)
    # The expired key leaves a tombstone on the compacted output; the unknown one sends nothing.
    assert [(k, v is None) for _, k, v in topo.recorded.sent] == [
        (b"day:2020-01-01", False),
        (b"day:2020-01-02", False),
        (b"day:2020-01-01", True),
    ]
