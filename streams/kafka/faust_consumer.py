"""The worker's Faust consumer: fetches only for partitions that were active when asked.

Records produced while a fresh worker recovered its tables were lost (docs/BENCHMARKS.md,
finding 3). At the end of recovery Faust pauses the changelog partitions it was reading:
`Consumer.pause_partitions` empties *in place* the very set that `_wait_next_records` has just
handed to a fetch running in the consumer thread (faust/transport/consumer.py). aiokafka's
`Fetcher.fetched_records(partitions)` takes an empty `partitions` for "every partition" (`if
partitions and tp not in partitions`), so it returned the records it had prefetched for the input
partitions -- still paused by Faust -- and advanced their positions; Faust's `getmany` skipped
them (not active). Its repair, `perform_seek()` -> `seek_to_committed()`, only seeks partitions
whose committed offset is > 0: on a group without commits those records were never processed.

Handing the consumer thread a snapshot (and not fetching at all when nothing is active) means a
fetch only returns records of partitions that were active when it was asked for.
"""

from __future__ import annotations

from faust.transport.consumer import RecordMap
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP


class Consumer(faust_aiokafka.Consumer):
    async def _getmany(self, active_partitions: set[TP] | None, timeout: float) -> RecordMap:
        if active_partitions is None:  # client-only apps: every assigned partition
            return await super()._getmany(None, timeout)
        snapshot = set(active_partitions)
        if not snapshot:
            return {}
        return await super()._getmany(snapshot, timeout)
