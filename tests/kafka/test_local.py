"""`voucherify-streams kafka start|stop|status`: the local broker's lifecycle and its errors."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from support.processes import free_port_pair

from streams.cli import main
from streams.dev.kafka import LocalKafka, broker_answers


def _args(port: int, home: Path) -> list[str]:
    return ["--kafka-port", str(port), "--kafka-home", str(home), "--kafka-heap", "512m"]


def _shared_home(tmp_path: Path, port: int) -> Path:
    # Share the jar cache with the default home so the test does not fetch them again.
    from streams.settings import Settings

    home = Path(Settings.from_env().kafka_home)
    (home / str(port)).mkdir(parents=True, exist_ok=True)
    return home


def test_port_taken_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = int(blocker.getsockname()[1])
        rc = main(["kafka", "start", *_args(port, tmp_path)])
    assert rc == 1
    assert f"port {port} is already in use" in capsys.readouterr().err


def test_stale_pid_file_recovers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port_pair()
    broker = LocalKafka(port, port + 1, tmp_path)
    broker.state_dir.mkdir(parents=True)
    broker.pid_file.write_text("999999")  # no such process
    assert main(["kafka", "status", *_args(port, tmp_path)]) == 3
    assert "not running" in capsys.readouterr().out
    assert not broker.pid_file.exists()


def test_start_twice_status_stop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port_pair()
    home = _shared_home(tmp_path, port)
    args = _args(port, home)
    broker = LocalKafka(port, port + 1, home)
    try:
        assert main(["kafka", "start", *args]) == 0
        out = capsys.readouterr().out
        assert f"Kafka started on localhost:{port}" in out and "kafka.log" in out
        assert broker_answers(broker.bootstrap)
        assert main(["kafka", "start", *args]) == 0
        assert "already running" in capsys.readouterr().out
        assert main(["kafka", "status", *args]) == 0
        assert "answering" in capsys.readouterr().out
    finally:
        assert main(["kafka", "stop", *args]) == 0
        main(["kafka", "reset", *args])
    assert broker.pid() is None
    assert not broker_answers(broker.bootstrap, timeout=1)
    assert main(["kafka", "stop", *args]) == 0
    assert "was not running" in capsys.readouterr().out
