"""All configuration in one place: every setting is an env var and a CLI flag.

`SETTINGS` is the single table; the CLI builds its flags from it and the README's
configuration table lists exactly these rows (a test keeps them in step).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any


def _bool(value: str) -> bool:
    v = value.strip().lower()
    if v in {"1", "true", "yes", "on"}:
        return True
    if v in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected a boolean, got {value!r}")


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


@dataclass(frozen=True)
class Setting:
    """One configurable value: its env var, CLI flag, default and meaning."""

    attr: str
    env: str
    default: Any
    help: str
    parse: Callable[[str], Any] = str
    groups: tuple[str, ...] = ("all",)
    secret: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.attr.replace("_", "-")


SETTINGS: tuple[Setting, ...] = (
    # --- Kafka and naming (every component) ---
    Setting(
        "bootstrap_servers",
        "KAFKA_BOOTSTRAP_SERVERS",
        "localhost:9092",
        "Kafka bootstrap servers, comma-separated.",
    ),
    Setting(
        "topic_prefix",
        "STREAMS_TOPIC_PREFIX",
        "",
        "Prepended to every topic name the project creates or uses.",
    ),
    Setting(
        "app_id",
        "STREAMS_APP_ID",
        "voucherify-streams",
        "Names the Faust app and its consumer groups.",
    ),
    Setting(
        "topic_partitions",
        "STREAMS_TOPIC_PARTITIONS",
        6,
        "Partitions of topics created at start when missing.",
        int,
    ),
    Setting(
        "topic_replication",
        "STREAMS_TOPIC_REPLICATION",
        0,
        "Replication factor of topics created at start (0: the cluster's size, up to 3).",
        int,
    ),
    Setting(
        "customer_deleted_topic",
        "STREAMS_CUSTOMER_DELETED_TOPIC",
        "voucherify.customer.deleted",
        "Input topic of customer.deleted events.",
    ),
    Setting(
        "dead_letter_topic",
        "STREAMS_DEAD_LETTER_TOPIC",
        "voucherify.webhooks.dead-letter",
        "Topic of requests the bridge could not accept.",
    ),
    Setting(
        "raw_topic",
        "STREAMS_RAW_TOPIC",
        "",
        "If set, other webhook event types are published here as received (JSON).",
    ),
    Setting(
        "loyalty_topic",
        "STREAMS_LOYALTY_TOPIC",
        "analytics.loyalty-points-lost",
        "Compacted output: latest loyalty-points-lost totals per key.",
    ),
    Setting(
        "referral_topic",
        "STREAMS_REFERRAL_TOPIC",
        "analytics.referral-impact",
        "Compacted output: latest referral-impact totals per key.",
    ),
    Setting(
        "deletions_topic",
        "STREAMS_DELETIONS_TOPIC",
        "analytics.customer-deletions",
        "Output: one CustomerDeletion fact per counted customer.",
    ),
    Setting(
        "schema_registry_url",
        "SCHEMA_REGISTRY_URL",
        "",
        "If set, encode with the Confluent wire format via this Schema Registry.",
    ),
    Setting("log_level", "STREAMS_LOG_LEVEL", "info", "Log level: debug, info, warning, error."),
    # --- Local Kafka (`voucherify-streams kafka`) ---
    Setting(
        "kafka_port",
        "STREAMS_KAFKA_PORT",
        9092,
        "Port of the local broker started by `kafka start` (node 1 of a cluster).",
        int,
        ("kafka",),
    ),
    Setting(
        "kafka_controller_port",
        "STREAMS_KAFKA_CONTROLLER_PORT",
        0,
        "KRaft controller port of the local broker (0: broker port + 1; one broker only).",
        int,
        ("kafka",),
    ),
    Setting(
        "kafka_home",
        "STREAMS_KAFKA_HOME",
        str(Path.home() / ".cache" / "voucherify-streams" / "kafka"),
        "Where the local broker keeps its jars, data, pid and log.",
        str,
        ("kafka",),
    ),
    Setting(
        "kafka_heap",
        "STREAMS_KAFKA_HEAP",
        "1g",
        "Java heap of the local broker (of each node).",
        str,
        ("kafka",),
    ),
    # --- Kafka cluster: its size, replication on it, broker-outage logs ---
    Setting(
        "brokers",
        "STREAMS_KAFKA_BROKERS",
        1,
        "Nodes of the local Kafka started by `kafka start` (1-5; node i on ports "
        "STREAMS_KAFKA_PORT + 2(i-1) and + 2(i-1) + 1).",
        int,
        ("kafka",),
    ),
    Setting(
        "topic_min_insync",
        "STREAMS_TOPIC_MIN_INSYNC_REPLICAS",
        0,
        "min.insync.replicas of topics created at start (0: 2 when replicated 3+ times, "
        "else the broker's default).",
        int,
    ),
    Setting(
        "log_summary_s",
        "STREAMS_LOG_SUMMARY_S",
        10.0,
        "Repeated Kafka client errors (a broker down) are logged once per node per this "
        "many seconds, then as one line with a count; 0: every line.",
        float,
        ("bridge", "worker", "replay"),
    ),
    # --- Schema Registry ---
    Setting(
        "registry_port",
        "STREAMS_REGISTRY_PORT",
        8081,
        "Port of the local Schema Registry started by `registry start`.",
        int,
        ("registry",),
    ),
    Setting(
        "registry_management_port",
        "STREAMS_REGISTRY_MANAGEMENT_PORT",
        0,
        "Health/metrics port of the local Schema Registry (0: registry port + 1).",
        int,
        ("registry",),
    ),
    Setting(
        "registry_home",
        "STREAMS_REGISTRY_HOME",
        str(Path.home() / ".cache" / "voucherify-streams" / "registry"),
        "Where the local Schema Registry keeps its app, data, pid and log.",
        str,
        ("registry",),
    ),
    Setting(
        "registry_java_home",
        "STREAMS_REGISTRY_JAVA_HOME",
        "",
        "JDK (21+) for the local Schema Registry (empty: the newest under /usr/lib/jvm).",
        str,
        ("registry",),
    ),
    # --- Bridge ---
    Setting("bridge_host", "BRIDGE_HOST", "0.0.0.0", "Bridge listen address.", str, ("bridge",)),
    Setting("bridge_port", "BRIDGE_PORT", 8080, "Bridge listen port.", int, ("bridge",)),
    Setting(
        "webhook_secret",
        "VOUCHERIFY_WEBHOOK_SECRET",
        (),
        "Webhook secret(s), comma-separated for rotation.",
        _csv,
        ("bridge", "demo"),
        True,
    ),
    Setting(
        "webhook_secret_file",
        "VOUCHERIFY_WEBHOOK_SECRET_FILE",
        "",
        "File with one webhook secret per line (added to the above).",
        str,
        ("bridge",),
    ),
    Setting(
        "insecure_no_signature",
        "BRIDGE_INSECURE_NO_SIGNATURE",
        False,
        "DEVELOPMENT ONLY: accept unsigned webhooks when no secret is set.",
        _bool,
        ("bridge",),
    ),
    Setting(
        "max_body_bytes",
        "BRIDGE_MAX_BODY_BYTES",
        1024 * 1024,
        "Largest accepted request body (bytes) before 413.",
        int,
        ("bridge",),
    ),
    Setting(
        "linger_ms",
        "BRIDGE_LINGER_MS",
        0.0,
        "librdkafka linger of the bridge (ms): 0 sends at once (measured fastest at 1-64 clients).",
        float,
        ("bridge",),
    ),
    Setting(
        "request_deadline_s",
        "BRIDGE_REQUEST_DEADLINE_S",
        5.0,
        "End-to-end deadline of one webhook, incl. the broker ack (s).",
        float,
        ("bridge",),
    ),
    Setting(
        "retry_after_s",
        "BRIDGE_RETRY_AFTER_S",
        30,
        "Retry-After sent with 503 (s).",
        int,
        ("bridge",),
    ),
    Setting(
        "pii_policy",
        "PII_POLICY",
        "redact",
        "Personal data before publishing: redact, hash or keep.",
        str,
        ("bridge", "replay"),
    ),
    Setting(
        "pii_hash_key",
        "PII_HASH_KEY",
        "",
        "HMAC key for PII_POLICY=hash.",
        str,
        ("bridge", "replay"),
        True,
    ),
    # --- Worker ---
    Setting("web_port", "STREAMS_WEB_PORT", 6066, "Faust worker web port.", int, ("worker",)),
    Setting(
        "web_host",
        "STREAMS_WEB_HOST",
        "0.0.0.0",
        "Faust worker web bind address.",
        str,
        ("worker",),
    ),
    Setting(
        "store",
        "STREAMS_STORE",
        "rocksdb://",
        "Table store: rocksdb:// or memory://.",
        str,
        ("worker",),
    ),
    Setting(
        "processing_guarantee",
        "STREAMS_PROCESSING_GUARANTEE",
        "exactly_once",
        "exactly_once or at_least_once.",
        str,
        ("worker",),
    ),
    Setting(
        "data_dir",
        "STREAMS_DATA_DIR",
        "./.streams-data",
        "Faust data directory (RocksDB tables).",
        str,
        ("worker",),
    ),
    Setting(
        "day_retention_days",
        "STREAMS_DAY_RETENTION_DAYS",
        400,
        "How long the per-day window is kept (days).",
        int,
        ("worker",),
    ),
    Setting(
        "standby_replicas",
        "STREAMS_STANDBY_REPLICAS",
        0,
        "Faust table standby replicas (0: see README, standbys lose updates upstream).",
        int,
        ("worker",),
    ),
    Setting(
        "fast_restore",
        "STREAMS_FAST_RESTORE",
        True,
        "Restore table partitions from their changelogs in bulk (librdkafka, write batches)"
        " before Faust's own recovery; false: Faust's path only.",
        _bool,
        ("worker",),
    ),
    Setting(
        "stall_timeout_s",
        "STREAMS_STALL_TIMEOUT_S",
        300.0,
        "Exit (to be restarted) after consuming nothing this long while records wait; 0: off.",
        float,
        ("worker",),
    ),
    Setting(
        "partition_stall_s",
        "STREAMS_PARTITION_STALL_S",
        30.0,
        "An assigned partition with records waiting and no progress this long is stalled: "
        "recovered, then the worker exits (to be restarted); 0: off.",
        float,
        ("worker",),
    ),
    Setting(
        "session_timeout_s",
        "STREAMS_SESSION_TIMEOUT_S",
        10.0,
        "Consumer-group session timeout (s): how long a dead worker holds its partitions.",
        float,
        ("worker",),
    ),
    Setting(
        "worker_id",
        "STREAMS_WORKER_ID",
        "",
        "Stable id of this worker (static group membership): a restarted worker takes its "
        "partitions back at once. Unique per worker; empty: dynamic membership.",
        str,
        ("worker",),
    ),
    Setting(
        "producer_linger_ms",
        "STREAMS_PRODUCER_LINGER_MS",
        5.0,
        "Linger of the worker's producer (ms): fewer, larger produce requests.",
        float,
        ("worker",),
    ),
    Setting(
        "batch_size",
        "STREAMS_BATCH_SIZE",
        500,
        "Records an agent takes at once (deltas and outputs are combined per key per batch).",
        int,
        ("worker",),
    ),
    Setting(
        "batch_wait_ms",
        "STREAMS_BATCH_WAIT_MS",
        10.0,
        "Longest an agent waits to fill a batch (adds up to this to each stage's latency).",
        float,
        ("worker",),
    ),
    # --- Dashboard, metrics and operator tools (`/dashboard`, `dead-letters`, `tail`) ---
    Setting(
        "dashboard_refresh_ms",
        "STREAMS_DASHBOARD_REFRESH_MS",
        1000,
        "How often the dashboard polls the worker (ms; at most 2000 keeps it within 2 s of the "
        "tables).",
        int,
        ("worker",),
    ),
    Setting(
        "dashboard_top",
        "STREAMS_DASHBOARD_TOP",
        10,
        "Rows in the dashboard's top campaigns, tiers and referrers.",
        int,
        ("worker",),
    ),
    Setting(
        "redriven_topic",
        "STREAMS_REDRIVEN_TOPIC",
        "voucherify.webhooks.dead-letter.redriven",
        "Compacted topic of the dead letters `dead-letters redrive` republished (so a second "
        "run skips them).",
        str,
        ("dead-letters",),
    ),
)

_BY_ATTR = {s.attr: s for s in SETTINGS}


@dataclass(frozen=True, repr=False)
class Settings:
    """Resolved configuration. Build with `Settings.from_env()`; never read os.environ elsewhere."""

    def __repr__(self) -> str:
        # Secrets (the rows marked secret) never reach a repr, a log line or an exception.
        def show(s: Setting) -> str:
            value = getattr(self, s.attr)
            return f"{s.attr}={'***' if s.secret and value else repr(value)}"

        return f"Settings({', '.join(map(show, SETTINGS))})"

    bootstrap_servers: str = "localhost:9092"
    topic_prefix: str = ""
    app_id: str = "voucherify-streams"
    topic_partitions: int = 6
    topic_replication: int = 0
    customer_deleted_topic: str = "voucherify.customer.deleted"
    dead_letter_topic: str = "voucherify.webhooks.dead-letter"
    raw_topic: str = ""
    loyalty_topic: str = "analytics.loyalty-points-lost"
    referral_topic: str = "analytics.referral-impact"
    deletions_topic: str = "analytics.customer-deletions"
    schema_registry_url: str = ""
    log_level: str = "info"
    kafka_port: int = 9092
    kafka_controller_port: int = 0
    kafka_home: str = field(default_factory=lambda: str(_BY_ATTR["kafka_home"].default))
    kafka_heap: str = "1g"
    brokers: int = 1
    topic_min_insync: int = 0
    log_summary_s: float = 10.0
    registry_port: int = 8081
    registry_management_port: int = 0
    registry_home: str = field(default_factory=lambda: str(_BY_ATTR["registry_home"].default))
    registry_java_home: str = ""
    bridge_host: str = "0.0.0.0"
    bridge_port: int = 8080
    webhook_secret: tuple[str, ...] = ()
    webhook_secret_file: str = ""
    insecure_no_signature: bool = False
    max_body_bytes: int = 1024 * 1024
    linger_ms: float = 0.0
    request_deadline_s: float = 5.0
    retry_after_s: int = 30
    pii_policy: str = "redact"
    pii_hash_key: str = ""
    web_port: int = 6066
    web_host: str = "0.0.0.0"
    store: str = "rocksdb://"
    processing_guarantee: str = "exactly_once"
    data_dir: str = "./.streams-data"
    day_retention_days: int = 400
    standby_replicas: int = 0
    fast_restore: bool = True
    stall_timeout_s: float = 300.0
    partition_stall_s: float = 30.0
    session_timeout_s: float = 10.0
    worker_id: str = ""
    producer_linger_ms: float = 5.0
    batch_size: int = 500
    batch_wait_ms: float = 10.0
    dashboard_refresh_ms: int = 1000
    dashboard_top: int = 10
    redriven_topic: str = "voucherify.webhooks.dead-letter.redriven"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for s in SETTINGS:
            raw = env.get(s.env)
            if raw is not None and raw != "":
                try:
                    values[s.attr] = s.parse(raw)
                except ValueError as exc:
                    raise ValueError(f"{s.env}: {exc}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values).validated()

    def validated(self) -> Settings:
        if self.pii_policy not in {"redact", "hash", "keep"}:
            raise ValueError(f"PII_POLICY: expected redact, hash or keep, got {self.pii_policy!r}")
        if self.pii_policy == "hash" and not self.pii_hash_key:
            raise ValueError("PII_POLICY=hash needs PII_HASH_KEY")
        if self.processing_guarantee not in {"exactly_once", "at_least_once"}:
            raise ValueError(
                "STREAMS_PROCESSING_GUARANTEE: expected exactly_once or at_least_once, "
                f"got {self.processing_guarantee!r}"
            )
        if not 0 <= self.linger_ms <= 1000:
            raise ValueError(f"BRIDGE_LINGER_MS: expected 0 to 1000, got {self.linger_ms}")
        if not 0 <= self.producer_linger_ms <= 1000:
            raise ValueError(
                f"STREAMS_PRODUCER_LINGER_MS: expected 0 to 1000, got {self.producer_linger_ms}"
            )
        if not 6 <= self.session_timeout_s <= 300:  # the broker's default group session range
            raise ValueError(
                f"STREAMS_SESSION_TIMEOUT_S: expected 6 to 300, got {self.session_timeout_s}"
            )
        if self.partition_stall_s < 0:
            raise ValueError(
                f"STREAMS_PARTITION_STALL_S: expected >= 0, got {self.partition_stall_s}"
            )
        if self.batch_size < 1:
            raise ValueError(f"STREAMS_BATCH_SIZE: expected at least 1, got {self.batch_size}")
        if self.batch_wait_ms <= 0:
            raise ValueError(f"STREAMS_BATCH_WAIT_MS: expected > 0, got {self.batch_wait_ms}")
        if not 100 <= self.dashboard_refresh_ms <= 2000:
            raise ValueError(
                "STREAMS_DASHBOARD_REFRESH_MS: expected 100 to 2000 (the dashboard stays within "
                f"2 s of the tables), got {self.dashboard_refresh_ms}"
            )
        if not 1 <= self.dashboard_top <= 100:
            raise ValueError(f"STREAMS_DASHBOARD_TOP: expected 1 to 100, got {self.dashboard_top}")
        if not 1 <= self.brokers <= 5:
            raise ValueError(f"STREAMS_KAFKA_BROKERS: expected 1 to 5, got {self.brokers}")
        if self.topic_replication < 0 or self.topic_min_insync < 0:
            raise ValueError(
                "STREAMS_TOPIC_REPLICATION and STREAMS_TOPIC_MIN_INSYNC_REPLICAS: expected >= 0"
            )
        if self.topic_replication and self.topic_min_insync > self.topic_replication:
            raise ValueError(
                f"STREAMS_TOPIC_MIN_INSYNC_REPLICAS ({self.topic_min_insync}) exceeds "
                f"STREAMS_TOPIC_REPLICATION ({self.topic_replication}): no write could succeed"
            )
        if self.log_summary_s < 0:
            raise ValueError(f"STREAMS_LOG_SUMMARY_S: expected >= 0, got {self.log_summary_s}")
        if self.store not in {"rocksdb://", "memory://"}:
            raise ValueError(f"STREAMS_STORE: expected rocksdb:// or memory://, got {self.store!r}")
        return self

    def topic(self, name: str) -> str:
        """The full name of a topic: the prefix, then the configured name."""
        return f"{self.topic_prefix}{name}"

    @property
    def controller_port(self) -> int:
        return self.kafka_controller_port or self.kafka_port + 1

    @property
    def registry_mgmt_port(self) -> int:
        return self.registry_management_port or self.registry_port + 1

    def secrets(self) -> tuple[str, ...]:
        """Every configured webhook secret: env/flag values, then the secrets file's lines."""
        found = list(self.webhook_secret)
        if self.webhook_secret_file:
            text = Path(self.webhook_secret_file).read_text(encoding="utf-8")
            found.extend(line.strip() for line in text.splitlines() if line.strip())
        return tuple(dict.fromkeys(found))

    def to_env(self) -> dict[str, str]:
        """These settings as env vars, for child processes (the demo, tests, benchmarks)."""
        out = {}
        for s in SETTINGS:
            value = getattr(self, s.attr)
            if isinstance(value, tuple):
                value = ",".join(value)
            elif isinstance(value, bool):
                value = "true" if value else "false"
            out[s.env] = str(value)
        return out

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes).validated()


