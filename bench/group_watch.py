"""When a consumer group has settled: every expected member in, every input partition assigned.

The scale part starts N workers together; this thread asks the broker (AdminClient
`describe_consumer_groups`) every 100 ms for the group's state, members and assignment, and
notes when the first member appeared and when the group last became Stable with N members
that hold all partitions of the input topic. The rebalance time is the difference: what the
group spent rebalancing as the members joined (process start-up before the first join excluded).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any


class GroupWatch(threading.Thread):
    def __init__(
        self,
        bootstrap: str,
        group: str,
        topic: str,
        partitions: int,
        members: int,
        on_settled: Callable[[], None] | None = None,
    ):
        super().__init__(daemon=True, name=f"group-watch-{group}")
        self.on_settled = on_settled  # called (in this thread) each time the group settles
        from confluent_kafka.admin import AdminClient

        self.admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
        self.group, self.topic, self.partitions, self.members = group, topic, partitions, members
        self.first_member: float | None = None  # monotonic: the first member seen in the group
        self.settled: float | None = None  # monotonic: last became Stable with all assigned
        self.settles = 0  # how often it became so (a later rebalance moves `settled`)
        self.states: list[tuple[float, str, int]] = []  # (t, state, members) at each change
        self._halt = threading.Event()

    def _look(self) -> tuple[str, int, bool]:
        desc = self.admin.describe_consumer_groups([self.group])[self.group].result(5)
        state = str(getattr(desc.state, "name", desc.state))
        assigned: set[int] = set()
        for m in desc.members:
            tps = getattr(m.assignment, "topic_partitions", None) or []
            assigned.update(tp.partition for tp in tps if tp.topic == self.topic)
        return state, len(desc.members), assigned >= set(range(self.partitions))

    def run(self) -> None:
        ok_before = False
        while not self._halt.is_set():
            now = time.monotonic()
            try:
                state, n, covered = self._look()
            except Exception:  # the group does not exist yet, or the broker is busy
                state, n, covered = "UNKNOWN", 0, False
            if not self.states or self.states[-1][1:] != (state, n):
                self.states.append((now, state, n))
            if n and self.first_member is None:
                self.first_member = now
            ok = state == "STABLE" and n == self.members and covered
            if ok and not ok_before:
                self.settled = now
                self.settles += 1
                if self.on_settled is not None:
                    self.on_settled()
            ok_before = ok
            self._halt.wait(0.1)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    def result(self, t0: float) -> dict[str, Any]:
        """Seconds relative to `t0` (the launch)."""

        def rel(t: float | None) -> float | None:
            return None if t is None else round(t - t0, 2)

        out: dict[str, Any] = {
            "first_member_s": rel(self.first_member),
            "settled_s": rel(self.settled),
            "rebalance_s": (
                round(self.settled - self.first_member, 2)
                if self.settled is not None and self.first_member is not None
                else None
            ),
            "settles": self.settles,
            "states": [(rel(t), s, n) for t, s, n in self.states],
        }
        return out

    def __enter__(self) -> GroupWatch:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.stop()
