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
    rows += cluster_rows(f)
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


def _logs(r: dict[str, Any]) -> str:
    return (
        f"ERROR lines: worker {r['worker_error_lines']} ({r['worker_summary_lines']} summaries), "
        f"bridge {r['bridge_error_lines']} ({r['bridge_summary_lines']} summaries)"
    )


def cluster_rows(f: dict[str, Any]) -> list[str]:
    """The three-broker cluster's runs (tests/reliability/test_cluster.py)."""
    rows = []
    if k := f.get("cluster_leader_kills"):
        kills = "; ".join(
            f"SIGKILL node {x['node']} ({x['role']}) after {x['acked_before']} 2xx, back and in "
            f"sync in {x['down_s'] + x['in_sync_after_s']:.0f} s, {x['acked_while_down']} 2xx "
            f"meanwhile, longest pause without a 2xx {x['longest_ack_pause_s']} s"
            for x in k["kills"]
        )
        rows.append(
            f"| 3 brokers: leader kills under load ({k['at']}) | {k['requests']} requests, "
            f"{k['webhooks_sent']} webhooks, {k['distinct_customers']} customers, concurrency "
            f"{k['concurrency']} | {k['acknowledged']} | {k['lost']} | {k['double_counted']} | "
            f"{kills}; 503 answered {k['answered_503']} times, {k['worker_restarts_needed']} "
            f"worker restarts needed | {k['repeated_facts']} identical repeated facts; "
            f"{_logs(k)} |"
        )
    if b := f.get("cluster_below_min_isr"):
        rows.append(
            f"| 3 brokers: 2 stopped, below min.insync.replicas ({b['at']}) | "
            f"{b['answered_503_below_min_isr']} probes while below, {b['acknowledged']} webhooks "
            f"before, with one broker down ({b['acked_one_broker_down']}) and after | "
            f"{b['acknowledged']} (0 while below) | {b['lost']} | {b['double_counted']} | "
            f"{b['below_min_isr_s']} s below min ISR: only 503 with Retry-After; first 2xx "
            f"{b['first_2xx_after_brokers_back_s']} s after the brokers were back, no bridge "
            f"restart, {b['worker_restarts_needed']} worker restarts needed | "
            f"{b['repeated_facts']} identical repeated facts; {_logs(b)} |"
        )
    if r := f.get("cluster_rolling_restart"):
        restarts = ", ".join(
            f"node {x['node']} {x['restart_s'] + x['in_sync_after_s']:.0f} s" for x in r["restarts"]
        )
        rows.append(
            f"| 3 brokers: rolling restart under load ({r['at']}) | {r['requests']} requests, "
            f"{r['webhooks_sent']} webhooks, {r['distinct_customers']} customers | "
            f"{r['acknowledged']} | {r['lost']} | {r['double_counted']} | each broker SIGTERMed "
            f"and back in the ISR in turn ({restarts}); 503 answered {r['answered_503']} times "
            f"(retried), longest pause without a 2xx {r['longest_ack_pause_s']} s, "
            f"{r['worker_restarts_needed']} worker restarts needed | "
            f"{r['repeated_facts']} identical repeated facts; {_logs(r)} |"
        )
    return rows


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
