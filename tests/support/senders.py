"""Signed webhook senders for the reliability tests (aiohttp, bounded retries)."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp

from streams.bridge.signature import sign
from streams.dev.demo.generator import Webhook

SIGNATURE = "x-voucherify-signature"


@dataclass
class Outcome:
    """What the senders saw: every answer, and which webhooks ended acknowledged (2xx)."""

    statuses: Counter[int] = field(default_factory=Counter)
    acked: list[Webhook] = field(default_factory=list)
    given_up: list[Webhook] = field(default_factory=list)
    #: time.monotonic() of each 2xx, in order.
    acked_at: list[float] = field(default_factory=list)

    @property
    def webhooks(self) -> int:
        """Webhooks taken (each ended acknowledged or given up)."""
        return len(self.acked) + len(self.given_up)

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())

    def longest_pause(self, since: float = 0.0, until: float = float("inf")) -> float:
        """The longest time (s) between two consecutive 2xx within [since, until]."""
        times = [t for t in self.acked_at if since <= t <= until]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


async def send(
    url: str,
    hooks: Sequence[Webhook],
    secret: str,
    concurrency: int,
    retry_for_s: float = 0.0,
    outcome: Outcome | None = None,
    rate_per_s: float = 0.0,
    stop: threading.Event | None = None,
) -> Outcome:
    """POST every webhook; a 503 or connection error is retried (like Voucherify) until
    `retry_for_s` has passed, each 2xx recorded as acknowledged. `rate_per_s` paces the first
    attempts of the webhooks (0: as fast as the senders go), so a load lasts long enough for
    faults to land in it; retries are not paced. Once `stop` is set no new webhook is taken
    (those in flight go on being retried): a load that lasts as long as a fault sequence."""
    out = outcome or Outcome()
    queue: asyncio.Queue[Webhook] = asyncio.Queue()
    for hook in hooks:
        queue.put_nowait(hook)
    next_at = [time.monotonic()]

    async def paced() -> None:
        if rate_per_s <= 0:
            return
        wait = next_at[0] - time.monotonic()
        next_at[0] = max(next_at[0], time.monotonic()) + 1.0 / rate_per_s
        if wait > 0:
            await asyncio.sleep(wait)

    async def one(session: aiohttp.ClientSession) -> None:
        while not queue.empty() and not (stop is not None and stop.is_set()):
            hook = queue.get_nowait()
            await paced()
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
                    out.acked_at.append(time.monotonic())
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
