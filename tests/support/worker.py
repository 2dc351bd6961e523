"""Worker integration tests: real `faust ... worker` subprocesses, Avro input, latest-per-key
readers and the expected totals from the pure domain model."""

from __future__ import annotations

import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from streams.agents import EXIT_FOR_RESTART
from streams.dev.http import http_get
from streams.dev.reader import read_topic
from streams.domain.deltas import from_millis, totals
from streams.models.serializers.avro import get_codec
from streams.settings import Settings
from support.processes import Service
from support.reliability import view_diff as diff


class Worker(Service):
    """`faust -A streams.app worker` (Faust's own CLI, as users run it) with its settings as
    env vars, its own data dir and port."""

    def __init__(self, settings: Settings, data_dir: Path, log: Path) -> None:
        # JSON lines only: --quiet leaves out Faust's banner (as the README says to).
        quiet = ["--quiet"] if settings.log_format == "json" else []
        argv = [sys.executable, "-m", "faust", "-A", "streams.app", *quiet, "worker", "-l", "warn"]
        super().__init__("worker", settings.with_(data_dir=str(data_dir)), log, argv=argv)
        self.data_dir = data_dir

    def get(self, path: str, timeout: float = 10) -> tuple[int, Any]:
        return http_get(self.url + path, timeout, self.auth)


def make_payload(i: int, rng: random.Random, base: datetime) -> dict[str, Any]:
    """A varied customer.deleted webhook (some sections missing or null, legacy shapes)."""
    t = base + timedelta(hours=rng.randrange(0, 24 * 5), seconds=i)
    iso = t.isoformat().replace("+00:00", "Z")
    campaigns: dict[str, Any] = {}
    for c in rng.sample(["Gold", "Silver", "Bronze", "Spring: promo"], rng.randrange(0, 3)):
        entry: dict[str, Any] = {
            "points": rng.randrange(0, 500),
            "referred_customers": rng.choice([0, 0, 1, 3]),
        }
        if rng.random() < 0.7:
            entry["loyalty_tier"] = f"ltr_{c[:4].lower()}{rng.randrange(2)}"
        if rng.random() < 0.1:
            entry = {"redeemed_points": 5, "points_to_go": 7}  # legacy: no points
        campaigns[c] = entry
    loyalty: Any = {
        "points": sum(e.get("points", 0) for e in campaigns.values()),
        "referred_customers": sum(e.get("referred_customers", 0) for e in campaigns.values()),
        "campaigns": campaigns,
    }
    if rng.random() < 0.1:
        loyalty = None
    refs: list[Any] = [
        {"campaign_id": f"camp_{rng.randrange(4)}", "referrer_id": f"cust_ref{rng.randrange(6)}"}
        for _ in range(rng.randrange(0, 3))
    ]
    if refs and rng.random() < 0.2:
        refs = [f"camp_{rng.randrange(4)}"]  # legacy: bare ids
    customer: dict[str, Any] = {
        "id": f"cust_{i:06d}",
        "object": "customer",
        "loyalty": loyalty,
        "referrals": {"total": len(refs), "campaigns": refs},
        "updated_at": iso,
    }
    payload: dict[str, Any] = {
        "id": f"whs_{i}",
        "type": "customer.deleted",
        "data": {"customer": customer},
        "event": {"created_at": iso},
    }
    if rng.random() < 0.5:
        payload["created_at"] = iso
    return payload


def make_datums(n: int, seed: int = 7, base: datetime | None = None) -> list[dict[str, Any]]:
    """`n` deletions over five days from `base` (default: a week ago)."""
    from streams.models.customer_deleted import parse_webhook

    rng = random.Random(seed)
    if base is None:
        base = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        base -= timedelta(days=7)
    return [parse_webhook(make_payload(i, rng, base)) for i in range(n)]


def with_duplicates(datums: list[dict[str, Any]], share: float, seed: int = 3) -> list[Any]:
    rng = random.Random(seed)
    out = list(datums)
    for d in rng.sample(datums, int(len(datums) * share)):
        out.insert(rng.randrange(len(out) + 1), d)
    return out


