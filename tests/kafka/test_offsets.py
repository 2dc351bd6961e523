"""The offset guard: records handled strictly in order from the committed start; only the
contiguous handled prefix is committable (unit, no broker)."""

from __future__ import annotations

from streams.kafka.offsets import OffsetGuard, Ticket, Verdict

Part = tuple[str, int]
A: Part = ("in", 0)
B: Part = ("in", 1)


def started(**starts: int) -> OffsetGuard[Part]:
    guard = OffsetGuard[Part](clock=lambda: 0.0)
    guard.assigned([A, B])
    guard.set_start(A, starts.get("a", 0))
    guard.set_start(B, starts.get("b", 0))
    return guard


def test_unknown_start_until_set_and_revoked_partitions() -> None:
    guard = OffsetGuard[Part]()
    guard.assigned([A])
    assert guard.check(A, 0) is Verdict.UNKNOWN_START
    assert guard.needs_start() == [A]
    guard.set_start(A, 5)
    assert guard.needs_start() == []
    assert guard.check(A, 5) is Verdict.ACCEPT
    assert guard.check(B, 0) is Verdict.NOT_ASSIGNED
    guard.revoked([A])
    assert guard.check(A, 5) is Verdict.NOT_ASSIGNED


def test_in_order_duplicates_and_holes() -> None:
    guard = started(a=10)
    t = Ticket[Part]()
    assert guard.check(A, 9) is Verdict.DUPLICATE  # committed already
    guard.accept(A, 10, t)
    guard.accept(A, 11, t)
    assert guard.check(A, 11) is Verdict.DUPLICATE
    assert guard.check(A, 13) is Verdict.HOLE  # 12 never arrived
    assert guard.check(A, 12) is Verdict.ACCEPT


def test_only_the_handled_prefix_is_committable() -> None:
    guard = started(a=10, b=0)
    assert guard.committable() == {}  # nothing handled: nothing to commit
    t1, t2 = Ticket[Part](), Ticket[Part]()
    for off in (10, 11, 12):
        guard.accept(A, off, t1)
    guard.accept(A, 13, t2)
    guard.accept(B, 0, t2)
    assert guard.committable() == {}  # accepted is not handled
    guard.handled(t2)  # out of order: t1 is still being handled
    assert guard.committable() == {B: 1}
    guard.handled(t1)
    assert guard.offset_to_commit(A) == 13
    guard.handled(t2)  # now it adjoins the prefix
    assert guard.offset_to_commit(A) == 14


def test_a_batch_of_an_earlier_assignment_commits_nothing() -> None:
    guard = started(a=0)
    old = Ticket[Part]()
    guard.accept(A, 0, old)
    guard.assigned([A])  # rebalance: starts again from the committed offset
    guard.set_start(A, 0)
    guard.handled(old)
    assert guard.committable() == {}


def test_a_record_of_an_earlier_generation_is_stale() -> None:
    guard = OffsetGuard[Part]()
    guard.assigned([A], generation=3)
    guard.set_start(A, 0)
    assert guard.check(A, 0, generation=3) is Verdict.ACCEPT
    assert guard.check(A, 4, generation=2) is Verdict.STALE  # no hole: it comes again
    assert guard.check(B, 0, generation=2) is Verdict.NOT_ASSIGNED
    assert guard.check(A, 4) is Verdict.HOLE  # no generation known: offsets alone decide


def test_a_real_gap_is_skipped_once_what_came_before_is_handled() -> None:
    guard = started(a=0)
    t1, t2 = Ticket[Part](), Ticket[Part]()
    guard.accept(A, 0, t1)
    guard.skip_to(A, 5)  # offsets 1-4 hold no record (e.g. transaction markers)
    guard.accept(A, 5, t2)
    guard.handled(t1)
    assert guard.offset_to_commit(A) == 5
    guard.handled(t2)
    assert guard.offset_to_commit(A) == 6


def test_positions_and_idle_clock() -> None:
    now = [0.0]
    guard = OffsetGuard[Part](clock=lambda: now[0])
    guard.assigned([A])
    guard.set_start(A, 3)
    now[0] = 5.0
    guard.accept(A, 3, Ticket[Part]())
    assert guard.positions() == {A: (4, 5.0)}
    now[0] = 9.0
    guard.touch(A)
    assert guard.positions() == {A: (4, 9.0)}
