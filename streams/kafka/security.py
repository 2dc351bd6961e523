"""How every Kafka client of the project connects: one place, two builders, one set of settings.

- `librdkafka_config(settings, ...)`: the configuration of every confluent-kafka client (the
  bridge's producer, the worker's producer, the bulk restore's and the offset readers'
  consumers, the admin clients, the operator tools, replay, the demo and the dev tools):
  `bootstrap.servers`, then `security.protocol`, `sasl.*` and `ssl.*` from the settings, then
  the caller's own settings (which may not touch the security keys).
- `faust_broker_kwargs(settings)`: the `broker` and `broker_credentials` of the Faust app, so
  of its aiokafka consumer, producer and topic creation: `faust.SASLCredentials` or
  `faust.SSLCredentials` around one `ssl.SSLContext` made by aiokafka's `create_ssl_context`.

Both read the same `KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_*` and `KAFKA_SSL_*` settings, so the
two client libraries cannot drift apart; tests/kafka/test_client_builders.py fails when a client
is built anywhere else. With the defaults (PLAINTEXT) both give exactly what the clients were
given before: the bootstrap servers and nothing more.

Supported: PLAINTEXT, SSL (optionally with a client certificate: mutual TLS), SASL_PLAINTEXT and
SASL_SSL with PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512. Not supported: OAUTHBEARER (librdkafka
fetches OIDC client-credentials tokens itself, aiokafka does not: it would need a token provider
of our own), GSSAPI/Kerberos and AWS MSK IAM; the settings refuse them with a clear error.

Secrets (passwords, and the files holding them) are read when a configuration is built, never
kept in a repr: a `ClientConfig` prints `***` for them, Faust's credentials print the user name
only, and the errors here name settings and paths, never values.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from streams.settings import Settings

__all__ = [
    "SASL_MECHANISMS",
    "SECURITY_PROTOCOLS",
    "ClientConfig",
    "check_settings",
    "faust_broker_kwargs",
    "librdkafka_config",
    "librdkafka_log",
]

#: librdkafka's own log lines, from every client: through Python's logging (so a broker outage's
#: repeats are summarised by streams.logs, and formatted like every other line) rather than
#: librdkafka's default of writing to stderr. They reach it when the client is polled.
librdkafka_log = logging.getLogger("streams.kafka.librdkafka")

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_UNSUPPORTED = {
    "OAUTHBEARER": "aiokafka (the worker's client) has no OIDC client-credentials flow",
    "GSSAPI": "Kerberos is not supported",
    "AWS_MSK_IAM": "AWS MSK IAM is not supported",
}
#: librdkafka keys whose values are never shown.
SECRET_KEYS = frozenset({"sasl.password", "ssl.key.password", "ssl.keystore.password"})


def _protected(key: str) -> bool:
    """Keys only the settings set: the caller's layers may not change how a client connects."""
    return key == "security.protocol" or key.startswith(("sasl.", "ssl."))


