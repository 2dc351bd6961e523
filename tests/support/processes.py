"""The bridge and the worker as real subprocesses, started with the project CLI."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.dev.demo.http import http_get
from streams.dev.kafka import free_port, free_port_pair
from streams.settings import Settings

__all__ = ["Service", "free_port", "free_port_pair", "http_get"]

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Service:
    """One `python -m streams <command>` child process, its own port and log."""

    command: str
    settings: Settings
    log: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    #: Extra environment for the child, over the settings' (e.g. a Faust-only variable).
    extra_env: dict[str, str] = field(default_factory=dict)
    #: time.monotonic() of the last start.
    started_at: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        s = self.settings
        s = (
            s.with_(bridge_port=self.port, bridge_host="127.0.0.1")
            if self.command == "bridge"
            else s.with_(web_port=self.port, web_host="127.0.0.1")
        )
        return {**os.environ, **s.to_env(), **self.extra_env}

    def start(self) -> Service:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streams", self.command],
                cwd=ROOT,
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.starts += 1
        self.started_at = time.monotonic()
        return self

    @property
    def pid(self) -> int | None:
        """The child's pid, also its process group's id (it leads a new session)."""
        return self.proc.pid if self.proc is not None else None

    def answers(self, path: str, timeout: float = 2) -> tuple[int, Any]:
        """(status, body) of GET `path`; status 0 while nothing listens."""
        return http_get(self.url + path, timeout=timeout)

    def wait_answering(self, path: str, timeout: float = 120) -> Service:
        """Until its web server answers `path` with any status (a 503 counts)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise AssertionError(f"{self.command} exited early:\n{self.tail()}")
            if self.answers(path)[0]:
                return self
            time.sleep(0.05)
        raise AssertionError(f"{self.command} not answering after {timeout}s:\n{self.tail()}")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, path: str, timeout: float = 120) -> Service:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise AssertionError(f"{self.command} exited early:\n{self.tail()}")
            if http_get(self.url + path, timeout=2)[0] == 200:
                return self
            time.sleep(0.25)
        raise AssertionError(f"{self.command} not ready after {timeout}s:\n{self.tail()}")

    def kill(self) -> None:
        if self.alive:
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 40) -> int | None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode if self.proc else None

    def tail(self, n: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except FileNotFoundError:
            return ""
