"""A tiny HTTP client of a bridge (any server) on 127.0.0.1, signing like Voucherify."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any

from streams.bridge.signature import sign

__all__ = ["SECRET", "Client", "Reply"]

SECRET = "test-webhook-secret"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """A tiny HTTP client of a bridge on 127.0.0.1:`port`, signing with SECRET."""

    port = 0

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def post(
        self,
        body: bytes,
        *,
        secret: str | None = SECRET,
        signature: str | None = None,
        content_type: str = "application/json",
        **headers: str,
    ) -> Reply:
        h = {"Content-Type": content_type, **headers}
        if signature is None and secret is not None:
            signature = sign(secret, body)
        if signature is not None:
            h["x-voucherify-signature"] = signature
        return self.request("POST", "/webhooks/voucherify", body, h)
