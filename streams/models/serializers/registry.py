"""The Schema Registry side of the Avro codec: subjects, registration, compatibility, lookups.

Works with any Confluent-compatible registry (Confluent's, Apicurio's `/apis/ccompat/v7`,
confluent-kafka's `mock://` client in unit tests) through confluent-kafka's SchemaRegistryClient.

- Subjects follow the TopicNameStrategy: `<topic>-value`, what Confluent's serializers, Kafka
  Connect's AvroConverter and ksqlDB look up by default.
- Before a schema is first registered under a subject, the subject's compatibility level is
  raised to at least BACKWARD_TRANSITIVE (see COMPATIBILITY). A registry that refuses the schema
  raises IncompatibleSchema naming the subject and the registry's reason.
- Writer schemas are cached by id for good: a schema id never changes meaning, so a worker that
  has seen an id keeps decoding through a registry outage.
- Errors are split by whose fault they are: UnknownSchemaId (the registry has no such id: the
  record is bad), RegistryUnavailable (unreachable, timed out, 5xx: retry later, never blame the
  record), SchemaRegistrationError (the registry refused a registration), RegistryAuthError (the
  registry refused the credentials or denied them the request, or its TLS certificate is not
  trusted: an operator must act; neither the record's fault nor the schema's).

Every client of a real registry is built by `new_client(settings)` from `client_config`: the
URL, then HTTP basic auth (SCHEMA_REGISTRY_USERNAME/PASSWORD, or a user and password in the URL)
or a static bearer token (SCHEMA_REGISTRY_TOKEN), and SCHEMA_REGISTRY_CA_FILE for HTTPS; the
`_FILE` variants are read whenever a client is built. Secrets never reach a repr (a
`RegistryConfig` shows `***`), a log line or an error message, and URLs are shown without their
user and password.
"""

from __future__ import annotations

import hashlib
import json
import logging
import ssl
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from streams.kafka.security import one_of_each, read_secret_file, secret_value
from streams.models.errors import DecodeError
from streams.settings import Settings, redact_url

__all__ = [
    "COMPATIBILITY",
    "IncompatibleSchema",
    "RegistryAuthError",
    "RegistryConfig",
    "RegistryUnavailable",
    "SchemaRegistrationError",
    "SchemaRegistry",
    "UnknownSchemaId",
    "check_settings",
    "client_config",
    "new_client",
    "subject_for",
]

log = logging.getLogger(__name__)

#: The level set on the project's subjects. BACKWARD (Confluent's default) checks a new schema
#: against the latest version only; the analytics topics are compacted and keep records of every
#: past version for good, so a consumer on the newest schema must read all of them: transitive.
#: Which Settings attribute names the topic each record schema is published to.
TOPIC_SETTING: dict[str, str] = {
    "CustomerDeleted": "customer_deleted_topic",
    "DeadLetter": "dead_letter_topic",
    "LoyaltyPointsLost": "loyalty_topic",
    "ReferralImpact": "referral_topic",
    "CustomerDeletion": "deletions_topic",
}

COMPATIBILITY = "BACKWARD_TRANSITIVE"
#: Levels that already include every check of COMPATIBILITY (an operator's choice is kept).
_AT_LEAST = {"BACKWARD_TRANSITIVE", "FULL_TRANSITIVE"}
#: Levels raised to the strictest of theirs and ours.
_RAISE = {"FORWARD": "FULL_TRANSITIVE", "FORWARD_TRANSITIVE": "FULL_TRANSITIVE"}

#: Reads and writes of a subject's compatibility level before giving up (see
#: SchemaRegistry.ensure_compatibility).
LEVEL_ATTEMPTS = 5

#: Client settings: the client's own default waits forever on a hung registry.
DEFAULT_CLIENT_CONFIG: dict[str, Any] = {"timeout": 5, "max.retries": 1, "retries.wait.ms": 200}


class RegistryUnavailable(RuntimeError):
    """The registry could not answer (unreachable, timeout, 5xx): nobody's fault, retry later."""


class RegistryAuthError(RuntimeError):
    """The registry and this process do not get past authentication: it refused the credentials
    (HTTP 401) or denied them the request (403), its TLS certificate is not trusted, or a
    credentials file cannot be read. Not the record's fault nor the schema's, and waiting alone
    does not fix it: an operator must (a fixed `_FILE` is read again by the next client built).
    The message names the registry (without credentials) and the settings to check."""


class SchemaRegistrationError(RuntimeError):
    """The registry refused to register a schema under `subject`."""

    def __init__(self, subject: str, message: str) -> None:
        super().__init__(message)
        self.subject = subject


