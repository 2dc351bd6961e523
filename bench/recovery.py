"""Part 6 — Recovery: worker start to ready with 1,000,000 customers in the dedup table.

The dedup table's changelog (`<app id>-seen-customers-changelog`, 6 partitions, compacted) is
filled directly with N entries in the worker's own format (key: customer id; value:
streams.domain.state.pack_mark), then `voucherify-streams worker` is started and, at once, six
probe events (one per input partition) are produced. "Ready" is Faust's own "[^Worker]: Ready"
log line (info level), logged once the tables are recovered; six more probes are then produced and
must come out as facts (`first_event_after_ready_s`). `early_probes_counted` says how many of the
probes produced before ready were counted (all six should be).

Variants: `memory` (STREAMS_STORE=memory://, always restores the whole changelog), `rocksdb-cold`
(empty data dir: restores the whole changelog into RocksDB), `rocksdb-warm` (restart on the data
dir the cold run left: RocksDB has it, only the changelog's tail is read), and `empty` (memory,
no entries: the start-up cost without any restore, for reference). Those use the bulk restore
(streams.tables.restore); `memory-faust` and `rocksdb-cold-faust` are the same with
STREAMS_FAST_RESTORE=false (Faust's own recovery), in the same run (BENCH_RECOVERY_FAUST=0 leaves
them out). After ready, the worker's metrics give the dedup table's keys (`keys`: the customers
plus the probes counted, or the restore lost entries) and what the bulk restore did.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.broker import Broker, cleanup_topics, ensure_topics_for, settings_for
from bench.datasets import dataset
from bench.processes import AgentCrashed, start_worker
from bench.results import fmt, log, ratio, reason
from streams.dev.http import scrape_metrics

PARTITIONS = 6
COLD = {"rocksdb": "rocksdb-cold", "rocksdb-faust": "rocksdb-cold-faust"}


def fill_changelog(bootstrap: str, topic: str, n: int) -> float:
    from confluent_kafka import Producer

    from streams.domain.state import pack_mark

    # `topic` exists (bench.broker.ensure_topics_for), compacted with PARTITIONS partitions.
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "partitioner": "murmur2_random",
            "queue.buffering.max.messages": 1_000_000,
            "log_level": 3,
        }
    )
    t0 = time.monotonic()
    deadline = t0 + 600
    for i in range(n):
        key = f"cust_recovery{i:010d}".encode()
        while True:
            try:
                p.produce(topic, key=key, value=pack_mark(0, i))
                break
            except BufferError:
                p.poll(0.05)
                if time.monotonic() > deadline:
                    raise TimeoutError("changelog fill took over 600s") from None
        if i % 10000 == 0:
            p.poll(0)
    if p.flush(120):
        raise RuntimeError("changelog fill not delivered")
    return time.monotonic() - t0


def probes() -> tuple[list[bytes], list[bytes]]:
    """One new CustomerDeleted record per input partition (murmur2 like the prefill producer)."""
    from aiokafka.partitioner import murmur2

    ds = dataset(60, duplicates=0.0, seed=time.time_ns(), cache=False)
    keys: list[bytes] = []
    values: list[bytes] = []
    covered: set[int] = set()
    for k, v in zip(ds.keys, ds.values, strict=True):
        part = (murmur2(k) & 0x7FFFFFFF) % PARTITIONS
        if part not in covered:
            covered.add(part)
            keys.append(k)
            values.append(v)
    return keys, values


def start_and_probe(settings: Any, data_dir: Path, name: str, timeout: float) -> dict[str, Any]:
    from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition

    facts_topic = settings.topic(settings.deletions_topic)
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"bench-recovery-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "log_level": 3,
        }
    )
    meta = consumer.list_topics(facts_topic, timeout=10)
    consumer.assign(
        [TopicPartition(facts_topic, p, OFFSET_END) for p in meta.topics[facts_topic].partitions]
    )
    consumer.consume(1, timeout=1)  # settle the assignment at the end offsets
    from aiokafka.partitioner import murmur2

    producer = Producer({"bootstrap.servers": settings.bootstrap_servers, "log_level": 3})
    topic = settings.topic(settings.customer_deleted_topic)
    producer.list_topics(topic, timeout=10)

    def send_probes() -> set[bytes]:
        keys, values = probes()
        for k, v in zip(keys, values, strict=True):
            part = (murmur2(k) & 0x7FFFFFFF) % PARTITIONS
            producer.produce(topic, key=k, value=v, partition=part)
        producer.flush(30)
        return set(keys)

    seen: set[bytes] = set()

    def wait_facts(want: set[bytes], until: float) -> bool:
        while time.monotonic() < until and not want <= seen:
            for m in consumer.consume(100, timeout=0.2):
                key = m.key()
                if not m.error() and key is not None:
                    seen.add(key)
            proc.check()
        return want <= seen

    proc = start_worker(settings, name=name, data_dir=data_dir)
    port = proc.web_port or 0
    t0 = proc.started_at or time.monotonic()
    deadline = t0 + timeout
    try:
        early = send_probes()  # arrive while the worker starts and recovers
        # Ready: Faust's own "[^Worker]: Ready" (logged once its tables are recovered).
        ready = None
        while time.monotonic() < deadline:
            proc.check()
            if "[^Worker]: Ready" in _tail(proc.log):
                ready = time.monotonic() - t0
                break
            time.sleep(0.1)
        if ready is None:
            raise TimeoutError(f"not ready within {timeout:.0f}s:\n{proc.tail()}")
        rss = _rss_mb(proc.pid)
        t_probe = time.monotonic()
        late = send_probes()
        if not wait_facts(late, min(deadline, t_probe + 120)):
            raise TimeoutError(f"ready, but probes not processed in 120s:\n{proc.tail()}")
        first_event = time.monotonic() - t_probe
        wait_facts(early, time.monotonic() + 10)
        # After the timings: counting a RocksDB table's keys walks it.
        metrics = scrape_metrics(f"http://127.0.0.1:{port}/metrics", timeout=60)
    finally:
        proc.stop(timeout=60)
        consumer.close()
    return {
        "ready_s": round(ready, 2),
        "first_event_after_ready_s": round(first_event, 2),
        "rss_mb": rss,
        # Of the six probes produced right at the start (before ready), how many were counted.
        "early_probes_counted": len(early & seen),
        "keys": metrics.get('streams_worker_table_keys{table="seen-customers"}'),
        "bulk_restore_records": metrics.get("streams_worker_fast_restore_records_total"),
        "bulk_restore_s": metrics.get("streams_worker_fast_restore_seconds_total"),
    }


def _tail(path: Path, size: int = 65536) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - size))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def measure(
    broker: Broker, label: str, store: str, count: int, timeout: float, fast: bool = True
) -> dict:
    # Info level: Faust logs its recovery progress (kept in bench/results/logs/).
    settings = settings_for(
        broker, f"rec-{label}", store=store, log_level="info", fast_restore=fast
    )
    data_dir = Path(tempfile.mkdtemp(prefix="vs-bench-data-"))
    out: dict[str, Any] = {}
    with cleanup_topics(settings):
        try:
            changelog = f"{settings.app_id}-seen-customers-changelog"
            ensure_topics_for(settings, changelogs=[changelog])
            fill_s = fill_changelog(broker.bootstrap, changelog, count) if count else 0.0
            r = start_and_probe(settings, data_dir, f"rec-{label}", timeout)
            r["fill_s"] = round(fill_s, 1)
            key = COLD.get(label, label)
            out[key] = r
            log(f"recovery {key} ({count:,} customers): ready in {r['ready_s']}s, keys {r['keys']}")
            if label == "rocksdb":
                r2 = start_and_probe(settings, data_dir, "rec-rocksdb-warm", timeout)
                out["rocksdb-warm"] = r2
                log(f"recovery rocksdb-warm ({count:,}): ready in {r2['ready_s']}s")
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
    return out


def run(broker: Broker, quick: bool) -> dict[str, Any]:
    n = 10_000 if quick else 1_000_000
    timeout = 300 if quick else 1200
    res: dict[str, Any] = {"customers": n}
    plan = [
        ("empty", "memory://", 0, True),
        ("memory", "memory://", n, True),
        ("rocksdb", "rocksdb://", n, True),
    ]
    if os.environ.get("BENCH_RECOVERY_FAUST", "1") != "0":
        plan += [("memory-faust", "memory://", n, False), ("rocksdb-faust", "rocksdb://", n, False)]
    for label, store, count, fast in plan:
        for attempt in range(3):  # again on fresh topics when a Faust agent crashed
            try:
                res.update(measure(broker, label, store, count, timeout, fast))
                break
            except AgentCrashed as exc:
                res.setdefault("agent_crashes", []).append(str(exc)[:600])
                log(f"recovery {label}: an agent crashed (attempt {attempt + 1}): {exc}")
                res[label] = {"error": str(exc)[-3000:]}
            except Exception as exc:
                res[label] = {"error": str(exc)[-3000:]}
                log(f"recovery {label} FAILED: {exc}")
                break

    def ready(key: str) -> Any:
        return res.get(key, {}).get("ready_s")

    mem = ready("memory")
    res["ratios"] = {
        "rocksdb-cold / memory": ratio(ready("rocksdb-cold"), mem),
        "rocksdb-warm / memory": ratio(ready("rocksdb-warm"), mem),
        # How many times faster than Faust's own recovery, start to ready, same run.
        "memory: faust / bulk": ratio(ready("memory-faust"), mem),
        "rocksdb-cold: faust / bulk": ratio(ready("rocksdb-cold-faust"), ready("rocksdb-cold")),
    }
    return res


def summary(res: dict[str, Any]) -> list[str]:
    lines = [f"Recovery (start -> ready, {res['customers']:,} customers in the dedup table):"]
    keys = ("empty", "memory", "rocksdb-cold", "rocksdb-warm", "rocksdb")
    for key in (*keys, "memory-faust", "rocksdb-cold-faust", "rocksdb-faust"):
        r = res.get(key)
        if r is None:
            continue
        if "error" in r:
            lines.append(f"  {key:<13} FAILED: {reason(r['error'])}")
        else:
            lines.append(
                f"  {key:<18} {r['ready_s']:>7.1f} s   (rss {r['rss_mb']} MB; probes sent before"
                f" ready counted: {r['early_probes_counted']}/6; keys {fmt(r.get('keys'), '', 0)};"
                f" bulk restore {fmt(r.get('bulk_restore_records'), '', 0)} records in"
                f" {fmt(r.get('bulk_restore_s'), ' s', 2)})"
            )
    for k, v in res.get("ratios", {}).items():
        lines.append(f"  ratio {k}: {fmt(v, 'x', 2)}")
    return lines
