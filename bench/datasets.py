"""The benchmarks' inputs: signed webhook bodies for the bridge, encoded records for the worker."""

from __future__ import annotations

import json
import pickle
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.paths import CACHE
from bench.results import log

SECRET = "bench-secret"
#: How long the worker keeps per-day keys; the data sets are dated inside it (see `dataset`).
DAY_RETENTION = timedelta(days=400)


def _recent_start() -> datetime:
    # Deletions dated within the last ~95 days: every day key is inside the worker's retention.
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=95)


def write_bodies(path: Path, count: int, seed: int = 1, tag_campaign: bool = False) -> Path:
    """`count` signed customer.deleted bodies, one a line: "signature<TAB>customer id<TAB>body"
    (what bench/loadgen.py and bench/wrk/webhooks.lua read).

    With `tag_campaign`, each customer also gets a loyalty campaign of its own
    ("e2e-<customer id>"), so its loyalty record on the analytics topic is attributable.
    """
    from streams.bridge.signature import sign
    from streams.dev.demo.generator import compact, webhooks

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        for wh in webhooks(count, duplicates=0.0, seed=seed, start=_recent_start()):
            body = wh.body
            if tag_campaign:
                payload = json.loads(body)
                loyalty = payload["data"]["customer"]["loyalty"]
                loyalty["campaigns"][f"e2e-{wh.customer_id}"] = {
                    "points": 1,
                    "referred_customers": 0,
                }
                loyalty["points"] += 1
                body = compact(payload)
            assert b"\n" not in body and b"\t" not in body
            out.write(sign(SECRET, body).encode() + b"\t" + wh.customer_id.encode() + b"\t")
            out.write(body + b"\n")
    return path


@dataclass
class Dataset:
    """Encoded CustomerDeleted records, as the bridge would publish them, plus expectations."""

    keys: list[bytes]
    values: list[bytes]
    distinct: int
    loyalty_total: tuple[int, int, int]  # total:all (points_lost, customers, with_points)
    advocates_total: tuple[int, int, int]  # advocates:total (0, advocates_lost, orphaned)


def dataset(n: int, duplicates: float = 0.1, seed: int = 7, cache: bool = True) -> Dataset:
    """`n` records (about `duplicates` of them re-sends of an earlier customer), cached on disk."""
    start = _recent_start()
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"dataset-{n}-{duplicates}-{seed}-{start:%Y%m%d}.pickle"
    if cache and path.exists():
        try:
            with open(path, "rb") as f:
                cached: Dataset = pickle.load(f)
            return cached
        except (OSError, EOFError, AttributeError, ImportError, pickle.UnpicklingError):
            pass  # written by an older layout of this module: build it again
    from streams.dev.demo.generator import webhooks
    from streams.domain.deltas import plan
    from streams.models.customer_deleted import parse_webhook
    from streams.models.pii import PiiPolicy
    from streams.models.serializers.avro import get_codec
    from streams.settings import Settings

    t0 = time.monotonic()
    codec = get_codec(Settings())
    pii = PiiPolicy("redact")
    now = datetime.now(UTC)
    keys: list[bytes] = []
    values: list[bytes] = []
    seen: set[str] = set()
    lt = [0, 0, 0]
    at = [0, 0, 0]
    for wh in webhooks(n, duplicates=duplicates, seed=seed, start=start):
        datum = pii.apply(parse_webhook(json.loads(wh.body)))
        keys.append(wh.customer_id.encode())
        values.append(codec.encode("CustomerDeleted", datum))
        if wh.customer_id in seen:
            continue
        seen.add(wh.customer_id)
        p = plan(datum, now, now, DAY_RETENTION)
        for dim, key, c in p.loyalty:
            if (dim, key) == ("total", "all"):
                lt = [a + b for a, b in zip(lt, c, strict=True)]
        for dim, key, c in p.referral:
            if (dim, key) == ("advocates", "total"):
                at = [a + b for a, b in zip(at, c, strict=True)]
    ds = Dataset(keys, values, len(seen), tuple(lt), tuple(at))  # type: ignore[arg-type]
    if cache:
        with open(path, "wb") as f:
            pickle.dump(ds, f)
    log(f"dataset of {n} records ({len(seen)} customers) built in {time.monotonic() - t0:.1f}s")
    return ds
