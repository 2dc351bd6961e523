"""streams.http_auth: the files, the Authorization header, the constant-time check against
every credential, the 401 that tells nothing, rotation, and the worker's middleware."""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from streams import http_auth
from streams.http_auth import UNAUTHORIZED_BODY, HttpAuth, client_headers
from streams.settings import Settings
from streams.web.auth import middleware

# Credentials unlike anything else in the code: if one shows up in a message, it leaked.
ANN = "ann:s3cret-Ann-pass:word"  # a colon in the password is allowed
BOB = "bob:hunter2-Bob-Pa55"
TOKEN = "tok-Prometheus-9f8e7d6c5b4a"
TOKEN2 = "tok-Rotated-1a2b3c4d5e6f="
SECRETS = ("s3cret-Ann", "hunter2-Bob", "tok-Prometheus", "tok-Rotated")


def basic(credential: str) -> str:
    return "Basic " + base64.b64encode(credential.encode()).decode()


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    users = tmp_path / "users"
    users.write_text(f"# who may read the analytics\n{ANN}\n\n  {BOB}  \n")
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{TOKEN}\n{TOKEN2}\n")
    return users, tokens


@pytest.fixture
def auth(files: tuple[Path, Path]) -> HttpAuth:
    return HttpAuth(str(files[0]), str(files[1]))


def no_secret_in(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def test_every_configured_credential_is_accepted(auth: HttpAuth) -> None:
    for header in (basic(ANN), basic(BOB), f"Bearer {TOKEN}", f"Bearer {TOKEN2}"):
        assert auth.check(header) is None, header
    # Schemes are case-insensitive (RFC 7235); spaces around the value are tolerated.
    assert auth.check(f"bearer   {TOKEN} ") is None
    assert auth.check("BASIC " + basic(ANN).split()[1]) is None


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ("Basic", "malformed"),
        ("Basic ", "malformed"),
        ("Basic not*base64", "malformed"),
        ("Basic " + base64.b64encode(b"no-colon-here").decode(), "malformed"),
        ("Bearer", "malformed"),
        ("Bearer two words", "malformed"),
        ("Bearer tok\u00e9n", "malformed"),
        ("Digest username=ann", "malformed"),
        (TOKEN, "malformed"),  # a token without its scheme
        (basic("ann:wrong"), "wrong"),
        (basic("ann:s3cret-Ann-pass"), "wrong"),  # a prefix of the password
        (basic(ANN + "x"), "wrong"),
        (basic("bob:s3cret-Ann-pass:word"), "wrong"),  # another user's password
        ("Bearer tok-Prometheus", "wrong"),
        (f"Bearer {TOKEN}x", "wrong"),
        ("Bearer " + base64.b64encode(ANN.encode()).decode(), "wrong"),  # not a token
    ],
)
def test_refused_with_the_reason(auth: HttpAuth, header: str | None, reason: str) -> None:
    assert auth.check(header) == reason


def test_only_the_configured_schemes(files: tuple[Path, Path]) -> None:
    users_only = HttpAuth(basic_file=str(files[0]))
    assert users_only.check(basic(ANN)) is None
    assert users_only.check(f"Bearer {TOKEN}") == "wrong"
    assert users_only.headers["WWW-Authenticate"] == 'Basic realm="voucherify-streams"'
    tokens_only = HttpAuth(token_file=str(files[1]))
    assert tokens_only.check(f"Bearer {TOKEN}") is None
    assert tokens_only.check(basic(ANN)) == "wrong"
    assert tokens_only.headers["WWW-Authenticate"] == 'Bearer realm="voucherify-streams"'


