"""Render the figures block of docs/RELIABILITY.md from the reliability suite's last run.

    python -m pytest -m reliability          # writes .cache/reliability-figures.json
    python docs/render_reliability_figures.py [FIGURES_JSON]

Replaces what stands between `<!-- figures:start -->` and `<!-- figures:end -->`.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "RELIABILITY.md"


def render(f: dict[str, Any]) -> str:
    rows = [
        "| run | sent | 2xx (acknowledged) | lost | double-counted | faults survived | other |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    if k := f.get("load_and_worker_kills"):
        rows.append(
            f"| load + worker SIGKILLs ({k['at']}) | {k['requests']} requests, "
            f"{k['webhooks_sent']} webhooks, {k['distinct_customers']} customers | "
            f"{k['acknowledged']} | {k['lost']} | {k['double_counted']} | "
            f"{k['worker_sigkills_survived']} worker SIGKILLs | "
            f"{k['repeated_facts']} identical repeated facts |"
        )
    if b := f.get("broker_restart"):
        rows.append(
            f"| broker stop/start under load ({b['at']}) | {b['requests']} requests, "
            f"{b['webhooks_sent']} webhooks | {b['acknowledged']} | {b['lost']} | "
            f"{b['double_counted']} | {b['broker_restarts_survived']} broker restart, 503 "
            f"answered {b['answered_503']} times, {b['worker_restarts_needed']} worker restarts "
            f"needed | {b['repeated_facts']} identical repeated facts |"
        )
    if c := f.get("crash_schedules"):
        failed = ", ".join(map(str, c["failed_seeds"])) or "none"
        rows.append(
            f"| crash schedules ({c['at']}) | {c['schedules_run']} seeded schedules, "
            f"{c['cpu_hogs']} CPU hogs | — | — | — | {c['kills']} worker SIGKILLs | "
            f"{c['failures']} schedules failed (seeds: {failed}) |"
        )
    out = "\n".join(rows)
    if z := f.get("fuzz"):
        out += (
            f"\n| fuzz ({z['at']}) | {z['cases']} mutated requests | {z['answers'].get('200', 0)}"
            f" | — | — | {z['server_errors']} 5xx, {z['crashes']} crashes | published "
            f"{z['published']} (= accepted), dead-lettered {z['dead_lettered']} (= 400+422) |"
        )
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(z["answers"].items()))
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(z["by_kind"].items()))
        out += f"\n\nFuzz answers: {answers}.\nCases by kind: {kinds}."
    return out


def main() -> int:
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / ".cache" / "reliability-figures.json"
    figures = json.loads(src.read_text())
    doc = DOC.read_text()
    new, n = re.subn(
        r"(<!-- figures:start -->\n).*?(\n<!-- figures:end -->)",
        lambda m: m.group(1) + render(figures) + m.group(2),
        doc,
        flags=re.S,
    )
    if n != 1:
        raise SystemExit(f"{DOC}: no figures block")
    DOC.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