class IncompatibleSchema(SchemaRegistrationError):
    """The schema breaks the subject's compatibility level (HTTP 409)."""


class UnknownSchemaId(DecodeError):
    """A Confluent-framed record names a schema id the registry does not know."""

    def __init__(self, schema_id: int) -> None:
        super().__init__(f"schema registry id {schema_id} is unknown to the registry")
        self.schema_id = schema_id


def subject_for(topic: str) -> str:
    """The TopicNameStrategy subject of a topic's values."""
    return f"{topic}-value"


# --- the client and its configuration -------------------------------------------------------

#: Configuration keys whose values are never shown.
SECRET_KEYS = frozenset({"basic.auth.user.info", "bearer.auth.token", "ssl.key.password"})


class RegistryConfig(dict[str, Any]):
    """A SchemaRegistryClient configuration: its repr and str show `***` for the secrets (the
    client keeps it as its `config()`). `credentials` names the settings its credentials came
    from, for error messages."""

    __slots__ = ("credentials",)

    def __init__(self, items: Mapping[str, Any] | None = None, credentials: str = "") -> None:
        super().__init__(items or {})
        self.credentials = credentials

    def __repr__(self) -> str:
        shown = {
            k: "***" if k in SECRET_KEYS and v else redact_url(v) if isinstance(v, str) else v
            for k, v in self.items()
        }
        return f"RegistryConfig({shown!r})"

    __str__ = __repr__


def _username(s: Settings) -> str:
    return secret_value(
        s.schema_registry_username, s.schema_registry_username_file, "SCHEMA_REGISTRY_USERNAME"
    )


def _password(s: Settings) -> str:
    return secret_value(
        s.schema_registry_password, s.schema_registry_password_file, "SCHEMA_REGISTRY_PASSWORD"
    )


def _token(s: Settings) -> str:
    return secret_value(
        s.schema_registry_token, s.schema_registry_token_file, "SCHEMA_REGISTRY_TOKEN"
    )


def client_config(settings: Settings) -> RegistryConfig:
    """The SchemaRegistryClient configuration of `settings`: the URL and DEFAULT_CLIENT_CONFIG,
    then basic auth or a bearer token, then the CA file. Reads the `_FILE` settings now (raises
    ValueError naming the setting and the path when one cannot be read).

    The bearer token goes as confluent-kafka's STATIC_TOKEN, which also insists on a Confluent
    Cloud logical cluster and sends it as a `target-sr-cluster` header: it is left empty (any
    other registry, or a proxy in front of it, ignores the header; Confluent Cloud takes an API
    key and secret as the user name and password)."""
    s = settings
    config = _with_url(DEFAULT_CLIENT_CONFIG, s.schema_registry_url)
    user = _username(s)
    if user:
        config["basic.auth.user.info"] = f"{user}:{_password(s)}"
        config.credentials = _BASIC
    token = _token(s)
    if token:
        config["bearer.auth.credentials.source"] = "STATIC_TOKEN"
        config["bearer.auth.token"] = token
        config["bearer.auth.logical.cluster"] = ""
        config.credentials = _BEARER
    if s.schema_registry_ca_file:
        config["ssl.ca.location"] = s.schema_registry_ca_file
    return config


_BASIC = "SCHEMA_REGISTRY_USERNAME(_FILE) and SCHEMA_REGISTRY_PASSWORD(_FILE)"
_BEARER = "SCHEMA_REGISTRY_TOKEN(_FILE)"
_IN_URL = "the user and password in SCHEMA_REGISTRY_URL"


def _with_url(base: Mapping[str, Any], url: str) -> RegistryConfig:
    """`base` with `url`, whose user and password (`https://user:pass@host`) move to
    `basic.auth.user.info`: the HTTP client logs every request's URL, and would log them."""
    urls, userinfo = [], ""
    for one in url.split(","):
        parts = urlsplit(one.strip())
        if "@" in parts.netloc:
            if not userinfo:
                userinfo = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
            one = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
        urls.append(one.strip())
    config = RegistryConfig({**base, "url": ",".join(urls)})
    if userinfo:
        config["basic.auth.user.info"] = userinfo
        config.credentials = _IN_URL
    return config


