"""`voucherify-streams replay`: backfill through the bridge's validation, policy and encoding."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.nginx import SecuredRegistry

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


@pytest.mark.registry
def test_replay_with_a_wrong_registry_password_publishes_nothing(
    settings: Settings, secured_registry: SecuredRegistry, example_body: bytes, tmp_path: Path
) -> None:
    f = tmp_path / "history.jsonl"
    f.write_text(json.dumps(json.loads(example_body)) + "\n")
    wrong = "wrong-password-never-shown"
    registry = secured_registry.client_settings("basic", tmp_path, password=wrong)
    flags = [x for k, v in registry.items() for x in ("--" + k.replace("_", "-"), v)]
    done = subprocess.run(
        [sys.executable, "-m", "streams", "replay", str(f), *_args(settings), *flags],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert (
        f"error: schema registry at {secured_registry.url('basic')} refused the credentials "
        "(HTTP 401)"
    ) in done.stderr
    assert "Traceback" not in done.stderr and wrong not in done.stdout + done.stderr
    topic = settings.topic(settings.customer_deleted_topic)
    assert read_topic(settings.bootstrap_servers, topic, timeout=3, idle=1) == []
