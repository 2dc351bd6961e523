"""Print the medians of a bench/run.py result file as the Markdown tables of docs/BENCHMARKS.md.

python bench/to_markdown.py bench/results/bench-<time>.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def n(v: Any, digits: int = 0) -> str:
    return "n/a" if v is None else f"{v:,.{digits}f}"


def bridge(b: dict[str, Any]) -> list[str]:
    out = [
        "| server | conc | req/s | p50 ms | p99 ms | p99.9 ms | non-2xx | server CPU ms/req "
        "| peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    names = {
        "bridge": "bridge (own HTTP/1.1 server, 1 process)",
        "bridge-aiohttp": "bridge on aiohttp (BRIDGE_HTTP=aiohttp)",
        "bridge-w2": "bridge --workers 2",
        "granian-rsgi": "bridge on granian RSGI (embedded)",
        "granian-asgi": "streams.bridge.asgi:app on granian",
        "bridge-l2": "bridge, linger 2 ms",
        "fastapi": "FastAPI by hand",
    }
    for who, label in names.items():
        for c, x in sorted(b.get(who, {}).items(), key=lambda kv: int(kv[0])):
            out.append(
                f"| {label} | {c} | {n(x['rps'])} | {n(x['p50_ms'], 2)} | {n(x['p99_ms'], 2)} | "
                f"{n(x['p999_ms'], 2)} | {x['non_2xx_or_error']} | "
                f"{n(x['server_cpu_ms_per_req'], 3)} | {n(x.get('server_peak_rss_mb'), 1)} |"
            )
    for mode in ("pipelined", "sync"):
        r = b.get(f"raw_{mode}") or {}
        if "rps" in r:
            out.append(
                f"\nRaw producer ({mode}): {n(r['rps'])} records/s, ack p50 "
                f"{n(r.get('ack_p50_ms'), 2)} ms, p99 {n(r.get('ack_p99_ms'), 2)} ms."
            )
    out.append("\nRatios: " + "; ".join(f"{k} {n(v, 2)}x" for k, v in b["ratios"].items()) + ".")
    return out


def worker(w: dict[str, Any]) -> list[str]:
    out = [
        f"{n(w['events'])} events, {n(w['customers'])} customers, one process:\n",
        "| variant | events/s (launch → caught up) | after the first output | first output s "
        "| total:all 10-90% (diagnostic) | CPU s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for v in w["variants"]:
        if "error" in v:
            out.append(f"| {v['variant']} | FAILED | | | | |")
            continue
        out.append(
            f"| {v['variant']} | {n(v['events_per_s'])} | "
            f"{n(v['events_per_s_after_first_output'])} | {n(v['startup_s'], 1)} | "
            f"{n(v['events_per_s_total_all_10_90'])} | {n(v['cpu_s'], 1)} |"
        )
    out.append("\nRatios: " + "; ".join(f"{k} {n(v, 2)}x" for k, v in w["ratios"].items()) + ".")
    return out


def e2e(res: dict[str, Any]) -> list[str]:
    out = [
        "| webhooks/s (sent at) | s | deletion fact p50 / p99 ms | loyalty aggregate p50 / p99 ms "
        "| missing | 2xx p50 / p99 ms |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for e in res["by_rate"].values():
        if "error" in e:
            out.append(f"| {n(e['rate_per_s'])} | {n(e['seconds'])} | FAILED | | | |")
            continue
        f, lo = e["fact"], e["loyalty"]
        out.append(
            f"| {n(e['rate_per_s'])} ({n(e.get('achieved_rate_per_s'))}) | {n(e['seconds'])} | "
            f"{n(f['p50_ms'], 1)} / {n(f['p99_ms'], 1)} | {n(lo['p50_ms'], 1)} / "
            f"{n(lo['p99_ms'], 1)} | {f['missing']} / {lo['missing']} | "
            f"{n(e['http_p50_ms'], 1)} / {n(e['http_p99_ms'], 1)} |"
        )
    return out


def scale(res: dict[str, Any]) -> list[str]:
    out = [
        f"{n(res['events'])} events, {res['partitions']} partitions:\n",
        "| workers | events/s (launch → caught up) | CPU s per 100,000 events | the same after "
        "the group settled | rebalance s | group settled s after launch | elapsed s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for k, r in res["workers"].items():
        if "error" in r:
            out.append(f"| {k} | FAILED | | | | | |")
            continue
        g = r.get("group") or {}
        out.append(
            f"| {k} | {n(r['events_per_s'])} | {n(r['cpu_s_per_100k_events'], 1)} | "
            f"{n(r.get('cpu_s_per_100k_events_after_settled'), 1)} | "
            f"{n(g.get('rebalance_s'), 1)} | {n(g.get('settled_s'), 1)} | {n(r['elapsed_s'], 1)} |"
        )
    out.append("\nRatios: " + "; ".join(f"{k} {n(v, 2)}x" for k, v in res["ratios"].items()) + ".")
    return out


def main() -> int:
    data = json.loads(Path(sys.argv[1]).read_text())
    med = data.get("median") or data["runs"][0]
    runs = len(data["runs"])
    print(f"<!-- {Path(sys.argv[1]).name}: medians of {runs} run(s) -->")
    if "bridge" in med:
        print("\n#### Bridge\n")
        print("\n".join(bridge(med["bridge"])))
    if "worker" in med:
        print("\n#### Worker\n")
        print("\n".join(worker(med["worker"])))
    if "e2e" in med:
        print("\n#### End to end\n")
        print("\n".join(e2e(med["e2e"])))
    if "scale" in med:
        print("\n#### Scale\n")
        print("\n".join(scale(med["scale"])))
    if "codec" in med:
        print("\n#### Codec (µs per call)\n")
        print(", ".join(f"{k} {n(v, 1)}" for k, v in med["codec"]["us"].items()))
    if "recovery" in med:
        print("\n#### Recovery\n\n```\n" + json.dumps(med["recovery"], indent=1)[:2000] + "\n```")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
