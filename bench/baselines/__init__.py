"""Comparison implementations, each run as its own process (some in their own venv)."""

from __future__ import annotations

import os
from typing import Any

#: The env vars of how a Kafka client connects (streams.kafka.security): the harness passes a
#: secured broker's to the baselines (bench.broker.security_env), unset means plaintext.
SECURITY_ENV = ("KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_", "KAFKA_SSL_")


def baseline_settings(bootstrap: str, **overrides: Any) -> Any:
    """A baseline's Settings: `bootstrap` and `overrides`, plus the broker's security settings
    from the environment (only those: nothing else of the environment changes a baseline)."""
    from streams.settings import Settings

    env = {k: v for k, v in os.environ.items() if k.startswith(SECURITY_ENV)}
    return Settings.from_env(env, bootstrap_servers=bootstrap, **overrides)
