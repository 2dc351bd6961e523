"""Free TCP ports on 127.0.0.1, for local services and the processes of tests and benchmarks."""

from __future__ import annotations

import errno
import socket


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_pair() -> int:
    """A free port whose next port is free too (a local broker and its controller)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair")


def free_port_block(count: int, attempts: int = 100) -> int:
    """A free port followed by `count - 1` free ports (a local cluster's base port)."""
    for _ in range(attempts):
        port = free_port()
        if port + count <= 65535 and not any(port_in_use(p) for p in range(port, port + count)):
            return port
    raise RuntimeError(f"no {count} consecutive free ports")
