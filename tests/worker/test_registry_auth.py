"""The worker against a Schema Registry that refuses its credentials (the `secured_registry`
fixture: the session's registry behind nginx): it exits at once, non-zero, with one clear line
and never the password, instead of retrying as if the registry were down."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from support.nginx import SecuredRegistry

pytestmark = [pytest.mark.kafka, pytest.mark.registry]


def test_a_wrong_password_stops_the_worker_with_one_line(
    workers: Any, secured_registry: SecuredRegistry, tmp_path: Path
) -> None:
    wrong = "wrong-password-never-logged"
    w = workers("w1", **secured_registry.client_settings("basic", tmp_path, password=wrong))
    assert w.proc is not None
    code = w.proc.wait(timeout=120)
    took = time.monotonic() - (w.started_at or 0.0)
    log = w.tail(200_000)
    assert code == 2, log
    refusals = [line for line in log.splitlines() if "refused the credentials" in line]
    assert len(refusals) == 1, log
    assert (
        f"refusing to start: schema registry at {secured_registry.url('basic')} refused the "
        "credentials (HTTP 401): check SCHEMA_REGISTRY_USERNAME(_FILE) and "
        "SCHEMA_REGISTRY_PASSWORD(_FILE)"
    ) in refusals[0]
    assert wrong not in log and secured_registry.password not in log
    assert "Traceback" not in log
    # No 60 s of retries as for a registry that is down: the start-up, then the one request.
    assert took < 60, (took, log)
