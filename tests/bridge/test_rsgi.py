"""The shape of granian's embedded server that streams.bridge.rsgi relies on (marked
experimental upstream): this fails when an upgrade changes it. The contract itself is
checked against a real broker in test_asgi.py (the `granian-rsgi` server)."""

from __future__ import annotations

import inspect


def test_granian_embedded_server_shape() -> None:
    from granian.constants import Interfaces
    from granian.server.embed import Server

    params = inspect.signature(Server.__init__).parameters
    for name in ("target", "address", "port", "interface", "websockets", "backlog", "log_enabled"):
        assert name in params, name
    assert Interfaces.RSGI
    assert inspect.iscoroutinefunction(Server.serve)
    assert callable(Server.stop)


def test_rsgi_protocol_methods_used() -> None:
    from granian._granian import RSGIHeaders, RSGIHTTPProtocol

    for name in ("response_bytes", "__call__", "__aiter__"):
        assert hasattr(RSGIHTTPProtocol, name), name
    for name in ("get", "__contains__"):
        assert hasattr(RSGIHeaders, name), name
