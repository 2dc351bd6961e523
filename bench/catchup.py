"""When a pipeline has caught up: its analytics topics reflect the whole data set."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Sequence
from typing import Any

from bench.broker import client_config, ensure_topics_for
from bench.datasets import Dataset
from bench.processes import Proc


class CatchUp:
    """Watches the analytics topics of a settings' prefix until they reflect a data set.

    Done when the latest `total:all` record on the loyalty topic and the latest `advocates:total`
    record on the referral topic equal the expected totals, and the deletions topic holds at least
    one fact per distinct customer. Only those two keys are decoded (cheap for the watcher).
    `first_output` is the first record on any of the three analytics topics: a pipeline that
    finishes one stage over the whole backlog before the next (Quix Streams does, with one
    consumer and a 64 MB read-ahead) shows its first fact long before its first aggregate.
    """

    def __init__(self, settings: Any, ds: Dataset) -> None:
        from confluent_kafka import Consumer

        from streams.models.serializers.avro import get_codec

        self.settings = settings
        self.ds = ds
        self.codec = get_codec(settings)
        self.loyalty_topic = settings.topic(settings.loyalty_topic)
        self.referral_topic = settings.topic(settings.referral_topic)
        self.deletions_topic = settings.topic(settings.deletions_topic)
        self.consumer = Consumer(
            client_config(
                settings,
                {
                    "group.id": f"bench-watch-{uuid.uuid4().hex}",
                    "auto.offset.reset": "earliest",
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                    "topic.metadata.refresh.interval.ms": 1000,
                    "log_level": 3,
                },
            )
        )
        ensure_topics_for(settings)
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        tps = []
        for t in (self.loyalty_topic, self.referral_topic, self.deletions_topic):
            meta = self.consumer.list_topics(t, timeout=10)
            tps += [TopicPartition(t, p, OFFSET_BEGINNING) for p in meta.topics[t].partitions]
        self.consumer.assign(tps)
        self.loyalty: tuple[int, ...] | None = None
        self.advocates: tuple[int, ...] | None = None
        self.first_output: float | None = None
        self.outputs = 0
        # When total:all first showed >= 10% and >= 90% of the distinct customers.
        self.t10: float | None = None
        self.t90: float | None = None

    def _facts(self) -> int:
        from confluent_kafka import TopicPartition

        total = 0
        try:
            meta = self.consumer.list_topics(self.deletions_topic, timeout=5)
            parts = meta.topics[self.deletions_topic].partitions
        except Exception:
            return 0
        for p in parts:
            with contextlib.suppress(Exception):
                lo, hi = self.consumer.get_watermark_offsets(
                    TopicPartition(self.deletions_topic, p), timeout=5
                )
                total += hi - lo
        return total

    def done(self) -> bool:
        ds = self.ds
        want_l = tuple(ds.loyalty_total)
        want_a = tuple(ds.advocates_total)
        return self.loyalty == want_l and (self.advocates == want_a or want_a == (0, 0, 0))

    def wait(self, timeout: float, procs: Sequence[Proc] = ()) -> float:
        """Consume until caught up; returns the monotonic time it was seen. Raises on timeout."""
        deadline = time.monotonic() + timeout
        last_check = 0.0
        while time.monotonic() < deadline:
            msgs = self.consumer.consume(2000, timeout=0.3)
            now = time.monotonic()
            for m in msgs:
                if m.error():
                    continue
                self.outputs += 1
                if self.first_output is None:
                    self.first_output = now
                value = m.value()
                if m.topic() == self.deletions_topic or value is None:
                    continue
                k = m.key()
                if k == b"total:all":
                    d = self.codec.decode(value)[1]
                    self.loyalty = (d["points_lost"], d["customers"], d["customers_with_points"])
                    if self.t10 is None and d["customers"] >= 0.1 * self.ds.distinct:
                        self.t10 = now
                    if self.t90 is None and d["customers"] >= 0.9 * self.ds.distinct:
                        self.t90 = now
                elif k == b"advocates:total":
                    d = self.codec.decode(value)[1]
                    self.advocates = (
                        d["referees_lost"],
                        d["advocates_lost"],
                        d["referred_customers_orphaned"],
                    )
            if self.done() and self._facts() >= self.ds.distinct:
                return now
            if now - last_check > 2:
                last_check = now
                for p in procs:
                    p.check()
        raise TimeoutError(
            f"outputs not caught up in {timeout:.0f}s: total:all={self.loyalty} "
            f"(want {self.ds.loyalty_total}), advocates:total={self.advocates} "
            f"(want {self.ds.advocates_total}), facts={self._facts()} (want {self.ds.distinct})"
        )

    def steady_events_per_s(self) -> float | None:
        """Input events/s while total:all went from 10% to 90% of the customers (start-up and
        the tail excluded). Coarse when outputs come in transaction-sized steps, and flattering
        to a pipeline that runs its stages one after the other over a backlog: the window then
        only covers the last stage. A diagnostic, not the headline."""
        if self.t10 is None or self.t90 is None or self.t90 - self.t10 < 0.05:
            return None
        customers_per_s = 0.8 * self.ds.distinct / (self.t90 - self.t10)
        return customers_per_s * len(self.ds.values) / self.ds.distinct

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.consumer.close()
