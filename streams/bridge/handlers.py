"""HTTP handlers of the bridge and the pure request classification they rely on.

`POST /webhooks/voucherify`, in order:
  1. Content-Length over the limit -> 413; content type not JSON -> 415 (nothing read yet).
  2. Body read (limit enforced while reading too) -> signature check -> 401 when missing/wrong
     (counted, logged rate-limited; nothing published).
  3. `classify(body)`: invalid UTF-8 / malformed JSON -> 400, not an envelope or a
     customer.deleted failing validation -> 422; both after a DeadLetter record was acked.
  4. customer.deleted -> PII policy -> Avro -> produce, keyed by customer id; 200 after the ack.
     The usual well-formed payload skips 3's datum: its JSON goes straight to the Avro record
     (streams.models.serializers.from_webhook); any other takes 3 and 4 step by step.
  5. Another event type -> 200 (published to the raw topic first when one is configured).
Anything that prevents the broker's acknowledgement -> 503 with Retry-After, never a 2xx.

The handlers know no HTTP framework: they take an `Incoming` request and answer a `Reply`;
streams.bridge.http11 (its own HTTP/1.1 server), streams.bridge.server (aiohttp), asgi and rsgi
adapt them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import traceback
from collections.abc import AsyncIterable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec

from streams.bridge.metrics import Metrics
from streams.bridge.shared_metrics import SharedMetrics
from streams.bridge.signature import SignatureVerifier
from streams.http_auth import UNAUTHORIZED_BODY, HttpAuth
from streams.kafka.producer import AsyncProducer, Headers, ProducerError
from streams.models.customer_deleted import EVENT_TYPE, parse_webhook
from streams.models.errors import ValidationError
from streams.records import CustomerDeletedRecords, Record
from streams.settings import Settings

log = logging.getLogger("streams.bridge")

SIGNATURE_HEADER = "x-voucherify-signature"
#: Request headers copied into a DeadLetter (an allow-list: custom headers may hold secrets).
DEAD_LETTER_HEADERS = ("content-type", "content-length", "user-agent", SIGNATURE_HEADER)
UNAUTHORIZED_LOG_INTERVAL_S = 10.0

_JSON = "application/json"
_METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


# --- the HTTP surface the handlers see --------------------------------------------------------


class BodyTooLarge(Exception):
    """Raised by `Incoming.read()` when the body exceeds the limit while it is read."""


class BodyIncomplete(Exception):
    """Raised by `Incoming.read()` when the body cannot be had whole: its framing is malformed
    or the client went away."""


async def read_capped(chunks: AsyncIterable[bytes], max_body: int) -> bytes:
    """A body from its chunks, refused (BodyTooLarge) as soon as it passes `max_body` bytes:
    a chunked upload has no Content-Length to refuse it by."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > max_body:
            raise BodyTooLarge()
        parts.append(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


class RequestHeaders(Protocol):
    """Request headers: `get` and `in` by lower-case name (aiohttp's, a dict, RSGI's)."""

    def get(self, key: str, /) -> str | None: ...

    def __contains__(self, key: object, /) -> bool: ...


class Incoming(Protocol):
    """One request as the handlers need it (aiohttp's BaseRequest has this shape)."""

    @property
    def content_length(self) -> int | None: ...

    @property
    def content_type(self) -> str:
        """Lower-cased, without parameters; application/octet-stream when absent."""
        ...

    @property
    def headers(self) -> RequestHeaders:
        """Looked up by lower-case name."""
        ...

    async def read(self) -> bytes:
        """The whole body; raises BodyTooLarge past the limit, BodyIncomplete when it cannot
        be had whole."""
        ...


class FromHeaders:
    """`Incoming.content_length` and `content_type` read from `headers`, for servers that give
    only the headers (ASGI, RSGI)."""

    __slots__ = ()
    headers: RequestHeaders

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("content-length")
        return int(value) if value is not None and value.isdigit() else None

    @property
    def content_type(self) -> str:
        value = self.headers.get("content-type")
        if not value:
            return "application/octet-stream"
        return value.partition(";")[0].strip().lower()


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer: status, body, its content type and any other headers."""

    status: int
    body: bytes
    content_type: str = _JSON
    headers: Mapping[str, str] | None = None


ACCEPTED = Reply(200, b'{"status":"accepted"}')
IGNORED = Reply(200, b'{"status":"ignored"}')
ALIVE = Reply(200, b'{"status":"alive"}')
READY = Reply(200, b'{"status":"ready"}')


# --- classification (pure, no I/O) ------------------------------------------------------------

# msgspec's untyped decode gives json.loads' result for every body it accepts (integers of any
# size exactly, the last of repeated keys) and refuses what it would give differently (NaN and
# Infinity literals, numbers out of float range, lone surrogates), which then takes json's path.
# Measured ~2x faster than orjson with the scan for long digit runs that orjson needed (it turns
# integers beyond 64 bits into floats); tests hold it to json.loads.
_fast_loads = msgspec.json.Decoder().decode


def loads(body: bytes) -> Any:
    """json.loads semantics, faster (see above)."""
    try:
        return _fast_loads(body)
    except msgspec.DecodeError:  # (its ValidationError too)
        pass
    return json.loads(body.decode("utf-8"))


@dataclass(frozen=True, slots=True)
class Rejected:
    """A signed request that cannot be accepted: answered `status`, dead-lettered."""

    status: int
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class CustomerDeleted:
    payload: dict[str, Any]
    datum: dict[str, Any]

    @property
    def customer_id(self) -> str:
        return str(self.datum["data"]["customer"]["id"])


@dataclass(frozen=True, slots=True)
class OtherEvent:
    event_type: str
    payload: dict[str, Any]


Classified = Rejected | CustomerDeleted | OtherEvent


def decode(body: bytes) -> Any:
    """The JSON value of a (signed) body, or the Rejected (400) saying why it is not JSON."""
    try:
        return loads(body)
    except UnicodeDecodeError as exc:
        return Rejected(400, "invalid_utf8", f"body is not valid UTF-8 (byte {exc.start})")
    except json.JSONDecodeError as exc:
        return Rejected(
            400,
            "malformed_json",
            f"malformed JSON: {exc.msg} (line {exc.lineno} column {exc.colno})",
        )
    except RecursionError:
        return Rejected(400, "malformed_json", "malformed JSON: nested too deeply")


def classify(body: bytes) -> Classified:
    """What a (signed) body is: a valid customer.deleted, another event, or why it is rejected."""
    payload = decode(body)
    return payload if type(payload) is Rejected else classify_payload(payload)


def classify_payload(payload: Any) -> Classified:
    """`classify` of a body's JSON value."""
    if not isinstance(payload, dict):
        return Rejected(422, "invalid_payload", "$: expected a JSON object (webhook envelope)")
    event_type = payload.get("type")
    if type(event_type) is not str or not event_type:
        rule = "required field is missing" if event_type is None else "expected non-empty string"
        return Rejected(422, "invalid_payload", f"type: {rule}")
    if event_type != EVENT_TYPE:
        return OtherEvent(event_type, payload)
    try:
        datum = parse_webhook(payload)
    except ValidationError as exc:
        return Rejected(422, exc.code, str(exc))
    return CustomerDeleted(payload, datum)


def is_json_content_type(content_type: str) -> bool:
    """application/json or application/*+json (already lower-cased, no parameters)."""
    return content_type == _JSON or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


def _clean(text: str) -> str:
    """Header text that encodes as UTF-8 (aiohttp keeps undecodable bytes as surrogates)."""
    return text if text.isascii() else text.encode("utf-8", "replace").decode("utf-8")


def _str_header(value: Any) -> str | None:
    return _clean(value) if type(value) is str and value else None


# --- handlers ---------------------------------------------------------------------------------


class _Deadlines:
    """The request deadline of every in-flight webhook on one timer.

    `asyncio.timeout` costs a timer handle per request (~5 µs with the heap of cancelled ones).
    Here every request has the same budget, so start order is deadline order: one dict keeps
    the in-flight tasks oldest first, and one timer, armed for the oldest, cancels whichever
    have run out when it fires, then re-arms for the oldest left. A task cancelled this way is
    remembered so its handler can tell the deadline from any other cancellation.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._running: dict[asyncio.Task[Any], float] = {}  # task -> deadline, oldest first
        self.expired: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, task: asyncio.Task[Any]) -> None:
        loop = task.get_loop()
        deadline = loop.time() + self.seconds
        self._running[task] = deadline
        if self._timer is None or loop is not self._loop:  # (a bridge served again, new loop)
            self._loop = loop
            self._timer = loop.call_at(deadline, self._expire, loop)

    def discard(self, task: asyncio.Task[Any]) -> None:
        if self._running.pop(task, None) is None:
            self.expired.discard(task)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = loop.time() + 0.001  # the timer may fire a clock tick early
        late = []
        for task, deadline in self._running.items():
            if deadline > now:
                self._timer = loop.call_at(deadline, self._expire, loop)
                break
            late.append(task)
        for task in late:
            del self._running[task]
            self.expired.add(task)
            task.cancel()


#: Where Voucherify POSTs its webhooks.
WEBHOOK_PATH = "/webhooks/voucherify"


class Bridge:
    """The request handlers, sharing one producer, codec, verifier and metrics."""

    def __init__(
        self,
        settings: Settings,
        producer: AsyncProducer,
        *,
        codec: Any = None,
        verifier: SignatureVerifier | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        if codec is None:
            from streams.models.serializers.avro import get_codec

            codec = get_codec(settings)
        self.settings = settings
        self.producer = producer
        self.codec = codec
        self.verifier = verifier
        self.insecure = verifier is None
        self.metrics = metrics or Metrics()
        self.records = CustomerDeletedRecords(settings, codec)
        self.max_body = settings.max_body_bytes
        self.deadline = settings.request_deadline_s
        self._deadlines = _Deadlines(self.deadline)
        self.retry_after = str(settings.retry_after_s)
        self.customer_deleted_topic = settings.topic(settings.customer_deleted_topic)
        self.dead_letter_topic = settings.topic(settings.dead_letter_topic)
        self.raw_topic = settings.topic(settings.raw_topic) if settings.raw_topic else ""
        self.dead_letter_fingerprint = codec.fingerprint("DeadLetter").hex()
        self.draining = False
        # False while the schemas are not registered with the Schema Registry (SCHEMA_REGISTRY_URL
        # set and the registry not reachable yet): Avro records get 503, never a guessed id.
        self.schemas_ready = True
        self.schema_problem = ""
        #: Why Kafka refuses the bridge (credentials, TLS, ACLs), while it does (else "").
        self.kafka_problem = ""
        self.registration: asyncio.Task[None] | None = None  # retrying while the registry is down
        # With --workers N: this worker's part of the summed metrics (streams.bridge.supervisor).
        self.shared: SharedMetrics | None = None
        self._unauthorized_logged_at = 0.0
        self._unauthorized_since_log = 0
        # STREAMS_HTTP_BASIC_AUTH_FILE / STREAMS_HTTP_TOKEN_FILE: /metrics asks for them.
        self.http_auth = HttpAuth.from_settings(settings)

    # -- POST /webhooks/voucherify --
    async def webhook(self, request: Incoming) -> Reply:
        metrics = self.metrics
        metrics.in_flight += 1
        start = time.monotonic()
        task = asyncio.current_task()
        assert task is not None
        deadlines = self._deadlines
        deadlines.add(task)
        try:
            outcome, response = await self._webhook(request)
        except asyncio.CancelledError:
            # Ours when the deadline cancelled the task and nobody else did (as asyncio.timeout).
            if task not in deadlines.expired or task.uncancel() > 0:
                raise
            outcome, response = "unavailable", self._unavailable("deadline exceeded")
        except TimeoutError:
            outcome, response = "unavailable", self._unavailable("deadline exceeded")
        except Exception as exc:
            # A bug, not the sender's fault: 500 makes Voucherify retry; nothing is lost.
            # The exception's message may quote request data: log its type and frames only.
            frames = "".join(traceback.format_tb(exc.__traceback__))
            log.error(
                "unexpected %s handling a webhook (message withheld)\n%s",
                type(exc).__name__,
                frames,
            )
            outcome, response = "error", INTERNAL_ERROR
        finally:
            metrics.in_flight -= 1
            deadlines.discard(task)
        metrics.requests[outcome] += 1
        metrics.request_latency.observe(time.monotonic() - start)
        return response

    async def _webhook(self, request: Incoming) -> tuple[str, Reply]:
        length = request.content_length
        if length is not None and length > self.max_body:
            return "too_large", error_reply(
                413, "too_large", f"body exceeds the limit of {self.max_body} bytes"
            )
        if not is_json_content_type(request.content_type):
            return "unsupported_media_type", error_reply(
                415, "unsupported_media_type", "Content-Type must be application/json"
            )
        try:
            body = await request.read()
        except BodyTooLarge:
            return "too_large", error_reply(
                413, "too_large", f"body exceeds the limit of {self.max_body} bytes"
            )
        except BodyIncomplete:
            return "bad_request", MALFORMED_REQUEST
        if len(body) > self.max_body:  # an app built with a larger client_max_size
            return "too_large", error_reply(
                413, "too_large", f"body exceeds the limit of {self.max_body} bytes"
            )

        if self.verifier is not None:
            matched = self.verifier.verify(body, request.headers.get(SIGNATURE_HEADER))
            if matched is None:
                self._log_unauthorized(request)
                return "unauthorized", error_reply(
                    401, "unauthorized", f"missing or invalid {SIGNATURE_HEADER}"
                )
            if matched == "stripped":
                self.metrics.signature_fallbacks += 1
        else:
            log.warning(
                "INSECURE: webhook accepted without a signature check "
                "(BRIDGE_INSECURE_NO_SIGNATURE); never run like this in production"
            )

        payload = decode(body)
        if type(payload) is dict and payload.get("type") == EVENT_TYPE and self.schemas_ready:
            # The usual payload goes straight to its record; any other takes classify's path,
            # which words what is wrong.
            record = self.records.from_payload(payload)
            if record is not None:
                self.metrics.count_event_type(EVENT_TYPE)
                return await self._publish_customer_deleted(record)
        found = payload if type(payload) is Rejected else classify_payload(payload)
        if type(found) is CustomerDeleted:
            return await self._customer_deleted(found, body, request)
        if type(found) is OtherEvent:
            return await self._other_event(found, body)
        assert isinstance(found, Rejected)
        return await self._reject(found, body, request)

    async def _customer_deleted(
        self, found: CustomerDeleted, body: bytes, request: Incoming
    ) -> tuple[str, Reply]:
        self.metrics.count_event_type(EVENT_TYPE)
        if not self.schemas_ready:
            return "unavailable", self._no_schemas()
        try:
            record = self.records.build(found.datum)
        except ValidationError as exc:  # parse_webhook should make this impossible
            log.error("a validated customer.deleted did not encode: %s", exc)
            return await self._reject(Rejected(422, exc.code, str(exc)), body, request)
        return await self._publish_customer_deleted(record)

    async def _publish_customer_deleted(self, record: Record) -> tuple[str, Reply]:
        key, value, headers = record
        failure = await self._publish(
            "customer_deleted", self.customer_deleted_topic, value, key, headers
        )
        if failure is not None:
            return "unavailable", failure
        return "accepted", ACCEPTED

    async def _other_event(self, found: OtherEvent, body: bytes) -> tuple[str, Reply]:
        self.metrics.count_event_type(found.event_type)
        if not self.raw_topic:
            return "ignored", IGNORED
        payload = found.payload
        event = payload.get("event")
        entity_id = _str_header(event.get("entity_id")) if isinstance(event, dict) else None
        headers: Headers = [
            ("event_type", found.event_type),
            ("content_type", _JSON),
        ]
        sendout_id = _str_header(payload.get("id"))
        if sendout_id:
            headers.append(("sendout_id", sendout_id))
        event_id = _str_header(event.get("id")) if isinstance(event, dict) else None
        if event_id:
            headers.append(("event_id", event_id))
        failure = await self._publish("raw", self.raw_topic, body, entity_id or sendout_id, headers)
        if failure is not None:
            return "unavailable", failure
        return "routed_raw", ACCEPTED

    async def _reject(self, found: Rejected, body: bytes, request: Incoming) -> tuple[str, Reply]:
        """Dead-letter a signed request we cannot accept, then answer its 4xx."""
        if not self.schemas_ready:
            return "unavailable", self._no_schemas()
        given = request.headers
        record = {
            "body": body,
            "reason": found.reason,
            "message": found.message,
            "headers": {
                h: _clean(v) for h in DEAD_LETTER_HEADERS if (v := given.get(h)) is not None
            },
            "received_at": datetime.now(UTC),
        }
        value = self.codec.encode("DeadLetter", record, topic=self.dead_letter_topic)
        headers: Headers = [
            ("reason", found.reason),
            ("schema_fingerprint", self.dead_letter_fingerprint),
        ]
        failure = await self._publish("dead_letter", self.dead_letter_topic, value, None, headers)
        if failure is not None:
            return "unavailable", failure
        self.metrics.dead_letters[found.reason] += 1
        # Reason and message name a JSON path and a rule, never a value: safe to log.
        log.warning("dead-lettered a signed webhook: %s (%s)", found.reason, found.message[:300])
        outcome = found.reason if found.reason in self.metrics.requests else "invalid_payload"
        return outcome, error_reply(found.status, found.reason, found.message)

    async def _publish(
        self, kind: str, topic: str, value: bytes, key: str | None, headers: Headers
    ) -> Reply | None:
        """Produce and wait for the ack; None when acked, else the 503 to answer."""
        start = time.monotonic()
        try:
            await self.producer.produce(topic, value, key, headers)
        except ProducerError as exc:
            return self._unavailable(str(exc))
        self.metrics.publish_latency[kind].observe(time.monotonic() - start)
        return None

    def _unavailable(self, why: str, message: str = "Kafka is not available; retry later") -> Reply:
        log.debug("answering 503: %s", why)
        return error_reply(503, "unavailable", message, headers={"Retry-After": self.retry_after})

    def _no_schemas(self) -> Reply:
        return self._unavailable(
            self.schema_problem, "the schema registry is not available; retry later"
        )

    def _log_unauthorized(self, request: Incoming) -> None:
        self._unauthorized_since_log += 1
        now = time.monotonic()
        if now - self._unauthorized_logged_at >= UNAUTHORIZED_LOG_INTERVAL_S:
            why = "missing" if SIGNATURE_HEADER not in request.headers else "invalid"
            log.warning(
                "rejected %d webhook(s) with a missing or invalid signature "
                "(latest: %s) in the last %.0fs",
                self._unauthorized_since_log,
                why,
                UNAUTHORIZED_LOG_INTERVAL_S,
            )
            self._unauthorized_logged_at = now
            self._unauthorized_since_log = 0

    # -- probes --
    async def healthz(self, request: Incoming | None = None) -> Reply:
        if getattr(self.producer, "failed", False):
            # The producer cannot recover by itself (fatal librdkafka error): restart us.
            return error_reply(503, "producer_failed", "Kafka producer failed fatally")
        return ALIVE

    async def readyz(self, request: Incoming | None = None) -> Reply:
        producer = self.producer
        if self.draining:
            return error_reply(503, "draining", "shutting down")
        if self.kafka_problem:
            return error_reply(503, "not_ready", self.kafka_problem)
        if not self.schemas_ready:
            detail = self.schema_problem or "not registered yet"
            return error_reply(
                503, "not_ready", f"schemas not registered with the registry: {detail}"
            )
        if not producer.healthy:
            detail = (
                getattr(producer, "refused", "")
                or getattr(producer, "last_error", "")
                or "producer not healthy"
            )
            return error_reply(
                503, "not_ready", f"Kafka not reachable or producer failed: {detail}"
            )
        return READY

    def gauges(self) -> dict[str, float]:
        producer = self.producer
        return {
            "bridge_broker_reachable": 1.0 if producer.healthy else 0.0,
            "bridge_schemas_registered": 1.0 if self.schemas_ready else 0.0,
            "bridge_producer_queue_length": float(producer.queued()),
        }

    async def route(self, method: str, path: str, incoming: Callable[[], Incoming]) -> Reply:
        """The answer to `method path`, for every server (one routing table); `incoming`
        makes the request only for the webhook route. HEAD is answered as GET: the server
        leaves out the body."""
        if path == WEBHOOK_PATH:
            if method != "POST":
                return method_not_allowed("POST")
            return await self.webhook(incoming())
        if method == "HEAD":  # a probe's answer without its body (the server leaves it out)
            method = "GET"
        probe = {
            "/healthz": self.healthz,
            "/readyz": self.readyz,
            "/metrics": self.metrics_endpoint,
        }
        if path not in probe:
            return error_reply(404, "not_found", "not found")
        if path == "/metrics" and self.http_auth is not None:
            refused = self._refuse_unauthenticated(method, path, incoming())
            if refused is not None:
                return refused
        if method != "GET":
            return method_not_allowed("GET, HEAD")
        return await probe[path]()

    def _refuse_unauthenticated(self, method: str, path: str, request: Incoming) -> Reply | None:
        """None when the request carries credentials of STREAMS_HTTP_*_FILE, else the 401
        (counted, logged rate-limited, never the credential)."""
        auth = self.http_auth
        assert auth is not None
        reason = auth.check(request.headers.get("authorization"))
        if reason is None:
            return None
        self.metrics.http_auth_failures[reason] += 1
        auth.refused(reason, method, path)
        return Reply(401, UNAUTHORIZED_BODY, _JSON, auth.headers)

    async def metrics_endpoint(self, request: Incoming | None = None) -> Reply:
        metrics, extra = self.metrics, self.gauges()
        if self.shared is not None:  # one of --workers N: answer for all of them
            metrics, extra = self.shared.combined(metrics, extra)
        body = metrics.render(extra).encode()
        return Reply(200, body, _METRICS_CONTENT_TYPE)


def error_reply(
    status: int, error: str, message: str, headers: dict[str, str] | None = None
) -> Reply:
    """A JSON error answer: {"error": ..., "message": ...}."""
    body = json.dumps({"error": error, "message": message}).encode()
    return Reply(status, body, _JSON, headers)


def method_not_allowed(allowed: str) -> Reply:
    """405, with the Allow header the RFC asks for."""
    return error_reply(405, "method_not_allowed", "method not allowed", headers={"Allow": allowed})


#: 400 for a request whose HTTP framing cannot be parsed (or whose body broke off).
MALFORMED_REQUEST = error_reply(400, "bad_request", "malformed HTTP request")
#: 500: a bug, not the sender's fault (Voucherify retries; nothing is lost).
INTERNAL_ERROR = error_reply(500, "internal_error", "internal error")
