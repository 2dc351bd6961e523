"""A CustomerDeleted datum -> deletion time, per-key counter deltas and the CustomerDeletion fact.

Pure functions over the codec's datum (the webhook's nesting; aware UTC datetimes; missing or
null sections are None and count as zero). Deltas come summed per (dimension, key), so the worker
sends one re-keyed message per key touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

# Counter names in the order the worker packs them (see streams.domain.state).
LOYALTY_COUNTERS = ("points_lost", "customers", "customers_with_points")
REFERRAL_COUNTERS = ("referees_lost", "advocates_lost", "referred_customers_orphaned")

Counters = tuple[int, int, int]
Delta = tuple[str, str, Counters]  # (dimension, key, counters in *_COUNTERS order)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _int(value: Any) -> int:
    return value if type(value) is int else 0


def _section(parent: Any, name: str) -> dict[str, Any]:
    if isinstance(parent, dict):
        value = parent.get(name)
        if isinstance(value, dict):
            return value
    return {}


def customer_of(datum: dict[str, Any]) -> dict[str, Any]:
    return _section(_section(datum, "data"), "customer")


def customer_id(datum: dict[str, Any]) -> str | None:
    cid = customer_of(datum).get("id")
    return cid if isinstance(cid, str) and cid else None


def deletion_time(datum: dict[str, Any]) -> datetime | None:
    """T: the envelope's created_at, else event.created_at, else customer.updated_at."""
    for value in (
        datum.get("created_at"),
        _section(datum, "event").get("created_at"),
        customer_of(datum).get("updated_at"),
    ):
        if isinstance(value, datetime):
            return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return None


def to_millis(t: datetime) -> int:
    return (t - _EPOCH) // timedelta(milliseconds=1)


