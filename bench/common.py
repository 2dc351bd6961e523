"""Shared machinery of the benchmark suite: the broker, subprocesses, data sets, statistics.

Everything here talks to 127.0.0.1/localhost only, and every wait is bounded in time.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pickle
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from streams.kafka.local import free_port, free_port_pair

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
CACHE = RESULTS / "cache"
PY = sys.executable  # the project's venv (run.py is started with it)

SECRET = "bench-secret"
#: How long the worker keeps per-day keys; the data sets are dated inside it (see `dataset`).
DAY_RETENTION = timedelta(days=400)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def median(values: Iterable[float]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def percentile(sorted_vals: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, math.ceil(q / 100 * len(sorted_vals)) - 1))
    return sorted_vals[k]


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process and its reaped children (/proc), in seconds."""
    try:
        parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(parts[11]) + int(parts[12]) + int(parts[13]) + int(parts[14])) / ticks


# --- the broker ----------------------------------------------------------------------------------


@dataclass
class Broker:
    """The broker of this run: given by KAFKA_BOOTSTRAP_SERVERS, or a private LocalKafka."""

    bootstrap: str
    local: Any = None  # streams.kafka.local.LocalKafka when we started it
    home: Path | None = None

    @classmethod
    def start(cls) -> Broker:
        given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
        if given:
            log(f"using the broker at {given} (KAFKA_BOOTSTRAP_SERVERS)")
            return cls(given)
        from streams.kafka.local import KafkaError, LocalKafka
        from streams.settings import Settings

        cached = Path(Settings().kafka_home) / "jars"
        heap = os.environ.get("STREAMS_KAFKA_HEAP", "1g")
        for attempt in range(3):
            home = Path(tempfile.mkdtemp(prefix="vs-bench-kafka-"))
            if cached.is_dir():  # reuse the cached jars (no Maven run)
                (home / "jars").symlink_to(cached)
            port = free_port_pair()
            local = LocalKafka(port, port + 1, home, heap)
            log(f"starting a private Kafka on localhost:{port} (state in {home})")
            t0 = time.monotonic()
            try:
                local.start(timeout=120)
            except KafkaError as exc:
                # e.g. a random cluster id starting with "-" that kafka-storage takes for a flag
                log(f"Kafka did not start (attempt {attempt + 1}): {str(exc)[:300]}")
                import shutil

                shutil.rmtree(home, ignore_errors=True)
                continue
            log(f"Kafka up in {time.monotonic() - t0:.1f}s")
            return cls(local.bootstrap, local, home)
        raise RuntimeError("the private Kafka did not start in 3 attempts")

    def stop(self) -> None:
        if self.local is not None:
            self.local.stop()
            import shutil

            shutil.rmtree(self.home, ignore_errors=True)


def settings_for(broker: Broker, name: str, **changes: Any) -> Any:
    """Settings with a private topic prefix and app id for one benchmark variant."""
    from streams.settings import Settings

    tag = f"{name}-{uuid.uuid4().hex[:6]}"
    base = Settings(
        bootstrap_servers=broker.bootstrap,
        topic_prefix=f"bench-{tag}.",
        app_id=f"bench-{tag}",
        webhook_secret=(SECRET,),
        log_level="warning",
        bridge_host="127.0.0.1",
        web_host="127.0.0.1",
        standby_replicas=0,
    )
    return base.with_(**changes)


def delete_topics(bootstrap: str, prefix: str, app_id: str = "") -> None:
    """Delete the topics a variant created (its prefix, and its app id's internal topics)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        names = list(admin.list_topics(timeout=10).topics)
    except Exception:
        return
    doomed = [n for n in names if n.startswith(prefix) or (app_id and n.startswith(app_id))]
    if doomed:
        with contextlib.suppress(Exception):
            for f in admin.delete_topics(doomed, operation_timeout=30).values():
                with contextlib.suppress(Exception):
                    f.result(30)
    if app_id:  # the variant's consumer groups too (matters on a shared broker)
        with contextlib.suppress(Exception):
            groups = admin.list_consumer_groups().result(10).valid
            mine = [g.group_id for g in groups if g.group_id.startswith(app_id)]
            if mine:
                for f in admin.delete_consumer_groups(mine).values():
                    with contextlib.suppress(Exception):
                        f.result(30)


# --- subprocesses -------------------------------------------------------------------------------


class AgentCrashed(RuntimeError):
    """A Faust agent of a worker crashed (logged; the process itself keeps running)."""


@dataclass
class Proc:
    """A child process we started (in its own session); stopped by its pid only."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def check(self) -> None:
        """Raise when the process exited, or when its log shows a crashed Faust agent (the
        worker keeps running then, but never catches up: fail fast instead of timing out)."""
        if not self.alive():
            raise RuntimeError(f"{self.name} exited {self.popen.returncode}:\n{self.tail()}")
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, f.seek(0, 2) - 65536))
                text = f.read().decode(errors="replace")
        except OSError:
            return
        for line in text.splitlines():
            if "Crashed reason=" in line:
                raise AgentCrashed(f"{self.name}: {line.strip()[:600]}")

    def stop(self, timeout: float = 30) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)
        _LIVE.discard(self)

    def __hash__(self) -> int:
        return self.popen.pid


