"""Dedup agent: counts each customer id once and fans its deltas out, re-keyed by dimension.

Consumes the input topic (keyed by customer id) and its own re-key topic (records whose Kafka key
was not the customer id are forwarded there once, keyed by it, so one id always lands in one
partition of the dedup table).

The table stores where an id was first counted (source, offset). Re-processing that same record
after a crash makes the same decision and re-sends the same delta entries with the same origin,
which the aggregators skip; any other record of the id is a duplicate and is dropped.

Records are taken in batches (STREAMS_BATCH_SIZE, STREAMS_BATCH_WAIT_MS): the delta entries of a
batch travel as one message per destination partition instead of one message per key, and the
batch's records are acknowledged only once all of it was sent (streams.agents.batching). A batch
that fails exits the worker to be restarted, so nothing after it is committed.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import faust

from streams.agents import INPUT, INPUT_REKEYED, Topology, exit_for_restart
from streams.agents.batching import batches, use_event
from streams.agents.skipped import Skipped
from streams.domain.deltas import from_millis, plan, to_millis
from streams.domain.state import pack_delta, pack_mark, pack_ms, stream_time_key, unpack_ms
from streams.kafka.routing import DeltaBatch
from streams.models.serializers.projection import WORKER_FIELDS

log = logging.getLogger(__name__)


def register(topo: Topology) -> Any:
    app, codec, seen, settings = topo.app, topo.codec, topo.seen, topo.settings
    rekeyed_name = topo.input_rekeyed.get_topic_name()
    loyalty_name = topo.loyalty_deltas.get_topic_name()
    referral_name = topo.referral_deltas.get_topic_name()
    deletions_name = topo.deletions_out.get_topic_name()
    sender = seen.attach_sender(topo.producer)  # the table's writes are this agent's records
    decode = codec.projected_decoder("CustomerDeleted", WORKER_FIELDS)  # only what plan() reads
    retention = timedelta(days=settings.day_retention_days)
    channel = app.topic(
        topo.input.get_topic_name(),
        rekeyed_name,
        key_serializer="raw",
        value_serializer="raw",
    )
    loyalty = DeltaBatch(settings.topic_partitions)
    referral = DeltaBatch(settings.topic_partitions)

    # Counted, logged and kept on the dead-letter topic; raises on when the registry is down.
    skip = Skipped.register(topo, sender)

    # Per dedup partition, the newest deletion time handled (ms): the day window's clock. Kept in
    # the dedup table, so a replay after a crash starts from it again; read once per batch.
    stream_ms: dict[int, int | None] = {}
    last_event: dict[int, faust.EventT] = {}

    def stream_time(partition: int) -> int | None:
        if partition not in stream_ms:
            stream_ms[partition] = unpack_ms(seen.get(stream_time_key(partition)))
        return stream_ms[partition]

    async def process(event: faust.EventT) -> None:
        msg = event.message
        from_rekey = msg.topic == rekeyed_name
        st = stream_time(msg.partition)
        try:
            datum = decode(event.value)
            p = plan(
                datum,
                datetime.fromtimestamp(msg.timestamp, UTC),
                None if st is None else from_millis(st),
                retention,
            )
        except Exception as exc:  # undecodable or no customer id: nothing to count
            skip(msg, exc)
            return
        cid = p.customer_id.encode()
        if not from_rekey and msg.key != cid:
            sender.send(rekeyed_name, cid, event.value)  # murmur2(cid): cid's dedup partition
            return
        t_ms = to_millis(p.t)
        if st is None or t_ms > st:
            stream_ms[msg.partition] = t_ms
            last_event[msg.partition] = event
        source = msg.partition * 2 + (INPUT_REKEYED if from_rekey else INPUT)
        offset = msg.offset
        mark = pack_mark(source, offset)
        first = seen.get(cid)
        if first is not None and first != mark:
            topo.counts["duplicates_dropped"] += 1
            return  # a duplicate delivery of a customer already counted
        # Packed before the id is marked as counted: a value out of range skips the record.
        try:
            entries = [
                (batch, key, pack_delta(key, counters, t_ms, source, offset))
                for batch, deltas in ((loyalty, p.loyalty), (referral, p.referral))
                for key, counters in ((f"{d}:{k}".encode(), c) for d, k, c in deltas)
            ]
            fact = codec.encode("CustomerDeletion", p.fact, topic=deletions_name)
        except Exception as exc:
            skip(msg, exc)
            return
        # New id, or a re-run of the record that counted it (re-written: repairs a changelog
        # write lost in a crash).
        seen[cid] = mark
        if first is None:  # not a re-run of the record that counted it
            topo.counts["customers_counted"] += 1
        if p.late:
            topo.counts["late_deletions"] += 1
        for batch, key, entry in entries:
            batch.add(key, entry)
        sender.send(deletions_name, cid, fact)

    async def handle(events: list[faust.EventT]) -> None:
        loyalty.clear()
        referral.clear()
        stream_ms.clear()
        last_event.clear()
        for event in events:
            use_event(event)
            await process(event)
        for partition, event in last_event.items():  # the table writes to the event's partition
            use_event(event)
            seen[stream_time_key(partition)] = pack_ms(stream_ms[partition] or 0)
        # The dedup table's writes must be durable before the deltas they guard: otherwise a
        # crash could leave deltas applied but the id unknown, and another record of the same
        # id (the re-key topic is another source) would be counted again.
        await sender.delivered()
        if not len(loyalty) and not len(referral):
            return
        for partition, value in loyalty.messages():
            sender.send(loyalty_name, None, value, partition)
        for partition, value in referral.messages():
            sender.send(referral_name, None, value, partition)
        await sender.delivered()  # deltas acknowledged before the batch is

    @app.agent(channel, name=f"{settings.app_id}.dedup")
    async def dedup(stream: faust.StreamT[Any]) -> None:
        async for events in batches(stream, settings.batch_size, settings.batch_wait_ms / 1000):
            try:
                await handle(events)
            except Exception:
                exit_for_restart("dedup could not handle a batch", exc_info=True)

    return dedup
