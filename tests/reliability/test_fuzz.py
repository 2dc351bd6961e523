"""Thousands of mutated requests against the bridge process: never a 5xx for a client error,
never a crash, nothing unsigned or invalid in the customer.deleted topic, and valid webhooks
keep being served meanwhile."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from support.processes import Service
from support.reliability import SECRET, record_figures, start_bridge

from streams.bridge.signature import sign
from streams.dev.demo.generator import compact, webhooks
from streams.dev.reader import read_topic
from streams.models.serializers.avro import get_codec
from streams.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.reliability, pytest.mark.timeout(600)]

CASES = 3000
MAX_BODY = 64 * 1024


@dataclass
class Case:
    kind: str
    body: bytes
    headers: dict[str, str]
    allowed: frozenset[int]


def _signed(body: bytes) -> dict[str, str]:
    return {"content-type": "application/json", "x-voucherify-signature": sign(SECRET, body)}


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.extend(_paths(v, (*prefix, i)))
    return out


def _replace(node: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    node[path[0]] = _replace(node[path[0]], path[1:], value)
    return node


ODD_VALUES: list[Any] = [
    "",
    "x" * 300,
    "zażółć 🎉",
    -1,
    0,
    2**63,
    2**80,
    -(2**70),
    1.5,
    1e308,
    True,
    None,
    [],
    [1, "a", None],
    {},
    {"unexpected": {"deep": [1]}},
]


def make_cases(rng: random.Random) -> list[Case]:
    valid = [json.loads(h.body) for h in webhooks(CASES, duplicates=0, seed=rng.randrange(10**9))]
    cases: list[Case] = []
    for payload in valid:
        body = compact(payload)
        kind = rng.choice(
            [
                "valid",
                "valid",
                "byte_flip",
                "truncate",
                "wrong_type",
                "wrong_type",
                "unsigned",
                "forged",
                "content_type",
                "oversize",
                "deep",
                "invalid_utf8",
                "unknown_type",
                "non_object",
                "huge_number",
            ]
        )
        if kind == "valid":
            cases.append(Case(kind, body, _signed(body), frozenset({200})))
        elif kind == "byte_flip":
            b = bytearray(body)
            for _ in range(rng.randint(1, 5)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            cases.append(Case(kind, bytes(b), _signed(bytes(b)), frozenset({200, 400, 422})))
        elif kind == "truncate":
            cut = body[: rng.randrange(len(body))]
            cases.append(Case(kind, cut, _signed(cut), frozenset({400, 422})))
        elif kind == "wrong_type":
            path = rng.choice(_paths(payload)[1:])
            mutated = compact(_replace(payload, path, rng.choice(ODD_VALUES)))
            cases.append(Case(kind, mutated, _signed(mutated), frozenset({200, 422})))
        elif kind == "unsigned":
            cases.append(Case(kind, body, {"content-type": "application/json"}, frozenset({401})))
        elif kind == "forged":
            sig = rng.choice(
                [
                    sign("not-the-secret", body),
                    "0" * 64,
                    "zz",
                    "",
                    sign(SECRET, body + b" "),
                    sign(SECRET, body).upper() + "0",
                ]
            )
            cases.append(
                Case(
                    kind,
                    body,
                    {"content-type": "application/json", "x-voucherify-signature": sig},
                    frozenset({401}),
                )
            )
        elif kind == "content_type":
            ctype = rng.choice(
                [
                    "text/plain",
                    "application/xml",
                    "multipart/form-data",
                    "application/octet-stream",
                    "application/jsonx",
                ]
            )
            h = _signed(body)
            h["content-type"] = ctype
            cases.append(Case(kind, body, h, frozenset({415})))
        elif kind == "oversize":
            big = compact({**payload, "padding": "x" * (MAX_BODY + rng.randrange(10, 5000))})
            cases.append(Case(kind, big, _signed(big), frozenset({413})))
        elif kind == "deep":
            depth = rng.choice([1000, 20000, 60000])
            deep = b'{"type":"customer.deleted","data":' + b"[" * depth + b"]" * depth + b"}"
            deep = deep[:MAX_BODY] if len(deep) > MAX_BODY else deep
            cases.append(Case(kind, deep, _signed(deep), frozenset({400, 413, 422})))
        elif kind == "invalid_utf8":
            pos = body.index(b'"id":"') + 6
            bad = body[:pos] + rng.choice([b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80"]) + body[pos:]
            cases.append(Case(kind, bad, _signed(bad), frozenset({400})))
        elif kind == "unknown_type":
            other = compact({**payload, "type": rng.choice(["customer.created", "voucher.x"])})
            cases.append(Case(kind, other, _signed(other), frozenset({200, 202})))
        elif kind == "non_object":
            raw = rng.choice([b"[]", b"42", b'"customer.deleted"', b"null", b"[{}]"])
            cases.append(Case(kind, raw, _signed(raw), frozenset({422})))
        else:  # huge_number
            payload["data"]["customer"].setdefault("loyalty", {})
            payload["data"]["customer"]["loyalty"] = {"points": 2**80}
            hn = compact(payload)
            cases.append(Case(kind, hn, _signed(hn), frozenset({422})))
    return cases


async def _fire(url: str, cases: list[Case]) -> list[tuple[Case, int, Any]]:
    results: list[tuple[Case, int, Any]] = []
    queue: asyncio.Queue[Case] = asyncio.Queue()
    for c in cases:
        queue.put_nowait(c)

    async def one(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            c = queue.get_nowait()
            async with session.post(url, data=c.body, headers=c.headers) as resp:
                raw = await resp.read()
                try:
                    answer = json.loads(raw)
                except ValueError:
                    answer = None
                results.append((c, resp.status, answer))

    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=60), skip_auto_headers=["Content-Type"]
    ) as session:
        await asyncio.gather(*(one(session) for _ in range(16)))
    return results


def test_fuzzed_requests(rsettings: Settings, services: Callable[..., Service]) -> None:
    settings = rsettings.with_(max_body_bytes=MAX_BODY)
    bridge = start_bridge(services("bridge", settings))
    cases = make_cases(random.Random(1126))
    results = asyncio.run(_fire(f"{bridge.url}/webhooks/voucherify", cases))
    assert len(results) == CASES
    assert bridge.alive, bridge.tail()

    by_kind: Counter[str] = Counter()
    wrong = []
    for case, status, _answer in results:
        by_kind[case.kind] += 1
        if status >= 500 or status not in case.allowed:
            wrong.append((case.kind, status, case.body[:120]))
    assert not wrong, f"{len(wrong)} unexpected answers, e.g. {wrong[:5]}"
    valid = [r for r in results if r[0].kind == "valid"]
    assert valid and all(status == 200 for _, status, _ in valid)

    accepted = [
        _sendout(json.loads(c.body))
        for c, status, answer in results
        if status == 200 and answer == {"status": "accepted"}
    ]
    topic = read_topic(
        settings.bootstrap_servers,
        settings.topic(settings.customer_deleted_topic),
        expected=len(accepted) + 1,
        timeout=30,
        idle=5,
    )
    assert len(topic) == len(accepted), "a record was published that was not acknowledged"
    codec = get_codec(settings)
    published = Counter(_header(m.headers(), "sendout_id") for m in topic)
    assert published == Counter(accepted)
    for m in topic:
        name, datum = codec.decode(m.value() or b"")
        assert name == "CustomerDeleted" and datum["data"]["customer"]["id"]
    dead = read_topic(
        settings.bootstrap_servers, settings.topic(settings.dead_letter_topic), idle=3, timeout=30
    )
    rejected_signed = sum(1 for _, status, _ in results if status in (400, 422))
    assert len(dead) == rejected_signed, "a signed, rejected request was not dead-lettered"
    record_figures(
        "fuzz",
        {
            "cases": CASES,
            "by_kind": dict(by_kind),
            "answers": dict(Counter(s for _, s, _ in results)),
            "published": len(topic),
            "dead_lettered": len(dead),
            "server_errors": sum(1 for _, s, _ in results if s >= 500),
            "crashes": 0 if bridge.alive else 1,
        },
    )


def _sendout(payload: Any) -> str | None:
    value = payload.get("id") if isinstance(payload, dict) else None
    return value if isinstance(value, str) and value else None


def _header(headers: list[tuple[str, bytes]] | None, name: str) -> str | None:
    value = dict(headers or []).get(name)
    return value.decode() if value else None
