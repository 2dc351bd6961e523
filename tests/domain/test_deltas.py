"""Pure domain logic: deletion time, deltas, facts, idempotent key state."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from streams.domain.deltas import deletion_time, expired_days, plan, totals
from streams.domain.state import KeyState
from streams.models.customer_deleted import parse_webhook

EXAMPLE = Path(__file__).resolve().parents[1] / "data" / "customer-deleted.webhook.json"
FB = datetime(2020, 1, 1, tzinfo=UTC)


def _datum(customer: dict, **env: object) -> dict:
    return parse_webhook({"type": "customer.deleted", "data": {"customer": customer}, **env})


def test_example() -> None:
    d = parse_webhook(json.loads(EXAMPLE.read_text()))
    p = plan(d, FB)
    assert p.t == datetime(2024, 2, 1, 11, 16, 40, 950000, tzinfo=UTC)
    assert sorted(p.loyalty) == sorted(
        [
            ("total", "all", (301, 1, 1)),
            ("campaign", "Loyalty programme", (301, 1, 0)),
            ("tier", "ltr_0e30613ad01f044516", (301, 1, 0)),
            ("day", "2024-02-01", (301, 1, 0)),
        ]
    )
    assert p.referral == []
    assert p.fact == {
        "customer_id": "cust_7LvqCsUB9c8WyFP8JaLXchtF",
        "deleted_at": p.t,
        "points_lost": 301,
        "campaigns": ["Loyalty programme"],
        "tiers": ["ltr_0e30613ad01f044516"],
        "referral_campaigns": [],
        "referrers": [],
        "referred_customers": 0,
    }


def test_time_fallbacks() -> None:
    c = {"id": "c1", "updated_at": "2024-01-03T00:00:00Z"}
    assert deletion_time(_datum(c)) == datetime(2024, 1, 3, tzinfo=UTC)
    assert deletion_time(_datum(c, event={"created_at": "2024-01-02T00:00:00Z"})) == datetime(
        2024, 1, 2, tzinfo=UTC
    )
    assert deletion_time(
        _datum(c, created_at="2024-01-01T23:59:59Z", event={"created_at": "2024-01-02T00:00:00Z"})
    ) == datetime(2024, 1, 1, 23, 59, 59, tzinfo=UTC)
    assert plan(_datum({"id": "c2"}), FB).t == FB


def test_missing_sections_count_zero() -> None:
    p = plan(_datum({"id": "c1", "loyalty": None, "referrals": None}), FB)
    assert sorted(p.loyalty) == [("day", "2020-01-01", (0, 1, 0)), ("total", "all", (0, 1, 0))]
    assert p.referral == []


def test_referrals_distinct_and_legacy() -> None:
    c = {
        "id": "c1",
        "loyalty": {
            "referred_customers": 4,
            "campaigns": {
                "A": {"points": 5, "referred_customers": 3, "loyalty_tier": "ltr_x"},
                "B": {"redeemed_points": 1, "points_to_go": 2},
                "C": {"points": 7, "loyalty_tier": "ltr_x"},
            },
        },
        "referrals": {
            "campaigns": [
                {"campaign_id": "k1", "referrer_id": "r1"},
                {"campaign_id": "k1", "referrer_id": "r2"},
                {"campaign_id": "k2", "referrer_id": "r1"},
            ]
        },
    }
    p = plan(_datum(c), FB)
    assert dict(((d, k), v) for d, k, v in p.referral) == {
        ("referral_campaign", "k1"): (1, 0, 0),
        ("referral_campaign", "k2"): (1, 0, 0),
        ("referrer", "r1"): (1, 0, 0),
        ("referrer", "r2"): (1, 0, 0),
        ("advocates", "total"): (0, 1, 4),
        ("advocate_campaign", "A"): (0, 1, 3),
    }
    loyalty = dict(((d, k), v) for d, k, v in p.loyalty)
    assert loyalty[("campaign", "B")] == (0, 1, 0)
    assert loyalty[("tier", "ltr_x")] == (12, 2, 0)
    assert loyalty[("total", "all")] == (0, 1, 0)  # loyalty.points missing -> 0
    legacy = plan(_datum({"id": "c2", "referrals": {"campaigns": ["k9", "k9"]}}), FB)
    assert [(d, k) for d, k, _ in legacy.referral] == [("referral_campaign", "k9")]


def test_day_retention_is_relative_to_stream_time() -> None:
    d = _datum({"id": "c1"}, created_at="2024-01-01T10:00:00Z")
    stream_time = datetime(2024, 1, 10, tzinfo=UTC)  # the newest deletion seen before it
    kept = plan(d, FB, stream_time, timedelta(days=9))
    assert any(x[0] == "day" for x in kept.loyalty) and not kept.late
    late = plan(d, FB, stream_time, timedelta(days=8))
    assert not any(x[0] == "day" for x in late.loyalty) and late.late
    # ... and still counted everywhere else.
    assert [x for x in late.loyalty if x[0] != "day"] == [x for x in kept.loyalty if x[0] != "day"]
    # No stream time yet (the first deletion of a partition): never late, however old.
    assert not plan(d, FB, None, timedelta(days=1)).late


def test_totals_count_each_customer_once() -> None:
    d = _datum({"id": "c1", "loyalty": {"points": 10}}, created_at="2024-01-01T10:00:00Z")
    t = totals([d, d, d])
    assert t["loyalty"]["total"]["all"] == {
        "points_lost": 10,
        "customers": 1,
        "customers_with_points": 1,
    }


def test_key_state_idempotent_and_roundtrip() -> None:
    st = KeyState()
    assert st.apply((5, 1, 1), 100, 0, 7)
    assert not st.apply((5, 1, 1), 100, 0, 7)  # replay
    assert not st.apply((5, 1, 1), 100, 0, 3)  # older
    assert st.apply((2, 1, 0), 50, 3, 1)  # another source
    assert st.counters == (7, 2, 1) and st.updated_ms == 100
    again = KeyState.unpack(st.pack())
    assert again == st


def test_key_state_at_least_once_counts_replays() -> None:
    st = KeyState()
    assert st.apply((5, 1, 1), 100, 0, 7, exact=False)
    assert st.apply((5, 1, 1), 100, 0, 7, exact=False)
    assert st.counters == (10, 2, 2) and st.marks == {}


def test_expired_days_are_those_closed_before_the_retention() -> None:
    now = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)
    days = expired_days(now, timedelta(days=400), lookback_days=3)
    # 400 days before now is 2025-10-22 05:00; 2025-10-21 ended at 2025-10-22 00:00.
    assert days == ["2025-10-21", "2025-10-20", "2025-10-19"]
    t = datetime(2025, 10, 21, 12, tzinfo=UTC)
    assert plan(_datum_at(t), FB, now, timedelta(days=400)).loyalty == [
        d for d in plan(_datum_at(t), FB).loyalty if d[0] != "day"
    ]


def _datum_at(t: datetime) -> dict[str, object]:
    return {"created_at": t, "data": {"customer": {"id": "cust_1", "loyalty": {"points": 3}}}}
