"""`voucherify-streams demo`: the local Kafka, the worker and the bridge, fed generated webhooks.

Everything it starts is a separate process (the same commands an operator runs); it reuses
whatever already answers. At the end it prints the analytics from the worker's web views.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.bridge.signature import sign
from streams.dev.demo.generator import Webhook, webhooks
from streams.dev.http import http_get
from streams.dev.kafka import KafkaError, LocalCluster, broker_answers
from streams.dev.process import Child
from streams.http_auth import client_headers
from streams.progress import Progress
from streams.settings import Settings

SIGNATURE_HEADER = "x-voucherify-signature"


@dataclass
class Started:
    """What this demo run started (and so what `--stop` stops)."""

    kafka: LocalCluster | None = None
    processes: dict[str, Child] = field(default_factory=dict)


def http_json(url: str, timeout: float = 5.0, headers: dict[str, str] | None = None) -> Any:
    status, body = http_get(url, timeout, headers)
    if status != 200:
        raise RuntimeError(f"{url} answered {status or 'nothing'}")
    return body


def answers(url: str, headers: dict[str, str] | None = None) -> bool:
    return 200 <= http_get(url, 2, headers)[0] < 300


def _local(host: str) -> str:
    return "127.0.0.1" if host in {"0.0.0.0", "", "::"} else host


def spawn(command: str, settings: Settings, logs: Path) -> Child:
    """`python -m streams <command>` with `settings`, logging to logs/<command>.log."""
    argv = [sys.executable, "-m", "streams", command]
    return Child(command, argv, logs / f"{command}.log", env=settings.to_env()).start()


def wait_until(
    what: str,
    check: Any,
    timeout: float,
    proc: Child | None = None,
    log: Path | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and proc.proc is not None and not proc.alive:
            raise RuntimeError(f"{what} exited with code {proc.returncode}; see {log}")
        time.sleep(0.3)
    raise RuntimeError(f"{what} not ready after {timeout:.0f}s; see {log}")


def ensure_kafka(settings: Settings, started: Started) -> Settings:
    """Reuse the Kafka `settings` name, or start the local one; the settings to use with it
    (a secured local Kafka's: its admin user's)."""
    if broker_answers(settings):
        print(f"Kafka: reusing {settings.bootstrap_servers}")
        return settings
    host, _, port = settings.bootstrap_servers.split(",")[0].rpartition(":")
    if host not in {"localhost", "127.0.0.1"}:
        raise KafkaError(f"Kafka at {settings.bootstrap_servers} does not answer")
    cluster = LocalCluster.from_settings(settings.with_(kafka_port=int(port)))
    what = "a local broker" if cluster.size == 1 else f"a local {cluster.size}-node cluster"
    logs = ", ".join(str(n.log_file) for n in cluster.nodes)
    print(f"Kafka: starting {what} on {cluster.bootstrap} (log {logs}) ...")
    cluster.start()
    started.kafka = cluster
    if cluster.secure:
        env = cluster.material.client_env(cluster.bootstrap)
        print(f"Kafka: secured; the worker and the bridge connect as {env['KAFKA_SASL_USERNAME']}")
        settings = Settings.from_env({**settings.to_env(), **env})
    return settings


def ensure_service(
    command: str,
    base: str,
    probe: str,
    ready: str,
    timeout: float,
    settings: Settings,
    started: Started,
    logs: Path,
) -> str:
    """Reuse the `command` answering `probe` at `base`, or start it and wait for `ready`."""
    auth = client_headers(settings)  # STREAMS_HTTP_*_FILE: the views ask for credentials
    if answers(base + probe, auth):
        print(f"{command.capitalize()}: reusing {base}")
        return base
    log = logs / f"{command}.log"
    print(f"{command.capitalize()}: starting (log {log}) ...")
    proc = started.processes[command] = spawn(command, settings, logs)
    wait_until(f"the {command}", lambda: answers(base + ready, auth), timeout, proc, log)
    return base


def ensure_worker(settings: Settings, started: Started, logs: Path) -> str:
    base = f"http://{_local(settings.web_host)}:{settings.web_port}"
    view = "/analytics/loyalty"
    return ensure_service("worker", base, view, view, 180, settings, started, logs)


def ensure_bridge(settings: Settings, started: Started, logs: Path) -> str:
    base = f"http://{_local(settings.bridge_host)}:{settings.bridge_port}"
    return ensure_service("bridge", base, "/healthz", "/readyz", 60, settings, started, logs)


async def send_all(
    url: str, hooks: list[Webhook], secret: str, concurrency: int, retries: int = 20
) -> dict[int, int]:
    """POST every webhook; 503s are retried as Voucherify would (sooner, for the demo)."""
    import aiohttp

    statuses: dict[int, int] = {}
    bar = Progress(len(hooks), "sending webhooks", enabled=True)
    queue: asyncio.Queue[Webhook] = asyncio.Queue()
    for hook in hooks:
        queue.put_nowait(hook)

    async def sender(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            hook = queue.get_nowait()
            headers = {
                "content-type": "application/json",
                SIGNATURE_HEADER: sign(secret, hook.body),
            }
            status = 0
            for attempt in range(retries):
                try:
                    async with session.post(url, data=hook.body, headers=headers) as resp:
                        status = resp.status
                        await resp.read()
                except aiohttp.ClientError:
                    status = 0
                if status != 503 and status != 0:
                    break
                await asyncio.sleep(min(0.2 * 2**attempt, 5))
            statuses[status] = statuses.get(status, 0) + 1
            bar.advance()

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(sender(session) for _ in range(concurrency)))
    bar.close()
    return statuses


def total_customers(worker: str, headers: dict[str, str] | None = None) -> int:
    try:
        loyalty = http_json(f"{worker}/analytics/loyalty", headers=headers)
    except (OSError, ValueError):
        return -1
    return int(loyalty.get("total", {}).get("all", {}).get("customers", 0))


def table(
    title: str,
    rows: dict[str, dict[str, int]],
    columns: Iterable[str],
    limit: int = 12,
    sort_by: str | None = None,
) -> str:
    cols = list(columns)
    items = list(rows.items())
    if sort_by:
        items.sort(key=lambda kv: (-kv[1].get(sort_by, 0), kv[0]))
    else:
        items.sort()
    shown = items[:limit]
    head = ["key", *cols]
    body = [[k, *(f"{v.get(c, 0):,}" for c in cols)] for k, v in shown]
    widths = [max(len(str(r[i])) for r in [head, *body]) for i in range(len(head))]
    lines = [
        title,
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(head, widths, strict=True))
        ),
    ]
    lines.append("  ".join("-" * w for w in widths))
    for r in body:
        lines.append(
            "  ".join(
                str(c).ljust(w) if i == 0 else str(c).rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    if len(items) > limit:
        lines.append(f"... and {len(items) - limit} more")
    return "\n".join(lines)


def report(worker: str, headers: dict[str, str] | None = None) -> str:
    loyalty = http_json(f"{worker}/analytics/loyalty", headers=headers)
    referrals = http_json(f"{worker}/analytics/referrals", headers=headers)
    lp = ["points_lost", "customers", "customers_with_points"]
    ri = ["referees_lost", "advocates_lost", "referred_customers_orphaned"]
    parts = [
        "== Loyalty points lost ==",
        table("total", loyalty.get("total", {}), lp),
        table("by campaign", loyalty.get("campaign", {}), lp[:2], sort_by="points_lost"),
        table("by tier", loyalty.get("tier", {}), lp[:2], sort_by="points_lost"),
        table("by day (latest)", dict(sorted(loyalty.get("day", {}).items())[-10:]), lp[:2]),
        "",
        "== Referral impact ==",
        table("advocates", referrals.get("advocates", {}), ri[1:]),
        table(
            "by advocate campaign",
            referrals.get("advocate_campaign", {}),
            ri[1:],
            sort_by="referred_customers_orphaned",
        ),
        table(
            "by referral campaign",
            referrals.get("referral_campaign", {}),
            ri[:1],
            sort_by="referees_lost",
        ),
        table(
            "by referrer (top)",
            referrals.get("referrer", {}),
            ri[:1],
            limit=8,
            sort_by="referees_lost",
        ),
    ]
    return "\n\n".join(parts)


def stop_all(started: Started) -> None:
    for name, proc in started.processes.items():
        proc.stop(60)
        print(f"stopped the {name}")
    if started.kafka is not None:
        started.kafka.stop()
        print("stopped Kafka")


def run(
    settings: Settings,
    count: int = 2000,
    duplicates: float = 0.1,
    concurrency: int = 16,
    stop: bool = False,
    seed: int | None = None,
) -> int:
    secret_list = settings.secrets()
    if not secret_list:
        secret_list = (f"demo-{secrets.token_hex(16)}",)
        settings = settings.with_(webhook_secret=secret_list)
    logs = Path(settings.data_dir) / "logs"
    started = Started()
    try:
        settings = ensure_kafka(settings, started)
        worker = ensure_worker(settings, started, logs)
        bridge = ensure_bridge(settings, started, logs)
        print(f"Dashboard: {worker}/dashboard (follows the webhooks live)")
        auth = client_headers(settings)
        before = total_customers(worker, auth)
        hooks = list(webhooks(count, duplicates, seed))
        distinct = len({h.customer_id for h in hooks})
        print(
            f"Generated {count} signed customer.deleted webhooks: {distinct} customers, "
            f"{count - distinct} duplicate deliveries"
        )
        statuses = asyncio.run(
            send_all(f"{bridge}/webhooks/voucherify", hooks, secret_list[0], concurrency)
        )
        print("bridge answers: " + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())))
        target = max(before, 0) + distinct
        print(f"waiting for the analytics to count {distinct} new customers ...")
        wait_until(
            "the analytics",
            lambda: total_customers(worker, auth) >= target,
            300,
            started.processes.get("worker"),  # a worker that dies is reported at once
            logs / "worker.log",
        )
        print()
        print(report(worker, auth))
        print()
        if statuses.get(200, 0) + statuses.get(202, 0) != count:
            print("warning: not every webhook was accepted (see the bridge log)", file=sys.stderr)
    except (KafkaError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        stop_all(started)
        return 1
    if stop:
        stop_all(started)
        return 0
    print("Still running:")
    print(f"  bridge     {bridge}/webhooks/voucherify   ({bridge}/metrics, {bridge}/readyz)")
    print(f"  dashboard  {worker}/dashboard   (metrics: {worker}/metrics)")
    print(f"  analytics  {worker}/analytics/loyalty   {worker}/analytics/referrals")
    print(f"  Kafka      {settings.bootstrap_servers}")
    pids = " ".join(str(p.pid) for p in started.processes.values())
    if pids:
        print(f"Stop with: kill {pids}; voucherify-streams kafka stop   (logs in {logs})")
    return 0
