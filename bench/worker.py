"""Part 2 — Worker: events/s from a pre-filled topic until every analytics output has caught up.

Variants, each on its own copy of the same pre-filled input (6 partitions, ~10% duplicate
deliveries), one process each:

- `faust-exactly_once` / `faust-at_least_once`: `voucherify-streams worker` (RocksDB store);
- `plain`: bench/baselines/plain_consumer.py — a confluent-kafka loop with in-memory dicts
  (the Python limit, no fault tolerance);
- `quix-at-least-once` / `quix-exactly-once`: bench/baselines/quix_pipeline.py (Quix Streams).

Figures: `events_per_s` (the headline) is all events over the time from the process launch
until every analytics output has caught up; `events_per_s_after_first_output` starts the clock
at the first record on any analytics topic; `events_per_s_total_all_10_90` is the rate while the
`total:all` record went from 10% to 90% of the customers — a diagnostic only: Quix Streams reads
the whole pre-filled input before its re-partitioned stage starts (one consumer, a 64 MB
read-ahead), so that window covers only its last stage and flatters it.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.broker import (
    Broker,
    cleanup_topics,
    ensure_topics_for,
    produce_all,
    security_env,
    settings_for,
)
from bench.catchup import CatchUp
from bench.datasets import Dataset, dataset
from bench.group_watch import GroupWatch
from bench.paths import BENCH, PY
from bench.processes import (
    AgentCrashed,
    Proc,
    cpu_seconds,
    profile,
    profile_done,
    spawn,
    start_worker,
)
from bench.results import fmt, log, ratio, reason
from bench.venvs import baseline_env, venv_python

VARIANTS = (
    "faust-exactly_once",
    "faust-at_least_once",
    "plain",
    "quix-at-least-once",
    "quix-exactly-once",
)


def launch(kind: str, settings: Any, name: str, data_dir: Path) -> Proc:
    if kind.startswith("faust-"):
        return start_worker(settings, name=name, data_dir=data_dir)
    # The baselines take the same connection, topic prefix and group arguments.
    common_args = [
        "--bootstrap",
        settings.bootstrap_servers,
        "--prefix",
        settings.topic_prefix,
        "--group",
        settings.app_id,
    ]
    if kind == "plain":
        script, py, extra = "plain_consumer.py", PY, []
    elif kind.startswith("quix-"):
        guarantee = kind.removeprefix("quix-")
        script, py = "quix_pipeline.py", str(venv_python("quix"))
        extra = ["--guarantee", guarantee, "--state-dir", str(data_dir)]
    else:
        raise ValueError(kind)
    argv = [py, str(BENCH / "baselines" / script), *common_args, *extra]
    return spawn(name, argv, {**baseline_env(), **security_env(settings)})


def run_variant(
    broker: Broker,
    ds: Dataset,
    kind: str,
    processes: int = 1,
    timeout: float = 900,
    partitions: int | None = None,
) -> dict[str, Any]:
    """`attempt`, retried twice (fresh topics) when a Faust agent crashed; crashes are kept."""
    crashes = []
    for _ in range(3):
        out = attempt(broker, ds, kind, processes, timeout, partitions)
        if not out.get("agent_crashed"):
            break
        crashes.append(out["error"][:600])
        log(f"worker {kind}: an agent crashed (attempt {len(crashes)}); fresh topics")
    if crashes:
        out["agent_crashes"] = crashes
    return out


def attempt(
    broker: Broker,
    ds: Dataset,
    kind: str,
    processes: int = 1,
    timeout: float = 900,
    partitions: int | None = None,
) -> dict[str, Any]:
    """Pre-fill a fresh input topic, start `processes` processes of `kind`, time the catch-up.

    With `partitions`, every topic of the variant has that many (else the default, 6). Faust
    variants then also get the consumer group's rebalance timeline (bench.group_watch)."""
    changes: dict[str, Any] = {}
    if kind.startswith("faust-"):
        changes["processing_guarantee"] = kind.removeprefix("faust-")
    if partitions is not None:
        changes["topic_partitions"] = partitions
    settings = settings_for(broker, kind.split("-")[0], **changes)
    data_root = Path(tempfile.mkdtemp(prefix="vs-bench-data-"))
    procs: list[Proc] = []
    watch: CatchUp | None = None
    group: GroupWatch | None = None
    settled: dict[str, float] = {}
    with cleanup_topics(settings):
        try:
            ensure_topics_for(settings)
            prefill_s = produce_all(settings, ds.keys, ds.values)
            watch = CatchUp(settings, ds)
            if kind.startswith("faust-") and partitions is not None:

                def on_settled() -> None:  # the start-up's CPU, and how far the outputs got
                    settled["cpu"] = sum(cpu_seconds(p.pid) or 0.0 for p in procs)
                    settled["customers"] = watch.loyalty[1] if watch and watch.loyalty else 0

                group = GroupWatch(
                    settings.bootstrap_servers,
                    settings.app_id,
                    settings.topic(settings.customer_deleted_topic),
                    settings.topic_partitions,
                    processes,
                    on_settled,
                )
                group.start()
            t0 = time.monotonic()
            for i in range(processes):
                p = launch(kind, settings, f"{kind}-{i}", data_root / f"p{i}")
                procs.append(p)
            # Past the start-up (imports and the app's set-up are not the per-event cost).
            spy = profile(procs[0], f"{kind}-x{processes}", 60, delay_s=7)
            t_done = watch.wait(timeout, procs)
            cpu_each = [cpu_seconds(p.pid) or 0.0 for p in procs]
            cpu = sum(cpu_each)
            if spy is not None:  # end the recording with the process (py-spy then writes it)
                for p in procs:
                    p.stop()
                profile_done(spy)
            first = watch.first_output or t0
            n = len(ds.values)
            out: dict[str, Any] = {
                "variant": kind,
                "processes": processes,
                "events": n,
                "customers": ds.distinct,
                "prefill_s": round(prefill_s, 2),
                "startup_s": round(first - t0, 2),
                "elapsed_s": round(t_done - t0, 2),
                # The headline: from launch until every analytics output has caught up.
                "events_per_s": round(n / (t_done - t0), 1),
                "events_per_s_after_first_output": _round(n / max(1e-9, t_done - first)),
                "events_per_s_total_all_10_90": _round(watch.steady_events_per_s()),
                "output_records": watch.outputs,
                "cpu_s": round(cpu, 1),
                "cpu_s_per_process": [round(c, 1) for c in cpu_each],
                # All processes' CPU (utime + stime) over the whole run, start-up included.
                "cpu_s_per_100k_events": round(cpu / n * 100_000, 2),
            }
            if group is not None:
                group.stop()
                out["partitions"] = settings.topic_partitions
                out["group"] = group.result(t0)
                if settled:
                    # From the (last) settled group on: the CPU of handling events, without the
                    # processes' start-up and the rebalance. Events before it are estimated
                    # from the customers total:all showed then (it trails: conservative).
                    before = settled["customers"] / ds.distinct * n
                    out["cpu_s_per_100k_events_after_settled"] = round(
                        (cpu - settled["cpu"]) / max(1.0, n - before) * 100_000, 2
                    )
            log(
                f"worker {kind} x{processes}: {fmt(out['events_per_s'])} events/s "
                f"({out['elapsed_s']}s, first output after {out['startup_s']}s)"
            )
            return out
        except Exception as exc:
            log(f"worker {kind}: FAILED: {exc}")
            return {
                "variant": kind,
                "processes": processes,
                "error": str(exc)[-3000:],
                "agent_crashed": isinstance(exc, AgentCrashed),
            }
        finally:
            for p in procs:
                p.stop()
            if watch is not None:
                watch.close()
            if group is not None:
                group.stop()
            shutil.rmtree(data_root, ignore_errors=True)


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


