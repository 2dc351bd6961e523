"""The one child-process wrapper of the demo, the tests and the benchmarks.

A child runs in its own session (so a signal reaches it and anything it started, and a Ctrl-C
in our terminal does not), writes stdout and stderr to one log file, and is stopped by its pid
only. Every wait is bounded and says why it gave up, with the end of the child's log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from streams.dev.http import http_get


class ChildError(RuntimeError):
    """A child exited, or did not get ready in time (the message carries its log's tail)."""


@dataclass(eq=False)
class Child:
    name: str
    argv: Sequence[str]
    log: Path
    #: Over this process's environment.
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    #: time.monotonic() of the last start.
    started_at: float | None = None

    def start(self) -> Self:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                list(self.argv),
                cwd=self.cwd,
                env={**os.environ, **self.env},
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
        """The child's pid, also its process group's (it leads a new session)."""
        return self.proc.pid if self.proc is not None else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def tail(self, n: int = 4000) -> str:
        try:
            with open(self.log, "rb") as f:
                f.seek(max(0, f.seek(0, 2) - n))
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def exited(self) -> ChildError:
        return ChildError(f"{self.name} exited with code {self.returncode}:\n{self.tail()}")

    def wait_http(
        self,
        url: str,
        timeout: float = 120,
        ok: Callable[[int], bool] = lambda status: status == 200,
        interval: float = 0.2,
    ) -> float:
        """Poll `url` until its status is `ok` (200; 0 while nothing listens); returns the
        seconds since the child started."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise self.exited()
            if ok(http_get(url, timeout=2)[0]):
                return time.monotonic() - (self.started_at or 0.0)
            time.sleep(interval)
        raise ChildError(f"{self.name}: {url} not ready after {timeout:.0f}s:\n{self.tail()}")

    def signal(self, sig: int) -> None:
        if self.alive:
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 40) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; the exit code (None: never started)."""
        if self.alive:
            assert self.proc is not None
            self.signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.returncode
