"""Personal data of a deleted customer, applied to the parsed datum before it is encoded
(streams.models.serializers.from_webhook applies the same policy inline, field by field).

`redact` (default) sets the personal fields to None, `hash` replaces each with the hex
HMAC-SHA256 of its text keyed with PII_HASH_KEY (joinable, not reversible), `keep` leaves them.
Kept as is in every policy: id, source_id, address city/state/country, metadata, loyalty,
referral and summary data.
"""

from __future__ import annotations

import datetime as dt
import hmac
from typing import Any

POLICIES = ("redact", "hash", "keep")
#: Personal fields of `data.customer`.
CUSTOMER_FIELDS = ("name", "email", "phone", "birthdate", "description")
#: Personal fields of `data.customer.address`.
ADDRESS_FIELDS = ("line_1", "line_2", "postal_code")


class PiiPolicy:
    def __init__(self, policy: str = "redact", hash_key: str | bytes = "") -> None:
        if policy not in POLICIES:
            raise ValueError(f"PII policy: expected redact, hash or keep, got {policy!r}")
        if policy == "hash" and not hash_key:
            raise ValueError("PII policy hash needs a hash key")
        self.policy = policy
        self._key = hash_key.encode() if isinstance(hash_key, str) else hash_key

    def hash_value(self, value: Any) -> str:
        if isinstance(value, dt.date):
            text = value.isoformat()
        else:
            text = value if isinstance(value, str) else str(value)
        return hmac.digest(self._key, text.encode(), "sha256").hex()

    def apply(self, datum: dict[str, Any]) -> dict[str, Any]:
        """Applies the policy in place to `datum["data"]["customer"]`; returns `datum`."""
        if self.policy == "keep":
            return datum
        data = datum.get("data")
        customer = data.get("customer") if isinstance(data, dict) else None
        if not isinstance(customer, dict):
            return datum
        self._apply(customer, CUSTOMER_FIELDS)
        address = customer.get("address")
        if isinstance(address, dict):
            self._apply(address, ADDRESS_FIELDS)
        return datum

    def _apply(self, obj: dict[str, Any], names: tuple[str, ...]) -> None:
        redact = self.policy == "redact"
        for name in names:
            value = obj.get(name)
            if value is None:
                continue
            obj[name] = None if redact else self.hash_value(value)
