"""An asyncio-friendly confluent-kafka producer that never blocks the event loop.

One `confluent_kafka.Producer` is shared by every request. `produce()` only enqueues into
librdkafka's local queue (non-blocking) and returns an asyncio future. Delivery reports are
served two ways:
- few records in flight (below `LOOP_POLL_FROM`: a lone sender): a dedicated poll thread
  blocks in `poll()`, which returns as soon as the ack arrives, and hands the report to the
  loop (`call_soon_threadsafe`): the request does not wait for any tick;
- more in flight (concurrent senders): the event loop itself serves them (a non-blocking
  `poll(0)` every millisecond) and resolves the futures directly: no thread hand-off and no
  contention for the GIL per report, and one tick serves many acks.
The poll thread also serves error callbacks and the outage probe below; what it collects
reaches the loop in batches, one wake-up per poll rather than per message.

Broker health: librdkafka's `_ALL_BROKERS_DOWN` error puts the producer into a "down" state in
which `produce()` fails fast with `ProducerUnavailable` (so callers answer 503 at once instead of
waiting out the delivery timeout); while down, the poll thread probes the cluster with a metadata
request about once a second and leaves the state as soon as a broker answers, or as soon as any
delivery succeeds. A fatal librdkafka error (idempotence violated) makes the producer unusable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from _thread import get_ident
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from streams.kafka.preflight import access_problem
from streams.kafka.security import ClientConfig, librdkafka_config

log = logging.getLogger(__name__)

Headers = list[tuple[str, str | bytes | None]]

#: librdkafka settings every AsyncProducer starts from (callers may override any of them).
DEFAULT_CONFIG: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    # Java's (and aiokafka's, so Faust's) partitioner: a customer id lands in the same partition
    # whoever produces it, which the worker's co-partitioned dedup table relies on.
    "partitioner": "murmur2_random",
    # Batch concurrent requests together without adding noticeable latency.
    "linger.ms": 2,
    "compression.type": "lz4",
    # Reconnect quickly once a broker is back (librdkafka's default max backoff is 10 s).
    "reconnect.backoff.ms": 100,
    "reconnect.backoff.max.ms": 1000,
    "socket.keepalive.enable": True,
    "log.connection.close": False,
}


#: How often the event loop serves delivery reports while records are in flight (s).
LOOP_POLL_INTERVAL_S = 0.001
#: From this many records in librdkafka's queue the loop serves the reports (see above).
LOOP_POLL_FROM = 2


class ProducerError(Exception):
    """Base of the errors a caller may turn into 503 / retry later."""


class ProducerUnavailable(ProducerError):
    """The producer cannot take records now: no broker reachable, closed, or fatally failed."""


class QueueFull(ProducerError):
    """librdkafka's local queue is full."""


class DeliveryFailed(ProducerError):
    """The broker did not acknowledge the record."""

    def __init__(self, error: KafkaError) -> None:
        super().__init__(f"delivery failed: {error.name()}: {error.str()}")
        self.error = error


