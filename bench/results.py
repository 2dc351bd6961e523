"""The figures of a run: the progress log, statistics, and how numbers and errors are printed."""

from __future__ import annotations

import math
import re
import statistics
import sys
import time
from collections.abc import Iterable


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def median(values: Iterable[float]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def percentile(sorted_vals: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, math.ceil(q / 100 * len(sorted_vals)) - 1))
    return sorted_vals[k]


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def reason(error: str, width: int = 160) -> str:
    """The telling line of an error text (its last exception or crash line), shortened."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "Crashed reason=" in ln or re.search(r"(Error|Exception|Timeout)\b.*:", ln):
            return ln[:width]
    return (lines[0] if lines else "")[:width]


def fmt(v: float | None, unit: str = "", digits: int = 1) -> str:
    if v is None:
        return "n/a"
    if abs(v) >= 1000 and not unit.startswith("x"):
        return f"{v:,.0f}{unit}"
    return f"{v:.{digits}f}{unit}"
