"""The bridge served by aiohttp, and its process entry point (`voucherify-streams bridge`).

`create_app()` is the bridge as an aiohttp Application; `serve()` runs it on aiohttp's
low-level server (no router or middleware per request) until SIGTERM/SIGINT or `stop`; `run()`
is the CLI's entry: one process, or, with `--workers N`, streams.bridge.supervisor's N.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from streams import logs
from streams.bridge.handlers import (
    WEBHOOK_PATH,
    BodyTooLarge,
    Bridge,
    Reply,
    RequestHeaders,
    error_reply,
)
from streams.bridge.service import (
    BridgeService,
    ConfigError,
    producer_config,
)
from streams.bridge.shared_metrics import SharedMetrics
from streams.kafka.producer import AsyncProducer
from streams.models.serializers.registry import SchemaRegistrationError
from streams.settings import Settings

__all__ = [
    "BRIDGE_KEY",
    "SERVICE_KEY",
    "WEBHOOK_PATH",
    "ConfigError",
    "PortInUse",
    "create_app",
    "fast_server",
    "listen_socket",
    "producer_config",
    "run",
    "serve",
]

log = logging.getLogger("streams.bridge")

BRIDGE_KEY = web.AppKey("bridge", Bridge)
SERVICE_KEY = web.AppKey("bridge_service", BridgeService)
#: How long shutdown waits for in-flight requests before closing their connections (s).
SHUTDOWN_GRACE_S = 15.0


class PortInUse(OSError):
    """Another process listens on the bridge's port (SO_REUSEPORT would silently share it)."""


def listen_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket; `reuse_port` for the workers' shared port (the supervisor
    checks beforehand that nothing else listens there: streams.bridge.supervisor.free_port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class _AioRequest:
    """An aiohttp request as the handlers' `Incoming` (the body limit as BodyTooLarge)."""

    __slots__ = ("_request",)

    def __init__(self, request: web.BaseRequest) -> None:
        self._request = request

    @property
    def content_length(self) -> int | None:
        return self._request.content_length

    @property
    def content_type(self) -> str:
        return self._request.content_type

    @property
    def headers(self) -> RequestHeaders:
        return self._request.headers

    async def read(self) -> bytes:
        try:
            return await self._request.read()
        except web.HTTPRequestEntityTooLarge:
            raise BodyTooLarge() from None


def _response(reply: Reply) -> web.Response:
    headers = {"Content-Type": reply.content_type}
    if reply.headers:
        headers.update(reply.headers)
    return web.Response(status=reply.status, body=reply.body, headers=headers)


Route = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


def _routes(bridge: Bridge) -> dict[tuple[str, str], Route]:
    async def webhook(request: web.BaseRequest) -> web.StreamResponse:
        return _response(await bridge.webhook(_AioRequest(request)))

    def probe(handler: Callable[[], Awaitable[Reply]]) -> Route:
        async def route(request: web.BaseRequest) -> web.StreamResponse:
            return _response(await handler())

        return route

    return {
        ("POST", WEBHOOK_PATH): webhook,
        ("GET", "/healthz"): probe(bridge.healthz),
        ("GET", "/readyz"): probe(bridge.readyz),
        ("GET", "/metrics"): probe(bridge.metrics_endpoint),
    }


def create_app(
    settings: Settings,
    producer: AsyncProducer | None = None,
    *,
    codec: Any = None,
    shared: SharedMetrics | None = None,
) -> web.Application:
    """The bridge as an aiohttp Application (see streams.bridge.service.BridgeService for what
    it owns). Raises ConfigError when no secret is configured and the insecure flag is not set.
    """
    service = BridgeService(settings, producer, codec=codec, shared=shared)
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[BRIDGE_KEY] = service.bridge
    app[SERVICE_KEY] = service
    for (method, path), route in _routes(service.bridge).items():
        app.router.add_route(method, path, route)

    async def on_startup(app: web.Application) -> None:
        await service.start()

    async def on_shutdown(app: web.Application) -> None:
        service.drain()

    async def on_cleanup(app: web.Application) -> None:
        await service.stop()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    return app


