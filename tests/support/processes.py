"""The bridge and the worker as real subprocesses, started with the project CLI."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from streams.dev.http import http_get
from streams.dev.ports import free_port, free_port_pair
from streams.dev.process import Child
from streams.http_auth import client_headers
from streams.settings import Settings

__all__ = ["Service", "free_port", "free_port_pair", "http_get"]

ROOT = Path(__file__).resolve().parents[2]


class Service(Child):
    """One `python -m streams <command>` child on its own port, its settings as env vars."""

    def __init__(
        self,
        command: str,
        settings: Settings,
        log: Path,
        port: int | None = None,
        extra_env: dict[str, str] | None = None,
        argv: list[str] | None = None,
    ) -> None:
        super().__init__(command, argv or [sys.executable, "-m", "streams", command], log, cwd=ROOT)
        self.command = command
        self.settings = settings
        self.port = port or free_port()
        #: Extra environment for the child, over the settings' (e.g. a Faust-only variable).
        self.extra_env = dict(extra_env or {})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Service:
        s = self.settings
        s = (
            s.with_(bridge_port=self.port, bridge_host="127.0.0.1")
            if self.command == "bridge"
            else s.with_(web_port=self.port, web_host="127.0.0.1")
        )
        self.env = {**s.to_env(), **self.extra_env}
        super().start()
        return self

    @property
    def auth(self) -> dict[str, str]:
        """The Authorization its settings ask of a client (STREAMS_HTTP_*_FILE), or none."""
        return client_headers(self.settings)

    def answers(self, path: str, timeout: float = 2) -> tuple[int, Any]:
        """(status, body) of GET `path` (with the credentials it asks for); status 0 while
        nothing listens."""
        return http_get(self.url + path, timeout, self.auth)

    def wait_answering(self, path: str, timeout: float = 120) -> Service:
        """Until its web server answers `path` with any status (a 503 counts)."""
        self.wait_http(self.url + path, timeout, ok=bool, interval=0.05)
        return self

    def wait_ready(self, path: str, timeout: float = 120) -> Service:
        self.wait_http(self.url + path, timeout, interval=0.25)
        return self
