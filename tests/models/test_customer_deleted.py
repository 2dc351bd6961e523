"""The webhook contract: parsing, normalisation and the precise error of each invalid input."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings

from streams.models import (
    ValidationError,
    datum_to_json,
    envelope_from_data,
    parse_webhook,
)
from tests.models.strategies import WEBHOOKS, without_nones


def test_example_parses_with_nothing_lost(example_payload: dict[str, Any]) -> None:
    datum = parse_webhook(example_payload)
    assert datum["created_at"] == datetime(2024, 2, 1, 11, 16, 40, 950000, tzinfo=UTC)
    assert datum["data"]["customer"]["system_metadata"] == "{}"
    assert datum["data"]["customer"]["phone"] is None
    assert without_nones(datum_to_json(datum)) == example_payload


def test_legacy_shapes_are_normalised() -> None:
    datum = parse_webhook(
        {
            "type": "customer.deleted",
            "data": {
                "customer": {
                    "id": "cust_1",
                    "loyalty": {"campaigns": {"Old": {"redeemed_points": 5, "points_to_go": 7}}},
                    "referrals": {"total": 1, "campaigns": ["camp_1", {"campaign_id": "camp_2"}]},
                    "metadata": {"b": [1, 2], "a": "ü"},
                }
            },
        }
    )
    customer = datum["data"]["customer"]
    assert customer["loyalty"]["campaigns"]["Old"] == {
        "points": None,
        "loyalty_tier": None,
        "referred_customers": None,
        "redeemed_points": 5,
        "points_to_go": 7,
    }
    assert [c["campaign_id"] for c in customer["referrals"]["campaigns"]] == ["camp_1", "camp_2"]
    assert customer["referrals"]["campaigns"][0]["referrer_id"] is None
    assert customer["metadata"] == '{"a":"ü","b":[1,2]}'


def test_unknown_fields_dropped_missing_fields_none() -> None:
    datum = parse_webhook({"data": {"customer": {"id": "c", "new_thing": 1}}, "webhook_id": "x"})
    assert "new_thing" not in datum["data"]["customer"]
    assert "webhook_id" not in datum
    assert datum["id"] is None and datum["type"] is None and datum["event"] is None


def test_envelope_from_data() -> None:
    datum = envelope_from_data({"customer": {"id": "cust_9"}})
    assert datum["type"] == "customer.deleted"
    assert datum["data"]["customer"]["id"] == "cust_9"
    assert datum["id"] is None and datum["source"] is None
    with pytest.raises(ValidationError, match=r"^data\.customer\.id: required field is missing$"):
        envelope_from_data({"customer": {}})


def test_timestamps_normalised_to_utc_millis() -> None:
    datum = envelope_from_data(
        {"customer": {"id": "c", "created_at": "2024-02-01T12:16:40.950999+01:00"}}
    )
    assert datum["data"]["customer"]["created_at"] == datetime(
        2024, 2, 1, 11, 16, 40, 950000, tzinfo=UTC
    )


def test_integral_floats_accepted_as_integers() -> None:
    datum = envelope_from_data({"customer": {"id": "c", "loyalty": {"points": 301.0}}})
    assert datum["data"]["customer"]["loyalty"]["points"] == 301
    assert type(datum["data"]["customer"]["loyalty"]["points"]) is int


def _customer(**fields: Any) -> dict[str, Any]:
    return {"type": "customer.deleted", "data": {"customer": {"id": "cust_1", **fields}}}


INVALID: list[tuple[object, str]] = [
    ([], ": expected object, got array"),
    ("x", ": expected object, got string"),
    ({}, "data: required field is missing"),
    ({"data": None}, "data: must not be null"),
    ({"data": []}, "data: expected object, got array"),
    ({"data": {}}, "data.customer: required field is missing"),
    ({"data": {"customer": {}}}, "data.customer.id: required field is missing"),
    ({"data": {"customer": {"id": None}}}, "data.customer.id: must not be null"),
    (
        {"data": {"customer": {"id": ""}}},
        "data.customer.id: expected non-empty string, got empty string",
    ),
    ({"data": {"customer": {"id": 7}}}, "data.customer.id: expected non-empty string, got integer"),
    (
        {"type": "customer.created", "data": {"customer": {"id": "c"}}},
        'type: expected "customer.deleted", got "customer.created"',
    ),
    (
        {"type": 3, "data": {"customer": {"id": "c"}}},
        'type: expected "customer.deleted", got integer',
    ),
    (
        _customer(loyalty={"points": "1"}),
        "data.customer.loyalty.points: expected integer, got string",
    ),
    (
        _customer(loyalty={"points": True}),
        "data.customer.loyalty.points: expected integer, got boolean",
    ),
    (
        _customer(loyalty={"points": 1.5}),
        "data.customer.loyalty.points: expected integer, got number",
    ),
    (
        _customer(loyalty={"points": 2**63}),
        "data.customer.loyalty.points: expected 64-bit integer, got an out-of-range integer",
    ),
    (
        _customer(loyalty={"points": -(2**63) - 1}),
        "data.customer.loyalty.points: expected 64-bit integer, got an out-of-range integer",
    ),
    (
        _customer(loyalty={"campaigns": {"Loyalty programme": {"points": "x"}}}),
        'data.customer.loyalty.campaigns["Loyalty programme"].points: expected integer, got string',
    ),
    (
        _customer(loyalty={"campaigns": {"A": None}}),
        'data.customer.loyalty.campaigns["A"]: expected object, got null',
    ),
    (
        _customer(loyalty={"campaigns": [1]}),
        "data.customer.loyalty.campaigns: expected object, got array",
    ),
    (
        _customer(referrals={"campaigns": ["ok", 3]}),
        "data.customer.referrals.campaigns[1]: expected object or string, got integer",
    ),
    (
        _customer(referrals={"campaigns": [{"date": "yesterday"}]}),
        "data.customer.referrals.campaigns[0].date: "
        "expected ISO-8601 timestamp, got an unparseable string",
    ),
    (
        _customer(referrals={"campaigns": {"a": 1}}),
        "data.customer.referrals.campaigns: expected array, got object",
    ),
    (
        _customer(created_at=1706786200000),
        "data.customer.created_at: expected ISO-8601 timestamp, got integer",
    ),
    (_customer(address="Main St"), "data.customer.address: expected object, got string"),
    (_customer(address={"city": 5}), "data.customer.address.city: expected string, got integer"),
    (
        _customer(name="\ud800"),
        "data.customer.name: expected string, got a string with an unpaired surrogate",
    ),
    (
        _customer(metadata={"k": "\udfff"}),
        "data.customer.metadata: expected string, got a string with an unpaired surrogate",
    ),
    (
        _customer(summary={"redemptions": {"gift": {"amount_to_go": "1"}}}),
        "data.customer.summary.redemptions.gift.amount_to_go: expected integer, got string",
    ),
    (
        {"data": {"customer": {"id": "c"}}, "event": {"event_source": {"user": {"id": 1}}}},
        "event.event_source.user.id: expected string, got integer",
    ),
    ({"data": {"customer": {"id": "c"}}, "source": []}, "source: expected object, got array"),
]


@pytest.mark.parametrize(("payload", "message"), INVALID, ids=[m for _, m in INVALID])
def test_invalid_inputs_name_path_and_rule(payload: object, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_webhook(payload)
    assert str(info.value) == message
    assert f"{info.value.path}: {info.value.rule}" == message
    assert info.value.code == "invalid_payload"


def test_parse_does_not_mutate_input(example_payload: dict[str, Any]) -> None:
    before = copy.deepcopy(example_payload)
    parse_webhook(example_payload)
    assert example_payload == before


def test_validation_error_pickles() -> None:
    import pickle

    err = pickle.loads(pickle.dumps(ValidationError("a.b", "rule", "code_x")))
    assert (err.path, err.rule, err.code, str(err)) == ("a.b", "rule", "code_x", "a.b: rule")


@settings(max_examples=150, deadline=None)
@given(WEBHOOKS)
def test_generated_webhooks_keep_known_fields(pair: tuple[dict[str, Any], dict[str, Any]]) -> None:
    raw, expected = pair
    # Through real JSON text, as the bridge receives it.
    datum = parse_webhook(json.loads(json.dumps(raw)))
    assert datum_to_json(datum) == expected
