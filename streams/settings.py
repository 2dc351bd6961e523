"""All configuration in one place: every setting is an env var and a CLI flag.

Each setting is declared once, as a field of `Settings` with its env var and meaning; `SETTINGS`
is the table derived from those fields. The CLI builds its flags from it and the README's
configuration table is generated from it (a test keeps the README current).

A plain dataclass rather than pydantic-settings: the values are flat strings, numbers and one
list, the cross-field rules need code anyway (`validated`), and flags, the README table and the
child-process environment are all generated from the same field metadata.
"""

from __future__ import annotations

import argparse
import os
import re
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


#: The user and password of a URL (`https://user:pass@host`): up to the authority's last `@`.
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@")


def redact_url(text: str) -> str:
    """`text` with the credentials of every URL in it shown as `***` (`https://***@host/`)."""
    return _USERINFO.sub(r"\1***@", text)


_CACHE = Path.home() / ".cache" / "voucherify-streams"
_SHOWN = {str(_CACHE): "~/.cache/voucherify-streams"}  # the README shows defaults machine-free
_PARSERS: dict[str, Callable[[str], Any]] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": _bool,
    "tuple[str, ...]": _csv,
}


def setting(
    default: Any,
    env: str,
    help: str,
    *,
    groups: tuple[str, ...] = ("all",),
    secret: bool = False,
) -> Any:
    """A `Settings` field: its default, env var, meaning, the commands that take it as a flag,
    and whether it is a secret (never in a repr, a log line or an exception)."""
    if isinstance(default, Path):
        default = str(default)
    meta = {"env": env, "help": help, "groups": groups, "secret": secret}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Setting:
    """One row of the table derived from a `Settings` field."""

    attr: str
    env: str
    default: Any
    help: str
    parse: Callable[[str], Any]
    groups: tuple[str, ...]
    secret: bool

    @property
    def flag(self) -> str:
        return "--" + self.attr.replace("_", "-")

    @property
    def negatable(self) -> bool:
        """A boolean on by default: its flag also has a `--no-` form."""
        return self.parse is _bool and self.default is True

    @property
    def shown_flag(self) -> str:
        return f"--[no-]{self.flag[2:]}" if self.negatable else self.flag


