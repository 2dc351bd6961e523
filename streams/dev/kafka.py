"""A real Apache Kafka (KRaft) run from Apache's own jars, fetched by Maven: one node, or a
cluster of up to five.

`LocalKafka` is one node; `LocalCluster` is what `voucherify-streams kafka start|stop|status|
reset [--brokers N] [--node I]` drives.

A cluster's nodes all run the combined broker+controller roles, so every node is a voter of the
KRaft quorum (three nodes: a majority of two keeps the metadata writable with one node down).
Ports: node i (1..N) listens on `base + 2(i-1)` (clients and replication) and `base + 2(i-1) + 1`
(its controller), base being STREAMS_KAFKA_PORT; five nodes span ten ports, so two clusters whose
base ports are ten or more apart never collide, and one node keeps the ports it always had.
State: one node under `<home>/<port>/`, a cluster under `<home>/cluster-<base>/` (`cluster.json`:
size and cluster id; `node-<i>/`: data, server.properties, kafka.log, kafka.pid).

Secured (`--secure`, STREAMS_KAFKA_SECURE; see streams.dev.secure): clients connect with SASL_SSL
on the same port, an mTLS listener is added (one node: base + 2; node i of a cluster of N:
base + 2N + i - 1), ACLs are enforced, and the state lives apart, under `<home>/<port>-secure/`
or `<home>/cluster-<base>-secure/` (with `security/`: certificates and passwords), so a plaintext
and a secured Kafka of one base port keep their data side by side (never running at once).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.dev.daemon import Daemon
from streams.dev.maven import fetch_once
from streams.dev.ports import port_in_use
from streams.dev.secure import ADMIN, MaterialError, SecurityMaterial
from streams.kafka.security import ClientConfig, librdkafka_config
from streams.settings import Settings

POM = Path(__file__).with_name("pom.xml")
LOG4J = Path(__file__).with_name("log4j2.properties")


#: The largest local cluster: its ten ports fit between two base ports ten apart.
MAX_NODES = 5


class KafkaError(RuntimeError):
    """A problem starting or stopping the local broker, worded for the operator."""


def replication_for(size: int) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) on a cluster of `size` brokers: 3 and 2 from
    three brokers on (a write survives one broker down), all of them and 1 below that."""
    rf = min(3, max(1, size))
    return rf, 2 if rf >= 3 else 1


def kafka_version() -> str:
    text = POM.read_text(encoding="utf-8")
    start = text.index("<kafka.version>") + len("<kafka.version>")
    return text[start : text.index("</kafka.version>", start)]


def _client(kafka: Settings | ClientConfig | str) -> Settings | ClientConfig:
    """A client's settings; a bare address means a plaintext listener."""
    return Settings.from_env({}, bootstrap_servers=kafka) if isinstance(kafka, str) else kafka


def _bootstrap(kafka: Settings | ClientConfig) -> str:
    if isinstance(kafka, Settings):
        return kafka.bootstrap_servers
    return str(kafka["bootstrap.servers"])


def _metadata(kafka: Settings | ClientConfig | str, timeout: float) -> Any:
    """A metadata answer of the cluster (through the client builder), or None."""
    from confluent_kafka.admin import AdminClient

    kafka = _client(kafka)
    host, _, port = _bootstrap(kafka).split(",")[0].rpartition(":")
    try:
        socket.create_connection((host or "localhost", int(port)), timeout=timeout).close()
    except (OSError, ValueError):
        return None
    admin = AdminClient(
        librdkafka_config(kafka, {"log_level": 0, "socket.timeout.ms": int(timeout * 1000)})
    )
    try:
        return admin.list_topics(timeout=timeout)
    except Exception:
        return None


def broker_answers(kafka: Settings | ClientConfig | str, timeout: float = 2.0) -> bool:
    """True when a broker answers a metadata request (`kafka`: the client settings, or the
    address of a plaintext listener)."""
    meta = _metadata(kafka, timeout)
    return meta is not None and bool(meta.brokers)


