"""Drop local RocksDB table partitions that the broker's changelogs no longer back.

The changelog topics are the tables' source of truth; a partition's RocksDB database is only a
cache of one, with the offset of the last changelog record it holds. That cache is stale when
the broker lost or re-created the changelog (a reset local broker, topics deleted by hand, the
worker pointed at another cluster): Faust then refuses to start (ConsistencyError: persisted
offset higher than the topic's end), or, worse, keeps totals the changelog no longer has.
Before Faust opens any store the worker removes such partitions, so they are restored from the
changelog like on a fresh machine:

- the data dir remembers the Kafka cluster id it was filled from: another cluster (a re-formatted
  local broker has a new id) makes every table partition stale;
- a partition whose persisted offset is at or past its changelog's end, or whose changelog is
  gone, is stale.

A database another process holds open (its RocksDB LOCK is taken) is never touched.
"""

from __future__ import annotations

import fcntl
import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from faust.stores.rocksdb import Store

from streams.kafka.admin import admin_client, served
from streams.kafka.security import ClientConfig
from streams.settings import Settings

log = logging.getLogger(__name__)

CLUSTER_ID_FILE = "kafka-cluster-id"
OFFSET_KEY: bytes = Store.offset_key  # where Faust's RocksDB store keeps the persisted offset


@dataclass(frozen=True)
class Partition:
    """One local table partition: <tabledir>/<table>-<partition>.db"""

    path: Path
    table: str
    partition: int


def local_partitions(tabledir: Path, tables: Mapping[str, str]) -> list[Partition]:
    """The databases in `tabledir` of the tables named in `tables` (table -> changelog)."""
    found = []
    for path in sorted(tabledir.glob("*.db")) if tabledir.is_dir() else []:
        table, sep, number = path.name.removesuffix(".db").rpartition("-")
        if sep and table in tables and number.isdigit():
            found.append(Partition(path, table, int(number)))
    return found


def stale(
    partition: Partition,
    persisted: int | None,
    changelog_ends: Mapping[tuple[str, int], int | None],
    changelog: str,
) -> str | None:
    """Why `partition` is stale, or None when its changelog still backs it.

    `changelog_ends` maps (topic, partition) to the changelog's end offset (the next offset to
    be written), None when the topic or partition does not exist.
    """
    if persisted is None:
        return None  # holds no changelog record yet: nothing to contradict
    end = changelog_ends.get((changelog, partition.partition))
    if end is None:
        return f"its changelog {changelog}[{partition.partition}] does not exist"
    if persisted >= end:
        return (
            f"it holds changelog offset {persisted} but {changelog}[{partition.partition}] "
            f"ends at {end}"
        )
    return None


def persisted_offset(path: Path) -> int | None:
    """The changelog offset a partition's database was last written from (read-only open)."""
    from rocksdict import AccessType, Options, Rdict

    db = Rdict(str(path), options=Options(raw_mode=True), access_type=AccessType.read_only())
    try:
        raw = db.get(OFFSET_KEY)
    finally:
        db.close()
    return None if raw is None else int(raw)


def in_use(path: Path) -> bool:
    """True when another process holds the database open (RocksDB locks <db>/LOCK with fcntl)."""
    lock = path / "LOCK"
    if not lock.exists():
        return False
    with lock.open("rb+") as fh:
        try:
            fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.lockf(fh, fcntl.LOCK_UN)
    return False


def changelog_ends(
    admin: AdminClient, topics: list[str], timeout: float
) -> dict[tuple[str, int], int | None]:
    metadata = admin.list_topics(timeout=timeout).topics
    wanted = [
        TopicPartition(t, p)
        for t in topics
        if t in metadata and metadata[t].error is None
        for p in metadata[t].partitions
    ]
    ends: dict[tuple[str, int], int | None] = {}
    if wanted:
        futures = admin.list_offsets(
            {tp: OffsetSpec.latest() for tp in wanted}, request_timeout=timeout
        )
        for tp, fut in futures.items():
            ends[(tp.topic, tp.partition)] = fut.result(timeout).offset
    return ends


def drop_stale(
    kafka: Settings | ClientConfig,
    data_dir: Path,
    tabledir: Path,
    tables: Mapping[str, str],
    timeout: float = 30,
) -> list[Path]:
    """Remove the table partitions under `tabledir` the broker no longer backs; returns them.

    `tables` maps each table's name to its changelog topic.
    """
    partitions = local_partitions(tabledir, tables)
    with served(admin_client(kafka)) as admin:
        return _drop_stale(admin, data_dir, partitions, tables, timeout)


def _drop_stale(
    admin: AdminClient,
    data_dir: Path,
    partitions: list[Partition],
    tables: Mapping[str, str],
    timeout: float,
) -> list[Path]:
    cluster = admin.describe_cluster(request_timeout=timeout).result(timeout).cluster_id
    marker = data_dir / CLUSTER_ID_FILE
    known = marker.read_text().strip() if marker.exists() else None
    reasons: dict[Path, str] = {}
    if known is not None and known != cluster:
        reasons = {
            p.path: f"the data dir was filled from Kafka cluster {known}, this is {cluster}"
            for p in partitions
        }
    else:
        ends = changelog_ends(admin, sorted(set(tables.values())), timeout)
        for p in partitions:
            try:
                offset = persisted_offset(p.path)
            except Exception as exc:  # unreadable here: Faust's own open will say why
                log.warning("cannot read %s: %s", p.path, exc)
                continue
            why = stale(p, offset, ends, tables[p.table])
            if why is not None:
                reasons[p.path] = why
    dropped, kept = [], 0
    for path, why in reasons.items():
        if in_use(path):
            log.warning("%s is stale (%s) but another process holds it open: kept", path, why)
            kept += 1
            continue
        log.warning(
            "dropping local table partition %s: %s; it is restored from the changelog", path, why
        )
        shutil.rmtree(path)
        dropped.append(path)
    if not kept:  # remember the cluster only once the data dir holds nothing from another
        data_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{cluster}\n")
    return dropped