def new_client(source: Settings | str, config: Mapping[str, Any] | None = None) -> Any:
    """A SchemaRegistryClient: of the settings (`client_config`: how every component connects),
    or for a bare URL (`mock://...`: confluent-kafka's in-process mock) with `config` over
    DEFAULT_CLIENT_CONFIG. A credentials file that cannot be read raises RegistryAuthError."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    if isinstance(source, Settings):
        try:
            built = client_config(source)
        except ValueError as exc:
            where = _where(source.schema_registry_url)
            raise RegistryAuthError(f"{where}: no credentials to send: {exc}") from None
        built.update(config or {})
    else:
        built = _with_url({**DEFAULT_CLIENT_CONFIG, **(config or {})}, source)
    return SchemaRegistryClient.new_client(built)


def registry_key(settings: Settings) -> tuple[str, str]:
    """What tells one registry connection from another: the URL and a digest of the rest (a
    cache key that shows no secret)."""
    s = settings
    rest = (
        s.schema_registry_username,
        s.schema_registry_username_file,
        s.schema_registry_password,
        s.schema_registry_password_file,
        s.schema_registry_token,
        s.schema_registry_token_file,
        s.schema_registry_ca_file,
    )
    return s.schema_registry_url, hashlib.sha256("\0".join(rest).encode()).hexdigest()


# --- validation (Settings.validated) ------------------------------------------------------


def check_settings(settings: Settings) -> None:
    """Raise ValueError naming the settings when the Schema Registry's auth settings do not fit
    together, or a file they name cannot be read. Never shows a secret."""
    s = settings
    pairs = [
        ("SCHEMA_REGISTRY_USERNAME", s.schema_registry_username, s.schema_registry_username_file),
        ("SCHEMA_REGISTRY_PASSWORD", s.schema_registry_password, s.schema_registry_password_file),
        ("SCHEMA_REGISTRY_TOKEN", s.schema_registry_token, s.schema_registry_token_file),
    ]
    one_of_each(pairs)
    user, password, token = (bool(value or file) for _, value, file in pairs)
    given = {
        "SCHEMA_REGISTRY_USERNAME(_FILE)": user,
        "SCHEMA_REGISTRY_PASSWORD(_FILE)": password,
        "SCHEMA_REGISTRY_TOKEN(_FILE)": token,
        "SCHEMA_REGISTRY_CA_FILE": bool(s.schema_registry_ca_file),
    }
    url = s.schema_registry_url.strip()
    if not url:
        named = [name for name, on in given.items() if on]
        if named:
            raise ValueError(f"{', '.join(named)} set, but SCHEMA_REGISTRY_URL is not")
        return
    if (user or password) and token:
        raise ValueError(
            "SCHEMA_REGISTRY_USERNAME/PASSWORD(_FILE) and SCHEMA_REGISTRY_TOKEN(_FILE) are both "
            "set: use basic auth or a bearer token, not both"
        )
    if password and not user:
        raise ValueError(
            "SCHEMA_REGISTRY_PASSWORD(_FILE) set without SCHEMA_REGISTRY_USERNAME(_FILE)"
        )
    if user and not password:
        raise ValueError(
            "SCHEMA_REGISTRY_USERNAME(_FILE) set without SCHEMA_REGISTRY_PASSWORD(_FILE)"
        )
    if (user or token) and _credentials_in(url):
        raise ValueError(
            "SCHEMA_REGISTRY_URL holds a user and password, and SCHEMA_REGISTRY_USERNAME/"
            "PASSWORD or SCHEMA_REGISTRY_TOKEN (or their _FILE) are set too: use one of them"
        )
    schemes = {urlsplit(u.strip()).scheme.lower() for u in url.split(",") if u.strip()}
    ca = s.schema_registry_ca_file
    if ca and schemes != {"https"}:
        raise ValueError(
            f"SCHEMA_REGISTRY_CA_FILE set, but SCHEMA_REGISTRY_URL is not https:// "
            f"({', '.join(sorted(schemes))})"
        )
    if user and ":" in _username(s):  # read: readable and not empty
        raise ValueError(
            "SCHEMA_REGISTRY_USERNAME(_FILE): a user name cannot hold ':' (HTTP basic auth)"
        )
    if password:
        _password(s)
    if token:
        _token(s)
    if ca:
        read_secret_file(ca, "SCHEMA_REGISTRY_CA_FILE")
        try:
            ssl.create_default_context(cafile=ca)
        except ssl.SSLError:
            raise ValueError(
                f"SCHEMA_REGISTRY_CA_FILE: {ca} holds no PEM certificate the TLS library takes"
            ) from None


def _credentials_in(url: str) -> bool:
    return redact_url(url) != url


def _where(url: str) -> str:
    """How messages name a registry: its URL(s) without user and password."""
    return f"schema registry at {redact_url(url)}" if url else "the schema registry"


def _status(exc: BaseException) -> tuple[int | None, int | None]:
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    if isinstance(exc, SchemaRegistryError):
        return exc.http_status_code, exc.error_code
    return None, None


def _unavailable(exc: BaseException) -> bool:
    """Not an answer about the request: a transport error or a server error."""
    status, _ = _status(exc)
    return status is None or status >= 500 or status == -1


def _reason(exc: BaseException) -> str:
    message = getattr(exc, "error_message", None) or str(exc) or type(exc).__name__
    return redact_url(str(message))[:500]


#: OpenSSL's verify codes of a certificate that names another host or address.
_NAME_MISMATCH = {62, 64}


def _certificate_problem(exc: BaseException) -> tuple[str, bool] | None:
    """(OpenSSL's reason, whether it is a host name mismatch) when `exc` is, or was caused by,
    a server certificate that did not verify; else None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            reason = current.verify_message or current.reason or str(current)
            return str(reason), current.verify_code in _NAME_MISMATCH
        current = current.__cause__ or current.__context__
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:  # wrapped without its cause
        reason = text.split("certificate verify failed:", 1)[-1].split("(_ssl.c", 1)[0].strip()
        return reason or "certificate verify failed", "mismatch" in reason
    return None


def _auth_error(client: Any, exc: BaseException, doing: str) -> RegistryAuthError | None:
    """The RegistryAuthError `exc` amounts to (401, 403, a certificate not trusted), else None.
    `doing`: what was asked, for a 403 ("reading schema id 7")."""
    status, _ = _status(exc)
    certificate = _certificate_problem(exc) if status is None else None
    if status not in {401, 403} and certificate is None:
        return None
    try:
        config = client.config()
    except Exception:  # a client without one (a test double)
        config = None
    config = config if isinstance(config, Mapping) else {}
    where = _where(str(config.get("url") or ""))
    if certificate is not None:
        reason, mismatch = certificate
        ca = config.get("ssl.ca.location")
        if mismatch:
            advice = "put a host name the certificate names in SCHEMA_REGISTRY_URL"
            return RegistryAuthError(
                f"{where}: TLS certificate names another host ({reason}): {advice}"
            )
        advice = (
            f"SCHEMA_REGISTRY_CA_FILE ({ca}) is not the CA that signs it"
            if ca
            else "set SCHEMA_REGISTRY_CA_FILE to the CA that signs it"
        )
        return RegistryAuthError(f"{where}: TLS certificate not trusted ({reason}): {advice}")
    settings = getattr(config, "credentials", "")
    if not settings and "basic.auth.user.info" in config:  # a configuration made elsewhere
        settings = _BASIC
    if not settings and "bearer.auth.token" in config:
        settings = _BEARER
    what = "the bearer token" if settings == _BEARER else "the credentials" if settings else ""
    if status == 401:
        if not what:
            return RegistryAuthError(
                f"{where} requires credentials (HTTP 401): set SCHEMA_REGISTRY_USERNAME and "
                "SCHEMA_REGISTRY_PASSWORD, or SCHEMA_REGISTRY_TOKEN (or their _FILE)"
            )
        return RegistryAuthError(f"{where} refused {what} (HTTP 401): check {settings}")
    who = what or "anonymous access"
    return RegistryAuthError(
        f"{where} denied {doing} (HTTP 403): {who} may not do that; grant it in the registry"
        + (f", or check {settings}" if settings else "")
    )


class SchemaRegistry:
    """The project's view of one registry: registration with a compatibility floor, and a
    permanent cache of writer schemas by id. Thread-safe (the bridge registers from executor
    threads)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._ids: dict[tuple[str, str], int] = {}  # (subject, schema text) -> id
        self._texts: dict[int, str] = {}  # id -> writer schema text
        self._levels: set[str] = set()  # subjects whose level was checked

    def register(self, subject: str, schema_text: str) -> int:
        """The id of `schema_text` under `subject`, registering it (after raising the subject's
        compatibility level) when new. Cached: one round trip per subject and schema."""
        key = (subject, schema_text)
        found = self._ids.get(key)
        if found is not None:
            return found
        from confluent_kafka.schema_registry import Schema

        with self._lock:
            if subject not in self._levels:
                self.ensure_compatibility(subject)
                self._levels.add(subject)
            schema_id = self._register(subject, Schema(schema_text, "AVRO"))
            self._ids[key] = schema_id
            self._texts.setdefault(schema_id, schema_text)
        log.info("schema registered under %s: id %d", subject, schema_id)
        return schema_id

    def _register(self, subject: str, schema: Any) -> int:
        """Register `schema`; a 409 is an incompatibility only if the schema is not there now
        (another process may have registered it at the same moment)."""
        try:
            return int(self.client.register_schema(subject, schema))
        except Exception as exc:
            if _status(exc)[0] != 409:
                raise self._registration_error(subject, exc) from exc
            refused = exc
        try:
            return int(self.client.lookup_schema(subject, schema).schema_id)
        except Exception:
            raise self._registration_error(subject, refused) from refused

    def compatible(self, subject: str, schema_text: str) -> bool:
        """Whether the registry would accept `schema_text` under `subject` (nothing registered)."""
        from confluent_kafka.schema_registry import Schema

        try:
            return bool(self.client.test_compatibility(subject, Schema(schema_text, "AVRO")))
        except Exception as exc:
            status, code = _status(exc)
            if status == 404 and code == 40401:  # no such subject yet: anything goes
                return True
            auth = _auth_error(self.client, exc, f"a compatibility test under subject {subject}")
            if auth is not None:
                raise auth from None
            if _unavailable(exc):
                raise RegistryUnavailable(f"schema registry: {_reason(exc)}") from exc
            raise SchemaRegistrationError(subject, f"{subject}: {_reason(exc)}") from exc

    def ensure_compatibility(self, subject: str) -> str:
        """Raise `subject`'s compatibility level to at least COMPATIBILITY; the level it has.

        Processes starting together race for it: another may set the level between this one's
        read and write (Apicurio then answers 409 "A rule named 'COMPATIBILITY' already
        exists"). A refused write is therefore followed by a fresh read, and only a level that
        stays too weak after a few tries is an error (never blamed on the schema)."""
        from confluent_kafka.schema_registry import ConfigCompatibilityLevel, ServerConfig

        refused: Exception | None = None
        for attempt in range(LEVEL_ATTEMPTS):
            try:
                current = self._level(subject)
            except Exception as exc:
                raise self._registration_error(subject, exc) from exc
            wanted = current if current in _AT_LEAST else _RAISE.get(current or "", COMPATIBILITY)
            if wanted == current:
                return wanted
            if attempt:
                time.sleep(0.05 * attempt)
            try:
                self.client.set_config(
                    subject, ServerConfig(compatibility=ConfigCompatibilityLevel(wanted))
                )
            except Exception as exc:
                if _unavailable(exc) or _status(exc)[0] in {401, 403}:
                    doing = f"setting the compatibility level of subject {subject}"
                    raise self._registration_error(subject, exc, doing) from exc
                refused = exc
                continue
            log.info("compatibility of %s set to %s (was %s)", subject, wanted, current or "unset")
            return wanted
        assert refused is not None
        raise SchemaRegistrationError(
            subject,
            f"the schema registry refused to set the compatibility level of subject {subject} "
            f"to {COMPATIBILITY} or stricter: {_reason(refused)}",
        ) from refused

    def _level(self, subject: str) -> str | None:
        try:
            config = self.client.get_config(subject)
        except Exception as exc:
            if _status(exc)[0] == 404:  # Confluent: no subject-level setting (40408/40401)
                return None
            raise
        if config is None:  # the mock client's answer for an unset level
            return None
        level = config.compatibility_level or config.compatibility
        return str(level.value if hasattr(level, "value") else level).upper() if level else None

    def schema_text(self, schema_id: int) -> str:
        """The writer schema of `schema_id`: from the cache, else from the registry."""
        text = self._texts.get(schema_id)
        if text is not None:
            return text
        try:
            text = str(self.client.get_schema(schema_id).schema_str)
        except Exception as exc:
            auth = _auth_error(self.client, exc, f"reading schema id {schema_id}")
            if auth is not None:
                raise auth from None
            status, _ = _status(exc)
            if status == 404:
                raise UnknownSchemaId(schema_id) from None
            if _unavailable(exc):
                raise RegistryUnavailable(
                    f"schema registry id {schema_id}: the registry did not answer: {_reason(exc)}"
                ) from exc
            raise DecodeError(f"schema registry id {schema_id}: {_reason(exc)}") from exc
        json.loads(text)  # a registry answering garbage is a DecodeError below, not cached
        self._texts[schema_id] = text
        return text

    def _registration_error(self, subject: str, exc: Exception, doing: str = "") -> Exception:
        auth = _auth_error(self.client, exc, doing or f"registering a schema under {subject}")
        if auth is not None:
            return auth
        status, _ = _status(exc)
        if _unavailable(exc):
            return RegistryUnavailable(
                f"schema registry did not answer for {subject}: {_reason(exc)}"
            )
        if status == 409:
            return IncompatibleSchema(
                subject,
                f"the schema registry refused the schema for subject {subject} as incompatible "
                f"with its registered versions ({COMPATIBILITY} or stricter): {_reason(exc)}",
            )
        return SchemaRegistrationError(
            subject, f"the schema registry refused the schema for subject {subject}: {_reason(exc)}"
        )
