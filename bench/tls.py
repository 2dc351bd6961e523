"""What TLS costs (issue #24): the bridge at c=64 and the worker's events/s against a plaintext
broker and a SASL_SSL one, side by side in the same run.

    python -m bench.tls [--runs 3] [--quick] [--worker-events N] [--worker-variants V,...]
    python bench/run.py --only tls [--runs 3]      (one round per run)

Two private single-node Kafkas (`bench.broker.Broker.start_local`) run side by side for the
whole run, from the same jars with the same heap, JVM options, broker settings and topics; they
differ only in the client listener: PLAINTEXT, or SASL_SSL (the secured local Kafka of
`voucherify-streams kafka start --secure`: TLS with its own CA, SCRAM-SHA-512). Every client
connects to the secured one as `admin`, the super user: ACLs are enforced but always pass (what
an ACL check costs is not measured here). Each round measures, on each broker in turn (plaintext
first in odd rounds, the secured one first in even rounds, so neither always goes first):

- the bridge: bench/bridge.py's method at concurrency 64 only — a broker warm-up by the raw
  producer, `voucherify-streams bridge` (one process, default settings) warmed up for 3 s at
  c=64, then wrk with the signed webhooks for 20 s (2 s with --quick); req/s, p50/p99, the
  bridge's and the broker's CPU ms per request;
- the raw producer (pipelined, bench/baselines/raw_producer.py) for as long: librdkafka's own
  ceiling over each listener, a diagnostic;
- the worker: bench/worker.py's method (a fresh pre-filled input, launch -> every analytics
  output caught up) for each variant on the same data set (100,000 events; 2,000 with --quick):
  `faust-exactly_once` (the worker as shipped) and `plain` (the confluent-kafka loop: a
  diagnostic, librdkafka's consumer against aiokafka's); events/s, the worker's CPU per 100,000
  events, and the broker's CPU over the variant (the pre-fill included).

Ratios are secured / plaintext per round; the headline is their median over the rounds (aim of
the issue: >= 0.8x for the bridge's req/s and the worker's events/s). Results:
bench/results/tls-<time>[-quick].json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import processes  # noqa: E402
from bench.bridge import measure_server, raw_producer, warm_up_broker  # noqa: E402
from bench.broker import Broker, cleanup_topics, settings_for  # noqa: E402
from bench.datasets import dataset, write_bodies  # noqa: E402
from bench.paths import CACHE, RESULTS  # noqa: E402
from bench.processes import cpu_seconds, start_bridge  # noqa: E402
from bench.results import fmt, log, ratio, reason  # noqa: E402
from bench.worker import run_variant  # noqa: E402
from streams.dev.ports import free_port  # noqa: E402

MODES = ("plaintext", "secure")
CONCURRENCY = 64
VARIANTS = ("faust-exactly_once", "plain")
#: The figures compared (where in a mode's result, and which way is better).
BRIDGE_FIGURES = ("rps", "p50_ms", "p99_ms", "server_cpu_ms_per_req", "broker_cpu_ms_per_req")
WORKER_FIGURES = ("events_per_s", "cpu_s_per_100k_events", "broker_cpu_s", "prefill_s")


def start_brokers() -> dict[str, Broker]:
    """Both brokers, up together for the whole run (stopped by `stop_brokers`)."""
    brokers: dict[str, Broker] = {}
    try:
        for mode in MODES:
            brokers[mode] = Broker.start_local(secure=mode == "secure")
    except BaseException:
        stop_brokers(brokers)
        raise
    return brokers


def stop_brokers(brokers: dict[str, Broker]) -> None:
    for b in brokers.values():
        b.stop()


def tls_session(broker: Broker) -> dict[str, Any]:
    """The TLS version and cipher the secured listener agrees with a client trusting its CA
    (Python's OpenSSL; librdkafka's offers the same defaults)."""
    client = broker.client
    if client is None:
        return {}
    host, _, port = broker.bootstrap.rpartition(":")
    ctx = ssl.create_default_context(cafile=client.kafka_ssl_ca_file)
    try:
        with (
            socket.create_connection((host, int(port)), timeout=10) as raw,
            ctx.wrap_socket(raw, server_hostname=host) as tls,
        ):
            cipher = tls.cipher()
            return {"version": tls.version(), "cipher": cipher[0] if cipher else None}
    except OSError as exc:
        return {"error": str(exc)}


def bridge_point(broker: Broker, bodies: str, seconds: float) -> dict[str, Any]:
    """bench/bridge.py's method at c=64 on `broker`, then the raw producer (pipelined)."""
    settings = settings_for(broker, "tls-bridge")
    out: dict[str, Any] = {}
    with cleanup_topics(settings):
        warm_up_broker(settings, bodies, min(5, seconds))
        port = free_port()
        proc = start_bridge(settings, port, "cli", name=f"bridge-{_mode(broker)}")
        try:
            others = {"broker": broker.pid} if broker.pid else None
            threads0 = thread_cpu(proc.pid)
            jvm0 = jvm_thread_cpu(broker.pid)
            machine0 = machine_cpu()
            res = measure_server(
                f"bridge ({_mode(broker)})", proc, port, bodies, seconds, (CONCURRENCY,), others
            )
            out["bridge"] = res[str(CONCURRENCY)]
            # Where the bridge's CPU went (the server's warm-up included): its Python threads
            # against librdkafka's (TLS is done in the `rdk:broker` threads).
            out["machine_cpu_s"] = machine_cpu_since(machine0)
            threads1 = thread_cpu(proc.pid)
            out["bridge_threads_cpu_s"] = {
                k: round(v - threads0.get(k, 0.0), 2) for k, v in sorted(threads1.items())
            }
            jvm1 = jvm_thread_cpu(broker.pid)
            if jvm0 is not None and jvm1 is not None:  # and the broker's, by kind of thread
                out["broker_threads_cpu_s"] = {
                    k: round(v - jvm0.get(k, 0.0), 2) for k, v in sorted(jvm1.items())
                }
        finally:
            proc.stop()
        try:
            out["raw_pipelined"] = raw_producer(
                settings, settings.topic("raw.pipelined"), bodies, "pipelined", seconds
            )
        except Exception as exc:
            out["raw_pipelined"] = {"error": str(exc)[-3000:]}
            log(f"raw producer ({_mode(broker)}) FAILED: {exc}")
    return out


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds (utime + stime) of a process's live threads by thread name, numbers
    dropped: `python` (every Python thread), librdkafka's `rdk:main` and `rdk:broker`."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                comm = (task / "comm").read_text().strip()
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            name = re.sub(r"-?\d+$", "", comm) or comm
            out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return out


