"""Part 4 — Scale: one vs two `voucherify-streams worker` processes on a 6-partition input.

Same method as part 2 (pre-filled input, time until every analytics output caught up), default
settings (exactly_once, RocksDB), standby replicas 0. The two workers start together, so the
figure includes their rebalance. On a 2-core machine shared with the broker, two workers cannot
be expected to double anything: the ratio says what a second process buys here.
"""

from __future__ import annotations

from typing import Any

from bench.broker import Broker
from bench.datasets import dataset
from bench.results import fmt, ratio, reason
from bench.worker import run_variant


def run(broker: Broker, quick: bool) -> dict[str, Any]:
    n = 1_000 if quick else 30_000
    ds = dataset(n)
    timeout = 300 if quick else 1200
    one = run_variant(broker, ds, "faust-exactly_once", processes=1, timeout=timeout)
    two = run_variant(broker, ds, "faust-exactly_once", processes=2, timeout=timeout)
    return {
        "events": n,
        "one": one,
        "two": two,
        "ratio_two_over_one": ratio(two.get("events_per_s"), one.get("events_per_s")),
    }


def summary(res: dict[str, Any]) -> list[str]:
    lines = [f"Scale ({res['events']:,} events, 6 partitions):"]
    for label in ("one", "two"):
        r = res[label]
        if "error" in r:
            lines.append(f"  {label} worker(s): FAILED: {reason(r['error'])}")
        else:
            lines.append(
                f"  {label} worker(s): {fmt(r['events_per_s'])} events/s "
                f"(elapsed {r['elapsed_s']}s, first output after {r['startup_s']}s; "
                f"cpu {r['cpu_s']}s)"
            )
    lines.append(f"  ratio two/one: {fmt(res['ratio_two_over_one'], 'x', 2)}")
    return lines