def fast_server(app: web.Application) -> web.Server:
    """The bridge's routes on aiohttp's low-level server: no router, no middleware, no
    per-request Application machinery (measured ~20% more requests/s than the Application)."""
    bridge = app[BRIDGE_KEY]
    routes = _routes(bridge)
    paths = {path for _, path in routes}
    max_body = bridge.max_body

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        route = routes.get((request.method, request.path))
        if route is not None:
            return await route(request)
        if request.path in paths:
            return _response(error_reply(405, "method_not_allowed", "method not allowed"))
        return _response(error_reply(404, "not_found", "not found"))

    def request_factory(
        message: Any, payload: Any, protocol: Any, writer: Any, task: Any
    ) -> web.BaseRequest:
        # aiohttp's default factory takes the protocol's private `_loop` as well.
        return web.BaseRequest(
            message, payload, protocol, writer, task, protocol._loop, client_max_size=max_body
        )

    return web.Server(handler, request_factory=request_factory, access_log=None)


async def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    stop: asyncio.Event | None = None,
    on_started: Callable[[int], None] | None = None,
    fast: bool = True,
    sock: socket.socket | None = None,
) -> None:
    """Serve `app` until SIGTERM/SIGINT (main thread) or `stop` is set, then shut down
    gracefully: stop accepting, finish in-flight requests, flush the producer.

    `fast` (default) serves the bridge's routes on aiohttp's low-level server, running the
    app's startup/shutdown/cleanup hooks around it; `fast=False` serves the Application.
    `sock`: an already listening socket (a worker's share of the port) instead of host:port."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):  # pragma: no cover
                pass
    runner: web.BaseRunner
    if fast:
        app.freeze()
        await app.startup()
        runner = web.ServerRunner(fast_server(app), shutdown_timeout=SHUTDOWN_GRACE_S)
    else:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_GRACE_S)
    try:
        await runner.setup()
        if sock is None:
            sock = listen_socket(host, port)
        site = web.SockSite(runner, sock)
        await site.start()
        bound = sock.getsockname()[1]
        log.info("bridge listening on %s:%d", host, bound)
        if on_started is not None:
            on_started(bound)
        await stop.wait()
        log.info("shutting down: no new connections, finishing in-flight requests")
        bridge = app[BRIDGE_KEY]
        bridge.draining = True
        await site.stop()
        # Wait here, not in aiohttp's shutdown: that first closes every connection, after
        # which aiohttp drops the bytes still arriving, so a request whose body was being
        # uploaded would run into its deadline (a 503) instead of finishing.
        grace_ends = loop.time() + SHUTDOWN_GRACE_S
        while bridge.metrics.in_flight > 0 and loop.time() < grace_ends:
            await asyncio.sleep(0.01)
    finally:
        # Stops listening, waits for in-flight requests (up to the grace period), then, for
        # the Application runner, its shutdown and cleanup hooks (which flush the producer).
        await runner.cleanup()
        if fast:
            await app.shutdown()
            await app.cleanup()
        for sig in installed:
            loop.remove_signal_handler(sig)
    log.info("bridge stopped")


def run(
    settings: Settings,
    *,
    sock: socket.socket | None = None,
    shared: SharedMetrics | None = None,
    on_started: Callable[[int], None] | None = None,
) -> int:
    """`voucherify-streams bridge`: serve until SIGTERM/SIGINT; 0 after a clean shutdown.
    With `settings.workers` > 1 (and no `sock`: not a worker itself) the supervisor runs that
    many worker processes (streams.bridge.supervisor), each of which comes back here."""
    if settings.workers > 1 and sock is None:
        from streams.bridge.supervisor import supervise

        return supervise(settings)
    logs.install(settings)  # a broker outage: one line per node per interval, with a count
    try:
        app = create_app(settings, shared=shared)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    try:
        main = serve(
            app, settings.bridge_host, settings.bridge_port, sock=sock, on_started=on_started
        )
        asyncio.run(main)
    except SchemaRegistrationError as exc:
        log.error("refusing to start: %s", exc)
        return 2
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", settings.bridge_host, settings.bridge_port, exc)
        return 1
    except Exception as exc:
        # Start-up failures (no broker answering, topic creation refused) end here.
        log.error("bridge failed: %s: %s", type(exc).__name__, exc)
        return 1
    return 0
