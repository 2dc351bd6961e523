"""Delta messages: packing, per-partition grouping, and the partitioner they must agree with."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from streams.domain.state import pack_delta, unpack_deltas
from streams.kafka.routing import DeltaBatch, partition_of

keys = st.binary(min_size=1, max_size=40)
counters = st.tuples(*(st.integers(-(2**62), 2**62),) * 3)
offsets = st.integers(0, 2**62)


@given(st.lists(st.tuples(keys, counters, offsets, st.integers(0, 2**30), offsets), max_size=30))
def test_entries_round_trip_in_order(entries: list) -> None:
    packed = b"".join(pack_delta(k, c, t, s, o) for k, c, t, s, o in entries)
    assert unpack_deltas(packed) == [(k, tuple(c), t, s, o) for k, c, t, s, o in entries]


def test_a_truncated_message_is_refused() -> None:
    packed = pack_delta(b"total:all", (1, 2, 3), 4, 5, 6)
    with pytest.raises(ValueError, match="truncated"):
        unpack_deltas(packed + packed[:10])


@given(keys, st.integers(1, 64))
def test_partition_of_matches_the_producers_default_partitioner(key: bytes, n: int) -> None:
    # Expiry requests are keyed sends (the producer's partitioner): both must agree.
    parts = list(range(n))
    assert partition_of(key, n) == DefaultPartitioner()(key, parts, parts)


def test_a_batch_groups_entries_by_partition_keeping_their_order() -> None:
    batch = DeltaBatch(6)
    added = []
    for i in range(50):
        key = f"campaign:c{i % 7}".encode()
        entry = pack_delta(key, (i, 1, 0), 1000 + i, 0, i)
        batch.add(key, entry)
        added.append((key, entry))
    assert len(batch) == 50
    messages = batch.messages()
    assert len(batch) == 0 and batch.messages() == []
    seen = []
    for partition, value in messages:
        got = unpack_deltas(value)
        assert {partition_of(k, 6) for k, *_ in got} == {partition}
        offsets_in_message = [off for *_, off in got]
        assert offsets_in_message == sorted(offsets_in_message)
        seen.extend(got)
    assert sorted(seen) == sorted(unpack_deltas(b"".join(e for _, e in added)))


def test_large_batches_are_split_into_bounded_messages_keeping_order() -> None:
    batch = DeltaBatch(1, max_bytes=1000)
    entries = [pack_delta(f"referrer:r{i}".encode(), (1, 0, 0), 0, 0, i) for i in range(100)]
    for e in entries:
        batch.add(unpack_deltas(e)[0][0], e)
    messages = batch.messages()
    assert len(messages) > 1
    assert all(p == 0 and len(v) <= 1000 for p, v in messages)
    assert b"".join(v for _, v in messages) == b"".join(entries)


def test_an_entry_larger_than_the_limit_still_travels_alone() -> None:
    big = pack_delta(b"campaign:" + b"x" * 2000, (1, 1, 0), 0, 0, 1)
    small = pack_delta(b"total:all", (1, 1, 0), 0, 0, 1)
    batch = DeltaBatch(1, max_bytes=1000)
    batch.add(b"total:all", small)
    batch.add(b"campaign:" + b"x" * 2000, big)
    assert [v for _, v in batch.messages()] == [small, big]