def from_millis(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def day_key(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d")


def _add(acc: dict[tuple[str, str], list[int]], dim: str, key: str, a: int, b: int, c: int) -> None:
    cur = acc.get((dim, key))
    if cur is None:
        acc[(dim, key)] = [a, b, c]
    else:
        cur[0] += a
        cur[1] += b
        cur[2] += c


def _campaigns(loyalty: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    campaigns = loyalty.get("campaigns")
    if not isinstance(campaigns, dict):
        return []
    return [(name, e if isinstance(e, dict) else {}) for name, e in campaigns.items()]


def _referrals(customer: dict[str, Any]) -> list[dict[str, Any]]:
    campaigns = _section(customer, "referrals").get("campaigns")
    if not isinstance(campaigns, list):
        return []
    out = []
    for item in campaigns:
        if isinstance(item, str):  # legacy shape: bare campaign id
            out.append({"campaign_id": item})
        elif isinstance(item, dict):
            out.append(item)
    return out


def _distinct(values: list[Any]) -> list[str]:
    return list(dict.fromkeys(v for v in values if isinstance(v, str) and v))


def loyalty_deltas(datum: dict[str, Any], t: datetime | None) -> list[Delta]:
    """LoyaltyPointsLost deltas: total/all, campaign/<name>, tier/<ltr id>, day/<YYYY-MM-DD>.

    The day delta is left out when `t` is None.
    """
    loyalty = _section(customer_of(datum), "loyalty")
    points = _int(loyalty.get("points"))
    acc: dict[tuple[str, str], list[int]] = {}
    _add(acc, "total", "all", points, 1, 1 if points > 0 else 0)
    for name, entry in _campaigns(loyalty):
        p = _int(entry.get("points"))
        _add(acc, "campaign", name, p, 1, 0)
        tier = entry.get("loyalty_tier")
        if isinstance(tier, str) and tier:
            _add(acc, "tier", tier, p, 1, 0)
    if t is not None:
        _add(acc, "day", day_key(t), points, 1, 0)
    return [(d, k, (v[0], v[1], v[2])) for (d, k), v in acc.items()]


def referral_deltas(datum: dict[str, Any]) -> list[Delta]:
    """ReferralImpact deltas: referral_campaign, referrer, advocates/total, advocate_campaign.

    Keys whose counters would all stay zero are left out.
    """
    customer = customer_of(datum)
    acc: dict[tuple[str, str], list[int]] = {}
    refs = _referrals(customer)
    for cid in _distinct([r.get("campaign_id") for r in refs]):
        _add(acc, "referral_campaign", cid, 1, 0, 0)
    for rid in _distinct([r.get("referrer_id") for r in refs]):
        _add(acc, "referrer", rid, 1, 0, 0)
    loyalty = _section(customer, "loyalty")
    referred = _int(loyalty.get("referred_customers"))
    if referred > 0:
        _add(acc, "advocates", "total", 0, 1, referred)
    for name, entry in _campaigns(loyalty):
        n = _int(entry.get("referred_customers"))
        if n > 0:
            _add(acc, "advocate_campaign", name, 0, 1, n)
    return [(d, k, (v[0], v[1], v[2])) for (d, k), v in acc.items()]


def deletion_fact(datum: dict[str, Any], t: datetime) -> dict[str, Any]:
    """The CustomerDeletion datum: ids and counts only, no personal data."""
    customer = customer_of(datum)
    loyalty = _section(customer, "loyalty")
    campaigns = _campaigns(loyalty)
    refs = _referrals(customer)
    return {
        "customer_id": customer.get("id") or "",
        "deleted_at": t,
        "points_lost": _int(loyalty.get("points")),
        "campaigns": [name for name, _ in campaigns],
        "tiers": _distinct([e.get("loyalty_tier") for _, e in campaigns]),
        "referral_campaigns": _distinct([r.get("campaign_id") for r in refs]),
        "referrers": _distinct([r.get("referrer_id") for r in refs]),
        "referred_customers": _int(loyalty.get("referred_customers")),
    }


@dataclass(frozen=True)
class Plan:
    """Everything one counted deletion contributes."""

    customer_id: str
    t: datetime
    loyalty: list[Delta]
    referral: list[Delta]
    fact: dict[str, Any]
    late: bool = False  # older than the day window's retention: no day delta


def plan(
    datum: dict[str, Any],
    fallback: datetime,
    stream_time: datetime | None = None,
    day_retention: timedelta | None = None,
) -> Plan:
    """The deltas and fact of one deletion.

    `fallback` is T when the datum carries no timestamp (the worker passes the Kafka record's
    timestamp). With `stream_time` (the newest deletion time seen before this one, as in Kafka
    Streams: not the wall clock, so a backfill of last year's webhooks gets its days) and
    `day_retention`, a day whose window closed longer than the retention before the stream time
    gets no delta: the deletion is late, and still counts in every other dimension.
    """
    cid = customer_id(datum)
    if cid is None:
        raise ValueError("data.customer.id is missing")
    t = deletion_time(datum) or fallback
    day_t: datetime | None = t
    late = (
        stream_time is not None
        and day_retention is not None
        and day_closed_before(t, stream_time - day_retention)
    )
    if late:
        day_t = None
    return Plan(
        cid, t, loyalty_deltas(datum, day_t), referral_deltas(datum), deletion_fact(datum, t), late
    )


def day_closed_before(t: datetime, cutoff: datetime) -> bool:
    """True when the UTC day holding `t` ended at or before `cutoff`."""
    start = t.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return start + timedelta(days=1) <= cutoff


def expired_days(now: datetime, retention: timedelta, lookback_days: int = 30) -> list[str]:
    """The `day` keys whose window closed longer than `retention` ago, newest first, going back
    `lookback_days` (the expiry timer runs hourly, so a short look-back suffices)."""
    cutoff = now - retention
    last = cutoff.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    last -= timedelta(days=1)  # the newest day that ended at or before the cutoff
    return [day_key(last - timedelta(days=i)) for i in range(lookback_days)]


def totals(datums: list[dict[str, Any]], fallback: datetime | None = None) -> dict[str, Any]:
    """Reference model: exact totals over deletions, each customer id counted once (first wins).

    Returns {"loyalty": {dim: {key: {counter: n}}}, "referrals": {...}} like the web views
    (without updated_at).
    """
    seen: set[str] = set()
    loyalty: dict[str, dict[str, dict[str, int]]] = {}
    referrals: dict[str, dict[str, dict[str, int]]] = {}
    fb = fallback or _EPOCH
    for datum in datums:
        cid = customer_id(datum)
        if cid is None or cid in seen:
            continue
        seen.add(cid)
        p = plan(datum, fb)
        for out, names, deltas in (
            (loyalty, LOYALTY_COUNTERS, p.loyalty),
            (referrals, REFERRAL_COUNTERS, p.referral),
        ):
            for dim, key, counters in deltas:
                cur = out.setdefault(dim, {}).setdefault(key, dict.fromkeys(names, 0))
                for name, n in zip(names, counters, strict=True):
                    cur[name] += n
    return {"loyalty": loyalty, "referrals": referrals}
