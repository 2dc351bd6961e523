"""The worker's Faust consumer: where every reach into faust-streaming's consumer internals lives.

1. **Fetch snapshot.** Records produced while a fresh worker recovered its tables were lost
   (docs/BENCHMARKS.md, finding 3). At the end of recovery Faust pauses the changelog partitions
   it was reading: `Consumer.pause_partitions` empties *in place* the very set that
   `_wait_next_records` has just handed to a fetch running in the consumer thread. aiokafka's
   `Fetcher.fetched_records(partitions)` takes an empty set for "every partition", so it
   returned records prefetched for paused input partitions and advanced their positions; Faust
   dropped them. Each fetch now gets a snapshot, and nothing active means no fetch.
2. **Commits from the agents, not from Faust's acks.** Faust commits the contiguous run of
   acknowledged offsets (`_acked`, `_gap`, `_new_offset`), and more is acknowledged than the
   agents handled (docs/RELIABILITY.md, "Root causes"). Here `ack` only releases the message,
   and the offset committed for a partition is the one `streams.kafka.offsets.OffsetGuard` says
   the agents handled contiguously from the partition's committed start.
3. **Admission.** `admit` checks a batch of events against the guard before an agent handles
   it: records fetched before the latest rebalance are dropped (Faust checks the generation
   only as an event enters the stream, not as it leaves a batch buffer that lived through the
   rebalance; a partition assigned again restarts from its commit, so those come again),
   records before the next expected offset are dropped (handled already), a record after
   it means records were not delivered — unless reading the partition shows none there
   (compaction, transaction markers), the worker exits to be restarted before anything past
   the hole is handled or committed.
4. **Read offsets.** Faust's fetch loop drops records below a partition's `_read_offset`; a
   rebalance forgets them (`_forget_read_offsets`), see there.
5. **Rejoining.** `refresh_group` refreshes aiokafka's metadata and rejoins the group, for the
   watchdog that finds partitions no member holds (streams.agents.watchdog).

faust-streaming is bounded in pyproject.toml; tests/kafka/test_faust_consumer.py fails when a
method overridden here changes shape.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.protocol import ConsumerProtocol
from aiokafka.errors import KafkaError
from aiokafka.protocol.admin import DescribeGroupsRequest
from aiokafka.protocol.metadata import MetadataRequest
from faust.transport.consumer import RecordMap
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message
from mode.utils.futures import notify

from streams.kafka.group_offsets import GroupOffsets
from streams.kafka.offsets import OffsetGuard, Ticket, Verdict

log = logging.getLogger(__name__)

#: How long a batch may wait for the broker to say where an assignment starts.
START_LOOKUP_S = 30.0


class HoleError(RuntimeError):
    """Records of a partition were not delivered to its agent (see `Consumer.admit`)."""


class Consumer(faust_aiokafka.Consumer):
    guard: OffsetGuard[TP]
    _offsets: GroupOffsets | None = None
    holes: int = 0  # holes found (each exits the worker)
    duplicates: int = 0  # records dropped as handled already
    stale: int = 0  # records dropped as fetched under an earlier assignment

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = OffsetGuard[TP]()

    # --- 1. fetch snapshot ------------------------------------------------------------
    async def _getmany(self, active_partitions: set[TP] | None, timeout: float) -> RecordMap:
        if active_partitions is None:  # client-only apps: every assigned partition
            return await super()._getmany(None, timeout)
        snapshot = set(active_partitions)
        if not snapshot:
            return {}
        return await super()._getmany(snapshot, timeout)

    # --- 2. commits -------------------------------------------------------------------
    def ack(self, message: Message) -> bool:
        """Release the message (Faust waits for unacknowledged ones at shutdown); commits
        come from the guard, never from acknowledgements."""
        if message.acked:
            return False
        message.acked = True
        self._unacked_messages.discard(message)
        notify(self._waiting_for_ack)
        return True

    def _filter_tps_with_pending_acks(self, topics: Any = None) -> Iterator[TP]:
        return iter(
            [
                tp
                for tp in self.guard.committable()
                if topics is None or tp in topics or tp.topic in topics
            ]
        )

    def _new_offset(self, tp: TP) -> int | None:
        return self.guard.offset_to_commit(tp)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        self.guard.revoked(revoked)
        await super().on_partitions_revoked(revoked)
        self._forget_read_offsets(revoked)

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        # Eager rebalancing: every partition of the new assignment starts again from its
        # committed offset (aiokafka resets the positions), so does the guard.
        inputs = [tp for tp in assigned if not self._is_changelog_tp(tp)]
        self.guard.assigned(inputs, generation_id)
        self._forget_read_offsets(inputs)
        await super().on_partitions_assigned(assigned, generation_id)

    def _forget_read_offsets(self, tps: Iterable[TP]) -> None:
        """Faust's fetch loop drops a record below the partition's last read offset. It notes
        that offset again for the record it was delivering when a revoke stopped the flow,
        after the revoke forgot it; the next assignment restarts from the commit, and its
        records up to there were dropped until recovery's seek reset the offset (a hole).
        Records read twice are the guard's to drop."""
        for tp in tps:
            self._read_offset.pop(tp, None)

    # --- 5. ownership and rejoining ----------------------------------------------------
    async def group_ownership(self, topics: Iterable[str]) -> Ownership:
        """Which partitions of `topics` the members of this worker's group hold, asked through
        this consumer's own aiokafka client (its connections and credentials): the members'
        assignments from the group's coordinator, the partitions from fresh metadata of these
        topics. Raises when the broker does not answer."""
        thread = self._thread
        consumer = thread._ensure_consumer()
        return await thread.call_thread(_ownership, consumer, self.app.conf.id, topics)

    async def refresh_group(self) -> None:
        """Refresh the cluster metadata now and rejoin the group.

        aiokafka compares the metadata with the assignment's only when the metadata is
        refreshed (`metadata_max_age_ms`: 5 minutes). A leader whose metadata lacked a topic
        when it assigned (Faust's assignor skips it as a "missing topic": a broker that was
        away, or still loading its metadata) left its partitions to nobody until then. The
        refresh makes the leader see the change and rejoin; the explicit rejoin makes the
        group assign again when this member is not the leader (whose own watchdog refreshes
        its metadata)."""
        thread = self._thread
        await thread.call_thread(_refresh_group, thread._ensure_consumer())

    # --- 3. admission -----------------------------------------------------------------
    def group_offsets(self) -> GroupOffsets:
        if self._offsets is None:
            # The worker's settings (streams.app.build_app): the same brokers and security as
            # the app's own clients.
            settings = self.app.topology.settings  # type: ignore[attr-defined]
            self._offsets = GroupOffsets(settings, self.app.conf.id)
        return self._offsets

    async def lookup_starts(self) -> None:
        needed = self.guard.needs_start()
        if not needed:
            return
        loop = asyncio.get_running_loop()
        offsets = self.group_offsets()
        parts = [(tp.topic, tp.partition) for tp in needed]  # type: ignore[attr-defined]
        deadline = loop.time() + START_LOOKUP_S
        while True:
            try:
                starts = await loop.run_in_executor(None, offsets.starts, parts)
                break
            except Exception as exc:  # e.g. the coordinator still loading its offsets
                if loop.time() >= deadline:
                    raise HoleError(f"cannot read where the assignment starts: {exc}") from exc
                await asyncio.sleep(1.0)
        for tp in needed:
            start = starts.get((tp.topic, tp.partition))  # type: ignore[attr-defined]
            if start is not None:
                self.guard.set_start(tp, start)
                log.info(
                    "%s[%d]: generation %s starts at offset %d",
                    tp.topic,
                    tp.partition,
                    self.guard.generation,
                    start,
                    extra={"topic": tp.topic, "partition": tp.partition, "offset": start},
                )

    async def admit(self, events: list[Any]) -> tuple[list[Any], list[Any], Ticket[TP]]:
        """Split a batch into the events to handle (in offset order per partition, from where
        the partition's records must continue) and those to drop; raises HoleError when a
        partition's next records were not delivered."""
        guard = self.guard
        ticket = Ticket[TP]()
        keep: list[Any] = []
        drop: list[Any] = []
        for event in events:
            msg = event.message
            tp = msg.tp
            generation = msg.generation_id
            verdict = guard.check(tp, msg.offset, generation)
            if verdict is Verdict.UNKNOWN_START:
                await self.lookup_starts()
                verdict = guard.check(tp, msg.offset, generation)
                if verdict is Verdict.UNKNOWN_START:
                    raise HoleError(f"{tp}: the broker gave no start offset")
            if verdict is Verdict.HOLE:
                await self._verify_gap(tp, msg.offset, generation)
                verdict = guard.check(tp, msg.offset, generation)
            if verdict is Verdict.ACCEPT:
                guard.accept(tp, msg.offset, ticket)
                keep.append(event)
            else:
                if verdict is Verdict.DUPLICATE:
                    self.duplicates += 1
                elif verdict is Verdict.STALE:
                    self.stale += 1
                drop.append(event)  # NOT_ASSIGNED: revoked meanwhile; Faust skips those too
        return keep, drop, ticket

    async def _verify_gap(self, tp: TP, offset: int, generation: int | None = None) -> None:
        """Records from the expected offset up to `offset` did not arrive. Read the partition
        there: no record in between is a real gap (skip it); records are a hole."""
        expected = self.guard.expected(tp)
        assert expected is not None
        part = (tp.topic, tp.partition)  # type: ignore[attr-defined]
        loop = asyncio.get_running_loop()
        offsets = self.group_offsets()
        try:  # a commit that landed after the start was looked up: handled, up to there
            committed = (await loop.run_in_executor(None, offsets.committed, [part]))[part]
        except Exception:
            committed = None
        if committed is not None and committed > expected:
            self.guard.skip_to(tp, min(committed, offset))
            if self.guard.check(tp, offset) is not Verdict.HOLE:
                return
            expected = min(committed, offset)
        try:
            first = await loop.run_in_executor(None, offsets.first_offset_from, part, expected)
        except Exception as exc:
            first = None
            log.warning("%s[%s]: could not read offset %d: %s", *part, expected, exc)
        if first is not None and first >= offset:
            log.info("%s[%s]: no records at offsets %d-%d", *part, expected, offset - 1)
            self.guard.skip_to(tp, offset)
            return
        self.holes += 1
        raise HoleError(
            f"{part[0]}[{part[1]}]: offsets {expected}-{offset - 1} were not delivered to the "
            f"agent (record {first} exists; generation {self.guard.generation}, committed "
            f"{committed}, the record's generation {generation}); nothing past {expected} "
            "handled or committed"
        )

    def handled(self, ticket: Ticket[TP]) -> None:
        self.guard.handled(ticket)

    async def on_stop(self) -> None:
        await super().on_stop()
        if self._offsets is not None:
            self._offsets.close()
            self._offsets = None


