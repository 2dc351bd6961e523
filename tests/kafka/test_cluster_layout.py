"""The local cluster's layout: ports derived from the base port, sizes, errors (only the last
test starts JVMs)."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from streams.cli import main
from streams.dev.kafka import KafkaError, LocalCluster, replication_for
from streams.dev.ports import free_port_block
from streams.settings import Settings


def _ports(cluster: LocalCluster) -> set[int]:
    return {p for n in cluster.nodes for p in (n.port, n.controller_port)}


def test_ports_of_every_node_from_the_base(tmp_path: Path) -> None:
    cluster = LocalCluster(39092, 3, tmp_path)
    assert [(n.node_id, n.port, n.controller_port) for n in cluster.nodes] == [
        (1, 39092, 39093),
        (2, 39094, 39095),
        (3, 39096, 39097),
    ]
    assert cluster.bootstrap == "localhost:39092,localhost:39094,localhost:39096"
    assert {n.state_dir for n in cluster.nodes} == {
        tmp_path / "cluster-39092" / f"node-{i}" for i in (1, 2, 3)
    }
    props = (cluster.nodes[1]._properties(Path("/d"))).splitlines()
    assert "node.id=2" in props
    assert "controller.quorum.voters=1@127.0.0.1:39093,2@127.0.0.1:39095,3@127.0.0.1:39097" in props
    assert "min.insync.replicas=2" in props and "offsets.topic.replication.factor=3" in props
    assert "transaction.state.log.min.isr=2" in props


def test_clusters_ten_ports_apart_never_collide(tmp_path: Path) -> None:
    for size in range(1, 6):
        for other in range(1, 6):
            a, b = LocalCluster(30000, size, tmp_path), LocalCluster(30010, other, tmp_path)
            assert not _ports(a) & _ports(b)


def test_one_node_is_the_broker_of_before(tmp_path: Path) -> None:
    (node,) = LocalCluster(9092, 1, tmp_path).nodes
    assert (node.port, node.controller_port, node.state_dir) == (9092, 9093, tmp_path / "9092")
    props = node._properties(Path("/d")).splitlines()
    assert "offsets.topic.replication.factor=1" in props
    assert not any(p.startswith("min.insync.replicas") for p in props)
    assert replication_for(1) == (1, 1) and replication_for(3) == (3, 2)
    assert replication_for(5) == (3, 2) and replication_for(2) == (2, 1)


def test_bad_sizes_and_nodes_are_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["kafka", "start", "--brokers", "6", "--kafka-home", str(tmp_path)]) == 2
    assert "STREAMS_KAFKA_BROKERS: expected 1 to 5, got 6" in capsys.readouterr().err
    assert main(["kafka", "start", "--brokers", "0", "--kafka-home", str(tmp_path)]) == 2
    with pytest.raises(KafkaError, match="--node 4: the cluster has nodes 1 to 3"):
        LocalCluster(39092, 3, tmp_path).node(4)
    LocalCluster(65530, 3, tmp_path)  # its last port is 65535
    with pytest.raises(KafkaError, match="ports 65531-65536"):
        LocalCluster(65531, 3, tmp_path)
    args = ["--kafka-home", str(tmp_path), "--kafka-port", "39092"]
    rc = main(["kafka", "start", "--brokers", "3", "--kafka-controller-port", "40000", *args])
    assert rc == 1 and "for one broker only" in capsys.readouterr().err


def test_a_taken_port_names_the_node_and_starts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = free_port_block(6)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", base + 3))  # node 2's controller port
        blocker.listen()
        rc = main(
            [
                "kafka",
                "start",
                "--brokers",
                "3",
                "--kafka-port",
                str(base),
                "--kafka-home",
                str(tmp_path),
            ]
        )
    assert rc == 1
    assert f"port {base + 3} is already in use by another process (node 2's controller port)" in (
        capsys.readouterr().err
    )
    assert not LocalCluster(base, 3, tmp_path).running()


@pytest.mark.kafka
@pytest.mark.timeout(180)
def test_a_node_that_cannot_join_stops_the_whole_start(tmp_path: Path) -> None:
    """Node 3's log dir belongs to another cluster: it exits; the error names it, its port and
    its log, and nodes 1 and 2 are stopped again (no half-started cluster)."""
    home = Path(Settings.from_env().kafka_home)  # its jar cache; the cluster's own dir is removed
    cluster = LocalCluster(free_port_block(6), 3, home, "384m")
    try:
        bad = cluster.nodes[2]
        bad.data_dir.mkdir(parents=True)
        (bad.data_dir / "meta.properties").write_text(
            "version=1\ncluster.id=AAAAAAAAAAAAAAAAAAAAAA\nnode.id=3\n"
            "directory.id=AAAAAAAAAAAAAAAAAAAAAA\n"
        )
        with pytest.raises(KafkaError) as failed:
            cluster.start(timeout=90)
        message = str(failed.value)
        assert (
            "node 3" in message and f"port {bad.port}" in message and str(bad.log_file) in message
        )
        assert not cluster.running()
    finally:
        cluster.stop()
        shutil.rmtree(cluster.cluster_dir, ignore_errors=True)
