"""Per request: the bridge's metric updates as kept (plain ints) vs prometheus_client's objects.

The updates one accepted webhook makes (in flight, event type, publish and request latency,
outcome), 200,000 times, median of 5: `python bench/metrics_cost.py`. See docs/BENCHMARKS.md.
"""

import statistics
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from streams.bridge.metrics import LATENCY_BUCKETS, OUTCOMES, Metrics

N = 200_000


def hand():
    m = Metrics()
    t0 = time.perf_counter()
    for _ in range(N):
        m.in_flight += 1
        start = time.monotonic()
        m.count_event_type("customer.deleted")
        m.publish_latency["customer_deleted"].observe(time.monotonic() - start)
        m.in_flight -= 1
        m.requests["accepted"] += 1
        m.request_latency.observe(time.monotonic() - start)
    return (time.perf_counter() - t0) / N


def prom():
    r = CollectorRegistry()
    req = Counter("bridge_requests", "x", ["outcome"], registry=r)
    reqs = {o: req.labels(o) for o in OUTCOMES}
    ev = Counter("bridge_webhook_events", "x", ["type"], registry=r)
    evs: dict[str, Any] = {}
    pub = Histogram(
        "bridge_publish_latency_seconds", "x", ["kind"], buckets=LATENCY_BUCKETS, registry=r
    )
    pubs = {k: pub.labels(k) for k in ("customer_deleted", "dead_letter", "raw")}
    rl = Histogram("bridge_request_latency_seconds", "x", buckets=LATENCY_BUCKETS, registry=r)
    inf = Gauge("bridge_requests_in_flight", "x", registry=r)
    t0 = time.perf_counter()
    for _ in range(N):
        inf.inc()
        start = time.monotonic()
        c = evs.get("customer.deleted")
        if c is None:
            c = evs["customer.deleted"] = ev.labels("customer.deleted")
        c.inc()
        pubs["customer_deleted"].observe(time.monotonic() - start)
        inf.dec()
        reqs["accepted"].inc()
        rl.observe(time.monotonic() - start)
    return (time.perf_counter() - t0) / N


def empty():
    t0 = time.perf_counter()
    for _ in range(N):
        start = time.monotonic()
        time.monotonic() - start
        time.monotonic() - start
    return (time.perf_counter() - t0) / N


res: dict[str, list[float]] = {"hand": [], "prom": [], "loop": []}
for _ in range(5):
    res["loop"].append(empty())
    res["hand"].append(hand())
    res["prom"].append(prom())
for k, v in res.items():
    print(f"{k}: median {statistics.median(v) * 1e6:.2f} us/request")