class AsyncProducer:
    """Shared producer for one event loop. Create, `await start()`, `produce()`, `await close()`."""

    def __init__(
        self,
        config: ClientConfig,
        *,
        probe_interval_s: float = 1.0,
        poll_timeout_s: float = 0.05,
    ) -> None:
        """`config`: built by `librdkafka_config` (connection and security, and the caller's
        own settings), over `DEFAULT_CONFIG`."""
        self._config = librdkafka_config(config, defaults=DEFAULT_CONFIG)
        self._probe_interval_s = probe_interval_s
        self._poll_timeout_s = poll_timeout_s
        self._producer: Producer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0  # ident of the loop's thread: reports served there resolve at once
        # The loop's pending poll while records are in flight (None: the poll thread serves).
        self._loop_poll: asyncio.TimerHandle | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        # Set when the loop stops serving reports: the poll thread takes over at once.
        self._thread_turn = threading.Event()
        self._flush_timeout_s = 10.0
        # Delivery reports collected by the poll thread, handed to the loop in batches.
        self._reports: list[tuple[asyncio.Future[Message], KafkaError | None, Message]] = []
        self._down = False
        self._down_since = 0.0
        self._fatal: KafkaError | None = None
        self._closed = False
        self.last_error: str = ""
        #: Why Kafka refuses this producer (credentials, TLS), while it does; else "".
        self.refused: str = ""
        self.unflushed_at_close = 0

    # --- lifecycle ---
    async def start(self, connect_timeout_s: float = 10.0) -> None:
        """Create the client, check a broker answers, start the poll thread."""
        if self._producer is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = get_ident()
        config = librdkafka_config(self._config, defaults={"error_cb": self._on_error})
        self._producer = Producer(config)
        producer = self._producer
        # Fail start-up loudly when nothing answers (in a thread: list_topics blocks).
        await self._loop.run_in_executor(
            None, partial(producer.list_topics, timeout=connect_timeout_s)
        )
        self._thread = threading.Thread(target=self._run, name="kafka-producer-poll", daemon=True)
        self._thread.start()

    async def close(self, flush_timeout_s: float = 10.0) -> int:
        """Stop taking records, flush what is queued (delivering their reports); returns the
        number of records still undelivered when the flush timed out."""
        if self._closed:
            return self.unflushed_at_close
        self._closed = True
        self._flush_timeout_s = flush_timeout_s
        if self._loop_poll is not None:
            self._loop_poll.cancel()
            self._loop_poll = None
        self._stopping.set()
        self._thread_turn.set()
        thread = self._thread
        if thread is not None and self._loop is not None:
            await self._loop.run_in_executor(None, thread.join)
            # Resolve what the poll thread handed over but the loop did not run yet.
            await asyncio.sleep(0)
        elif self._producer is not None:
            self.unflushed_at_close = self._producer.flush(flush_timeout_s)
        return self.unflushed_at_close

    # --- producing ---
    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | str | None = None,
        headers: Headers | None = None,
    ) -> asyncio.Future[Message]:
        """Enqueue one record; the future resolves to the acknowledged Message, or raises
        DeliveryFailed. Raises ProducerUnavailable / QueueFull at once when it cannot enqueue.
        Must be called on the loop the producer was started on."""
        producer = self._producer
        if producer is None or self._closed:
            raise ProducerUnavailable("producer is not running")
        if self._fatal is not None:
            raise ProducerUnavailable(f"producer failed fatally: {self._fatal.str()}")
        if self._down:
            raise ProducerUnavailable(self.refused or "no Kafka broker reachable")
        loop = self._loop
        assert loop is not None
        fut: asyncio.Future[Message] = loop.create_future()
        try:
            producer.produce(
                topic, value, key, headers=headers, on_delivery=partial(self._on_delivery, fut)
            )
        except BufferError:
            raise QueueFull("local producer queue is full") from None
        except KafkaException as exc:
            raise ProducerUnavailable(str(exc)) from None
        if self._loop_poll is None and len(producer) >= LOOP_POLL_FROM:
            self._loop_poll = loop.call_later(LOOP_POLL_INTERVAL_S, self._poll_on_loop)
        return fut

    def _poll_on_loop(self) -> None:
        # Runs on the event loop: serves what librdkafka has (never waits), and again shortly
        # while anything is unacknowledged; then leaves the reports to the poll thread.
        self._loop_poll = None
        producer = self._producer
        if producer is None or self._closed:
            self._thread_turn.set()
            return
        producer.poll(0)
        if len(producer) >= LOOP_POLL_FROM:
            assert self._loop is not None
            self._loop_poll = self._loop.call_later(LOOP_POLL_INTERVAL_S, self._poll_on_loop)
        else:
            self._thread_turn.set()  # what is left (if anything) is the thread's

    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | str | None = None,
        headers: Headers | None = None,
    ) -> Message:
        """produce() and wait for the broker's acknowledgement."""
        return await self.produce(topic, value, key, headers)

    # --- health ---
    @property
    def running(self) -> bool:
        return self._producer is not None and not self._closed

    @property
    def healthy(self) -> bool:
        """Started, not closed, not fatally failed and a broker reachable."""
        return self.running and self._fatal is None and not self._down

    @property
    def failed(self) -> bool:
        """Fatally failed (or its poll thread died): only a restart helps."""
        return self._fatal is not None

    def queued(self) -> int:
        """Records waiting in librdkafka's queue (not yet acknowledged)."""
        return len(self._producer) if self._producer is not None else 0

    # --- poll thread ---
    def _run(self) -> None:
        producer = self._producer
        assert producer is not None
        last_probe = 0.0
        try:
            while not self._stopping.is_set():
                if self._loop_poll is None:
                    # Returns as soon as a report is there: a lone request's ack at once.
                    producer.poll(self._poll_timeout_s)
                else:  # the loop serves the reports: stay out of its way (and off the GIL)
                    self._thread_turn.wait(self._poll_timeout_s)
                    self._thread_turn.clear()
                self._dispatch()
                if self._down and time.monotonic() - last_probe >= self._probe_interval_s:
                    last_probe = time.monotonic()
                    self._probe(producer)
        except Exception:  # pragma: no cover - a bug here must not hang every request
            log.exception("kafka producer poll thread crashed")
            self._fatal = KafkaError(KafkaError._FAIL, "poll thread crashed")
        finally:
            try:
                self.unflushed_at_close = producer.flush(self._flush_timeout_s)
            finally:
                self._dispatch()
            if self.unflushed_at_close:
                log.error(
                    "kafka producer closed with %d undelivered records", self.unflushed_at_close
                )

    def _probe(self, producer: Producer) -> None:
        try:
            meta = producer.list_topics(timeout=min(1.0, self._probe_interval_s))
        except KafkaException:
            return
        if meta.brokers:
            self._set_up("a broker answered a metadata request")

    def _on_delivery(
        self, fut: asyncio.Future[Message], err: KafkaError | None, msg: Message
    ) -> None:
        # Runs inside poll/flush: on the loop (resolve now) or in the poll thread (hand over).
        if get_ident() != self._loop_thread:
            self._reports.append((fut, err, msg))
        elif err is None:
            if not fut.done():
                fut.set_result(msg)
            if self._down:
                self._set_up("a record was acknowledged")
        elif not fut.done():
            fut.set_exception(DeliveryFailed(err))

    def _dispatch(self) -> None:
        if not self._reports:
            return
        batch, self._reports = self._reports, []
        loop = self._loop
        assert loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(self._resolve, batch)

    def _resolve(
        self, batch: list[tuple[asyncio.Future[Message], KafkaError | None, Message]]
    ) -> None:
        # Runs on the event loop.
        ok = False
        for fut, err, msg in batch:
            if err is None:
                ok = True
                if not fut.done():
                    fut.set_result(msg)
            elif not fut.done():
                fut.set_exception(DeliveryFailed(err))
        if ok and self._down:
            self._set_up("a record was acknowledged")

    def _on_error(self, err: KafkaError) -> None:
        # Runs in the poll thread (or librdkafka's, for some fatal errors).
        self.last_error = f"{err.name()}: {err.str()}"
        if err.fatal():
            self._fatal = err
            log.error("kafka producer fatal error: %s", self.last_error)
        elif (refused := access_problem(err, self._config)) is not None:
            # A wrong password or CA: librdkafka retries forever, nothing gets through. 503s,
            # said once (again only if the reason changes); a probe that passes ends it.
            if not self._down or refused != self.refused:
                log.error("%s; answering 503 until it is fixed", refused)
            self.refused = refused
            if not self._down:
                self._down = True
                self._down_since = time.monotonic()
        elif err.code() == KafkaError._ALL_BROKERS_DOWN:
            if not self._down:
                self._down = True
                self._down_since = time.monotonic()
                log.error(
                    "no Kafka broker reachable (%s): answering 503 until one is back",
                    self.last_error,
                )
        elif self._down or err.code() == KafkaError._TRANSPORT:
            # Reported again on every reconnect attempt: librdkafka's own log says it once.
            log.debug("kafka producer error: %s", self.last_error)
        else:
            log.warning("kafka producer error: %s", self.last_error)

    def _set_up(self, why: str) -> None:
        if self._down:
            self._down = False
            self.refused = ""
            log.warning(
                "Kafka reachable again after %.1fs (%s)", time.monotonic() - self._down_since, why
            )
