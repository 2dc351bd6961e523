"""A small blocking HTTP GET for the dev tooling: tests and benchmarks poll the services with it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

__all__ = ["http_get", "scrape_metrics"]


def http_get(
    url: str, timeout: float = 10, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """(status, body as JSON, else as text); on an HTTP error its code and JSON body (e.g. a
    503's reason) or None; (0, None) when nothing answers, so a poll loop never has to catch.
    `headers`: e.g. the Authorization of STREAMS_HTTP_*_FILE (streams.http_auth)."""
    try:
        request = urllib.request.Request(url, headers=headers or {})
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            body = resp.read()
            try:
                return int(resp.status), json.loads(body)
            except ValueError:
                return int(resp.status), body.decode(errors="replace")
    except urllib.error.HTTPError as exc:
        try:
            return int(exc.code), json.loads(exc.read())
        except (OSError, ValueError):
            return int(exc.code), None
    except OSError:
        return 0, None


def scrape_metrics(
    url: str, timeout: float = 10, headers: dict[str, str] | None = None
) -> dict[str, float]:
    """The samples of a Prometheus text page (`/metrics`), by `name{labels}` as written.
    Nothing listening raises ConnectionError (an OSError, as urlopen's would be)."""
    status, text = http_get(url, timeout, headers)
    if status == 0:
        raise ConnectionError(f"{url} answered nothing")
    if status != 200 or not isinstance(text, str):
        raise RuntimeError(f"{url} answered {status}")
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples
