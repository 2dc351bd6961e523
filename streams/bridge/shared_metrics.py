"""The metrics of `--workers N` bridges, summed: whichever worker a scrape of `/metrics`
reaches answers for all of them.

Each worker writes a snapshot of its counters to `<dir>/worker-<index>.json` once a second
(and when it stops), from the event loop; `/metrics` adds its live counters to its siblings'
latest snapshots (so their part lags by up to a second). A restarted worker starts from its
predecessor's last snapshot, so the summed counters never go backwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from streams.bridge.metrics import Metrics

log = logging.getLogger("streams.bridge")

WRITE_INTERVAL_S = 1.0


class SharedMetrics:
    """One worker's part in the summed metrics."""

    def __init__(self, directory: str | Path, index: int) -> None:
        self.directory = Path(directory)
        self.index = index
        self.path = self.directory / f"worker-{index}.json"
        self._timer: asyncio.TimerHandle | None = None
        self.extra: dict[str, float] = {}

    def resume(self, metrics: Metrics) -> None:
        """Continue from the last snapshot of this worker's slot (its predecessor's)."""
        snap = self._read(self.path)
        if snap is not None:
            snap["metrics"]["in_flight"] = 0  # those requests died with it
            metrics.add(snap["metrics"])

    def start(self, metrics: Metrics, extra: Any) -> None:
        """Write a snapshot now and every WRITE_INTERVAL_S; `extra()` gives the gauges."""
        loop = asyncio.get_running_loop()

        def tick() -> None:
            self.write(metrics, extra())
            self._timer = loop.call_later(WRITE_INTERVAL_S, tick)

        tick()

    def stop(self, metrics: Metrics, extra: dict[str, float]) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        snap = metrics.snapshot()
        snap["in_flight"] = 0
        self.write_snapshot(snap, extra)

    def write(self, metrics: Metrics, extra: dict[str, float]) -> None:
        self.write_snapshot(metrics.snapshot(), extra)

    def write_snapshot(self, snap: dict[str, Any], extra: dict[str, float]) -> None:
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps({"pid": os.getpid(), "metrics": snap, "extra": extra}))
            tmp.replace(self.path)  # atomic: a reader sees the old or the new snapshot
        except OSError as exc:
            log.warning("cannot write the worker's metrics snapshot: %s", exc)

    def combined(self, metrics: Metrics, extra: dict[str, float]) -> tuple[Metrics, dict]:
        """These live metrics plus every sibling's latest snapshot; the gauges combined
        (queue lengths summed, `reachable`/`registered` only when true for all)."""
        total = Metrics()
        total.add(metrics.snapshot())
        extras = [extra]
        for path in sorted(self.directory.glob("worker-*.json")):
            if path == self.path:
                continue
            snap = self._read(path)
            if snap is None:
                continue
            total.add(snap["metrics"])
            extras.append(snap.get("extra", {}))
        out: dict[str, float] = {}
        for name in extra:
            values = [e[name] for e in extras if name in e]
            out[name] = sum(values) if name.endswith("_length") else min(values)
        out["bridge_workers"] = float(len(extras))
        return total, out

    @staticmethod
    def _read(path: Path) -> dict[str, Any] | None:
        with contextlib.suppress(OSError, ValueError):
            data: dict[str, Any] = json.loads(path.read_text())
            return data
        return None
