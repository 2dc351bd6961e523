"""The bridge as a standard ASGI 3 application, for the server a user already runs:

    uvicorn streams.bridge.asgi:app --port 8080
    granian --interface asgi streams.bridge.asgi:app --port 8080
    hypercorn streams.bridge.asgi:app --bind 0.0.0.0:8080

`app` reads its settings from the environment (the same variables as `voucherify-streams
bridge`) when the server sends the lifespan start-up, and starts the producer then, in the
process and on the event loop that serves the requests (so after any fork of the server's
workers: librdkafka's threads do not survive one). Shutdown flushes the producer. The server's
own options decide the port, the workers and the graceful-shutdown timeout.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from streams import logs
from streams.bridge.handlers import BodyIncomplete, FromHeaders, Reply, error_reply, read_capped
from streams.bridge.service import BridgeService
from streams.kafka.producer import AsyncProducer
from streams.settings import Settings

__all__ = ["BridgeASGI", "app", "create_asgi_app"]

log = logging.getLogger("streams.bridge")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_NOT_STARTED = error_reply(503, "not_ready", "the bridge has not started (no lifespan start-up)")


class _AsgiRequest(FromHeaders):
    """An ASGI http scope as the handlers' `Incoming`."""

    __slots__ = ("_max_body", "_receive", "headers")

    def __init__(self, scope: Scope, receive: Receive, max_body: int) -> None:
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            key = name.decode("latin-1")  # ASGI servers lower-case the names
            if key not in headers:  # the first, as aiohttp's headers.get() answers
                # Undecodable bytes become U+FFFD, as the aiohttp server's requests end up.
                headers[key] = value.decode("utf-8", "replace")
        self.headers: dict[str, str] = headers
        self._receive = receive
        self._max_body = max_body

    async def read(self) -> bytes:
        return await read_capped(self._chunks(), self._max_body)

    async def _chunks(self) -> AsyncIterator[bytes]:
        while True:
            message = await self._receive()
            if message["type"] != "http.request":
                raise BodyIncomplete()  # the client went away mid-body
            yield message.get("body", b"")
            if not message.get("more_body", False):
                return


async def _send(send: Send, reply: Reply, *, head_only: bool = False) -> None:
    headers = [
        (b"content-type", reply.content_type.encode("latin-1")),
        (b"content-length", str(len(reply.body)).encode("latin-1")),
    ]
    if reply.headers:
        headers.extend(
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()
        )
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head_only else reply.body})


class BridgeASGI:
    """An ASGI application serving the bridge. With `settings=None` they are read from the
    environment at the lifespan start-up; `producer`/`codec` as BridgeService takes them."""

    def __init__(
        self,
        settings: Settings | None = None,
        producer: AsyncProducer | None = None,
        *,
        codec: Any = None,
    ) -> None:
        self._settings = settings
        self._producer = producer
        self._codec = codec
        self.service: BridgeService | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        # websocket: not ours; returning closes it.

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        service = self.service
        if service is None:
            await _send(send, _NOT_STARTED)
            return
        bridge = service.bridge
        reply = await bridge.route(
            scope["method"], scope["path"], lambda: _AsgiRequest(scope, receive, bridge.max_body)
        )
        await _send(send, reply, head_only=scope["method"] == "HEAD")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.error("bridge failed to start: %s: %s", type(exc).__name__, exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        """Build the service (settings from the environment unless given) and start it."""
        settings = self._settings or Settings.from_env()
        if self._settings is None:
            logs.install(settings)
        service = BridgeService(settings, self._producer, codec=self._codec)
        await service.start()
        self.service = service
        log.info("bridge (ASGI) started")

    async def shutdown(self) -> None:
        """After the server finished its requests: flush and close the producer."""
        if self.service is not None:
            await self.service.stop()
            log.info("bridge (ASGI) stopped")


def create_asgi_app(
    settings: Settings | None = None, producer: AsyncProducer | None = None, *, codec: Any = None
) -> BridgeASGI:
    """The bridge as an ASGI application (see BridgeASGI)."""
    return BridgeASGI(settings, producer, codec=codec)


#: `streams.bridge.asgi:app`: settings from the environment.
app = create_asgi_app()
