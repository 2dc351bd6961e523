"""`GET /analytics/loyalty` and `GET /analytics/referrals`: JSON {dimension: {key: {counter: n}}}.

Query parameters `?dimension= ?key= ?top=N ?from=&to=` (streams.web.query); a bad one is a 400
naming it.

Each worker holds the active partitions of the tables assigned to it. A request gathers the
answer from every worker that holds partitions (its own part locally, the others' with
`?local=1` over HTTP), so any worker answers for the whole app. Keys are filtered to the
partitions the worker actively owns, so standby copies never count twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import UTC
from typing import Any

import aiohttp
import faust
from faust.web import Request, Response, View

from streams.agents import Topology
from streams.agents.health import Health, not_ready
from streams.domain.deltas import LOYALTY_COUNTERS, REFERRAL_COUNTERS, from_millis
from streams.domain.state import KeyState
from streams.http_auth import HttpAuth
from streams.kafka.faust_consumer import consumer_of
from streams.kafka.routing import partition_of
from streams.web import query as q

log = logging.getLogger(__name__)

Nested = dict[str, dict[str, dict[str, Any]]]


def render(items: Iterable[tuple[bytes, bytes]], names: tuple[str, str, str]) -> Nested:
    out: Nested = {}
    for key, value in items:
        dim, _, k = key.decode().partition(":")
        st = KeyState.unpack(value)
        out.setdefault(dim, {})[k] = {
            **st.named(names),
            "updated_at": from_millis(st.updated_ms).astimezone(UTC).isoformat(),
        }
    return out


def _merge(into: Nested, part: Nested) -> None:
    for dim, keys in part.items():
        into.setdefault(dim, {}).update(keys)


def _owners(app: faust.App, changelog: str) -> dict[str, set[int]]:
    owners: dict[str, set[int]] = {}
    distribution = app.assignor.changelog_distribution  # type: ignore[attr-defined]
    for url, tps in distribution.items():
        parts = tps.get(changelog)
        if parts:
            owners[str(url).rstrip("/")] = set(parts)
    return owners


def _mine(app: faust.App, changelog: str) -> set[int]:
    """The table partitions this worker actively holds now. Not looked up by URL: a worker
    restarted on the same port shares its URL with its killed predecessor, which may still hold
    partitions in the group (their local copies would be stale)."""
    actives = app.assignor.assigned_actives()  # type: ignore[attr-defined]
    return {tp.partition for tp in actives if tp.topic == changelog}


def local_view(app: faust.App, table: Any, names: tuple[str, str, str]) -> Nested:
    changelog = table.changelog_topic.get_topic_name()
    mine = _mine(app, changelog)
    n = table.partitions or app.conf.topic_partitions
    items = [(k, v) for k, v in table.data.items() if partition_of(k, n) in mine]
    return render(items, names)


async def gathered_view(
    app: faust.App,
    table: Any,
    names: tuple[str, str, str],
    path: str,
    query: q.Query | None = None,
    auth: HttpAuth | None = None,
) -> tuple[Nested, list[str]]:
    """The whole table from all owners, filtered by `query` (its `top` applied last); the second
    item lists owners that did not answer (and `me` when partitions are held by no worker that
    answers, e.g. a killed one). With `auth`, the other workers are asked with its first
    credential (the next ones only when one is refused, as while credentials rotate)."""
    query = query or q.Query()
    changelog = table.changelog_topic.get_topic_name()
    me = str(app.conf.canonical_url).rstrip("/")
    out = q.select(local_view(app, table, names), query)
    owners = _owners(app, changelog)
    peers = [url for url in owners if url != me]
    failed: list[str] = []
    if not owners.get(me, set()) <= _mine(app, changelog):
        failed.append(me)  # a dead member with this worker's URL still holds partitions
    if peers:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            credentials = auth.client_headers() if auth is not None else [None]

            async def fetch(url: str) -> Nested | None:
                last = len(credentials) - 1
                try:
                    for n, credential in enumerate(credentials):
                        headers = {"Authorization": credential} if credential else None
                        params = query.local_params()
                        async with session.get(url + path, params=params, headers=headers) as resp:
                            if resp.status == 401 and n < last:
                                continue  # rotating: that worker does not know this one (yet)
                            resp.raise_for_status()
                            data: Nested = await resp.json()
                            return data
                except Exception as exc:
                    log.warning("view: %s did not answer: %s", url, exc)
                return None

            for url, part in zip(peers, await asyncio.gather(*map(fetch, peers)), strict=True):
                if part is None:
                    failed.append(url)
                else:
                    _merge(out, part)
    return q.top(out, query.top), failed


LOYALTY_PATH = "/analytics/loyalty"
REFERRALS_PATH = "/analytics/referrals"


def register(topo: Topology) -> None:
    app = topo.app
    for path, table, names, dims in (
        (LOYALTY_PATH, topo.loyalty, LOYALTY_COUNTERS, q.LOYALTY_DIMENSIONS),
        (REFERRALS_PATH, topo.referrals, REFERRAL_COUNTERS, q.REFERRAL_DIMENSIONS),
    ):
        _add(app, topo.health, path, table, names, dims, topo.http_auth)
    _add_health(app, topo.health)


def unready_reason(app: faust.App, health: Health) -> dict[str, Any] | None:
    """The 503 body when this worker's totals are not current, else None."""
    why = not_ready(app)
    if why is not None:
        return {"error": "not ready", "reason": why}
    if health.stalled:
        return {"error": "not current", "reason": "partitions stalled", "stalled": health.stalled}
    if health.unowned:
        reason = "the group does not hold every partition"
        return {"error": "not current", "reason": reason, "unowned": health.unowned}
    consumer = consumer_of(app)
    if consumer is not None and health.owned_generation != consumer.guard.generation:
        return {"error": "not ready", "reason": "checking that the group holds every partition"}
    return None


