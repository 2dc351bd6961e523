"""The benchmark suite, one command (see docs/BENCHMARKS.md):

    python bench/run.py [--quick] [--only bridge,worker,e2e,scale,codec,recovery] [--runs N]
    python bench/run.py --only tls   (not run unless named: see bench/tls.py)

Starts a private Kafka (LocalKafka on a free port) unless KAFKA_BOOTSTRAP_SERVERS is set, runs
each part side by side with its comparisons, prints the figures and ratios (medians over the
runs) and writes everything to bench/results/bench-<time>.json. `--quick`: small sizes, a smoke
run of a few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import bridge, codec, e2e, failover, processes, recovery, scale, tls, worker  # noqa: E402
from bench.broker import Broker  # noqa: E402
from bench.paths import RESULTS  # noqa: E402
from bench.results import log, reason  # noqa: E402

PARTS = {
    "codec": codec,
    "bridge": bridge,
    "worker": worker,
    "e2e": e2e,
    "scale": scale,
    "recovery": recovery,
    "failover": failover,
    "tls": tls,
}
#: Run when --only is not given: every part but `tls` (two brokers of its own; name it).
DEFAULT_PARTS = tuple(p for p in PARTS if p != "tls")
#: The parts that start their own brokers (run.py's shared one is not needed for them).
OWN_BROKERS = {"codec", "tls"}


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg_at_start": os.getloadavg(),
    }
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(
            line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line
        )
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        info["mem_gb"] = round(int(mem) / 1024 / 1024, 1)
    except (OSError, StopIteration):
        pass
    try:
        info["git"] = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        info["git_dirty"] = bool(
            subprocess.run(
                ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
        )
    except OSError:
        pass
    from importlib.metadata import version

    info["versions"] = {
        p: version(p) for p in ("faust-streaming", "aiokafka", "confluent-kafka", "fastavro")
    }
    from streams.dev.kafka import kafka_version

    info["kafka"] = kafka_version()
    return info


def medians(runs: list[Any]) -> Any:
    """Median of every number across runs, matching dict keys and list positions."""
    first = runs[0]
    if isinstance(first, bool) or first is None:
        return first
    if isinstance(first, int | float):
        nums = [r for r in runs if isinstance(r, int | float) and not isinstance(r, bool)]
        return statistics.median(nums) if nums else None
    if isinstance(first, dict):
        out = {}
        for k in first:
            vals = [r[k] for r in runs if isinstance(r, dict) and k in r]
            out[k] = medians(vals) if vals else first[k]
        return out
    if isinstance(first, list):
        return [
            medians([r[i] for r in runs if isinstance(r, list) and len(r) > i])
            for i in range(len(first))
        ]
    return first


def ensure_wrk() -> None:
    """The bridge's load generator: Debian's wrk, installed when missing and running as root
    (the aiohttp fallback in bench/loadgen.py costs more CPU on the shared cores, so its figures
    are not comparable with wrk's)."""
    if shutil.which("wrk"):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("installing wrk with apt-get (the bridge's load generator)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "wrk"], env=env, check=False, capture_output=True
        )
    if not shutil.which("wrk"):
        log("wrk not found (Debian: apt-get install wrk): the aiohttp load generator is used, "
            "whose figures are not comparable with wrk's")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description="voucherify-streams benchmarks")
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    ap.add_argument(
        "--only",
        default=",".join(DEFAULT_PARTS),
        help=f"comma-separated parts to run (default: {','.join(DEFAULT_PARTS)}; also: tls)",
    )
    ap.add_argument("--runs", type=int, default=1, help="repeat everything N times (medians)")
    ap.add_argument("--e2e-rate", type=float, default=None, help="webhooks/s of the e2e part")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="py-spy profiles as collapsed stacks (bench/results/profiles/; summarise with "
        "bench/profile_report.py): bridge and FastAPI at the highest concurrency, each worker "
        "variant from 7 s after launch for 60 s; perturbs the figures",
    )
    ap.add_argument(
        "--worker-events",
        type=int,
        default=None,
        help="size of the worker part's data set (default 100,000; 2,000 with --quick)",
    )
    ap.add_argument(
        "--worker-variants",
        default=",".join(worker.VARIANTS),
        help="comma-separated variants of the worker part",
    )
    args = ap.parse_args()
    variants = tuple(v.strip() for v in args.worker_variants.split(",") if v.strip())
    if set(variants) - set(worker.VARIANTS):
        ap.error(f"unknown worker variants (known: {', '.join(worker.VARIANTS)})")
    only = [p.strip() for p in args.only.split(",") if p.strip()]
    processes.PROFILE = args.profile
    unknown = set(only) - set(PARTS)
    if unknown:
        ap.error(f"unknown parts: {', '.join(sorted(unknown))} (known: {', '.join(PARTS)})")

    if {"bridge", "e2e", "tls"} & set(only):
        ensure_wrk()

    def on_term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_path = RESULTS / f"bench-{stamp}{'-quick' if args.quick else ''}.json"
    report: dict[str, Any] = {
        "started": stamp,
        "quick": args.quick,
        "profile": args.profile,
        "parts": only,
        "machine": machine(),
        "runs": [],
    }
    t_start = time.monotonic()
    broker = None
    try:
        needs_broker = any(p not in OWN_BROKERS for p in only)
        broker = Broker.start() if needs_broker else None
        report["broker"] = broker.bootstrap if broker else None
        for i in range(args.runs):
            log(f"=== run {i + 1}/{args.runs} ===")
            run: dict[str, Any] = {}
            report["runs"].append(run)
            for part in only:
                t0 = time.monotonic()
                log(f"--- {part} ---")
                try:
                    if part == "e2e":
                        assert broker is not None  # started for every part but OWN_BROKERS
                        run[part] = e2e.run(broker, args.quick, args.e2e_rate)
                    elif part == "worker":
                        assert broker is not None
                        run[part] = worker.run(broker, args.quick, variants, args.worker_events)
                    else:
                        run[part] = PARTS[part].run(broker, args.quick)
                except Exception as exc:  # a part failing must not lose the others
                    log(f"{part} FAILED: {exc!r}")
                    run[part] = {"error": repr(exc)[-3000:]}
                run[part]["wall_s"] = round(time.monotonic() - t0, 1)
                out_path.write_text(json.dumps(report, indent=2, default=str))
    except KeyboardInterrupt:
        log("interrupted")
    finally:
        processes.stop_all()
        if broker is not None:
            broker.stop()
    report["wall_s"] = round(time.monotonic() - t_start, 1)
    if report["runs"]:
        report["median"] = {
            part: medians([r[part] for r in report["runs"] if part in r])
            for part in only
            if any(part in r for r in report["runs"])
        }
    out_path.write_text(json.dumps(report, indent=2, default=str))
    print_report(report)
    print(f"\nresults: {out_path.relative_to(ROOT)}")
    return 0


def print_report(report: dict[str, Any]) -> None:
    m = report["machine"]
    n = len(report["runs"])
    print()
    print(
        f"voucherify-streams benchmarks — {'QUICK (smoke) ' if report['quick'] else ''}"
        f"{n} run(s), medians shown; {m.get('nproc')} cores, {m.get('mem_gb')} GB, "
        f"{m.get('cpu')}; Kafka {m.get('kafka')} at {report.get('broker')}; "
        f"git {m.get('git')}{' (dirty)' if m.get('git_dirty') else ''}"
    )
    for part, res in report.get("median", {}).items():
        print()
        if "error" in res and len(res) <= 2:
            print(f"{part}: FAILED: {reason(res['error'])}")
            continue
        try:
            for line in PARTS[part].summary(res):
                print(line)
        except Exception as exc:
            print(f"{part}: (summary failed: {exc!r})")


if __name__ == "__main__":
    sys.exit(main())
