"""Who may read the analytics: HTTP basic auth and bearer tokens, for the worker and the bridge.

Off unless `STREAMS_HTTP_BASIC_AUTH_FILE` (one `user:password` a line) or
`STREAMS_HTTP_TOKEN_FILE` (one bearer token a line) is set; both may be. Several lines allow
rotation: every line is accepted. Blank lines and lines starting with `#` are skipped.

With it on, the worker asks for credentials on every path but `/healthz` and `/readyz` (its
views, the dashboard and its assets, `/metrics`, `/`, and any path it does not serve, so a 401
tells nothing of what exists), and the bridge on its `/metrics` (its webhook route has its
signature; its probes stay open). This module knows no HTTP framework: `HttpAuth.check` takes
the `Authorization` header's value; the worker's aiohttp middleware (streams.web.auth) and the
bridge's route table (`Bridge.route`, shared by its own server, aiohttp, ASGI and RSGI) call it.

- The given credentials are compared with every configured one, each comparison in constant
  time over HMAC-SHA-256 digests (a per-process key), all of them made whatever matched: the
  time taken tells neither which part was wrong nor how long a credential is.
- A refusal is a 401 with `WWW-Authenticate` (Basic and/or Bearer, realm
  "voucherify-streams") and one fixed body, whatever was wrong (missing, malformed, wrong).
- Refusals are counted by the caller's metrics and logged at most every
  `REFUSED_LOG_INTERVAL_S` with a count, the latest reason and path, never the credential.
- The files are read at start (a file that cannot be read, is empty or holds a malformed line
  stops the process with an error naming the setting, the path and the line number, never the
  content) and again when they change (checked at most once a second), so credentials rotate
  without a restart; a changed file that does not parse is logged and the credentials read
  before are kept.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from streams.kafka.security import read_secret_file

if TYPE_CHECKING:
    from streams.settings import Settings

__all__ = [
    "OPEN_PATHS",
    "REALM",
    "REASONS",
    "UNAUTHORIZED_BODY",
    "HttpAuth",
    "check_settings",
    "client_headers",
]

log = logging.getLogger("streams.http_auth")

REALM = "voucherify-streams"
#: The probes: supervisors and load balancers ask them without credentials.
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
#: Why a request was refused (the metrics' `reason` label; never told to the client).
REASONS = ("missing", "malformed", "wrong")
#: The one body of every 401: nothing about what was wrong or what the server has.
UNAUTHORIZED_BODY = b'{"error":"unauthorized","message":"authentication required"}'
REFUSED_LOG_INTERVAL_S = 10.0
RELOAD_CHECK_S = 1.0

BASIC_ENV = "STREAMS_HTTP_BASIC_AUTH_FILE"
TOKEN_ENV = "STREAMS_HTTP_TOKEN_FILE"

# RFC 6750's b64token (RFC 7235's token68).
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def _lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line that counts: stripped, not blank, not a comment."""
    found = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            found.append((number, line))
    return found


def parse_basic(text: str, env: str, path: str) -> list[bytes]:
    """The `user:password` lines of a basic-auth file, as the bytes a client base64-encodes
    (UTF-8). Errors name the setting, the path and the line, never its content."""
    found = []
    for number, line in _lines(text):
        user, colon, password = line.partition(":")
        if not colon or not user.strip() or not password:
            raise ValueError(
                f"{env}: {path} line {number}: expected user:password (a user name, a colon, "
                "a password)"
            )
        found.append(line.encode("utf-8"))
    if not found:
        raise ValueError(f"{env}: {path} holds no credentials (only blank or # lines)")
    return found


def parse_tokens(text: str, env: str, path: str) -> list[bytes]:
    """The bearer tokens of a token file. Errors name the setting, the path and the line."""
    found = []
    for number, line in _lines(text):
        if not _TOKEN68.fullmatch(line):
            raise ValueError(
                f"{env}: {path} line {number}: not a bearer token (letters, digits and "
                "-._~+/ only, then any = padding; no spaces)"
            )
        found.append(line.encode("ascii"))
    if not found:
        raise ValueError(f"{env}: {path} holds no tokens (only blank or # lines)")
    return found


