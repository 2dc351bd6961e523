"""The bridge as an RSGI application (granian's own interface), served by granian's embedded
server on the event loop of the producer: one process, one loop, HTTP parsed in Rust.

granian's embedded server (`granian.server.embed.Server`) is marked experimental upstream:
this module is the only one touching it, tests/bridge/test_rsgi.py checks its shape, and
pyproject.toml bounds granian to the tested minor. Run with `python -m streams.bridge.rsgi`
(settings from the environment, as `voucherify-streams bridge`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from streams import logs
from streams.bridge.handlers import (
    BodyTooLarge,
    FromHeaders,
    Reply,
    RequestHeaders,
    read_capped,
)
from streams.bridge.service import BridgeService
from streams.settings import Settings

log = logging.getLogger("streams.bridge")


class _RsgiRequest(FromHeaders):
    """An RSGI http scope and protocol as the handlers' `Incoming`."""

    __slots__ = ("_max_body", "_protocol", "headers")

    def __init__(self, scope: Any, protocol: Any, max_body: int) -> None:
        self.headers: RequestHeaders = scope.headers  # get() and `in`, lower-case names
        self._protocol = protocol
        self._max_body = max_body

    async def read(self) -> bytes:
        length = self.content_length
        if length is not None:  # the handler refused a larger Content-Length already
            body: bytes = await self._protocol()
            if len(body) > self._max_body:
                raise BodyTooLarge()
            return body
        return await read_capped(self._protocol, self._max_body)  # chunked


def _headers(reply: Reply) -> list[tuple[str, str]]:
    headers = [("content-type", reply.content_type)]
    if reply.headers:
        headers.extend((k.lower(), v) for k, v in reply.headers.items())
    return headers


class BridgeRSGI:
    """RSGI application of a started BridgeService."""

    def __init__(self, service: BridgeService) -> None:
        self.service = service
        self._accepted_headers = _headers(Reply(200, b""))

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        if scope.proto != "http":
            return
        bridge = self.service.bridge
        reply = await bridge.route(
            scope.method, scope.path, lambda: _RsgiRequest(scope, protocol, bridge.max_body)
        )
        headers = (
            self._accepted_headers
            if reply.headers is None and reply.content_type == "application/json"
            else _headers(reply)
        )
        # HEAD: no body (granian then says content-length 0)
        body = b"" if scope.method == "HEAD" else reply.body
        protocol.response_bytes(reply.status, headers, body)


async def serve_embedded(settings: Settings) -> None:
    """Start the service, serve it with granian's embedded RSGI server on this loop until
    SIGTERM/SIGINT, then drain and flush."""
    from granian.constants import Interfaces
    from granian.server.embed import Server

    service = BridgeService(settings)
    await service.start()
    server = Server(
        BridgeRSGI(service),
        address=settings.bridge_host,
        port=settings.bridge_port,
        interface=Interfaces.RSGI,
        websockets=False,
        backlog=1024,
        log_enabled=False,
    )
    loop = asyncio.get_running_loop()
    serving = asyncio.ensure_future(server.serve())

    def stop() -> None:
        service.drain()
        server.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    try:
        await serving
    finally:
        await service.stop()


def main() -> int:
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level.upper())
    logs.install(settings)
    asyncio.run(serve_embedded(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