class ClientConfig(dict[str, Any]):
    """A librdkafka configuration made by `librdkafka_config` (and only there): read-only, and
    its repr and str show `***` for every secret. Build a variant with
    `librdkafka_config(config, {...})`."""

    __slots__ = ()

    def __repr__(self) -> str:
        shown = {k: "***" if k in SECRET_KEYS and v else v for k, v in self.items()}
        return f"ClientConfig({shown!r})"

    __str__ = __repr__

    def _read_only(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError(
            "a ClientConfig is read-only: build another with librdkafka_config(config, {...})"
        )

    __setitem__ = __delitem__ = __ior__ = _read_only  # type: ignore[assignment]
    update = setdefault = pop = popitem = clear = _read_only  # type: ignore[assignment]

    def __reduce__(self) -> Any:  # pickled as what it is, not rebuilt item by item
        return (_rebuild, (dict(self),))


def _rebuild(items: dict[str, Any]) -> ClientConfig:
    config = ClientConfig()
    dict.update(config, items)
    return config


def librdkafka_config(
    source: Settings | ClientConfig,
    *layers: Mapping[str, Any],
    defaults: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> ClientConfig:
    """The configuration of a confluent-kafka client.

    `source`: the settings (bootstrap servers and security), or a configuration built here
    before, to add to. Then, lowest first: `defaults` (under everything, even `source`'s own
    keys), `source`, each of `layers`, `overrides` (keys without dots, e.g. `logger=...`).
    Neither layers, overrides nor defaults may set `security.protocol`, `sasl.*` or `ssl.*`.
    Every client logs through `librdkafka_log` unless a layer says otherwise.
    """
    from streams.settings import Settings

    if isinstance(source, ClientConfig):
        base: dict[str, Any] = dict(source)
    elif isinstance(source, Settings):
        base = _from_settings(source)
    else:
        raise TypeError(
            "librdkafka_config: expected Settings or a ClientConfig built by librdkafka_config, "
            f"got {type(source).__name__}"
        )
    extra: dict[str, Any] = {}
    for layer in layers:
        extra.update(layer)
    extra.update(overrides)
    bad = sorted(k for k in (*extra, *(defaults or {})) if _protected(k))
    if bad:
        raise ValueError(
            f"{', '.join(bad)}: set only from the KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_* and "
            "KAFKA_SSL_* settings"
        )
    return _rebuild({"logger": librdkafka_log, **(defaults or {}), **base, **extra})


def faust_broker_kwargs(settings: Settings) -> dict[str, Any]:
    """`faust.App(...)` keyword arguments: `broker`, and `broker_credentials` unless PLAINTEXT."""
    import faust

    out: dict[str, Any] = {"broker": broker_url(settings.bootstrap_servers)}
    protocol = _protocol(settings)
    if protocol == "PLAINTEXT":
        return out
    context = _ssl_context(settings) if protocol in {"SSL", "SASL_SSL"} else None
    if protocol.startswith("SASL_"):
        out["broker_credentials"] = faust.SASLCredentials(
            username=_username(settings),
            password=_password(settings),
            mechanism=settings.kafka_sasl_mechanism.upper(),
            ssl_context=context,
        )
    else:
        out["broker_credentials"] = faust.SSLCredentials(context)
    return out


def broker_url(bootstrap_servers: str) -> str:
    """Faust's broker URL of a comma-separated bootstrap list."""
    return ";".join(f"kafka://{h.strip()}" for h in bootstrap_servers.split(",") if h.strip())


# --- the settings, read ------------------------------------------------------------------


def _protocol(settings: Settings) -> str:
    return settings.kafka_security_protocol.strip().upper()


def _from_settings(settings: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {"bootstrap.servers": settings.bootstrap_servers}
    protocol = _protocol(settings)
    if protocol == "PLAINTEXT":
        return out
    out["security.protocol"] = protocol
    if protocol.startswith("SASL_"):
        out["sasl.mechanism"] = settings.kafka_sasl_mechanism.upper()
        out["sasl.username"] = _username(settings)
        out["sasl.password"] = _password(settings)
    if protocol in {"SSL", "SASL_SSL"}:
        verify = settings.kafka_ssl_verify_hostname
        out["ssl.endpoint.identification.algorithm"] = "https" if verify else "none"
        if settings.kafka_ssl_ca_file:
            out["ssl.ca.location"] = settings.kafka_ssl_ca_file
        if settings.kafka_ssl_cert_file:
            out["ssl.certificate.location"] = settings.kafka_ssl_cert_file
            out["ssl.key.location"] = settings.kafka_ssl_key_file
            key_password = _key_password(settings)
            if key_password:
                out["ssl.key.password"] = key_password
    return out


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    from aiokafka.helpers import create_ssl_context

    context = create_ssl_context(
        cafile=settings.kafka_ssl_ca_file or None,
        certfile=settings.kafka_ssl_cert_file or None,
        keyfile=settings.kafka_ssl_key_file or None,
        password=_key_password(settings) or None,
    )
    context.check_hostname = settings.kafka_ssl_verify_hostname
    return context


def read_secret_file(path: str, env: str) -> str:
    """A file's text, stripped; errors name the setting and the path, never the content."""
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ValueError(f"{env}: cannot read {path}: {reason}") from None
    if not text:
        raise ValueError(f"{env}: {path} is empty")
    return text


#: A secret file's text, for the other settings that name one (streams.http_auth).


def secret_value(value: str, file: str, env: str) -> str:
    return read_secret_file(file, f"{env}_FILE") if file else value


def username(settings: Settings) -> str:
    """The SASL user of the settings ("" without SASL)."""
    return _username(settings) if _protocol(settings).startswith("SASL_") else ""


def _username(settings: Settings) -> str:
    s = settings
    return secret_value(s.kafka_sasl_username, s.kafka_sasl_username_file, "KAFKA_SASL_USERNAME")


def _password(settings: Settings) -> str:
    s = settings
    return secret_value(s.kafka_sasl_password, s.kafka_sasl_password_file, "KAFKA_SASL_PASSWORD")


def _key_password(settings: Settings) -> str:
    s = settings
    return secret_value(
        s.kafka_ssl_key_password, s.kafka_ssl_key_password_file, "KAFKA_SSL_KEY_PASSWORD"
    )


# --- validation (Settings.validated) ------------------------------------------------------


def one_of_each(pairs: list[tuple[str, str, str]]) -> None:
    """Raise ValueError when a setting is given both as `X` and as `X_FILE` (`(X, value,
    file)` each)."""
    for env, value, file in pairs:
        if value and file:
            raise ValueError(f"{env} and {env}_FILE are both set: set one of them")


def check_settings(settings: Settings) -> None:
    """Raise ValueError naming the settings when the Kafka security settings do not fit
    together, or a file they name cannot be read. Never shows a secret."""
    s = settings
    protocol = _protocol(s)
    if protocol not in SECURITY_PROTOCOLS:
        raise ValueError(
            f"KAFKA_SECURITY_PROTOCOL: expected {', '.join(SECURITY_PROTOCOLS)}, "
            f"got {s.kafka_security_protocol!r}"
        )
    one_of_each(
        [
            ("KAFKA_SASL_USERNAME", s.kafka_sasl_username, s.kafka_sasl_username_file),
            ("KAFKA_SASL_PASSWORD", s.kafka_sasl_password, s.kafka_sasl_password_file),
            ("KAFKA_SSL_KEY_PASSWORD", s.kafka_ssl_key_password, s.kafka_ssl_key_password_file),
        ]
    )
    sasl = {
        "KAFKA_SASL_MECHANISM": s.kafka_sasl_mechanism,
        "KAFKA_SASL_USERNAME(_FILE)": s.kafka_sasl_username or s.kafka_sasl_username_file,
        "KAFKA_SASL_PASSWORD(_FILE)": s.kafka_sasl_password or s.kafka_sasl_password_file,
    }
    if protocol.startswith("SASL_"):
        mechanism = s.kafka_sasl_mechanism.strip().upper()
        if not mechanism:
            raise ValueError(
                f"KAFKA_SASL_MECHANISM: KAFKA_SECURITY_PROTOCOL={protocol} needs one of "
                f"{', '.join(SASL_MECHANISMS)}"
            )
        if mechanism in _UNSUPPORTED:
            raise ValueError(
                f"KAFKA_SASL_MECHANISM: {mechanism} is not supported ({_UNSUPPORTED[mechanism]}); "
                f"use one of {', '.join(SASL_MECHANISMS)}"
            )
        if mechanism not in SASL_MECHANISMS:
            raise ValueError(
                f"KAFKA_SASL_MECHANISM: expected {', '.join(SASL_MECHANISMS)}, "
                f"got {s.kafka_sasl_mechanism!r}"
            )
        missing = [name for name, given in sasl.items() if not given]
        if missing:
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={protocol} needs {' and '.join(missing)} "
                "(or their _FILE variants)"
            )
        _username(s), _password(s)  # readable and not empty
    else:
        given = [name for name, value in sasl.items() if value]
        if given:
            raise ValueError(
                f"{', '.join(given)} set, but KAFKA_SECURITY_PROTOCOL={protocol} uses no SASL "
                "(SASL_PLAINTEXT or SASL_SSL)"
            )
    tls = {
        "KAFKA_SSL_CA_FILE": s.kafka_ssl_ca_file,
        "KAFKA_SSL_CERT_FILE": s.kafka_ssl_cert_file,
        "KAFKA_SSL_KEY_FILE": s.kafka_ssl_key_file,
        "KAFKA_SSL_KEY_PASSWORD(_FILE)": s.kafka_ssl_key_password or s.kafka_ssl_key_password_file,
    }
    if protocol not in {"SSL", "SASL_SSL"}:
        given = [name for name, value in tls.items() if value]
        if given:
            raise ValueError(
                f"{', '.join(given)} set, but KAFKA_SECURITY_PROTOCOL={protocol} uses no TLS "
                "(SSL or SASL_SSL)"
            )
        return
    if bool(s.kafka_ssl_cert_file) != bool(s.kafka_ssl_key_file):
        raise ValueError("KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE go together: set both")
    if tls["KAFKA_SSL_KEY_PASSWORD(_FILE)"] and not s.kafka_ssl_key_file:
        raise ValueError("KAFKA_SSL_KEY_PASSWORD(_FILE) set without KAFKA_SSL_KEY_FILE")
    for env in ("KAFKA_SSL_CA_FILE", "KAFKA_SSL_CERT_FILE", "KAFKA_SSL_KEY_FILE"):
        if tls[env]:
            read_secret_file(tls[env], env)
    _key_password(s)