def _stamp(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


@dataclass
class _Source:
    """One credentials file, re-read when it changes."""

    env: str
    path: str
    scheme: str  # "Basic" or "Bearer"
    stamp: tuple[int, int, int] | None = None

    def read(self) -> list[bytes]:
        stamp = _stamp(self.path)
        text = read_secret_file(self.path, self.env)
        parse = parse_basic if self.scheme == "Basic" else parse_tokens
        found = parse(text, self.env, self.path)
        self.stamp = stamp
        return found


class HttpAuth:
    """The credentials configured for the HTTP endpoints, and the check of a request's
    `Authorization` header against them. Its repr names the files, never a credential."""

    def __init__(self, basic_file: str = "", token_file: str = "") -> None:
        if not basic_file and not token_file:
            raise ValueError(f"HttpAuth: neither {BASIC_ENV} nor {TOKEN_ENV} given")
        self._key = secrets.token_bytes(32)  # digests made here mean nothing elsewhere
        self._sources = [
            _Source(env, path, scheme)
            for env, path, scheme in (
                (BASIC_ENV, basic_file, "Basic"),
                (TOKEN_ENV, token_file, "Bearer"),
            )
            if path
        ]
        self.schemes = tuple(s.scheme for s in self._sources)
        # The challenge: Basic first, so a browser asks for a user and a password.
        self.challenge = ", ".join(f'{scheme} realm="{REALM}"' for scheme in self.schemes)
        self.headers = {"WWW-Authenticate": self.challenge, "Cache-Control": "no-store"}
        self._digests: dict[str, list[bytes]] = {}
        self._client: list[str] = []
        self._refused_since_log = 0
        self._refused_logged_at = float("-inf")
        self._load({s.scheme: s.read() for s in self._sources})
        self._checked_at = time.monotonic()

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpAuth | None:
        """The settings' credentials, or None when authentication is off."""
        basic, tokens = settings.http_basic_auth_file, settings.http_token_file
        return cls(basic, tokens) if basic or tokens else None

    def __repr__(self) -> str:
        files = ", ".join(f"{s.env}={s.path!r}" for s in self._sources)
        return f"HttpAuth({files})"

    # -- credentials ----------------------------------------------------------------------

    def _digest(self, scheme: str, credential: bytes) -> bytes:
        return hmac.new(self._key, scheme.encode() + b"\0" + credential, hashlib.sha256).digest()

    def _load(self, found: dict[str, list[bytes]]) -> None:
        self._digests = {
            scheme: [self._digest(scheme, c) for c in creds] for scheme, creds in found.items()
        }
        # What this process sends to the others (the worker's views gathered from every
        # worker): each credential in the files' order, tokens first (they are for machines).
        client = [f"Bearer {c.decode()}" for c in found.get("Bearer", [])]
        client += [f"Basic {base64.b64encode(c).decode()}" for c in found.get("Basic", [])]
        self._client = client

    def reload_if_changed(self, now: float | None = None) -> None:
        """Re-read the files when they changed (looked at once a second at most). A changed
        file that cannot be read or parsed keeps the credentials read before (logged)."""
        now = time.monotonic() if now is None else now
        if now - self._checked_at < RELOAD_CHECK_S:
            return
        self._checked_at = now
        if all(_stamp(s.path) == s.stamp for s in self._sources):
            return
        try:
            found = {s.scheme: s.read() for s in self._sources}
        except ValueError as exc:  # names the setting, the path and the line only
            log.error("HTTP credentials not reloaded, the ones read before stay: %s", exc)
            for s in self._sources:  # not again until the file changes once more
                s.stamp = _stamp(s.path)
            return
        self._load(found)
        log.info("HTTP credentials reloaded from %s", ", ".join(s.path for s in self._sources))

    def client_headers(self) -> list[str]:
        """`Authorization` values this process may send to its peers, the first one first."""
        self.reload_if_changed()
        return list(self._client)

    # -- a request ------------------------------------------------------------------------

    def check(self, authorization: str | None) -> str | None:
        """None when `authorization` (the header's value, or None without one) holds
        credentials configured here; else why not: one of REASONS."""
        self.reload_if_changed()
        if not authorization:
            return "missing"
        scheme, _, value = authorization.strip().partition(" ")
        scheme, value = scheme.capitalize(), value.strip()
        if scheme not in {"Basic", "Bearer"} or not value:
            return "malformed"
        if scheme == "Basic":
            try:
                credential = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                return "malformed"
            if b":" not in credential:
                return "malformed"
        elif _TOKEN68.fullmatch(value):
            credential = value.encode("ascii")
        else:
            return "malformed"
        expected_all = self._digests.get(scheme)
        if not expected_all:  # a scheme not configured here
            return "wrong"
        given = self._digest(scheme, credential)
        matched = False
        for expected in expected_all:  # every one compared: no early exit
            matched |= hmac.compare_digest(given, expected)
        return None if matched else "wrong"

    def refused(self, reason: str, method: str, path: str) -> None:
        """Log refusals, at most once every REFUSED_LOG_INTERVAL_S: a count, the latest
        reason and path. The credential is never logged."""
        self._refused_since_log += 1
        now = time.monotonic()
        if now - self._refused_logged_at >= REFUSED_LOG_INTERVAL_S:
            log.warning(
                "refused %d HTTP request(s) without valid credentials in the last %.0fs "
                "(latest: %s credentials, %s %.100r)",
                self._refused_since_log,
                REFUSED_LOG_INTERVAL_S,
                reason,
                method,
                path,
            )
            self._refused_logged_at = now
            self._refused_since_log = 0


def client_headers(settings: Settings) -> dict[str, str]:
    """The headers a client of the settings' processes sends (the demo, the tests, the
    benchmarks): `Authorization` with the first credential, or none when auth is off."""
    auth = HttpAuth.from_settings(settings)
    return {"Authorization": auth.client_headers()[0]} if auth is not None else {}


def check_settings(settings: Settings) -> None:
    """Raise ValueError naming the setting and the path when a credentials file cannot be read
    or holds a malformed line (Settings.validated). Never shows a credential."""
    HttpAuth.from_settings(settings)
