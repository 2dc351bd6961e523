"""Before a process relies on Kafka: can it get in, and may it do what its role needs?

A wrong password, a broker certificate the CA file does not vouch for, or a missing ACL show
otherwise as librdkafka retrying forever (a log line per attempt, messages failing only at
their timeout) and as aiokafka errors deep inside Faust. `check(settings, role)` connects once
with the settings' credentials and says in one line what is wrong (`KafkaAccessError`): the
worker and the tools then stop, the bridge answers 503 saying so until it is fixed. A broker
that does not answer at all is no access problem (`KafkaUnreachable`): callers wait for it as
they wait through an outage.

What a role may do is read from the same grants `voucherify-streams kafka acls` applies
(streams.kafka.acls): for each of its topics that exists, the operations the broker says this
principal is authorized for (KIP-430) must include what the role needs; for the worker, its
consumer group must let it read its offsets.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient

from streams.kafka.security import librdkafka_config

if TYPE_CHECKING:
    from streams.settings import Settings

__all__ = ["KafkaAccessError", "KafkaUnreachable", "access_problem", "check"]

#: librdkafka's errors that no retry mends: the credentials or the TLS set-up are wrong.
_REFUSED = {KafkaError._AUTHENTICATION, KafkaError._SSL}  # type: ignore[attr-defined]
_NOT_AUTHORIZED = {
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
}


class KafkaAccessError(RuntimeError):
    """Kafka answered, and refused these settings: credentials, TLS, or ACLs (one line)."""


class KafkaUnreachable(RuntimeError):
    """No broker answered (or not in the protocol the settings say)."""


def access_problem(error: KafkaError, config: Mapping[str, Any]) -> str | None:
    """The one line an operator needs for a librdkafka error no retry mends (a refused login,
    a failed TLS handshake, a missing ACL) of a client with `config`, else None. Names
    settings, never their values."""
    code = error.code()
    text = error.str()
    user = config.get("sasl.username") or "(certificate or anonymous)"
    if code == KafkaError._AUTHENTICATION:  # type: ignore[attr-defined]
        return (
            f"Kafka refused the credentials of user {user} "
            f"({config.get('sasl.mechanism', 'SASL')}): {_strip(text)}; check "
            "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD(_FILE)"
        )
    if code == KafkaError._SSL:  # type: ignore[attr-defined]
        return (
            f"TLS with Kafka failed: {_strip(text)}; check KAFKA_SSL_CA_FILE (the CA that signed "
            "the brokers' certificates), KAFKA_SSL_CERT_FILE/KEY_FILE and KAFKA_SSL_VERIFY_HOSTNAME"
        )
    if code in _NOT_AUTHORIZED:
        return f"Kafka denied user {user}: {_strip(text)} (see `kafka acls`)"
    return None


def check(settings: Settings, role: str | None, timeout: float = 10.0) -> None:
    """Raise KafkaAccessError (one line) when Kafka refuses `settings` or the ACLs keep `role`
    (None: no role's ACLs checked) from its topics or group; KafkaUnreachable when no broker
    answered within `timeout`."""
    errors: list[KafkaError] = []
    config = librdkafka_config(
        settings,
        # Every attempt's failure comes to `errors`: reported once, by the caller.
        {"log_level": 0, "error_cb": errors.append, "socket.timeout.ms": 5000},
    )
    admin = AdminClient(config)
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.list_topics(timeout=max(0.1, min(1.0, deadline - time.monotonic())))
            break
        except KafkaException as exc:
            admin.poll(0)  # serves error_cb
            for error in errors:
                problem = access_problem(error, config)
                if problem is not None:
                    raise KafkaAccessError(problem) from None
            if time.monotonic() >= deadline:
                raise KafkaUnreachable(
                    f"no Kafka broker answered on {settings.bootstrap_servers} within "
                    f"{timeout:.0f}s ({exc.args[0].str()}; or not in KAFKA_SECURITY_PROTOCOL="
                    f"{settings.kafka_security_protocol})"
                ) from None
    if role is not None:
        _check_topics(admin, settings, role, timeout)
    if role == "worker":
        _check_group(settings, timeout)


def _check_topics(admin: AdminClient, settings: Settings, role: str, timeout: float) -> None:
    from streams.kafka.acls import grants

    needs = {
        g.name: set(g.operations) - {"CREATE"}
        for g in grants(settings, role)
        if g.resource == "topic" and not g.prefixed
    }
    described = admin.describe_topics(
        TopicCollection(sorted(needs)),
        include_authorized_operations=True,
        request_timeout=timeout,
    )
    missing: list[str] = []
    for topic, future in described.items():
        try:
            allowed = {op.name for op in future.result(timeout).authorized_operations or ()}
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                missing.append(f"{'/'.join(sorted(needs[topic]))} on topic {topic}")
            continue  # not created yet: whoever creates it, and their ACLs, come later
        lacking = sorted(needs[topic] - allowed)
        if lacking:
            missing.append(f"{'/'.join(lacking)} on topic {topic}")
    if missing:
        raise KafkaAccessError(
            f"Kafka's ACLs do not let user {_user(settings)} ({role}) {'; '.join(missing)}: "
            f"grant them with `voucherify-streams kafka acls --principal User:{_user(settings)} "
            f"--role {role}`"
        )


def _check_group(settings: Settings, timeout: float) -> None:
    """The worker reads its group's committed offsets: READ on the group (app id)."""
    consumer = Consumer(
        librdkafka_config(
            settings, {"group.id": settings.app_id, "log_level": 0, "enable.auto.commit": False}
        )
    )
    try:
        topic = settings.topic(settings.customer_deleted_topic)
        consumer.committed([TopicPartition(topic, 0)], timeout=timeout)
    except KafkaException as exc:
        if exc.args[0].code() == KafkaError.GROUP_AUTHORIZATION_FAILED:
            raise KafkaAccessError(
                f"Kafka's ACLs do not let user {_user(settings)} (worker) READ its consumer "
                f"group {settings.app_id}: grant it with `voucherify-streams kafka acls "
                f"--principal User:{_user(settings)} --role worker`"
            ) from None
    finally:
        consumer.close()


def _user(settings: Settings) -> str:
    """The principal's name as the settings give it (a SASL user, else the certificate's)."""
    from streams.kafka.security import username

    return username(settings) or "(certificate or anonymous)"


def _strip(text: str) -> str:
    """librdkafka's text without its own bookkeeping ("(after 30ms in state ...)")."""
    cut = text.find(" (after ")
    return text[:cut] if cut > 0 else text
