"""A detached local service (the broker's or the registry's JVM) found again by its pid file.

`voucherify-streams kafka start` returns while the JVM keeps running; `stop` and `status` run in
another process later. The pid file says which process it is, and the process's command line
must still carry `marker`, so a pid the kernel reused for something else is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours is dead for our purposes.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            return False
    return True


def send(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


@dataclass(frozen=True)
class Daemon:
    pid_file: Path
    #: What the process's command line must hold (an argument, e.g. its main class or jar).
    marker: bytes

    def pid(self) -> int | None:
        """The pid of our running process, or None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if alive(pid) and self._is_ours(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def launch(
        self, argv: Sequence[str], out: Path, cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        """Start it in its own session (it outlives us), output appended to `out`."""
        with open(out, "ab") as f:
            proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                stdout=f,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(str(proc.pid))
        return proc

    def forget(self) -> None:
        self.pid_file.unlink(missing_ok=True)

    def signal_stop(self) -> int | None:
        """SIGTERM (a controlled shutdown) without waiting; its pid, or None."""
        pid = self.pid()
        if pid is not None:
            send(pid, signal.SIGTERM)
        return pid

    def wait_stopped(self, pid: int, timeout: float) -> None:
        """After `signal_stop`: until it is gone (SIGKILL past `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.1)
        if alive(pid):
            send(pid, signal.SIGKILL)
            while alive(pid):
                time.sleep(0.05)
        self.forget()

    def stop(self, timeout: float) -> bool:
        """Stop it; False when it was not running."""
        pid = self.signal_stop()
        if pid is None:
            return False
        self.wait_stopped(pid, timeout)
        return True

    def kill(self) -> None:
        """SIGKILL (fault tests): no clean shutdown."""
        pid = self.pid()
        if pid is not None:
            send(pid, signal.SIGKILL)
            while alive(pid):
                time.sleep(0.05)
            self.forget()

    def _is_ours(self, pid: int) -> bool:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return sys.platform != "linux"
        return self.marker in cmdline
