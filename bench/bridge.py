"""Part 1 — Bridge: sustained signed webhooks/s at concurrency 1, 16 and 64, latency of a 2xx
(which includes the broker's ack), from bench/loadgen.py (wrk + Lua) in its own process.

The bridge on each HTTP layer, in the same run: its own HTTP/1.1 server (`voucherify-streams
bridge`, one process, and `--workers 2`), aiohttp's (`BRIDGE_HTTP=aiohttp`), granian's embedded
RSGI server on the producer's loop (`python -m streams.bridge.rsgi`), and
`streams.bridge.asgi:app` under `granian --interface asgi` (one worker).
Side by side in the same run:
- (a) the limit: bench/baselines/raw_producer.py — the same Avro bytes through a bare
  confluent-kafka producer with the bridge's producer settings (pipelined, and one-in-flight);
- (b) by hand: bench/baselines/fastapi_endpoint.py — FastAPI + confluent-kafka, produce and
  flush per request (in bench/.venv-fastapi).
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from bench.broker import Broker, cleanup_topics, ensure_input_like, security_env, settings_for
from bench.datasets import SECRET, write_bodies
from bench.paths import BENCH, CACHE, PY
from bench.processes import (
    Proc,
    cpu_seconds,
    profile,
    profile_done,
    spawn,
    start_bridge,
    tree_cpu_seconds,
    tree_peak_rss_mb,
)
from bench.results import fmt, log, ratio, reason
from bench.venvs import baseline_env, venv_python, venv_versions
from streams.dev.ports import free_port

CONCURRENCY = (1, 16, 64)


def loadgen(url: str, bodies: str, conc: int, seconds: float) -> dict[str, Any]:
    proc = subprocess.run(
        [
            PY,
            str(BENCH / "loadgen.py"),
            "closed",
            "--url",
            url,
            "--bodies",
            bodies,
            "-c",
            str(conc),
            "-d",
            str(seconds),
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
    )
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise RuntimeError(f"loadgen failed: {proc.stdout[-2000:]} {proc.stderr[-2000:]}") from None


def warm_up_broker(settings: Any, bodies: str, seconds: float) -> None:
    """A broker just started is slow for a while (its JIT): the first server measured paid
    for it (its c=1 point, in every run before this). Produce for a while first."""
    for mode in ("pipelined", "sync"):
        try:
            raw_producer(settings, settings.topic("warm-up"), bodies, mode, seconds)
        except Exception as exc:
            log(f"broker warm-up ({mode}) failed: {exc}")


def measure_server(
    name: str,
    proc: Proc,
    port: int,
    bodies: str,
    seconds: float,
    concurrency: tuple[int, ...] = CONCURRENCY,
    others: dict[str, int] | None = None,
) -> dict:
    """`concurrency`: the points measured; `others`: processes (name: pid, e.g. the broker)
    whose CPU per request is reported beside the server's (`<name>_cpu_ms_per_req`)."""
    url = f"http://127.0.0.1:{port}"
    # Warm-up at the highest concurrency: the first server of a run measured its c=64 point
    # against a broker that had not yet seen that load (it lost 20-30% in run 1 of each
    # bench on 2026-12-06).
    loadgen(url, bodies, max(concurrency), min(3, seconds / 2))
    out: dict[str, Any] = {}
    for c in concurrency:
        # The whole process tree: a supervisor's workers, granian's worker process.
        cpu0 = tree_cpu_seconds(proc.pid) or 0.0
        others0 = {k: cpu_seconds(pid) or 0.0 for k, pid in (others or {}).items()}
        spy = profile(proc, f"{name}-c{c}", seconds) if c == concurrency[-1] else None
        r = loadgen(url, bodies, c, seconds)
        profile_done(spy)
        cpu1 = tree_cpu_seconds(proc.pid) or 0.0
        r["server_cpu_s"] = round(cpu1 - cpu0, 2)
        r["server_cpu_ms_per_req"] = round(1000 * (cpu1 - cpu0) / max(1, r["ok"]), 3)
        for k, pid in (others or {}).items():
            used = (cpu_seconds(pid) or 0.0) - others0[k]
            r[f"{k}_cpu_s"] = round(used, 2)
            r[f"{k}_cpu_ms_per_req"] = round(1000 * used / max(1, r["ok"]), 3)
        # Peak RSS so far (VmHWM): after the c=64 point, the RSS under that load.
        r["server_peak_rss_mb"] = tree_peak_rss_mb(proc.pid)
        out[str(c)] = r
        log(
            f"{name} c={c}: {fmt(r['rps'])} req/s p50 {fmt(r['p50_ms'], '', 2)} ms"
            f" p99 {fmt(r['p99_ms'], '', 2)} ms p99.9 {fmt(r['p999_ms'], '', 2)} ms"
            f" ({r['non_2xx_or_error']} non-2xx/errors)"
        )
        if not proc.alive:
            raise RuntimeError(f"{name} died:\n{proc.tail()}")
    return out


