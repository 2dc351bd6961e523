"""The webhook's JSON straight to its Avro record (streams.models.serializers.from_webhook)
against the three steps it replaces: parse_webhook, the personal-data policy, the codec."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.dev.demo.generator import webhooks
from streams.models.customer_deleted import parse_webhook
from streams.models.errors import ValidationError
from streams.models.pii import PiiPolicy
from streams.models.serializers.avro import AvroCodec
from streams.models.serializers.codegen import Unsupported
from streams.models.serializers.from_webhook import compile_encoder, source_of
from streams.records import CustomerDeletedRecords
from streams.settings import Settings
from tests.models.strategies import MUTATED_WEBHOOKS, WEBHOOKS

POLICIES = {
    "redact": Settings(pii_policy="redact"),
    "hash": Settings(pii_policy="hash", pii_hash_key="k3y"),
    "keep": Settings(pii_policy="keep"),
}


@pytest.fixture(scope="module", params=sorted(POLICIES))
def records(request: pytest.FixtureRequest, codec: AvroCodec) -> CustomerDeletedRecords:
    return CustomerDeletedRecords(POLICIES[request.param], codec)


def _agree(records: CustomerDeletedRecords, payload: Any) -> bool:
    """from_payload either declines, or gives exactly build(parse_webhook(...))'s record.
    Returns whether it took the payload."""
    before = copy.deepcopy(payload)
    fast = records.from_payload(payload)
    assert payload == before  # never mutates its input
    try:
        datum = parse_webhook(copy.deepcopy(payload))
    except ValidationError as exc:
        assert fast is None, f"took what the contract rejects: {exc}"
        return False
    slow = records.build(datum)
    if fast is not None:
        assert fast == slow
    return fast is not None


def test_takes_the_usual_webhooks_and_agrees(
    records: CustomerDeletedRecords, example_payload: dict[str, Any]
) -> None:
    # Every webhook the demo sends, and the vendor's example, take the one pass.
    assert _agree(records, example_payload)
    for wh in webhooks(300, seed=5):
        assert _agree(records, json.loads(wh.body))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair=WEBHOOKS, policy=st.sampled_from(sorted(POLICIES)))
def test_agrees_on_generated_webhooks(codec: AvroCodec, pair: tuple[Any, Any], policy: str) -> None:
    _agree(CustomerDeletedRecords(POLICIES[policy], codec), json.loads(json.dumps(pair[0])))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=MUTATED_WEBHOOKS, policy=st.sampled_from(sorted(POLICIES)))
def test_agrees_on_mutated_webhooks(codec: AvroCodec, payload: Any, policy: str) -> None:
    _agree(CustomerDeletedRecords(POLICIES[policy], codec), payload)


def test_personal_data_never_reaches_the_record(codec: AvroCodec) -> None:
    payload = json.loads(next(iter(webhooks(1, seed=3))).body)
    customer = payload["data"]["customer"]
    customer["email"] = "ada@example.com"
    customer["address"] = {"line_1": "1 Secret Lane", "city": "Kraków"}
    redacted = CustomerDeletedRecords(POLICIES["redact"], codec).from_payload(payload)
    hashed = CustomerDeletedRecords(POLICIES["hash"], codec).from_payload(payload)
    kept = CustomerDeletedRecords(POLICIES["keep"], codec).from_payload(payload)
    assert redacted is not None and hashed is not None and kept is not None
    for _, value, _ in (redacted, hashed):
        assert b"ada@example.com" not in value and b"Secret Lane" not in value
        assert "Kraków".encode() in value  # the city is not personal
    assert b"ada@example.com" in kept[1]
    assert PiiPolicy("hash", "k3y").hash_value("ada@example.com").encode() in hashed[1]


def test_key_and_headers(codec: AvroCodec, example_payload: dict[str, Any]) -> None:
    record = CustomerDeletedRecords(POLICIES["redact"], codec).from_payload(example_payload)
    assert record is not None
    key, _, headers = record
    assert key == example_payload["data"]["customer"]["id"]
    names = dict(headers)
    assert names["event_type"] == "customer.deleted"
    assert names["schema_fingerprint"] == codec.fingerprint("CustomerDeleted").hex()
    assert names["event_id"] == example_payload["event"]["id"]
    no_event = {k: v for k, v in example_payload.items() if k not in ("event", "id")}
    record = CustomerDeletedRecords(POLICIES["redact"], codec).from_payload(no_event)
    assert record is not None
    assert [name for name, _ in record[2]] == ["event_type", "schema_fingerprint"]


def test_schema_registry_framing(mock_registry: Any, example_payload: dict[str, Any]) -> None:
    codec = AvroCodec(registry_client=mock_registry)
    records = CustomerDeletedRecords(POLICIES["redact"], codec)
    fast = records.from_payload(example_payload)
    assert fast is not None and fast[1][:1] == b"\x00"  # the Confluent wire format
    assert fast == records.build(parse_webhook(example_payload))


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {"data": None},
        {"data": {"customer": {"id": ""}}},
        {"data": {"customer": {"id": "c", "name": "\ud800"}}},
        {"data": {"customer": {"id": "c", "created_at": "yesterday"}}},
        {"data": {"customer": {"id": "c", "loyalty": {"points": 2.5}}}},
        {"data": {"customer": {"id": "c", "loyalty": {"campaigns": {"\ud800": {}}}}}},
        {"data": {"customer": {"id": "c", "metadata": {"\ud800": 1}}}},
        {"data": {"customer": {"id": "c", "created_at": "0001-01-01T00:00:00+01:00"}}},
        {"type": "customer.created", "data": {"customer": {"id": "c"}}},
    ],
)
def test_declines_what_the_contract_rejects(codec: AvroCodec, payload: Any) -> None:
    records = CustomerDeletedRecords(POLICIES["redact"], codec)
    assert records.from_payload(payload) is None
    _agree(records, payload)


@pytest.mark.parametrize(
    "customer",
    [
        {"created_at": "2024-01-01T00:00:00.000123Z"},  # truncated to milliseconds
        {"created_at": "2024-01-01T01:00:00+01:00"},  # to UTC
        {"loyalty": {"points": 2.0}},  # an integral number
        {"loyalty": {"campaigns": []}},  # PHP's empty object
        {"referrals": {"campaigns": [{"campaign_id": "camp_1", "date": None}]}},
        {"metadata": {"b": 1, "a": [None]}},
        {"loyalty": {"campaigns": {"Été 2024": {"points": 3}, "": {"points": 1}}}},
        {"created_at": "2024-01-01T00:00:00+00:00", "updated_at": "1969-12-31T23:59:59.9995Z"},
        {"source_id": "źdźbło-" + "x" * 80, "loyalty": {"points": 2**40}},
    ],
)
def test_converts_what_the_contract_converts(codec: AvroCodec, customer: dict[str, Any]) -> None:
    payload = {"type": "customer.deleted", "data": {"customer": {"id": "c", **customer}}}
    for policy in POLICIES:
        assert _agree(CustomerDeletedRecords(POLICIES[policy], codec), payload)


def test_legacy_referral_ids_take_the_converters(codec: AvroCodec) -> None:
    customer = {"id": "c", "referrals": {"campaigns": [{"campaign_id": "a"}, "camp_legacy"]}}
    payload = {"type": "customer.deleted", "data": {"customer": customer}}
    records = CustomerDeletedRecords(POLICIES["redact"], codec)
    assert records.from_payload(payload) is None
    assert not _agree(records, payload)
    datum = parse_webhook(payload)
    assert datum["data"]["customer"]["referrals"]["campaigns"][1]["campaign_id"] == "camp_legacy"


def _reshaped(codec: AvroCodec, change: Any) -> dict[str, Any]:
    schema = copy.deepcopy(codec.schema("CustomerDeleted"))
    change(schema)
    return schema


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s.update(fields=s["fields"][1:]),  # a field fewer
        lambda s: s["fields"][4].update(type="string"),  # data: a string, not a record
        lambda s: s["fields"][4].update(type=["null", "string", "long"]),  # a wider union
    ],
)
def test_refuses_a_schema_the_contract_does_not_line_up_with(codec: AvroCodec, change: Any) -> None:
    schema = _reshaped(codec, change)
    with pytest.raises(Unsupported):
        compile_encoder(schema, PiiPolicy())


def test_without_an_encoder_records_are_built_in_steps(
    codec: AvroCodec, example_payload: dict[str, Any]
) -> None:
    records = CustomerDeletedRecords(POLICIES["redact"], codec)
    records._encode = None  # what a codec whose schema does not line up leaves
    assert records.from_payload(example_payload) is None


def test_generated_source_is_one_straight_function(codec: AvroCodec) -> None:
    source = source_of(codec.schema("CustomerDeleted"), PiiPolicy())
    assert source.count("def ") == 1
    assert "email" in source and "_hash" not in source
