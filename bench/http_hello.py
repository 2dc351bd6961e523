"""The HTTP layers alone, without the bridge: a POST whose body is read and answered with a
fixed JSON, on the bridge's own HTTP/1.1 server (streams.bridge.http11), aiohttp's low-level
server, granian (RSGI and ASGI, embedded in an asyncio loop or as its own server) and uvicorn —
what each costs before any bridge work (docs/BENCHMARKS.md). `LOOP=uvloop` runs the first three
on uvloop.

    python bench/http_hello.py http11|aiohttp|rsgi-embed|asgi-embed PORT
    granian --interface rsgi --port PORT bench.http_hello:rsgi     (or asgi ... :asgi)
    uvicorn --port PORT bench.http_hello:asgi
    wrk -t1 -c64 -d4s -s bench/wrk/post2k.lua http://127.0.0.1:PORT/
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web

BODY = b'{"status":"accepted"}'


async def asgi(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        m = await receive()
        body += m.get("body", b"")
        if not m.get("more_body"):
            break
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": BODY})


class RSGI:
    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        await proto()
        proto.response_bytes(200, [("content-type", "application/json")], BODY)


rsgi = RSGI()


async def aio_handler(request: web.BaseRequest) -> web.Response:
    await request.read()
    return web.Response(body=BODY, content_type="application/json")


async def http11_route(method: str, path: str, incoming: Callable[[], Any]) -> Any:
    from streams.bridge.handlers import Reply

    await incoming().read()
    return Reply(200, BODY)


def _run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    if os.environ.get("LOOP") == "uvloop":
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "http11":
        from streams.bridge.http11 import Http11Server
        from streams.bridge.server import listen_socket

        async def run() -> None:
            server = Http11Server(http11_route, max_body=1 << 20)
            await server.start(listen_socket("127.0.0.1", port))
            await asyncio.Event().wait()

        _run(run)
    elif kind == "aiohttp":

        async def run() -> None:
            srv = web.Server(aio_handler, access_log=None)
            runner = web.ServerRunner(srv)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            await asyncio.Event().wait()

        _run(run)
    elif kind in ("rsgi-embed", "asgi-embed"):
        from granian.constants import Interfaces
        from granian.server.embed import Server

        async def run() -> None:  # type: ignore[no-redef]
            s = Server(
                rsgi if kind == "rsgi-embed" else asgi,
                port=port,
                interface=Interfaces.RSGI if kind == "rsgi-embed" else Interfaces.ASGI,
                log_enabled=False,
            )
            await s.serve()

        _run(run)


if __name__ == "__main__":
    main()
