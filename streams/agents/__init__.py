"""Faust agents: dedup (keyed by customer id) and the two re-keyed aggregators."""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import faust
from faust.streams import _current_event

from streams.settings import Settings


def use_event(event: faust.EventT) -> None:
    """Make `event` the current event of the calling task.

    Faust's tables send a write to the changelog partition of the current event, and its RocksDB
    store reads and writes that partition's database. Agents that take records in batches set it
    per record. Only the context variable is set, never `Stream.current_event`: Faust's take
    buffer reads that attribute from another task.
    """
    _current_event.set(weakref.ref(event))


def batches(
    stream: faust.StreamT[Any], size: int, wait_s: float
) -> AsyncIterator[Sequence[faust.EventT]]:
    """Up to `size` events at a time, waiting at most `wait_s` for more; Faust acknowledges a
    batch's events only after the consumer of the batch asked for the next one."""
    return cast(faust.Stream[Any], stream).take_events(size, wait_s)  # not on StreamT


# Source tag of a dedup input record: partition * 2 + topic (0 = input, 1 = its re-key topic).
INPUT, INPUT_REKEYED = 0, 1


@dataclass
class Topology:
    """Everything the agents and views share: built once per app by streams.app.build_app."""

    settings: Settings
    app: faust.App
    codec: Any
    input: faust.TopicT
    input_rekeyed: faust.TopicT
    loyalty_deltas: faust.TopicT
    referral_deltas: faust.TopicT
    loyalty_out: faust.TopicT
    referral_out: faust.TopicT
    deletions_out: faust.TopicT
    seen: Any
    loyalty: Any
    referrals: Any
    agents: dict[str, Any]