@dataclass(frozen=True)
class Ownership:
    """Which partitions of a group's topics its members hold, as the broker says."""

    #: The group's state: "Stable" once its assignment has settled.
    state: str
    #: Whether the asking consumer is one of the group's members.
    member: bool = False
    #: Topics the metadata does not list (not created yet, or deleted).
    missing: tuple[str, ...] = ()
    #: Partitions of the listed topics that no member of the group holds.
    unowned: tuple[tuple[str, int], ...] = ()

    def problems(self, group: str) -> list[str]:
        """What keeps the group from holding every partition (empty: nothing)."""
        if self.state != "Stable":
            return [f"group {group} is {self.state or 'unknown'}, not Stable"]
        if not self.member:
            return [f"this worker is not a member of group {group}"]
        return [f"{t} (missing)" for t in self.missing] + [f"{t}[{p}]" for t, p in self.unowned]


async def _ownership(consumer: Any, group: str, topics: Iterable[str]) -> Ownership:
    """In the consumer's thread (or any aiokafka consumer's loop): see
    `Consumer.group_ownership`."""
    client, coordinator = consumer._client, consumer._coordinator
    node = coordinator.coordinator_id
    if node is None:
        raise KafkaError(f"the coordinator of group {group} is not known")
    response = await client.send(node, DescribeGroupsRequest([group]))
    described = response.to_object()["groups"][0]
    if described["error_code"]:
        raise KafkaError(f"describing group {group}: error {described['error_code']}")
    if described["state"] != "Stable":
        return Ownership(state=described["state"])
    members = described["members"]
    held = {
        (tp.topic, tp.partition)
        for member in members
        for tp in ConsumerProtocol.ASSIGNMENT.decode(member["member_assignment"]).partitions()
    }
    wanted = sorted(set(topics))
    # These topics only (a shared cluster may hold thousands), never created by asking.
    cluster = ClusterMetadata()
    cluster.update_metadata(
        await client.send(node, MetadataRequest(wanted, allow_auto_topic_creation=False))
    )
    missing = tuple(t for t in wanted if not cluster.partitions_for_topic(t))
    unowned = tuple(
        (t, p)
        for t in wanted
        if t not in missing
        for p in sorted(cluster.partitions_for_topic(t) or ())
        if (t, p) not in held
    )
    return Ownership(
        state="Stable",
        member=any(m["member_id"] == coordinator.member_id for m in members),
        missing=missing,
        unowned=unowned,
    )


async def _refresh_group(consumer: Any) -> None:
    """In the consumer's thread: see `Consumer.refresh_group`."""
    await consumer._client.force_metadata_update()
    consumer._coordinator.request_rejoin()


def consumer_of(app: Any) -> Consumer | None:
    """The app's consumer when it is this module's and running (the worker's), else None
    (other apps, and Faust's agent test context, which starts no consumer)."""
    consumer = app.consumer
    return consumer if isinstance(consumer, Consumer) and consumer.started else None


def ends_behind(
    positions: Mapping[TP, tuple[int | None, float]], ends: Mapping[tuple[str, int], int]
) -> dict[TP, int]:
    """Per partition, how many records wait past the next expected offset."""
    out: dict[TP, int] = {}
    for tp, (expected, _) in positions.items():
        end = ends.get((tp.topic, tp.partition))  # type: ignore[attr-defined]
        if expected is not None and end is not None and end > expected:
            out[tp] = end - expected
    return out