def add_arguments(parser: argparse.ArgumentParser, groups: Iterable[str]) -> None:
    """Add a flag for every setting in `groups` (plus the shared ones)."""
    wanted = set(groups) | {"all"}
    for s in SETTINGS:
        if not wanted.intersection(s.groups):
            continue
        if s.parse is _bool:
            parser.add_argument(
                s.flag,
                dest=s.attr,
                action="store_const",
                const=True,
                default=None,
                help=f"{s.help} [env {s.env}]",
            )
        else:
            parser.add_argument(
                s.flag,
                dest=s.attr,
                type=s.parse,
                default=None,
                metavar=s.env,
                help=f"{s.help} [env {s.env}]",
            )


def from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
    """Env vars first, flags win."""
    overrides = {f.name: getattr(args, f.name) for f in fields(Settings) if hasattr(args, f.name)}
    return Settings.from_env(environ, **overrides)


def markdown_table() -> str:
    """The README's configuration table, generated from SETTINGS."""
    rows = ["| env var | flag | default | used by | meaning |", "|---|---|---|---|---|"]
    for s in SETTINGS:
        default = s.default
        if s.attr == "kafka_home":
            default = "~/.cache/voucherify-streams/kafka"
        if s.attr == "registry_home":
            default = "~/.cache/voucherify-streams/registry"
        shown = ",".join(default) if isinstance(default, tuple) else str(default)
        shown = f"`{shown}`" if shown != "" else "(empty)"
        used = ", ".join(s.groups).replace("all", "every command")
        rows.append(f"| `{s.env}` | `{s.flag}` | {shown} | {used} | {s.help} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