_LIVE: set[Proc] = set()


def stop_all() -> None:
    for p in list(_LIVE):
        p.stop(timeout=15)


def spawn(
    name: str,
    argv: list[str],
    env: dict[str, str] | None = None,
    log_dir: Path | None = None,
    cwd: Path = ROOT,
) -> Proc:
    log_dir = log_dir or RESULTS / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"{name}-{uuid.uuid4().hex[:6]}.log"
    with open(path, "wb") as out:
        popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    p = Proc(name, popen, path)
    _LIVE.add(p)
    return p


def http_get(url: str, timeout: float = 3) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def wait_http(proc: Proc, url: str, timeout: float = 60, ok: Callable[[int], bool] | None = None):
    ok = ok or (lambda s: s == 200)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited {proc.popen.returncode}:\n{proc.tail()}")
        if ok(http_get(url)):
            return time.monotonic() - proc.started
        time.sleep(0.2)
    raise RuntimeError(f"{proc.name}: {url} not ready within {timeout}s:\n{proc.tail()}")


def start_bridge(settings: Any, port: int) -> Proc:
    env = {**settings.to_env(), "BRIDGE_PORT": str(port), "BRIDGE_HOST": "127.0.0.1"}
    p = spawn("bridge", [PY, "-m", "streams", "bridge"], env)
    wait_http(p, f"http://127.0.0.1:{port}/readyz", timeout=60)
    return p


def start_worker(settings: Any, name: str = "worker", data_dir: Path | None = None) -> Proc:
    """`voucherify-streams worker` (exec's faust) with these settings; returns at once."""
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="vs-bench-data-"))
    port = free_port()
    env = {
        **settings.to_env(),
        "STREAMS_DATA_DIR": str(data_dir),
        "STREAMS_WEB_PORT": str(port),
        "STREAMS_WEB_HOST": "127.0.0.1",
    }
    p = spawn(name, [PY, "-m", "streams", "worker"], env)
    p.web_port = port  # type: ignore[attr-defined]
    p.data_dir = data_dir  # type: ignore[attr-defined]
    return p


# --- baseline virtual environments ---------------------------------------------------------------

VENVS: dict[str, list[str]] = {
    # What a user would install for a FastAPI service (uvicorn with uvloop + httptools), with the
    # project's confluent-kafka version so the Kafka client is the same.
    "fastapi": ["fastapi[standard]", "uvicorn[standard]", "fastavro"],
    # Quix Streams pins its own confluent-kafka: hence its own venv.
    "quix": ["quixstreams", "fastavro"],
    # Sampling profiler for `run.py --profile` (a standalone binary; attaches by pid).
    "tools": ["py-spy"],
}

#: Set by `run.py --profile`: flame graphs of the processes under test into results/profiles/.
PROFILE = False


def profile(
    proc: Proc, name: str, seconds: float, delay_s: float = 0.0
) -> subprocess.Popen[bytes] | None:
    """Start `py-spy record` on `proc` for `seconds` (when --profile), after `delay_s` (a worker
    exec's faust: py-spy must attach after that); wait on the result with profile_done."""
    if not PROFILE:
        return None
    spy = venv_python("tools").parent / "py-spy"
    # Collapsed stacks ("frame;frame;frame count" lines): bench/profile_report.py summarises
    # them, and any flame graph tool (flamegraph.pl, speedscope, inferno) draws them.
    out = RESULTS / "profiles" / f"{name}-{time.strftime('%H%M%S')}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    log(f"profiling {proc.name} for {seconds:.0f}s -> {out.relative_to(ROOT)}")
    argv = [
        str(spy),
        "record",
        "--pid",
        str(proc.pid),
        "--duration",
        str(int(seconds)),
        "--rate",
        "100",
        "--nonblocking",
        "--subprocesses",
        "--format",
        "raw",
        "-o",
        str(out),
    ]
    if delay_s > 0:
        argv = ["sh", "-c", f'sleep {delay_s:g} && exec "$@"', "sh", *argv]
    return subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def profile_done(spy: subprocess.Popen[bytes] | None, timeout: float = 60) -> None:
    if spy is not None:
        try:
            spy.wait(timeout)
        except subprocess.TimeoutExpired:
            spy.terminate()
            spy.wait(10)


