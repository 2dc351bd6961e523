"""A real single-node Apache Kafka (KRaft) run from Apache's own jars, fetched by Maven.

`voucherify-streams kafka start|stop|status` is a thin front end over `LocalKafka`.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from streams.settings import Settings

POM = Path(__file__).with_name("pom.xml")
LOG4J = Path(__file__).with_name("log4j2.properties")


class KafkaError(RuntimeError):
    """A problem starting or stopping the local broker, worded for the operator."""


def kafka_version() -> str:
    text = POM.read_text(encoding="utf-8")
    start = text.index("<kafka.version>") + len("<kafka.version>")
    return text[start : text.index("</kafka.version>", start)]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_pair() -> int:
    """A free port whose next port is free too (a local broker and its controller)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair")


def broker_answers(bootstrap: str, timeout: float = 2.0) -> bool:
    """True when a broker answers a metadata request."""
    from confluent_kafka.admin import AdminClient

    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        socket.create_connection((host or "localhost", int(port)), timeout=timeout).close()
    except (OSError, ValueError):
        return False
    admin = AdminClient(
        {"bootstrap.servers": bootstrap, "log_level": 0, "socket.timeout.ms": int(timeout * 1000)}
    )
    try:
        meta = admin.list_topics(timeout=timeout)
    except Exception:
        return False
    return bool(meta.brokers)


@dataclass(frozen=True)
class LocalKafka:
    """One local broker, identified by its port; state lives under `kafka_home/<port>/`."""

    port: int
    controller_port: int
    home: Path
    heap: str = "1g"

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalKafka:
        return cls(
            settings.kafka_port,
            settings.controller_port,
            Path(settings.kafka_home),
            settings.kafka_heap,
        )

    @property
    def bootstrap(self) -> str:
        return f"localhost:{self.port}"

    @property
    def jars(self) -> Path:
        return self.home / "jars" / kafka_version()

    @property
    def state_dir(self) -> Path:
        return self.home / str(self.port)

    @property
    def log_file(self) -> Path:
        return self.state_dir / "kafka.log"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "kafka.pid"

    # --- jars ---
    def fetch_jars(self) -> Path:
        """Resolve Kafka's jars with Maven into the cache (once per version)."""
        done = self.jars / ".complete"
        if done.exists():
            return self.jars
        mvn = shutil.which("mvn")
        if mvn is None:
            raise KafkaError("Maven (mvn) is not on PATH: it is needed to fetch Kafka's jars")
        tmp = self.jars.with_name(self.jars.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        cmd = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={tmp}",
            "-DincludeScope=runtime",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise KafkaError(
                f"Maven could not fetch Kafka {kafka_version()}:\n"
                f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
            )
        shutil.rmtree(self.jars, ignore_errors=True)
        tmp.rename(self.jars)
        done.touch()
        return self.jars

    # --- process state ---
    def pid(self) -> int | None:
        """The pid of our running broker, or None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if _alive(pid) and _is_kafka(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def status(self) -> str:
        pid = self.pid()
        if pid is None:
            return f"not running (port {self.port}; log {self.log_file})"
        state = "answering" if broker_answers(self.bootstrap) else "not answering yet"
        return f"running, pid {pid}, {self.bootstrap}, {state}; log {self.log_file}"

    # --- start/stop ---
    def start(self, timeout: float = 90.0) -> bool:
        """Start the broker; False when it was already running. Waits until it answers."""
        if self.pid() is not None:
            if not broker_answers(self.bootstrap, timeout=timeout):
                raise KafkaError(
                    f"broker pid {self.pid()} is running but does not answer on "
                    f"port {self.port}; see {self.log_file}"
                )
            return False
        for port in (self.port, self.controller_port):
            if port_in_use(port):
                raise KafkaError(
                    f"port {port} is already in use by another process; choose "
                    "another with --kafka-port / STREAMS_KAFKA_PORT"
                )
        jars = self.fetch_jars()
        java = _java()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        data = self.state_dir / "data"
        props = self.state_dir / "server.properties"
        props.write_text(self._properties(data), encoding="utf-8")
        classpath = f"{jars}{os.sep}*"
        if not (data / "meta.properties").exists():
            cluster_id = "-"
            while cluster_id.startswith("-"):  # the storage tool would read it as an option
                cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            fmt = subprocess.run(
                [
                    java,
                    "-cp",
                    classpath,
                    f"-Dlog4j2.configurationFile={LOG4J}",
                    f"-Dkafka.logs.file={self.state_dir / 'format.log'}",
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(props),
                ],
                capture_output=True,
                text=True,
            )
            if fmt.returncode != 0:
                raise KafkaError(f"formatting the KRaft log dir failed:\n{fmt.stdout}{fmt.stderr}")
        cmd = [
            java,
            "-Xms256m",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J}",
            f"-Dkafka.logs.file={self.log_file}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(props),
        ]
        with open(self.state_dir / "kafka.out", "ab") as out:
            proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise KafkaError(
                    f"the broker exited with code {proc.returncode}; "
                    f"see {self.log_file} and {self.state_dir / 'kafka.out'}"
                )
            if broker_answers(self.bootstrap, timeout=1.0):
                return True
            time.sleep(0.3)
        self.stop()
        raise KafkaError(f"the broker did not answer within {timeout:.0f}s; see {self.log_file}")

    def stop(self, timeout: float = 60.0) -> bool:
        """Stop the broker; False when it was not running."""
        pid = self.pid()
        if pid is None:
            return False
        _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            _signal(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return True

    def kill(self) -> None:
        """SIGKILL the broker (fault tests): no clean shutdown."""
        pid = self.pid()
        if pid is not None:
            _signal(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
            self.pid_file.unlink(missing_ok=True)

    def reset(self) -> None:
        """Delete the broker's data (it must be stopped)."""
        if self.pid() is not None:
            raise KafkaError("stop the broker before resetting its data")
        shutil.rmtree(self.state_dir / "data", ignore_errors=True)

    def _properties(self, data: Path) -> str:
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://localhost:{self.port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                f"log.dirs={data}",
                "num.partitions=1",
                "auto.create.topics.enable=true",
                # Single node: internal topics cannot have more replicas than brokers.
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=6",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "transaction.state.log.num.partitions=6",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "log.retention.hours=168",
                "log.segment.bytes=104857600",
                "log.cleaner.dedupe.buffer.size=16777216",
                "",
            ]
        )


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise KafkaError("Java 17+ (java) is not on PATH: the local broker needs it")
    return java


def _alive(pid: int) -> bool:
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


def _is_kafka(pid: int) -> bool:
    """Guard against a recycled pid: the process must be a java running kafka.Kafka."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return sys.platform != "linux"
    return b"kafka.Kafka" in cmdline


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
