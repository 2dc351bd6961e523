"""The HTTP layers alone, without the bridge: a POST whose body is read and answered with a
fixed JSON, on aiohttp's low-level server, granian (RSGI and ASGI, embedded in an asyncio loop
or as its own server) and uvicorn — what each costs before any bridge work (docs/BENCHMARKS.md).

    python bench/http_hello.py aiohttp|rsgi-embed|asgi-embed PORT
    granian --interface rsgi --port PORT bench.http_hello:rsgi     (or asgi ... :asgi)
    uvicorn --port PORT bench.http_hello:asgi
    wrk -t1 -c64 -d4s -s bench/wrk/post2k.lua http://127.0.0.1:PORT/
"""

from __future__ import annotations

import asyncio
import sys
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


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "aiohttp":

        async def run() -> None:
            srv = web.Server(aio_handler, access_log=None)
            runner = web.ServerRunner(srv)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            await asyncio.Event().wait()

        asyncio.run(run())
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

        asyncio.run(run())


if __name__ == "__main__":
    main()