def venv_python(name: str) -> Path:
    """The python of bench/.venv-<name>, created and filled on first use (pip, PyPI)."""
    from importlib.metadata import version

    venv = BENCH / f".venv-{name}"
    py = venv / "bin" / "python"
    reqs = list(VENVS[name])
    if name == "fastapi":
        reqs.append(f"confluent-kafka=={version('confluent-kafka')}")
    stamp = venv / ".bench-requirements"
    if py.exists() and stamp.exists() and stamp.read_text() == "\n".join(reqs):
        return py
    log(f"creating {venv} with {' '.join(reqs)} (once)")
    if not py.exists():
        subprocess.run([PY, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *reqs],
        check=True,
        timeout=900,
    )
    stamp.write_text("\n".join(reqs))
    return py


def venv_versions(py: Path, packages: list[str]) -> dict[str, str]:
    code = (
        "import json,sys\nfrom importlib.metadata import version\nout={}\n"
        "for p in sys.argv[1:]:\n  try: out[p]=version(p)\n  except Exception: out[p]=None\n"
        "print(json.dumps(out))"
    )
    proc = subprocess.run([str(py), "-c", code, *packages], capture_output=True, text=True)
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {}


def baseline_env() -> dict[str, str]:
    """A baseline venv imports the project's codec and domain code from the source tree."""
    return {"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


# --- data sets ----------------------------------------------------------------------------------


def _recent_start() -> datetime:
    # Deletions dated within the last ~95 days: every day key is inside the worker's retention.
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=95)


def write_bodies(path: Path, count: int, seed: int = 1, tag_campaign: bool = False) -> Path:
    """`count` signed customer.deleted bodies, one a line: "signature<TAB>customer id<TAB>body".

    With `tag_campaign`, each customer also gets a loyalty campaign of its own
    ("e2e-<customer id>"), so its loyalty record on the analytics topic is attributable.
    """
    from streams.bridge.signature import sign
    from streams.demo.generator import compact, webhooks

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        for wh in webhooks(count, duplicates=0.0, seed=seed, start=_recent_start()):
            body = wh.body
            if tag_campaign:
                payload = json.loads(body)
                loyalty = payload["data"]["customer"]["loyalty"]
                loyalty["campaigns"][f"e2e-{wh.customer_id}"] = {
                    "points": 1,
                    "referred_customers": 0,
                }
                loyalty["points"] += 1
                body = compact(payload)
            assert b"\n" not in body and b"\t" not in body
            out.write(sign(SECRET, body).encode() + b"\t" + wh.customer_id.encode() + b"\t")
            out.write(body + b"\n")
    return path


def read_bodies(path: Path) -> list[tuple[str, str, bytes]]:
    out = []
    for line in path.read_bytes().splitlines():
        sig, cid, body = line.split(b"\t", 2)
        out.append((sig.decode(), cid.decode(), body))
    return out


@dataclass
class Dataset:
    """Encoded CustomerDeleted records, as the bridge would publish them, plus expectations."""

    keys: list[bytes]
    values: list[bytes]
    distinct: int
    loyalty_total: tuple[int, int, int]  # total:all (points_lost, customers, with_points)
    advocates_total: tuple[int, int, int]  # advocates:total (0, advocates_lost, orphaned)


