"""The worker's Faust consumer: fetch snapshots, admission (unit), its internals' shapes, and
the group ownership check and rejoin on a real broker."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.client import AIOKafkaClient
from aiokafka.cluster import ClusterMetadata
from aiokafka.consumer.group_coordinator import GroupCoordinator
from faust.transport import consumer as faust_consumer_base
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from streams.app import build_app
from streams.kafka.admin import TopicSpec, ensure_topics
from streams.kafka.faust_consumer import (
    Consumer,
    HoleError,
    Ownership,
    _ownership,
    _refresh_group,
)
from streams.kafka.offsets import OffsetGuard
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


# --- the faust-streaming internals streams.kafka.faust_consumer relies on ---

BASE = faust_aiokafka.Consumer


@pytest.mark.kafka
def test_group_ownership_and_refresh_on_a_real_group(kafka: str, unique: str) -> None:
    """What the ownership watchdog asks, through a plain aiokafka group member: partitions no
    member holds, topics missing; a refresh makes the member rejoin; a member the group dropped
    (its session expired while it went on) is told so."""
    held, free, missing = (f"t{unique}.{name}" for name in ("held", "free", "missing"))
    ensure_topics(
        Settings.from_env({}, bootstrap_servers=kafka), [TopicSpec(held, 3), TopicSpec(free, 2)]
    )
    group = f"g{unique}"

    async def run() -> tuple[Ownership, Ownership, Ownership, Ownership, int, int]:
        member = AIOKafkaConsumer(
            held,
            bootstrap_servers=kafka,
            group_id=group,
            session_timeout_ms=6000,
            enable_auto_commit=False,  # a commit would keep its session alive, as a heartbeat
        )
        await member.start()
        try:
            while len(member.assignment()) < 3:  # joined and assigned
                await member.getmany(timeout_ms=100)
            one = await _ownership(member, group, [held, free, missing])
            generation = member._coordinator.generation
            await _refresh_group(member)
            while member._coordinator.generation == generation:
                await member.getmany(timeout_ms=100)
            both = AIOKafkaConsumer(held, free, bootstrap_servers=kafka, group_id=group)
            await both.start()
            try:
                while len(member.assignment()) + len(both.assignment()) < 5:
                    await asyncio.gather(
                        member.getmany(timeout_ms=100), both.getmany(timeout_ms=100)
                    )
                two = await _ownership(member, group, [held, free])
            finally:
                await both.stop()
            while len(member.assignment()) < 3:  # the other member left: all of `held` again
                await member.getmany(timeout_ms=100)
            two_generation = member._coordinator.generation
            # The group drops a member whose session expired; the member does not know yet.
            coordinator = member._coordinator
            await coordinator._stop_heartbeat_task()
            dropped = await _ownership(member, group, [held])
            while dropped.state == "Stable":
                await asyncio.sleep(0.5)
                dropped = await _ownership(member, group, [held])
            await _refresh_group(member)
            again = await _ownership(member, group, [held])
            while again != Ownership("Stable", True):
                await member.getmany(timeout_ms=100)
                again = await _ownership(member, group, [held])
            return one, two, dropped, again, generation, two_generation
        finally:
            await member.stop()

    one, two, dropped, again, before, after = asyncio.run(asyncio.wait_for(run(), 120))
    assert one == Ownership("Stable", True, missing=(missing,), unowned=((free, 0), (free, 1)))
    assert one.problems(group) == [f"{missing} (missing)", f"{free}[0]", f"{free}[1]"]
    assert two == Ownership("Stable", True)
    assert two.problems(group) == []
    assert after > before  # the refresh rejoined the group
    assert dropped.state == "Empty"
    assert dropped.problems(group) == [f"group {group} is Empty, not Stable"]
    assert again == Ownership("Stable", True)  # rejoined after the refresh


def _params(fn: Any) -> list[str]:
    return list(inspect.signature(fn).parameters)


def test_the_overridden_internals_keep_their_shape() -> None:
    # A faust-streaming release that renames or reshapes these must fail here, not in production.
    assert _params(BASE._getmany) == ["self", "active_partitions", "timeout"]
    assert _params(BASE._new_offset) == ["self", "tp"]
    assert _params(BASE._filter_tps_with_pending_acks) == ["self", "topics"]
    assert _params(BASE.ack) == ["self", "message"]
    assert _params(BASE.on_partitions_assigned) == ["self", "assigned", "generation_id"]
    assert _params(BASE.on_partitions_revoked) == ["self", "revoked"]
    # Commits are computed from exactly these two hooks ...
    assert "self._new_offset(tp)" in inspect.getsource(BASE._filter_committable_offsets)
    assert "_filter_tps_with_pending_acks" in inspect.getsource(BASE.force_commit)
    # ... the fetch loop drops records below the read offset, which it notes after the
    # delivery a revoke stopped; the revoke forgets it first ...
    drain = inspect.getsource(faust_consumer_base.Consumer._drain_messages)
    assert "offset >= r_offset" in drain and "set_read_offset(tp, offset)" in drain
    revoke = inspect.getsource(faust_consumer_base.Consumer.on_partitions_revoked)
    assert revoke.index("_read_offset.pop") < revoke.index("_on_partitions_revoked")
    # ... admission knows a record's generation as Faust stamps it at the fetch ...
    assert "generation_id=self.app.consumer_generation_id" in inspect.getsource(BASE._to_message)
    assert "app.consumer_generation_id = generation" in inspect.getsource(
        faust_aiokafka.ConsumerRebalanceListener.on_partitions_assigned
    )
    # ... and `ack` keeps what shutdown waits on.
    init = inspect.getsource(faust_consumer_base.Consumer.__init__)
    assert "_unacked_messages" in init and "_waiting_for_ack" in init
    # The ownership check and the rejoin reach the aiokafka consumer in its thread.
    thread = faust_aiokafka.AIOKafkaConsumerThread
    assert _params(thread._ensure_consumer) == ["self"]
    assert _params(thread.call_thread)[:2] == ["self", "fun"]
    assert _params(AIOKafkaClient.force_metadata_update) == ["self"]
    assert _params(AIOKafkaClient.send)[:3] == ["self", "node_id", "request"]
    assert _params(ClusterMetadata.update_metadata) == ["self", "metadata"]
    assert _params(GroupCoordinator.request_rejoin) == ["self"]
    assert "self.coordinator_id" in inspect.getsource(GroupCoordinator.coordinator_dead)


class _Msg:
    def __init__(self, partition: int, offset: int, generation: int | None) -> None:
        self.tp = TP("in", partition)
        self.offset = offset
        self.generation_id = generation


class _Event:
    def __init__(self, partition: int, offset: int, generation: int | None = 1) -> None:
        self.message = _Msg(partition, offset, generation)


class _Offsets:
    """Stands in for the broker look-ups (unit test): starts and the first record kept."""

    def __init__(self, starts: dict[tuple[str, int], int], first: int | None) -> None:
        self._starts, self._first = starts, first

    def starts(self, parts: Any) -> dict[tuple[str, int], int]:
        return {p: self._starts[p] for p in parts}

    def first_offset_from(self, part: Any, offset: int) -> int | None:
        return self._first

    def committed(self, parts: Any) -> dict[tuple[str, int], int | None]:
        return dict.fromkeys(parts, self.committed_at)

    committed_at: int | None = None


def _consumer(starts: dict[tuple[str, int], int], first: int | None = None) -> Consumer:
    consumer = object.__new__(Consumer)
    consumer.guard = OffsetGuard()
    consumer.guard.assigned([TP("in", 0), TP("in", 1)], generation=1)
    consumer._offsets = _Offsets(starts, first)  # type: ignore[assignment]
    consumer._unacked_messages = set()  # type: ignore[assignment]
    consumer._waiting_for_ack = None
    return consumer


def test_admit_drops_what_was_committed_and_keeps_order() -> None:
    consumer = _consumer({("in", 0): 2, ("in", 1): 0})
    events = [_Event(0, 1), _Event(0, 2), _Event(1, 0), _Event(0, 3), _Event(0, 3)]
    keep, drop, ticket = asyncio.run(consumer.admit(events))
    assert [(e.message.tp.partition, e.message.offset) for e in keep] == [(0, 2), (1, 0), (0, 3)]
    assert [(e.message.tp.partition, e.message.offset) for e in drop] == [(0, 1), (0, 3)]
    assert consumer.guard.committable() == {}
    consumer.handled(ticket)
    assert consumer.guard.committable() == {TP("in", 0): 4, TP("in", 1): 1}


def test_a_rebalance_forgets_faust_s_read_offsets(monkeypatch: pytest.MonkeyPatch) -> None:
    async def revoke(self: Any, revoked: Any) -> None:
        self._read_offset[TP("in", 0)] = 57  # the fetch loop, stopped mid-record by the revoke

    async def assign(self: Any, assigned: Any, generation_id: int) -> None:
        pass

    monkeypatch.setattr(BASE, "on_partitions_revoked", revoke)
    monkeypatch.setattr(BASE, "on_partitions_assigned", assign)
    consumer = _consumer({})
    consumer._read_offset = {TP("in", 1): 12}  # type: ignore[assignment]
    consumer._is_changelog_tp = lambda tp: tp.topic == "changelog"  # type: ignore[method-assign]
    asyncio.run(consumer.on_partitions_revoked({TP("in", 0)}))
    assert consumer._read_offset == {TP("in", 1): 12}
    consumer._read_offset[TP("changelog", 0)] = 5
    asyncio.run(consumer.on_partitions_assigned({TP("in", 1), TP("changelog", 0)}, 4))
    assert consumer._read_offset == {TP("changelog", 0): 5}  # recovery reads changelogs itself
    assert consumer.guard.generation == 4 and consumer.guard.needs_start() == [TP("in", 1)]


def test_admit_drops_what_was_fetched_before_the_rebalance() -> None:
    # A batch buffered through a rebalance that gave partition 0 back: its assignment starts
    # again from the commit (5), and records 5-7 handled before the rebalance but not yet
    # committed are delivered again. Record 8 of the earlier generation is no hole.
    consumer = _consumer({("in", 0): 5, ("in", 1): 0})
    consumer.guard.assigned([TP("in", 0), TP("in", 1)], generation=2)
    old = [_Event(0, 8, generation=1), _Event(0, 9, generation=1)]
    keep, drop, _ = asyncio.run(consumer.admit([*old, _Event(0, 5, generation=2)]))
    assert [e.message.offset for e in keep] == [5]
    assert drop == old and consumer.stale == 2


def test_a_hole_stops_the_batch_before_anything_past_it() -> None:
    consumer = _consumer({("in", 0): 0, ("in", 1): 0}, first=1)  # record 1 exists
    with pytest.raises(HoleError, match=r"in\[0\]: offsets 1-2 were not delivered"):
        asyncio.run(consumer.admit([_Event(0, 0), _Event(0, 3)]))
    assert consumer.guard.committable() == {}


def test_a_gap_without_records_is_skipped() -> None:
    consumer = _consumer({("in", 0): 0, ("in", 1): 0}, first=3)  # nothing at 1-2
    keep, _, ticket = asyncio.run(consumer.admit([_Event(0, 0), _Event(0, 3)]))
    assert len(keep) == 2
    consumer.handled(ticket)
    assert consumer.guard.committable() == {TP("in", 0): 4}


def test_a_commit_that_landed_after_the_start_lookup_is_no_hole() -> None:
    consumer = _consumer({("in", 0): 0, ("in", 1): 0}, first=0)
    consumer._offsets.committed_at = 5  # type: ignore[union-attr]
    keep, _, _ = asyncio.run(consumer.admit([_Event(0, 5)]))
    assert [e.message.offset for e in keep] == [5]


# --- root cause 1 (docs/RELIABILITY.md): Faust's bookkeeping commits what was never handled ---


def test_faust_commits_offsets_it_skipped_during_a_rebalance() -> None:
    # faust/streams.py acknowledges every message it skips -- from an older generation, or while
    # flow control is off during a rebalance -- even with acks disabled. Skipped after
    # on_partitions_revoked cleared the bookkeeping, they land in the new generation's `_acked`;
    # once the agent acknowledges the records before them, Faust's `_new_offset` commits past
    # records the new generation has not handled yet. A SIGKILL then loses them for good.
    from collections import defaultdict
    from types import SimpleNamespace

    from intervaltree import IntervalTree

    tp = TP("in", 0)
    faust_state = SimpleNamespace(
        _acked=defaultdict(list),
        _acked_index=defaultdict(set),
        _gap=defaultdict(IntervalTree),
        _committed_offset=defaultdict(lambda: None),
        _unacked_messages=set(),
        _waiting_for_ack=None,
        _n_acked=0,
        app=SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda topic: True)),
    )
    faust_state._committed_offset[tp] = 40

    class Msg:  # hashable, as Faust's messages are
        def __init__(self, offset: int) -> None:
            self.acked, self.tp, self.offset, self.topic = False, tp, offset, "in"

    def message(offset: int) -> Any:
        return Msg(offset)

    base = faust_consumer_base.Consumer
    for offset in range(50, 61):  # skipped while the rebalance ran: never handled
        base.ack(faust_state, message(offset))  # type: ignore[arg-type]
    for offset in range(40, 50):  # the new generation's first batch, handled
        base.ack(faust_state, message(offset))  # type: ignore[arg-type]
    assert base._new_offset(faust_state, tp) == 61  # type: ignore[arg-type]  # past 50-60

    # The worker's consumer commits only what its agents reported handled.
    ours = _consumer({("in", 0): 40, ("in", 1): 0})
    _, _, ticket = asyncio.run(ours.admit([_Event(0, o) for o in range(40, 50)]))
    for offset in range(50, 61):
        ours.ack(message(offset))
    ours.handled(ticket)
    assert ours._new_offset(tp) == 50


def test_static_membership_id_is_per_worker_and_address() -> None:
    from streams.app import group_instance_id

    base = Settings.from_env({}, app_id="app", web_host="127.0.0.1", web_port=6066)
    assert group_instance_id(base) is None  # dynamic membership by default
    one = group_instance_id(base.with_(worker_id="w1"))
    assert one is not None and one.startswith("app-w1-")
    assert group_instance_id(base.with_(worker_id="w1")) == one  # stable across restarts
    # Another address is another member: Faust's assignor refuses a cached assignment whose URL
    # is not its own (its consumer would stop for good).
    assert group_instance_id(base.with_(worker_id="w1", web_port=6067)) != one
    assert group_instance_id(base.with_(worker_id="w2")) != one
