"""Stall watchdog: exit when the worker consumes nothing while records wait for it.

After a broker outage, Faust's aiokafka consumer can stay out of its group for good, fetching
nothing (faust-streaming issues #175 and #523). Counting stays exact through a crash (see
streams.agents.dedup), so the safe cure is to exit and let the supervisor (compose, systemd,
Kubernetes, the demo, the tests) start the worker again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from streams.agents import EXIT_FOR_RESTART, Topology, exit_for_restart

log = logging.getLogger(__name__)

EXIT_CODE = EXIT_FOR_RESTART


def group_lag(bootstrap: str, group: str, topics: list[str], timeout: float = 5.0) -> int | None:
    """Records of `topics` not yet committed by `group`; None when the broker does not answer
    within `timeout` (transient errors, such as a coordinator still loading, are retried)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": f"watchdog-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "log_level": 0,
        }
    )
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = max(0.5, deadline - time.monotonic())
            try:
                return _lag(consumer, topics, left)
            except Exception as exc:
                if time.monotonic() >= deadline:
                    log.debug("group lag unknown: %s", exc)
                    return None
                time.sleep(0.5)
    finally:
        consumer.close()


def _lag(consumer: Consumer, topics: list[str], timeout: float) -> int:
    meta = consumer.list_topics(timeout=timeout)
    tps = [
        TopicPartition(t, p) for t in topics if t in meta.topics for p in meta.topics[t].partitions
    ]
    lag = 0
    for tp in consumer.committed(tps, timeout=timeout):
        if tp.error is not None:
            raise RuntimeError(str(tp.error))
        low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
        start = tp.offset if tp.offset >= 0 else low
        lag += max(0, high - start)
    return lag


def register(topo: Topology, topics: list[str]) -> Any:
    settings, app = topo.settings, topo.app
    if settings.stall_timeout_s <= 0:
        return None
    # A worker restarted after a crash legitimately consumes nothing until the group drops its
    # dead predecessor (the session timeout): never count that wait as a stall.
    session_s = float(app.conf.broker_session_timeout)
    timeout = max(settings.stall_timeout_s, session_s * 1.5)
    last = {"received": -1, "since": time.monotonic()}

    @app.timer(max(1.0, timeout / 4))
    async def watchdog() -> None:
        received = app.monitor.messages_received_total
        now = time.monotonic()
        if received != last["received"]:
            last.update(received=received, since=now)
            return
        if now - last["since"] < timeout:
            return
        lag = await asyncio.get_running_loop().run_in_executor(
            None, group_lag, settings.bootstrap_servers, settings.app_id, topics
        )
        if lag:
            exit_for_restart(
                "consumed nothing for %.0fs while %d records wait", now - last["since"], lag
            )
        last["since"] = now

    return watchdog
