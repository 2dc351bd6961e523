"""`voucherify-streams bridge --workers N` (BRIDGE_WORKERS): N bridge processes on one port.

The supervisor checks the port is free (SO_REUSEPORT would otherwise let another process take
a share of the connections without an error), then forks N workers. Each binds its own
SO_REUSEPORT socket (the kernel spreads the connections) and creates its Kafka producer after
the fork (librdkafka's threads do not survive one). The supervisor:
- restarts a worker that dies once it had started listening; one that dies while starting
  (no broker, topics refused) stops them all with its exit code, like a single process would;
- forwards SIGTERM/SIGINT to the workers, which finish their in-flight requests and flush
  their producers, and exits 0 when they all did.
The workers' metrics are summed (streams.bridge.shared_metrics): any worker answers
`/metrics` for all of them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import shutil
import signal
import socket
import tempfile
import time
from types import FrameType

from streams.bridge.server import PortInUse, listen_socket, run
from streams.bridge.service import ConfigError, verifier_of
from streams.bridge.shared_metrics import SharedMetrics
from streams.settings import Settings

log = logging.getLogger("streams.bridge")

#: A worker restarted more often than this within RESTART_WINDOW_S: give up (a crash loop).
MAX_RESTARTS = 10
RESTART_WINDOW_S = 60.0


def free_port(host: str, port: int) -> int:
    """`port`, after checking nothing listens there (PortInUse); port 0 picks a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))  # no SO_REUSEPORT: fails when anyone listens there
        bound: int = probe.getsockname()[1]
        return bound
    except OSError as exc:
        raise PortInUse(exc.errno, f"{host}:{port} is already in use ({exc.strerror})") from None
    finally:
        probe.close()


def _worker(settings: Settings, index: int, port: int, metrics_dir: str, ready_fd: int) -> int:
    """A forked worker: its own socket, producer and event loop."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sock = listen_socket(settings.bridge_host, port, reuse_port=True)

    def started(bound: int) -> None:
        os.write(ready_fd, f"{os.getpid()}\n".encode())

    worker_settings = settings.with_(bridge_port=port)
    return run(
        worker_settings, sock=sock, shared=SharedMetrics(metrics_dir, index), on_started=started
    )


class Supervisor:
    def __init__(self, settings: Settings, port: int, metrics_dir: str) -> None:
        self.settings = settings
        self.port = port
        self.metrics_dir = metrics_dir
        self.children: dict[int, int] = {}  # pid -> worker index
        self.ready: set[int] = set()  # pids that listen
        self.restarts: list[float] = []
        self.stopping = False
        self.exit_code = 0
        self._ready_r, self._ready_w = os.pipe()
        os.set_blocking(self._ready_r, False)

    def spawn(self, index: int) -> int:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            self.children.clear()  # its siblings are not its business (an inherited handler)
            try:
                os.close(self._ready_r)
                code = _worker(self.settings, index, self.port, self.metrics_dir, self._ready_w)
            except BaseException:
                log.exception("bridge worker %d crashed", index)
            finally:
                os._exit(code)
        self.children[pid] = index
        log.info("bridge worker %d started (pid %d)", index, pid)
        return pid

    def _read_ready(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while True:
                data = os.read(self._ready_r, 4096)
                if not data:
                    return
                self.ready.update(int(x) for x in data.split())

    def stop_all(self, sig: int = signal.SIGTERM) -> None:
        self.stopping = True
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("bridge supervisor: %s, stopping the workers", signal.Signals(signum).name)
        self.stop_all(signal.SIGTERM)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        for index in range(self.settings.workers):
            self.spawn(index)
        log.info(
            "bridge supervisor: %d workers on %s:%d",
            self.settings.workers,
            self.settings.bridge_host,
            self.port,
        )
        while self.children:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries; kept for safety
                continue
            self._read_ready()
            index = self.children.pop(pid, -1)
            if index < 0:
                continue
            code = os.waitstatus_to_exitcode(status)
            was_ready = pid in self.ready
            self.ready.discard(pid)
            if self.stopping:
                if code != 0:
                    self.exit_code = self.exit_code or (code if code > 0 else 1)
                continue
            if not was_ready:
                log.error("bridge worker %d exited while starting (code %d): stopping", index, code)
                self.exit_code = code if code > 0 else 1
                self.stop_all()
                continue
            now = time.monotonic()
            self.restarts = [t for t in self.restarts if now - t < RESTART_WINDOW_S] + [now]
            if len(self.restarts) > MAX_RESTARTS:
                log.error(
                    "bridge workers keep dying (%d restarts in %.0fs): stopping",
                    len(self.restarts),
                    RESTART_WINDOW_S,
                )
                self.exit_code = 1
                self.stop_all()
                continue
            log.error("bridge worker %d (pid %d) died (code %d): restarting it", index, pid, code)
            self.spawn(index)
            # Wait (briefly) so a burst of deaths cannot fork faster than workers start.
            select.select([], [], [], 0.05)
        return self.exit_code


def supervise(settings: Settings) -> int:
    """Run `settings.workers` bridge workers until SIGTERM/SIGINT (see the module docstring)."""
    try:
        verifier_of(settings)  # a configuration error: say it once, fork nothing
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    try:
        port = free_port(settings.bridge_host, settings.bridge_port)
    except PortInUse as exc:
        log.error(
            "refusing to start: %s; another bridge (or anything else) listens there, and "
            "SO_REUSEPORT would silently share the connections with it",
            exc.strerror,
        )
        return 1
    metrics_dir = tempfile.mkdtemp(prefix="voucherify-bridge-metrics-")
    try:
        return Supervisor(settings, port, metrics_dir).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