def _add(
    app: faust.App,
    health: Health,
    path: str,
    table: Any,
    names: tuple[str, str, str],
    dims: tuple[str, ...],
    auth: HttpAuth | None,
) -> None:
    async def get(self: View, request: Request) -> Response:
        try:
            query = q.parse(request.query, dims)
        except q.BadParameter as exc:
            return self.json(exc.body(), status=400)
        unready = unready_reason(app, health)
        if unready is not None:  # an empty, partial or stale answer would look like real totals
            return self.json(unready, status=503)
        if request.query.get("local") == "1":
            response = self.json(q.apply(local_view(app, table, names), query))
        else:
            data, failed = await gathered_view(app, table, names, path, query, auth)
            if failed:
                return self.json(
                    {"error": "some workers did not answer", "workers": failed}, status=503
                )
            response = self.json(data)
        if health.behind:  # current as of the records handled; these still wait
            response.headers["X-Streams-Behind"] = health.header()
        return response

    name = path.strip("/").replace("/", "-")
    app.page(path, name=name)(type(name, (View,), {"get": get}))


def assigned(app: faust.App, health: Health) -> int:
    """Partitions of the agents' source topics this worker holds."""
    consumer = consumer_of(app)
    if consumer is None:
        return 0
    return sum(tp.topic in health.sources for tp in consumer.guard.positions())


def _add_health(app: faust.App, health: Health) -> None:
    async def healthz(self: View, request: Request) -> Response:
        return self.json({"status": "alive"})

    async def readyz(self: View, request: Request) -> Response:
        unready = unready_reason(app, health)
        if unready is not None:
            return self.json({**unready, "behind": health.behind}, status=503)
        return self.json(
            {"status": "ready", "assigned": assigned(app, health), "behind": health.behind}
        )

    app.page("/healthz", name="healthz")(type("healthz", (View,), {"get": healthz}))
    app.page("/readyz", name="readyz")(type("readyz", (View,), {"get": readyz}))
