"""The bridge's own CPU per webhook, without the kernel, the broker or the load generator: a
profile, not a throughput figure (not part of `bench/run.py`).

64 connections of the bridge's HTTP/1.1 server are fed the bench's signed webhooks in memory
(each answered request is followed at once by the next); the producer is a stand-in that acks
on the loop's next turn, so what is measured is the HTTP server, the handler, the signature
check, the JSON decode and the Avro record: everything the bridge process does per webhook but
the socket calls and librdkafka. Optionally side by side with an earlier revision, alternating.

    python -m bench.bridge_inprocess [--rev 212260e] [--rounds 5] [--webhooks 40000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CONCURRENCY = 64


class _Acking:
    """The producer's interface, acking every record on the loop's next turn."""

    healthy = True

    def queued(self) -> int:
        return 0

    def produce(self, topic: str, value: bytes, key: Any, headers: Any) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        loop.call_soon(fut.set_result, None)
        return fut


class _Transport(asyncio.Transport):
    def __init__(self, conn: Any, answered: list[Any]) -> None:
        super().__init__()
        self.conn, self.answered = conn, answered

    def write(self, data: Any) -> None:
        self.answered.append(self.conn)

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _measure(requests: list[bytes], secret: str, n: int) -> float:
    """CPU µs per webhook over `n` webhooks (after a warm-up of 5,000)."""
    from streams.bridge.handlers import Bridge
    from streams.bridge.http11 import Connection, Http11Server
    from streams.bridge.signature import SignatureVerifier
    from streams.settings import Settings

    settings = Settings()
    bridge = Bridge(settings, _Acking(), verifier=SignatureVerifier([secret]))  # type: ignore[arg-type]
    server = Http11Server(bridge.route, max_body=settings.max_body_bytes)
    answered: list[Any] = []
    sent = 0
    for _ in range(CONCURRENCY):
        conn = Connection(server)
        conn.connection_made(_Transport(conn, answered))
        conn.data_received(requests[sent % len(requests)])
        sent += 1
    cpu = 0.0
    for count in (5000, n):  # a warm-up, then the measure
        done = 0
        start = time.process_time()
        while done < count:
            await asyncio.sleep(0)
            while answered:
                conn = answered.pop()
                done += 1
                conn.data_received(requests[sent % len(requests)])
                sent += 1
        cpu = (time.process_time() - start) / count * 1e6
    return cpu


def _requests(bodies: Path) -> list[bytes]:
    out = []
    for line in bodies.read_bytes().splitlines()[:4000]:
        signature, _, body = line.split(b"\t", 2)
        out.append(
            b"POST /webhooks/voucherify HTTP/1.1\r\nHost: bench\r\n"
            b"Content-Type: application/json\r\nX-Voucherify-Signature: %s\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (signature, len(body), body)
        )
    return out


def _one(tree: Path, bodies: Path, secret: str, n: int) -> float:
    """One measurement in a fresh process running `tree`'s streams package."""
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(n), "--bodies", str(bodies), "--secret", secret],
        capture_output=True,
        text=True,
        check=True,
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
    )
    return float(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", help="an earlier git revision to measure side by side")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--webhooks", type=int, default=40000)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--bodies", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--secret", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        # Run as a script: its own directory (bench/) must not shadow anything.
        sys.path.remove(str(Path(__file__).resolve().parent))
        import uvloop

        print(uvloop.run(_measure(_requests(args.bodies), args.secret, args.child)))
        return 0
    from bench.datasets import SECRET, write_bodies
    from bench.paths import CACHE, ROOT

    bodies = CACHE / "bodies-20000.tsv"
    if not bodies.exists():
        write_bodies(bodies, 20000, seed=11)
    trees: dict[str, Path] = {"this tree": ROOT}
    old = None
    if args.rev:
        old = Path(tempfile.mkdtemp(prefix="vs-bench-rev-")) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), args.rev],
                       check=True, capture_output=True)  # fmt: skip
        trees = {args.rev: old, "this tree": ROOT}
    results: dict[str, list[float]] = {who: [] for who in trees}
    try:
        for i in range(args.rounds):
            # Alternating which goes first: the machine drifts.
            for who, tree in list(trees.items())[:: 1 if i % 2 == 0 else -1]:
                results[who].append(_one(tree, bodies, SECRET, args.webhooks))
                print(f"round {i + 1}: {who} {results[who][-1]:.1f} µs CPU per webhook", flush=True)
    finally:
        if old is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)],
                           capture_output=True)  # fmt: skip
    medians = {who: statistics.median(v) for who, v in results.items()}
    print(json.dumps({"µs per webhook (median)": medians, "rounds": results}, ensure_ascii=False))
    if args.rev:
        print(f"this tree / {args.rev}: {medians['this tree'] / medians[args.rev]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
