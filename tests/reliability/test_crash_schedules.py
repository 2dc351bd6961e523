"""Crash schedules (issue #11): seeded SIGKILL schedules; afterwards every count is exact.

Each seed draws a schedule (see tests/support/crash_schedule.py): about 460 signed webhooks
(about 410 customers, the rest re-deliveries) sent in four chunks, and after each of the first
three a SIGKILL of a worker's process group at a drawn moment (mid-batch, group join, start-up,
table recovery, twice within a session timeout; a third of the seeds run two workers). Then:
(a) the app's group committed every input and internal partition to its end, (b) the facts,
(c) the compacted outputs and (d) the web views equal the reference.

Run:
  python -m pytest tests/reliability/test_crash_schedules.py     # the normal seeds (NORMAL_SEEDS)
  python -m pytest -m soak                                       # the soak seeds, 0..49
  CRASH_SOAK_SEEDS=0-199 python -m pytest -m soak                # other soak seeds ("3,7,10-19")

Soak seeds are deselected unless `-m` names the `soak` marker or CRASH_SOAK_SEEDS is set
(tests/reliability/conftest.py), so a plain `python -m pytest` never runs them.
Environment: CRASH_CPU_HOGS (busy-loop processes beside each schedule, default 2),
CRASH_SESSION_TIMEOUT_S (the workers' consumer session timeout; default the worker's own),
CRASH_LOG_DIR (where the logs of failing schedules are kept; default .cache/crash-logs),
CRASH_MOMENTS (comma-separated kill moments to draw from; default all), CRASH_WORKERS (1 or 2:
fix the number of workers; default drawn), CRASH_SEND_WAIT (`ready` or `answering`: what every
send waits for; default drawn). The schedule of issue #11's bug report is
`CRASH_MOMENTS=mid_batch CRASH_WORKERS=1 CRASH_SEND_WAIT=answering`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.crash_schedule import MOMENTS as ALL_MOMENTS
from support.crash_schedule import generate, run_schedule
from support.processes import Service
from support.reliability import record_figures

from streams.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.reliability, pytest.mark.timeout(1500)]

ROOT = Path(__file__).resolve().parents[2]
#: Seeds of a normal run: together they draw every kill moment, with one and two workers.
NORMAL_SEEDS = (0, 1, 2, 3, 4, 5)
HOGS = int(os.environ.get("CRASH_CPU_HOGS", "2"))
_SESSION = os.environ.get("CRASH_SESSION_TIMEOUT_S")
SESSION_TIMEOUT_S = float(_SESSION) if _SESSION else None
MOMENTS = tuple(m for m in os.environ.get("CRASH_MOMENTS", ",".join(ALL_MOMENTS)).split(",") if m)
WORKERS = int(os.environ.get("CRASH_WORKERS") or 0)
SEND_WAIT = os.environ.get("CRASH_SEND_WAIT", "")
LOG_DIR = Path(os.environ.get("CRASH_LOG_DIR", ROOT / ".cache" / "crash-logs"))


def parse_seeds(text: str) -> list[int]:
    """ "0-49" or "3,7,10-19" -> the seeds."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        low, _, high = part.partition("-")
        seeds.extend(range(int(low), int(high or low) + 1))
    return seeds


SOAK_SEEDS = parse_seeds(os.environ.get("CRASH_SOAK_SEEDS") or "0-49")
SEEDS = [pytest.param(s, id=f"seed-{s}") for s in NORMAL_SEEDS] + [
    pytest.param(s, id=f"soak-{s}", marks=pytest.mark.soak) for s in SOAK_SEEDS
]


@pytest.fixture(scope="module")
def figures() -> Iterator[dict[str, Any]]:
    totals: dict[str, Any] = {
        "schedules_run": 0,
        "kills": 0,
        "self_exits": 0,  # exits asking for a restart (70): safe, but each one is a question
        "failures": 0,
        "failed_seeds": [],
    }
    yield totals
    if totals["schedules_run"]:
        record_figures("crash_schedules", {**totals, "cpu_hogs": HOGS})


@pytest.mark.parametrize("seed", SEEDS)
def test_crash_schedule(
    seed: int,
    rsettings: Settings,
    services: Callable[..., Service],
    figures: dict[str, Any],
) -> None:
    schedule = generate(seed, workers=WORKERS, moments=MOMENTS, send_wait=SEND_WAIT)
    result = run_schedule(
        schedule,
        rsettings.with_(log_level="info"),  # the assignment and recovery lines name a failure
        services,
        hogs=HOGS,
        session_timeout_s=SESSION_TIMEOUT_S,
        log_dir=LOG_DIR,
    )
    figures["schedules_run"] += 1
    figures["kills"] += result.kills
    figures["self_exits"] += len(result.self_exits)
    if result.problems:
        figures["failures"] += 1
        figures["failed_seeds"].append(seed)
    assert not result.problems, result.report
