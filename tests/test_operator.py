"""`dead-letters list|show|redrive` and `tail` against a real broker: bodies withheld unless
asked, redrive idempotent, bad input a clear error (never a traceback)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Producer
from support.nginx import SecuredRegistry

from streams import cli, operator
from streams.dev.ports import free_port
from streams.dev.reader import read_topic
from streams.kafka.topics import ensure_project_topics
from streams.models.serializers.avro import get_codec
from streams.settings import Settings

pytestmark = pytest.mark.kafka

EXAMPLE = Path(__file__).parent / "data" / "customer-deleted.webhook.json"
PERSONAL = "jane.doe@example.com"


def _args(settings: Settings) -> list[str]:
    return [
        "--bootstrap-servers",
        settings.bootstrap_servers,
        "--topic-prefix",
        settings.topic_prefix,
        "--app-id",
        settings.app_id,
    ]


def _dead_letters(settings: Settings) -> None:
    """Dead letters as the bridge and the worker write them: a webhook that passes today, one
    that does not, a worker's undecodable input, and bytes that are no DeadLetter at all."""
    codec = get_codec(settings)
    topic = settings.topic(settings.dead_letter_topic)
    webhook = json.loads(EXAMPLE.read_text())
    webhook["data"]["customer"]["email"] = PERSONAL
    now = datetime.now(UTC)
    letters = [
        (json.dumps(webhook).encode(), "invalid_payload", {"user-agent": "Voucherify"}),
        (b'{"type": "customer.deleted", "data": {"customer": {"id": 7}}}', "invalid_payload", {}),
        (b"\x00\x00\x00\x00\x09garbage", "undecodable", {"stage": "worker"}),
    ]
    p = Producer({"bootstrap.servers": settings.bootstrap_servers})
    for body, reason, headers in letters:
        record = {
            "body": body,
            "reason": reason,
            "message": "data.customer.id: expected string",
            "headers": headers,
            "received_at": now,
        }
        p.produce(topic, codec.encode("DeadLetter", record, topic=topic), partition=0)
    p.produce(topic, b"not a dead letter", partition=0)
    assert p.flush(30) == 0


def test_dead_letters_list_show_and_redrive_once(settings: Settings) -> None:
    ensure_project_topics(settings)
    _dead_letters(settings)
    out = io.StringIO()
    assert operator.list_dead_letters(settings, out=out) == 0
    listing = out.getvalue()
    assert "4 dead letter(s)" in listing and PERSONAL not in listing
    out = io.StringIO()
    operator.list_dead_letters(settings, reason="undecodable", since="1h", out=out)
    assert "1 dead letter(s)" in out.getvalue() and "worker" in out.getvalue()

    out = io.StringIO()
    operator.show_dead_letter(settings, "0:0", None, show_body=False, out=out)
    assert PERSONAL not in out.getvalue() and "withheld" in out.getvalue()
    out = io.StringIO()
    operator.show_dead_letter(settings, "0", 0, show_body=True, out=out)
    assert PERSONAL in out.getvalue()
    with pytest.raises(operator.OperatorError, match="no dead letter at 0:99"):
        operator.show_dead_letter(settings, "0:99", None, show_body=False)

    out = io.StringIO()
    assert operator.redrive(settings, dry_run=True, progress=False, out=out) == 0
    assert "1 would redrive, 3 still invalid" in out.getvalue()
    input_topic = settings.topic(settings.customer_deleted_topic)
    assert read_topic(settings.bootstrap_servers, input_topic, timeout=3, idle=1) == []

    out = io.StringIO()
    assert operator.redrive(settings, progress=False, out=out) == 0
    report = out.getvalue()
    assert "1 redriven, 3 still invalid" in report
    assert "expected non-empty string, got integer" in report  # why it stays
    assert PERSONAL not in report
    out = io.StringIO()
    assert operator.redrive(settings, progress=False, out=out) == 0
    assert "1 already redriven, 3 still invalid" in out.getvalue()

    published = read_topic(settings.bootstrap_servers, input_topic, timeout=10, idle=2)
    assert len(published) == 1  # twice redriven, once published
    msg = published[0]
    _name, datum = get_codec(settings).decode(msg.value())
    assert msg.key() == datum["data"]["customer"]["id"].encode()
    assert datum["data"]["customer"].get("email") != PERSONAL  # the PII policy applied
    headers = dict(msg.headers() or [])
    assert headers["redriven_from"].endswith(b":0:0")


def test_redrive_with_the_broker_down_publishes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    down = f"127.0.0.1:{free_port()}"
    assert cli.main(["dead-letters", "redrive", "--bootstrap-servers", down]) == 1
    err = capsys.readouterr().err
    assert "error: no Kafka broker answered" in err and "Traceback" not in err


def test_tail_decodes_either_framing_and_says_what_it_cannot(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    ensure_project_topics(settings)
    _dead_letters(settings)
    argv = ["tail", settings.dead_letter_topic, "--from-beginning", "-e", *_args(settings)]
    assert cli.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    assert sum("DeadLetter" in line for line in lines) == 3
    assert "0:3 key=None could not be decoded: unknown framing" in lines[3]
    assert PERSONAL not in "\n".join(lines)
    assert cli.main([*argv, "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert records[0]["schema"] == "DeadLetter" and "error" in records[3]

    assert cli.main(["tail", "no.such.topic", "-e", *_args(settings)]) == 1
    err = capsys.readouterr().err
    assert "error: topic no.such.topic does not exist" in err and "Traceback" not in err


@pytest.mark.registry
def test_tail_and_dead_letters_stop_when_the_registry_refuses(
    settings: Settings,
    secured_registry: SecuredRegistry,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Confluent-framed records, and the registry refuses the tools' credentials or they do
    not trust its certificate: exit 1 with the reason, not one "could not be decoded" per
    record."""
    right = settings.with_(**secured_registry.client_settings("basic", tmp_path / "right"))
    ensure_project_topics(right)
    _dead_letters(right)

    def flags(registry: dict[str, str]) -> list[str]:
        return [x for k, v in registry.items() for x in ("--" + k.replace("_", "-"), v)]

    wrong = flags(secured_registry.client_settings("basic", tmp_path / "w", password="wrong-pw"))
    tail = ["tail", settings.dead_letter_topic, "--from-beginning", "-e", *_args(settings)]
    assert cli.main([*tail, *wrong]) == 1
    out, err = capsys.readouterr()
    refused = f"error: schema registry at {secured_registry.url('basic')} refused the credentials"
    assert refused in err and not out and "wrong-pw" not in err
    assert cli.main(["dead-letters", "list", *_args(settings), *wrong]) == 1
    assert refused in capsys.readouterr().err
    no_ca = flags(secured_registry.client_settings("basic", tmp_path / "n", ca=False))
    assert cli.main([*tail, *no_ca]) == 1
    err = capsys.readouterr().err
    assert "TLS certificate not trusted" in err and "set SCHEMA_REGISTRY_CA_FILE" in err
    assert cli.main([*tail, *flags(secured_registry.client_settings("basic", tmp_path))]) == 0
    assert sum("DeadLetter" in line for line in capsys.readouterr().out.splitlines()) == 3
