"""Every Kafka client of the project is configured by one of the two builders of
streams.kafka.security, so none can miss the security settings: a static check of streams/.

- confluent-kafka clients (`Producer`, `Consumer`, `AdminClient`, the (de)serializing ones) must
  be given a configuration made by `librdkafka_config` right there: the call itself, or a local
  name every assignment of which is that call (and `librdkafka_config` only builds on Settings
  or on a configuration it built, never on a plain dict: tests/kafka/test_security.py);
- `faust.App` must take `**faust_broker_kwargs(...)` and no broker, credentials or SSL context
  of its own;
- aiokafka clients are never built directly (Faust builds them from its credentials);
- `ClientConfig` is made nowhere but in streams/kafka/security.py.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STREAMS = ROOT / "streams"
BUILDERS = ROOT / "streams" / "kafka" / "security.py"

LIBRDKAFKA = {
    "Producer",
    "Consumer",
    "AdminClient",
    "SerializingProducer",
    "DeserializingConsumer",
}


@dataclass(frozen=True)
class Site:
    path: str
    line: int
    function: str
    client: str
    problem: str = ""


def _is_call_of(node: ast.AST, name: str) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    return (isinstance(func, ast.Name) and func.id == name) or (
        isinstance(func, ast.Attribute) and func.attr == name
    )


class _Clients(ast.NodeVisitor):
    """The client constructions of one module, each checked."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.names: dict[str, str] = {}  # local name -> "librdkafka" | "aiokafka" | "faust"
        self.modules: dict[str, str] = {}  # local module alias -> its kind
        self.sites: list[Site] = []
        self.scopes: list[ast.AST] = []

    # --- imports ---
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            kind = _kind_of_module(alias.name)
            if kind:
                self.modules[alias.asname or alias.name.split(".")[0]] = kind

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        kind = _kind_of_module(module)
        for alias in node.names:
            local = alias.asname or alias.name
            if kind == "librdkafka" and alias.name in LIBRDKAFKA:
                self.names[local] = "librdkafka"
            elif kind == "aiokafka" and alias.name.startswith("AIOKafka"):
                self.names[local] = "aiokafka"
            elif kind == "faust" and alias.name == "App":
                self.names[local] = "faust"
            elif kind and alias.name in {"admin", "aiokafka"}:  # e.g. confluent_kafka.admin
                self.modules[local] = kind

    # --- scopes ---
    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.scopes.append(node)
        self.generic_visit(node)
        self.scopes.pop()

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    # --- calls ---
    def visit_Call(self, node: ast.Call) -> None:
        kind, client = self._client(node.func)
        if kind:
            self.sites.append(self._check(node, kind, client))
        elif _is_call_of(node, "ClientConfig") and Path(self.path) != BUILDERS:
            self.sites.append(self._site(node, "ClientConfig", "a ClientConfig made by hand"))
        self.generic_visit(node)

    def _client(self, func: ast.expr) -> tuple[str, str]:
        if isinstance(func, ast.Name) and func.id in self.names:
            return self.names[func.id], func.id
        if isinstance(func, ast.Attribute):
            base = func.value
            while isinstance(base, ast.Attribute):
                base = base.value
            kind = self.modules.get(base.id, "") if isinstance(base, ast.Name) else ""
            if kind == "librdkafka" and func.attr in LIBRDKAFKA:
                return kind, func.attr
            if kind == "aiokafka" and func.attr.startswith("AIOKafka"):
                return kind, func.attr
            if kind == "faust" and func.attr == "App":
                return kind, "faust.App"
        return "", ""

    def _site(self, node: ast.Call, client: str, problem: str = "") -> Site:
        scope = self.scopes[-1] if self.scopes else None
        function = getattr(scope, "name", "<module>")
        return Site(self.path, node.lineno, function, client, problem)

    def _check(self, node: ast.Call, kind: str, client: str) -> Site:
        if kind == "aiokafka":
            return self._site(node, client, "an aiokafka client built directly (use Faust's)")
        if kind == "faust":
            given = {k.arg for k in node.keywords if k.arg}
            own = given & {"broker", "broker_credentials", "ssl_context"}
            spread = [k.value for k in node.keywords if k.arg is None]
            if own or not any(_is_call_of(v, "faust_broker_kwargs") for v in spread):
                why = f"faust.App with {sorted(own)}" if own else "no **faust_broker_kwargs(...)"
                return self._site(node, client, why)
            return self._site(node, client)
        configs = [*node.args, *(k.value for k in node.keywords)]
        if len(configs) != 1:
            return self._site(node, client, "not one configuration argument")
        (config,) = configs
        if _is_call_of(config, "librdkafka_config"):
            return self._site(node, client)
        if isinstance(config, ast.Name) and self._assigned_from_builder(config.id):
            return self._site(node, client)
        return self._site(node, client, "a configuration not made by librdkafka_config")

    def _assigned_from_builder(self, name: str) -> bool:
        """Every assignment of `name` in the enclosing function is librdkafka_config(...)."""
        scope = self.scopes[-1] if self.scopes else None
        if scope is None:
            return False
        values = [
            n.value
            for n in ast.walk(scope)
            if isinstance(n, ast.Assign | ast.AnnAssign)
            and any(
                isinstance(t, ast.Name) and t.id == name
                for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
            )
        ]
        return bool(values) and all(
            v is not None and _is_call_of(v, "librdkafka_config") for v in values
        )


