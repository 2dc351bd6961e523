"""The bridge's process entry point (`voucherify-streams bridge`) and its HTTP serving.

`create_app()` is the bridge as an aiohttp Application; `serve()` runs it until SIGTERM/SIGINT
or `stop` on the bridge's own HTTP/1.1 server (streams.bridge.http11, the default) or on
aiohttp's low-level server (BRIDGE_HTTP=aiohttp: no router or middleware per request); `run()`
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

from aiohttp import ClientPayloadError, web

from streams import logs
from streams.bridge.handlers import (
    WEBHOOK_PATH,
    BodyIncomplete,
    BodyTooLarge,
    Bridge,
    Reply,
    RequestHeaders,
)
from streams.bridge.http11 import Http11Server
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
        except (ConnectionError, ClientPayloadError):  # the client went away mid-body
            raise BodyIncomplete() from None


def _response(reply: Reply) -> web.Response:
    headers = {"Content-Type": reply.content_type}
    if reply.headers:
        headers.update(reply.headers)
    return web.Response(status=reply.status, body=reply.body, headers=headers)


def _handler(bridge: Bridge) -> Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]:
    """Every request answered by `Bridge.route` (aiohttp leaves out a HEAD answer's body)."""

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        reply = await bridge.route(request.method, request.path, lambda: _AioRequest(request))
        return _response(reply)

    return handler


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
    app.router.add_route("*", "/{path:.*}", _handler(service.bridge))

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
    max_body = bridge.max_body

    def request_factory(
        message: Any, payload: Any, protocol: Any, writer: Any, task: Any
    ) -> web.BaseRequest:
        # aiohttp's default factory takes the protocol's private `_loop` as well.
        return web.BaseRequest(
            message, payload, protocol, writer, task, protocol._loop, client_max_size=max_body
        )

    return web.Server(
        _handler(bridge),
        request_factory=request_factory,
        access_log=None,
        keepalive_timeout=bridge.settings.keepalive_s,
    )


async def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    stop: asyncio.Event | None = None,
    on_started: Callable[[int], None] | None = None,
    http: str | None = None,
    sock: socket.socket | None = None,
) -> None:
    """Serve `app` until SIGTERM/SIGINT (main thread) or `stop` is set, then shut down
    gracefully: stop accepting, finish in-flight requests, flush the producer.

    `http` (default: the app's BRIDGE_HTTP): `httptools`, the bridge's own HTTP/1.1 server
    (streams.bridge.http11), or `aiohttp`, aiohttp's low-level server, each running the app's
    startup/shutdown/cleanup hooks around it; `application` serves the aiohttp Application as
    is. `sock`: an already listening socket (a worker's share of the port) instead of host:port.
    """
    stop = stop or asyncio.Event()
    http = http or app[SERVICE_KEY].settings.http_server
    if http not in ("httptools", "aiohttp", "application"):
        raise ValueError(f"unknown HTTP server {http!r}")
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):  # pragma: no cover
                pass
    bridge = app[BRIDGE_KEY]
    hooks = http != "application"  # else the runner runs them
    runner: web.BaseRunner | None = None
    own: Http11Server | None = None
    site: web.SockSite | None = None
    if hooks:  # a failed start-up raises as it is (a refused registration: exit 2)
        app.freeze()
        await app.startup()
    try:
        if sock is None:
            sock = listen_socket(host, port)
        if http == "httptools":
            own = Http11Server(
                bridge.route,
                max_body=bridge.max_body,
                keepalive_s=bridge.settings.keepalive_s,
                head_timeout_s=bridge.settings.head_timeout_s,
                max_connections=bridge.settings.max_connections,
                retry_after=bridge.retry_after,
                metrics=bridge.metrics,
            )
            await own.start(sock)
        else:
            runner = (
                web.ServerRunner(fast_server(app), shutdown_timeout=SHUTDOWN_GRACE_S)
                if hooks
                else web.AppRunner(
                    app,
                    access_log=None,
                    shutdown_timeout=SHUTDOWN_GRACE_S,
                    keepalive_timeout=bridge.settings.keepalive_s,
                )
            )
            await runner.setup()
            site = web.SockSite(runner, sock)
            await site.start()
        bound = sock.getsockname()[1]
        log.info("bridge listening on %s:%d (%s)", host, bound, http)
        if on_started is not None:
            on_started(bound)
        await stop.wait()
        log.info("shutting down: no new connections, finishing in-flight requests")
        bridge.draining = True
        if own is not None:
            own.stop_accepting()
        if site is not None:
            await site.stop()
        # Wait here, not in aiohttp's shutdown: that first closes every connection, after
        # which aiohttp drops the bytes still arriving, so a request whose body was being
        # uploaded would run into its deadline (a 503) instead of finishing.
        if own is not None:  # each connection closes once it answered what it had
            await own.drained(SHUTDOWN_GRACE_S)
        else:
            grace_ends = loop.time() + SHUTDOWN_GRACE_S
            while bridge.metrics.in_flight > 0 and loop.time() < grace_ends:
                await asyncio.sleep(0.01)
    finally:
        if own is not None:
            await own.close()
        if sock is not None and site is None:
            sock.close()  # (the server's own, or one it never took)
        # Stops listening, waits for in-flight requests (up to the grace period), then, for
        # the Application runner, its shutdown and cleanup hooks (which flush the producer).
        if runner is not None:
            await runner.cleanup()
        if hooks:
            await app.shutdown()
            await app.cleanup()
        for sig in installed:
            loop.remove_signal_handler(sig)
    log.info("bridge stopped")


def loop_factory(settings: Settings) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The bridge's event loop (BRIDGE_EVENT_LOOP): uvloop's where asked for or, with `auto`,
    where it is installed (measured faster at every concurrency); asyncio's otherwise."""
    if settings.event_loop == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if settings.event_loop == "uvloop":
            raise ConfigError("BRIDGE_EVENT_LOOP=uvloop but uvloop is not installed") from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


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
        new_loop = loop_factory(settings)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    try:
        main = serve(
            app, settings.bridge_host, settings.bridge_port, sock=sock, on_started=on_started
        )
        with asyncio.Runner(loop_factory=new_loop) as runner:
            runner.run(main)
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