def dataset(n: int, duplicates: float = 0.1, seed: int = 7, cache: bool = True) -> Dataset:
    """`n` records (about `duplicates` of them re-sends of an earlier customer), cached on disk."""
    start = _recent_start()
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"dataset-{n}-{duplicates}-{seed}-{start:%Y%m%d}.pickle"
    if cache and path.exists():
        with open(path, "rb") as f:
            return pickle.load(f)
    from streams.bridge.pii import PiiPolicy
    from streams.demo.generator import webhooks
    from streams.domain.deltas import plan
    from streams.models.customer_deleted import parse_webhook
    from streams.models.serializers.avro import get_codec
    from streams.settings import Settings

    t0 = time.monotonic()
    codec = get_codec(Settings())
    pii = PiiPolicy("redact")
    now = datetime.now(UTC)
    keys: list[bytes] = []
    values: list[bytes] = []
    seen: set[str] = set()
    lt = [0, 0, 0]
    at = [0, 0, 0]
    for wh in webhooks(n, duplicates=duplicates, seed=seed, start=start):
        datum = pii.apply(parse_webhook(json.loads(wh.body)))
        keys.append(wh.customer_id.encode())
        values.append(codec.encode("CustomerDeleted", datum))
        if wh.customer_id in seen:
            continue
        seen.add(wh.customer_id)
        p = plan(datum, now, now, DAY_RETENTION)
        for dim, key, c in p.loyalty:
            if (dim, key) == ("total", "all"):
                lt = [a + b for a, b in zip(lt, c, strict=True)]
        for dim, key, c in p.referral:
            if (dim, key) == ("advocates", "total"):
                at = [a + b for a, b in zip(at, c, strict=True)]
    ds = Dataset(keys, values, len(seen), tuple(lt), tuple(at))  # type: ignore[arg-type]
    if cache:
        with open(path, "wb") as f:
            pickle.dump(ds, f)
    log(f"dataset of {n} records ({len(seen)} customers) built in {time.monotonic() - t0:.1f}s")
    return ds


def produce_all(
    bootstrap: str, topic: str, keys: list[bytes], values: list[bytes], partitions: int = 6
) -> float:
    """Create `topic` and produce every record (keyed, murmur2 like Java clients); seconds taken."""
    from confluent_kafka import Producer

    from streams.kafka.admin import TopicSpec, ensure_topics

    ensure_topics(bootstrap, [TopicSpec(topic, partitions, 1)])
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "batch.size": 1_000_000,
            # Uncompressed: the worker's aiokafka cannot read lz4 without the `lz4` package.
            "compression.type": "none",
            "partitioner": "murmur2_random",
            "queue.buffering.max.messages": 500_000,
            "log_level": 3,
        }
    )
    t0 = time.monotonic()
    deadline = t0 + 600
    for k, v in zip(keys, values, strict=True):
        while True:
            try:
                p.produce(topic, key=k, value=v)
                break
            except BufferError:
                p.poll(0.05)
                if time.monotonic() > deadline:
                    raise TimeoutError("prefill took over 600s") from None
        p.poll(0)
    left = p.flush(120)
    if left:
        raise RuntimeError(f"{left} prefill records not delivered")
    return time.monotonic() - t0


# --- "all analytics outputs have caught up" -----------------------------------------------------


def ensure_topics_for(settings: Any) -> None:
    """The input and analytics topics of a variant, as the worker creates them (compacted)."""
    from streams.kafka.admin import TopicSpec, ensure_topics

    p, r = settings.topic_partitions, settings.topic_replication
    compacted = {"cleanup.policy": "compact"}
    ensure_topics(
        settings.bootstrap_servers,
        [
            TopicSpec(settings.topic(settings.customer_deleted_topic), p, r),
            TopicSpec(settings.topic(settings.loyalty_topic), p, r, compacted),
            TopicSpec(settings.topic(settings.referral_topic), p, r, compacted),
            TopicSpec(settings.topic(settings.deletions_topic), p, r),
        ],
    )


