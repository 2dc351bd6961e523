"""Part 7 — Fail-over: a consuming worker is SIGKILLed and its replacement started at once.

Measured: seconds from the SIGKILL until the replacement has handled input that arrived after
the kill (the first CustomerDeletion fact of a customer first sent after the kill). Input
trickles in at `RATE` records/s throughout. Variants: Faust's default group session timeout
(60 s), the worker's default (STREAMS_SESSION_TIMEOUT_S=10), and static membership (the same
STREAMS_WORKER_ID restarted: the group hands its partitions back without waiting the session
out). The replacement reuses the data dir and web port (a warm restart, as under a supervisor).
"""

from __future__ import annotations

import os
import signal
import statistics
import threading
import time
from typing import Any

from confluent_kafka import Consumer, Producer

from bench.broker import Broker, settings_for
from bench.datasets import dataset
from bench.processes import start_worker
from bench.results import fmt, reason

RATE = 50.0  # input records per second
VARIANTS: dict[str, dict[str, Any]] = {
    "faust-default-session-60s": {"session_timeout_s": 60.0},
    "session-10s": {"session_timeout_s": 10.0},
    "static-membership": {"session_timeout_s": 10.0, "worker_id": "w1"},
}


def one_failover(broker: Broker, name: str, changes: dict[str, Any], timeout: float) -> float:
    settings = settings_for(broker, f"failover-{name}", **changes)
    ds = dataset(4_000, duplicates=0.0, seed=41)
    worker = start_worker(settings, name=f"failover-{name}")
    url = f"http://127.0.0.1:{worker.web_port}/readyz"
    worker.wait_http(url, timeout=120)
    sent_at: dict[bytes, float] = {}
    stop = threading.Event()

    def trickle() -> None:
        producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "linger.ms": 0})
        topic = settings.topic(settings.customer_deleted_topic)
        for key, value in zip(ds.keys, ds.values, strict=True):
            if stop.is_set():
                break
            sent_at.setdefault(key, time.monotonic())
            producer.produce(topic, key=key, value=value)
            producer.poll(0)
            time.sleep(1 / RATE)
        producer.flush(10)

    facts = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"{settings.app_id}-failover-reader",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    facts.subscribe([settings.topic(settings.deletions_topic)])
    sender = threading.Thread(target=trickle, daemon=True)
    sender.start()
    replacement = None
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # steady state: facts flowing
            msg = facts.poll(0.5)
            if msg is not None and msg.error() is None and time.monotonic() > deadline - 22:
                break
        worker.signal(signal.SIGKILL)
        killed = time.monotonic()
        worker.kill()  # waits for it
        replacement = start_worker(
            settings,
            name=f"failover-{name}-2",
            data_dir=worker.data_dir,
            port=worker.web_port,  # as a supervisor restarts it
        )
        end = killed + timeout
        while time.monotonic() < end:
            msg = facts.poll(0.2)
            if msg is None or msg.error() is not None:
                continue
            first_sent = sent_at.get(msg.key() or b"")
            if first_sent is not None and first_sent > killed:
                return time.monotonic() - killed
        raise RuntimeError(f"{name}: nothing handled within {timeout}s of the kill")
    finally:
        stop.set()
        facts.close()
        worker.stop()
        if replacement is not None:
            replacement.stop()


def run(broker: Broker, quick: bool) -> dict[str, Any]:
    runs = 1 if quick else 3
    out: dict[str, Any] = {"rate": RATE, "runs": runs}
    only = [v for v in os.environ.get("BENCH_FAILOVER_VARIANTS", "").split(",") if v]
    for name, changes in VARIANTS.items():
        if only and name not in only:
            continue
        times: list[float] = []
        try:
            for _ in range(runs):
                times.append(round(one_failover(broker, name, changes, timeout=150), 2))
            out[name] = {"seconds": times, "median_s": statistics.median(times)}
        except Exception as exc:
            out[name] = {"seconds": times, "error": str(exc)}
    return out


def summary(res: dict[str, Any]) -> list[str]:
    lines = [f"Fail-over (SIGKILL -> replacement handling new input; {res['rate']:.0f} records/s):"]
    for name in VARIANTS:
        r = res.get(name, {})
        if "error" in r:
            lines.append(f"  {name}: FAILED: {reason(r['error'])}")
        elif r:
            lines.append(f"  {name}: median {fmt(r['median_s'], ' s', 1)} (runs {r['seconds']})")
    return lines