def raw_producer(settings: Any, topic: str, bodies: str, mode: str, seconds: float) -> dict:
    ensure_input_like(settings, topic)
    proc = subprocess.run(
        [
            PY,
            str(BENCH / "baselines" / "raw_producer.py"),
            "--bootstrap",
            settings.bootstrap_servers,
            "--topic",
            topic,
            "--bodies",
            bodies,
            "--mode",
            mode,
            "--seconds",
            str(seconds),
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 180,
        env={**os.environ, **baseline_env(), **security_env(settings)},
    )
    try:
        r = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise RuntimeError(
            f"raw producer failed: {proc.stdout[-2000:]} {proc.stderr[-2000:]}"
        ) from None
    log(f"raw producer {mode}: {r['rps']:.0f} records/s, ack p99 {r['ack_p99_ms']} ms")
    return r


def run(broker: Broker, quick: bool) -> dict[str, Any]:
    seconds = 2.0 if quick else 20.0
    n_bodies = 2000 if quick else 20000
    bodies_path = CACHE / f"bodies-{n_bodies}.tsv"
    if not bodies_path.exists():
        write_bodies(bodies_path, n_bodies, seed=11)
    bodies = str(bodies_path)
    settings = settings_for(broker, "bridge")
    res: dict[str, Any] = {"seconds_per_point": seconds, "bodies": n_bodies}
    with cleanup_topics(settings):
        warm_up_broker(settings, bodies, min(5, seconds))
        # The bridge on each HTTP layer (bench/processes.py BRIDGE_SERVERS), default
        # settings; `bridge-w2`: the CLI with --workers 2 (BRIDGE_WORKERS);
        # `bridge-aiohttp`: the CLI on aiohttp's server (BRIDGE_HTTP).
        for who, server, s in (
            ("bridge", "cli", settings),
            ("bridge-aiohttp", "cli", settings.with_(http_server="aiohttp")),
            ("bridge-w2", "cli", settings.with_(workers=2)),
            ("granian-rsgi", "granian-rsgi", settings),
            ("granian-asgi", "granian-asgi", settings),
        ):
            port = free_port()
            try:
                proc = start_bridge(s, port, server, name=who)
                try:
                    res[who] = measure_server(who, proc, port, bodies, seconds)
                finally:
                    proc.stop()
            except Exception as exc:
                res[who] = {"error": str(exc)[-3000:]}
                log(f"{who} FAILED: {exc}")
        # (b) FastAPI by hand.
        try:
            py = venv_python("fastapi")
            res["fastapi_versions"] = venv_versions(
                py, ["fastapi", "uvicorn", "uvloop", "httptools", "confluent-kafka"]
            )
            topic = settings.topic("fastapi.customer.deleted")
            ensure_input_like(settings, topic)
            port = free_port()
            env = {
                **baseline_env(),
                "VOUCHERIFY_WEBHOOK_SECRET": SECRET,
                "BENCH_TOPIC": topic,
                "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            }
            fproc = spawn(
                "fastapi",
                [str(py), str(BENCH / "baselines" / "fastapi_endpoint.py"), "--port", str(port)],
                env,
            )
            try:
                fproc.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60)
                res["fastapi"] = measure_server("fastapi", fproc, port, bodies, seconds)
            finally:
                fproc.stop()
        except Exception as exc:
            res["fastapi"] = {"error": str(exc)[-3000:]}
            log(f"fastapi FAILED: {exc}")
        # (a) the raw producer limit.
        for mode in ("pipelined", "sync"):
            try:
                res[f"raw_{mode}"] = raw_producer(
                    settings, settings.topic(f"raw.{mode}"), bodies, mode, seconds
                )
            except Exception as exc:
                res[f"raw_{mode}"] = {"error": str(exc)[-3000:]}
                log(f"raw producer {mode} FAILED: {exc}")
    res["ratios"] = ratios(res)
    return res


BRIDGES = ("bridge", "bridge-aiohttp", "bridge-w2", "granian-rsgi", "granian-asgi")


def _rps(res: dict[str, Any], who: str, c: int) -> float | None:
    return res.get(who, {}).get(str(c), {}).get("rps")


def _p50(res: dict[str, Any], who: str, c: int) -> float | None:
    """p50 latency; its ratio is taken fastapi/who, so > 1 means `who` answers faster."""
    return res.get(who, {}).get(str(c), {}).get("p50_ms")


def ratios(res: dict[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    raw = res.get("raw_pipelined", {}).get("rps")
    sync = res.get("raw_sync", {}).get("rps")
    for c in CONCURRENCY:
        for who in BRIDGES:
            out[f"{who}/fastapi c={c}"] = ratio(_rps(res, who, c), _rps(res, "fastapi", c))
            out[f"{who}/fastapi p50 c={c}"] = ratio(_p50(res, "fastapi", c), _p50(res, who, c))
        out[f"bridge/raw-producer c={c}"] = ratio(_rps(res, "bridge", c), sync if c == 1 else raw)
        out[f"bridge/bridge-aiohttp c={c}"] = ratio(
            _rps(res, "bridge", c), _rps(res, "bridge-aiohttp", c)
        )
    return out


def _n(v: float | None, width: int, digits: int = 2) -> str:
    return f"{'n/a':>{width}}" if v is None else f"{v:>{width},.{digits}f}"


def summary(res: dict[str, Any]) -> list[str]:
    lines = ["Bridge (closed loop, wrk; latency of a 2xx incl. the broker's ack):"]
    lines.append(
        f"  {'server':<15}{'conc':>5}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'p99.9 ms':>10}"
        f"{'bad':>6}{'cpu ms/req':>12}{'peak RSS MB':>13}"
    )
    for who in (*BRIDGES, "fastapi"):
        r = res.get(who, {})
        if "error" in r:
            lines.append(f"  {who:<15} FAILED: {reason(r['error'])}")
            continue
        for c in CONCURRENCY:
            x = r.get(str(c))
            if not x:
                continue
            lines.append(
                f"  {who:<15}{c:>5}{_n(x['rps'], 10, 0)}{_n(x['p50_ms'], 9)}"
                f"{_n(x['p99_ms'], 9)}{_n(x['p999_ms'], 10)}{x['non_2xx_or_error']:>6}"
                f"{_n(x['server_cpu_ms_per_req'], 12, 3)}{_n(x.get('server_peak_rss_mb'), 13, 1)}"
            )
    for mode in ("pipelined", "sync"):
        r = res.get(f"raw_{mode}", {})
        if "error" in r:
            lines.append(f"  raw producer {mode}: FAILED")
        elif r:
            lines.append(
                f"  raw producer ({mode}): {r['rps']:,.0f} records/s, ack p50 "
                f"{fmt(r['ack_p50_ms'], ' ms', 2)} "
                f"p99 {fmt(r['ack_p99_ms'], ' ms', 2)}"
            )
    for k, v in res.get("ratios", {}).items():
        lines.append(f"  ratio {k}: {fmt(v, 'x', 2)}")
    return lines
