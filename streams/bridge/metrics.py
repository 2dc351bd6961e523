"""The bridge's metrics, exposed in the Prometheus text format by prometheus_client.

Requests update plain counters (no locks and no label machinery on the hot path; everything is
updated from the event loop only); a collector reads them when `/metrics` is scraped.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from streams.http_auth import REASONS

#: Outcomes of `POST /webhooks/voucherify` (the `outcome` label).
OUTCOMES = (
    "accepted",  # customer.deleted published and acknowledged
    "ignored",  # another event type, not published
    "routed_raw",  # another event type, published to the raw topic
    "unauthorized",  # signature missing or wrong
    "too_large",
    "unsupported_media_type",
    "malformed_json",
    "invalid_utf8",
    "invalid_payload",
    "bad_request",  # 400: the body's HTTP framing is malformed, or the client went away
    "unavailable",  # 503: broker unreachable, queue full, delivery failed, deadline
    "error",  # 500: a bug
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Histogram:
    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def snapshot(self) -> dict[str, Any]:
        return {"counts": list(self.counts), "sum": self.sum, "count": self.count}

    def add(self, snap: Mapping[str, Any]) -> None:
        for i, n in enumerate(snap["counts"]):
            self.counts[i] += n
        self.sum += snap["sum"]
        self.count += snap["count"]

    def cumulative(self) -> list[tuple[str, float]]:
        """(upper bound, observations at or below it) per bucket, `+Inf` last."""
        out: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip(self.buckets, self.counts, strict=False):
            running += n
            out.append((str(bound), running))
        out.append(("+Inf", self.count))
        return out


class Metrics:
    def __init__(self) -> None:
        self.requests: Counter[str] = Counter({o: 0 for o in OUTCOMES})
        self.event_types: Counter[str] = Counter()
        self.dead_letters: Counter[str] = Counter()
        self.signature_fallbacks = 0
        self.in_flight = 0
        # The bridge's own HTTP/1.1 server: connections over BRIDGE_MAX_CONNECTIONS (503), and
        # request heads not complete within BRIDGE_HEAD_TIMEOUT_S (408, or closed unanswered).
        self.connections_refused = 0
        self.head_timeouts = 0
        # Requests to /metrics refused for want of credentials (STREAMS_HTTP_*_FILE), by why.
        self.http_auth_failures: Counter[str] = Counter()
        self.publish_latency = {
            "customer_deleted": Histogram(),
            "dead_letter": Histogram(),
            "raw": Histogram(),
        }
        self.request_latency = Histogram()

    def count_event_type(self, event_type: str) -> None:
        # Bounded label set: only a signed sender gets here, but keep the cardinality sane.
        if event_type in self.event_types or len(self.event_types) < 100:
            self.event_types[event_type] += 1
        else:
            self.event_types["other"] += 1

    def snapshot(self) -> dict[str, Any]:
        """Everything counted, as JSON-able data (what a worker shares with its siblings)."""
        return {
            "requests": dict(self.requests),
            "event_types": dict(self.event_types),
            "dead_letters": dict(self.dead_letters),
            "signature_fallbacks": self.signature_fallbacks,
            "in_flight": self.in_flight,
            "connections_refused": self.connections_refused,
            "head_timeouts": self.head_timeouts,
            "http_auth_failures": dict(self.http_auth_failures),
            "publish_latency": {k: h.snapshot() for k, h in self.publish_latency.items()},
            "request_latency": self.request_latency.snapshot(),
        }

    def add(self, snap: Mapping[str, Any]) -> None:
        """Add a snapshot's counts to these (the sum over the workers)."""
        self.requests.update(snap["requests"])
        self.event_types.update(snap["event_types"])
        self.dead_letters.update(snap["dead_letters"])
        self.signature_fallbacks += snap["signature_fallbacks"]
        self.in_flight += snap["in_flight"]
        self.connections_refused += snap.get("connections_refused", 0)  # (older snapshots)
        self.head_timeouts += snap.get("head_timeouts", 0)
        self.http_auth_failures.update(snap.get("http_auth_failures", {}))
        for kind, h in snap["publish_latency"].items():
            self.publish_latency.setdefault(kind, Histogram()).add(h)
        self.request_latency.add(snap["request_latency"])

    def render(self, extra: dict[str, float] | None = None) -> str:
        """The Prometheus text of these metrics and the `extra` gauges (prometheus_client)."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self, extra or {}))
        return generate_latest(registry).decode()


_EXTRA_HELP = {
    "bridge_broker_reachable": "1 while the producer reaches the broker, else 0.",
    "bridge_schemas_registered": "1 once the schemas are registered (or no registry is used).",
    "bridge_producer_queue_length": "Records waiting in the producer for the broker's ack.",
    "bridge_workers": "Bridge processes whose counts these metrics sum (--workers).",
}


class _Collector(Collector):
    """Reads the hand-kept counters at scrape time: prometheus_client writes the text, while
    requests keep updating plain ints (its own metric objects take a lock per update, measured
    at 2% of a request's CPU: docs/BENCHMARKS.md)."""

    def __init__(self, m: Metrics, extra: dict[str, float]) -> None:
        self.m, self.extra = m, extra

    def collect(self) -> Iterator[Metric]:
        m = self.m
        requests = CounterMetricFamily(
            "bridge_requests", "Webhook requests by outcome.", labels=["outcome"]
        )
        for outcome, n in sorted(m.requests.items()):
            requests.add_metric([outcome], n)
        yield requests
        events = CounterMetricFamily(
            "bridge_webhook_events", "Signed webhooks by event type.", labels=["type"]
        )
        for event_type, n in sorted(m.event_types.items()):
            events.add_metric([event_type], n)
        yield events
        dead = CounterMetricFamily(
            "bridge_dead_letters",
            "Requests published to the dead-letter topic.",
            labels=["reason"],
        )
        for reason, n in sorted(m.dead_letters.items()):
            dead.add_metric([reason], n)
        yield dead
        yield CounterMetricFamily(
            "bridge_signature_whitespace_fallbacks",
            "Signatures that matched only the whitespace-stripped body.",
            value=m.signature_fallbacks,
        )
        yield GaugeMetricFamily(
            "bridge_requests_in_flight", "Webhook requests being handled.", value=m.in_flight
        )
        yield CounterMetricFamily(
            "bridge_connections_refused",
            "Connections answered 503 and closed: BRIDGE_MAX_CONNECTIONS were open.",
            value=m.connections_refused,
        )
        yield CounterMetricFamily(
            "bridge_request_head_timeouts",
            "Connections closed because a request head was not complete within "
            "BRIDGE_HEAD_TIMEOUT_S (408 once some of it came).",
            value=m.head_timeouts,
        )
        refused = CounterMetricFamily(
            "bridge_http_auth_failures",
            "Requests refused 401 for want of valid credentials (STREAMS_HTTP_*_FILE), by "
            "reason: missing, malformed or wrong.",
            labels=["reason"],
        )
        for reason in REASONS:
            refused.add_metric([reason], m.http_auth_failures[reason])
        yield refused
        publish = HistogramMetricFamily(
            "bridge_publish_latency_seconds",
            "From produce to broker acknowledgement.",
            labels=["kind"],
        )
        for kind, hist in m.publish_latency.items():
            publish.add_metric([kind], hist.cumulative(), hist.sum)
        yield publish
        request = HistogramMetricFamily(
            "bridge_request_latency_seconds", "Webhook handling time, body read to answer."
        )
        request.add_metric([], m.request_latency.cumulative(), m.request_latency.sum)
        yield request
        for name, value in self.extra.items():
            yield GaugeMetricFamily(name, _EXTRA_HELP.get(name, name), value=value)
