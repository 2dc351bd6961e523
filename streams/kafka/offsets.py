"""Which records of a partition an agent may handle next, and which offset may be committed.

Faust's own bookkeeping (`Consumer._acked`, `_gap`, `_new_offset`) commits what was acknowledged,
and it is acknowledged more than the agents handled: messages Faust skips are acknowledged too, a
gap in the fetched offsets is filled as if acknowledged, and records dropped after a fetch leave a
hole the next records jump over (docs/RELIABILITY.md, "Root causes"). The aggregates keep, per
source partition, the highest offset applied, so a record handled *after* a later one of its
partition is skipped for good. The guard therefore holds the agents to one rule: each partition's
records are handled strictly in offset order, starting where the partition was committed, and
only the contiguous prefix reported handled is ever committed.

Pure bookkeeping, no I/O: `streams.kafka.faust_consumer` feeds it assignments and start offsets,
`streams.agents.batching` asks it about each record and reports handled ones.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)  # a partition: Faust's TP, or any hashable in tests


class Verdict(enum.Enum):
    ACCEPT = "accept"  # the next record of its partition
    DUPLICATE = "duplicate"  # before the next one: handled (or committed) already
    HOLE = "hole"  # after the next one: records before it were not delivered
    UNKNOWN_START = "unknown start"  # the partition's start offset is not known yet
    NOT_ASSIGNED = "not assigned"  # revoked meanwhile
    STALE = "stale"  # fetched under an earlier assignment: fetched again from the commit


@dataclass
class _Partition:
    epoch: int
    start: int | None = None  # where this assignment started (the committed offset)
    expected: int | None = None  # next offset to accept
    handled: int | None = None  # next offset after the contiguous handled prefix
    progress_at: float = 0.0  # when a record was last accepted (or the assignment began)
    skips: dict[int, int] = field(default_factory=dict)  # offset -> next offset holding a record


@dataclass(frozen=True)
class Ticket(Generic[K]):
    """The accepted records of one batch: per partition, (epoch, first, last offset)."""

    spans: dict[K, tuple[int, int, int]] = field(default_factory=dict)


class OffsetGuard(Generic[K]):
    """Per assigned partition: the next offset to accept and the committable offset."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._parts: dict[K, _Partition] = {}
        self._epoch = 0
        self._generation: int | None = None

    # --- assignment -------------------------------------------------------------------
    def assigned(self, tps: Iterable[K], generation: int | None = None) -> None:
        """A new assignment (of the group's `generation`): every partition starts again from
        its committed offset."""
        self._epoch += 1
        self._generation = generation
        now = self._clock()
        self._parts = {tp: _Partition(self._epoch, progress_at=now) for tp in tps}

    def revoked(self, tps: Iterable[K]) -> None:
        for tp in tps:
            self._parts.pop(tp, None)

    @property
    def generation(self) -> int | None:
        """The group generation of the current assignment."""
        return self._generation

    def needs_start(self) -> list[K]:
        return [tp for tp, p in self._parts.items() if p.start is None]

    def set_start(self, tp: K, offset: int) -> None:
        """Where the partition's records start for this assignment: the committed offset, or
        the first offset kept when the group has not committed it."""
        p = self._parts.get(tp)
        if p is not None and p.start is None:
            p.start = p.expected = p.handled = offset

    # --- records ------------------------------------------------------------------------
    def check(self, tp: K, offset: int, generation: int | None = None) -> Verdict:
        """The verdict on record `offset` of `tp`, fetched in the group's `generation`. A
        record of an earlier generation is stale even when its partition came back: it may
        have waited in a buffer through the rebalance, and what the partition's previous
        assignment handled after its last commit is delivered again from that commit."""
        p = self._parts.get(tp)
        if p is None:
            return Verdict.NOT_ASSIGNED
        if generation is not None and generation != self._generation:
            return Verdict.STALE
        if p.expected is None:
            return Verdict.UNKNOWN_START
        if offset == p.expected:
            return Verdict.ACCEPT
        return Verdict.DUPLICATE if offset < p.expected else Verdict.HOLE

    def expected(self, tp: K) -> int | None:
        p = self._parts.get(tp)
        return None if p is None else p.expected

    def skip_to(self, tp: K, offset: int) -> None:
        """The offsets before `offset` hold no record (checked by reading the partition):
        compaction, retention or transaction markers, not records lost on the way."""
        p = self._parts[tp]
        if p.expected is not None and offset > p.expected:
            if p.handled == p.expected:
                p.handled = offset
            else:  # records before the gap are still being handled: jump once they are
                p.skips[p.expected] = offset
            p.expected = offset

    def accept(self, tp: K, offset: int, ticket: Ticket[K]) -> None:
        p = self._parts[tp]
        if offset != p.expected:
            raise ValueError(f"{tp}: accepted offset {offset}, expected {p.expected}")
        p.expected = offset + 1
        p.progress_at = self._clock()
        span = ticket.spans.get(tp)
        ticket.spans[tp] = (p.epoch, offset if span is None else span[1], offset)

    def handled(self, ticket: Ticket[K]) -> None:
        """The batch of `ticket` was handled: extend the committable prefix. Spans of an
        earlier assignment, or not adjoining the prefix, commit nothing."""
        for tp, (epoch, first, last) in ticket.spans.items():
            p = self._parts.get(tp)
            if p is not None and p.epoch == epoch and p.handled == first:
                p.handled = last + 1
                while p.handled in p.skips:
                    p.handled = p.skips.pop(p.handled)

    # --- commits and health -----------------------------------------------------------
    def committable(self) -> dict[K, int]:
        """Partitions where records were handled since the assignment began: the offset to
        commit (the next record to handle)."""
        return {
            tp: p.handled
            for tp, p in self._parts.items()
            if p.handled is not None and p.start is not None and p.handled > p.start
        }

    def offset_to_commit(self, tp: K) -> int | None:
        p = self._parts.get(tp)
        if p is None or p.handled is None or p.start is None or p.handled <= p.start:
            return None
        return p.handled

    def positions(self) -> dict[K, tuple[int | None, float]]:
        """Per assigned partition: the next offset to accept, and when it last moved."""
        return {tp: (p.expected, p.progress_at) for tp, p in self._parts.items()}

    def touch(self, tp: K) -> None:
        """Restart the partition's idle clock (e.g. after a recovery attempt)."""
        p = self._parts.get(tp)
        if p is not None:
            p.progress_at = self._clock()
