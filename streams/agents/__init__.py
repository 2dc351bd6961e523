"""Faust agents: dedup (keyed by customer id) and the two re-keyed aggregators."""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, NoReturn

import faust

from streams.agents.health import Health
from streams.kafka.batch_producer import WorkerProducer
from streams.settings import Settings

log = logging.getLogger(__name__)

#: Exit code of a worker that exits to be restarted (a stall, or a batch it could not handle).
EXIT_FOR_RESTART = 70


def exit_for_restart(message: str, *args: Any, exc_info: bool = False) -> NoReturn:
    """Log and exit at once, committing nothing more: after the supervisor (compose, systemd,
    Kubernetes, the demo, the tests) restarts the worker, it reads again from the last commit,
    and every step is idempotent (see streams.domain.state)."""
    log.critical(
        message + f": exiting with code {EXIT_FOR_RESTART} to be restarted",
        *args,
        exc_info=exc_info,
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
