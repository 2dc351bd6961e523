"""Request classification: what a signed body is, without any I/O."""

from __future__ import annotations

import json
from typing import Any

import pytest

from streams.bridge.handlers import (
    CustomerDeleted,
    OtherEvent,
    Rejected,
    classify,
    is_json_content_type,
    loads,
)


def test_customer_deleted(example_body: bytes) -> None:
    found = classify(example_body)
    assert isinstance(found, CustomerDeleted)
    assert found.customer_id == "cust_7LvqCsUB9c8WyFP8JaLXchtF"
    assert found.datum["data"]["customer"]["name"] == "Lionel Johnson"


def test_other_event(example: dict[str, Any]) -> None:
    example["type"] = "customer.created"
    found = classify(json.dumps(example).encode())
    assert isinstance(found, OtherEvent)
    assert found.event_type == "customer.created"


@pytest.mark.parametrize(
    ("body", "status", "reason", "needle"),
    [
        (b"{not json", 400, "malformed_json", "malformed JSON"),
        (b"", 400, "malformed_json", "malformed JSON"),
        (b'{"type": "customer.deleted"', 400, "malformed_json", "malformed JSON"),
        (b"[" * 100000, 400, "malformed_json", "malformed JSON"),
        (b'{"type": "customer.deleted", "x": "\xff"}', 400, "invalid_utf8", "UTF-8"),
        (b"[1, 2]", 422, "invalid_payload", "JSON object"),
        (b'"customer.deleted"', 422, "invalid_payload", "JSON object"),
        (b'{"data": {}}', 422, "invalid_payload", "type: required field is missing"),
        (b'{"type": 7}', 422, "invalid_payload", "type: expected non-empty string"),
        (b'{"type": "customer.deleted"}', 422, "invalid_payload", "data"),
        (
            b'{"type": "customer.deleted", "data": {"customer": {"name": "x"}}}',
            422,
            "invalid_payload",
            "data.customer.id",
        ),
    ],
)
def test_rejected(body: bytes, status: int, reason: str, needle: str) -> None:
    found = classify(body)
    assert isinstance(found, Rejected)
    assert (found.status, found.reason) == (status, reason)
    assert needle in found.message


def test_validation_error_names_the_path(example: dict[str, Any]) -> None:
    example["data"]["customer"]["loyalty"]["points"] = "lots"
    found = classify(json.dumps(example).encode())
    assert isinstance(found, Rejected)
    assert found.status == 422
    assert found.message.startswith("data.customer.loyalty.points: ")


@pytest.mark.parametrize(
    ("ctype", "ok"),
    [
        ("application/json", True),
        ("application/vnd.api+json", True),
        ("text/plain", False),
        ("application/x-www-form-urlencoded", False),
        ("", False),
    ],
)
def test_json_content_type(ctype: str, ok: bool) -> None:
    assert is_json_content_type(ctype) is ok


@pytest.mark.parametrize(
    "body",
    [
        b'{"a":"\\ud800"}',
        b"[12345678901234567890123, -9223372036854775809, 18446744073709551615]",
        b"[NaN, Infinity, -Infinity]",
        b"[1e400]",
        b'{"a":1,"a":2}',
        b'{"s":"\\u00e9 \\n"}',
        b' {"a": [1.5, -0.0, 1e-7, 0.1]} ',
        b"[" * 3000 + b"]" * 3000,
    ],
)
def test_loads_has_json_semantics(body: bytes) -> None:
    def outcome(f: Any) -> Any:
        try:
            return repr(f(body))
        except (ValueError, RecursionError) as exc:
            return type(exc).__name__

    assert outcome(loads) == outcome(lambda b: json.loads(b.decode()))
