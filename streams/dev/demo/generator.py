"""Realistic signed customer.deleted webhooks, deterministic for a seed."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

LOYALTY_CAMPAIGNS: dict[str, list[str]] = {
    "Loyalty programme": ["ltr_lp_bronze", "ltr_lp_silver", "ltr_lp_gold"],
    "Coffee Club": ["ltr_cc_regular", "ltr_cc_barista"],
    "Summer Rewards 2024": [],
    "Frequent Flyer": ["ltr_ff_blue", "ltr_ff_silver", "ltr_ff_gold", "ltr_ff_platinum"],
    "Student Perks": [],
}
REFERRAL_CAMPAIGNS = ["camp_refer_a_friend", "camp_spring_referrals", "camp_ambassadors"]
FIRST = ["Ada", "Lionel", "Maria", "Kenji", "Zoë", "Olu", "Priya", "Jan", "Chloé", "Mateo"]
LAST = ["Johnson", "Nowak", "Silva", "Tanaka", "Okafor", "Müller", "Rossi", "Kowalski"]
CITIES = [
    ("Nottingham", "England", "United Kingdom"),
    ("Kraków", None, "Poland"),
    ("Lyon", None, "France"),
    ("Austin", "TX", "United States"),
]


@dataclass(frozen=True)
class Webhook:
    customer_id: str
    body: bytes
    duplicate: bool


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def customer(
    rng: random.Random, n: int, deleted_at: datetime, referrers: list[str]
) -> dict[str, Any]:
    cid = f"cust_demo{n:08d}{rng.randrange(16**6):06x}"
    first, last = rng.choice(FIRST), rng.choice(LAST)
    created = deleted_at - timedelta(days=rng.randint(1, 900))
    campaigns: dict[str, Any] = {}
    for name in rng.sample(sorted(LOYALTY_CAMPAIGNS), rng.choice([0, 1, 1, 1, 2, 2, 3])):
        tiers = LOYALTY_CAMPAIGNS[name]
        entry: dict[str, Any] = {
            "points": rng.choice([0, rng.randint(1, 500), rng.randint(500, 20000)]),
            "referred_customers": rng.choice([0, 0, 0, 1, 2, 5]),
        }
        if tiers and rng.random() < 0.8:
            entry["loyalty_tier"] = rng.choice(tiers)
        campaigns[name] = entry
    referred = sum(e["referred_customers"] for e in campaigns.values())
    ref_campaigns: list[Any] = []
    if rng.random() < 0.3:
        for camp in rng.sample(REFERRAL_CAMPAIGNS, rng.randint(1, 2)):
            ref_campaigns.append(
                {
                    "campaign_id": camp,
                    "referrer_id": rng.choice(referrers),
                    "related_object_id": f"r_{rng.randrange(16**10):010x}",
                    "related_object_type": "redemption",
                    "date": _iso(created + timedelta(hours=1)),
                }
            )
    city, state, country = rng.choice(CITIES)
    orders = rng.randint(0, 40)
    amount = orders * rng.randint(500, 20000)
    return {
        "id": cid,
        "source_id": f"{first.lower()}-{last.lower()}-{n}_deleted{_iso(deleted_at)}",
        "name": f"{first} {last}",
        "email": f"{first.lower()}.{last.lower()}{n}@example.com",
        "phone": f"+44 7700 9{n % 100000:05d}",
        "birthdate": f"19{rng.randint(50, 99)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
        "description": None,
        "object": "customer",
        "address": {
            "city": city,
            "state": state,
            "line_1": f"{rng.randint(1, 200)} High Street",
            "country": country,
            "postal_code": f"NG{rng.randint(1, 9)} 1AA",
        },
        "metadata": {"segment": rng.choice(["vip", "regular", "new"]), "tags": ["demo"]},
        "system_metadata": {},
        "loyalty": {
            "points": sum(e["points"] for e in campaigns.values()),
            "referred_customers": referred,
            "campaigns": campaigns,
        },
        "referrals": {"total": len(ref_campaigns), "campaigns": ref_campaigns},
        "summary": {
            "orders": {
                "total_amount": amount,
                "total_count": orders,
                "average_amount": amount // orders if orders else 0,
                "last_order_amount": rng.randint(500, 20000) if orders else 0,
                "last_order_date": _iso(deleted_at - timedelta(days=3)) if orders else None,
            },
            "redemptions": {
                "total_redeemed": orders // 2,
                "total_failed": 0,
                "total_succeeded": orders // 2,
                "total_rolled_back": 0,
                "total_rollback_failed": 0,
                "total_rollback_succeeded": 0,
                "gift": {"redeemed_amount": 0, "amount_to_go": 0},
                "loyalty_card": {"redeemed_points": 0, "points_to_go": 0},
            },
        },
        "created_at": _iso(created),
        "updated_at": _iso(deleted_at),
    }


def envelope(rng: random.Random, cust: dict[str, Any], deleted_at: datetime) -> dict[str, Any]:
    return {
        "id": f"whs_{rng.randrange(16**18):018x}",
        "project_id": "proj_demo",
        "created_at": _iso(deleted_at + timedelta(milliseconds=15)),
        "type": "customer.deleted",
        "data": {"customer": cust},
        "source": {
            "id": "wh_demo",
            "object": "webhook",
            "target_url": "http://localhost:8080/webhooks/voucherify",
        },
        "event": {
            "id": f"evcus_{rng.randrange(16**18):018x}",
            "type": "customer.deleted",
            "created_at": _iso(deleted_at + timedelta(milliseconds=5)),
            "entity_id": cust["id"],
            "group_id": f"v-{rng.randrange(16**18):018x}",
            "event_source": {
                "channel": rng.choice(["API", "USER_PORTAL"]),
                "api_key": {"name": "backend", "app_id": "app-demo"},
            },
        },
    }


def webhooks(
    count: int, duplicates: float = 0.1, seed: int | None = None, start: datetime | None = None
) -> Iterator[Webhook]:
    """`count` deliveries; about `duplicates` of them re-send an earlier customer's deletion
    (with a new sendout id, as Voucherify's manual re-sends do)."""
    rng = random.Random(seed)
    # Recent days by default, so the per-day window (kept 400 days) counts them.
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = start or today - timedelta(days=60)
    referrers = [f"cust_referrer{i:04d}" for i in range(max(5, count // 50))]
    sent: list[dict[str, Any]] = []
    n = 0
    for _ in range(count):
        if sent and rng.random() < duplicates:
            again = dict(rng.choice(sent))
            again["id"] = f"whs_{rng.randrange(16**18):018x}"
            yield Webhook(again["data"]["customer"]["id"], compact(again), True)
            continue
        deleted_at = start + timedelta(seconds=rng.randint(0, 59 * 86400))
        env = envelope(rng, customer(rng, n, deleted_at, referrers), deleted_at)
        n += 1
        sent.append(env)
        yield Webhook(env["data"]["customer"]["id"], compact(env), False)


def compact(payload: dict[str, Any]) -> bytes:
    """The body as Voucherify sends it: JSON with no whitespace outside strings."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
