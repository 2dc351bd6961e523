"""`voucherify-streams replay`: backfill through the bridge's validation, policy and encoding."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from streams.cli import main
from streams.dev.reader import read_topic
from streams.models.serializers.avro import get_codec
from streams.settings import Settings

pytestmark = pytest.mark.kafka


def _lines(example_body: bytes) -> list[str]:
    example = json.dumps(json.loads(example_body))
    return [
        json.dumps({"customer": {"id": "cust_bare1", "name": "Ann", "loyalty": {"points": 10}}}),
        "",
        "not json",
        json.dumps(
            {
                "type": "customer.deleted",
                "data": {"customer": {"id": "cust_x", "loyalty": {"points": "ten"}}},
            }
        ),
        json.dumps({"type": "customer.updated", "data": {}}),
        json.dumps({"customer": {"id": "cust_bare1", "loyalty": {"points": 10}}}),
        example,
    ]


def _args(settings: Settings) -> list[str]:
    return [
        "--bootstrap-servers",
        settings.bootstrap_servers,
        "--topic-prefix",
        settings.topic_prefix,
    ]


def test_replay_file_publishes_valid_lines_and_reports_rejects(
    settings: Settings, example_body: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "history.jsonl"
    f.write_text("\n".join(_lines(example_body)) + "\n")
    assert main(["replay", str(f), *_args(settings)]) == 1
    out = capsys.readouterr().out
    assert "published: 2" in out
    assert "duplicates (same customer id, skipped): 1" in out
    assert "rejected: 3" in out
    assert "malformed JSON" in out and "(lines 3)" in out
    assert "data.customer.loyalty.points: expected integer, got string (lines 4)" in out
    assert "expected customer.deleted, got 'customer.updated' (lines 5)" in out

    msgs = read_topic(
        settings.bootstrap_servers, settings.topic(settings.customer_deleted_topic), expected=2
    )
    codec = get_codec(settings)
    by_key = {m.key(): codec.decode(m.value() or b"")[1] for m in msgs}
    assert set(by_key) == {b"cust_bare1", b"cust_7LvqCsUB9c8WyFP8JaLXchtF"}
    example = by_key[b"cust_7LvqCsUB9c8WyFP8JaLXchtF"]["data"]["customer"]
    assert example["name"] is None and example["email"] is None  # PII_POLICY=redact
    assert example["address"]["city"] == "Nottingham"
    assert example["loyalty"]["points"] == 301
    assert by_key[b"cust_bare1"]["data"]["customer"]["name"] is None


def test_replay_stdin_allow_rejects(
    settings: Settings,
    example_body: bytes,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(_lines(example_body))))
    assert main(["replay", "-", "--allow-rejects", *_args(settings)]) == 0
    assert "published: 2" in capsys.readouterr().out
