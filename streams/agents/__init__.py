"""Faust agents: dedup (keyed by customer id) and the two re-keyed aggregators."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import faust

from streams.agents.health import Health
from streams.agents.metrics import RESTARTS_FILE, WorkerMetrics
from streams.kafka.batch_producer import WorkerProducer
from streams.settings import Settings

if TYPE_CHECKING:
    from streams.http_auth import HttpAuth

log = logging.getLogger(__name__)

#: Exit code of a worker that exits to be restarted (a stall, or a batch it could not handle).
EXIT_FOR_RESTART = 70


#: Where exits are counted by reason (the app's data dir; set by streams.app.build_app).
_restarts_dir: Path | None = None


def count_restarts_in(data_dir: Path) -> None:
    global _restarts_dir
    _restarts_dir = data_dir


def _count_restart(reason: str) -> None:
    """Add one exit for `reason` to the data dir's tally, read by the next process's metrics."""
    if _restarts_dir is None:
        return
    path = _restarts_dir / RESTARTS_FILE
    with contextlib.suppress(Exception):  # counting must never keep the worker from exiting
        try:
            counts = json.loads(path.read_text())
        except (OSError, ValueError):
            counts = {}
        counts[reason] = int(counts.get(reason, 0)) + 1
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(counts))
        tmp.replace(path)


def exit_for_restart(
    message: str, *args: Any, exc_info: bool = False, reason: str = "batch_failed"
) -> NoReturn:
    """Log and exit at once, committing nothing more: after the supervisor (compose, systemd,
    Kubernetes, the demo, the tests) restarts the worker, it reads again from the last commit,
    and every step is idempotent (see streams.domain.state). `reason` is counted
    (`streams_worker_restarts_total`)."""
    _count_restart(reason)
    log.critical(
        message + f": exiting with code {EXIT_FOR_RESTART} to be restarted",
        *args,
        exc_info=exc_info,
        extra={"reason": reason},
    )
    logging.shutdown()
    os._exit(EXIT_FOR_RESTART)


# Source tag of a dedup input record: partition * 2 + topic (0 = input, 1 = its re-key topic).
INPUT, INPUT_REKEYED = 0, 1


@dataclass
class Topology:
    """Everything the agents and views share: built once per app by streams.app.build_app."""

    settings: Settings
    app: faust.App
    codec: Any
    input: faust.TopicT
    input_rekeyed: faust.TopicT
    loyalty_deltas: faust.TopicT
    referral_deltas: faust.TopicT
    loyalty_out: faust.TopicT
    referral_out: faust.TopicT
    deletions_out: faust.TopicT
    seen: Any
    loyalty: Any
    referrals: Any
    agents: dict[str, Any]
    producer: WorkerProducer
    health: Health = field(default_factory=Health)
    counts: Counter[str] = field(default_factory=Counter)  # e.g. late_deletions
    metrics: WorkerMetrics = field(default_factory=WorkerMetrics)
    http_auth: HttpAuth | None = None  # credentials the web pages ask for (None: off)
