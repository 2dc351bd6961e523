"""The settings table: env vars, flags, validation, and the README kept in step."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from streams.settings import SETTINGS, Settings, add_arguments, from_args, markdown_table

ROOT = Path(__file__).resolve().parents[1]


def test_the_table_is_the_fields() -> None:
    assert [f.name for f in dataclasses.fields(Settings)] == [s.attr for s in SETTINGS]
    defaults = Settings()
    assert all(getattr(defaults, s.attr) == s.default for s in SETTINGS)
    envs = [s.env for s in SETTINGS]
    assert len(set(envs)) == len(envs), "two settings share an env var"


def test_each_type_parses_from_its_env_var() -> None:
    s = Settings.from_env(
        {
            "STREAMS_TOPIC_PARTITIONS": "12",
            "BRIDGE_LINGER_MS": "0.5",
            "BRIDGE_INSECURE_NO_SIGNATURE": "yes",
            "VOUCHERIFY_WEBHOOK_SECRET": "a,b",
        }
    )
    assert (s.topic_partitions, s.linger_ms, s.insecure_no_signature) == (12, 0.5, True)
    assert s.webhook_secret == ("a", "b")


def test_env_then_flags() -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "b:1",
        "STREAMS_TOPIC_PREFIX": "dev.",
        "BRIDGE_PORT": "9000",
        "VOUCHERIFY_WEBHOOK_SECRET": "a, b",
    }
    parser = argparse.ArgumentParser()
    add_arguments(parser, ["bridge"])
    s = from_args(parser.parse_args(["--bridge-port", "9001"]), env)
    assert s.bootstrap_servers == "b:1"
    assert s.bridge_port == 9001
    assert s.webhook_secret == ("a", "b")
    assert s.topic("voucherify.customer.deleted") == "dev.voucherify.customer.deleted"


def test_secrets_file_adds_to_env_secrets(tmp_path: Path) -> None:
    f = tmp_path / "secrets"
    f.write_text("new\n\nold\n")
    s = Settings.from_env(
        {"VOUCHERIFY_WEBHOOK_SECRET": "old", "VOUCHERIFY_WEBHOOK_SECRET_FILE": str(f)}
    )
    assert s.secrets() == ("old", "new")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PII_POLICY": "drop"}, "PII_POLICY"),
        ({"PII_POLICY": "hash"}, "PII_HASH_KEY"),
        ({"STREAMS_PROCESSING_GUARANTEE": "maybe"}, "STREAMS_PROCESSING_GUARANTEE"),
        ({"BRIDGE_PORT": "http"}, "BRIDGE_PORT"),
        ({"STREAMS_STORE": "redis://"}, "STREAMS_STORE"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_env(env)


def test_readme_configuration_table_is_current() -> None:
    readme = (ROOT / "README.md").read_text()
    assert markdown_table() in readme, "regenerate the README table: python -m streams.settings"


def test_to_env_round_trips() -> None:
    s = Settings.from_env(
        {},
        topic_prefix="x.",
        webhook_secret=("a", "b"),
        insecure_no_signature=True,
        request_deadline_s=2.5,
    )
    assert Settings.from_env(s.to_env()) == s


def test_secrets_never_in_a_repr() -> None:
    s = Settings.from_env({}, webhook_secret=("s3cret-a", "s3cret-b"), pii_hash_key="k3y-h")
    text = repr(s) + str(s) + repr([s])
    assert "s3cret" not in text and "k3y-h" not in text
    assert "webhook_secret=***" in text and "app_id='voucherify-streams'" in text
