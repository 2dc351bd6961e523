"""The Faust worker: `faust -A streams.app worker -l info` or `voucherify-streams worker`.

Topology (all topic names prefixed by STREAMS_TOPIC_PREFIX):

    voucherify.customer.deleted (Avro CustomerDeleted, keyed by customer id)
      -> agent dedup [table seen-customers, partitioned like the input]
           -> <app_id>-loyalty-deltas  (entries for keys "<dimension>:<key>"; one message per
                |                       partition per batch, routed by the key's murmur2)
                -> agent loyalty  [table loyalty-points-lost]  -> analytics.loyalty-points-lost
           -> <app_id>-referral-deltas (likewise)
                -> agent referrals [table referral-impact]     -> analytics.referral-impact
           -> analytics.customer-deletions (CustomerDeletion facts, keyed by customer id)

Exactness does not rest on Faust's `exactly_once` (whose transactional producer is picked by the
*destination* partition, so re-keyed sends are not atomic with the source offsets and fail when
that partition is owned by another worker). Faust runs at-least-once; the dedup table remembers
the offset that counted each customer, so a duplicate delivery is never counted twice, and with
STREAMS_PROCESSING_GUARANTEE=exactly_once (default) every aggregate value also carries the offsets
it has applied per source, so redelivery and replay after a crash change nothing (see
streams.domain.state). With at_least_once the aggregates skip that bookkeeping: cheaper, but a
worker crash can count the deltas of its last uncommitted records again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import faust

from streams.agents import Topology, count_restarts_in, expiry, watchdog
from streams.agents import dedup as dedup_agent
from streams.agents import loyalty as loyalty_agent
from streams.agents import metrics as worker_metrics
from streams.agents import referrals as referral_agent
from streams.http_auth import HttpAuth
from streams.kafka.batch_producer import WorkerProducer
from streams.kafka.faust_consumer import Consumer as SnapshotConsumer
from streams.kafka.security import faust_broker_kwargs, librdkafka_config
from streams.kafka.topics import INTERNAL, replicate_faust_topics
from streams.models.serializers.avro import get_codec
from streams.settings import Settings
from streams.tables import faust_recovery
from streams.tables import loyalty as loyalty_table
from streams.tables import referrals as referral_table
from streams.tables import seen as seen_table
from streams.web import auth as web_auth
from streams.web import dashboard, views
from streams.worker import Worker

log = logging.getLogger(__name__)

_FAUST_LEVELS = {
    "debug": "debug",
    "info": "info",
    "warning": "warn",
    "warn": "warn",
    "error": "error",
    "critical": "crit",
    "crit": "crit",
}
_RAW: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
#: Exit code of a worker that refuses to start: its settings must change (Kafka or the registry
#: refuse them), so a restart alone would not help.
EXIT_REFUSED = 2


def canonical_url(settings: Settings) -> str:
    host = settings.web_host
    if host in {"0.0.0.0", "::", ""}:
        host = socket.gethostname()
    return f"http://{host}:{settings.web_port}"


def data_dir(settings: Settings) -> Path:
    """The app's own folder in the data dir: two app ids run from one directory never share
    table files."""
    return Path(settings.data_dir) / settings.app_id


def worker_settings(environ: dict[str, str] | None = None) -> Settings:
    """The settings of `faust -A streams.app worker`: the environment, and `faust --datadir D`,
    which Faust passes on only as F_DATADIR (set before it imports this module)."""
    env = dict(os.environ if environ is None else environ)
    settings = Settings.from_env(env)
    if env.get("F_DATADIR"):
        settings = settings.with_(data_dir=env["F_DATADIR"])
    return settings


def group_instance_id(settings: Settings) -> str | None:
    """Static group membership for a STREAMS_WORKER_ID. The id carries the worker's URL: the
    group hands a rejoining member its cached assignment, whose Faust metadata holds the URL,
    and faust-streaming's assignor stops (AssertionError, consumer dead) when it differs. A
    worker restarted at another address is therefore another member (dynamic fail-over)."""
    if not settings.worker_id:
        return None
    url = hashlib.sha1(canonical_url(settings).encode()).hexdigest()[:8]
    return f"{settings.app_id}-{settings.worker_id}-{url}"


def store_url(settings: Settings) -> str:
    # faust-streaming's rocksdb:// store uses rocksdict when python-rocksdb is absent.
    return settings.store


def build_app(settings: Settings) -> faust.App:
    metrics = worker_metrics.WorkerMetrics()
    # STREAMS_HTTP_*_FILE: every page but the probes asks for credentials (streams.web.auth).
    http_auth = HttpAuth.from_settings(settings)
    web_options: dict[str, Any] = {}
    if http_auth is not None:
        guard = web_auth.middleware(http_auth, metrics.http_auth_failures)
        web_options["web_application_options"] = {"middlewares": [guard]}
    app = faust.App(
        settings.app_id,
        **faust_broker_kwargs(settings),
        store=store_url(settings),
        datadir=str(data_dir(settings)),
        web_host=settings.web_host,
        web_port=settings.web_port,
        canonical_url=canonical_url(settings),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        processing_guarantee="at_least_once",  # see the module docstring
        table_standby_replicas=settings.standby_replicas,
        consumer_auto_offset_reset="earliest",
        producer_linger=settings.producer_linger_ms / 1000,
        producer_max_batch_size=256 * 1024,
        # Fail-over in seconds: a dead worker's partitions move after the session timeout (or
        # at once to the same STREAMS_WORKER_ID restarted: static membership).
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.session_timeout_s / 4),
        broker_rebalance_timeout=max(20.0, 2 * settings.session_timeout_s),
        consumer_group_instance_id=group_instance_id(settings),
        autodiscover=False,
        web_enabled=True,
        # Faust's own pages are not served: /table reads table contents, /router lists the
        # workers, statistics and graph show internals. The views serve what is to be read.
        web_tables_enabled=False,
        web_router_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        **web_options,
        Worker=Worker,  # logging set up the project's way at once (streams.worker)
    )
    # Fetches only for partitions active when asked: see streams.kafka.faust_consumer.
    app.transport.Consumer = SnapshotConsumer  # type: ignore[misc]
    parts, repl = settings.topic_partitions, settings.topic_replication
    internal: dict[str, Any] = {"partitions": parts, "replicas": repl, "internal": True, **_RAW}

    def topic(name: str, **kw: Any) -> faust.TopicT:
        return app.topic(settings.topic(name), **{**_RAW, "partitions": parts, **kw})

    topo = Topology(
        settings=settings,
        app=app,
        codec=get_codec(settings),
        input=topic(settings.customer_deleted_topic),
        input_rekeyed=app.topic(settings.topic(f"{settings.app_id}-input-rekeyed"), **internal),
        loyalty_deltas=app.topic(settings.topic(f"{settings.app_id}-loyalty-deltas"), **internal),
        referral_deltas=app.topic(settings.topic(f"{settings.app_id}-referral-deltas"), **internal),
        loyalty_out=topic(settings.loyalty_topic),
        referral_out=topic(settings.referral_topic),
        deletions_out=topic(settings.deletions_topic),
        seen=seen_table.create(app, settings),
        loyalty=loyalty_table.create(app, settings),
        referrals=referral_table.create(app, settings),
        agents={},
        producer=WorkerProducer(
            librdkafka_config(
                settings,
                {
                    "linger.ms": settings.producer_linger_ms,
                    "client.id": f"{settings.app_id}-worker",
                },
            )
        ),
        metrics=metrics,
        http_auth=http_auth,
    )
    if settings.fast_restore:  # tables restored in bulk ahead of Faust's own recovery
        faust_recovery.install(app, settings)
    topo.agents["dedup"] = dedup_agent.register(topo)
    topo.agents["loyalty"] = loyalty_agent.register(topo)
    topo.agents["referrals"] = referral_agent.register(topo)
    expiry.register(topo)
    watchdog.register(
        topo,
        [
            t.get_topic_name()
            for t in (topo.input, topo.input_rekeyed, topo.loyalty_deltas, topo.referral_deltas)
        ],
        lambda: ensure_external_topics(settings),
    )
    views.register(topo)
    dashboard.register(topo)
    worker_metrics.register(topo)
    count_restarts_in(data_dir(settings))
    topo.metrics.load_restarts(data_dir(settings))
    app.topology = topo  # type: ignore[attr-defined]

    @app.on_before_shutdown.connect
    async def _flush_producer(*args: Any, **kwargs: Any) -> None:
        await asyncio.get_running_loop().run_in_executor(None, topo.producer.flush)

    @app.on_worker_init.connect
    def _prepare(*args: Any, **kwargs: Any) -> None:
        # In this order, in one receiver (a signal's receivers run in no set order): does Kafka
        # let the worker in (before any client retries)? Then Faust's own topics replicated
        # like the project's, stale tables dropped, the topics and schemas in place.
        check_kafka_access(settings)
        replicate_faust_topics(app, settings)
        # Faust makes only the last level of its data dir (a nested STREAMS_DATA_DIR failed).
        data_dir(settings).mkdir(parents=True, exist_ok=True)
        if settings.store.startswith("rocksdb"):
            drop_stale_tables(app, settings)
        ensure_external_topics(settings)
        if settings.schema_registry_url:
            register_schemas(settings, topo.codec)

    return app


def check_kafka_access(settings: Settings) -> None:
    """Before anything connects: Kafka refusing the worker (a wrong password or CA, missing
    ACLs) is one line and exit code 2, not a retry loop; no broker answering yet is waited for
    (by the steps after this one)."""
    from streams import logs
    from streams.kafka import preflight

    if not logging.getLogger().handlers:  # Faust sets up its logging only later
        logs.configure(settings)
    try:
        preflight.check(settings, "worker")
    except preflight.KafkaAccessError as exc:
        log.critical("refusing to start: %s", exc)
        logging.shutdown()
        os._exit(EXIT_REFUSED)
    except preflight.KafkaUnreachable as exc:
        log.warning("%s; waiting for it", exc)


def changelogs(settings: Settings) -> dict[str, str]:
    """Table name -> its changelog topic (Faust's naming: no topic prefix)."""
    return {
        name: f"{settings.app_id}-{name}-changelog"
        for name in (seen_table.NAME, loyalty_table.NAME, referral_table.NAME)
    }


def drop_stale_tables(app: faust.App, settings: Settings) -> None:
    """Before Faust opens a store: drop local table partitions the changelogs no longer back."""
    from streams.tables.local_state import drop_stale

    for attempt in range(1, 4):
        try:
            drop_stale(
                settings,
                Path(app.conf.datadir),
                Path(app.conf.tabledir),
                changelogs(settings),
            )
            return
        except Exception as exc:  # e.g. a partition without a leader yet, on a fresh broker
            if attempt == 3:  # unreachable: Faust's start-up will report it
                log.error("could not check the local tables against the broker: %s", exc)
            else:
                time.sleep(attempt)


def ensure_external_topics(settings: Settings) -> list[str]:
    """Create the topics when missing, before Faust subscribes: outputs of totals compacted, and
    the tables' changelogs too (Faust creating those itself on a fresh cluster sometimes reads
    their metadata too early and crashes the agent with PartitionsMismatch)."""
    from streams.kafka.topics import ensure_project_topics

    return ensure_project_topics(
        settings,
        internal=[settings.topic(f"{settings.app_id}-{name}") for name in INTERNAL],
        changelogs=changelogs(settings).values(),
    )


def register_schemas(settings: Settings, codec: Any, wait_s: float = 60.0) -> None:
    """Before the agents start: register every schema the worker writes, and the input's,
    under `<topic>-value`, so no agent waits on the registry (or fails with it down) later.
    The registry down for `wait_s`: exit to be restarted; a schema refused, or the credentials
    or the registry's certificate (RegistryAuthError): exit 2 at once, with one line."""
    from streams.agents import exit_for_restart
    from streams.models.serializers.registry import (
        TOPIC_SETTING,
        RegistryAuthError,
        RegistryUnavailable,
        SchemaRegistrationError,
    )

    deadline = time.monotonic() + wait_s
    for schema_name, attr in TOPIC_SETTING.items():
        topic = settings.topic(getattr(settings, attr))
        while True:
            try:
                codec.register(schema_name, topic)
                break
            except (SchemaRegistrationError, RegistryAuthError) as exc:
                log.critical("refusing to start: %s", exc)
                logging.shutdown()
                os._exit(EXIT_REFUSED)
            except RegistryUnavailable as exc:
                if time.monotonic() > deadline:
                    exit_for_restart("%s", exc, reason="registry")
                log.warning("%s; retrying", exc)
                time.sleep(1.0)


def run(settings: Settings) -> int:
    """`voucherify-streams worker`: Faust's worker CLI in this process, for an app built from
    `settings` as resolved by our CLI (flags and env alike; no round trip through env vars)."""
    from faust.cli.faust import cli

    globals()["app"] = build_app(settings)
    level = _FAUST_LEVELS.get(settings.log_level.lower(), "info")
    # Faust's CLI also reads sys.argv itself (to find -A before parsing): it must see its own.
    # JSON lines only: --quiet leaves out Faust's banner (not a log line).
    quiet = ["--quiet"] if settings.log_format == "json" else []
    sys.argv[:] = ["faust", "-A", "streams.app", *quiet, "worker", "-l", level]  # bound early
    cli.main(args=sys.argv[1:], prog_name="faust")
    return 0  # not reached: click exits with the worker's exit code


def __getattr__(name: str) -> Any:
    """`faust -A streams.app worker` reads `app`: built on first use from the environment and
    `--datadir` (unless `run` built it), so importing this module builds nothing."""
    if name == "app":
        built = globals()["app"] = build_app(worker_settings())
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
