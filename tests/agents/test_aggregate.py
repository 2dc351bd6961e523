"""The aggregation agents under Faust's `agent.test_context()` (no broker)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.app import build_app
from streams.domain.state import KeyState, pack_delta
from streams.settings import Settings


@pytest.fixture
def topo(tmp_path: Any) -> Any:
    s = Settings.from_env({}, store="memory://", app_id="unit", data_dir=str(tmp_path))
    app = build_app(s)
    app.finalize()
    app.conf.store = "memory://"
    return app.topology


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