def run(
    broker: Broker,
    quick: bool,
    variants: tuple[str, ...] = VARIANTS,
    events: int | None = None,
) -> dict[str, Any]:
    n = events or (2_000 if quick else 100_000)
    ds = dataset(n)
    results = [run_variant(broker, ds, v, timeout=300 if quick else 1800) for v in variants]
    by = {r["variant"]: r.get("events_per_s") for r in results}
    ratios = {}
    for mine in ("faust-exactly_once", "faust-at_least_once"):
        for v in variants:
            if v != mine and mine in by and not v.startswith("faust-"):
                ratios[f"{mine} / {v}"] = ratio(by.get(mine), by[v])
    ratios["faust-exactly_once / faust-at_least_once"] = ratio(
        by.get("faust-exactly_once"), by.get("faust-at_least_once")
    )
    return {"events": n, "customers": ds.distinct, "variants": results, "ratios": ratios}


def summary(res: dict[str, Any]) -> list[str]:
    lines = [f"Worker ({res['events']:,} events, {res['customers']:,} customers, 1 process):"]
    for r in res["variants"]:
        if "error" in r:
            lines.append(f"  {r['variant']:<22} FAILED: {reason(r['error'])}")
            continue
        lines.append(
            f"  {r['variant']:<22} {fmt(r['events_per_s'])} events/s"
            f"  (after the first output {fmt(r['events_per_s_after_first_output'], '/s')};"
            f" first output {r['startup_s']}s; total:all 10-90%"
            f" {fmt(r['events_per_s_total_all_10_90'], '/s')}; cpu {r['cpu_s']}s)"
            + (
                f" after {len(r['agent_crashes'])} agent crash(es)"
                if r.get("agent_crashes")
                else ""
            )
        )
    for k, v in res["ratios"].items():
        lines.append(f"  ratio {k}: {fmt(v, 'x', 2)}")
    return lines
