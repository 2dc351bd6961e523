"""Shared fixtures: one real Kafka broker for the whole run, isolated names per test.

The broker comes from, in order: KAFKA_BOOTSTRAP_SERVERS; testcontainers' Kafka when a Docker
engine answers; else the project's own local broker (`voucherify-streams kafka`), started here
on a free port and stopped at the end. Under CI=true a Kafka test fails when none can be had.
The Schema Registry (`schema_registry`) likewise: the project's local Apicurio Registry.
`secured_registry` puts it behind Debian's nginx (TLS with a throwaway CA, basic auth, a bearer
token, a read-only user), started once per run on free ports for the tests of registry auth.
`kafka_cluster` is a three-node cluster of the project's local Kafka, started once per run on
free ports for the tests that need replication or stop brokers (so it is always local).
`secure_kafka` is one secured node of it (SASL_SSL, mTLS, ACLs enforced), started once per run
on free ports by `voucherify-streams kafka start --secure` for the tests of client security.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.nginx import NginxError, SecuredRegistry
from support.secure import SecureKafka

from streams.dev.kafka import KafkaError, LocalCluster, LocalKafka, broker_answers
from streams.dev.ports import free_port_block, free_port_pair
from streams.dev.registry import LocalRegistry, RegistryError, registry_answers
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "tests" / "data" / "customer-deleted.webhook.json"
CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _unavailable(part: str, reason: str) -> None:
    """Under CI=true a test that needs a real part fails, never skips, when none can be had."""
    if CI:
        pytest.fail(f"no {part} could be had under CI=true: {reason}")
    pytest.skip(f"no {part}: {reason}")


def _given(var: str, answers: Callable[..., bool], part: str) -> str | None:
    """The address of a running `part` named by env var `var`, checked to answer."""
    address = os.environ.get(var)
    if address and not answers(address, timeout=10):
        _unavailable(part, f"{var}={address} does not answer")
    return address or None


def _no_broker(reason: str) -> None:
    _unavailable("Kafka broker", reason)


def _no_registry(reason: str) -> None:
    _unavailable("Schema Registry", reason)


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def kafka() -> Iterator[str]:
    """Bootstrap servers of a real broker."""
    given = _given("KAFKA_BOOTSTRAP_SERVERS", broker_answers, "Kafka broker")
    if given:
        yield given
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    base = Settings.from_env()
    port = free_port_pair()
    broker = LocalKafka(port, port + 1, Path(base.kafka_home), base.kafka_heap)
    try:
        broker.start()
    except KafkaError as exc:
        _no_broker(str(exc))
    try:
        yield broker.bootstrap
    finally:
        broker.stop()
        broker.reset()


#: Heap of each node of the test cluster: three JVMs share the machine with everything else.
CLUSTER_HEAP = os.environ.get("STREAMS_TEST_CLUSTER_HEAP", "512m")
#: The reliability tests restart nodes eight times: the C1 compiler alone starts a JVM in about
#: half the CPU time, which counts on a loaded two-core machine, at a throughput cost these
#: loads do not notice.
CLUSTER_JVM = ("-XX:TieredStopAtLevel=1",)


@pytest.fixture(scope="session")
def kafka_cluster() -> Iterator[LocalCluster]:
    """A three-node local Kafka cluster (combined broker+controller nodes, replication 3 and
    min.insync.replicas=2 by default), started once per run on free ports and stopped and
    deleted at the end. Tests may stop and start its nodes (`cluster_healthy` puts them back).
    Under CI=true a test that needs it fails, never skips, when it cannot start."""
    base = Settings.from_env()
    cluster = LocalCluster(
        free_port_block(6), 3, Path(base.kafka_home), CLUSTER_HEAP, jvm_options=CLUSTER_JVM
    )
    started = time.monotonic()
    try:
        cluster.start()
    except KafkaError as exc:
        _no_broker(f"the three-node cluster did not start: {exc}")
    cluster_start_s = time.monotonic() - started
    print(f"\nthree-node Kafka cluster on {cluster.bootstrap} in {cluster_start_s:.1f}s")
    try:
        yield cluster
    finally:
        cluster.stop()
        cluster.reset()
        shutil.rmtree(cluster.cluster_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def secure_kafka() -> Iterator[SecureKafka]:
    """One secured local Kafka node for the run (started with the CLI, whose output is kept),
    stopped and deleted at the end. Under CI=true a test that needs it fails, never skips,
    when it cannot start."""
    from streams.cli import main

    base = Settings.from_env()
    port = free_port_block(3)
    args = ["--kafka-port", str(port), "--kafka-home", base.kafka_home, "--kafka-heap", "512m"]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["kafka", "start", "--secure", *args], environ={})
    broker = LocalKafka.from_settings(
        Settings.from_env({}, kafka_port=port, kafka_home=base.kafka_home, secure=True)
    )
    if rc != 0:
        broker.stop()
        _no_broker(f"the secured broker did not start: {err.getvalue()}")
    try:
        yield SecureKafka(broker, out.getvalue())
    finally:
        broker.stop()
        broker.reset()
        shutil.rmtree(broker.state_dir, ignore_errors=True)


@pytest.fixture
def cluster_healthy(kafka_cluster: LocalCluster) -> Iterator[LocalCluster]:
    """The shared cluster with every node running and every partition in sync, before and
    after the test (a test that stopped nodes leaves them to this)."""
    kafka_cluster.start()
    kafka_cluster.wait_in_sync(120)
    yield kafka_cluster
    kafka_cluster.start()
    kafka_cluster.wait_in_sync(120)


@pytest.fixture(scope="session")
def schema_registry() -> Iterator[str]:
    """URL (SCHEMA_REGISTRY_URL) of a real Confluent-compatible Schema Registry for the run:
    STREAMS_TEST_SCHEMA_REGISTRY_URL when set, else the project's local Apicurio Registry
    started once on free ports (its app cached like the broker's jars) and stopped at the end.
    Under CI=true a registry test fails, never skips, when none can be had."""
    given = _given("STREAMS_TEST_SCHEMA_REGISTRY_URL", registry_answers, "Schema Registry")
    if given:
        yield given
        return
    base = Settings.from_env()
    port = free_port_pair()
    registry = LocalRegistry(port, port + 1, Path(base.registry_home), base.registry_java_home)
    try:
        registry.start()
    except RegistryError as exc:
        _no_registry(str(exc))
    try:
        yield registry.url
    finally:
        registry.stop()
        registry.reset()
        shutil.rmtree(registry.state_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def secured_registry(
    schema_registry: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecuredRegistry]:
    """The session's registry behind nginx, which enforces TLS and credentials (see
    support.nginx), started once per run and stopped at the end. Under CI=true a test that
    needs it fails, never skips, when nginx cannot be had."""
    proxy = SecuredRegistry(tmp_path_factory.mktemp("secured-registry"), schema_registry)
    try:
        proxy.start()
    except NginxError as exc:
        _unavailable("nginx in front of the Schema Registry", str(exc))
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def settings(kafka: str, unique: str, tmp_path: Path) -> Settings:
    """Settings isolated for one test: own topic prefix, app id and data dir."""
    return Settings.from_env(
        {},
        bootstrap_servers=kafka,
        topic_prefix=f"t{unique}.",
        app_id=f"test-{unique}",
        data_dir=str(tmp_path / "data"),
        topic_partitions=3,
    )


@pytest.fixture(scope="session")
def example_body() -> bytes:
    return EXAMPLE.read_bytes()