def produce(settings: Settings, datums: list[dict[str, Any]], mis_keyed: int = 0) -> None:
    """Encode and produce, keyed by customer id (the first `mis_keyed` with a wrong key)."""
    codec = get_codec(settings)
    topic = settings.topic(settings.customer_deleted_topic)
    p = Producer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "linger.ms": 5,
            "partitioner": "murmur2_random",
        }
    )
    for i, d in enumerate(datums):
        cid = d["data"]["customer"]["id"]
        key = b"wrong-key" if i < mis_keyed else cid.encode()
        p.produce(topic, key=key, value=codec.encode("CustomerDeleted", d, topic=topic))
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(30) == 0


def expected(datums: list[dict[str, Any]]) -> dict[str, Any]:
    return totals(datums)


def strip_updated(view: dict[str, Any]) -> dict[str, Any]:
    return {
        dim: {
            k: {c: v for c, v in counters.items() if c != "updated_at"}
            for k, counters in keys.items()
        }
        for dim, keys in view.items()
    }


def latest(settings: Settings, topic: str) -> dict[str, Any]:
    """Latest record per Kafka key as {dimension: {key: counters}} (updated_at left out)."""
    codec = get_codec(settings)
    msgs = read_topic(settings.bootstrap_servers, settings.topic(topic), timeout=8, idle=1.5)
    by_key: dict[bytes, dict[str, Any]] = {}
    for m in msgs:
        if not m.value():  # a tombstone: the key was deleted (an expired day)
            by_key.pop(m.key(), None)
            continue
        _name, datum = codec.decode(m.value())
        assert m.key() == f"{datum['dimension']}:{datum['key']}".encode()
        by_key[m.key()] = datum
    out: dict[str, Any] = {}
    for datum in by_key.values():
        counters = {k: v for k, v in datum.items() if k not in {"dimension", "key", "updated_at"}}
        out.setdefault(datum["dimension"], {})[datum["key"]] = counters
    return out


def facts(settings: Settings) -> list[dict[str, Any]]:
    codec = get_codec(settings)
    msgs = read_topic(
        settings.bootstrap_servers, settings.topic(settings.deletions_topic), timeout=30, idle=2
    )
    return [codec.decode(m.value())[1] for m in msgs]


def wait_exact(
    settings: Settings, want: dict[str, Any], workers: list[Worker], timeout: float = 90
) -> dict[str, Any]:
    """Poll the analytics topics until latest-per-key equals `want` (or time out). A worker
    that exits asking to be restarted (EXIT_FOR_RESTART: e.g. its offset guard found records
    not delivered) is restarted as a supervisor would, a few times; any other exit fails."""
    deadline = time.monotonic() + timeout
    got: dict[str, Any] = {}
    restarts = 0
    while time.monotonic() < deadline:
        got = {
            "loyalty": latest(settings, settings.loyalty_topic),
            "referrals": latest(settings, settings.referral_topic),
        }
        if got == want:
            return got
        for w in workers:
            if w.proc is not None and w.proc.poll() is not None:
                code = w.proc.returncode
                if code != EXIT_FOR_RESTART or restarts >= 3:
                    raise AssertionError(f"worker exited {code}:\n{w.tail()}")
                restarts += 1
                print(f"worker exited {code} (restart me): restarting it, as a supervisor would")
                w.start()
        time.sleep(2)
    return got


def view(worker: Worker, path: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    status, body = 0, None
    while time.monotonic() < deadline:
        try:
            status, body = worker.get(path)
            if status == 200:
                return body
        except OSError:
            pass
        time.sleep(1)
    raise AssertionError(f"{path}: status {status}\n{worker.tail()}")


__all__ = [
    "Worker",
    "diff",
    "expected",
    "facts",
    "from_millis",
    "latest",
    "make_datums",
    "produce",
    "strip_updated",
    "view",
    "wait_exact",
    "with_duplicates",
]
