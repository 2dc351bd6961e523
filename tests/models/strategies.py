"""Hypothesis strategies: raw webhook payloads (with what must survive) and generic Avro datums."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

LONGS = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([0, 1, -1, 2**31, 2**32 + 7, 2**63 - 1, -(2**63)]),
)
TEXT = st.text(max_size=12)
MISSING = object()

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MILLIS = st.integers(
    int((datetime(1, 1, 1, tzinfo=UTC) - _EPOCH).total_seconds() * 1000),
    int((datetime(9999, 12, 31, tzinfo=UTC) - _EPOCH).total_seconds() * 1000),
)
DATETIMES = MILLIS.map(lambda ms: _EPOCH + timedelta(milliseconds=ms))


def without_nones(value: Any) -> Any:
    """`value` with None-valued object members removed, recursively."""
    if isinstance(value, dict):
        return {k: without_nones(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nones(v) for v in value]
    return value


def iso(dt: datetime) -> str:
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


TIMESTAMPS = DATETIMES.map(iso)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | LONGS | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
UNKNOWN = st.dictionaries(
    st.text(min_size=1, max_size=6).map(lambda k: "x_" + k), JSON_VALUES, max_size=2
)


@st.composite
def record(
    draw: st.DrawFn, spec: dict[str, Any], required: tuple[str, ...] = ()
) -> tuple[Any, Any]:
    """(raw JSON object, the webhook-shaped JSON that must come back) for a field spec.

    A spec value is a strategy of (raw, expected) pairs. Absent and null both come back as None.
    """
    raw: dict[str, Any] = {}
    expected: dict[str, Any] = {}
    for key, strategy in spec.items():
        state = "value" if key in required else draw(st.sampled_from(["missing", "null", "value"]))
        if state == "value":
            raw[key], expected[key] = draw(strategy)
        else:
            if state == "null":
                raw[key] = None
            expected[key] = None
    for key, value in draw(UNKNOWN).items():
        raw.setdefault(key, value)  # unknown fields: sent, never kept
    return raw, expected


def same(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[Any, Any]]:
    return strategy.map(lambda v: (v, v))


S, L, T = same(TEXT), same(LONGS), same(TIMESTAMPS)
INTEGRAL_FLOATS = st.integers(-(2**52), 2**52).map(lambda i: (float(i), i))


def rec(spec: dict[str, Any], required: tuple[str, ...] = ()) -> st.SearchStrategy[tuple[Any, Any]]:
    return record(spec, required)


LOYALTY_CAMPAIGN = rec(
    {
        "points": st.one_of(L, INTEGRAL_FLOATS),
        "loyalty_tier": S,
        "referred_customers": L,
        "redeemed_points": L,
        "points_to_go": L,
    }
)
_REF_FIELDS = {
    "campaign_id": S,
    "referrer_id": S,
    "related_object_id": S,
    "related_object_type": S,
    "date": T,
}


@st.composite
def referral_entry(draw: st.DrawFn) -> tuple[Any, Any]:
    if draw(st.booleans()):
        cid = draw(TEXT)  # legacy: a bare campaign id
        return cid, {"campaign_id": cid, **{k: None for k in _REF_FIELDS if k != "campaign_id"}}
    return draw(rec(_REF_FIELDS))


def _pairs_list(item: st.SearchStrategy[tuple[Any, Any]]) -> st.SearchStrategy[tuple[Any, Any]]:
    return st.lists(item, max_size=3).map(lambda ps: ([p[0] for p in ps], [p[1] for p in ps]))


def _pairs_map(item: st.SearchStrategy[tuple[Any, Any]]) -> st.SearchStrategy[tuple[Any, Any]]:
    return st.dictionaries(TEXT, item, max_size=3).map(
        lambda d: ({k: v[0] for k, v in d.items()}, {k: v[1] for k, v in d.items()})
    )


CUSTOMER = rec(
    {
        "id": same(st.text(min_size=1, max_size=20)),
        "source_id": S,
        "name": S,
        "email": S,
        "phone": S,
        "description": S,
        "birthdate": S,
        "object": S,
        "created_at": T,
        "updated_at": T,
        "assets": rec({"cockpit_url": S}),
        "address": rec(
            {k: S for k in ("city", "state", "line_1", "line_2", "country", "postal_code")}
        ),
        "metadata": same(st.dictionaries(TEXT, JSON_VALUES, max_size=4)),
        "system_metadata": same(JSON_VALUES.filter(lambda v: v is not None)),
        "summary": rec(
            {
                "orders": rec(
                    {
                        "total_amount": L,
                        "total_count": L,
                        "average_amount": L,
                        "last_order_amount": L,
                        "last_order_date": T,
                    }
                ),
                "redemptions": rec(
                    {
                        **{
                            k: L
                            for k in (
                                "total_redeemed",
                                "total_failed",
                                "total_succeeded",
                                "total_rolled_back",
                                "total_rollback_failed",
                                "total_rollback_succeeded",
                            )
                        },
                        "gift": rec({"redeemed_amount": L, "amount_to_go": L}),
                        "loyalty_card": rec({"redeemed_points": L, "points_to_go": L}),
                    }
                ),
            }
        ),
        "loyalty": rec(
            {"points": L, "referred_customers": L, "campaigns": _pairs_map(LOYALTY_CAMPAIGN)}
        ),
        "referrals": rec({"total": L, "campaigns": _pairs_list(referral_entry())}),
    },
    required=("id",),
)

WEBHOOKS = rec(
    {
        "id": S,
        "project_id": S,
        "created_at": T,
        "type": same(st.just("customer.deleted")),
        "data": rec({"customer": CUSTOMER}, required=("customer",)),
        "source": rec({"id": S, "object": S, "target_url": S}),
        "event": rec(
            {
                "id": S,
                "type": S,
                "created_at": T,
                "entity_id": S,
                "group_id": S,
                "event_source": rec(
                    {
                        "channel": same(
                            st.sampled_from(["USER_PORTAL", "API", "CLIENT_API"]) | TEXT
                        ),
                        "user": rec({"id": S}),
                        "api_key": rec({"name": S, "app_id": S}),
                    }
                ),
            }
        ),
    },
    required=("data",),
)


def from_schema(schema: Any, named: dict[str, Any] | None = None) -> st.SearchStrategy[Any]:
    """Datums of a fastavro-parsed schema (the subset the project's schemas use)."""
    if named is None:
        named = dict(schema.get("__named_schemas", {})) if isinstance(schema, dict) else {}
    if isinstance(schema, list):
        return st.one_of(*(from_schema(b, named) for b in schema))
    if isinstance(schema, str):
        primitives: dict[str, st.SearchStrategy[Any]] = {
            "null": st.none(),
            "string": TEXT,
            "long": LONGS,
            "int": st.integers(-(2**31), 2**31 - 1),
            "bytes": st.binary(max_size=16),
            "boolean": st.booleans(),
            "double": st.floats(allow_nan=False),
        }
        if schema in primitives:
            return primitives[schema]
        return st.deferred(lambda: from_schema(named[schema], named))
    if schema.get("logicalType") == "timestamp-millis":
        return DATETIMES
    kind = schema["type"]
    if kind == "record":
        return st.fixed_dictionaries(
            {f["name"]: from_schema(f["type"], named) for f in schema["fields"]}
        )
    if kind == "array":
        return st.lists(from_schema(schema["items"], named), max_size=2)
    if kind == "map":
        return st.dictionaries(TEXT, from_schema(schema["values"], named), max_size=2)
    return from_schema(kind, named)


# -- webhooks with odd values in odd places (for the fast paths against the converters) ------


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


ODD_VALUES = (
    JSON_VALUES
    | st.sampled_from(
        [
            "",
            "\ud800",
            "ü",
            2.0,
            2.5,
            2**63,
            -(2**63) - 1,
            True,
            [],
            {},
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00.000123Z",
            "2024-01-01T01:00:00+01:00",
            "2024-01-01T00:00:00+00:00",
            "2024-01-01T00:00:00-00:00",
            "1969-12-31T23:59:59.9995Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "not a date",
            "customer.deleted",
        ]
    )
    | LONGS
)


@st.composite
def _mutated(draw: st.DrawFn) -> Any:
    """A generated webhook, as JSON parses it, with 1-3 values replaced or keys removed."""
    payload = json.loads(json.dumps(draw(WEBHOOKS)[0]))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(payload)))
        replacement = draw(ODD_VALUES)
        if not path:
            return replacement
        parent = payload
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = replacement
    return payload


MUTATED_WEBHOOKS = _mutated()
