"""The re-keyed aggregator shared by the loyalty and referral agents.

A delta message holds entries for keys of the partition it arrives on (see
streams.domain.state). Each entry is applied to its key's value unless its (source, offset) was
applied already. Messages are taken in batches; per batch and partition, each key touched is
written to the table once and its new totals are sent to the compacted output topic once.
A key whose entries were all skipped as duplicates is re-written and re-emitted too, which
repairs a crash between the table write and the output send. An empty message expires its key:
the table entry is deleted and a tombstone is sent to the compacted output topic (see
streams.agents.expiry). A batch that fails exits the worker to be restarted.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import faust

from streams.agents import Topology, exit_for_restart
from streams.agents.batching import batches, use_event
from streams.domain.state import KeyState, unpack_deltas

log = logging.getLogger(__name__)


def output_record(names: tuple[str, str, str], key: bytes, st: KeyState) -> dict[str, Any]:
    dim, _, k = key.decode().partition(":")
    return {
        "dimension": dim,
        "key": k,
        **st.named(names),
        "updated_at": st.updated_ms,
    }


def register(
    topo: Topology,
    kind: str,
    *,
    source: faust.TopicT,
    table: Any,
    out: faust.TopicT,
    schema: str,
    names: tuple[str, str, str],
) -> Any:
    """The agent `<app id>.<kind>`: deltas from `source` into `table`, totals to `out`."""
    app, producer, codec, settings = topo.app, topo.producer, topo.codec, topo.settings
    name = f"{settings.app_id}.{kind}"
    exact = settings.processing_guarantee == "exactly_once"
    batch_size, batch_wait_s = settings.batch_size, settings.batch_wait_ms / 1000
    out_name = out.get_topic_name()
    encode = codec.encode
    sender = table.attach_sender(producer)  # the table's writes are this agent's records

    def flush(touched: dict[bytes, KeyState]) -> None:
        for key, st in touched.items():
            table[key] = st.pack()
            value = encode(schema, output_record(names, key, st), topic=out_name)
            sender.send(out_name, key, value)
        touched.clear()

    async def handle(events: list[faust.EventT]) -> None:
        # Per partition: the pending key states and the last event seen (table writes go to the
        # partition of the current event).
        pending: dict[int, tuple[faust.EventT, dict[bytes, KeyState]]] = {}
        for event in events:
            msg = event.message
            touched = pending[msg.partition][1] if msg.partition in pending else {}
            pending[msg.partition] = (event, touched)
            use_event(event)
            if not event.value:
                key = cast(bytes, event.key)
                touched.pop(key, None)
                if table.get(key) is not None:
                    del table[key]
                # Always: a crash after the delete but before the tombstone must not leave
                # the old totals on the compacted topic for good.
                sender.send(out_name, key, None)
                continue
            try:
                entries = unpack_deltas(event.value)
            except ValueError as exc:  # not this version's format: nothing to apply
                log.error("skipping %s[%s]@%s: %s", msg.topic, msg.partition, msg.offset, exc)
                continue
            for key, counts, t_ms, src, off in entries:
                st = touched.get(key)
                if st is None:
                    st = touched[key] = KeyState.unpack(table.get(key))
                st.apply(counts, t_ms, src, off, exact)
        for event, touched in pending.values():
            use_event(event)
            flush(touched)
        await sender.delivered()  # table writes and outputs acknowledged before the batch is

    @app.agent(source, name=name)
    async def aggregate(stream: faust.StreamT[Any]) -> None:
        async for events in batches(stream, batch_size, batch_wait_s):
            try:
                await handle(events)
            except Exception:
                exit_for_restart("%s could not handle a batch", name, exc_info=True)

    return aggregate
