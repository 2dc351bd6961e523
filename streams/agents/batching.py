"""Taking a Faust stream's records in batches, committed only once a batch was handled.

Faust's own `Stream.take_events` acknowledges a batch in a `finally`: also when the agent body
raised, or was cancelled mid-batch (rebalance, shutdown), so half-handled records could be
committed and never handled again. `batches` reports a batch handled only when the next one is
asked for; a batch abandoned any other way is not, so its records are read again after the
restart or rebalance (every step downstream is idempotent: see streams.domain.state).

In the worker each batch is first admitted by its consumer (streams.kafka.faust_consumer):
records are handled strictly in offset order per partition from where it was committed, and
what is committed is the contiguous prefix reported handled here — never Faust's own acks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import faust
from faust.agents.agent import current_agent
from mode.utils.aiter import aiter

from streams import faust_internals
from streams.agents import exit_for_restart
from streams.kafka.faust_consumer import HoleError, consumer_of


def use_event(event: faust.EventT) -> None:
    """Make `event` the current event of the calling task.

    Faust's tables send a write to the changelog partition of the current event, and its RocksDB
    store reads and writes that partition's database. Agents that take records in batches set it
    per record. Only the context variable is set, never `Stream.current_event`: the batch buffer
    reads that attribute from the stream's own task.
    """
    faust_internals.set_current_event(event)


async def batches(
    stream: faust.StreamT[Any], size: int, wait_s: float
) -> AsyncIterator[list[faust.EventT]]:
    """Up to `size` events at a time, waiting at most `wait_s` for more.

    A batch is acknowledged when the consumer asks for the next one, never when it raised or
    was cancelled while holding it.
    """
    s = cast(faust.Stream[Any], stream)
    buffer: list[faust.EventT] = []
    full = asyncio.Event()
    consumed = asyncio.Event()
    consuming: asyncio.Future[None] | None = None

    async def add(value: Any) -> Any:
        # Runs in the stream's own task, which set `s.current_event` to this value's event.
        nonlocal consuming
        try:
            if consuming is not None:
                await consuming  # the consumer holds a batch: keep this event for the next
            event = s.current_event
            if event is None:
                raise RuntimeError("batch buffer found no current event")
            buffer.append(event)
            if len(buffer) >= size:
                full.set()
                consumed.clear()
                await s.wait(consumed)  # type: ignore[arg-type]
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            s.log.exception("Error adding to batch buffer: %r", exc)
            await s.crash(exc)
        return value

    topo = getattr(s.app, "topology", None)
    metrics = topo.metrics if topo is not None else None
    agent = current_agent()
    # The agent's own name, without the app id: "dedup", "loyalty", "referrals".
    label = str(agent.name).rsplit(".", 1)[-1] if agent is not None else "stream"
    enable_acks = s.enable_acks
    s.enable_acks = False  # acknowledged here, per batch
    s.add_processor(add)
    faust_internals.keep_queue_on_resume(s.app, s.channel)
    faust_internals.enable_passive(s, cast(faust.ChannelT, aiter(s.channel)))
    try:
        while not s.should_stop:
            await s.wait_for_stopped(full, timeout=wait_s)  # type: ignore[arg-type]
            if not buffer:
                continue
            consuming = asyncio.get_running_loop().create_future()
            batch = list(buffer)
            buffer.clear()
            ticket = None
            consumer = consumer_of(s.app)
            if consumer is not None:
                try:
                    batch, dropped, ticket = await consumer.admit(batch)
                except HoleError as exc:
                    exit_for_restart("%s", exc, reason="hole")
                for event in dropped:  # released, not handled: commits come from tickets
                    await s.ack(event)
            if batch:
                done = metrics.batch(label) if metrics is not None else None
                yield batch
                if done is not None:
                    done(len(batch))
                # Resumed: the consumer asked for the next batch, so this one was handled.
                if consumer is not None and ticket is not None:
                    consumer.handled(ticket)
                for event in batch:
                    await s.ack(event)
            fut, consuming = consuming, None
            if not fut.done():
                fut.set_result(None)
            full.clear()
            consumed.set()
    finally:
        if consuming is not None and not consuming.done():
            consuming.set_result(None)  # release the stream's task; its events stay unacked
        s.enable_acks = enable_acks
        faust_internals.remove_processor(s, add)
