"""Dedup agent: counts each customer id once and fans its deltas out, re-keyed by dimension.

Consumes the input topic (keyed by customer id) and its own re-key topic (records whose Kafka key
was not the customer id are forwarded there once, keyed by it, so one id always lands in one
partition of the dedup table).

The table stores where an id was first counted (source, offset). Re-processing that same record
after a crash makes the same decision and re-sends the same delta entries with the same origin,
which the aggregators skip; any other record of the id is a duplicate and is dropped.

Records are taken in batches (STREAMS_BATCH_SIZE, STREAMS_BATCH_WAIT_MS): the delta entries of a
batch travel as one message per destination partition instead of one message per key, and the
batch's records are acknowledged only once all of it was sent.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import faust

from streams.agents import INPUT, INPUT_REKEYED, Topology, batches, use_event
from streams.domain.deltas import plan, to_millis
from streams.domain.routing import DeltaBatch
from streams.domain.state import pack_delta, pack_mark

log = logging.getLogger(__name__)


def register(topo: Topology) -> Any:
    app, codec, seen, settings = topo.app, topo.codec, topo.seen, topo.settings
    rekeyed_name = topo.input_rekeyed.get_topic_name()
    loyalty_send = topo.loyalty_deltas.send
    referral_send = topo.referral_deltas.send
    deletions_send = topo.deletions_out.send
    deletions_name = topo.deletions_out.get_topic_name()
    retention = timedelta(days=settings.day_retention_days)
    channel = app.topic(
        topo.input.get_topic_name(),
        rekeyed_name,
        key_serializer="raw",
        value_serializer="raw",
    )
    loyalty = DeltaBatch(settings.topic_partitions)
    referral = DeltaBatch(settings.topic_partitions)

    async def process(event: faust.EventT) -> None:
        msg = event.message
        from_rekey = msg.topic == rekeyed_name
        try:
            _name, datum = codec.decode(event.value)
            p = plan(
                datum, datetime.fromtimestamp(msg.timestamp, UTC), datetime.now(UTC), retention
            )
        except Exception as exc:  # undecodable or no customer id: nothing to count
            log.warning("skipping %s[%s]@%s: %s", msg.topic, msg.partition, msg.offset, exc)
            return
        cid = p.customer_id.encode()
        if not from_rekey and msg.key != cid:
            await topo.input_rekeyed.send(key=cid, value=event.value)
            return
        source = msg.partition * 2 + (INPUT_REKEYED if from_rekey else INPUT)
        offset = msg.offset
        mark = pack_mark(source, offset)
        first = seen.get(cid)
        if first is not None and first != mark:
            return  # a duplicate delivery of a customer already counted
        # New id, or a re-run of the record that counted it (re-written: repairs a changelog
        # write lost in a crash).
        seen[cid] = mark
        t_ms = to_millis(p.t)
        for dim, key, counters in p.loyalty:
            k = f"{dim}:{key}".encode()
            loyalty.add(k, pack_delta(k, counters, t_ms, source, offset))
        for dim, key, counters in p.referral:
            k = f"{dim}:{key}".encode()
            referral.add(k, pack_delta(k, counters, t_ms, source, offset))
        await deletions_send(
            key=cid, value=codec.encode("CustomerDeletion", p.fact, topic=deletions_name)
        )

    @app.agent(channel, name=f"{settings.app_id}.dedup")
    async def dedup(stream: faust.StreamT[Any]) -> None:
        async for events in batches(stream, settings.batch_size, settings.batch_wait_ms / 1000):
            loyalty.clear()
            referral.clear()
            for event in events:
                use_event(event)
                await process(event)
            for partition, value in loyalty.messages():
                await loyalty_send(key=None, value=value, partition=partition)
            for partition, value in referral.messages():
                await referral_send(key=None, value=value, partition=partition)

    return dedup
