"""streams.bridge.asgi driven directly as ASGI (no server, no Kafka): 503 + Retry-After, the
deadline, body limits while reading, lifespan."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from support.bridge_client import SECRET

from streams.bridge.asgi import create_asgi_app
from streams.bridge.signature import sign
from streams.kafka.producer import ProducerUnavailable
from streams.settings import Settings


class Producer:
    """Duck-types AsyncProducer: `mode` ack, unavailable or hang."""

    healthy, failed, last_error = True, False, ""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def queued(self) -> int:
        return 0

    def produce(self, topic: str, value: bytes, key: Any = None, headers: Any = None) -> Any:
        if self.mode == "unavailable":
            raise ProducerUnavailable("no Kafka broker reachable")
        fut = asyncio.get_running_loop().create_future()
        if self.mode == "ack":
            fut.get_loop().call_soon(fut.set_result, None)
        return fut  # "hang": never acked


async def _call(app: Any, method: str, path: str, chunks: list[bytes], headers: dict) -> tuple:
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start, body = sent
    return start["status"], dict(start["headers"]), body["body"]


def _run(mode: str, *requests: tuple[str, str, list[bytes], dict], **changes: Any) -> list[tuple]:
    settings = Settings.from_env(
        {},
        webhook_secret=(SECRET,),
        topic_prefix="unit.",
        request_deadline_s=0.3,
        retry_after_s=7,
        max_body_bytes=4096,
        **changes,
    )

    async def main() -> list[tuple]:
        app = create_asgi_app(settings, Producer(mode))  # type: ignore[arg-type]
        before = await _call(app, "GET", "/readyz", [b""], {})
        await app.startup()
        try:
            return [before] + [await _call(app, *r) for r in requests]
        finally:
            await app.shutdown()

    return asyncio.run(main())


def _signed(body: bytes, **extra: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "x-voucherify-signature": sign(SECRET, body),
        **extra,
    }


@pytest.mark.parametrize("mode", ["unavailable", "hang"])
def test_no_ack_is_503_with_retry_after(mode: str, example_body: bytes) -> None:
    before, reply = _run(
        mode, ("POST", "/webhooks/voucherify", [example_body], _signed(example_body))
    )
    assert before[0] == 503  # no lifespan start-up yet: not ready, nothing accepted
    status, headers, body = reply
    assert status == 503 and headers[b"retry-after"] == b"7"
    assert json.loads(body)["error"] == "unavailable"


def test_chunked_body_over_the_limit_while_reading_is_413(example_body: bytes) -> None:
    big = [b"x" * 3000, b"x" * 3000]  # no Content-Length: the limit holds while reading
    _, reply, ok = _run(
        "ack",
        ("POST", "/webhooks/voucherify", big, {"content-type": "application/json"}),
        ("POST", "/webhooks/voucherify", [example_body[:50], example_body[50:]],
         _signed(example_body)),
    )  # fmt: skip
    assert reply[0] == 413 and json.loads(reply[2])["error"] == "too_large"
    assert ok[0] == 200 and json.loads(ok[2]) == {"status": "accepted"}


def test_routes(example_body: bytes) -> None:
    replies = _run(
        "ack",
        ("GET", "/healthz", [b""], {}),
        ("GET", "/readyz", [b""], {}),
        ("GET", "/nope", [b""], {}),
        ("PUT", "/webhooks/voucherify", [b""], {}),
        ("POST", "/webhooks/voucherify", [example_body], {"content-type": "text/plain"}),
        ("GET", "/metrics", [b""], {}),
    )
    assert [r[0] for r in replies[1:]] == [200, 200, 404, 405, 415, 200]
    assert replies[-1][1][b"content-type"].startswith(b"text/plain; version=0.0.4")


def test_metrics_ask_for_credentials_when_configured(tmp_path: Any) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("asgi-metrics-token\n")
    replies = _run(
        "ack",
        ("GET", "/metrics", [b""], {}),
        ("GET", "/metrics", [b""], {"authorization": "Bearer wrong-token"}),
        ("GET", "/metrics", [b""], {"authorization": "Bearer asgi-metrics-token"}),
        ("GET", "/healthz", [b""], {}),
        ("GET", "/readyz", [b""], {}),
        http_token_file=str(tokens),
    )
    assert [r[0] for r in replies[1:]] == [401, 401, 200, 200, 200]
    assert replies[1][1][b"www-authenticate"] == b'Bearer realm="voucherify-streams"'
    assert json.loads(replies[1][2]) == {
        "error": "unauthorized",
        "message": "authentication required",
    }
