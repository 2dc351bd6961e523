"""`voucherify-streams`: the local Kafka, the bridge, the worker, the demo and replay."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from streams import logs
from streams.kafka.acls import DEFAULT_READER_GROUP
from streams.settings import Settings, add_arguments, from_args

if TYPE_CHECKING:
    from streams.dev.kafka import LocalCluster

log = logging.getLogger("streams")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voucherify-streams",
        description="Voucherify customer.deleted webhooks -> Kafka -> loyalty analytics.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    kafka = sub.add_parser(
        "kafka",
        help="start, stop or inspect the local Kafka (one node, or --brokers N; --secure); "
        "grant a principal its role's ACLs on any Kafka (acls)",
    )
    kafka.add_argument("action", choices=["start", "stop", "status", "reset", "acls"])
    kafka.add_argument(
        "--node",
        type=int,
        default=None,
        metavar="I",
        help="start or stop only node I (1..N) of the cluster",
    )
    kafka.add_argument(
        "--principal", help="acls: the principal to grant, e.g. User:bridge (a name: User:name)"
    )
    kafka.add_argument(
        "--role",
        choices=["bridge", "worker", "reader", "operator"],
        help="acls: what the principal runs (see streams/kafka/acls.py)",
    )
    kafka.add_argument(
        "--group",
        default=DEFAULT_READER_GROUP,
        help="acls, role reader: its consumer group (a trailing * makes it a prefix; default "
        "%(default)s, the groups of the project's own reader)",
    )
    kafka.add_argument("--dry-run", action="store_true", help="acls: list the ACLs, apply nothing")
    kafka.add_argument(
        "--print",
        action="store_true",
        dest="print_commands",
        help="acls: print them as kafka-acls.sh command lines instead of applying them",
    )
    add_arguments(kafka, ["kafka"])

    registry = sub.add_parser(
        "registry", help="start, stop or inspect the local Schema Registry (Apicurio)"
    )
    registry.add_argument("action", choices=["start", "stop", "status", "reset"])
    add_arguments(registry, ["registry"])

    bridge = sub.add_parser("bridge", help="run the webhook bridge (HTTP -> Avro -> Kafka)")
    add_arguments(bridge, ["bridge"])

    worker = sub.add_parser("worker", help="run the Faust worker (dedup, tables, analytics)")
    add_arguments(worker, ["worker"])

    demo = sub.add_parser("demo", help="run everything locally on generated webhooks")
    demo.add_argument("-n", "--count", type=int, default=2000, help="webhooks to send")
    demo.add_argument(
        "--duplicates",
        type=float,
        default=0.1,
        help="share of deliveries that are re-sends of an earlier webhook",
    )
    demo.add_argument("--concurrency", type=int, default=16, help="parallel HTTP senders")
    demo.add_argument("--stop", action="store_true", help="stop everything at the end")
    demo.add_argument("--seed", type=int, default=None, help="random seed for the generator")
    add_arguments(demo, ["demo", "kafka", "bridge", "worker"])

    replay = sub.add_parser("replay", help="publish webhooks from a JSON Lines file (backfill)")
    replay.add_argument(
        "file", help="JSON Lines of webhook envelopes or {'customer': ...}; - = stdin"
    )
    replay.add_argument(
        "--allow-rejects", action="store_true", help="exit 0 even when some lines were rejected"
    )
    add_arguments(replay, ["replay"])

    dead = sub.add_parser(
        "dead-letters", help="list, show or redrive the webhooks and records kept as dead letters"
    )
    dead_sub = dead.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = dead_sub.add_parser("list", help="the dead letters, decoded (bodies withheld)")
    listing.add_argument("--since", help="only those received since: 2h, 7d, 2025-01-31, ...")
    listing.add_argument("--reason", help="only those of this reason (e.g. invalid_payload)")
    show = dead_sub.add_parser("show", help="one dead letter, by the id `list` shows")
    show.add_argument("offset", metavar="OFFSET", help="PARTITION:OFFSET, or OFFSET")
    show.add_argument("--partition", type=int, default=None, help="partition of a bare OFFSET")
    redrive = dead_sub.add_parser(
        "redrive", help="re-validate and republish those that pass now (idempotent)"
    )
    redrive.add_argument("--reason", help="only dead letters of this reason")
    redrive.add_argument(
        "--dry-run", action="store_true", help="say what would be republished, publish nothing"
    )
    for action in (listing, show):
        action.add_argument(
            "--show-body", action="store_true", help="print the kept body (may hold personal data)"
        )
    for action in (listing, show, redrive):
        add_arguments(action, ["dead-letters", "replay"])

    tail = sub.add_parser("tail", help="print a topic's records decoded from Avro (like kcat -C)")
    tail.add_argument("topic", metavar="TOPIC", help="a topic name, with or without the prefix")
    tail.add_argument("--from-beginning", action="store_true", help="from the first record")
    tail.add_argument("--json", action="store_true", help="one JSON object per record")
    tail.add_argument(
        "-e", "--exit-at-end", action="store_true", help="exit at the end instead of following"
    )
    tail.add_argument(
        "--show-body", action="store_true", help="print dead letters' bodies (personal data)"
    )
    add_arguments(tail, [])
    return parser


def _kafka_acls(args: argparse.Namespace, settings: Settings) -> int:
    from confluent_kafka import KafkaException

    from streams.kafka import acls

    if not args.principal or not args.role:
        print("error: kafka acls needs --principal and --role", file=sys.stderr)
        return 2
    try:
        principal = acls.principal_of(args.principal)
        found = acls.grants(settings, args.role, args.group)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.print_commands:
        print("\n".join(acls.commands(principal, found, settings.bootstrap_servers)))
        return 0
    if args.dry_run:
        print(f"ACLs of role {args.role} for {principal} (not applied):")
    else:
        try:
            count = acls.apply(settings, principal, found)
        except (RuntimeError, KafkaException) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"{count} ACLs of role {args.role} in place for {principal}:")
    width = max(len(g.name) for g in found)
    for g in found:
        ops = ", ".join(g.operations)
        print(f"  {g.resource:5} {g.pattern:8} {g.name:{width}}  {ops:18} {g.why}")
    return 0


def _print_client_settings(cluster: LocalCluster) -> None:
    """A secured local Kafka's client settings, as env lines: file paths, never a password."""
    import shlex

    material = cluster.material
    print("# clients: admin (a super user); bridge, worker, reader and operator likewise, with")
    print("# their own KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD_FILE, once granted their ACLs")
    print("# (voucherify-streams kafka acls --principal User:bridge --role bridge)")
    for name, value in material.client_env(cluster.bootstrap).items():
        print(f"export {name}={shlex.quote(value)}")
    env = material.mtls_env(cluster.mtls_bootstrap, "bridge")
    mtls = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    print(f"# mutual TLS instead (the certificate's CN is the user): {mtls}")


