"""compose.yaml: accepted by `docker compose config` where the plugin exists, and
structurally what the README promises everywhere."""

from __future__ import annotations

import re
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
    assert set(services) == {"kafka", "registry", "bridge", "worker", *CLUSTER}
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


#: The `cluster` profile: three brokers and their own bridge and worker.
CLUSTER = {"kafka-1", "kafka-2", "kafka-3", "bridge-cluster", "worker-cluster"}
NODES = ("kafka-1", "kafka-2", "kafka-3")


def test_cluster_profile_three_brokers_replicated_like_production() -> None:
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    for name in CLUSTER:
        assert services[name]["profiles"] == ["cluster"], name  # opt-in
    envs = [services[n]["environment"] for n in NODES]
    assert [e["KAFKA_NODE_ID"] for e in envs] == [1, 2, 3]
    voters = "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
    external = []
    for name, env in zip(NODES, envs, strict=True):
        assert services[name]["image"] == services["kafka"]["image"]
        assert "healthcheck" in services[name]
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == voters
        assert env["CLUSTER_ID"] == envs[0]["CLUSTER_ID"]
        assert f"INTERNAL://{name}:29092" in env["KAFKA_ADVERTISED_LISTENERS"]
        # Replication 3 and two in sync for every topic, the internal ones included.
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == 3
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == 2
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 3
        assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == 3
        assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == 2
        (port,) = services[name]["ports"]
        assert port.startswith("127.0.0.1:")  # loopback only
        external.append(port)
    assert len(set(external)) == 3
    for name, single in (("bridge-cluster", "bridge"), ("worker-cluster", "worker")):
        svc, base = services[name], services[single]
        assert svc["build"] == "." and svc["command"] == base["command"]
        env = svc["environment"]
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == ",".join(f"{n}:29092" for n in NODES)
        # The same settings as the single-node stack, bar the brokers.
        assert {k: v for k, v in env.items() if k != "KAFKA_BOOTSTRAP_SERVERS"} == {
            k: v for k, v in base["environment"].items() if k != "KAFKA_BOOTSTRAP_SERVERS"
        }
        assert "STREAMS_TOPIC_REPLICATION" not in env  # the cluster's size: 3
        for node in NODES:
            assert svc["depends_on"][node]["condition"] == "service_healthy"
        assert set(svc["ports"]).isdisjoint(base.get("ports", []))


@pytest.mark.skipif(not _compose_plugin(), reason="no `docker compose` plugin on this machine")
def test_docker_compose_config_accepts_it() -> None:
    proc = subprocess.run(
        ["docker", "compose", "-f", str(ROOT / "compose.yaml"), "config", "-q"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr


def test_credentials_documented_for_both_processes_and_prometheus() -> None:
    """Off by default; compose names the settings (commented), and prometheus.yml's commented
    examples are, uncommented, a bearer token and a basic-auth password read from files, for
    both jobs."""
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    text = (ROOT / "compose.yaml").read_text()
    for name in ("bridge", "worker"):
        assert not {"STREAMS_HTTP_BASIC_AUTH_FILE", "STREAMS_HTTP_TOKEN_FILE"} & set(
            services[name]["environment"]
        )
    for setting in ("STREAMS_HTTP_BASIC_AUTH_FILE", "STREAMS_HTTP_TOKEN_FILE"):
        assert text.count(f"# {setting}: ") == 2, setting  # the bridge's and the worker's
    assert "STREAMS_HTTP_TOKEN_FILE" in (ROOT / "deploy" / "compose.monitoring.yaml").read_text()
    prometheus = (ROOT / "deploy" / "prometheus.yml").read_text()
    keys = ("authorization", "type", "credentials_file", "basic_auth", "username", "password_file")
    example = re.compile(rf"^(\s+)# (\s*(?:{'|'.join(keys)}):)", re.M)
    jobs = {
        j["job_name"]: j for j in yaml.safe_load(example.sub(r"\1\2", prometheus))["scrape_configs"]
    }
    assert set(jobs) == {"voucherify-streams-bridge", "voucherify-streams-worker"}
    for job in jobs.values():
        assert job["authorization"]["type"] == "Bearer"
        assert job["authorization"]["credentials_file"].startswith("/etc/prometheus/secrets/")
        assert job["basic_auth"]["password_file"].startswith("/etc/prometheus/secrets/")
    for job in yaml.safe_load(prometheus)["scrape_configs"]:  # as shipped: no credentials
        assert "authorization" not in job and "basic_auth" not in job
