"""The one code generator: Python source written from an Avro schema, compiled once per schema.

Three fast paths are generated from the schemas: `writer.py` (datum -> Avro bytes),
`projection.py` (Avro bytes -> only the fields a consumer reads) and `customer_deleted.py`
(webhook JSON -> datum); `from_webhook.py` fuses the last and the first (webhook JSON -> Avro
bytes). Each walks the schema its own way; they share this scaffolding:
fresh variable names, constants placed in the function's namespace, indented lines, and
compilation under a filename that tracebacks and profilers can show.
"""

from __future__ import annotations

import linecache
from itertools import count
from typing import Any

__all__ = ["PRIMITIVE", "Source", "Unsupported"]

PRIMITIVE = frozenset(("null", "boolean", "int", "long", "float", "double", "bytes", "string"))
_ids = count()


class Unsupported(Exception):
    """The schema uses a construct the generator does not compile (the caller keeps fastavro)."""


class Source:
    """Lines of generated Python and the namespace they run in."""

    def __init__(self, namespace: dict[str, Any] | None = None) -> None:
        self.namespace: dict[str, Any] = dict(namespace or {})
        self.lines: list[str] = []
        self._n = count()

    def var(self, prefix: str) -> str:
        """A fresh variable name."""
        return f"{prefix}{next(self._n)}"

    def const(self, value: Any, prefix: str = "_c") -> str:
        """The name under which `value` is visible to the generated code."""
        name = self.var(prefix)
        self.namespace[name] = value
        return name

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def either(self, depth: int, test: str, then: str, otherwise: str) -> None:
        """`if test: then` / `else: otherwise`, one line each: the usual value and the rest."""
        self.emit(depth, f"if {test}:")
        self.emit(depth + 1, then)
        self.emit(depth, "else:")
        self.emit(depth + 1, otherwise)

    @property
    def text(self) -> str:
        return "\n".join(self.lines) + "\n"

    def build(self, name: str, label: str, text: str | None = None) -> Any:
        """Compile `text` (default: the lines) and return the function `name` it defines."""
        source = self.text if text is None else text
        filename = f"<generated {next(_ids)}: {label}>"
        # Registered so that tracebacks and profilers can show the generated lines.
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        exec(compile(source, filename, "exec"), self.namespace)
        return self.namespace[name]
