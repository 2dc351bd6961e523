"""The broker of a benchmark run and the topics of each variant on it."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.datasets import SECRET
from bench.results import log
from streams.dev.ports import free_port_block, free_port_pair

#: The Settings fields that say how a client connects (streams.kafka.security).
SECURITY_FIELDS = (
    "kafka_security_protocol",
    "kafka_sasl_mechanism",
    "kafka_sasl_username",
    "kafka_sasl_password_file",
    "kafka_ssl_ca_file",
)


@dataclass
class Broker:
    """The broker of this run: given by KAFKA_BOOTSTRAP_SERVERS, or a private LocalKafka."""

    bootstrap: str
    local: Any = None  # streams.dev.kafka.LocalKafka when we started it
    home: Path | None = None
    #: A secured broker's client settings (streams.settings.Settings; None: plaintext).
    client: Any = None

    @classmethod
    def start(cls) -> Broker:
        given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
        if given:
            log(f"using the broker at {given} (KAFKA_BOOTSTRAP_SERVERS)")
            return cls(given)
        return cls.start_local()

    @classmethod
    def start_local(cls, secure: bool = False) -> Broker:
        """A private LocalKafka on free ports under a temporary home. `secure`: its SASL_SSL
        listener (streams.dev.secure), the clients connecting as the super user `admin` with
        SCRAM-SHA-512 (ACLs are enforced, but admin passes them all)."""
        from streams.dev.kafka import KafkaError, LocalKafka, single_mtls_port
        from streams.settings import Settings

        cached = Path(Settings().kafka_home) / "jars"
        heap = os.environ.get("STREAMS_KAFKA_HEAP", "1g")
        kind = "secured (SASL_SSL) " if secure else ""
        for attempt in range(3):
            home = Path(tempfile.mkdtemp(prefix="vs-bench-kafka-"))
            if cached.is_dir():  # reuse the cached jars (no Maven run)
                (home / "jars").symlink_to(cached)
            # Secured: the mTLS listener takes the port after the controller's.
            port = free_port_block(3) if secure else free_port_pair()
            mtls = single_mtls_port(port, port + 1) if secure else 0
            local = LocalKafka(port, port + 1, home, heap, secure=secure, mtls_port=mtls)
            log(f"starting a private {kind}Kafka on localhost:{port} (state in {home})")
            t0 = time.monotonic()
            try:
                local.start(timeout=120)
            except KafkaError as exc:
                # e.g. a random cluster id starting with "-" that kafka-storage takes for a flag
                log(f"Kafka did not start (attempt {attempt + 1}): {str(exc)[:300]}")
                local.stop()
                shutil.rmtree(home, ignore_errors=True)
                continue
            log(f"Kafka up in {time.monotonic() - t0:.1f}s")
            return cls(local.bootstrap, local, home, local.client_settings() if secure else None)
        raise RuntimeError("the private Kafka did not start in 3 attempts")

    @property
    def security(self) -> dict[str, Any]:
        """The Settings fields of how clients connect (empty: plaintext)."""
        if self.client is None:
            return {}
        return {k: getattr(self.client, k) for k in SECURITY_FIELDS}

    @property
    def pid(self) -> int | None:
        """The broker's JVM, when we started it."""
        return self.local.pid() if self.local is not None else None

    def stop(self) -> None:
        if self.local is not None:
            self.local.stop()
            if self.home is not None:
                shutil.rmtree(self.home, ignore_errors=True)


def settings_for(broker: Broker, name: str, **changes: Any) -> Any:
    """Settings with a private topic prefix and app id for one benchmark variant."""
    from streams.settings import Settings

    tag = f"{name}-{uuid.uuid4().hex[:6]}"
    base = Settings(
        bootstrap_servers=broker.bootstrap,
        topic_prefix=f"bench-{tag}.",
        app_id=f"bench-{tag}",
        webhook_secret=(SECRET,),
        log_level="warning",
        bridge_host="127.0.0.1",
        web_host="127.0.0.1",
        standby_replicas=0,
        **broker.security,
    )
    return base.with_(**changes)


