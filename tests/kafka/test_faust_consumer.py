"""The worker's Faust consumer hands each fetch a snapshot of the active partitions (unit)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from streams.app import build_app
from streams.kafka.faust_consumer import Consumer
from streams.settings import Settings


@pytest.fixture
def fetches(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    calls: list[Any] = []

    async def fake_getmany(self: Any, active_partitions: Any, timeout: float) -> dict[Any, Any]:
        calls.append(active_partitions)
        if active_partitions is not None:
            active_partitions.clear()  # what Faust's pause_partitions did to the shared set
        return {TP("t", 0): []}

    monkeypatch.setattr(faust_aiokafka.Consumer, "_getmany", fake_getmany)
    return calls


def test_a_fetch_gets_a_copy_of_the_active_set(fetches: list[Any]) -> None:
    consumer = object.__new__(Consumer)  # _getmany needs no state of its own
    active = {TP("in", 0), TP("in", 1)}
    asyncio.run(consumer._getmany(active, 1.0))
    assert fetches == [set()]  # the copy was emptied by the "fetch" ...
    assert active == {TP("in", 0), TP("in", 1)}  # ... the caller's set was not shared


def test_nothing_active_fetches_nothing(fetches: list[Any]) -> None:
    # aiokafka reads an empty partition set as "every partition".
    consumer = object.__new__(Consumer)
    assert asyncio.run(consumer._getmany(set(), 1.0)) == {}
    assert fetches == []
    asyncio.run(consumer._getmany(None, 1.0))  # client-only apps: every assigned partition
    assert fetches == [None]


def test_the_worker_app_uses_it(tmp_path: Any) -> None:
    app = build_app(Settings.from_env({}, store="memory://", data_dir=str(tmp_path)))
    assert app.transport.Consumer is Consumer
