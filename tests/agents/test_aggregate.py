"""The aggregation agents under Faust's `agent.test_context()`, with a recording producer.

These are unit tests: no broker. The worker's producer (outputs and table changelog writes) is
replaced by one that records what the agent sends and acknowledges it at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.app import build_app
from streams.domain.state import KeyState, pack_delta
from streams.models.serializers.avro import get_codec
from streams.settings import Settings

TOTAL, DAY1, DAY2 = b"total:all", b"day:2020-01-01", b"day:2020-01-02"


class _Acked:
    """What librdkafka hands a delivery callback."""

    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self._tp = (topic, partition, offset)

    def topic(self) -> str:
        return self._tp[0]

    def partition(self) -> int:
        return self._tp[1]

    def offset(self) -> int:
        return self._tp[2]


class RecordingProducer:
    """Stands in for the worker's librdkafka producer: keeps what the agents send (outputs in
    `sent`, table writes in `changelog`) and acknowledges each record at once."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None]] = []
        self.changelog: list[tuple[str, int, bytes, bytes | None]] = []

    @property
    def producer(self) -> RecordingProducer:
        return self

    def produce(self, topic: str, value: Any, key: Any, partition: int, on_delivery: Any) -> None:
        if topic.endswith("-changelog"):
            self.changelog.append((topic, partition, key, value))
            offset = len(self.changelog) - 1
        else:
            self.sent.append((topic, key, value))
            offset = len(self.sent) - 1
        on_delivery(None, _Acked(topic, partition, offset))


