"""Reliability proofs: the bridge and worker as CLI processes, the totals expected from what the
bridge acknowledged, what the broker holds, and the figures each proof records."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from streams.dev.demo.generator import Webhook
from streams.dev.reader import read_topic
from streams.domain.deltas import totals
from streams.models.customer_deleted import parse_webhook
from streams.models.serializers.avro import get_codec
from streams.settings import Settings
from support.processes import Service, http_get

SECRET = "reliability-secret"


FIGURES = Path(
    os.environ.get(
        "RELIABILITY_FIGURES",
        Path(__file__).resolve().parents[2] / ".cache" / "reliability-figures.json",
    )
)


def start_bridge(svc: Service) -> Service:
    return svc.start().wait_ready("/readyz", timeout=60)


def start_worker(svc: Service) -> Service:
    return svc.start().wait_ready("/analytics/loyalty", timeout=120)


def counters_only(view: dict[str, Any]) -> dict[str, Any]:
    return {
        dim: {
            key: {c: v for c, v in vals.items() if c != "updated_at"} for key, vals in keys.items()
        }
        for dim, keys in view.items()
    }


def expected_totals(acked: list[Webhook]) -> dict[str, Any]:
    return totals([parse_webhook(json.loads(h.body)) for h in acked])


def wait_for_totals(
    worker: Service, expected: dict[str, Any], timeout: float = 240, supervise: bool = True
) -> dict[str, Any]:
    """Poll the web views until they equal `expected` (restarting a dead worker when asked)."""
    want = expected["loyalty"].get("total", {}).get("all", {}).get("customers", 0)
    deadline = time.monotonic() + timeout
    got: dict[str, Any] = {}
    while time.monotonic() < deadline:
        if supervise and not worker.alive:
            worker.start()
        s1, loyalty = http_get(worker.url + "/analytics/loyalty", timeout=5)
        s2, referrals = http_get(worker.url + "/analytics/referrals", timeout=5)
        if s1 == 200 and s2 == 200:
            got = {"loyalty": counters_only(loyalty), "referrals": counters_only(referrals)}
            if (
                got["loyalty"].get("total", {}).get("all", {}).get("customers", 0) >= want
                and got == expected
            ):
                return got
        time.sleep(1)
    return got


def latest_per_key(settings: Settings, topic_setting: str) -> dict[str, dict[str, Any]]:
    codec = get_codec(settings)
    latest: dict[str, dict[str, Any]] = {}
    for msg in read_topic(settings, settings.topic(topic_setting), idle=3):
        key = (msg.key() or b"").decode()
        if not msg.value():  # a tombstone: the key was deleted (an expired day)
            latest.pop(key, None)
            continue
        _, datum = codec.decode(msg.value())
        latest[key] = datum
    return latest


def as_view(latest: dict[str, dict[str, Any]], counters: tuple[str, ...]) -> dict[str, Any]:
    view: dict[str, Any] = {}
    for datum in latest.values():
        view.setdefault(datum["dimension"], {})[datum["key"]] = {c: datum[c] for c in counters}
    return view


def full_view(
    view: dict[str, dict[str, dict[str, int]]], counters: tuple[str, ...]
) -> dict[str, dict[str, dict[str, int]]]:
    """`view` with every counter present (the compacted records carry zeros the views omit)."""
    return {
        d: {k: {c: v.get(c, 0) for c in counters} for k, v in keys.items()}
        for d, keys in view.items()
    }


def record_figures(name: str, figures: dict[str, Any]) -> None:
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    data[name] = {**figures, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    FIGURES.write_text(json.dumps(data, indent=2, sort_keys=True))


def fact_counts(settings: Settings) -> tuple[int, int]:
    """(distinct customers with a CustomerDeletion fact, repeated facts). A crash may repeat a
    fact; a repeat must be identical to the first (the topic is compacted by customer id)."""
    codec = get_codec(settings)
    msgs = read_topic(settings, settings.topic(settings.deletions_topic), timeout=60, idle=5)
    first: dict[bytes, Any] = {}
    repeats = 0
    for m in msgs:
        datum = codec.decode(m.value() or b"")[1]
        key = m.key() or b""
        if key in first:
            assert first[key] == datum, f"a repeated fact for {key!r} differs"
            repeats += 1
        else:
            first[key] = datum
    return len(first), repeats


def view_diff(got: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """Every (section, dimension, key) whose counters differ: `got` vs `expected`."""
    out = []
    for section in sorted(set(got) | set(expected)):
        g, e = got.get(section, {}), expected.get(section, {})
        for dim in sorted(set(g) | set(e)):
            gd, ed = g.get(dim, {}), e.get(dim, {})
            for key in sorted(set(gd) | set(ed)):
                if gd.get(key) != ed.get(key):
                    out.append(f"{section}/{dim}/{key}: got {gd.get(key)}, expected {ed.get(key)}")
    return out


def lost_acknowledged(settings: Settings, acked: list[Webhook]) -> set[str]:
    """Sendout ids answered 2xx that are not in the customer.deleted topic (read whole: a
    retried webhook may be there twice)."""
    acked_ids = {json.loads(h.body)["id"] for h in acked}
    # Read to the end as it is now: a 2xx was sent only once its record was in the log.
    topic = read_topic(
        settings,
        settings.topic(settings.customer_deleted_topic),
        timeout=120,
        to_end=True,
    )
    return acked_ids - {dict(m.headers() or [])["sendout_id"].decode() for m in topic}
