"""A real Schema Registry run locally: Apicurio Registry, fetched by Maven from Maven Central.

Confluent's registry is not on Maven Central; Apicurio's is, and it serves the Confluent REST API
under `/apis/ccompat/v7`, which is all the project (and confluent-kafka's serializers, Kafka
Connect or ksqlDB converters) speaks. `voucherify-streams registry start|stop|status` is a thin
front end over `LocalRegistry`. Apicurio 3 is a Quarkus app that needs Java 21 or newer.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from streams.dev.daemon import Daemon
from streams.dev.maven import fetch_once
from streams.dev.ports import port_in_use
from streams.settings import Settings

VERSION = "3.3.3"
ARTIFACT = f"io.apicurio:apicurio-registry-app:{VERSION}:tar.gz:all"
#: Where the Confluent-compatible API lives on an Apicurio server.
CCOMPAT_PATH = "/apis/ccompat/v7"
MIN_JAVA = 21
#: Folders JDKs are usually installed in (Debian/Ubuntu, RHEL, containers, macOS).
JVM_DIRS = ("/usr/lib/jvm", "/usr/java", "/opt/java", "/Library/Java/JavaVirtualMachines")
HEAP = "384m"  # a few hundred schemas; the default (1/4 of RAM) starves the brokers beside it


class RegistryError(RuntimeError):
    """A problem fetching, starting or stopping the local registry, worded for the operator."""


def java_version(java_home: Path) -> int | None:
    """The feature version (17, 21, 25...) of the JDK at `java_home`, or None if it is none."""
    java = java_home / "bin" / "java"
    if not java.exists():
        return None
    release = java_home / "release"
    text = release.read_text(errors="replace") if release.exists() else ""
    found = re.search(r'^JAVA_VERSION="(\d+)', text, re.M)
    if found is None:  # no release file (some distributions): ask the binary
        try:
            out = subprocess.run(
                [str(java), "-version"], capture_output=True, text=True, timeout=30
            ).stderr
        except (OSError, subprocess.TimeoutExpired):
            return None
        found = re.search(r'version "(\d+)', out)
    if found is None:
        return None
    major = int(found.group(1))
    return 8 if major == 1 else major  # "1.8.0_x" is Java 8


def find_java(configured: str = "") -> Path:
    """The `java` binary of a JDK >= 21: `configured` (STREAMS_REGISTRY_JAVA_HOME) when set, else
    JAVA_HOME, else the newest JDK in the usual JVM folders. Raises RegistryError saying what
    to install."""
    if configured:
        home = Path(configured)
        version = java_version(home)
        if version is None or version < MIN_JAVA:
            found = "no JDK" if version is None else f"Java {version}"
            raise RegistryError(
                f"STREAMS_REGISTRY_JAVA_HOME={configured} holds {found}; Apicurio Registry "
                f"{VERSION} needs Java {MIN_JAVA} or newer"
            )
        return home / "bin" / "java"
    candidates: list[Path] = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]))
    for folder in JVM_DIRS:
        base = Path(folder)
        if base.is_dir():
            for child in sorted(base.iterdir()):
                candidates.extend([child, child / "Contents" / "Home"])
    best: tuple[int, Path] | None = None
    seen: list[str] = []
    for home in candidates:
        if home.is_symlink():  # e.g. default-java: the folder it points to is listed too
            continue
        version = java_version(home)
        if version is None:
            continue
        seen.append(f"{home} (Java {version})")
        if version >= MIN_JAVA and (best is None or version > best[0]):
            best = (version, home)
    if best is None:
        listed = "; found: " + ", ".join(seen) if seen else ""
        raise RegistryError(
            f"Apicurio Registry {VERSION} needs Java {MIN_JAVA} or newer and none was found in "
            f"{', '.join(JVM_DIRS)}{listed}. Install one (e.g. `apt-get install "
            f"openjdk-21-jdk-headless`, or a Temurin 21+ JDK) or point "
            "STREAMS_REGISTRY_JAVA_HOME at one"
        )
    return best[1] / "bin" / "java"


def _unpack(tmp: Path) -> None:
    """The fetched tarball -> Apicurio's Quarkus app in `tmp`."""
    tarballs = list(tmp.glob("*.tar.gz"))
    if not tarballs:
        raise RegistryError(f"Maven fetched no tarball of {ARTIFACT}")
    with tarfile.open(tarballs[0]) as archive:
        archive.extractall(tmp, filter="data")
    tarballs[0].unlink()
    if not (tmp / "quarkus-run.jar").exists():
        raise RegistryError(f"{ARTIFACT} holds no quarkus-run.jar")