def machine_cpu() -> dict[str, float]:
    """The machine's CPU seconds since boot, all cores (/proc/stat): busy, idle, and stolen
    by the hypervisor (a neighbour's load on a shared host)."""
    try:
        ticks = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return {}
    hz = os.sysconf("SC_CLK_TCK")
    idle = ticks[3] + ticks[4]  # idle + iowait
    steal = ticks[7] if len(ticks) > 7 else 0
    busy = sum(ticks[:8]) - idle - steal
    return {"busy": busy / hz, "idle": idle / hz, "steal": steal / hz}


def machine_cpu_since(before: dict[str, float]) -> dict[str, float]:
    now = machine_cpu()
    return {k: round(v - before.get(k, 0.0), 1) for k, v in now.items()}


#: A broker thread's kind, by its name (the first that matches); else `other`.
JVM_THREADS = (
    ("network", "network-thread"),  # Kafka's socket processors: TLS and SASL happen here
    ("request handlers", "request-handler"),
    ("gc", "GC Thread"),
    ("gc", "G1 "),
    ("jit", "CompilerThread"),
)


def jvm_thread_cpu(pid: int | None) -> dict[str, float] | None:
    """CPU seconds of a JVM's threads by kind (JVM_THREADS), from `jcmd <pid> Thread.print`
    (its `cpu=` figures); None without jcmd or when it fails. Attaching costs a little CPU:
    called outside the measured points."""
    jcmd = shutil.which("jcmd")
    if pid is None or jcmd is None:
        return None
    try:
        dump = subprocess.run(
            [jcmd, str(pid), "Thread.print"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    out: dict[str, float] = {}
    for m in re.finditer(r'^"([^"]+)".*?\bcpu=([0-9.]+)ms', dump, re.MULTILINE):
        kind = next((k for k, part in JVM_THREADS if part in m.group(1)), "other")
        out[kind] = out.get(kind, 0.0) + float(m.group(2)) / 1000
    return out or None


def worker_point(broker: Broker, ds: Any, variant: str, quick: bool) -> dict[str, Any]:
    """bench/worker.py's method for one variant on `broker`, plus the broker's CPU."""
    cpu0 = cpu_seconds(broker.pid) if broker.pid else None
    machine0 = machine_cpu()
    res = run_variant(broker, ds, variant, timeout=300 if quick else 1800)
    res["machine_cpu_s"] = machine_cpu_since(machine0)
    if cpu0 is not None and broker.pid:
        res["broker_cpu_s"] = round((cpu_seconds(broker.pid) or 0.0) - cpu0, 1)
    return res


def _mode(broker: Broker) -> str:
    return "secure" if broker.client is not None else "plaintext"


def one_round(
    brokers: dict[str, Broker],
    index: int,
    quick: bool,
    variants: tuple[str, ...] = VARIANTS,
    events: int | None = None,
) -> dict[str, Any]:
    """Both modes, each part measured on both brokers back to back; plaintext first when
    `index` is even."""
    seconds = 2.0 if quick else 20.0
    n_bodies = 2000 if quick else 20000
    bodies_path = CACHE / f"bodies-{n_bodies}.tsv"
    if not bodies_path.exists():
        write_bodies(bodies_path, n_bodies, seed=11)
    ds = dataset(events or (2_000 if quick else 100_000))
    order = list(MODES) if index % 2 == 0 else list(reversed(MODES))
    out: dict[str, Any] = {
        "order": order,
        "loadavg_start": list(os.getloadavg()),
        **{m: {"worker": {}} for m in MODES},
    }
    watch = OthersWatch()
    for mode in order:
        log(f"--- bridge, {mode} ---")
        try:
            out[mode].update(bridge_point(brokers[mode], str(bodies_path), seconds))
        except Exception as exc:  # one failing must not lose the rest
            out[mode]["bridge"] = {"error": str(exc)[-3000:]}
            log(f"bridge ({mode}) FAILED: {exc}")
    for variant in variants:
        for mode in order:
            log(f"--- worker {variant}, {mode} ---")
            out[mode]["worker"][variant] = worker_point(brokers[mode], ds, variant, quick)
    out["loadavg_end"] = list(os.getloadavg())
    out["other_tests"] = watch.stop()
    out["events"] = len(ds.values)
    out["ratios"] = ratios(out, variants)
    return out


def ratios(rnd: dict[str, Any], variants: tuple[str, ...]) -> dict[str, float | None]:
    """Secured / plaintext for every compared figure of one round."""
    p, s = rnd["plaintext"], rnd["secure"]
    out: dict[str, float | None] = {}
    for key in BRIDGE_FIGURES:
        out[f"bridge {key}"] = ratio(s.get("bridge", {}).get(key), p.get("bridge", {}).get(key))
    out["raw producer rps"] = ratio(
        s.get("raw_pipelined", {}).get("rps"), p.get("raw_pipelined", {}).get("rps")
    )
    for v in variants:
        for key in WORKER_FIGURES:
            out[f"worker {v} {key}"] = ratio(
                s["worker"].get(v, {}).get(key), p["worker"].get(v, {}).get(key)
            )
    return {k: None if v is None else round(v, 3) for k, v in out.items()}


def other_test_runs() -> list[str]:
    """Command lines of test or benchmark runs on the machine that are not ours (a shared
    machine's load, for the conditions)."""
    mine = set(processes.tree_pids(os.getpid()))
    pid = os.getppid()
    while pid > 1:  # and our own ancestors (e.g. the `timeout` or shell that started us)
        mine.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) in mine:
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "pytest" in cmd or ("bench" in cmd and "python" in cmd):
            found.append(f"{d.name} {cmd.strip()[:160]}")
    return found


class OthersWatch:
    """Notes, every 5 s in a thread, the test or benchmark runs on the machine that are not
    ours (`other_test_runs`): a figure measured beside one is disturbed."""

    def __init__(self, every_s: float = 5.0) -> None:
        self.seen: dict[str, str] = {}  # command line -> when first seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every_s,), daemon=True)
        self._thread.start()

    def _run(self, every_s: float) -> None:
        while True:
            for cmd in other_test_runs():
                self.seen.setdefault(cmd, time.strftime("%H:%M:%S"))
            if self._stop.wait(every_s):
                return

    def stop(self) -> list[str]:
        self._stop.set()
        self._thread.join(10)
        return [f"{when} {cmd}" for cmd, when in self.seen.items()]


# --- bench/run.py's part interface -------------------------------------------------------

_rounds_run = 0


def run(broker: Broker | None, quick: bool) -> dict[str, Any]:
    """One round on two brokers of its own (`broker`, run.py's shared one, is not used); the
    order alternates with every call."""
    global _rounds_run
    brokers = start_brokers()
    try:
        res = one_round(brokers, _rounds_run, quick)
        res["tls"] = tls_session(brokers["secure"])
    finally:
        stop_brokers(brokers)
        _rounds_run += 1
    return res


def summary(res: dict[str, Any]) -> list[str]:
    lines = [
        f"TLS (SASL_SSL, SCRAM-SHA-512) against plaintext: bridge at c={CONCURRENCY}, worker "
        f"on {res.get('events', 0):,} events"
    ]
    for mode in MODES:
        r = res.get(mode, {})
        b = r.get("bridge", {})
        if "error" in b:
            lines.append(f"  bridge {mode:<10} FAILED: {reason(b['error'])}")
        elif b:
            lines.append(
                f"  bridge {mode:<10} {fmt(b.get('rps'))} req/s"
                f"  p50 {fmt(b.get('p50_ms'), ' ms', 2)}  p99 {fmt(b.get('p99_ms'), ' ms', 2)}"
                f"  bridge cpu {fmt(b.get('server_cpu_ms_per_req'), ' ms/req', 3)}"
                f"  broker cpu {fmt(b.get('broker_cpu_ms_per_req'), ' ms/req', 3)}"
                f"  bad {b.get('non_2xx_or_error')}"
            )
        threads = r.get("bridge_threads_cpu_s")
        if threads:
            lines.append(
                f"  bridge {mode:<10} CPU s by thread: "
                + ", ".join(f"{k} {fmt(v, '', 1)}" for k, v in threads.items())
            )
        jvm = r.get("broker_threads_cpu_s")
        if jvm:
            lines.append(
                f"  broker {mode:<10} CPU s by thread: "
                + ", ".join(f"{k} {fmt(v, '', 1)}" for k, v in jvm.items())
            )
        raw = r.get("raw_pipelined", {})
        if raw and "error" not in raw:
            lines.append(f"  raw producer {mode:<10} {fmt(raw.get('rps'))} records/s")
        for v, w in r.get("worker", {}).items():
            if "error" in w:
                lines.append(f"  worker {v} {mode}: FAILED: {reason(w['error'])}")
                continue
            lines.append(
                f"  worker {v:<20} {mode:<10} {fmt(w.get('events_per_s'))} events/s  cpu "
                f"{fmt(w.get('cpu_s_per_100k_events'), ' s/100k')}  broker cpu "
                f"{fmt(w.get('broker_cpu_s'), ' s')}  prefill {fmt(w.get('prefill_s'), ' s', 2)}"
            )
    for k, v in res.get("ratios", {}).items():
        lines.append(f"  ratio secure/plaintext {k}: {fmt(v, 'x', 2)}")
    return lines


# --- standalone: N rounds on the same two brokers -----------------------------------------


def median_ratios(rounds: list[dict[str, Any]]) -> dict[str, float | None]:
    keys = [k for r in rounds for k in r.get("ratios", {})]
    out: dict[str, float | None] = {}
    for k in dict.fromkeys(keys):
        vals = [r["ratios"][k] for r in rounds if r.get("ratios", {}).get(k) is not None]
        out[k] = round(statistics.median(vals), 3) if vals else None
    return out


def main() -> int:
    from bench.run import ensure_wrk, machine, medians

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="rounds (medians); default 3")
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    ap.add_argument("--worker-events", type=int, default=None)
    ap.add_argument("--worker-variants", default=",".join(VARIANTS))
    ap.add_argument(
        "--profile",
        action="store_true",
        help="py-spy profiles (bench/results/profiles/) of the bridge at c=64 and of each "
        "worker variant, on both brokers; perturbs the figures",
    )
    args = ap.parse_args()
    variants = tuple(v.strip() for v in args.worker_variants.split(",") if v.strip())
    processes.PROFILE = args.profile
    ensure_wrk()
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"tls-{stamp}{'-quick' if args.quick else ''}.json"
    report: dict[str, Any] = {
        "started": stamp,
        "quick": args.quick,
        "profile": args.profile,
        "machine": machine(),
        "variants": variants,
        "kafka_heap": os.environ.get("STREAMS_KAFKA_HEAP", "1g"),
        "rounds": [],
    }
    brokers = start_brokers()
    try:
        report["brokers"] = {m: b.bootstrap for m, b in brokers.items()}
        report["tls"] = tls_session(brokers["secure"])
        log(f"secured listener: {report['tls']}")
        for i in range(args.runs):
            log(f"=== round {i + 1}/{args.runs} ===")
            rnd = one_round(brokers, i, args.quick, variants, args.worker_events)
            report["rounds"].append(rnd)
            log(f"round {i + 1} ratios: {json.dumps(rnd['ratios'])}")
            path.write_text(json.dumps(report, indent=2, default=str))
    except KeyboardInterrupt:
        log("interrupted")
    finally:
        processes.stop_all()
        stop_brokers(brokers)
    report["machine"]["loadavg_at_end"] = list(os.getloadavg())
    if report["rounds"]:
        report["median"] = medians(report["rounds"])
        report["median"]["ratios"] = median_ratios(report["rounds"])
        report["median"]["events"] = report["rounds"][0]["events"]
    path.write_text(json.dumps(report, indent=2, default=str))
    if report["rounds"]:
        print()
        print(f"medians of {len(report['rounds'])} round(s), ratios: median of the per-round ones")
        for line in summary(report["median"]):
            print(line)
    print(f"\nresults: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
