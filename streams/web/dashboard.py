"""The analytics dashboard: `GET /dashboard` (and `/` redirects there), one page, no build step.

The page (static/dashboard.html, .js) polls `GET /dashboard/data` every
STREAMS_DASHBOARD_REFRESH_MS and draws with uPlot (static/uPlot.iife.min.js, MIT, vendored: nothing
is fetched from elsewhere at run time). The data are the views' (streams.web.views): the whole
app's tables gathered from every worker, and the same refusal to present partial or stale
totals: while any worker rebalances or restores, a worker does not answer, or a partition is
stalled, `state` says so and no numbers are sent, so the page keeps its last numbers marked as
not current. The pipeline's figures are the whole group's, read from Kafka: events in (input end
offsets), lag per input partition (end - committed), dead letters (records on the dead-letter
topic), duplicates dropped (input records committed - customers counted - records skipped).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from typing import Any

from faust.web import Request, Response, View

from streams.agents import Topology
from streams.domain.deltas import LOYALTY_COUNTERS, REFERRAL_COUNTERS
from streams.kafka.group_offsets import GroupOffsets
from streams.web import query as q
from streams.web.views import LOYALTY_PATH, REFERRALS_PATH, gathered_view, unready_reason

log = logging.getLogger(__name__)

STATIC = files("streams.web") / "static"
#: The longest window the page offers (its 7/30/90-day selector).
DAYS = 90
#: Kafka is asked at most this often, however many pages poll.
PIPELINE_EVERY_S = 0.5
#: Events per second are measured over about this long.
RATE_WINDOW_S = 10.0

_TYPES = {".js": "application/javascript", ".css": "text/css", ".html": "text/html"}


class Pipeline:
    """The consumer group's figures from Kafka, cached for PIPELINE_EVERY_S."""

    def __init__(self, topo: Topology) -> None:
        settings = topo.settings
        self.settings = settings
        self.group = settings.app_id
        self.input = topo.input.get_topic_name()
        self.dead_letters = settings.topic(settings.dead_letter_topic)
        self._offsets: GroupOffsets | None = None
        self._samples: deque[tuple[float, int]] = deque()
        self._last: dict[str, Any] | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()
        self._totals: tuple[int, int] | None = None
        self.changed_at: datetime | None = None  # when this worker saw the totals change

    def totals_seen(self, customers: int, points: int, now: datetime) -> datetime:
        if self._totals != (customers, points) or self.changed_at is None:
            self._totals, self.changed_at = (customers, points), now
        return self.changed_at

    def _read(self) -> dict[str, Any]:
        if self._offsets is None:
            self._offsets = GroupOffsets(self.settings, self.group, timeout=5.0)
        offsets = self._offsets
        parts = [(self.input, p) for p in offsets.partitions(self.input)]
        marks = offsets.watermarks(parts)
        committed = offsets.committed(parts)
        dead = [(self.dead_letters, p) for p in offsets.partitions(self.dead_letters)]
        dead_marks = offsets.watermarks(dead)
        lag = []
        handled = 0
        for part in parts:
            low, high = marks[part]
            done = committed.get(part)
            handled += done or 0
            lag.append([part[1], max(0, high - (done if done is not None else low))])
        return {
            "input_records": sum(high for _, high in marks.values()),
            "handled": handled,
            "lag": lag,
            "dead_letters": sum(high - low for low, high in dead_marks.values()),
        }

    async def read(self) -> dict[str, Any] | None:
        """The figures, or None when Kafka does not answer."""
        async with self._lock:
            now = time.monotonic()
            if self._last is not None and now - self._at < PIPELINE_EVERY_S:
                return self._last
            try:
                found = await asyncio.get_running_loop().run_in_executor(None, self._read)
            except Exception as exc:
                log.debug("dashboard: pipeline figures unknown: %s", exc)
                return None
            samples = self._samples
            samples.append((now, found["input_records"]))
            while len(samples) > 2 and now - samples[0][0] > RATE_WINDOW_S:
                samples.popleft()
            t0, n0 = samples[0]
            found["events_per_s"] = (found["input_records"] - n0) / (now - t0) if now > t0 else 0.0
            self._last, self._at = found, now
            return found


def _rows(keys: dict[str, dict[str, Any]], *counters: str) -> list[list[Any]]:
    return [[k, *(v.get(c, 0) for c in counters)] for k, v in keys.items()]


