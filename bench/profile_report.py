"""Summarise a py-spy collapsed-stack profile: where the samples are, by function.

    python bench/profile_report.py bench/results/profiles/bridge-c64-<time>.txt [--top 25]

Inclusive share = samples with the function anywhere on the stack; self share = samples with
it on top. Idle samples (the event loop waiting in select/epoll) are counted apart.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

IDLE_TOP = ("select (selectors.py", "poll (selectors.py", "_poll ", "wait (threading.py")


def frame_name(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "function (module.py)"
    m = re.match(r"(.*?) \((?:.*/)?([^/:]+)(?::\d+)?\)$", frame.strip())
    return f"{m.group(1)} ({m.group(2)})" if m else frame.strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile", type=Path)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    inclusive: Counter[str] = Counter()
    self_: Counter[str] = Counter()
    total = idle = 0
    for line in args.profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [frame_name(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += n
        if any(frames[-1].startswith(t) for t in IDLE_TOP):
            idle += n
            continue
        for name in set(frames):
            inclusive[name] += n
        self_[frames[-1]] += n
    busy = total - idle
    print(f"{args.profile.name}: {total} samples, {idle} idle ({100 * idle / max(1, total):.0f}%)")
    print(f"\nInclusive, % of busy samples ({busy}):")
    for name, n in inclusive.most_common(args.top):
        print(f"  {100 * n / max(1, busy):5.1f}%  {name}")
    print("\nSelf, % of busy samples:")
    for name, n in self_.most_common(args.top):
        print(f"  {100 * n / max(1, busy):5.1f}%  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
