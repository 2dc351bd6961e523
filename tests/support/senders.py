"""Signed webhook senders for the reliability tests (aiohttp, bounded retries)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp

from streams.bridge.signature import sign
from streams.demo.generator import Webhook

SIGNATURE = "x-voucherify-signature"


@dataclass
class Outcome:
    """What the senders saw: every answer, and which webhooks ended acknowledged (2xx)."""

    statuses: Counter[int] = field(default_factory=Counter)
    acked: list[Webhook] = field(default_factory=list)
    given_up: list[Webhook] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())


async def send(
    url: str,
    hooks: Sequence[Webhook],
    secret: str,
    concurrency: int,
    retry_for_s: float = 0.0,
    outcome: Outcome | None = None,
) -> Outcome:
    """POST every webhook; a 503 or connection error is retried (like Voucherify) until
    `retry_for_s` has passed, each 2xx recorded as acknowledged."""
    out = outcome or Outcome()
    queue: asyncio.Queue[Webhook] = asyncio.Queue()
    for hook in hooks:
        queue.put_nowait(hook)

    async def one(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            hook = queue.get_nowait()
            headers = {"content-type": "application/json", SIGNATURE: sign(secret, hook.body)}
            give_up_at = time.monotonic() + retry_for_s
            delay = 0.1
            while True:
                try:
                    async with session.post(url, data=hook.body, headers=headers) as resp:
                        status = resp.status
                        await resp.read()
                except (TimeoutError, aiohttp.ClientError):
                    status = 0
                out.statuses[status] += 1
                if 200 <= status < 300:
                    out.acked.append(hook)
                    break
                if status not in (0, 503) or time.monotonic() > give_up_at:
                    out.given_up.append(hook)
                    break
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency), timeout=timeout
    ) as session:
        await asyncio.gather(*(one(session) for _ in range(concurrency)))
    return out
