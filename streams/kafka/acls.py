"""Least privilege: the ACLs each component's principal needs, derived from the settings.

`voucherify-streams kafka acls --principal User:bridge --role bridge` applies a role's grants
with the settings' own (admin) credentials; `--dry-run` lists them, `--print` prints them as
`kafka-acls.sh` command lines for clusters whose ACLs are managed another way. The roles:

- **bridge**: writes the input, dead-letter and (when set) raw topics, and may create them
  (it creates missing topics at start, like every component, with the project's
  configuration). Its producer is idempotent: from Kafka 3.0 on (KIP-679) WRITE on a topic is
  all that needs; a broker older than 3.0 also wants IDEMPOTENT_WRITE on the cluster.
- **worker**: reads the input as its consumer group (`STREAMS_APP_ID`); creates, reads and
  writes its own topics; writes (and may create) the analytics topics; writes the dead-letter
  topic (input it cannot decode is kept there; the dashboard counts its records). Its other
  librdkafka consumers (the offsets reader, the bulk restore) use the same group or none.
- **reader**: an analytics consumer: reads the three analytics topics, in groups of its own
  (`--group`).
- **operator**: `dead-letters list|show|redrive`, `tail` and `replay`: reads every project
  topic, writes the input topic (redrive, replay), creates, reads and writes the redrive marks'
  topic, in groups named `voucherify-streams-operator-<random>` (one per run).

Resource patterns are LITERAL wherever a name is known from the settings, so a grant reaches no
topic of another application sharing the cluster. PREFIXED only where the names are open-ended:
Faust names its own topics `<app_id>-...` (each table's changelog `<app_id>-<table>-changelog`,
its assignor's `<app_id>-__assignor-__leader`, more with a new table or a new Faust) without the
topic prefix, and the tools' consumer groups carry a random suffix. READ, WRITE and CREATE are
granted as needed; READ and WRITE imply DESCRIBE in Kafka, so it is never granted on its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from streams.settings import Settings

ROLES = ("bridge", "worker", "reader", "operator")
#: The groups of the project's own readers (streams.dev.reader), the reader role's default.
DEFAULT_READER_GROUP = "reader-*"


@dataclass(frozen=True)
class Grant:
    """Operations on one resource (`topic` or `group`), matched LITERAL or PREFIXED."""

    resource: str
    name: str
    operations: tuple[str, ...]
    why: str
    prefixed: bool = False

    @property
    def pattern(self) -> str:
        return "PREFIXED" if self.prefixed else "LITERAL"


def _topic(name: str, ops: tuple[str, ...], why: str, prefixed: bool = False) -> Grant:
    return Grant("topic", name, ops, why, prefixed)


def _group(name: str, why: str) -> Grant:
    """READ on a group; a name ending in `*` is a prefix."""
    prefixed = name.endswith("*")
    return Grant("group", name.rstrip("*"), ("READ",), why, prefixed)


def grants(settings: Settings, role: str, group: str = DEFAULT_READER_GROUP) -> list[Grant]:
    """What `role` needs on the cluster `settings` name (topic prefix, app id, topic names)."""
    from streams.kafka.topics import INTERNAL  # the worker's own topic names
    from streams.operator import OPERATOR_GROUP_PREFIX

    s, t = settings, settings.topic
    app = s.app_id
    inputs, dead = t(s.customer_deleted_topic), t(s.dead_letter_topic)
    outputs = [t(s.loyalty_topic), t(s.referral_topic), t(s.deletions_topic)]
    raw = [t(s.raw_topic)] if s.raw_topic else []
    internal = [t(f"{app}-{name}") for name in INTERNAL]
    faust_prefix = f"{app}-"
    if role == "bridge":
        return [
            _topic(name, ("WRITE", "CREATE"), why)
            for name, why in [
                (inputs, "publishes accepted webhooks; creates it when missing"),
                (dead, "publishes refused webhooks; creates it when missing"),
                *((r, "publishes other event types as received") for r in raw),
            ]
        ]
    if role == "worker":
        own = ("READ", "WRITE", "CREATE")
        return _without_covered(
            [
                _topic(inputs, ("READ",), "consumes the deletions"),
                Grant("group", app, ("READ",), "its consumer group (Faust's; its offset reads)"),
                *(_topic(n, own, "its re-keyed and delta topics") for n in internal),
                _topic(
                    faust_prefix,
                    own,
                    "Faust's `<app_id>-` topics (table changelogs, its assignor's leader topic; "
                    "the delta topics too without a topic prefix)",
                    prefixed=True,
                ),
                *(_topic(n, ("WRITE", "CREATE"), "publishes the analytics") for n in outputs),
                _topic(dead, ("WRITE",), "keeps input it cannot decode; the dashboard counts it"),
            ]
        )
    if role == "reader":
        return [
            *(_topic(n, ("READ",), "consumes the analytics") for n in outputs),
            _group(group, "its consumer groups"),
        ]
    if role == "operator":
        return [
            _topic(inputs, ("READ", "WRITE"), "tail; redrive and replay publish to it"),
            _topic(dead, ("READ",), "dead-letters list, show, redrive; tail"),
            *(_topic(n, ("READ",), "tail") for n in [*outputs, *raw, *internal]),
            _topic(t(s.redriven_topic), ("READ", "WRITE", "CREATE"), "redrive's marks"),
            _group(OPERATOR_GROUP_PREFIX + "*", "the tools' consumers, one group per run"),
        ]
    raise ValueError(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")


def _without_covered(found: list[Grant]) -> list[Grant]:
    """Drop a LITERAL grant a PREFIXED one already covers (e.g. the worker's own topics when
    the topic prefix is empty: they start with `<app_id>-` too)."""
    prefixes = [g for g in found if g.prefixed]
    return [
        g
        for g in found
        if g.prefixed
        or not any(
            p.resource == g.resource
            and g.name.startswith(p.name)
            and set(g.operations) <= set(p.operations)
            for p in prefixes
        )
    ]


def principal_of(text: str) -> str:
    """`User:name` (a bare name means a user)."""
    kind, sep, name = text.partition(":")
    if not sep:
        return f"User:{text}"
    if not kind or not name:
        raise ValueError(f"--principal {text!r}: expected User:<name>")
    return text


def bindings(principal: str, found: Iterable[Grant]) -> list:
    """confluent-kafka AclBindings (ALLOW, any host) of `found` for `principal`."""
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    return [
        AclBinding(
            ResourceType[g.resource.upper()],
            g.name,
            ResourcePatternType[g.pattern],
            principal,
            "*",
            AclOperation[op],
            AclPermissionType.ALLOW,
        )
        for g in found
        for op in g.operations
    ]


def commands(principal: str, found: Iterable[Grant], bootstrap: str) -> list[str]:
    """`kafka-acls.sh` command lines adding `found` (one per resource)."""
    lines = []
    for g in found:
        ops = " ".join(f"--operation {op.capitalize()}" for op in g.operations)
        lines.append(
            f"kafka-acls.sh --bootstrap-server {bootstrap} --command-config admin.properties "
            f"--add --allow-principal {principal} {ops} --{g.resource} '{g.name}' "
            f"--resource-pattern-type {g.pattern.lower()}"
        )
    return lines


def apply(settings: Settings, principal: str, found: Iterable[Grant], timeout: float = 30) -> int:
    """Create the ACLs (idempotent: existing ones stay) with the settings' credentials; how many
    bindings. Raises RuntimeError naming the first one the broker refused."""
    from streams.kafka.admin import admin_client

    wanted = bindings(principal, found)
    admin = admin_client(settings)  # kept until every result is in
    results = admin.create_acls(wanted, request_timeout=timeout)
    for binding, fut in results.items():
        try:
            fut.result(timeout)
        except Exception as exc:
            raise RuntimeError(f"{binding}: {exc}") from None
    return len(wanted)


def markdown_table(settings: Settings | None = None) -> str:
    """The README's table of the roles' ACLs (default settings: no topic prefix)."""
    settings = settings or Settings()
    rows = ["| role | resource | pattern | names | operations | for |", "|---|---|---|---|---|---|"]
    for role in ROLES:
        alike: dict[tuple[str, str, tuple[str, ...], str], list[str]] = {}
        for g in grants(settings, role):  # one row for the resources granted alike
            alike.setdefault((g.resource, g.pattern, g.operations, g.why), []).append(g.name)
        for (resource, pattern, ops, why), names in alike.items():
            shown = ", ".join(f"`{n}`" for n in names)
            rows.append(f"| {role} | {resource} | {pattern} | {shown} | {', '.join(ops)} | {why} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