@dataclass(frozen=True, repr=False)
class Settings:
    """Resolved configuration. Build with `Settings.from_env()`; never read os.environ elsewhere."""

    def __repr__(self) -> str:
        def show(s: Setting) -> str:
            value = getattr(self, s.attr)
            if isinstance(value, str):
                value = redact_url(value)  # a URL's user and password
            return f"{s.attr}={'***' if s.secret and value else repr(value)}"

        return f"Settings({', '.join(map(show, SETTINGS))})"

    # --- Kafka and naming (every component) ---
    bootstrap_servers: str = setting(
        "localhost:9092", "KAFKA_BOOTSTRAP_SERVERS", "Kafka bootstrap servers, comma-separated."
    )
    topic_prefix: str = setting(
        "", "STREAMS_TOPIC_PREFIX", "Prepended to every topic name the project creates or uses."
    )
    app_id: str = setting(
        "voucherify-streams", "STREAMS_APP_ID", "Names the Faust app and its consumer groups."
    )
    topic_partitions: int = setting(
        6, "STREAMS_TOPIC_PARTITIONS", "Partitions of topics created at start when missing."
    )
    topic_replication: int = setting(
        0,
        "STREAMS_TOPIC_REPLICATION",
        "Replication factor of topics created at start (0: the cluster's size, up to 3).",
    )
    customer_deleted_topic: str = setting(
        "voucherify.customer.deleted",
        "STREAMS_CUSTOMER_DELETED_TOPIC",
        "Input topic of customer.deleted events.",
    )
    dead_letter_topic: str = setting(
        "voucherify.webhooks.dead-letter",
        "STREAMS_DEAD_LETTER_TOPIC",
        "Topic of requests the bridge could not accept.",
    )
    raw_topic: str = setting(
        "",
        "STREAMS_RAW_TOPIC",
        "If set, other webhook event types are published here as received (JSON).",
    )
    loyalty_topic: str = setting(
        "analytics.loyalty-points-lost",
        "STREAMS_LOYALTY_TOPIC",
        "Compacted output: latest loyalty-points-lost totals per key.",
    )
    referral_topic: str = setting(
        "analytics.referral-impact",
        "STREAMS_REFERRAL_TOPIC",
        "Compacted output: latest referral-impact totals per key.",
    )
    deletions_topic: str = setting(
        "analytics.customer-deletions",
        "STREAMS_DELETIONS_TOPIC",
        "Output: one CustomerDeletion fact per counted customer.",
    )
    schema_registry_url: str = setting(
        "",
        "SCHEMA_REGISTRY_URL",
        "If set, encode with the Confluent wire format via this Schema Registry.",
    )
    # --- Schema Registry auth (streams.models.serializers.registry: client_config) ---
    schema_registry_username: str = setting(
        "", "SCHEMA_REGISTRY_USERNAME", "Schema Registry user name (HTTP basic auth)."
    )
    schema_registry_username_file: str = setting(
        "",
        "SCHEMA_REGISTRY_USERNAME_FILE",
        "File holding the Schema Registry user name (instead of the above).",
    )
    schema_registry_password: str = setting(
        "", "SCHEMA_REGISTRY_PASSWORD", "Schema Registry password (HTTP basic auth).", secret=True
    )
    schema_registry_password_file: str = setting(
        "",
        "SCHEMA_REGISTRY_PASSWORD_FILE",
        "File holding the Schema Registry password (instead of the above).",
    )
    schema_registry_token: str = setting(
        "",
        "SCHEMA_REGISTRY_TOKEN",
        "Bearer token for the Schema Registry (instead of a user name and password).",
        secret=True,
    )
    schema_registry_token_file: str = setting(
        "",
        "SCHEMA_REGISTRY_TOKEN_FILE",
        "File holding the Schema Registry bearer token (instead of the above).",
    )
    schema_registry_ca_file: str = setting(
        "",
        "SCHEMA_REGISTRY_CA_FILE",
        "PEM file of the CA certificates that sign the registry's HTTPS certificate (empty: "
        "certifi's bundle, or SSL_CERT_FILE when set).",
    )
    log_level: str = setting("info", "STREAMS_LOG_LEVEL", "Log level: debug, info, warning, error.")
    log_format: str = setting(
        "text",
        "STREAMS_LOG_FORMAT",
        "Log lines as text, or json: one JSON object per line (time, level, logger, message and "
        "the line's context fields).",
    )
    # --- Kafka security (every client: streams.kafka.security builds their configuration) ---
    kafka_security_protocol: str = setting(
        "PLAINTEXT",
        "KAFKA_SECURITY_PROTOCOL",
        "How clients talk to Kafka: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
    )
    kafka_sasl_mechanism: str = setting(
        "",
        "KAFKA_SASL_MECHANISM",
        "SASL mechanism with SASL_*: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.",
    )
    kafka_sasl_username: str = setting("", "KAFKA_SASL_USERNAME", "SASL user name.")
    kafka_sasl_username_file: str = setting(
        "", "KAFKA_SASL_USERNAME_FILE", "File holding the SASL user name (instead of the above)."
    )
    kafka_sasl_password: str = setting("", "KAFKA_SASL_PASSWORD", "SASL password.", secret=True)
    kafka_sasl_password_file: str = setting(
        "", "KAFKA_SASL_PASSWORD_FILE", "File holding the SASL password (instead of the above)."
    )
    kafka_ssl_ca_file: str = setting(
        "",
        "KAFKA_SSL_CA_FILE",
        "PEM file of the CA certificates that sign the brokers' (empty: the system's CAs).",
    )
    kafka_ssl_cert_file: str = setting(
        "", "KAFKA_SSL_CERT_FILE", "PEM client certificate, for mutual TLS (with the key below)."
    )
    kafka_ssl_key_file: str = setting(
        "", "KAFKA_SSL_KEY_FILE", "PEM private key of the client certificate."
    )
    kafka_ssl_key_password: str = setting(
        "",
        "KAFKA_SSL_KEY_PASSWORD",
        "Password of an encrypted client key.",
        secret=True,
    )
    kafka_ssl_key_password_file: str = setting(
        "",
        "KAFKA_SSL_KEY_PASSWORD_FILE",
        "File holding the password of an encrypted client key (instead of the above).",
    )
    kafka_ssl_verify_hostname: bool = setting(
        True,
        "KAFKA_SSL_VERIFY_HOSTNAME",
        "Check that a broker's certificate names the host connected to (false: only that a "
        "trusted CA signed it).",
    )
    # --- Local Kafka (`voucherify-streams kafka`) ---
    kafka_port: int = setting(
        9092,
        "STREAMS_KAFKA_PORT",
        "Port of the local broker started by `kafka start` (node 1 of a cluster).",
        groups=("kafka",),
    )
    kafka_controller_port: int = setting(
        0,
        "STREAMS_KAFKA_CONTROLLER_PORT",
        "KRaft controller port of the local broker (0: broker port + 1; one broker only).",
        groups=("kafka",),
    )
    kafka_home: str = setting(
        _CACHE / "kafka",
        "STREAMS_KAFKA_HOME",
        "Where the local broker keeps its jars, data, pid and log.",
        groups=("kafka",),
    )
    kafka_heap: str = setting(
        "1g",
        "STREAMS_KAFKA_HEAP",
        "Java heap of the local broker (of each node).",
        groups=("kafka",),
    )
    secure: bool = setting(
        False,
        "STREAMS_KAFKA_SECURE",
        "Start the local Kafka secured: SASL_SSL (SCRAM, PLAIN) with certificates of a local CA, "
        "an mTLS listener, ACLs enforced; `kafka start` prints the client settings.",
        groups=("kafka",),
    )
    # --- Kafka cluster: its size, replication on it, broker-outage logs ---
    brokers: int = setting(
        1,
        "STREAMS_KAFKA_BROKERS",
        "Nodes of the local Kafka started by `kafka start` (1-5; node i on ports "
        "STREAMS_KAFKA_PORT + 2(i-1) and + 2(i-1) + 1).",
        groups=("kafka",),
    )
    topic_min_insync: int = setting(
        0,
        "STREAMS_TOPIC_MIN_INSYNC_REPLICAS",
        "min.insync.replicas of topics created at start (0: 2 when replicated 3+ times, else the "
        "broker's default).",
    )
    log_summary_s: float = setting(
        10.0,
        "STREAMS_LOG_SUMMARY_S",
        "Repeated Kafka client errors (a broker down) are logged once per node per this many "
        "seconds, then as one line with a count; 0: every line.",
        groups=("bridge", "worker", "replay"),
    )
    # --- Schema Registry ---
    registry_port: int = setting(
        8081,
        "STREAMS_REGISTRY_PORT",
        "Port of the local Schema Registry started by `registry start`.",
        groups=("registry",),
    )
    registry_management_port: int = setting(
        0,
        "STREAMS_REGISTRY_MANAGEMENT_PORT",
        "Health/metrics port of the local Schema Registry (0: registry port + 1).",
        groups=("registry",),
    )
    registry_home: str = setting(
        _CACHE / "registry",
        "STREAMS_REGISTRY_HOME",
        "Where the local Schema Registry keeps its app, data, pid and log.",
        groups=("registry",),
    )
    registry_java_home: str = setting(
        "",
        "STREAMS_REGISTRY_JAVA_HOME",
        "JDK (21+) for the local Schema Registry (empty: the newest under /usr/lib/jvm).",
        groups=("registry",),
    )
    # --- Bridge ---
    bridge_host: str = setting(
        "0.0.0.0", "BRIDGE_HOST", "Bridge listen address.", groups=("bridge",)
    )
    bridge_port: int = setting(8080, "BRIDGE_PORT", "Bridge listen port.", groups=("bridge",))
    workers: int = setting(
        1,
        "BRIDGE_WORKERS",
        "Bridge processes sharing the port (SO_REUSEPORT), one producer each, supervised.",
        groups=("bridge",),
    )
    webhook_secret: tuple[str, ...] = setting(
        (),
        "VOUCHERIFY_WEBHOOK_SECRET",
        "Webhook secret(s), comma-separated for rotation.",
        groups=("bridge", "demo"),
        secret=True,
    )
    webhook_secret_file: str = setting(
        "",
        "VOUCHERIFY_WEBHOOK_SECRET_FILE",
        "File with one webhook secret per line (added to the above).",
        groups=("bridge",),
    )
    insecure_no_signature: bool = setting(
        False,
        "BRIDGE_INSECURE_NO_SIGNATURE",
        "DEVELOPMENT ONLY: accept unsigned webhooks when no secret is set.",
        groups=("bridge",),
    )
    max_body_bytes: int = setting(
        1024 * 1024,
        "BRIDGE_MAX_BODY_BYTES",
        "Largest accepted request body (bytes) before 413.",
        groups=("bridge",),
    )
    linger_ms: float = setting(
        0.0,
        "BRIDGE_LINGER_MS",
        "librdkafka linger of the bridge (ms): 0 sends at once (measured fastest at 1-64 clients).",
        groups=("bridge",),
    )
    http_server: str = setting(
        "httptools",
        "BRIDGE_HTTP",
        "HTTP server of the bridge: httptools (its own HTTP/1.1 server, the fastest) or aiohttp.",
        groups=("bridge",),
    )
    keepalive_s: float = setting(
        75.0,
        "BRIDGE_KEEPALIVE_S",
        "Idle keep-alive connections are closed after this long (s): keep it above the idle "
        "timeout of a load balancer in front.",
        groups=("bridge",),
    )
    head_timeout_s: float = setting(
        10.0,
        "BRIDGE_HEAD_TIMEOUT_S",
        "A request's line and headers must be in within this long (s) of its first byte (a new "
        "connection's first request: of the connection), else 408 and the connection closed "
        "(the bridge's own HTTP/1.1 server).",
        groups=("bridge",),
    )
    max_connections: int = setting(
        1024,
        "BRIDGE_MAX_CONNECTIONS",
        "Open connections per bridge process; one more is answered 503 with Retry-After and "
        "closed (the bridge's own HTTP/1.1 server).",
        groups=("bridge",),
    )
    event_loop: str = setting(
        "auto",
        "BRIDGE_EVENT_LOOP",
        "Event loop of the bridge: uvloop, asyncio, or auto (uvloop where it is installed).",
        groups=("bridge",),
    )
    request_deadline_s: float = setting(
        5.0,
        "BRIDGE_REQUEST_DEADLINE_S",
        "End-to-end deadline of one webhook, incl. the broker ack (s).",
        groups=("bridge",),
    )
    retry_after_s: int = setting(
        30, "BRIDGE_RETRY_AFTER_S", "Retry-After sent with 503 (s).", groups=("bridge",)
    )
    pii_policy: str = setting(
        "redact",
        "PII_POLICY",
        "Personal data before publishing: redact, hash or keep.",
        groups=("bridge", "replay"),
    )
    pii_hash_key: str = setting(
        "",
        "PII_HASH_KEY",
        "HMAC key for PII_POLICY=hash.",
        groups=("bridge", "replay"),
        secret=True,
    )
    # --- Worker ---
    web_port: int = setting(6066, "STREAMS_WEB_PORT", "Faust worker web port.", groups=("worker",))
    web_host: str = setting(
        "0.0.0.0", "STREAMS_WEB_HOST", "Faust worker web bind address.", groups=("worker",)
    )
    http_basic_auth_file: str = setting(
        "",
        "STREAMS_HTTP_BASIC_AUTH_FILE",
        "File of user:password lines: HTTP basic auth required on the worker's views, dashboard "
        "and /metrics and the bridge's /metrics (not /healthz, /readyz); empty: off.",
        groups=("bridge", "worker"),
    )
    http_token_file: str = setting(
        "",
        "STREAMS_HTTP_TOKEN_FILE",
        "File of bearer tokens, one a line, accepted where STREAMS_HTTP_BASIC_AUTH_FILE is "
        "(either or both may be set); empty: off.",
        groups=("bridge", "worker"),
    )
    store: str = setting(
        "rocksdb://", "STREAMS_STORE", "Table store: rocksdb:// or memory://.", groups=("worker",)
    )
    processing_guarantee: str = setting(
        "exactly_once",
        "STREAMS_PROCESSING_GUARANTEE",
        "exactly_once or at_least_once.",
        groups=("worker",),
    )
    data_dir: str = setting(
        "./.streams-data",
        "STREAMS_DATA_DIR",
        "Faust data directory (RocksDB tables).",
        groups=("worker",),
    )
    day_retention_days: int = setting(
        400,
        "STREAMS_DAY_RETENTION_DAYS",
        "How long the per-day window is kept (days).",
        groups=("worker",),
    )
    standby_replicas: int = setting(
        0,
        "STREAMS_STANDBY_REPLICAS",
        "Faust table standby replicas (0: see README, standbys lose updates upstream).",
        groups=("worker",),
    )
    fast_restore: bool = setting(
        True,
        "STREAMS_FAST_RESTORE",
        "Restore table partitions from their changelogs in bulk (librdkafka, write batches)"
        " before Faust's own recovery; false: Faust's path only.",
        groups=("worker",),
    )
    stall_timeout_s: float = setting(
        300.0,
        "STREAMS_STALL_TIMEOUT_S",
        "Exit (to be restarted) after consuming nothing this long while records wait; 0: off.",
        groups=("worker",),
    )
    partition_stall_s: float = setting(
        30.0,
        "STREAMS_PARTITION_STALL_S",
        "An assigned partition with records waiting and no progress this long is stalled: "
        "recovered, then the worker exits (to be restarted); 0: off.",
        groups=("worker",),
    )
    session_timeout_s: float = setting(
        10.0,
        "STREAMS_SESSION_TIMEOUT_S",
        "Consumer-group session timeout (s): how long a dead worker holds its partitions.",
        groups=("worker",),
    )
    worker_id: str = setting(
        "",
        "STREAMS_WORKER_ID",
        "Stable id of this worker (static group membership): a restarted worker takes its "
        "partitions back at once. Unique per worker; empty: dynamic membership.",
        groups=("worker",),
    )
    producer_linger_ms: float = setting(
        5.0,
        "STREAMS_PRODUCER_LINGER_MS",
        "Linger of the worker's producer (ms): fewer, larger produce requests.",
        groups=("worker",),
    )
    batch_size: int = setting(
        500,
        "STREAMS_BATCH_SIZE",
        "Records an agent takes at once (deltas and outputs are combined per key per batch).",
        groups=("worker",),
    )
    batch_wait_ms: float = setting(
        10.0,
        "STREAMS_BATCH_WAIT_MS",
        "Longest an agent waits to fill a batch (adds up to this to each stage's latency).",
        groups=("worker",),
    )
    # --- Dashboard, metrics and operator tools (`/dashboard`, `dead-letters`, `tail`) ---
    dashboard_refresh_ms: int = setting(
        1000,
        "STREAMS_DASHBOARD_REFRESH_MS",
        "How often the dashboard polls the worker (ms; at most 2000 keeps it within 2 s of the "
        "tables).",
        groups=("worker",),
    )
    dashboard_top: int = setting(
        10,
        "STREAMS_DASHBOARD_TOP",
        "Rows in the dashboard's top campaigns, tiers and referrers.",
        groups=("worker",),
    )
    redriven_topic: str = setting(
        "voucherify.webhooks.dead-letter.redriven",
        "STREAMS_REDRIVEN_TOPIC",
        "Compacted topic of the dead letters `dead-letters redrive` republished (so a second run "
        "skips them).",
        groups=("dead-letters",),
    )

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
        from streams.models.pii import PiiPolicy  # models import settings: not at the top

        try:
            PiiPolicy(self.pii_policy, self.pii_hash_key)  # the policy's own rules, named here
        except ValueError as exc:
            raise ValueError(f"PII_POLICY, PII_HASH_KEY: {exc}") from None
        if self.processing_guarantee not in {"exactly_once", "at_least_once"}:
            raise ValueError(
                "STREAMS_PROCESSING_GUARANTEE: expected exactly_once or at_least_once, "
                f"got {self.processing_guarantee!r}"
            )
        if not 1 <= self.workers <= 64:
            raise ValueError(f"BRIDGE_WORKERS: expected 1 to 64, got {self.workers}")
        if not 0 <= self.linger_ms <= 1000:
            raise ValueError(f"BRIDGE_LINGER_MS: expected 0 to 1000, got {self.linger_ms}")
        if self.keepalive_s <= 0:
            raise ValueError(f"BRIDGE_KEEPALIVE_S: expected > 0, got {self.keepalive_s}")
        if self.head_timeout_s <= 0:
            raise ValueError(f"BRIDGE_HEAD_TIMEOUT_S: expected > 0, got {self.head_timeout_s}")
        if self.max_connections < 1:
            raise ValueError(
                f"BRIDGE_MAX_CONNECTIONS: expected at least 1, got {self.max_connections}"
            )
        if self.http_server not in {"httptools", "aiohttp"}:
            raise ValueError(
                f"BRIDGE_HTTP: expected httptools or aiohttp, got {self.http_server!r}"
            )
        if self.event_loop not in {"auto", "uvloop", "asyncio"}:
            raise ValueError(
                f"BRIDGE_EVENT_LOOP: expected auto, uvloop or asyncio, got {self.event_loop!r}"
            )
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
        if self.http_basic_auth_file or self.http_token_file:
            from streams.http_auth import check_settings as check_http_auth

            check_http_auth(self)  # the files readable, every line well-formed
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
        if self.log_format not in {"text", "json"}:
            raise ValueError(f"STREAMS_LOG_FORMAT: expected text or json, got {self.log_format!r}")
        if self.log_summary_s < 0:
            raise ValueError(f"STREAMS_LOG_SUMMARY_S: expected >= 0, got {self.log_summary_s}")
        if self.store not in {"rocksdb://", "memory://"}:
            raise ValueError(f"STREAMS_STORE: expected rocksdb:// or memory://, got {self.store!r}")
        from streams.kafka.security import check_settings  # it imports this module

        check_settings(self)
        from streams.models.serializers.registry import check_settings as check_registry

        check_registry(self)
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


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(
        attr=f.name,
        env=f.metadata["env"],
        default=f.default,
        help=f.metadata["help"],
        parse=_PARSERS[str(f.type)],
        groups=f.metadata["groups"],
        secret=f.metadata["secret"],
    )
    for f in fields(Settings)
)


def add_arguments(parser: argparse.ArgumentParser, groups: Iterable[str]) -> None:
    """Add a flag for every setting in `groups` (plus the shared ones)."""
    wanted = set(groups) | {"all"}
    for s in SETTINGS:
        if not wanted.intersection(s.groups):
            continue
        if s.negatable:
            parser.add_argument(
                s.flag,
                dest=s.attr,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"{s.help} [env {s.env}]",
            )
        elif s.parse is _bool:
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
        shown = ",".join(s.default) if isinstance(s.default, tuple) else str(s.default)
        for local, portable in _SHOWN.items():
            shown = shown.replace(local, portable)
        shown = f"`{shown}`" if shown != "" else "(empty)"
        used = ", ".join(s.groups).replace("all", "every command")
        rows.append(f"| `{s.env}` | `{s.shown_flag}` | {shown} | {used} | {s.help} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
