"""The worker's web server asks for credentials (streams.http_auth) on every path but the probes.

An aiohttp middleware on Faust's web application (`web_application_options`, Faust's public
setting for it): it runs before any view, and for paths no view serves too, so without
credentials every path but `/healthz` and `/readyz` answers the same 401 and a caller learns
nothing of what the worker serves. Faust's own pages (`/router`, `/table`, statistics, graph)
are switched off in streams.app whether or not credentials are asked for.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from aiohttp import web

from streams.http_auth import OPEN_PATHS, UNAUTHORIZED_BODY, HttpAuth

__all__ = ["middleware"]

Handler = Any  # aiohttp's request handler: (Request) -> Awaitable[StreamResponse]


def middleware(auth: HttpAuth, failures: Counter[str]) -> Any:
    """The aiohttp middleware: the probes pass, anything else needs credentials of `auth`;
    a refusal is counted in `failures` by reason and logged rate-limited."""

    @web.middleware
    async def require_credentials(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS:
            return await handler(request)
        reason = auth.check(request.headers.get("Authorization"))
        if reason is None:
            return await handler(request)  # type: ignore[no-any-return]
        failures[reason] += 1
        auth.refused(reason, request.method, request.path)
        return web.Response(
            status=401,
            body=UNAUTHORIZED_BODY,
            content_type="application/json",
            headers=auth.headers,
        )

    return require_credentials