def registry_answers(url: str, timeout: float = 2.0) -> bool:
    """True when a Confluent-compatible registry answers at `url` (GET /subjects)."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/subjects", timeout=timeout) as resp:
            return resp.status == 200
    except (OSError, ValueError):
        return False


@dataclass(frozen=True)
class LocalRegistry:
    """One local registry, identified by its port; state lives under `home/<port>/`."""

    port: int
    management_port: int
    home: Path
    java_home: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalRegistry:
        return cls(
            settings.registry_port,
            settings.registry_mgmt_port,
            Path(settings.registry_home),
            settings.registry_java_home,
        )

    @property
    def url(self) -> str:
        """What to put in SCHEMA_REGISTRY_URL."""
        return f"http://127.0.0.1:{self.port}{CCOMPAT_PATH}"

    @property
    def app_dir(self) -> Path:
        return self.home / f"apicurio-registry-{VERSION}"

    @property
    def state_dir(self) -> Path:
        return self.home / str(self.port)

    @property
    def log_file(self) -> Path:
        return self.state_dir / "registry.log"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "registry.pid"

    @property
    def daemon(self) -> Daemon:
        """A java running this cache's quarkus-run.jar."""
        return Daemon(self.pid_file, str(self.app_dir / "quarkus-run.jar").encode())

    # --- the app ---
    def fetch(self) -> Path:
        """Fetch and unpack Apicurio's Quarkus app with Maven into the cache (once)."""
        goal = ["dependency:copy", f"-Dartifact={ARTIFACT}", "-Dmdep.stripVersion=true"]
        return fetch_once(self.app_dir, goal, ARTIFACT, RegistryError, _unpack)

    # --- process state ---
    def pid(self) -> int | None:
        """The pid of our running registry, or None."""
        return self.daemon.pid()

    def ready(self, timeout: float = 2.0) -> bool:
        """Quarkus reports ready and the Confluent-compatible API answers."""
        health = f"http://127.0.0.1:{self.management_port}/health/ready"
        try:
            with urllib.request.urlopen(health, timeout=timeout) as resp:
                if json.load(resp).get("status") != "UP":
                    return False
        except (OSError, ValueError):
            return False
        return registry_answers(self.url, timeout)

    def status(self) -> str:
        pid = self.pid()
        if pid is None:
            return f"not running (port {self.port}; log {self.log_file})"
        state = "ready" if self.ready() else "not ready yet"
        return f"running, pid {pid}, {self.url}, {state}; log {self.log_file}"

    # --- start/stop ---
    def start(self, timeout: float = 120.0) -> bool:
        """Start the registry; False when it was already running. Waits until it is ready."""
        if self.pid() is not None:
            if not self._wait_ready(None, timeout):
                raise RegistryError(
                    f"registry pid {self.pid()} is running but not ready on port {self.port}; "
                    f"see {self.log_file}"
                )
            return False
        for port in (self.port, self.management_port):
            if port_in_use(port):
                raise RegistryError(
                    f"port {port} is already in use by another process; choose another with "
                    "--registry-port / STREAMS_REGISTRY_PORT (the management port is the next "
                    "one unless STREAMS_REGISTRY_MANAGEMENT_PORT is set)"
                )
        java = find_java(self.java_home)
        app = self.fetch()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(java),
            "-Xms64m",
            f"-Xmx{HEAP}",
            "-XX:+UseSerialGC",
            "-Djava.awt.headless=true",
            # Loopback only: a development registry has no authentication.
            "-Dquarkus.http.host=127.0.0.1",
            f"-Dquarkus.http.port={self.port}",
            "-Dquarkus.management.host=127.0.0.1",
            f"-Dquarkus.management.port={self.management_port}",
            # H2 in a file instead of Apicurio's default in-memory H2: ids survive a restart,
            # and records already in Kafka carry those ids.
            f"-Dapicurio.datasource.url=jdbc:h2:file:{self.state_dir / 'db' / 'registry'}",
            "-Dapicurio.datasource.jdbc.initial-size=2",
            "-Dapicurio.datasource.jdbc.min-size=2",
            "-Dapicurio.datasource.jdbc.max-size=10",
            # Confluent semantics: a schema id names content, so the same schema registered
            # under two subjects has one id (Apicurio's default; pinned, it must not drift).
            "-Dapicurio.ccompat.legacy-id-mode.enabled=false",
            "-Dquarkus.http.access-log.enabled=false",
            "-jar",
            str(app / "quarkus-run.jar"),
        ]
        proc = self.daemon.launch(cmd, self.log_file, cwd=self.state_dir)
        if not self._wait_ready(proc, timeout):
            code = proc.poll()
            if code is not None:
                self.daemon.forget()
                raise RegistryError(f"the registry exited with code {code}; see {self.log_file}")
            self.stop()
            raise RegistryError(
                f"the registry was not ready within {timeout:.0f}s; see {self.log_file}"
            )
        return True

    def _wait_ready(self, proc: subprocess.Popen[bytes] | None, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                return False
            if self.ready(timeout=1.0):
                return True
            time.sleep(0.3)
        return False

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the registry; False when it was not running."""
        return self.daemon.stop(timeout)

    def reset(self) -> None:
        """Delete the registry's schemas (it must be stopped)."""
        if self.pid() is not None:
            raise RegistryError("stop the registry before resetting its data")
        shutil.rmtree(self.state_dir / "db", ignore_errors=True)
