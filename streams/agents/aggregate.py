"""The re-keyed aggregator shared by the loyalty and referral agents.

Each delta message is applied to its key's value unless its (source, offset) was applied already
(see streams.domain.state); the key's new totals are then sent to the compacted output topic.
A skipped duplicate re-writes the value and re-emits the totals, which repairs a crash between
the table write and the output send. An empty message expires its key: the table entry is deleted
and a tombstone is sent to the compacted output topic (see streams.agents.expiry).
"""

from __future__ import annotations

from typing import Any

import faust

from streams.domain.state import KeyState, unpack_delta


def output_record(names: tuple[str, str, str], key: bytes, st: KeyState) -> dict[str, Any]:
    dim, _, k = key.decode().partition(":")
    return {
        "dimension": dim,
        "key": k,
        names[0]: st.c0,
        names[1]: st.c1,
        names[2]: st.c2,
        "updated_at": st.updated_ms,
    }


def register(
    app: faust.App,
    *,
    name: str,
    source: faust.TopicT,
    table: Any,
    out: faust.TopicT,
    codec: Any,
    schema: str,
    names: tuple[str, str, str],
    exact: bool = True,
) -> Any:
    out_name = out.get_topic_name()
    send = out.send
    encode = codec.encode

    @app.agent(source, name=name)
    async def aggregate(stream: faust.StreamT[Any]) -> None:
        async for event in stream.events():
            key = event.key
            if not event.value:
                if table.get(key) is not None:
                    del table[key]
                    await send(key=key, value=None)
                continue
            c0, c1, c2, t_ms, src, off = unpack_delta(event.value)
            st = KeyState.unpack(table.get(key))
            st.apply(c0, c1, c2, t_ms, src, off, exact)
            table[key] = st.pack()
            await send(key=key, value=encode(schema, output_record(names, key, st), topic=out_name))

    return aggregate
