"""Part 4 — Scale: 1, 2 and 3 `voucherify-streams worker` processes on a 12-partition input.

Same method as part 2 (pre-filled input, time until every analytics output caught up, the
exact totals checked each time), default settings (exactly_once, RocksDB), standby replicas 0,
every topic with 12 partitions. The workers start together, so the figures include their
rebalance. On this 2-core machine, shared with the broker, more processes cannot add cores, so
events/s cannot show whether the worker scales; the CPU cost of an event can: the CPU seconds
of all workers per 100,000 events, start-up and rebalance included, and the same from the
moment the group settled (each process's start-up, ≈2 CPU s, is a fixed cost that a short run
multiplies). If that stays flat as workers are added, throughput scales with the cores the
workers get.

Per worker count: events/s, CPU s per 100,000 events, the rebalance (first member in the group
→ the group Stable with every worker in and every input partition assigned, from the broker's
own view; bench.group_watch), and the ratios of the CPU per event to one worker's.
"""

from __future__ import annotations

from typing import Any

from bench.broker import Broker
from bench.datasets import dataset
from bench.results import fmt, ratio, reason
from bench.worker import run_variant

PARTITIONS = 12
WORKERS = (1, 2, 3)


def run(broker: Broker, quick: bool) -> dict[str, Any]:
    n = 3_000 if quick else 30_000
    ds = dataset(n)
    timeout = 300 if quick else 1200
    by = {
        str(k): run_variant(
            broker, ds, "faust-exactly_once", processes=k, timeout=timeout, partitions=PARTITIONS
        )
        for k in WORKERS
    }
    one = by["1"]
    ratios = {}
    for k in WORKERS[1:]:
        r = by[str(k)]
        for key, label in (
            ("cpu_s_per_100k_events", "cpu per event"),
            ("cpu_s_per_100k_events_after_settled", "cpu per event after settled"),
        ):
            ratios[f"{label} {k}/1"] = ratio(r.get(key), one.get(key))
        ratios[f"events/s {k}/1"] = ratio(r.get("events_per_s"), one.get("events_per_s"))
    return {"events": n, "partitions": PARTITIONS, "workers": by, "ratios": ratios}


def summary(res: dict[str, Any]) -> list[str]:
    lines = [f"Scale ({res['events']:,} events, {res['partitions']} partitions):"]
    for k, r in res["workers"].items():
        if "error" in r:
            lines.append(f"  {k} worker(s): FAILED: {reason(r['error'])}")
            continue
        g = r.get("group") or {}
        lines.append(
            f"  {k} worker(s): {fmt(r['events_per_s'])} events/s, "
            f"CPU {fmt(r['cpu_s_per_100k_events'], ' s', 1)} per 100,000 events "
            f"({fmt(r.get('cpu_s_per_100k_events_after_settled'), ' s', 1)} after the group "
            "settled) "
            f"(cpu {r['cpu_s']}s: {r.get('cpu_s_per_process')}); "
            f"rebalance {fmt(g.get('rebalance_s'), ' s', 1)} "
            f"(group settled {fmt(g.get('settled_s'), ' s', 1)} after launch, "
            f"{g.get('settles')}x); elapsed {r['elapsed_s']}s"
        )
    for name, v in res["ratios"].items():
        lines.append(f"  ratio {name}: {fmt(v, 'x', 2)}")
    return lines
