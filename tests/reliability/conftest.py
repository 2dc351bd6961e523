"""Reliability fixtures: the bridge and the worker as separate processes on a real broker;
their helpers (reference totals, broker reads, figures) are in support.reliability."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.processes import Service, free_port
from support.reliability import SECRET

from streams.dev.kafka import LocalKafka
from streams.settings import Settings


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Soak items (crash-schedule seeds) run only when asked: `-m` naming `soak`, or
    CRASH_SOAK_SEEDS set (see tests/reliability/test_crash_schedules.py)."""
    if "soak" in (config.getoption("markexpr", "") or "") or os.environ.get("CRASH_SOAK_SEEDS"):
        return
    soak = [item for item in items if item.get_closest_marker("soak")]
    if soak:
        config.hook.pytest_deselected(items=soak)
        items[:] = [item for item in items if not item.get_closest_marker("soak")]


@pytest.fixture
def rsettings(settings: Settings) -> Settings:
    return settings.with_(
        webhook_secret=(SECRET,), topic_partitions=6, log_level="warning", stall_timeout_s=30
    )


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    made: list[Service] = []

    def make(
        command: str, settings: Settings, name: str | None = None, env: dict[str, str] | None = None
    ) -> Service:
        name = name or command
        if command == "worker":
            settings = settings.with_(data_dir=str(tmp_path / f"data-{name}"))
        svc = Service(command, settings, tmp_path / f"{name}.log", extra_env=dict(env or {}))
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.kill()


@pytest.fixture
def private_kafka(rsettings: Settings) -> Iterator[LocalKafka]:
    """A broker of the test's own, for a test that stops it."""
    broker = LocalKafka(free_port(), free_port(), Path(rsettings.kafka_home), "768m")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
        broker.reset()
