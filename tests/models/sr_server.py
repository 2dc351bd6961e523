"""A minimal in-process Confluent Schema Registry: the REST endpoints the client uses."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlparse


class Registry:
    """Schemas by id and subjects' versions; identical schema text keeps its id."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.schemas: dict[int, str] = {}
        self.subjects: dict[str, list[int]] = {}
        self.requests: list[tuple[str, str]] = []

    def register(self, subject: str, schema: str) -> int:
        schema_id = self.ids.setdefault(schema, len(self.ids) + 1)
        self.schemas[schema_id] = schema
        versions = self.subjects.setdefault(subject, [])
        if schema_id not in versions:
            versions.append(schema_id)
        return schema_id


def _handler(registry: Registry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            path = urlparse(self.path).path
            registry.requests.append(("POST", path))
            match = re.fullmatch(r"/subjects/([^/]+)/versions", path)
            if not match:
                return self._reply(404, {"error_code": 404, "message": "not found"})
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            schema_id = registry.register(unquote(match.group(1)), body["schema"])
            return self._reply(200, {"id": schema_id})

        def do_GET(self) -> None:
            path = urlparse(self.path).path
            registry.requests.append(("GET", path))
            match = re.fullmatch(r"/schemas/ids/(\d+)", path)
            if not match or int(match.group(1)) not in registry.schemas:
                return self._reply(404, {"error_code": 40403, "message": "Schema not found"})
            return self._reply(200, {"schema": registry.schemas[int(match.group(1))]})

    return Handler


@contextmanager
def schema_registry() -> Iterator[tuple[str, Registry]]:
    """(URL, registry) of a registry served on a free local port for the block's duration."""
    registry = Registry()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(registry))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", registry
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
