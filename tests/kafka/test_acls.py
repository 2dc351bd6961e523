"""The roles' ACLs derived from the settings (no broker): names, patterns, the command's
listings, and the README's table kept current. Applied for real: test_secure_kafka.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.cli import main
from streams.kafka import acls
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _by_name(found: list[acls.Grant]) -> dict[tuple[str, str, str], tuple[str, ...]]:
    return {(g.resource, g.pattern, g.name): g.operations for g in found}


def test_each_role_follows_the_prefix_and_the_app_id() -> None:
    s = Settings.from_env({}, topic_prefix="prod.", app_id="vs", raw_topic="voucherify.raw")
    assert _by_name(acls.grants(s, "bridge")) == {
        ("topic", "LITERAL", "prod.voucherify.customer.deleted"): ("WRITE", "CREATE"),
        ("topic", "LITERAL", "prod.voucherify.webhooks.dead-letter"): ("WRITE", "CREATE"),
        ("topic", "LITERAL", "prod.voucherify.raw"): ("WRITE", "CREATE"),
    }
    own = ("READ", "WRITE", "CREATE")
    assert _by_name(acls.grants(s, "worker")) == {
        ("topic", "LITERAL", "prod.voucherify.customer.deleted"): ("READ",),
        ("group", "LITERAL", "vs"): ("READ",),
        ("topic", "LITERAL", "prod.vs-input-rekeyed"): own,
        ("topic", "LITERAL", "prod.vs-loyalty-deltas"): own,
        ("topic", "LITERAL", "prod.vs-referral-deltas"): own,
        ("topic", "PREFIXED", "vs-"): own,  # Faust's changelogs and leader topic: no prefix
        ("topic", "LITERAL", "prod.analytics.loyalty-points-lost"): ("WRITE", "CREATE"),
        ("topic", "LITERAL", "prod.analytics.referral-impact"): ("WRITE", "CREATE"),
        ("topic", "LITERAL", "prod.analytics.customer-deletions"): ("WRITE", "CREATE"),
        ("topic", "LITERAL", "prod.voucherify.webhooks.dead-letter"): ("WRITE",),
    }
    assert _by_name(acls.grants(s, "reader", "bi-loader")) == {
        ("topic", "LITERAL", "prod.analytics.loyalty-points-lost"): ("READ",),
        ("topic", "LITERAL", "prod.analytics.referral-impact"): ("READ",),
        ("topic", "LITERAL", "prod.analytics.customer-deletions"): ("READ",),
        ("group", "LITERAL", "bi-loader"): ("READ",),
    }
    operator = _by_name(acls.grants(s, "operator"))
    assert operator[("topic", "LITERAL", "prod.voucherify.customer.deleted")] == ("READ", "WRITE")
    assert operator[("topic", "LITERAL", "prod.voucherify.webhooks.dead-letter.redriven")] == own
    assert operator[("group", "PREFIXED", "voucherify-streams-operator-")] == ("READ",)
    assert all(ops == ("READ",) for (_, _, n), ops in operator.items() if "analytics" in n)


def test_without_a_prefix_the_worker_topics_are_covered_by_its_prefix_grant() -> None:
    found = _by_name(acls.grants(Settings(), "worker"))
    assert ("topic", "PREFIXED", "voucherify-streams-") in found
    assert not [
        n
        for (_, pattern, n) in found
        if n.startswith("voucherify-streams-")
        and (pattern == "LITERAL" and n != "voucherify-streams")
    ]


def test_unknown_role_and_principal() -> None:
    with pytest.raises(ValueError, match="unknown role"):
        acls.grants(Settings(), "admin")
    assert acls.principal_of("bridge") == "User:bridge"
    with pytest.raises(ValueError, match="User:<name>"):
        acls.principal_of("User:")


def test_print_gives_kafka_acls_command_lines(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["kafka", "acls", "--principal", "User:bridge", "--role", "bridge", "--print"]
    assert main(argv, environ={"STREAMS_TOPIC_PREFIX": "p."}) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "kafka-acls.sh --bootstrap-server localhost:9092 --command-config admin.properties "
        "--add --allow-principal User:bridge --operation Write --operation Create "
        f"--topic '{topic}' --resource-pattern-type literal"
        for topic in ("p.voucherify.customer.deleted", "p.voucherify.webhooks.dead-letter")
    ]


def test_dry_run_lists_without_connecting(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["kafka", "acls", "--principal", "reader", "--role", "reader", "--group", "bi-*"]
    assert main([*argv, "--dry-run"], environ={"KAFKA_BOOTSTRAP_SERVERS": "nowhere:1"}) == 0
    out = capsys.readouterr().out
    assert "ACLs of role reader for User:reader (not applied):" in out
    assert "group PREFIXED bi-" in " ".join(out.split())
    assert main(["kafka", "acls", "--role", "reader"], environ={}) == 2
    assert "needs --principal and --role" in capsys.readouterr().err


def test_readme_acl_table_is_current() -> None:
    readme = (ROOT / "README.md").read_text()
    assert acls.markdown_table() in readme, "regenerate it: python -m streams.kafka.acls"