def _kafka(action: str, settings: Settings, node: int | None = None) -> int:
    from streams.dev.kafka import KafkaError, LocalCluster

    try:
        cluster = LocalCluster.for_command(settings, action)
        if node is not None:
            return _kafka_node(cluster, action, node)
        what = "Kafka" if cluster.size == 1 else f"Kafka ({cluster.size}-node cluster)"
        logs = ", ".join(str(n.log_file) for n in cluster.nodes)
        if action == "start":
            started = cluster.start()
            verb = "started on" if started else "is already running on"
            secured = f" ({cluster.security})" if cluster.secure else ""
            print(
                f"{what} {verb} {cluster.bootstrap}{secured}; log{'s' * (cluster.size > 1)}: {logs}"
            )
            if cluster.secure:
                _print_client_settings(cluster)
            elif cluster.size > 1:
                print(f"export KAFKA_BOOTSTRAP_SERVERS={cluster.bootstrap}")
        elif action == "stop":
            if cluster.stop():
                print(f"{what} on port {cluster.base_port} stopped")
            else:
                print(f"{what} on port {cluster.base_port} was not running")
        elif action == "reset":
            cluster.reset()
            where = cluster.nodes[0].state_dir if cluster.size == 1 else cluster.cluster_dir
            print(f"{what} data under {where} deleted")
        elif cluster.size == 1:
            print(cluster.nodes[0].status())
            return 0 if cluster.nodes[0].pid() is not None else 3
        else:
            states = cluster.status()
            secured = f" ({cluster.security})" if cluster.secure else ""
            print(f"{what}, bootstrap {cluster.bootstrap}{secured}:")
            for state in states:
                print("  " + state.line())
            under = cluster.under_replicated() if any(st.answers for st in states) else None
            if under is not None:
                print(f"  under-replicated partitions: {under}")
            return 0 if all(st.pid is not None and st.answers for st in states) else 3
    except KafkaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _kafka_node(cluster: LocalCluster, action: str, node: int) -> int:
    target = cluster.node(node)
    if action == "start":
        verb = "started" if cluster.start_node(node) else "was already running"
        print(f"node {node} {verb}: localhost:{target.port}; log {target.log_file}")
    elif action == "stop":
        verb = "stopped" if cluster.stop_node(node) else "was not running"
        print(f"node {node} (localhost:{target.port}) {verb}")
    else:
        print(f"error: --node goes with start or stop, not {action}", file=sys.stderr)
        return 2
    return 0