async def snapshot(topo: Topology, pipeline: Pipeline) -> dict[str, Any]:
    """What the page shows, as JSON (see the module docstring)."""
    app, settings = topo.app, topo.settings
    now = datetime.now(UTC)
    out: dict[str, Any] = {"as_of": now.isoformat(), "state": "current", "message": ""}
    figures = await pipeline.read()
    unready = unready_reason(app, topo.health)
    if unready is not None:
        out["state"] = "stalled" if unready.get("stalled") else str(unready["reason"]).split()[0]
        out["message"] = str(unready["reason"])
        out["stalled"] = unready.get("stalled", [])
    if topo.health.behind:
        out["behind"] = topo.health.behind
    out["pipeline"] = _pipeline(figures, None, 0)
    if unready is not None:
        return out
    since = (now - timedelta(days=DAYS - 1)).date().isoformat()
    loyalty, failed = await gathered_view(
        app, topo.loyalty, LOYALTY_COUNTERS, LOYALTY_PATH, q.Query(day_from=since), topo.http_auth
    )
    referrals, failed_too = await gathered_view(
        app, topo.referrals, REFERRAL_COUNTERS, REFERRALS_PATH, auth=topo.http_auth
    )
    if failed or failed_too:
        out["state"] = "workers_missing"
        out["message"] = "some workers did not answer: " + ", ".join(
            sorted(set(failed + failed_too))
        )
        return out
    n = settings.dashboard_top
    best = q.top(loyalty, n)
    best_refs = q.top(referrals, n)
    total = loyalty.get("total", {}).get("all", {})
    advocates = referrals.get("advocates", {}).get("total", {})
    customers = int(total.get("customers", 0))
    skipped = sum(topo.metrics.skipped.counts.values()) if topo.metrics.skipped else 0
    out["totals"] = {
        "points_lost": total.get("points_lost", 0),
        "customers": customers,
        "customers_with_points": total.get("customers_with_points", 0),
        "advocates_lost": advocates.get("advocates_lost", 0),
        "referred_customers_orphaned": advocates.get("referred_customers_orphaned", 0),
    }
    out["days"] = sorted(_rows(loyalty.get("day", {}), "points_lost", "customers"))
    out["campaigns"] = _rows(best.get("campaign", {}), "points_lost", "customers")
    out["tiers"] = _rows(best.get("tier", {}), "points_lost", "customers")
    out["referrers"] = _rows(best_refs.get("referrer", {}), "referees_lost")
    out["referral_campaigns"] = _rows(best_refs.get("referral_campaign", {}), "referees_lost")
    out["advocate_campaigns"] = _rows(
        best_refs.get("advocate_campaign", {}), "advocates_lost", "referred_customers_orphaned"
    )
    out["pipeline"] = _pipeline(figures, customers, skipped)
    changed = pipeline.totals_seen(customers, int(total.get("points_lost", 0)), now)
    out["pipeline"]["last_update"] = changed.isoformat()
    out["pipeline"]["latest_deletion"] = total.get("updated_at")
    return out


def _pipeline(
    figures: dict[str, Any] | None, customers: int | None, skipped: int
) -> dict[str, Any]:
    if figures is None:
        return {"kafka": "not answering"}
    shown = {k: v for k, v in figures.items() if k != "handled"}
    if customers is not None:
        # Every input record handled was counted, skipped or dropped as a duplicate. Committed
        # offsets trail the tables by up to a commit interval, hence never below zero.
        shown["duplicates_dropped"] = max(0, figures["handled"] - customers - skipped)
    return shown


def _static(name: str) -> tuple[bytes, str]:
    suffix = name[name.rfind(".") :]
    return (STATIC / name).read_bytes(), _TYPES.get(suffix, "application/octet-stream")


def register(topo: Topology) -> None:
    app, settings = topo.app, topo.settings
    pipeline = Pipeline(topo)
    page = (
        (STATIC / "dashboard.html")
        .read_text(encoding="utf-8")
        .replace("{{refresh_ms}}", str(settings.dashboard_refresh_ms))
    )

    async def index(self: View, request: Request) -> Response:
        link = '<!doctype html><a href="/dashboard">Analytics dashboard</a>\n'
        response = self.html(link, status=302)
        response.headers["Location"] = "/dashboard"
        return response

    async def dashboard(self: View, request: Request) -> Response:
        return self.html(page)

    async def data(self: View, request: Request) -> Response:
        response = self.json(await snapshot(topo, pipeline))
        response.headers["Cache-Control"] = "no-store"
        return response

    app.page("/", name="index")(type("Index", (View,), {"get": index}))
    app.page("/dashboard", name="dashboard")(type("Dashboard", (View,), {"get": dashboard}))
    app.page("/dashboard/data", name="dashboard-data")(type("Data", (View,), {"get": data}))
    for name in ("dashboard.js", "uPlot.iife.min.js", "uPlot.min.css"):
        body, content_type = _static(name)

        async def get(
            self: View, request: Request, body: bytes = body, ct: str = content_type
        ) -> Response:
            response = self.bytes(body, content_type=ct)
            response.headers["Cache-Control"] = "max-age=3600"
            return response

        path = f"/dashboard/static/{name}"
        app.page(path, name=path.strip("/").replace("/", "-"))(type(name, (View,), {"get": get}))
