"""One valid datum per record schema other than CustomerDeleted (that one is the example)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

NOW = datetime(2024, 2, 1, 11, 16, 40, 950000, tzinfo=UTC)
SAMPLES: dict[str, dict[str, Any]] = {
    "DeadLetter": {
        "body": b'{"broken":',
        "reason": "malformed_json",
        "message": "Expecting value: line 1 column 11",
        "headers": {"content-type": "application/json"},
        "received_at": NOW,
    },
    "LoyaltyPointsLost": {
        "dimension": "campaign",
        "key": "Loyalty programme",
        "points_lost": 2**40,
        "customers": 3,
        "customers_with_points": 2,
        "updated_at": NOW,
    },
    "ReferralImpact": {
        "dimension": "all",
        "key": "",
        "referees_lost": 1,
        "advocates_lost": 0,
        "referred_customers_orphaned": 4,
        "updated_at": NOW,
    },
    "CustomerDeletion": {
        "customer_id": "cust_1",
        "deleted_at": NOW,
        "points_lost": 301,
        "campaigns": ["Loyalty programme"],
        "tiers": ["ltr_1"],
        "referral_campaigns": [],
        "referrers": ["cust_0"],
        "referred_customers": 0,
    },
}
