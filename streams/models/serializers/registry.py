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
  record), SchemaRegistrationError (the registry refused a registration).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from streams.models.errors import DecodeError

__all__ = [
    "COMPATIBILITY",
    "IncompatibleSchema",
    "RegistryUnavailable",
    "SchemaRegistrationError",
    "SchemaRegistry",
    "UnknownSchemaId",
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


def new_client(url: str, config: Mapping[str, Any] | None = None) -> Any:
    """A SchemaRegistryClient for `url` (`mock://...`: confluent-kafka's in-process mock)."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    return SchemaRegistryClient.new_client({**DEFAULT_CLIENT_CONFIG, **(config or {}), "url": url})


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
    return str(message)[:500]


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
                if _unavailable(exc):
                    raise self._registration_error(subject, exc) from exc
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

    def _registration_error(self, subject: str, exc: Exception) -> Exception:
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