def _registry(action: str, settings: Settings) -> int:
    from streams.dev.registry import LocalRegistry, RegistryError

    registry = LocalRegistry.from_settings(settings)
    try:
        if action == "start":
            started = registry.start()
            verb = "started" if started else "is already running"
            print(f"Schema Registry {verb}; log: {registry.log_file}")
            print(f"export SCHEMA_REGISTRY_URL={registry.url}")
        elif action == "stop":
            if registry.stop():
                print(f"Schema Registry on port {registry.port} stopped")
            else:
                print(f"Schema Registry on port {registry.port} was not running")
        elif action == "reset":
            registry.reset()
            print(f"Schema Registry data under {registry.state_dir} deleted")
        else:
            print(registry.status())
            return 0 if registry.pid() is not None else 3
    except RegistryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _refused(settings: Settings, role: str | None) -> str:
    """Why Kafka will not serve a tool (credentials, TLS, ACLs, no broker), in one line; ""."""
    from streams.kafka import preflight

    try:
        preflight.check(settings, role)
    except (preflight.KafkaAccessError, preflight.KafkaUnreachable) as exc:
        return str(exc)
    return ""


def _operator(args: argparse.Namespace, settings: Settings) -> int:
    from streams import operator

    try:
        if args.command == "tail":
            return operator.tail(
                settings,
                args.topic,
                from_beginning=args.from_beginning,
                as_json=args.json,
                show_body=args.show_body,
                exit_at_end=args.exit_at_end,
            )
        if args.action == "list":
            return operator.list_dead_letters(settings, args.since, args.reason, args.show_body)
        if args.action == "show":
            return operator.show_dead_letter(settings, args.offset, args.partition, args.show_body)
        return operator.redrive(settings, args.reason, args.dry_run)
    except operator.OperatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return operator.ERROR


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """The CLI; `environ`: the environment to read the settings from (default: the process's)."""
    args = _parser().parse_args(argv)
    try:
        settings = from_args(args, environ)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "worker":  # Faust's worker sets up logging itself
        from streams.app import run as run_worker

        return run_worker(settings)
    logs.configure(settings)
    if args.command == "kafka":
        if args.action == "acls":
            return _kafka_acls(args, settings)
        return _kafka(args.action, settings, args.node)
    if args.command == "registry":
        return _registry(args.action, settings)
    if args.command == "bridge":
        from streams.bridge.server import run as run_bridge

        return run_bridge(settings)
    if args.command == "demo":
        from streams.dev.demo import run as run_demo

        return run_demo(
            settings,
            count=args.count,
            duplicates=args.duplicates,
            concurrency=args.concurrency,
            stop=args.stop,
            seed=args.seed,
        )
    if args.command in {"dead-letters", "tail", "replay"}:
        # Credentials and TLS; each tool names a topic its ACLs keep it from itself.
        refused = _refused(settings, None)
        if refused:
            print(f"error: {refused}", file=sys.stderr)
            return 1
    if args.command in {"dead-letters", "tail"}:
        return _operator(args, settings)
    if args.command == "replay":
        from streams.replay import run as run_replay

        return run_replay(settings, args.file, allow_rejects=args.allow_rejects)
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
