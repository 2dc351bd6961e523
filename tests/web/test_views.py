"""The analytics views refuse to answer (503) while the tables are incomplete: an empty or
partial answer would look like real totals (no broker: the app is never started)."""

from __future__ import annotations

from pathlib import Path

from streams.agents.health import not_ready
from streams.app import build_app
from streams.settings import Settings


def test_not_ready_until_recovered_and_while_rebalancing(tmp_path: Path) -> None:
    app = build_app(Settings.from_env({}, app_id="views-unit", data_dir=str(tmp_path)))
    app.finalize()
    assert not_ready(app) == "recovering tables from their changelogs"  # never recovered yet
    app.tables.recovery.completed.set()  # type: ignore[attr-defined]
    assert not_ready(app) is None
    app.in_recovery = True
    assert not_ready(app) == "recovering tables from their changelogs"
    app.in_recovery = False
    app.rebalancing = True
    assert not_ready(app) == "rebalancing"
