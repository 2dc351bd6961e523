"""The bridge's life cycle, whatever serves its HTTP: build the Bridge from the settings, start
(topics, schema registration, producer) and stop (drain, flush the producer).

Every HTTP layer (streams.bridge.server's, streams.bridge.asgi's ASGI app, streams.bridge.rsgi)
wraps one `BridgeService`, so they all start and stop the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial
from typing import Any

from streams.bridge.handlers import Bridge
from streams.bridge.shared_metrics import SharedMetrics
from streams.bridge.signature import SignatureVerifier
from streams.kafka import preflight
from streams.kafka.producer import AsyncProducer
from streams.kafka.security import ClientConfig, librdkafka_config
from streams.kafka.topics import ensure_project_topics
from streams.models.serializers.registry import (
    RegistryAuthError,
    RegistryUnavailable,
    SchemaRegistrationError,
)
from streams.settings import Settings

log = logging.getLogger("streams.bridge")

#: How long shutdown waits for the producer to deliver what is queued (s).
FLUSH_TIMEOUT_S = 10.0
#: Waits between attempts to register the schemas while the registry is down (s).
REGISTRATION_RETRY_S = (0.5, 1.0, 2.0, 5.0)
#: While Kafka refuses the bridge (credentials, TLS, ACLs): how often it asks again (s).
ACCESS_RECHECK_S = 10.0
#: Waits while the registry refuses the credentials (s): slower, so that a wrong password does
#: not lock an account out; each attempt reads the credentials files again.
AUTH_RETRY_S = (5.0, 10.0, 30.0, 60.0)
#: A refusal that stays the same is logged again after this long (s), else once.
AUTH_LOG_INTERVAL_S = 600.0


class ConfigError(ValueError):
    """The bridge cannot start with these settings."""


def schemas_of(bridge: Bridge) -> list[tuple[str, str]]:
    """(schema, topic) of every Avro record the bridge publishes."""
    return [
        ("CustomerDeleted", bridge.customer_deleted_topic),
        ("DeadLetter", bridge.dead_letter_topic),
    ]


async def register_schemas(bridge: Bridge) -> None:
    """Register (or verify) the bridge's schemas under `<topic>-value`, off the event loop.

    Raises IncompatibleSchema / SchemaRegistrationError (the registry refused: the bridge must
    not start), RegistryUnavailable (try again later) or RegistryAuthError (the credentials or
    the certificate: try again slowly, an operator must act)."""
    loop = asyncio.get_running_loop()
    for name, topic in schemas_of(bridge):
        await loop.run_in_executor(None, bridge.codec.register, name, topic)
    bridge.schemas_ready = True
    bridge.schema_problem = ""


async def start_registration(bridge: Bridge) -> None:
    """At start: register, or, with the registry down or refusing the credentials, serve 503s
    and keep trying."""
    auth = False
    try:
        await register_schemas(bridge)
        return
    except RegistryUnavailable as exc:
        bridge.schemas_ready = False
        bridge.schema_problem = str(exc)
        log.warning(
            "%s; answering 503 to customer.deleted webhooks until the schemas are registered", exc
        )
    except RegistryAuthError as exc:
        auth = True
        bridge.schemas_ready = False
        bridge.schema_problem = str(exc)
        log.error("%s; answering 503 to customer.deleted webhooks meanwhile", exc)
    bridge.registration = asyncio.create_task(_keep_registering(bridge, auth))


async def _keep_registering(bridge: Bridge, auth: bool = False) -> None:
    attempt = 0
    logged, logged_at = bridge.schema_problem, time.monotonic()
    while True:
        waits = AUTH_RETRY_S if auth else REGISTRATION_RETRY_S
        await asyncio.sleep(waits[min(attempt, len(waits) - 1)])
        attempt += 1
        try:
            await register_schemas(bridge)
        except RegistryUnavailable as exc:
            auth = False
            bridge.schema_problem = str(exc)
            continue
        except RegistryAuthError as exc:
            # One line per cause, repeated only every AUTH_LOG_INTERVAL_S, never per request.
            auth = True
            bridge.schema_problem = problem = str(exc)
            if problem != logged or time.monotonic() - logged_at >= AUTH_LOG_INTERVAL_S:
                log.error("%s; still answering 503 to customer.deleted webhooks", problem)
                logged, logged_at = problem, time.monotonic()
            continue
        except SchemaRegistrationError as exc:
            # Nothing to retry: an operator must act. Stay not ready, never publish.
            bridge.schema_problem = str(exc)
            log.error("%s; the bridge stays not ready", exc)
            return
        log.info("schemas registered with the schema registry; accepting webhooks again")
        return


def producer_config(settings: Settings) -> ClientConfig:
    """librdkafka settings of the bridge's producer (on top of AsyncProducer's defaults)."""
    deadline_ms = int(settings.request_deadline_s * 1000)
    return librdkafka_config(
        settings,
        {
            "client.id": f"{settings.app_id}-bridge",
            "linger.ms": settings.linger_ms,
            # A record not acked within the request's deadline fails instead of lingering in
            # the queue and being delivered after the sender was told 503.
            "message.timeout.ms": max(1000, deadline_ms),
            "request.timeout.ms": max(1000, min(30000, deadline_ms)),
        },
    )


def verifier_of(settings: Settings) -> SignatureVerifier | None:
    """The signature check of these settings; None only with the insecure flag."""
    try:
        secrets = settings.secrets()
    except OSError as exc:
        raise ConfigError(f"cannot read VOUCHERIFY_WEBHOOK_SECRET_FILE: {exc}") from None
    if secrets:
        return SignatureVerifier(secrets)
    if not settings.insecure_no_signature:
        raise ConfigError(
            "no webhook secret configured: set VOUCHERIFY_WEBHOOK_SECRET (comma-separated for "
            "rotation) or VOUCHERIFY_WEBHOOK_SECRET_FILE; for local development only, "
            "BRIDGE_INSECURE_NO_SIGNATURE=true accepts unsigned webhooks"
        )
    return None


class BridgeService:
    """One Bridge and the start/stop around it.

    Without `producer`, the service owns one: `start()` checks that Kafka lets the bridge in
    (streams.kafka.preflight), creates the missing topics and starts the producer (failing when
    no broker answers), `stop()` flushes and closes it. When Kafka refuses the bridge (a wrong
    password or CA, missing ACLs) it stays up, /readyz and webhooks answering 503 with the
    reason, and asks again every ACCESS_RECHECK_S. A given
    producer is used as is (the caller starts and closes it; topics are its business too).
    Raises ConfigError when no secret is configured and the insecure flag is not set.
    """

    def __init__(
        self,
        settings: Settings,
        producer: AsyncProducer | None = None,
        *,
        codec: Any = None,
        shared: SharedMetrics | None = None,
    ) -> None:
        verifier = verifier_of(settings)
        self.settings = settings
        self.owned = producer is None
        if producer is None:
            producer = AsyncProducer(producer_config(settings))
        self.producer = producer
        self.bridge = Bridge(settings, producer, codec=codec, verifier=verifier)
        self.access: asyncio.Task[None] | None = None  # asking Kafka again while it refuses
        if shared is not None:  # one of --workers N
            shared.resume(self.bridge.metrics)
            self.bridge.shared = shared

    async def start(self) -> None:
        bridge, settings = self.bridge, self.settings
        if bridge.insecure:
            log.warning(
                "!!! INSECURE: no webhook secret, signatures are NOT checked "
                "(BRIDGE_INSECURE_NO_SIGNATURE). Development only. !!!"
            )
        loop = asyncio.get_running_loop()
        if self.owned:
            try:
                await loop.run_in_executor(None, preflight.check, settings, "bridge")
            except preflight.KafkaAccessError as exc:
                # Up, answering 503 and saying why, until Kafka lets the bridge in.
                bridge.kafka_problem = str(exc)
                log.error("%s; answering 503 until that is fixed", exc)
                self.access = asyncio.create_task(self._wait_for_access())
            except preflight.KafkaUnreachable as exc:
                log.warning("%s; waiting for it", exc)
        if settings.schema_registry_url:
            await start_registration(bridge)
        if self.owned and not bridge.kafka_problem:
            await self._connect()
        if bridge.shared is not None:
            bridge.shared.start(bridge.metrics, bridge.gauges)

    async def _connect(self, fresh: bool = False) -> None:
        """Create the missing topics, then start the owned producer (`fresh`: a new one, its
        credentials read again: the files may have been fixed meanwhile)."""
        created = await asyncio.get_running_loop().run_in_executor(
            None, partial(ensure_project_topics, self.settings)
        )
        if created:
            log.info("created topics: %s", ", ".join(created))
        if fresh:
            self.producer = self.bridge.producer = AsyncProducer(producer_config(self.settings))
        try:
            await self.producer.start()
        except Exception:
            await self.producer.close(0)  # its librdkafka threads, before another try
            raise

    async def _wait_for_access(self) -> None:
        """Ask Kafka again every ACCESS_RECHECK_S until it lets the bridge in; then connect."""
        bridge, loop = self.bridge, asyncio.get_running_loop()
        while True:
            await asyncio.sleep(ACCESS_RECHECK_S)
            try:
                await loop.run_in_executor(None, preflight.check, self.settings, "bridge")
            except preflight.KafkaAccessError as exc:
                if str(exc) != bridge.kafka_problem:
                    bridge.kafka_problem = str(exc)
                    log.error("%s; answering 503 until that is fixed", exc)
                continue
            except preflight.KafkaUnreachable:
                continue
            try:
                await self._connect(fresh=True)
            except Exception as exc:  # the broker went away meanwhile: ask again later
                log.warning("connecting to Kafka failed: %s; trying again", exc)
                continue
            bridge.kafka_problem = ""
            log.info("Kafka lets the bridge in now: accepting webhooks")
            return

    def drain(self) -> None:
        """Shutting down: /readyz answers 503 from now on."""
        self.bridge.draining = True

    async def stop(self) -> None:
        """After the in-flight requests: stop registering, flush and close an owned producer."""
        self.drain()
        if self.bridge.registration is not None:
            self.bridge.registration.cancel()
        if self.access is not None:
            self.access.cancel()
        if self.owned:
            left = await self.producer.close(FLUSH_TIMEOUT_S)
            if left:
                log.error("%d records were not delivered before shutdown", left)
        if self.bridge.shared is not None:
            self.bridge.shared.stop(self.bridge.metrics, self.bridge.gauges())
