"""The processes a benchmark starts: the bridge, workers, baselines and the profiler.

Each child runs in its own session and is stopped by its pid only; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.paths import PY, RESULTS, ROOT
from bench.results import log
from bench.venvs import venv_python
from streams.dev.http import http_get
from streams.dev.ports import free_port

#: Set by `run.py --profile`: flame graphs of the processes under test into results/profiles/.
PROFILE = False


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process and its reaped children (/proc), in seconds."""
    try:
        parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(parts[11]) + int(parts[12]) + int(parts[13]) + int(parts[14])) / ticks


class AgentCrashed(RuntimeError):
    """A Faust agent of a worker crashed (logged; the process itself keeps running)."""


@dataclass
class Proc:
    """A child process we started (in its own session); stopped by its pid only."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def check(self) -> None:
        """Raise when the process exited, or when its log shows a crashed Faust agent (the
        worker keeps running then, but never catches up: fail fast instead of timing out)."""
        if not self.alive():
            raise RuntimeError(f"{self.name} exited {self.popen.returncode}:\n{self.tail()}")
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, f.seek(0, 2) - 65536))
                text = f.read().decode(errors="replace")
        except OSError:
            return
        for line in text.splitlines():
            if "Crashed reason=" in line:
                raise AgentCrashed(f"{self.name}: {line.strip()[:600]}")

    def stop(self, timeout: float = 30) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)
        _LIVE.discard(self)

    def __hash__(self) -> int:
        return self.popen.pid


_LIVE: set[Proc] = set()


def stop_all() -> None:
    for p in list(_LIVE):
        p.stop(timeout=15)


def spawn(
    name: str,
    argv: list[str],
    env: dict[str, str] | None = None,
    log_dir: Path | None = None,
    cwd: Path = ROOT,
) -> Proc:
    log_dir = log_dir or RESULTS / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"{name}-{uuid.uuid4().hex[:6]}.log"
    with open(path, "wb") as out:
        popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    p = Proc(name, popen, path)
    _LIVE.add(p)
    return p


def wait_http(
    proc: Proc, url: str, timeout: float = 60, ok: Callable[[int], bool] | None = None
) -> float:
    """Poll `url` until its status is `ok` (200); seconds since `proc` started."""
    ok = ok or (lambda s: s == 200)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited {proc.popen.returncode}:\n{proc.tail()}")
        if ok(http_get(url, timeout=3)[0]):
            return time.monotonic() - proc.started
        time.sleep(0.2)
    raise RuntimeError(f"{proc.name}: {url} not ready within {timeout}s:\n{proc.tail()}")


def start_bridge(settings: Any, port: int) -> Proc:
    env = {**settings.to_env(), "BRIDGE_PORT": str(port), "BRIDGE_HOST": "127.0.0.1"}
    p = spawn("bridge", [PY, "-m", "streams", "bridge"], env)
    wait_http(p, f"http://127.0.0.1:{port}/readyz", timeout=60)
    return p


def start_worker(
    settings: Any, name: str = "worker", data_dir: Path | None = None, port: int | None = None
) -> Proc:
    """`voucherify-streams worker` (exec's faust) with these settings; returns at once."""
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="vs-bench-data-"))
    port = port or free_port()
    env = {
        **settings.to_env(),
        "STREAMS_DATA_DIR": str(data_dir),
        "STREAMS_WEB_PORT": str(port),
        "STREAMS_WEB_HOST": "127.0.0.1",
    }
    p = spawn(name, [PY, "-m", "streams", "worker"], env)
    p.web_port = port  # type: ignore[attr-defined]
    p.data_dir = data_dir  # type: ignore[attr-defined]
    return p


def profile(
    proc: Proc, name: str, seconds: float, delay_s: float = 0.0
) -> subprocess.Popen[bytes] | None:
    """Start `py-spy record` on `proc` for `seconds` (when --profile), after `delay_s` (a worker
    exec's faust: py-spy must attach after that); wait on the result with profile_done."""
    if not PROFILE:
        return None
    spy = venv_python("tools").parent / "py-spy"
    # Collapsed stacks ("frame;frame;frame count" lines): bench/profile_report.py summarises
    # them, and any flame graph tool (flamegraph.pl, speedscope, inferno) draws them.
    out = RESULTS / "profiles" / f"{name}-{time.strftime('%H%M%S')}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    log(f"profiling {proc.name} for {seconds:.0f}s -> {out.relative_to(ROOT)}")
    argv = [
        str(spy),
        "record",
        "--pid",
        str(proc.pid),
        "--duration",
        str(int(seconds)),
        "--rate",
        "100",
        "--nonblocking",
        "--subprocesses",
        "--format",
        "raw",
        "-o",
        str(out),
    ]
    if delay_s > 0:
        argv = ["sh", "-c", f'sleep {delay_s:g} && exec "$@"', "sh", *argv]
    return subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def profile_done(spy: subprocess.Popen[bytes] | None, timeout: float = 60) -> None:
    if spy is not None:
        try:
            spy.wait(timeout)
        except subprocess.TimeoutExpired:
            spy.terminate()
            spy.wait(10)
