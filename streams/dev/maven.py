"""Fetching the local Java services' files (Kafka's jars, the Schema Registry) with Maven, into a
cache folder, once: into `<dest>.partial`, renamed to `dest` and marked complete only when whole,
so an interrupted fetch is redone rather than half used."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path


def fetch_once(
    dest: Path,
    goal: list[str],
    what: str,
    error: type[Exception],
    unpack: Callable[[Path], None] | None = None,
) -> Path:
    """`dest`, filled by `mvn -q -B <goal> -DoutputDirectory=<tmp>` (then `unpack(tmp)`, which
    raises `error` when the result is not usable) unless a complete copy is there already."""
    done = dest / ".complete"
    if done.exists():
        return dest
    mvn = shutil.which("mvn")
    if mvn is None:
        raise error(f"Maven (mvn) is not on PATH: it is needed to fetch {what}")
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cmd = [mvn, "-q", "-B", *goal, f"-DoutputDirectory={tmp}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
    if proc.returncode != 0:
        raise error(f"Maven could not fetch {what}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    if unpack is not None:
        unpack(tmp)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    done.touch()
    return dest
