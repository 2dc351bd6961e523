"""`streams.agents.batching.batches`: a batch is acknowledged only once the next is asked for."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import faust

from streams.agents.batching import batches


def make_agent(tmp_path: Any, handled: list[list[bytes]], size: int = 2) -> Any:
    app = faust.App("batching-unit", store="memory://", datadir=str(tmp_path), autodiscover=False)
    topic = app.topic("in", value_serializer="raw")

    @app.agent(topic)
    async def agent(stream: Any) -> None:
        async for events in batches(stream, size, 60):
            values = [e.value for e in events]
            if b"boom" in values:
                raise RuntimeError("boom")
            handled.append(values)

    app.finalize()
    return agent


def test_handled_batches_are_acked_and_a_failed_one_is_not(tmp_path: Any) -> None:
    handled: list[list[bytes]] = []
    agent = make_agent(tmp_path, handled)

    sent: list[Any] = []

    async def scenario() -> None:
        async with agent.test_context() as a:
            for v in (b"a", b"b", b"c", b"boom"):
                sent.append(await a.put(v))
            await asyncio.sleep(0.2)

    with contextlib.suppress(RuntimeError):  # the test context may re-raise the crash
        asyncio.run(scenario())
    acked = [e.message.acked for e in sent]
    # [a, b] handled, then acked when [c, boom] was asked for; [c, boom] raised: never acked.
    assert handled[0] == [b"a", b"b"]
    assert acked == [True, True, False, False]


def test_a_batch_cancelled_mid_way_is_not_acked(tmp_path: Any) -> None:
    started = asyncio.Event()
    app = faust.App("batching-cancel", store="memory://", datadir=str(tmp_path), autodiscover=False)
    topic = app.topic("in", value_serializer="raw")

    @app.agent(topic)
    async def agent(stream: Any) -> None:
        async for _events in batches(stream, 2, 60):
            started.set()
            await asyncio.sleep(3600)  # still handling it when the agent is stopped

    app.finalize()

    async def scenario() -> list[Any]:
        async with agent.test_context() as a:
            sent = [await a.put(v) for v in (b"a", b"b")]
            await asyncio.wait_for(started.wait(), 10)
        return sent

    sent = asyncio.run(scenario())
    assert [e.message.acked for e in sent] == [False, False]