def security_env(settings: Any) -> dict[str, str]:
    """A variant's KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_* and KAFKA_SSL_* env vars: how a
    baseline started with `--bootstrap` connects (bench.baselines.baseline_settings)."""
    from bench.baselines import SECURITY_ENV

    return {k: v for k, v in settings.to_env().items() if k.startswith(SECURITY_ENV) and v}


def ensure_topics_for(settings: Any, changelogs: Iterable[str] = ()) -> None:
    """A variant's topics, configured as in production (the worker and bridge create the same)."""
    from streams.kafka.topics import ensure_project_topics

    ensure_project_topics(settings, changelogs=changelogs)


def ensure_input_like(settings: Any, topic: str) -> None:
    """`topic` configured like the project's input topic: what a baseline publishes to."""
    from streams.kafka.admin import ensure_topics
    from streams.kafka.topics import project_topics, resolve_replication

    name = settings.topic(settings.customer_deleted_topic)
    settings = resolve_replication(settings)
    spec = next(t for t in project_topics(settings) if t.name == name)
    ensure_topics(settings, [replace(spec, name=topic)])


def delete_topics(kafka: Any, prefix: str, app_id: str = "") -> None:
    """Delete the topics a variant created (its prefix, and its app id's internal topics).
    `kafka`: the variant's Settings, or the address of a plaintext broker."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(client_config(kafka, {"log_level": 0}))
    try:
        names = list(admin.list_topics(timeout=10).topics)
    except Exception:
        return
    doomed = [n for n in names if n.startswith(prefix) or (app_id and n.startswith(app_id))]
    if doomed:
        with contextlib.suppress(Exception):
            for f in admin.delete_topics(doomed, operation_timeout=30).values():
                with contextlib.suppress(Exception):
                    f.result(30)
    if app_id:  # the variant's consumer groups too (matters on a shared broker)
        with contextlib.suppress(Exception):
            groups = admin.list_consumer_groups().result(10).valid
            mine = [g.group_id for g in groups if g.group_id.startswith(app_id)]
            if mine:
                for f in admin.delete_consumer_groups(mine).values():
                    with contextlib.suppress(Exception):
                        f.result(30)


def client_config(kafka: Any, layer: dict[str, Any]) -> Any:
    """A confluent-kafka client's configuration for a variant's Settings (its broker's
    security included, through the project's builder), or for a plaintext broker's address."""
    from streams.kafka.security import librdkafka_config
    from streams.settings import Settings

    if isinstance(kafka, str):
        kafka = Settings(bootstrap_servers=kafka)
    return librdkafka_config(kafka, layer)


@contextlib.contextmanager
def cleanup_topics(settings: Any) -> Iterator[None]:
    try:
        yield
    finally:
        if os.environ.get("BENCH_KEEP_TOPICS") != "1":
            delete_topics(settings, settings.topic_prefix, settings.app_id)


def produce_all(settings: Any, keys: list[bytes], values: list[bytes]) -> float:
    """Produce every record to the variant's input topic (made by `ensure_topics_for`), keyed and
    partitioned by murmur2 like Java clients; seconds taken."""
    from confluent_kafka import Producer

    topic = settings.topic(settings.customer_deleted_topic)
    p = Producer(
        client_config(
            settings,
            {
                "linger.ms": 20,
                "batch.size": 1_000_000,
                # Uncompressed: the worker's aiokafka cannot read lz4 without the `lz4` package.
                "compression.type": "none",
                "partitioner": "murmur2_random",
                "queue.buffering.max.messages": 500_000,
                "log_level": 3,
            },
        )
    )
    t0 = time.monotonic()
    deadline = t0 + 600
    for k, v in zip(keys, values, strict=True):
        while True:
            try:
                p.produce(topic, key=k, value=v)
                break
            except BufferError:
                p.poll(0.05)
                if time.monotonic() > deadline:
                    raise TimeoutError("prefill took over 600s") from None
        p.poll(0)
    left = p.flush(120)
    if left:
        raise RuntimeError(f"{left} prefill records not delivered")
    return time.monotonic() - t0
