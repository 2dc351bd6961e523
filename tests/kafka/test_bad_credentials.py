"""Kafka refusing a component (a wrong password, an unknown CA, missing ACLs), on the secured
local Kafka: one line naming the cause, at once. The bridge stays up answering 503 and lets
itself in once the cause is fixed; the worker and the tools exit non-zero."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from support.processes import Service
from support.reliability import SECRET
from support.secure import SecureKafka
from support.senders import send
from support.worker import Worker

from streams.cli import main
from streams.dev.demo.generator import webhooks
from streams.dev.http import http_get
from streams.dev.secure import SecurityMaterial
from streams.kafka.preflight import KafkaAccessError, KafkaUnreachable, check
from streams.settings import Settings

pytestmark = pytest.mark.kafka

#: Kafka's refusal is told at once, never after a client's timeout.
QUICK_S = 10.0
WRONG = "not-the-password-1f2e"
REFUSED = "Kafka refused the credentials of user"


def _names() -> dict[str, Any]:
    u = uuid.uuid4().hex[:8]
    return dict(topic_prefix=f"bc{u}.", app_id=f"bc-{u}", topic_partitions=2, log_level="info")


def _wrong_password(secure_kafka: SecureKafka, user: str, tmp_path: Path, **names: Any) -> Settings:
    secret = tmp_path / f"{user}.password"
    secret.write_text(WRONG + "\n")
    return secure_kafka.settings(user, kafka_sasl_password_file=str(secret), **names)


def _quick(fn: Any, *args: Any) -> str:
    """`fn(*args)`'s KafkaAccessError, within QUICK_S."""
    started = time.monotonic()
    with pytest.raises(KafkaAccessError) as refused:
        fn(*args)
    assert time.monotonic() - started < QUICK_S
    return str(refused.value)


def test_the_check_names_what_kafka_refuses(secure_kafka: SecureKafka, tmp_path: Path) -> None:
    names = _names()
    wrong = _quick(check, _wrong_password(secure_kafka, "bridge", tmp_path, **names), "bridge")
    assert wrong.startswith(f"{REFUSED} bridge (SCRAM-SHA-512)") and WRONG not in wrong
    assert "KAFKA_SASL_PASSWORD" in wrong

    other = SecurityMaterial(tmp_path / "other")
    other.ensure()
    untrusted = secure_kafka.settings("bridge", kafka_ssl_ca_file=str(other.ca_file), **names)
    assert "TLS with Kafka failed" in _quick(check, untrusted, "bridge")

    # Right credentials, no ACLs on these (fresh) topics yet: named, with the command to run.
    bridge = secure_kafka.settings("bridge", **names)
    denied = _quick(check, bridge, "bridge")
    topic = bridge.topic(bridge.customer_deleted_topic)
    assert f"do not let user bridge (bridge) WRITE on topic {topic}" in denied
    assert "kafka acls --principal User:bridge --role bridge" in denied
    check(bridge, None)  # credentials alone: fine

    worker = secure_kafka.settings("worker", **names)
    assert "READ on topic" in _quick(check, worker, "worker")
    secure_kafka.grant(secure_kafka.settings("admin", **names), "User:worker", "worker")
    check(worker, "worker")

    plaintext = Settings.from_env({}, bootstrap_servers=secure_kafka.bootstrap)
    with pytest.raises(KafkaUnreachable, match="KAFKA_SECURITY_PROTOCOL=PLAINTEXT"):
        check(plaintext, None, timeout=2)


def _wait_readyz(svc: Service, says: str, timeout: float = 60) -> None:
    """Until the service's /readyz message says `says`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if says in str(http_get(svc.url + "/readyz")[1]):
            return
        time.sleep(0.5)
    raise AssertionError(f"/readyz never said {says!r}:\n{svc.tail()}")


@pytest.mark.timeout(300)
def test_the_bridge_refused_stays_up_and_lets_itself_in_once_fixed(
    secure_kafka: SecureKafka, tmp_path: Path
) -> None:
    """A wrong password, then the right one but no ACLs, then the ACLs granted: the bridge
    answers 503 (with Retry-After, at once) saying why, one log line per cause, and accepts
    webhooks as soon as Kafka lets it in, without a restart."""
    names = _names()
    settings = _wrong_password(secure_kafka, "bridge", tmp_path, webhook_secret=(SECRET,), **names)
    bridge = Service("bridge", settings, tmp_path / "bridge.log").start()
    url = f"{bridge.url}/webhooks/voucherify"
    hook = list(webhooks(1, duplicates=0, seed=3))
    try:
        bridge.wait_answering("/readyz", timeout=60)
        status, body = http_get(bridge.url + "/readyz")
        assert status == 503 and body["message"].startswith(REFUSED), body
        started = time.monotonic()
        refused = asyncio.run(send(url, hook, SECRET, 1))
        assert refused.statuses == {503: 1} and not refused.acked
        assert time.monotonic() - started < settings.request_deadline_s

        # The right password (the file is read again at each check), still no ACLs.
        Path(settings.kafka_sasl_password_file).write_text(secure_kafka.password("bridge"))
        _wait_readyz(bridge, "ACLs do not let user bridge")
        secure_kafka.grant(secure_kafka.settings("admin", **names), "User:bridge", "bridge")
        bridge.wait_ready("/readyz", timeout=60)
        accepted = asyncio.run(send(url, hook, SECRET, 1, retry_for_s=30))
        assert len(accepted.acked) == 1
    finally:
        bridge.stop()
    log = bridge.log.read_text()
    assert log.count(REFUSED) == 1, log  # said once, not at every check
    assert log.count("ACLs do not let user bridge") == 1, log
    assert "Kafka lets the bridge in now" in log
    assert WRONG not in log and secure_kafka.password("bridge") not in log


@pytest.mark.timeout(120)
def test_the_worker_refused_exits_at_once(secure_kafka: SecureKafka, tmp_path: Path) -> None:
    settings = _wrong_password(secure_kafka, "worker", tmp_path, **_names())
    worker = Worker(settings, tmp_path / "data", tmp_path / "worker.log")
    started = time.monotonic()
    worker.start()
    assert worker.proc is not None
    code = worker.proc.wait(timeout=60)
    assert code == 2, worker.tail()
    assert time.monotonic() - started < 30  # Python and Faust imported, then one check
    log = worker.log.read_text()
    assert log.count(REFUSED) == 1 and "refusing to start" in log, log
    assert log.count("\n") < 20, log  # no retry loop
    assert WRONG not in log


def test_the_tools_refused_exit_nonzero(secure_kafka: SecureKafka, tmp_path: Path) -> None:
    settings = _wrong_password(secure_kafka, "operator", tmp_path, **_names())
    lines = tmp_path / "hooks.jsonl"
    lines.write_text("{}\n")
    for argv in (
        ["tail", "analytics.loyalty-points-lost", "-e"],
        ["dead-letters", "list"],
        ["replay", str(lines)],
    ):
        err = io.StringIO()
        started = time.monotonic()
        with contextlib.redirect_stderr(err):
            assert main(argv, environ=settings.to_env()) == 1, argv
        assert time.monotonic() - started < QUICK_S
        assert err.getvalue().startswith(f"error: {REFUSED} operator"), err.getvalue()
        assert WRONG not in err.getvalue()