@dataclass(frozen=True)
class LocalKafka:
    """One local node (broker and controller), identified by its port; state lives under
    `kafka_home/<port>/`, or `state_root` for a node of a cluster."""

    port: int
    controller_port: int
    home: Path
    heap: str = "1g"
    node_id: int = 1
    #: `controller.quorum.voters` (empty: this node alone).
    voters: str = ""
    #: Brokers in its cluster: the internal topics' replication follows it.
    cluster_size: int = 1
    state_root: Path | None = None
    #: Cluster id to format a fresh data dir with (empty: a new one).
    cluster_id: str = ""
    #: Extra JVM options (the tests trade peak speed for a quicker start-up).
    jvm_options: tuple[str, ...] = ()
    #: Secured (see the module docstring): SASL_SSL on `port`, mutual TLS on `mtls_port`.
    secure: bool = False
    mtls_port: int = 0
    #: Where the certificates and passwords are (a cluster's nodes share them).
    security_root: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalKafka:
        return cls(
            settings.kafka_port,
            settings.controller_port,
            Path(settings.kafka_home),
            settings.kafka_heap,
            secure=settings.secure,
            mtls_port=single_mtls_port(settings.kafka_port, settings.controller_port),
        )

    @property
    def bootstrap(self) -> str:
        return f"localhost:{self.port}"

    @property
    def mtls_bootstrap(self) -> str:
        return f"localhost:{self.mtls_port}"

    @property
    def material(self) -> SecurityMaterial:
        return SecurityMaterial(self.security_root or self.state_dir / "security")

    def client_settings(self, user: str = ADMIN, mechanism: str = "SCRAM-SHA-512") -> Settings:
        """The settings of a client of this node (`user`'s, when secured)."""
        material = self.material if self.secure else None
        return client_settings(self.bootstrap, material, user, mechanism)

    @property
    def security(self) -> str:
        """How clients connect, for status lines."""
        return security_line(self.secure, self.mtls_bootstrap)

    @property
    def jars(self) -> Path:
        return self.home / "jars" / kafka_version()

    @property
    def state_dir(self) -> Path:
        return self.state_root or self.home / f"{self.port}{'-secure' if self.secure else ''}"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "kafka.log"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "kafka.pid"

    @property
    def daemon(self) -> Daemon:
        return Daemon(self.pid_file, b"kafka.Kafka")

    # --- jars ---
    def fetch_jars(self) -> Path:
        """Resolve Kafka's jars with Maven into the cache (once per version)."""
        goal = ["-f", str(POM), "dependency:copy-dependencies", "-DincludeScope=runtime"]
        return fetch_once(self.jars, goal, f"Kafka {kafka_version()}'s jars", KafkaError)

    # --- process state ---
    def pid(self) -> int | None:
        """The pid of our running broker, or None."""
        return self.daemon.pid()

    def status(self) -> str:
        pid = self.pid()
        if pid is None:
            return f"not running (port {self.port}; log {self.log_file})"
        state = "answering" if self.answers() else "not answering yet"
        secured = f" ({self.security})" if self.secure else ""
        return f"running, pid {pid}, {self.bootstrap}{secured}, {state}; log {self.log_file}"

    # --- start/stop ---
    def describe(self) -> str:
        """How the operator finds this node: its number, ports and log."""
        return (
            f"node {self.node_id} (port {self.port}, controller port {self.controller_port}; "
            f"log {self.log_file})"
        )

    def check_ports(self) -> None:
        ports = (self.port, self.controller_port, *((self.mtls_port,) if self.secure else ()))
        for port in ports:
            if port_in_use(port):
                kind = {self.port: "port", self.controller_port: "controller port"}.get(
                    port, "mTLS port"
                )
                whose = f"node {self.node_id}'s {kind}" if self.cluster_size > 1 else kind
                raise KafkaError(
                    f"port {port} is already in use by another process ({whose}); choose "
                    "another with --kafka-port / STREAMS_KAFKA_PORT"
                )

    def prepare(self) -> subprocess.Popen[bytes] | None:
        """Write its configuration and format its data dir when new; returns the formatting
        process to wait for (None: formatted already)."""
        jars = self.fetch_jars()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        props = self.state_dir / "server.properties"
        scram: list[str] = []
        if self.secure:
            try:
                self.material.ensure()
            except MaterialError as exc:
                raise KafkaError(str(exc)) from None
            scram = self.material.scram_arguments()
            props.touch(mode=0o600)  # it holds the PLAIN users' and the keystore's passwords
            props.chmod(0o600)
        props.write_text(self._properties(self.data_dir), encoding="utf-8")
        if (self.data_dir / "meta.properties").exists():
            return None
        cluster_id = self.cluster_id or new_cluster_id()
        if self.secure:  # the storage tool prints the SCRAM credentials' records
            (self.state_dir / "format.out").touch(mode=0o600)
            (self.state_dir / "format.out").chmod(0o600)
        with open(self.state_dir / "format.out", "wb") as out:
            return subprocess.Popen(
                [
                    _java(),
                    "-cp",
                    f"{jars}{os.sep}*",
                    f"-Dlog4j2.configurationFile={LOG4J}",
                    f"-Dkafka.logs.file={self.state_dir / 'format.log'}",
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(props),
                    *scram,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def format_failed(self, proc: subprocess.Popen[bytes]) -> KafkaError | None:
        if proc.wait() == 0:
            return None
        text = (self.state_dir / "format.out").read_text(errors="replace")[-2000:]
        return KafkaError(f"formatting the KRaft log dir of {self.describe()} failed:\n{text}")

    def launch(self) -> subprocess.Popen[bytes]:
        """Start the JVM (configured and formatted already); does not wait."""
        cmd = [
            _java(),
            "-Xms256m",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            *self.jvm_options,
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J}",
            f"-Dkafka.logs.file={self.log_file}",
            "-cp",
            f"{self.jars}{os.sep}*",
            "kafka.Kafka",
            str(self.state_dir / "server.properties"),
        ]
        return self.daemon.launch(cmd, self.state_dir / "kafka.out")

    def exited(self, proc: subprocess.Popen[bytes]) -> KafkaError | None:
        """An error naming this node when its JVM has exited."""
        if proc.poll() is None:
            return None
        self.daemon.forget()
        return KafkaError(
            f"{self.describe()} exited with code {proc.returncode} before it answered; "
            f"see {self.log_file} and {self.state_dir / 'kafka.out'}"
        )

    def start(self, timeout: float = 90.0) -> bool:
        """Start the broker; False when it was already running. Waits until it answers."""
        if self.pid() is not None:
            if not self.answers(timeout=timeout):
                raise KafkaError(
                    f"broker pid {self.pid()} is running but does not answer on "
                    f"port {self.port}; see {self.log_file}"
                )
            return False
        self.check_ports()
        fmt = self.prepare()
        if fmt is not None and (err := self.format_failed(fmt)):
            raise err
        proc = self.launch()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if err := self.exited(proc):
                raise err
            if self.answers(timeout=1.0):
                return True
            time.sleep(0.3)
        self.stop()
        raise KafkaError(
            f"{self.describe() if self.cluster_size > 1 else 'the broker'} did not answer "
            f"within {timeout:.0f}s; see {self.log_file}"
        )

    def signal_stop(self) -> int | None:
        """SIGTERM (a controlled shutdown) without waiting; its pid, or None."""
        return self.daemon.signal_stop()

    def answers(self, timeout: float = 2.0) -> bool:
        return broker_answers(self.client_settings(), timeout=timeout)

    def stop(self, timeout: float = 60.0) -> bool:
        """Stop the broker; False when it was not running."""
        return self.daemon.stop(timeout)

    def wait_stopped(self, pid: int, timeout: float = 60.0) -> None:
        """After `signal_stop`: until the JVM is gone (SIGKILL past `timeout`)."""
        self.daemon.wait_stopped(pid, timeout)

    def kill(self) -> None:
        """SIGKILL the broker (fault tests): no clean shutdown."""
        self.daemon.kill()

    def reset(self) -> None:
        """Delete the broker's data (it must be stopped)."""
        if self.pid() is not None:
            raise KafkaError("stop the broker before resetting its data")
        shutil.rmtree(self.state_dir / "data", ignore_errors=True)

    def _properties(self, data: Path) -> str:
        rf, min_isr = replication_for(self.cluster_size)
        voters = self.voters or f"{self.node_id}@127.0.0.1:{self.controller_port}"
        if self.secure:
            listeners = [
                f"listeners=CLIENT://127.0.0.1:{self.port},MTLS://127.0.0.1:{self.mtls_port},"
                f"CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=CLIENT://localhost:{self.port},"
                f"MTLS://localhost:{self.mtls_port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=CLIENT",
                "listener.security.protocol.map=CLIENT:SASL_SSL,MTLS:SSL,CONTROLLER:PLAINTEXT",
                *self.material.broker_properties(),
            ]
        else:
            listeners = [
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
                f"CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://localhost:{self.port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            ]
        lines = [
            "process.roles=broker,controller",
            f"node.id={self.node_id}",
            f"controller.quorum.voters={voters}",
            *listeners,
            f"log.dirs={data}",
            "num.partitions=1",
            "auto.create.topics.enable=true",
            # Internal topics (offsets, transaction state) as replicated as the project's own:
            # one replica on a single node, three with min.insync.replicas=2 on a cluster.
            f"default.replication.factor={rf}",
            f"offsets.topic.replication.factor={rf}",
            "offsets.topic.num.partitions=6",
            f"transaction.state.log.replication.factor={rf}",
            f"transaction.state.log.min.isr={min_isr}",
            "transaction.state.log.num.partitions=6",
            f"share.coordinator.state.topic.replication.factor={rf}",
            f"share.coordinator.state.topic.min.isr={min_isr}",
            "group.initial.rebalance.delay.ms=0",
            "log.retention.hours=168",
            "log.segment.bytes=104857600",
            "log.cleaner.dedupe.buffer.size=16777216",
        ]
        if self.cluster_size > 1:
            lines += [
                f"min.insync.replicas={min_isr}",
                # Never elect a replica that missed acknowledged writes.
                "unclean.leader.election.enable=false",
            ]
        return "\n".join([*lines, ""])


def security_line(secure: bool, mtls_bootstrap: str) -> str:
    if not secure:
        return "PLAINTEXT"
    return f"secured: SASL_SSL, mTLS on {mtls_bootstrap}, ACLs enforced"


def single_mtls_port(port: int, controller_port: int) -> int:
    """The mTLS port of a secured single node: the port after its two others."""
    return max(port, controller_port) + 1


def client_settings(
    bootstrap: str,
    material: SecurityMaterial | None,
    user: str = ADMIN,
    mechanism: str = "SCRAM-SHA-512",
) -> Settings:
    """The client settings of a local Kafka: plaintext, or `user`'s on the SASL_SSL listener."""
    if material is None:
        return Settings.from_env({}, bootstrap_servers=bootstrap)
    return Settings.from_env(material.client_env(bootstrap, user, mechanism))


def new_cluster_id() -> str:
    cluster_id = "-"
    while cluster_id.startswith("-"):  # the storage tool would read it as an option
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    return cluster_id


@dataclass(frozen=True)
class NodeStatus:
    node: LocalKafka
    pid: int | None
    answers: bool
    quorum_leader: bool

    def line(self) -> str:
        n = self.node
        role = "broker+controller" + (", quorum leader" if self.quorum_leader else "")
        if self.pid is None:
            state = "not running"
        else:
            state = f"pid {self.pid}, " + ("answering" if self.answers else "NOT answering")
        mtls = f", mTLS localhost:{n.mtls_port}" if n.secure else ""
        return (
            f"node {n.node_id} ({role}): {state}; localhost:{n.port}{mtls}, controller "
            f"127.0.0.1:{n.controller_port}; log {n.log_file}"
        )


@dataclass(frozen=True)
class LocalCluster:
    """`size` local nodes numbered 1..size, every port derived from `base_port` (see the module
    docstring). One node is exactly the `LocalKafka` of before, under `<home>/<port>/`."""

    base_port: int
    size: int
    home: Path
    heap: str = "1g"
    #: One node only: its controller port when not `base_port + 1`.
    controller_port: int = 0
    jvm_options: tuple[str, ...] = ()
    #: Secured (see the module docstring).
    secure: bool = False
    _cluster_id: list[str] = field(default_factory=list, compare=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalCluster:
        if settings.brokers > 1 and settings.kafka_controller_port:
            raise KafkaError(
                "STREAMS_KAFKA_CONTROLLER_PORT is for one broker only: a cluster's ports all "
                "derive from STREAMS_KAFKA_PORT"
            )
        return cls(
            settings.kafka_port,
            settings.brokers,
            Path(settings.kafka_home),
            settings.kafka_heap,
            settings.kafka_controller_port,
            secure=settings.secure,
        )

    @classmethod
    def for_command(cls, settings: Settings, action: str) -> LocalCluster:
        """The cluster a `kafka` command means. Without --brokers (one node), a cluster whose
        data lives at this base port is meant when no single node runs there: so `stop`,
        `status` and `reset` need no --brokers, and `start` finds a running cluster. Likewise
        a command without --secure finds a secured Kafka running there (and the other way
        round), except `reset`, which deletes the data of exactly the one named."""
        cluster = cls._for_command(settings, action)
        if action != "reset" and not cluster.running():
            other = cls._for_command(settings.with_(secure=not settings.secure), action)
            if other.running():
                return other
        return cluster

    @classmethod
    def _for_command(cls, settings: Settings, action: str) -> LocalCluster:
        cluster = cls.from_settings(settings)
        if cluster.size > 1 or cluster.nodes[0].pid() is not None:
            return cluster
        recorded = cluster.recorded_size()
        if recorded is None or recorded == 1:
            return cluster
        other = cls(cluster.base_port, recorded, cluster.home, cluster.heap, secure=cluster.secure)
        if action != "start" or other.running():
            return other
        return cluster

    def __post_init__(self) -> None:
        if not 1 <= self.size <= MAX_NODES:
            raise KafkaError(f"--brokers: expected 1 to {MAX_NODES}, got {self.size}")
        span = 3 * self.size if self.secure else 2 * self.size
        if not 1024 <= self.base_port <= 65535 - span + 1:
            raise KafkaError(
                f"--kafka-port {self.base_port}: a {self.size}-node cluster needs ports "
                f"{self.base_port}-{self.base_port + span - 1} within 1024-65535"
            )

    # --- layout ---
    @property
    def cluster_dir(self) -> Path:
        return self.home / f"cluster-{self.base_port}{'-secure' if self.secure else ''}"

    @property
    def manifest(self) -> Path:
        return self.cluster_dir / "cluster.json"

    def recorded_size(self) -> int | None:
        """The size of the cluster whose data lives under `cluster_dir`, if any (the manifest
        is written once every node is formatted)."""
        try:
            return int(json.loads(self.manifest.read_text())["size"])
        except (FileNotFoundError, ValueError, KeyError):
            return None

    def cluster_id(self) -> str:
        if not self._cluster_id:
            try:
                self._cluster_id.append(json.loads(self.manifest.read_text())["cluster_id"])
            except (FileNotFoundError, ValueError, KeyError):
                self._cluster_id.append(new_cluster_id())
        return self._cluster_id[0]

    @property
    def nodes(self) -> list[LocalKafka]:
        if self.size == 1:
            controller = self.controller_port or self.base_port + 1
            return [
                LocalKafka(
                    self.base_port,
                    controller,
                    self.home,
                    self.heap,
                    jvm_options=self.jvm_options,
                    secure=self.secure,
                    mtls_port=single_mtls_port(self.base_port, controller),
                )
            ]
        ports = [(self.base_port + 2 * i, self.base_port + 2 * i + 1) for i in range(self.size)]
        mtls_base = self.base_port + 2 * self.size
        voters = ",".join(f"{i + 1}@127.0.0.1:{c}" for i, (_, c) in enumerate(ports))
        return [
            LocalKafka(
                port,
                controller,
                self.home,
                self.heap,
                node_id=i + 1,
                voters=voters,
                cluster_size=self.size,
                state_root=self.cluster_dir / f"node-{i + 1}",
                cluster_id=self.cluster_id(),
                jvm_options=self.jvm_options,
                secure=self.secure,
                mtls_port=mtls_base + i,
                security_root=self.cluster_dir / "security",
            )
            for i, (port, controller) in enumerate(ports)
        ]

    def node(self, node_id: int) -> LocalKafka:
        if not 1 <= node_id <= self.size:
            raise KafkaError(f"--node {node_id}: the cluster has nodes 1 to {self.size}")
        return self.nodes[node_id - 1]

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.nodes)

    @property
    def mtls_bootstrap(self) -> str:
        return ",".join(n.mtls_bootstrap for n in self.nodes)

    @property
    def material(self) -> SecurityMaterial:
        return self.nodes[0].material

    @property
    def security(self) -> str:
        """How clients connect, for status lines."""
        return security_line(self.secure, self.mtls_bootstrap)

    def client_settings(self, user: str = ADMIN, mechanism: str = "SCRAM-SHA-512") -> Settings:
        """The settings of a client of the cluster (`user`'s, when secured)."""
        material = self.material if self.secure else None
        return client_settings(self.bootstrap, material, user, mechanism)

    def running(self) -> list[LocalKafka]:
        return [n for n in self.nodes if n.pid() is not None]

    # --- lifecycle ---
    def start(self, timeout: float = 120.0) -> bool:
        """Start every node that is not running and wait until all of them answer and see the
        whole cluster; False when all were running already. On any failure every node this
        call started is stopped again (never a half-started cluster) and the error names the
        node, its port and its log."""
        if self.size == 1:
            return self.nodes[0].start(timeout)
        recorded = self.recorded_size()
        if recorded is not None and recorded != self.size:
            raise KafkaError(
                f"the data under {self.cluster_dir} is a {recorded}-node cluster's: start it "
                f"with --brokers {recorded}, or `kafka reset --brokers {recorded}` first"
            )
        todo = [n for n in self.nodes if n.pid() is None]
        if not todo:
            self.wait_healthy(timeout)
            return False
        for n in todo:
            n.check_ports()
        self.cluster_dir.mkdir(parents=True, exist_ok=True)
        self.nodes[0].fetch_jars()
        # Format in parallel: a JVM each, and on two cores that is most of the start-up.
        formats = [(n, n.prepare()) for n in todo]
        errors = [e for n, p in formats if p is not None and (e := n.format_failed(p))]
        if errors:
            raise errors[0]
        self.manifest.write_text(json.dumps({"size": self.size, "cluster_id": self.cluster_id()}))
        procs = {n.node_id: (n, n.launch()) for n in todo}
        try:
            self._wait_joined(procs, timeout)
        except BaseException:
            self._stop_nodes([n for n, _ in procs.values()])
            raise
        return True

    def _wait_joined(
        self,
        procs: dict[int, tuple[LocalKafka, subprocess.Popen[bytes]]],
        timeout: float,
        everyone: bool = True,
    ) -> None:
        """Until each started node answers and lists every node as a broker (`everyone`), or
        itself (one node started while others are down)."""
        deadline = time.monotonic() + timeout
        pending = dict(procs)
        while pending:
            for node_id, (node, proc) in list(pending.items()):
                if err := node.exited(proc):
                    raise err
                seen = brokers_seen(node.client_settings())
                if len(seen) == self.size if everyone else node_id in seen:
                    del pending[node_id]
            if not pending:
                return
            if time.monotonic() > deadline:
                names = "; ".join(n.describe() for n, _ in pending.values())
                raise KafkaError(
                    f"did not join the cluster within {timeout:.0f}s (stopped again): {names}"
                )
            time.sleep(0.5)

    def _sees_cluster(self, node: LocalKafka) -> bool:
        """The node answers, and its metadata lists every node as a broker."""
        return len(brokers_seen(node.client_settings())) == self.size

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Until every node answers and sees the whole cluster."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._sees_cluster(n) for n in self.nodes):
                return
            time.sleep(0.5)
        bad = [n.describe() for n in self.nodes if not self._sees_cluster(n)]
        raise KafkaError(f"not part of a healthy cluster after {timeout:.0f}s: {'; '.join(bad)}")

    def start_node(self, node_id: int, timeout: float = 90.0) -> bool:
        """Start one node of the cluster and wait until it answers as a broker of the cluster
        (its replicas may still be catching up: `wait_in_sync`); False when it was running."""
        node = self.node(node_id)
        if self.size == 1:
            return node.start(timeout)
        if self.recorded_size() != self.size:
            raise KafkaError(
                f"no {self.size}-node cluster under {self.cluster_dir}: start it first"
            )
        if node.pid() is not None:
            return False
        node.check_ports()
        fmt = node.prepare()
        if fmt is not None and (err := node.format_failed(fmt)):
            raise err
        proc = node.launch()
        try:
            self._wait_joined({node_id: (node, proc)}, timeout, everyone=False)
        except BaseException:
            node.stop()
            raise
        return True

    def stop_node(self, node_id: int, timeout: float = 60.0) -> bool:
        """SIGTERM one node (controlled shutdown: its leaderships move first) and wait."""
        return self.node(node_id).stop(timeout)

    def kill_node(self, node_id: int) -> None:
        """SIGKILL one node: no controlled shutdown (fault tests)."""
        self.node(node_id).kill()

    def stop(self, timeout: float = 60.0) -> bool:
        """Stop every node; False when none was running."""
        return self._stop_nodes(self.nodes, timeout)

    @staticmethod
    def _stop_nodes(nodes: list[LocalKafka], timeout: float = 60.0) -> bool:
        # All at once: a node stopped last, alone, could not reach a controller majority for its
        # controlled shutdown and would wait the whole timeout.
        pids = [(n, pid) for n in nodes if (pid := n.signal_stop()) is not None]
        for n, pid in pids:
            n.wait_stopped(pid, timeout)
        return bool(pids)

    def reset(self) -> None:
        """Delete every node's data (all must be stopped)."""
        if self.size == 1:
            self.nodes[0].reset()
            return
        if self.running():
            raise KafkaError("stop the cluster before resetting its data")
        for n in self.nodes:
            shutil.rmtree(n.data_dir, ignore_errors=True)
        self.manifest.unlink(missing_ok=True)

    # --- inspection ---
    def quorum_leader(self) -> int | None:
        """The node id of the KRaft quorum's leader (the active controller), from the newest
        `quorum-state` among running nodes; None when no leader is known."""
        best: tuple[int, int] | None = None
        for n in self.running():
            try:
                state = json.loads(
                    (n.data_dir / "__cluster_metadata-0" / "quorum-state").read_text()
                )
            except (OSError, ValueError):
                continue
            epoch, leader = int(state.get("leaderEpoch", -1)), int(state.get("leaderId", -1))
            if leader > 0 and (best is None or epoch > best[0]):
                best = (epoch, leader)
        return best[1] if best else None

    def under_replicated(self, timeout: float = 5.0) -> int | None:
        """Partitions (of every topic, internal ones included) whose in-sync replicas are
        fewer than their replicas, or that have no leader; None when no node answers."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(librdkafka_config(self.client_settings(), {"log_level": 0}))
        try:
            meta = admin.list_topics(timeout=timeout)
        except Exception:
            return None
        return sum(
            1
            for topic in meta.topics.values()
            for p in topic.partitions.values()
            if p.leader < 0 or len(p.isrs) < len(p.replicas)
        )

    def wait_in_sync(self, timeout: float = 60.0) -> float:
        """Until every partition has all its replicas in sync (a restarted node caught up);
        returns the seconds it took."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.under_replicated() == 0:
                return time.monotonic() - started
            time.sleep(0.25)
        raise KafkaError(
            f"{self.under_replicated()} partitions still under-replicated after {timeout:.0f}s"
        )

    def status(self) -> list[NodeStatus]:
        leader = self.quorum_leader() if self.size > 1 else None
        out = []
        for n in self.nodes:
            pid = n.pid()
            out.append(NodeStatus(n, pid, pid is not None and n.answers(), leader == n.node_id))
        return out


def brokers_seen(kafka: Settings | ClientConfig | str, timeout: float = 2.0) -> set[int]:
    """Ids of the brokers a metadata request lists (empty when nothing answers)."""
    meta = _metadata(kafka, timeout)
    return set(meta.brokers) if meta is not None else set()


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise KafkaError("Java 17+ (java) is not on PATH: the local broker needs it")
    return java
