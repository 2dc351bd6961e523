"""What the bridge's signature check costs, by body: signed and not, side by side in one run
(issue #23; not part of `bench/run.py`).

    python -m bench.signature [--rounds 21]                 # in process, ~20 s
    python -m bench.signature --e2e [--seconds 5] [--rev R]  # + through a running bridge

In process (`SignatureVerifier.verify`, one secret, 1 MiB bodies, median ms of `--rounds`
calls each, the regex stripping it replaced beside it with fewer rounds): one HMAC of the body;
the reject of a wrong signature over each shape of body (formatted JSON, token-dense JSON,
the issue's `" x"` garbage, formatted JSON full of lone surrogate escapes, token-dense JSON
with one lone surrogate at its very end: msgspec refuses it there, then the stand-in swap
formats it again; the same crafted so that every stand-in occurs, late: the most the swap can
cost); the accept of a signed body matching raw, and matching only stripped.

`--e2e`: `voucherify-streams bridge` as shipped (one process, a private broker unless
KAFKA_BOOTSTRAP_SERVERS) fed 1 MiB POSTs in a closed loop by 1 and by `--clients` (8)
keep-alive connections of this process (asyncio, raw sockets) for `--seconds` per point:
signed (another event type, so 200 without a publish: the signature check, the JSON decode
and the classification of 1 MiB), signed formatted (the stripped match), and wrongly signed
formatted JSON and garbage (401); requests/s, p50/p99 of the answer and of a `/healthz` probe
sent every 50 ms meanwhile, the bridge's CPU per request. With `--rev R`, the bridge at git
revision R too (checked out with `git worktree` into a temporary directory), measured first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import json
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.results import log

MIB = 1 << 20
WRONG = "00" * 32
SECRET = "bench-secret"


# --- the bodies -------------------------------------------------------------------------------


def _fit(make: Callable[[int], bytes]) -> bytes:
    """The largest `make(n)` of at most 1 MiB (n doubling, then bisected)."""
    lo, hi = 1, 2
    while len(make(hi)) <= MIB:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if len(make(mid)) <= MIB else (lo, mid)
    return make(lo)


def _records(n: int, note: str = 'Lionel  Johnson, "VIP" \\ since 2019, Zoë') -> list[Any]:
    return [
        {
            "id": f"cust_{i:06d}",
            "name": note,
            "points": i * 7,
            "balance": i / 3,
            "tags": ["loyalty", "tier gold", ""],
            "address": {"city": "Kraków", "postal_code": None, "line": "ul. Długa 1"},
        }
        for i in range(n)
    ]


def _event(n: int, **dump: Any) -> bytes:
    """Another event type (answered 200, nothing published) of `n` records."""
    payload = {"type": "customer.updated", "id": "whs_bench", "data": {"items": _records(n)}}
    return json.dumps(payload, ensure_ascii=False, **dump).encode()


def bodies() -> dict[str, bytes]:
    compact = _fit(lambda n: _event(n, separators=(",", ":")))
    n = json.loads(compact)["data"]["items"].__len__()
    pretty = _event(n, indent=2)
    while len(pretty) > MIB:
        n -= 1
        pretty = _event(n, indent=2)
    lone = "x \ud800 y"  # json.dumps writes it as the escape \ud800
    return {
        "compact JSON": compact,
        "formatted JSON": pretty,
        "token-dense JSON": b"[" + b"1 ," * ((MIB - 4) // 3) + b"1]",
        'garbage (" x" repeated)': b'" x"' * (MIB // 4),
        "formatted JSON, lone surrogates": _fit(
            lambda k: json.dumps([{"note": lone, "i": i} for i in range(k)], indent=2).encode()
        ),
        "token-dense JSON, lone surrogate last": (
            b"[" + b"1 ," * ((MIB - 16) // 3) + b'"\\ud800"]'
        ),
        # Crafted: every stand-in taken, at the end (each found after a scan of the body).
        "token-dense JSON, lone surrogate, every stand-in taken": (
            b"["
            + b"1 ," * ((MIB - 256) // 3)
            + b"".join(b'"\\u%c000",' % c for c in b"ABCE")
            + b'"\\ud800"]'
        ),
    }


# --- in process -------------------------------------------------------------------------------

# The stripping this replaced: a regex over the body (git 9eb2fd9), for comparison.
_OLD_TOKEN = re.compile(rb'("[^"\\]*(?:\\.[^"\\]*)*")|[ \t\n\r]+', re.DOTALL)
_OLD_WHITESPACE = re.compile(rb"[ \t\n\r]")


def _old_strip(body: bytes) -> bytes:
    return _OLD_TOKEN.sub(rb"\1", body)


def _old_verify(key: bytes, body: bytes, given: bytes) -> str | None:
    if hmac.compare_digest(hmac.digest(key, body, "sha256"), given):
        return "raw"
    if _OLD_WHITESPACE.search(body) is None:
        return None
    stripped = _old_strip(body)
    if hmac.compare_digest(hmac.digest(key, stripped, "sha256"), given):
        return "stripped"
    return None


def _median_ms(fn: Callable[[], object], rounds: int) -> float:
    fn()  # warm
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def in_process(rounds: int, old_rounds: int) -> list[dict[str, Any]]:
    from streams.bridge.signature import SignatureVerifier, sign

    key = SECRET.encode()
    verifier = SignatureVerifier([SECRET])
    rows: list[dict[str, Any]] = []
    shapes = bodies()

    def row(case: str, body: bytes, signature: str, expect: str | None) -> None:
        assert verifier.verify(body, signature) == expect, case
        given = bytes.fromhex(signature)
        assert _old_verify(key, body, given) == expect, case
        new = _median_ms(lambda: verifier.verify(body, signature), rounds)
        old = _median_ms(lambda: _old_verify(key, body, given), old_rounds)
        rows.append({"case": case, "bytes": len(body), "ms": new, "old_ms": old})
        log(f"{case}: {new:.3f} ms (regex: {old:.3f} ms), {len(body):,} bytes")

    any_body = shapes["formatted JSON"]
    rows.append(
        {
            "case": "one HMAC-SHA256 of the body",
            "bytes": len(any_body),
            "ms": _median_ms(lambda: hmac.digest(key, any_body, "sha256"), rounds),
            "old_ms": None,
        }
    )
    for shape, body in shapes.items():
        row(f"reject, {shape}", body, WRONG, None)
    compact = shapes["compact JSON"]
    row("accept, compact JSON signed (raw match)", compact, sign(SECRET, compact), "raw")
    for case, shape in (
        ("accept, formatted JSON signed compact (stripped match)", "formatted JSON"),
        ("accept, lone surrogates signed compact (stripped match)",
         "formatted JSON, lone surrogates"),
    ):  # fmt: skip
        body = shapes[shape]
        row(case, body, sign(SECRET, _old_strip(body)), "stripped")
    return rows


def print_rows(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'case':<62}{'bytes':>11}{'ms':>9}{'regex ms':>10}{'regex/new':>10}")
    for r in rows:
        old = "" if r["old_ms"] is None else f"{r['old_ms']:>10.3f}{r['old_ms'] / r['ms']:>9.0f}x"
        print(f"{r['case']:<62}{r['bytes']:>11,}{r['ms']:>9.3f}{old}")


# --- through the bridge -----------------------------------------------------------------------


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> int:
    writer.write(data)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = int(re.search(rb"content-length: (\d+)", head, re.I)[1])  # type: ignore[index]
    await reader.readexactly(length)
    return status


def _request(body: bytes, signature: str | None) -> bytes:
    sig = b"" if signature is None else b"x-voucherify-signature: %s\r\n" % signature.encode()
    return (
        b"POST /webhooks/voucherify HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        b"%sContent-Length: %d\r\n\r\n%s" % (sig, len(body), body)
    )


async def _load(port: int, data: bytes, clients: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    probes: list[float] = []
    statuses: dict[int, int] = {}
    ends = time.monotonic() + seconds

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 16)
        try:
            while time.monotonic() < ends:
                t0 = time.monotonic()
                status = await _exchange(reader, writer, data)
                latencies.append(time.monotonic() - t0)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    async def prober() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.monotonic() < ends:
                t0 = time.monotonic()
                await _exchange(reader, writer, b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n")
                probes.append(time.monotonic() - t0)
                await asyncio.sleep(0.05)
        finally:
            writer.close()

    t0 = time.monotonic()
    await asyncio.gather(prober(), *(client() for _ in range(clients)))
    elapsed = time.monotonic() - t0

    def pct(values: list[float], q: float) -> float | None:
        values = sorted(values)
        return values[min(len(values) - 1, int(q * len(values)))] * 1e3 if values else None

    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": pct(latencies, 0.5),
        "p99_ms": pct(latencies, 0.99),
        "healthz_p50_ms": pct(probes, 0.5),
        "healthz_p99_ms": pct(probes, 0.99),
        "healthz_probes": len(probes),
        "statuses": statuses,
    }


def _e2e_cases() -> dict[str, tuple[bytes, str | None]]:
    from streams.bridge.signature import sign

    shapes = bodies()
    compact, pretty = shapes["compact JSON"], shapes["formatted JSON"]
    return {
        "signed compact JSON (200)": (compact, sign(SECRET, compact)),
        "signed formatted JSON, stripped match (200)": (
            pretty,
            sign(SECRET, _old_strip(pretty)),
        ),
        "wrongly signed formatted JSON (401)": (pretty, WRONG),
        'wrongly signed garbage, " x" repeated (401)': (shapes['garbage (" x" repeated)'], WRONG),
    }


def e2e(seconds: float, clients: int, rev: str | None) -> list[dict[str, Any]]:
    from bench.broker import Broker, cleanup_topics, settings_for
    from bench.paths import PY, ROOT
    from bench.processes import cpu_seconds, spawn
    from streams.dev.ports import free_port

    cases = _e2e_cases()
    trees: dict[str, Path] = {"this tree": ROOT}
    old: Path | None = None
    if rev:
        old = Path(tempfile.mkdtemp(prefix="vs-bench-rev-")) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), rev],
                       check=True, capture_output=True)  # fmt: skip
        trees = {rev: old, "this tree": ROOT}
    broker = Broker.start()
    rows: list[dict[str, Any]] = []
    try:
        settings = settings_for(broker, "signature", max_body_bytes=MIB)
        with cleanup_topics(settings):
            for who, tree in trees.items():
                port = free_port()
                env = {
                    **settings.to_env(),
                    "BRIDGE_PORT": str(port),
                    "BRIDGE_HOST": "127.0.0.1",
                    "PYTHONPATH": str(tree),
                }
                name = f"bridge-{who.replace(' ', '-')}"
                proc = spawn(name, [PY, "-m", "streams", "bridge"], env, cwd=tree)
                try:
                    proc.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=60)
                    for case, (body, signature) in cases.items():
                        for c in sorted({1, clients}):
                            cpu0 = cpu_seconds(proc.pid) or 0.0
                            r = asyncio.run(_load(port, _request(body, signature), c, seconds))
                            cpu1 = cpu_seconds(proc.pid) or 0.0
                            r.update(tree=who, case=case, clients=c)
                            r["cpu_ms_per_req"] = 1e3 * (cpu1 - cpu0) / max(1, r["requests"])
                            rows.append(r)
                            log(
                                f"{who}: {case}, {c} client(s): {r['rps']:.1f} req/s, p50 "
                                f"{_ms(r['p50_ms'])}, /healthz p50 {_ms(r['healthz_p50_ms'])} "
                                f"p99 {_ms(r['healthz_p99_ms'])}, {r['statuses']}"
                            )
                finally:
                    proc.stop()
    finally:
        broker.stop()
        if old is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)],
                           capture_output=True)  # fmt: skip
    return rows


def _ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f} ms"


def print_e2e(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'tree':<10}{'case':<48}{'clients':>8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'healthz p50':>12}{'healthz p99':>12}{'CPU ms/req':>11}")  # fmt: skip
    for r in rows:
        print(
            f"{r['tree']:<10}{r['case']:<48}{r['clients']:>8}{r['rps']:>9.1f}"
            f"{r['p50_ms'] or 0:>9.1f}{r['p99_ms'] or 0:>9.1f}{r['healthz_p50_ms'] or 0:>12.1f}"
            f"{r['healthz_p99_ms'] or 0:>12.1f}{r['cpu_ms_per_req']:>11.2f}"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--old-rounds", type=int, default=5, help="rounds of the regex (slow)")
    ap.add_argument("--e2e", action="store_true", help="also through a running bridge")
    ap.add_argument("--seconds", type=float, default=5.0, help="per e2e point")
    ap.add_argument("--clients", type=int, default=8, help="the e2e's larger concurrency")
    ap.add_argument("--rev", help="with --e2e: the bridge at this git revision as well")
    args = ap.parse_args()
    out: dict[str, Any] = {"in_process": in_process(args.rounds, args.old_rounds)}
    print_rows(out["in_process"])
    if args.e2e:
        out["e2e"] = e2e(args.seconds, args.clients, args.rev)
        print_e2e(out["e2e"])
    from bench.paths import RESULTS

    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"signature-{time.strftime('%Y%m%d-%H%M%S')}.json"
    with contextlib.suppress(OSError):
        path.write_text(json.dumps(out, indent=1))
        print(f"\n{path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
