"""compose.yaml: accepted by `docker compose config` where the plugin exists, and
structurally what the README promises everywhere."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _compose_plugin() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
    return probe.returncode == 0


def test_compose_file_shape() -> None:
    spec = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = spec["services"]
    assert set(services) == {"kafka", "registry", "bridge", "worker"}
    registry = services["registry"]
    assert registry["image"].startswith("apicurio/apicurio-registry:")
    assert registry["profiles"] == ["registry"]  # opt-in: the default stack is unchanged
    assert "healthcheck" in registry
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "healthcheck" in kafka
    for name in ("bridge", "worker"):
        svc = services[name]
        assert svc["build"] == "."
        assert svc["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert svc["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:29092"
        assert svc["environment"]["SCHEMA_REGISTRY_URL"] == "${SCHEMA_REGISTRY_URL:-}"
        assert svc["depends_on"]["registry"]["required"] is False
    assert (ROOT / "Dockerfile").exists()


@pytest.mark.skipif(not _compose_plugin(), reason="no `docker compose` plugin on this machine")
def test_docker_compose_config_accepts_it() -> None:
    proc = subprocess.run(
        ["docker", "compose", "-f", str(ROOT / "compose.yaml"), "config", "-q"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