def _kind_of_module(module: str) -> str:
    top = module.split(".")[0]
    return {"confluent_kafka": "librdkafka", "aiokafka": "aiokafka", "faust": "faust"}.get(top, "")


def scan(source: str, path: str = "<snippet>") -> list[Site]:
    visitor = _Clients(path)
    visitor.visit(ast.parse(source))
    return visitor.sites


def project_sites() -> list[Site]:
    sites = []
    for path in sorted(STREAMS.rglob("*.py")):
        sites += scan(path.read_text(encoding="utf-8"), str(path))
    return sites


def test_every_client_goes_through_the_builders() -> None:
    sites = project_sites()
    bad = [s for s in sites if s.problem]
    assert not bad, "\n".join(
        f"{Path(s.path).relative_to(ROOT)}:{s.line} ({s.function}): {s.client}: {s.problem}"
        for s in bad
    )
    # The scan sees the clients it is meant to see (it would pass vacuously otherwise).
    found = {(Path(s.path).relative_to(ROOT).as_posix(), s.client) for s in sites}
    for expected in [
        ("streams/kafka/producer.py", "Producer"),  # the bridge's
        ("streams/kafka/batch_producer.py", "Producer"),  # the worker's
        ("streams/tables/restore.py", "Consumer"),  # the bulk restore
        ("streams/kafka/group_offsets.py", "Consumer"),
        ("streams/kafka/admin.py", "AdminClient"),
        ("streams/operator.py", "Consumer"),
        ("streams/operator.py", "Producer"),
        ("streams/replay.py", "Producer"),
        ("streams/dev/reader.py", "Consumer"),
        ("streams/dev/kafka.py", "AdminClient"),
        ("streams/app.py", "faust.App"),
    ]:
        assert expected in found, expected


def test_the_check_fails_on_an_ad_hoc_client() -> None:
    snippets = {
        "from confluent_kafka import Producer\nProducer({'bootstrap.servers': 'b:9092'})\n": (
            "not made by librdkafka_config"
        ),
        "from confluent_kafka import Consumer as C\ndef f(conf):\n    return C(conf)\n": (
            "not made by librdkafka_config"
        ),
        "import confluent_kafka\ndef f(s):\n    c = {'bootstrap.servers': s}\n"
        "    return confluent_kafka.Producer(c)\n": "not made by librdkafka_config",
        "from confluent_kafka.admin import AdminClient\ndef f(s):\n"
        "    c = librdkafka_config(s)\n    c = dict(c)\n    return AdminClient(c)\n": (
            "not made by librdkafka_config"
        ),
        "from confluent_kafka import admin\nadmin.AdminClient({})\n": "not made by",
        "import faust\nfaust.App('x', broker='kafka://b:9092')\n": "faust.App with ['broker']",
        "import faust\nfaust.App('x', **faust_broker_kwargs(s), ssl_context=ctx)\n": (
            "faust.App with ['ssl_context']"
        ),
        "from faust import App\nApp('x')\n": "no **faust_broker_kwargs",
        "from aiokafka import AIOKafkaProducer\nAIOKafkaProducer(bootstrap_servers='b')\n": (
            "aiokafka client built directly"
        ),
        "from streams.kafka.security import ClientConfig\nClientConfig({'a': 1})\n": "by hand",
    }
    for source, problem in snippets.items():
        sites = scan(source)
        assert sites and problem in sites[0].problem, (source, sites)
    fine = (
        "from confluent_kafka import Producer\nimport faust\n"
        "def f(s):\n    c = librdkafka_config(s, {'linger.ms': 5})\n    return Producer(c)\n"
        "def g(s):\n    return Producer(librdkafka_config(s))\n"
        "def h(s):\n    return faust.App('x', **faust_broker_kwargs(s), store='memory://')\n"
    )
    assert [s.problem for s in scan(fine)] == ["", "", ""]
