"""The secured local Kafka of the tests (`secure_kafka`): its users' settings, ACLs granted
through the CLI, and what its authorizer denied."""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import dataclass
from typing import Any

from streams.cli import main
from streams.dev.kafka import LocalKafka
from streams.settings import Settings

#: An authorizer line of the broker's log: who was denied what.
DENIED = re.compile(
    r"Principal = (?P<principal>\S+) is Denied operation = (?P<operation>\S+) from host = \S+ "
    r"on resource = (?P<resource>\S+) for request = (?P<request>\S+)"
)


@dataclass
class SecureKafka:
    """One secured single node for the run, and what `kafka start --secure` printed."""

    broker: LocalKafka
    started_output: str

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    def settings(self, user: str, mechanism: str = "SCRAM-SHA-512", **changes: Any) -> Settings:
        """`user`'s client settings on the SASL_SSL listener, with `changes`."""
        return self.broker.client_settings(user, mechanism).with_(**changes)

    def mtls_settings(self, user: str, **changes: Any) -> Settings:
        """`user`'s client settings on the mutual-TLS listener (its certificate)."""
        env = self.broker.material.mtls_env(self.broker.mtls_bootstrap, user)
        return Settings.from_env(env).with_(**changes)

    def password(self, user: str) -> str:
        return self.broker.material.password(user)

    def grant(self, admin: Settings, principal: str, role: str, *extra: str) -> str:
        """`voucherify-streams kafka acls` with the admin's settings; its output."""
        argv = ["kafka", "acls", "--principal", principal, "--role", role, *extra]
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(argv, environ=admin.to_env())
        assert rc == 0, err.getvalue()
        return out.getvalue()

    def log_position(self) -> int:
        return self.broker.log_file.stat().st_size

    def denied_since(self, position: int) -> list[dict[str, str]]:
        """The authorizer's denials logged since `position` of the broker's log."""
        with open(self.broker.log_file, encoding="utf-8", errors="replace") as f:
            f.seek(position)
            return [m.groupdict() for m in DENIED.finditer(f.read())]