class CatchUp:
    """Watches the analytics topics of a settings' prefix until they reflect a data set.

    Done when the latest `total:all` record on the loyalty topic and the latest `advocates:total`
    record on the referral topic equal the expected totals, and the deletions topic holds at least
    one fact per distinct customer. Only those two keys are decoded (cheap for the watcher).
    `first_output` is the first record on any of the three analytics topics: a pipeline that
    finishes one stage over the whole backlog before the next (Quix Streams does, with one
    consumer and a 64 MB read-ahead) shows its first fact long before its first aggregate.
    """

    def __init__(self, settings: Any, ds: Dataset) -> None:
        from confluent_kafka import Consumer

        from streams.models.serializers.avro import get_codec

        self.settings = settings
        self.ds = ds
        self.codec = get_codec(settings)
        self.loyalty_topic = settings.topic(settings.loyalty_topic)
        self.referral_topic = settings.topic(settings.referral_topic)
        self.deletions_topic = settings.topic(settings.deletions_topic)
        self.consumer = Consumer(
            {
                "bootstrap.servers": settings.bootstrap_servers,
                "group.id": f"bench-watch-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "topic.metadata.refresh.interval.ms": 1000,
                "log_level": 3,
            }
        )
        ensure_topics_for(settings)
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        tps = []
        for t in (self.loyalty_topic, self.referral_topic, self.deletions_topic):
            meta = self.consumer.list_topics(t, timeout=10)
            tps += [TopicPartition(t, p, OFFSET_BEGINNING) for p in meta.topics[t].partitions]
        self.consumer.assign(tps)
        self.loyalty: tuple[int, ...] | None = None
        self.advocates: tuple[int, ...] | None = None
        self.first_output: float | None = None
        self.outputs = 0
        # When total:all first showed >= 10% and >= 90% of the distinct customers.
        self.t10: float | None = None
        self.t90: float | None = None

    def _facts(self) -> int:
        from confluent_kafka import TopicPartition

        total = 0
        try:
            meta = self.consumer.list_topics(self.deletions_topic, timeout=5)
            parts = meta.topics[self.deletions_topic].partitions
        except Exception:
            return 0
        for p in parts:
            with contextlib.suppress(Exception):
                lo, hi = self.consumer.get_watermark_offsets(
                    TopicPartition(self.deletions_topic, p), timeout=5
                )
                total += hi - lo
        return total

    def done(self) -> bool:
        ds = self.ds
        want_l = tuple(ds.loyalty_total)
        want_a = tuple(ds.advocates_total)
        return self.loyalty == want_l and (self.advocates == want_a or want_a == (0, 0, 0))

    def wait(self, timeout: float, procs: list[Proc] = ()) -> float:  # type: ignore[assignment]
        """Consume until caught up; returns the monotonic time it was seen. Raises on timeout."""
        deadline = time.monotonic() + timeout
        last_check = 0.0
        while time.monotonic() < deadline:
            msgs = self.consumer.consume(2000, timeout=0.3)
            now = time.monotonic()
            for m in msgs:
                if m.error():
                    continue
                self.outputs += 1
                if self.first_output is None:
                    self.first_output = now
                if m.topic() == self.deletions_topic:
                    continue
                k = m.key()
                if k == b"total:all":
                    d = self.codec.decode(m.value())[1]
                    self.loyalty = (d["points_lost"], d["customers"], d["customers_with_points"])
                    if self.t10 is None and d["customers"] >= 0.1 * self.ds.distinct:
                        self.t10 = now
                    if self.t90 is None and d["customers"] >= 0.9 * self.ds.distinct:
                        self.t90 = now
                elif k == b"advocates:total":
                    d = self.codec.decode(m.value())[1]
                    self.advocates = (
                        d["referees_lost"],
                        d["advocates_lost"],
                        d["referred_customers_orphaned"],
                    )
            if self.done() and self._facts() >= self.ds.distinct:
                return now
            if now - last_check > 2:
                last_check = now
                for p in procs:
                    p.check()
        raise TimeoutError(
            f"outputs not caught up in {timeout:.0f}s: total:all={self.loyalty} "
            f"(want {self.ds.loyalty_total}), advocates:total={self.advocates} "
            f"(want {self.ds.advocates_total}), facts={self._facts()} (want {self.ds.distinct})"
        )

    def steady_events_per_s(self) -> float | None:
        """Input events/s while total:all went from 10% to 90% of the customers (start-up and
        the tail excluded). Coarse when outputs come in transaction-sized steps, and flattering
        to a pipeline that runs its stages one after the other over a backlog: the window then
        only covers the last stage. A diagnostic, not the headline."""
        if self.t10 is None or self.t90 is None or self.t90 - self.t10 < 0.05:
            return None
        customers_per_s = 0.8 * self.ds.distinct / (self.t90 - self.t10)
        return customers_per_s * len(self.ds.values) / self.ds.distinct

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.consumer.close()


@contextlib.contextmanager
def cleanup_topics(settings: Any) -> Iterator[None]:
    try:
        yield
    finally:
        if os.environ.get("BENCH_KEEP_TOPICS") != "1":
            delete_topics(settings.bootstrap_servers, settings.topic_prefix, settings.app_id)


def reason(error: str, width: int = 160) -> str:
    """The telling line of an error text (its last exception or crash line), shortened."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "Crashed reason=" in ln or re.search(r"(Error|Exception|Timeout)\b.*:", ln):
            return ln[:width]
    return (lines[0] if lines else "")[:width]


def fmt(v: float | None, unit: str = "", digits: int = 1) -> str:
    if v is None:
        return "n/a"
    if abs(v) >= 1000 and not unit.startswith("x"):
        return f"{v:,.0f}{unit}"
    return f"{v:.{digits}f}{unit}"