@pytest.fixture(autouse=True)
def no_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed batch exits the worker (os._exit); here it must fail the test instead."""

    def fail(message: str, *args: Any, **_: Any) -> None:
        raise AssertionError("exit_for_restart: " + message % args)

    monkeypatch.setattr("streams.agents.aggregate.exit_for_restart", fail)


def make_topology(tmp_path: Any, **settings: Any) -> Any:
    s = Settings.from_env({}, store="memory://", app_id="unit", data_dir=str(tmp_path), **settings)
    app = build_app(s)
    app.finalize()
    app.conf.store = "memory://"  # type: ignore[assignment]
    topology = app.topology  # type: ignore[attr-defined]
    # The librdkafka client the worker's producer would create on first use.
    topology.recorded = topology.producer._producer = RecordingProducer()
    return topology


async def until_sent(topo: Any, n: int, timeout: float = 10.0) -> None:
    """Until the agent has sent `n` records (a slow machine takes longer than a fixed sleep)."""
    for _ in range(int(timeout / 0.02)):
        if len(topo.recorded.sent) >= n:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{len(topo.recorded.sent)} records sent, expected {n}")


def test_loyalty_agent_applies_each_origin_once(tmp_path: Any) -> None:
    # One batch of exactly these three, however slow the machine (a 10 ms wait split them).
    topo = make_topology(tmp_path, batch_size=3, batch_wait_ms=60_000)

    async def scenario() -> KeyState:
        async with topo.agents["loyalty"].test_context() as agent:
            await agent.put(pack_delta(TOTAL, (10, 1, 1), 1000, 0, 5))
            await agent.put(pack_delta(TOTAL, (10, 1, 1), 1000, 0, 5))  # replay
            await agent.put(pack_delta(TOTAL, (3, 1, 0), 2000, 2, 1))
            await until_sent(topo, 1)  # the batch is full: handled at once
            return KeyState.unpack(topo.loyalty[TOTAL])

    st = asyncio.run(scenario())
    assert st.counters == (13, 2, 1)
    assert st.updated_ms == 2000
    sent = topo.recorded.sent
    # Written and emitted once per batch per key, with the totals of the batch.
    assert [k for _, k, _ in sent] == [TOTAL]
    # The table write went to the changelog partition of the delta record it came from.
    [(topic, partition, key, value)] = topo.recorded.changelog
    assert topic.endswith("loyalty-points-lost-changelog") and (partition, key) == (0, TOTAL)
    assert KeyState.unpack(value).counters == (13, 2, 1)
    _, last = get_codec().decode(sent[-1][2])
    assert (last["dimension"], last["key"], last["points_lost"], last["customers"]) == (
        "total",
        "all",
        13,
        2,
    )


def test_a_message_of_several_keys_and_a_replay_in_a_later_batch(tmp_path: Any) -> None:
    topo = make_topology(tmp_path, batch_size=1, batch_wait_ms=60_000)  # a batch per message
    a, b = b"campaign:A", b"tier:gold"

    async def scenario() -> None:
        async with topo.agents["loyalty"].test_context() as agent:
            first = pack_delta(a, (4, 1, 0), 1000, 0, 1) + pack_delta(b, (4, 1, 0), 1000, 0, 1)
            await agent.put(first + pack_delta(a, (6, 1, 0), 3000, 0, 2))
            await until_sent(topo, 2)
            await agent.put(first)  # a replay regrouped: skipped, both keys re-emitted
            await until_sent(topo, 4)

    asyncio.run(scenario())
    assert KeyState.unpack(topo.loyalty[a]).counters == (10, 2, 0)
    assert KeyState.unpack(topo.loyalty[b]).counters == (4, 1, 0)
    emitted = [(k, get_codec().decode(v)[1]["points_lost"]) for _, k, v in topo.recorded.sent]
    assert emitted == [(a, 10), (b, 4), (a, 10), (b, 4)]


def test_empty_message_expires_a_key(tmp_path: Any) -> None:
    topo = make_topology(tmp_path, batch_size=2, batch_wait_ms=60_000)  # two messages a batch

    async def scenario() -> tuple[Any, Any]:
        async with topo.agents["loyalty"].test_context() as agent:
            await agent.put(pack_delta(DAY1, (7, 1, 0), 1000, 0, 1))
            await agent.put(pack_delta(DAY2, (5, 1, 0), 1000, 0, 2))
            await until_sent(topo, 2)
            await agent.put(b"", key=DAY1)
            await agent.put(b"", key=b"day:1999-01-01")  # unknown key: only the tombstone
            await until_sent(topo, 4)
            return topo.loyalty.get(DAY1), topo.loyalty.get(DAY2)

    gone, kept = asyncio.run(scenario())
    assert gone is None
    assert KeyState.unpack(kept).counters == (5, 1, 0)
    # The expired key leaves a tombstone on the compacted output; the unknown one sends nothing.
    # Expiry always sends a tombstone: re-sent after a crash, it repairs the compacted topic.
    assert [(k, v is None) for _, k, v in topo.recorded.sent] == [
        (DAY1, False),
        (DAY2, False),
        (DAY1, True),
        (b"day:1999-01-01", True),
    ]


def test_an_expiry_in_the_same_batch_drops_the_pending_totals(tmp_path: Any) -> None:
    # A batch of exactly these three messages: full at 3, long before the wait ends.
    topo = make_topology(tmp_path, batch_size=3, batch_wait_ms=60_000)

    async def scenario() -> tuple[Any, Any]:
        async with topo.agents["loyalty"].test_context() as agent:
            await agent.put(pack_delta(DAY1, (7, 1, 0), 1000, 0, 1))
            await agent.put(pack_delta(DAY2, (5, 1, 0), 1000, 0, 2))
            await agent.put(b"", key=DAY1)  # before the batch was flushed
            await until_sent(topo, 2)
            return topo.loyalty.get(DAY1), topo.loyalty.get(DAY2)

    gone, kept = asyncio.run(scenario())
    assert gone is None
    assert KeyState.unpack(kept).counters == (5, 1, 0)
    # DAY1's pending totals are dropped: only its tombstone goes out, then DAY2's totals.
    assert [(k, v is None) for _, k, v in topo.recorded.sent] == [(DAY1, True), (DAY2, False)]
