"""The load generator: its own process, none of the bridge's code. Prints one JSON line.

    python bench/loadgen.py closed --url http://127.0.0.1:P --bodies FILE -c 16 -d 10
        Closed loop at a fixed concurrency: `wrk` (Debian's package) with bench/wrk/webhooks.lua
        when it is on PATH (lighter on the cores, p99.9 from wrk's HdrHistogram), else an
        aiohttp client (`--engine aiohttp` forces it).
    python bench/loadgen.py rate --url ... --bodies FILE --rate 50 -d 20 --out acks.jsonl
        Open loop at a fixed rate (aiohttp): one line per request {cid, sent, acked, status}
        with CLOCK_MONOTONIC times (system-wide on Linux, so comparable across processes).

Only loopback URLs are accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

LUA = Path(__file__).resolve().parent / "wrk" / "webhooks.lua"
PATH = "/webhooks/voucherify"


def _bodies(path: str) -> list[tuple[str, str, bytes]]:
    out = []
    for line in Path(path).read_bytes().splitlines():
        sig, cid, body = line.split(b"\t", 2)
        out.append((sig.decode(), cid.decode(), body))
    return out


def _check_url(url: str) -> None:
    host = urlparse(url).hostname
    if host not in {"127.0.0.1", "localhost", "::1"}:
        raise SystemExit(f"refusing to send load to {host!r}: loopback only")


def _pct(sorted_vals: list[float], q: float) -> float | None:
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, math.ceil(q / 100 * len(sorted_vals)) - 1))
    return sorted_vals[k]


def closed_wrk(url: str, bodies: str, conc: int, duration: float) -> dict[str, object]:
    threads = 1 if conc < 32 else 2
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{conc}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        url,
        "--",
        bodies,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    m = re.search(r"^WRKJSON (.*)$", proc.stdout, re.M)
    if not m:
        raise SystemExit(f"wrk failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    raw = json.loads(m.group(1))
    lat = raw["latency_us"]
    errors = raw["errors"]
    secs = raw["duration_us"] / 1e6
    bad = sum(errors.values())
    ok = raw["requests"] - errors["status"]
    return {
        "engine": f"wrk -t{threads}",
        "concurrency": conc,
        "duration_s": round(secs, 2),
        "requests": raw["requests"],
        "ok": ok,
        "errors": errors,
        "non_2xx_or_error": bad,
        "rps": round(ok / secs, 1),
        "p50_ms": lat["p50"] / 1000,
        "p90_ms": lat["p90"] / 1000,
        "p99_ms": lat["p99"] / 1000,
        "p999_ms": lat["p999"] / 1000,
        "max_ms": lat["max"] / 1000,
    }


async def closed_aiohttp(url: str, bodies: str, conc: int, duration: float) -> dict[str, object]:
    import aiohttp

    items = _bodies(bodies)
    lat: list[float] = []
    errors = 0
    n = 0
    stop_at = time.monotonic() + duration
    connector = aiohttp.TCPConnector(limit=conc)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=10)
    ) as session:

        async def one(start: int) -> None:
            nonlocal errors, n
            i = start
            while time.monotonic() < stop_at:
                sig, _cid, body = items[i % len(items)]
                i += conc
                t = time.monotonic()
                try:
                    async with session.post(
                        url + PATH,
                        data=body,
                        headers={
                            "Content-Type": "application/json",
                            "X-Voucherify-Signature": sig,
                        },
                    ) as resp:
                        await resp.read()
                        if 200 <= resp.status < 300:
                            lat.append(time.monotonic() - t)
                        else:
                            errors += 1
                except Exception:
                    errors += 1
                n += 1

        t0 = time.monotonic()
        await asyncio.gather(*(one(k) for k in range(conc)))
        secs = time.monotonic() - t0
    lat.sort()
    ms = [x * 1000 for x in lat]
    return {
        "engine": "aiohttp",
        "concurrency": conc,
        "duration_s": round(secs, 2),
        "requests": n,
        "ok": len(lat),
        "non_2xx_or_error": errors,
        "rps": round(len(lat) / secs, 1),
        "p50_ms": _pct(ms, 50),
        "p90_ms": _pct(ms, 90),
        "p99_ms": _pct(ms, 99),
        "p999_ms": _pct(ms, 99.9),
        "max_ms": ms[-1] if ms else None,
    }


async def open_rate(url: str, bodies: str, rate: float, duration: float, out: str) -> dict:
    import aiohttp

    items = _bodies(bodies)
    count = min(len(items), int(rate * duration))
    records: list[dict[str, object]] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:

        async def send(sig: str, cid: str, body: bytes) -> None:
            sent = time.monotonic()
            status = 0
            try:
                async with session.post(
                    url + PATH,
                    data=body,
                    headers={"Content-Type": "application/json", "X-Voucherify-Signature": sig},
                ) as resp:
                    await resp.read()
                    status = resp.status
            except Exception:
                status = -1
            records.append({"cid": cid, "sent": sent, "acked": time.monotonic(), "status": status})

        tasks = []
        t0 = time.monotonic()
        for i in range(count):
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(*items[i])))
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
        secs = time.monotonic() - t0
    with open(out, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    ok = [r for r in records if 200 <= int(r["status"]) < 300]  # type: ignore[call-overload]
    return {"engine": "aiohttp-open-loop", "sent": count, "ok": len(ok), "seconds": round(secs, 2)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["closed", "rate"])
    ap.add_argument("--url", required=True)
    ap.add_argument("--bodies", required=True)
    ap.add_argument("-c", "--concurrency", type=int, default=16)
    ap.add_argument("-d", "--duration", type=float, default=10)
    ap.add_argument("--rate", type=float, default=50)
    ap.add_argument("--out", default="")
    ap.add_argument("--engine", choices=["auto", "wrk", "aiohttp"], default="auto")
    args = ap.parse_args()
    _check_url(args.url)
    duration = min(args.duration, 600)
    if args.mode == "closed":
        use_wrk = args.engine == "wrk" or (args.engine == "auto" and shutil.which("wrk"))
        if use_wrk:
            res = closed_wrk(args.url, args.bodies, args.concurrency, duration)
        else:
            res = asyncio.run(closed_aiohttp(args.url, args.bodies, args.concurrency, duration))
    else:
        res = asyncio.run(open_rate(args.url, args.bodies, args.rate, duration, args.out))
    print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
