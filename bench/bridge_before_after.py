"""The bridge at an earlier git revision against this tree, same broker, same run, alternating
(`voucherify-streams bridge`, one process, default settings; each first in every other run,
after a broker warm-up): req/s, latency, CPU per request and peak RSS at concurrency 1, 16 and
64 — what a change to the bridge bought, and what it costs in memory.

    python -m bench.bridge_before_after --rev 93627f1 [--runs 3] [--seconds 20]

The old revision is checked out with `git worktree add` into a temporary directory and run
from there (its own `streams` package first on the path); prints one JSON line per run and the
medians, and writes them to bench/results/before-after-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bridge import CONCURRENCY, measure_server, warm_up_broker
from bench.broker import Broker, cleanup_topics, settings_for
from bench.datasets import write_bodies
from bench.paths import CACHE, PY, RESULTS, ROOT
from bench.processes import spawn
from bench.results import log
from streams.dev.ports import free_port


def _serve(settings: Any, cwd: Path, name: str, bodies: str, seconds: float) -> dict[str, Any]:
    port = free_port()
    env = {
        **settings.to_env(),
        "BRIDGE_PORT": str(port),
        "BRIDGE_HOST": "127.0.0.1",
        "PYTHONPATH": str(cwd),
    }
    proc = spawn(name, [PY, "-m", "streams", "bridge"], env, cwd=cwd)
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60)
        return measure_server(name, proc, port, bodies, seconds)
    finally:
        proc.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    old = Path(tempfile.mkdtemp(prefix="vs-bench-rev-")) / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), args.rev],
                   check=True, capture_output=True)  # fmt: skip
    bodies = CACHE / "bodies-20000.tsv"
    if not bodies.exists():
        write_bodies(bodies, 20000, seed=11)
    broker = Broker.start()
    runs: list[dict[str, Any]] = []
    try:
        for i in range(args.runs):
            settings = settings_for(broker, f"ba{i}")
            with cleanup_topics(settings):
                if i == 0:
                    warm_up_broker(settings, str(bodies), 5)
                # Each goes first in every other run.
                order = [("before", old), ("after", ROOT)][:: 1 if i % 2 == 0 else -1]
                run = {who: _serve(settings, tree, who, str(bodies), args.seconds)
                       for who, tree in order}  # fmt: skip
            runs.append(run)
            print(json.dumps(run), flush=True)
    finally:
        broker.stop()
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)],
                       capture_output=True)  # fmt: skip
    med: dict[str, Any] = {}
    for who in ("before", "after"):
        for c in map(str, CONCURRENCY):
            for key in ("rps", "p50_ms", "p99_ms", "server_cpu_ms_per_req", "server_peak_rss_mb"):
                vals = [r[who][c][key] for r in runs if r[who][c].get(key) is not None]
                med.setdefault(who, {}).setdefault(c, {})[key] = (
                    statistics.median(vals) if vals else None
                )
    for c in map(str, CONCURRENCY):
        b, a = med["before"][c], med["after"][c]
        log(
            f"c={c}: before {b['rps']:,.0f} req/s p50 {b['p50_ms']:.2f} p99 {b['p99_ms']:.2f} "
            f"cpu {b['server_cpu_ms_per_req']:.3f} rss {b['server_peak_rss_mb']} MB | after "
            f"{a['rps']:,.0f} req/s p50 {a['p50_ms']:.2f} p99 {a['p99_ms']:.2f} "
            f"cpu {a['server_cpu_ms_per_req']:.3f} rss {a['server_peak_rss_mb']} MB"
        )
    out = RESULTS / f"before-after-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"rev": args.rev, "runs": runs, "median": med}, indent=1))
    log(f"results: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
