"""Fixtures of the bridge tests: a bridge running in a thread, a tiny HTTP client, signing."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.bridge_client import SECRET, Client

from streams.bridge.server import create_app, serve
from streams.settings import Settings


class BridgeServer(Client):
    """The bridge app served by `serve()` on its own event loop in a thread (asyncio's, or the
    one `loop_factory` makes)."""

    def __init__(
        self,
        settings: Settings,
        *,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
        **app_kwargs: Any,
    ) -> None:
        self.settings = settings
        self._loop_factory = loop_factory
        self._app_kwargs = app_kwargs
        self.port = 0
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._main, name="bridge", daemon=True)
        self.app: Any = None

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self.app = create_app(self.settings, **self._app_kwargs)
            await serve(self.app, "127.0.0.1", 0, stop=self._stop, on_started=self._on_started)

        try:
            with asyncio.Runner(loop_factory=self._loop_factory) as runner:
                runner.run(main())
        except BaseException as exc:
            self.error = exc
        finally:
            self._started.set()

    def _on_started(self, port: int) -> None:
        self.port = port
        self._started.set()

    def start(self, timeout: float = 60.0) -> BridgeServer:
        self._thread.start()
        assert self._started.wait(timeout), "bridge did not start"
        if self.error is not None:
            raise self.error
        return self

    def stop(self, timeout: float = 30.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "bridge did not stop"


@pytest.fixture
def bridge_settings(settings: Settings) -> Settings:
    """Isolated settings (own topic prefix) with a webhook secret."""
    return settings.with_(webhook_secret=(SECRET,), request_deadline_s=3.0, retry_after_s=7)


@pytest.fixture
def start_bridge() -> Iterator[Callable[..., BridgeServer]]:
    """Factory: start_bridge(settings, **create_app_kwargs) -> a running BridgeServer."""
    running: list[BridgeServer] = []

    def start(settings: Settings, **kwargs: Any) -> BridgeServer:
        server = BridgeServer(settings, **kwargs).start()
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop()


@pytest.fixture
def example(example_body: bytes) -> dict[str, Any]:
    return json.loads(example_body)


@pytest.fixture
def compact() -> Callable[[Any], bytes]:
    """JSON as Voucherify signs it: no whitespace outside strings."""

    def dump(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()

    return dump
