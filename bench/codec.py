"""Part 5 — Codec: µs per Avro encode and decode against JSON, by calling bench/codec_bench.py
(owned separately; its own method: median of repeated timeit runs) and parsing its lines."""

from __future__ import annotations

import os
import re
import subprocess
from typing import Any

from bench.paths import BENCH, PY, ROOT
from bench.results import log
from bench.venvs import baseline_env

LINE = re.compile(r"^\s+(?P<name>[a-z_. ]+?)\s+(?P<us>[0-9.]+) µs$")
RATIO = re.compile(r"^\s+(?P<name>(encode|decode) / json\.\w+)\s+(?P<x>[0-9.]+)x$")


def run(broker: Any, quick: bool) -> dict[str, Any]:
    script = BENCH / "codec_bench.py"
    if not script.exists():
        return {"error": "bench/codec_bench.py is missing (TODO: its owner)"}
    args = ["--repeat", "3", "--number", "1000"] if quick else ["--repeat", "7"]
    proc = subprocess.run(
        [PY, str(script), *args],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
        env={**os.environ, **baseline_env()},
    )
    if proc.returncode != 0:
        return {"error": (proc.stdout + proc.stderr)[-3000:]}
    res: dict[str, Any] = {"us": {}, "ratios": {}, "output": proc.stdout}
    for line in proc.stdout.splitlines():
        if m := LINE.match(line):
            res["us"][m["name"].strip()] = float(m["us"])
        elif m := RATIO.match(line):
            res["ratios"][m["name"]] = float(m["x"])
    log(f"codec: {res['us']}")
    return res


def summary(res: dict[str, Any]) -> list[str]:
    lines = ["Codec (bench/codec_bench.py, median µs per operation):"]
    if "error" in res:
        return [*lines, f"  FAILED: {res['error'][-300:]}"]
    lines += ["  " + line.strip() for line in res["output"].splitlines() if line.strip()]
    return lines
