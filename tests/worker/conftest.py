"""Fixtures of the worker tests; their helpers are in support.worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.worker import Worker

from streams.app import ensure_external_topics
from streams.settings import Settings


@pytest.fixture
def workers(settings: Settings, tmp_path: Path) -> Iterator[Any]:
    """Factory of started workers (each its own data dir and port); all stopped at the end."""
    started: list[Worker] = []
    ensure_external_topics(settings)

    def make(name: str = "w1", data_dir: Path | None = None, **changes: Any) -> Worker:
        s = settings.with_(**changes) if changes else settings
        if changes:
            ensure_external_topics(s)
        w = Worker(s, data_dir or tmp_path / f"data-{name}", tmp_path / f"{name}.log").start()
        started.append(w)
        return w

    yield make
    for w in started:
        w.kill()