def test_compared_in_constant_time_with_every_credential(
    auth: HttpAuth, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(http_auth.hmac, "compare_digest", counting)
    for header in (
        basic(ANN),
        basic(BOB),
        basic("ann:x"),
        basic("a-much-longer-user:" + "p" * 300),
    ):
        calls.clear()
        auth.check(header)
        # Every configured password compared, whichever matched (none, the first, the last),
        # and always digests of one length: the time tells neither which nor how long.
        assert calls == [(32, 32), (32, 32)], header
    calls.clear()
    auth.check(f"Bearer {TOKEN2}")
    assert calls == [(32, 32), (32, 32)]


def test_the_401_tells_nothing(auth: HttpAuth, files: tuple[Path, Path]) -> None:
    assert UNAUTHORIZED_BODY == b'{"error":"unauthorized","message":"authentication required"}'
    assert auth.headers == {
        "WWW-Authenticate": 'Basic realm="voucherify-streams", Bearer realm="voucherify-streams"',
        "Cache-Control": "no-store",
    }
    shown = repr(auth) + str(auth.headers) + UNAUTHORIZED_BODY.decode()
    no_secret_in(shown)
    assert "users" not in UNAUTHORIZED_BODY.decode() + str(auth.headers)  # nor the paths
    assert str(files[0]) in repr(auth)  # the repr names the files, only them


def test_files_are_checked_and_errors_name_setting_path_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "users"
    for content, what in (
        (f"{ANN}\nhunter2-Bob-Pa55-no-user\n", "line 2: expected user:password"),
        (f"{ANN}\n:hunter2-Bob-Pa55\n", "line 2: expected user:password"),
        ("bob-hunter2-Bob:\n", "line 1: expected user:password"),
        ("# nobody yet\n\n", "holds no credentials"),
        ("\n \n", "is empty"),
    ):
        bad.write_text(content)
        with pytest.raises(ValueError) as err:
            Settings.from_env({"STREAMS_HTTP_BASIC_AUTH_FILE": str(bad)})
        message = str(err.value)
        assert message.startswith(f"STREAMS_HTTP_BASIC_AUTH_FILE: {bad}"), message
        assert what in message
        no_secret_in(message)
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{TOKEN}\ntok-Rotated with a space\n")
    with pytest.raises(ValueError, match=r"STREAMS_HTTP_TOKEN_FILE: .*tokens line 2: not a") as e:
        Settings.from_env({"STREAMS_HTTP_TOKEN_FILE": str(tokens)})
    no_secret_in(str(e.value))
    missing = tmp_path / "nope"
    with pytest.raises(ValueError, match=rf"STREAMS_HTTP_TOKEN_FILE: cannot read {missing}"):
        Settings.from_env({}, http_token_file=str(missing))


def test_settings_off_by_default_and_never_shown(files: tuple[Path, Path]) -> None:
    assert HttpAuth.from_settings(Settings.from_env({})) is None
    assert client_headers(Settings.from_env({})) == {}
    settings = Settings.from_env(
        {"STREAMS_HTTP_BASIC_AUTH_FILE": str(files[0]), "STREAMS_HTTP_TOKEN_FILE": str(files[1])}
    )
    no_secret_in(repr(settings))
    no_secret_in(repr(HttpAuth.from_settings(settings)))
    # A client of these processes sends the first token (tokens are for machines).
    assert client_headers(settings) == {"Authorization": f"Bearer {TOKEN}"}
    users_only = settings.with_(http_token_file="")
    assert client_headers(users_only) == {"Authorization": basic(ANN)}


def test_rotation_without_a_restart(
    files: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    users, tokens = files
    auth = HttpAuth(str(users), str(tokens))
    assert auth.client_headers()[0] == f"Bearer {TOKEN}"
    tokens.write_text("tok-Rotated-new-one\n")
    os.utime(tokens, ns=(1, 1))  # a change the stat sees, however coarse the clock
    auth.reload_if_changed(now=1e12)
    assert auth.check("Bearer tok-Rotated-new-one") is None
    assert auth.check(f"Bearer {TOKEN}") == "wrong"
    assert auth.client_headers()[0] == "Bearer tok-Rotated-new-one"
    # A broken file keeps what was read before, and says so without its content.
    tokens.write_text("tok-Rotated broken line\n")
    os.utime(tokens, ns=(2, 2))
    with caplog.at_level(logging.ERROR, logger="streams.http_auth"):
        auth.reload_if_changed(now=2e12)
    assert auth.check("Bearer tok-Rotated-new-one") is None
    assert "not reloaded" in caplog.text and f"{tokens} line 1" in caplog.text
    no_secret_in(caplog.text)


def test_refusals_logged_rate_limited_without_the_credential(
    auth: HttpAuth, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="streams.http_auth"):
        for header in (basic("ann:hunter2-Bob-Pa55"), f"Bearer {TOKEN}x", None):
            reason = auth.check(header)
            assert reason is not None
            auth.refused(reason, "GET", "/analytics/loyalty")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1, lines  # the others counted into the next line, 10 s later
    assert "refused 1 HTTP request(s)" in lines[0] and "/analytics/loyalty" in lines[0]
    no_secret_in(caplog.text)


# --- the worker's middleware (streams.web.auth) --------------------------------------------


def _ask(guard: Any, path: str, authorization: str | None = None) -> web.StreamResponse:
    headers = {"Authorization": authorization} if authorization else {}
    request = make_mocked_request("GET", path, headers=headers)

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(text="the analytics")

    return asyncio.run(guard(request, handler))


def test_worker_middleware(auth: HttpAuth) -> None:
    failures: Counter[str] = Counter()
    guard = middleware(auth, failures)
    for path in ("/healthz", "/readyz"):
        assert _ask(guard, path).status == 200
    for path in ("/analytics/loyalty", "/dashboard", "/dashboard/data", "/metrics", "/", "/nope"):
        refused = _ask(guard, path)
        assert refused.status == 401, path
        assert isinstance(refused, web.Response) and refused.body == UNAUTHORIZED_BODY
        assert refused.headers["WWW-Authenticate"].startswith('Basic realm="voucherify-streams"')
        assert _ask(guard, path, basic("ann:nope")).status == 401
        assert _ask(guard, path, basic(BOB)).status == 200
        assert _ask(guard, path, f"Bearer {TOKEN}").status == 200
    assert failures == {"missing": 6, "wrong": 6}
