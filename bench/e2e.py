"""Part 3 — End-to-end latency: webhook 2xx -> the analytics record visible on its output topic.

The bridge and one worker run (project CLI); bench/loadgen.py sends signed webhooks open-loop at a
fixed rate well under saturation and records when each 2xx arrived. Each customer carries a
loyalty campaign of its own ("e2e-<customer id>"), so two records are attributable to it:

- `fact`: its CustomerDeletion on analytics.customer-deletions (one hop after the input topic);
- `loyalty`: the `campaign:e2e-<customer id>` record on analytics.loyalty-points-lost (two hops:
  dedup -> re-keyed delta -> aggregate).

A watcher (read_committed consumer, a thread of this process) notes when each becomes visible.
Both processes use CLOCK_MONOTONIC, which is system-wide on Linux.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from bench.broker import Broker, cleanup_topics, ensure_topics_for, settings_for
from bench.datasets import write_bodies
from bench.paths import BENCH, CACHE, PY
from bench.processes import AgentCrashed, Proc, cpu_seconds, start_bridge, start_worker
from bench.results import fmt, log, percentile, reason
from streams.dev.ports import free_port


class Watcher(threading.Thread):
    def __init__(self, settings: Any) -> None:
        super().__init__(daemon=True)
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self.fact_topic = settings.topic(settings.deletions_topic)
        self.loyalty_topic = settings.topic(settings.loyalty_topic)
        self.consumer = Consumer(
            {
                "bootstrap.servers": settings.bootstrap_servers,
                "group.id": f"bench-e2e-{time.time_ns()}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 5,
                "log_level": 3,
            }
        )
        tps = []
        for t in (self.fact_topic, self.loyalty_topic):
            meta = self.consumer.list_topics(t, timeout=10)
            tps += [TopicPartition(t, p, OFFSET_BEGINNING) for p in meta.topics[t].partitions]
        self.consumer.assign(tps)
        self.fact: dict[str, float] = {}
        self.loyalty: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + 1800
        while not self.stop.is_set() and time.monotonic() < deadline:
            for m in self.consumer.consume(500, timeout=0.05):
                now = time.monotonic()
                raw = m.key()
                if m.error() or raw is None:
                    continue
                key = raw.decode()
                if m.topic() == self.fact_topic:
                    self.fact.setdefault(key, now)
                elif key.startswith("campaign:e2e-"):
                    self.loyalty.setdefault(key.removeprefix("campaign:e2e-"), now)
        self.consumer.close()


def send(url: str, bodies: Path, rate: float, seconds: float) -> list[dict[str, Any]]:
    out = bodies.with_suffix(f".acks-{time.time_ns()}.jsonl")
    proc = subprocess.run(
        [
            PY,
            str(BENCH / "loadgen.py"),
            "rate",
            "--url",
            url,
            "--bodies",
            str(bodies),
            "--rate",
            str(rate),
            "-d",
            str(seconds),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
    )
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"loadgen rate failed: {proc.stdout[-1500:]} {proc.stderr[-1500:]}")
    acks = [json.loads(line) for line in out.read_text().splitlines()]
    out.unlink()
    return acks


def wait_seen(w: Watcher, cids: list[str], timeout: float, procs: list[Proc]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(c in w.fact and c in w.loyalty for c in cids):
            return
        for p in procs:
            p.check()
        time.sleep(0.2)


#: Rates (webhooks/s) and seconds of each point: today's trickle, and the issue's 1,000/s.
RATES: tuple[tuple[float, float], ...] = ((30.0, 60.0), (1000.0, 30.0))
QUICK_RATES: tuple[tuple[float, float], ...] = ((15.0, 6.0), (1000.0, 5.0))


def run(broker: Broker, quick: bool, rate: float | None = None) -> dict[str, Any]:
    """Every rate of RATES (QUICK_RATES; only `rate` when given), each on a fresh bridge,
    worker and topics: {"by_rate": {"30": ..., "1000": ...}}."""
    points = QUICK_RATES if quick else RATES
    if rate is not None:
        points = ((rate, 6.0 if quick else 60.0),)
    return {"by_rate": {f"{r:g}": run_rate(broker, r, s) for r, s in points}}


def run_rate(broker: Broker, rate: float, seconds: float) -> dict[str, Any]:
    """`attempt`, once more on fresh topics when a Faust agent crashed (the crash is kept)."""
    crashes = []
    for _ in range(3):
        res = attempt(broker, rate, seconds)
        if not res.get("agent_crashed"):
            break
        crashes.append(res["error"][:600])
    if crashes:
        res["agent_crashes"] = crashes
    return res


def attempt(broker: Broker, rate: float, seconds: float) -> dict[str, Any]:
    n = int(rate * seconds)
    warm = CACHE / "e2e-warmup-40.tsv"
    if not warm.exists():
        write_bodies(warm, 40, seed=101, tag_campaign=True)
    bodies = CACHE / f"e2e-{n}.tsv"
    if not bodies.exists():
        write_bodies(bodies, n, seed=202, tag_campaign=True)
    settings = settings_for(broker, "e2e")
    procs: list[Proc] = []
    res: dict[str, Any] = {"rate_per_s": rate, "seconds": seconds}
    with cleanup_topics(settings):
        watcher = None
        try:
            ensure_topics_for(settings)
            watcher = Watcher(settings)
            watcher.start()
            worker = start_worker(settings, "e2e-worker")
            procs.append(worker)
            port = free_port()
            bridge = start_bridge(settings, port)
            procs.append(bridge)
            url = f"http://127.0.0.1:{port}"
            # Warm-up until the worker answers (assignment, recovery, first batches).
            acks = send(url, warm, 10, 4)
            wait_seen(watcher, [a["cid"] for a in acks], 180, procs)
            if not all(a["cid"] in watcher.fact for a in acks):
                raise RuntimeError(f"worker not processing after 180s:\n{worker.tail()}")
            cpu0 = [cpu_seconds(p.pid) or 0.0 for p in procs]
            acks = send(url, bodies, rate, seconds)
            ok = [a for a in acks if 200 <= a["status"] < 300]
            wait_seen(watcher, [a["cid"] for a in ok], 60, procs)
            # CPU per webhook of each process while the load ran (they share 2 cores with the
            # broker, the load generator and this harness).
            for p, c0 in zip(procs, cpu0, strict=True):
                c1 = cpu_seconds(p.pid)
                if c1 is not None and acks:
                    res[f"{p.name}_cpu_ms_per_webhook"] = round(1000 * (c1 - c0) / len(acks), 3)
            for path, seen in (("fact", watcher.fact), ("loyalty", watcher.loyalty)):
                lat = sorted(1000 * (seen[a["cid"]] - a["acked"]) for a in ok if a["cid"] in seen)
                res[path] = {
                    "n": len(lat),
                    "missing": len(ok) - len(lat),
                    "p50_ms": percentile(lat, 50),
                    "p99_ms": percentile(lat, 99),
                    "max_ms": lat[-1] if lat else None,
                }
            res["sent"] = len(acks)
            res["ok"] = len(ok)
            sent_at = sorted(a["sent"] for a in acks)
            # What the open loop achieved (the load generator shares the cores too).
            span = sent_at[-1] - sent_at[0] if len(sent_at) > 1 else 0.0
            res["achieved_rate_per_s"] = round((len(sent_at) - 1) / span, 1) if span else None
            http = sorted(1000 * (a["acked"] - a["sent"]) for a in ok)
            res["http_p50_ms"] = percentile(http, 50)
            res["http_p99_ms"] = percentile(http, 99)
            log(
                f"e2e at {rate}/s: fact p50 {fmt(res['fact']['p50_ms'])} ms p99 "
                f"{fmt(res['fact']['p99_ms'])} ms; loyalty p50 "
                f"{fmt(res['loyalty']['p50_ms'])} ms p99 "
                f"{fmt(res['loyalty']['p99_ms'])} ms"
            )
        except Exception as exc:
            res["error"] = str(exc)[-3000:]
            res["agent_crashed"] = isinstance(exc, AgentCrashed)
            log(f"e2e FAILED: {exc}")
        finally:
            if watcher is not None:
                watcher.stop.set()
                watcher.join(5)
            for p in procs:
                p.stop()
                if p.data_dir is not None:
                    shutil.rmtree(p.data_dir, ignore_errors=True)
    return res


def summary(res: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for r in res["by_rate"].values():
        lines += summary_rate(r)
    return lines


def summary_rate(res: dict[str, Any]) -> list[str]:
    lines = [
        f"End-to-end (open loop {res['rate_per_s']:g}/s for {res['seconds']:g}s, 2xx -> visible):"
    ]
    if "error" in res:
        return [*lines, f"  FAILED: {reason(res['error'])}"]
    for path, label in (("fact", "deletion fact"), ("loyalty", "loyalty aggregate")):
        r = res[path]
        lines.append(
            f"  {label:<18} p50 {fmt(r['p50_ms'])} ms  p99 {fmt(r['p99_ms'])} ms"
            f"  (n={r['n']}, missing {r['missing']})"
        )
    lines.append(
        f"  (HTTP 2xx itself: p50 {fmt(res['http_p50_ms'], ' ms', 2)}, "
        f"p99 {fmt(res['http_p99_ms'], ' ms', 2)}; sent at "
        f"{fmt(res.get('achieved_rate_per_s'), '/s')}; CPU ms per webhook: worker "
        f"{fmt(res.get('e2e-worker_cpu_ms_per_webhook'), '', 3)}, bridge "
        f"{fmt(res.get('bridge_cpu_ms_per_webhook'), '', 3)})"
    )
    return lines
