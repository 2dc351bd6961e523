"""PII policy on the parsed datum."""

from __future__ import annotations

import copy
import hmac
import json
from typing import Any

import pytest

from streams.models.customer_deleted import parse_webhook
from streams.models.pii import PiiPolicy

PERSONAL = ("name", "email", "phone", "birthdate", "description")
ADDRESS_PERSONAL = ("line_1", "line_2", "postal_code")


@pytest.fixture
def datum(example_body: bytes) -> dict[str, Any]:
    payload = json.loads(example_body)
    payload["data"]["customer"]["phone"] = "+44 1234 567890"
    payload["data"]["customer"]["address"]["line_2"] = "Flat 2"
    return parse_webhook(payload)


def _non_personal(d: dict[str, Any]) -> dict[str, Any]:
    d = copy.deepcopy(d)
    c = d["data"]["customer"]
    for k in PERSONAL:
        c.pop(k)
    for k in ADDRESS_PERSONAL:
        c["address"].pop(k)
    return d


def test_redact(datum: dict[str, Any]) -> None:
    before = copy.deepcopy(datum)
    out = PiiPolicy("redact").apply(datum)
    c = out["data"]["customer"]
    assert all(c[k] is None for k in PERSONAL)
    assert all(c["address"][k] is None for k in ADDRESS_PERSONAL)
    assert _non_personal(out) == _non_personal(before)
    assert c["id"] == "cust_7LvqCsUB9c8WyFP8JaLXchtF"
    assert c["source_id"].startswith("lionel-johnson_deleted")
    assert c["address"]["city"] == "Nottingham"
    assert c["loyalty"]["points"] == 301


def test_hash(datum: dict[str, Any]) -> None:
    before = copy.deepcopy(datum)
    out = PiiPolicy("hash", "k3y").apply(datum)
    c = out["data"]["customer"]
    expected = hmac.new(b"k3y", b"lionel-johnson@lion.io", "sha256").hexdigest()
    assert c["email"] == expected
    assert c["birthdate"] == hmac.new(b"k3y", b"1974-01-02", "sha256").hexdigest()
    assert c["address"]["postal_code"] == hmac.new(b"k3y", b"XX-ZZZ", "sha256").hexdigest()
    for k in PERSONAL:
        assert len(c[k]) == 64
    assert _non_personal(out) == _non_personal(before)
    # deterministic: the same input hashes the same (joinable)
    assert PiiPolicy("hash", "k3y").hash_value("lionel-johnson@lion.io") == expected
    assert PiiPolicy("hash", "other").hash_value("lionel-johnson@lion.io") != expected


def test_keep(datum: dict[str, Any]) -> None:
    before = copy.deepcopy(datum)
    assert PiiPolicy("keep").apply(datum) == before


def test_nulls_and_missing_address_are_fine(datum: dict[str, Any]) -> None:
    datum["data"]["customer"]["address"] = None
    datum["data"]["customer"]["email"] = None
    out = PiiPolicy("hash", "k").apply(datum)
    assert out["data"]["customer"]["address"] is None
    assert out["data"]["customer"]["email"] is None


def test_bad_policy() -> None:
    with pytest.raises(ValueError):
        PiiPolicy("nope")
    with pytest.raises(ValueError):
        PiiPolicy("hash", "")
