"""The processes a benchmark starts: the bridge, workers, baselines and the profiler.

Each child runs in its own session and is stopped by its pid only; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.paths import PY, RESULTS, ROOT
from bench.results import log
from bench.venvs import venv_python
from streams.dev.ports import free_port
from streams.dev.process import Child

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


def tree_pids(pid: int) -> list[int]:
    """`pid` and its live descendants (/proc)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        with contextlib.suppress(OSError, ValueError):
            todo.extend(int(x) for x in Path(f"/proc/{p}/task/{p}/children").read_text().split())
    return out


def tree_cpu_seconds(pid: int) -> float | None:
    """cpu_seconds of a process and its live descendants (a supervisor's workers, granian's)."""
    total = None
    for p in tree_pids(pid):
        cpu = cpu_seconds(p)
        if cpu is not None:
            total = (total or 0.0) + cpu
    return total


def tree_peak_rss_mb(pid: int) -> float | None:
    """Peak resident memory (VmHWM) summed over a process and its live descendants (MB)."""
    total = None
    for p in tree_pids(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total = (total or 0.0) + int(line.split()[1]) / 1024
    return None if total is None else round(total, 1)


class AgentCrashed(RuntimeError):
    """A Faust agent of a worker crashed (logged; the process itself keeps running)."""


class Proc(Child):
    """A child a benchmark started (the one wrapper, streams.dev.process.Child), plus the
    benchmarks' check for a crashed Faust agent; every one is stopped at the end of a run."""

    #: A worker's web port and data dir (start_worker).
    web_port: int | None = None
    data_dir: Path | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "spawn starts every Proc"
        return self.proc.pid

    def check(self) -> None:
        """Raise when the process exited, or when its log shows a crashed Faust agent (the
        worker keeps running then, but never catches up: fail fast instead of timing out)."""
        if not self.alive:
            raise self.exited()
        for line in self.tail(65536).splitlines():
            if "Crashed reason=" in line:
                raise AgentCrashed(f"{self.name}: {line.strip()[:600]}")

    def stop(self, timeout: float = 30) -> int | None:
        _LIVE.discard(self)
        return super().stop(timeout)


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
    log = (log_dir or RESULTS / "logs") / f"{name}-{uuid.uuid4().hex[:6]}.log"
    p = Proc(name, argv, log, env=dict(env or {}), cwd=cwd).start()
    _LIVE.add(p)
    return p


#: How bench/bridge.py starts each HTTP layer of the bridge (`{port}` filled in).
BRIDGE_SERVERS: dict[str, list[str]] = {
    "cli": [PY, "-m", "streams", "bridge"],  # the CLI (streams.bridge.server, BRIDGE_HTTP)
    "granian-rsgi": [PY, "-m", "streams.bridge.rsgi"],  # embedded, the producer's loop
    "granian-asgi": [PY, "-m", "granian", "--interface", "asgi", "--no-ws", "--host",
                     "127.0.0.1", "--port", "{port}", "--backlog", "1024", "--log-level",
                     "warning", "streams.bridge.asgi:app"],
}  # fmt: skip


def start_bridge(settings: Any, port: int, server: str = "cli", name: str = "bridge") -> Proc:
    env = {**settings.to_env(), "BRIDGE_PORT": str(port), "BRIDGE_HOST": "127.0.0.1"}
    argv = [a.replace("{port}", str(port)) for a in BRIDGE_SERVERS[server]]
    p = spawn(name, argv, env)
    p.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60)
    return p


def start_worker(
    settings: Any, name: str = "worker", data_dir: Path | None = None, port: int | None = None
) -> Proc:
    """`voucherify-streams worker` with these settings; returns at once."""
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="vs-bench-data-"))
    port = port or free_port()
    env = {
        **settings.to_env(),
        "STREAMS_DATA_DIR": str(data_dir),
        "STREAMS_WEB_PORT": str(port),
        "STREAMS_WEB_HOST": "127.0.0.1",
    }
    p = spawn(name, [PY, "-m", "streams", "worker"], env)
    p.web_port, p.data_dir = port, data_dir
    return p


def profile(
    proc: Proc, name: str, seconds: float, delay_s: float = 0.0
) -> subprocess.Popen[bytes] | None:
    """Start `py-spy record` on `proc` for `seconds` (when --profile), after `delay_s` (past a
    worker's start-up); wait on the result with profile_done."""
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
