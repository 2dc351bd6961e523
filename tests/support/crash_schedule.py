"""Crash schedules: seeded random SIGKILL schedules against real worker processes.

A schedule (drawn from a seed, so a failure names it exactly) sends the webhooks of a run in
chunks through the bridge and, between chunks, SIGKILLs a worker's process group at one of these
moments, with every delay drawn from the seed:

- ``mid_batch``: shortly after a chunk was sent, while the worker processes it (the bug report
  of issue #11: killed 0.2-1.5 s after the chunk, restarted 0.5-3 s later);
- ``join``: as ``mid_batch``, restarted at once, so the new worker joins the group while the
  killed member is still in it;
- ``startup``: restarted, then killed again before its web port answers;
- ``recovery``: restarted, then killed right after it got its partitions, while its tables
  recover from their changelogs (the log says whether recovery had completed);
- ``double``: restarted, then killed again within one session timeout of the first kill.

A third of the seeds run two workers in the same app and each kill picks one of them (the other
keeps running). The next chunk is sent 1-4 s after every worker is ready (views answer 200), or
for a quarter of the chunks as soon as its web server answers at all (often while it still waits
for its group). Optional CPU hogs (busy loops) run
beside it all to widen race windows. After the schedule `Run.verify` checks exactly: every input
and internal partition committed to its end, the facts, the compacted outputs and the web views
against the reference computed from the acknowledged webhooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from streams.agents.watchdog import group_lag
from streams.app import INTERNAL
from streams.dev.demo.generator import Webhook, webhooks
from streams.dev.process import ChildError
from streams.domain.deltas import LOYALTY_COUNTERS, REFERRAL_COUNTERS
from streams.settings import Settings
from support.processes import Service
from support.reliability import (
    SECRET,
    as_view,
    expected_totals,
    fact_counts,
    full_view,
    latest_per_key,
    start_bridge,
    view_diff,
    wait_for_totals,
)
from support.senders import Outcome, send

log = logging.getLogger(__name__)

MOMENTS = ("mid_batch", "join", "startup", "recovery", "double")
VIEW = "/analytics/loyalty"
#: Faust's default consumer session timeout (the worker sets none of its own today).
FAUST_SESSION_TIMEOUT_S = 60.0


# --- the session timeout: the one place to wire it ---------------------------------------------
def with_session_timeout(
    settings: Settings, session_timeout_s: float | None
) -> tuple[Settings, dict[str, str]]:
    """The worker's settings and extra environment for a consumer session timeout (None: the
    worker's default).

    streams.settings has no session-timeout setting yet, so Faust's own BROKER_SESSION_TIMEOUT
    variable carries it. Once Settings has a field for it (`session_timeout_s`), that is used
    instead; if it gets another name, change it here only.
    """
    if session_timeout_s is None:
        return settings, {}
    if "session_timeout_s" in {f.name for f in fields(Settings)}:
        return settings.with_(session_timeout_s=session_timeout_s), {}
    return settings, {"BROKER_SESSION_TIMEOUT": str(session_timeout_s)}


def session_timeout_of(settings: Settings, session_timeout_s: float | None) -> float:
    """The session timeout the worker will run with (for the harness's own waits)."""
    if session_timeout_s is not None:
        return session_timeout_s
    return float(getattr(settings, "session_timeout_s", FAUST_SESSION_TIMEOUT_S))


# --- schedules -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Send:
    """Send chunk `chunk` `after_s` after every worker is `wait`: "ready" (its views answer
    200: in the group, tables recovered, so a kill finds it processing) or "answering" (its web
    server answers at all, often while it still waits for its group)."""

    chunk: int
    after_s: float
    wait: str = "ready"

    def describe(self) -> str:
        return f"send chunk {self.chunk} {self.after_s:.2f}s after the workers are {self.wait}"


@dataclass(frozen=True)
class Kill:
    """SIGKILL worker `worker` `delay_s` after the previous step, restart it `down_s` later;
    `again_s` times the second kill of the startup, recovery and double moments."""

    moment: str
    worker: int
    delay_s: float
    down_s: float
    again_s: float = 0.0

    def describe(self) -> str:
        text = (
            f"kill worker-{self.worker} ({self.moment}) after {self.delay_s:.2f}s,"
            f" restart after {self.down_s:.2f}s"
        )
        if self.moment == "startup":
            text += f", kill again {self.again_s:.2f}s after the restart (before its web answers)"
        elif self.moment == "recovery":
            text += f", kill again {self.again_s:.2f}s after it got its partitions (recovery)"
        elif self.moment == "double":
            text += f", kill again {self.again_s:.2f}s after its web answers"
        return text


Step = Send | Kill


@dataclass(frozen=True)
class Schedule:
    seed: int
    workers: int
    hooks: int
    duplicates: float
    steps: tuple[Step, ...]

    def chunks(self) -> list[list[Webhook]]:
        """The webhooks (with re-deliveries of earlier customers), split in order."""
        hooks = list(webhooks(self.hooks, duplicates=self.duplicates, seed=self.seed))
        n = sum(isinstance(s, Send) for s in self.steps)
        size = math.ceil(len(hooks) / n)
        return [hooks[i * size : (i + 1) * size] for i in range(n)]

    def describe(self) -> str:
        head = (
            f"schedule seed={self.seed}: {self.workers} worker(s), {self.hooks} webhooks"
            f" ({self.duplicates:.0%} re-deliveries)"
        )
        return "\n".join([head, *(f"  {i}. {s.describe()}" for i, s in enumerate(self.steps))])


def generate(
    seed: int,
    chunks: int = 4,
    hooks: int = 460,
    duplicates: float = 0.12,
    workers: int = 0,
    moments: Sequence[str] = MOMENTS,
    send_wait: str = "",
) -> Schedule:
    """The schedule of `seed`: `chunks` sends with a kill after each but the last, at one of
    `moments` (`workers` 0: one or two workers, drawn from the seed; `send_wait` "": each
    send's wait drawn, else "ready" or "answering" for all)."""
    if send_wait not in {"", "ready", "answering"}:
        raise ValueError(f"send_wait: expected ready or answering, got {send_wait!r}")
    unknown = set(moments) - set(MOMENTS)
    if unknown or not moments:
        raise ValueError(f"moments: expected some of {MOMENTS}, got {tuple(moments)}")
    rng = random.Random(seed)
    n_workers = workers or (2 if rng.random() < 1 / 3 else 1)
    steps: list[Step] = []
    for chunk in range(chunks):
        wait = "ready" if rng.random() < 0.75 else "answering"
        wait = send_wait or wait  # drawn anyway: the other draws stay those of the seed
        steps.append(Send(chunk, rng.uniform(1.0, 4.0), wait))
        if chunk == chunks - 1:
            break
        moment = rng.choice(list(moments))
        target = rng.randrange(n_workers)
        delay = rng.uniform(0.2, 1.5)
        if moment == "join":
            steps.append(Kill(moment, target, delay, rng.uniform(0.05, 0.4)))
        elif moment == "startup":
            steps.append(Kill(moment, target, delay, rng.uniform(0.5, 3.0), rng.uniform(0.1, 1.0)))
        elif moment == "recovery":
            steps.append(Kill(moment, target, delay, rng.uniform(0.5, 3.0), rng.uniform(0.0, 0.3)))
        elif moment == "double":
            steps.append(Kill(moment, target, delay, rng.uniform(0.5, 3.0), rng.uniform(1.0, 6.0)))
        else:
            steps.append(Kill(moment, target, delay, rng.uniform(0.5, 3.0)))
    return Schedule(seed, n_workers, hooks, duplicates, tuple(steps))


# --- running ---------------------------------------------------------------------------------
class Timeline:
    """Timestamped log lines of one run (also sent to the `logging` log as they happen)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.lines: list[str] = []

    def __call__(self, message: str, *args: Any) -> None:
        text = message % args if args else message
        stamp = time.strftime("%H:%M:%S", time.localtime())
        line = f"{stamp} +{time.monotonic() - self.t0:7.2f}s {text}"
        self.lines.append(line)
        log.info("%s", line)

    def __str__(self) -> str:
        return "\n".join(self.lines)


@contextlib.contextmanager
def cpu_hogs(n: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`n` busy-loop processes for the duration (each in its own process group)."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", "while True: pass"],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(n)
    ]
    try:
        yield procs
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def committed_vs_end(bootstrap: str, group: str, topics: Sequence[str]) -> list[str]:
    """Every partition of `topics` whose committed offset (of `group`) is not its end offset."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    meta = admin.list_topics(timeout=10)
    tps = [
        TopicPartition(t, p)
        for t in topics
        if t in meta.topics
        for p in sorted(meta.topics[t].partitions)
    ]
    request = [ConsumerGroupTopicPartitions(group, tps)]
    result = admin.list_consumer_group_offsets(request)[group].result(timeout=10)
    committed = {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions}
    ends = admin.list_offsets({tp: OffsetSpec.latest() for tp in tps}, request_timeout=10)
    out = []
    for tp, fut in ends.items():
        end = fut.result().offset
        got = committed.get((tp.topic, tp.partition), -1)
        if got != end and not (got < 0 and end == 0):
            shown = got if got >= 0 else "nothing"
            out.append(f"{tp.topic}[{tp.partition}]: committed {shown}, end {end}")
    return sorted(out)


@dataclass
class Run:
    """One schedule against real processes: `start`, `execute`, `drain`, `verify`."""

    schedule: Schedule
    settings: Settings
    make: Callable[..., Service]
    session_timeout_s: float | None = None
    concurrency: int = 8
    log_dir: Path | None = None
    timeline: Timeline = field(default_factory=Timeline)
    outcome: Outcome = field(default_factory=Outcome)
    workers: list[Service] = field(default_factory=list)
    bridge: Service | None = None
    kills: int = 0
    self_exits: list[str] = field(default_factory=list)

    @property
    def session_s(self) -> float:
        return session_timeout_of(self.settings, self.session_timeout_s)

    @property
    def group_topics(self) -> list[str]:
        s = self.settings
        return [
            s.topic(s.customer_deleted_topic),
            *(s.topic(f"{s.app_id}-{name}") for name in INTERNAL),
        ]

    def start(self) -> None:
        self.timeline(self.schedule.describe().replace("\n", "\n" + " " * 20))
        settings, env = with_session_timeout(self.settings, self.session_timeout_s)
        self.workers = [
            self.make("worker", settings, name=f"worker-{i}", env=env)
            for i in range(self.schedule.workers)
        ]
        for w in self.workers:
            w.start()
        self._wait_workers("ready", 180)
        for i, w in enumerate(self.workers):
            self.timeline("worker-%d pid %s ready", i, w.pid)
        self.bridge = start_bridge(self.make("bridge", self.settings))
        self.timeline("bridge ready")

    def execute(self) -> None:
        chunks = self.schedule.chunks()
        for step in self.schedule.steps:
            if isinstance(step, Send):
                self._send(step, chunks[step.chunk])
            else:
                self._kill(step)

    # --- steps ---
    def _send(self, step: Send, hooks: list[Webhook]) -> None:
        # "ready" may wait out a killed member's session
        self._wait_workers(step.wait, 2 * self.session_s + 120 if step.wait == "ready" else 120)
        self.timeline("workers %s", step.wait)
        time.sleep(step.after_s)
        assert self.bridge is not None
        self.timeline("send chunk %d: %d webhooks", step.chunk, len(hooks))
        before = len(self.outcome.acked)
        asyncio.run(
            send(
                f"{self.bridge.url}/webhooks/voucherify",
                hooks,
                SECRET,
                self.concurrency,
                retry_for_s=60,
                outcome=self.outcome,
            )
        )
        self.timeline(
            "chunk %d sent: %d acknowledged, statuses %s",
            step.chunk,
            len(self.outcome.acked) - before,
            dict(self.outcome.statuses),
        )

    def _kill(self, step: Kill) -> None:
        w = self.workers[step.worker]
        time.sleep(step.delay_s)
        self._sigkill(step.worker, step.moment)
        time.sleep(step.down_s)
        log_offset = w.log.stat().st_size if w.log.exists() else 0
        self._restart(step.worker)
        if step.moment == "startup":
            time.sleep(step.again_s)
            self._sigkill(step.worker, "startup, second kill")
        elif step.moment == "recovery":
            self._await_recovery(step.worker, log_offset)
            time.sleep(step.again_s)
            state = self._recovery_state(step.worker, log_offset)
            self._sigkill(step.worker, f"recovery, second kill; log: {state}")
        elif step.moment == "double":
            w.wait_answering(VIEW, timeout=120)
            time.sleep(step.again_s)
            self._sigkill(step.worker, "double, second kill")
        else:
            return
        time.sleep(step.down_s)
        self._restart(step.worker)

    def _sigkill(self, i: int, why: str) -> None:
        w = self.workers[i]
        status, body = w.answers(VIEW, timeout=0.3)
        state = body.get("reason", status) if isinstance(body, dict) and status == 503 else status
        up = time.monotonic() - (w.started_at or time.monotonic())
        pid = w.pid
        w.kill()
        self.kills += 1
        self.timeline(
            "SIGKILL worker-%d pid %s process group (%s): up %.2fs, view %s", i, pid, why, up, state
        )

    def _restart(self, i: int) -> None:
        self.workers[i].start()
        self.timeline("restart worker-%d: pid %s", i, self.workers[i].pid)

    def _log_since(self, i: int, offset: int) -> str:
        with open(self.workers[i].log, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def _await_recovery(self, i: int, log_offset: int) -> None:
        """Until worker `i` got its partitions (its table recovery starts there: the views' 503
        says "recovering" from the start, so the log tells instead) or answers 200 (missed)."""
        w = self.workers[i]
        deadline = time.monotonic() + self.session_s + 60
        while time.monotonic() < deadline and w.alive:
            text = self._log_since(i, log_offset)
            if "Executing _on_partitions_assigned" in text:
                self.timeline("worker-%d got its partitions: recovering its tables", i)
                return
            if w.answers(VIEW, timeout=1)[0] == 200:
                self.timeline("worker-%d answered 200 before its recovery was seen", i)
                return
            time.sleep(0.02)
        self.timeline("worker-%d: recovery not seen", i)

    def _recovery_state(self, i: int, log_offset: int) -> str:
        text = self._log_since(i, log_offset)
        if "Recovery complete" in text:
            return "recovery complete"
        if "Highwater for active changelog partitions" in text:
            return "recovering"
        return "partitions assigned" if "_on_partitions_assigned" in text else "not assigned"

    def _wait_workers(self, wait: str, timeout: float) -> None:
        """Until every worker is ready (or answering), restarting any that exits by itself
        meanwhile (code 70: e.g. the offset guard found records not delivered), as a supervisor
        would: such an exit is the worker keeping its guarantee, not a failed schedule."""
        deadline = time.monotonic() + timeout
        for w in self.workers:
            while True:
                self._supervise()
                left = max(1.0, min(5.0, deadline - time.monotonic()))
                try:
                    if wait == "ready":
                        w.wait_ready(VIEW, timeout=left)
                    else:
                        w.wait_answering(VIEW, timeout=left)
                    break
                except ChildError:
                    if time.monotonic() >= deadline:
                        raise

    def _supervise(self) -> None:
        """Restart a worker that exited by itself (e.g. code 70), as a supervisor would."""
        for i, w in enumerate(self.workers):
            if w.proc is not None and not w.alive:
                rc = w.proc.returncode
                self.self_exits.append(f"worker-{i} exited with {rc}")
                self.timeline("worker-%d exited by itself with code %s: restarting", i, rc)
                self._restart(i)

    # --- after the schedule ---
    def drain(self, timeout: float) -> int | None:
        """Until the group committed every input and internal partition to its end; the lag
        left (0: drained; None: unknown)."""
        s = self.settings
        deadline = time.monotonic() + timeout
        lag: int | None = None
        next_note = 0.0
        while time.monotonic() < deadline:
            self._supervise()
            lag = group_lag(s, s.app_id, self.group_topics, timeout=5)
            if lag == 0:
                self.timeline("drained: every input and internal partition committed to its end")
                return 0
            if time.monotonic() >= next_note:
                self.timeline("draining: %s records not committed", lag)
                next_note = time.monotonic() + 15
            time.sleep(1)
        self.timeline("not drained after %.0fs: %s records not committed", timeout, lag)
        return lag

    def verify(self, drain_timeout: float | None = None) -> list[str]:
        """What differs from the reference, each as one line (empty: all exact)."""
        s = self.settings
        problems: list[str] = []
        timeout = drain_timeout if drain_timeout is not None else 2 * self.session_s + 60
        if self.drain(timeout) != 0:
            left = committed_vs_end(s.bootstrap_servers, s.app_id, self.group_topics)
            problems.append("(a) not consumed to the end: " + "; ".join(left or ["lag unknown"]))
        if self.outcome.given_up:
            problems.append(f"{len(self.outcome.given_up)} webhooks never got a 2xx")
        expected = expected_totals(self.outcome.acked)
        customers = expected["loyalty"]["total"]["all"]["customers"]
        facts, repeats = fact_counts(s)
        self.timeline("facts: %d distinct customers (%d repeated facts)", facts, repeats)
        if facts != customers:
            problems.append(f"(b) facts: {facts} distinct customers, expected {customers}")
        for section, topic, counters in (
            ("loyalty", s.loyalty_topic, LOYALTY_COUNTERS),
            ("referrals", s.referral_topic, REFERRAL_COUNTERS),
        ):
            got = {section: as_view(latest_per_key(s, topic), counters)}
            diff = view_diff(got, {section: full_view(expected[section], counters)})
            if diff:
                problems.append(f"(c) compacted {topic}: {_summary(diff)}")
        views = wait_for_totals(
            self.workers[0], expected, timeout=60 if not problems else 20, supervise=False
        )
        if not views:
            problems.append("(d) the views never answered 200")
        elif diff := view_diff(views, expected):
            problems.append(f"(d) views: {_summary(diff)}")
        self.timeline("verified: %s", "exact" if not problems else f"{len(problems)} problem(s)")
        return problems

    def report(self, problems: list[str], tail: int = 3000) -> str:
        """The failure message: what differs, the schedule, the timeline and the logs' tails."""
        parts = [
            f"crash schedule seed={self.schedule.seed} failed:",
            *(f"  - {p}" for p in problems),
            self.schedule.describe(),
            "timeline:",
            str(self.timeline),
        ]
        for i, w in enumerate(self.workers):
            parts += [f"--- worker-{i} log (last {tail} chars; {w.log}) ---", w.tail(tail)]
        return "\n".join(parts)

    def keep_logs(self) -> None:
        """Copy the processes' logs and the timeline to `log_dir`/seed-N (when set)."""
        if self.log_dir is None:
            return
        dest = self.log_dir / f"seed-{self.schedule.seed}"
        dest.mkdir(parents=True, exist_ok=True)
        for svc in [*self.workers, *([self.bridge] if self.bridge else [])]:
            with contextlib.suppress(FileNotFoundError):
                shutil.copy(svc.log, dest / svc.log.name)
        (dest / "timeline.txt").write_text(str(self.timeline) + "\n")


def _summary(diff: list[str], shown: int = 6) -> str:
    """How many keys differ, `total/all` first when it is one of them."""
    first = sorted(diff, key=lambda line: "/total/all:" not in line)
    more = f" (+{len(diff) - shown} more)" if len(diff) > shown else ""
    return f"{len(diff)} keys differ: " + "; ".join(first[:shown]) + more


@dataclass
class Result:
    schedule: Schedule
    problems: list[str]
    kills: int
    elapsed_s: float
    report: str
    self_exits: list[str]  # workers that exited by themselves (e.g. 70), restarted


def run_schedule(
    schedule: Schedule,
    settings: Settings,
    make: Callable[..., Service],
    *,
    hogs: int = 0,
    session_timeout_s: float | None = None,
    log_dir: Path | None = None,
) -> Result:
    """Run `schedule` with `hogs` CPU hogs beside it, then verify; never raises for a mismatch
    (the caller asserts on `Result.problems`). The processes are the `make` fixture's to end."""
    run = Run(schedule, settings, make, session_timeout_s=session_timeout_s, log_dir=log_dir)
    t0 = time.monotonic()
    problems: list[str]
    with cpu_hogs(hogs):
        run.timeline("%d CPU hog(s) started", hogs)
        try:
            run.start()
            run.execute()
            problems = run.verify()
        except (AssertionError, ChildError) as exc:  # a process never came up, or exited early
            problems = [f"the schedule could not run: {str(exc)[:2000]}"]
    elapsed = time.monotonic() - t0
    run.timeline("done in %.1fs, %d kills, %d self-exits", elapsed, run.kills, len(run.self_exits))
    if problems:
        run.keep_logs()
    return Result(
        schedule, problems, run.kills, elapsed, run.report(problems), list(run.self_exits)
    )
