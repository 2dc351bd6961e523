"""Avro binary writers generated as Python source, one per schema: byte-identical to fastavro.

`compile_writer` walks a fastavro-parsed schema once and emits a straight-line function for it:
nested records inlined, each field read once, no per-field dispatch, the union branch index
and a short length written as one precomputed piece, small longs and string lengths from
tables, everything appended to one bytearray (measured: ~2.5x faster than writer.py's
closures on CustomerDeleted). The result has the same contract as `writer.compile_writer`,
whose closures remain the reference (tests hold both to fastavro's bytes): it writes into the
given bytearray, raises on any mismatch without saying where (the caller explains), and raises
`Unsupported` at compile time for exactly the constructs writer.py declines (the caller then
keeps fastavro).

Only records referenced from inside themselves are emitted as separate functions (and called).
"""

from __future__ import annotations

import linecache
from collections.abc import Mapping
from datetime import UTC, datetime
from itertools import count
from typing import Any

from streams.models.serializers.writer import (
    _BRANCH_TYPES,
    _EPOCH,
    Mismatch,
    Unsupported,
    Writer,
    _boolean,
    _bytes,
    _double,
    _float,
    _int,
    _kind,
    _long,
    _pack_double,
    _pack_float,
    _write_long,
)

__all__ = ["compile_writer", "source_of"]

#: zig-zag varint of 0..63 (one byte each).
_SMALL = tuple(bytes((n << 1,)) for n in range(64))
#: union branch 1 followed by the one-byte zig-zag varint of 0..63 (length or value).
_OPT_SMALL = tuple(bytes((2, n << 1)) for n in range(64))

_PRIMITIVE = frozenset(("null", "boolean", "int", "long", "float", "double", "bytes", "string"))
_ids = count()


def compile_writer(schema: Any) -> Writer:
    """A generated writer for a fastavro-parsed schema; raises Unsupported like writer.py."""
    source, namespace = _generate(schema)
    filename = f"<avro writer {next(_ids)}: {_label(schema)}>"
    # Registered so that tracebacks and profilers can show the generated lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)
    write: Writer = namespace["write"]
    return write


def source_of(schema: Any) -> str:
    """The generated source for `schema` (for tests and curious readers)."""
    return _generate(schema)[0]


def _label(schema: Any) -> str:
    if isinstance(schema, dict) and isinstance(schema.get("name"), str):
        return str(schema["name"])
    return "schema"


def _generate(schema: Any) -> tuple[str, dict[str, Any]]:
    named: dict[str, Any] = (
        dict(schema.get("__named_schemas", {})) if isinstance(schema, dict) else {}
    )
    gen = _Gen(named)
    body = gen.function("write", schema)
    while gen.pending:
        name = gen.pending.pop()
        gen.functions.append(gen.function(gen.record_functions[name], named[name], name))
    source = "\n".join([*gen.functions, body]) + "\n"
    return source, gen.namespace


class _Gen:
    def __init__(self, named: dict[str, Any]) -> None:
        self.named = named
        self.namespace: dict[str, Any] = {
            "_Mismatch": Mismatch,
            "_Mapping": Mapping,
            "_datetime": datetime,
            "_UTC": UTC,
            "_EPOCH": _EPOCH,
            "_SMALL": _SMALL,
            "_OPT_SMALL": _OPT_SMALL,
            "_write_long": _write_long,
            "_long": _long,
            "_int": _int,
            "_boolean": _boolean,
            "_bytes": _bytes,
            "_double": _double,
            "_float": _float,
            "_pack_double": _pack_double,
            "_pack_float": _pack_float,
        }
        self.functions: list[str] = []
        self.record_functions: dict[str, str] = {}  # record name -> function name
        self.pending: list[str] = []
        self.inlining: list[str] = []  # records whose code is being generated, outermost first
        self.lines: list[str] = []
        self._n = count()

    # -- helpers --

    def var(self, prefix: str) -> str:
        return f"{prefix}{next(self._n)}"

    def const(self, value: Any) -> str:
        name = self.var("_c")
        self.namespace[name] = value
        return name

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def function(self, fname: str, schema: Any, record: str | None = None) -> str:
        saved_lines, saved_stack = self.lines, self.inlining
        self.lines, self.inlining = [], ([record] if record else [])
        self.emit(0, f"def {fname}(buf, v):")
        if record is not None:
            self.record(schema, "v", 1)
        else:
            self.value(schema, "v", 1)
        if len(self.lines) == 1:
            self.emit(1, "pass")
        text = "\n".join(self.lines) + "\n"
        self.lines, self.inlining = saved_lines, saved_stack
        return text

    def resolve(self, schema: Any) -> Any:
        while isinstance(schema, str) and schema not in _PRIMITIVE:
            if schema not in self.named:
                raise Unsupported(schema)
            schema = self.named[schema]
        return schema

    # -- code for one value held in variable `x` --

    def value(self, schema: Any, x: str, d: int) -> None:
        if isinstance(schema, list):
            self.union(schema, x, d)
            return
        if isinstance(schema, str):
            if schema in _PRIMITIVE:
                self.primitive(schema, x, d)
                return
            if schema in self.inlining:
                self.call_record(schema, x, d)
                return
            self.value(self.resolve(schema), x, d)
            return
        logical = schema.get("logicalType")
        kind = schema["type"]
        if logical == "timestamp-millis" and kind == "long":
            self.timestamp(1000, x, d)
            return
        if logical == "timestamp-micros" and kind == "long":
            self.timestamp(1_000_000, x, d)
            return
        if logical is not None and kind != "string":
            raise Unsupported(f"logicalType {logical}")
        if kind == "record":
            name = schema["name"]
            if name in self.inlining:
                self.call_record(name, x, d)
            else:
                self.inlining.append(name)
                self.record(schema, x, d)
                self.inlining.pop()
            return
        if kind == "array":
            self.array(schema["items"], x, d)
            return
        if kind == "map":
            self.map(schema["values"], x, d)
            return
        if isinstance(kind, str) and kind in _PRIMITIVE:
            self.primitive(kind, x, d)
            return
        if isinstance(kind, list | dict):
            self.value(kind, x, d)
            return
        raise Unsupported(str(kind))

    def call_record(self, name: str, x: str, d: int) -> None:
        fname = self.record_functions.get(name)
        if fname is None:
            fname = self.record_functions[name] = self.var("_record")
            self.pending.append(name)
        self.emit(d, f"{fname}(buf, {x})")

    def record(self, schema: dict[str, Any], x: str, d: int) -> None:
        self.emit(d, f"if type({x}) is not dict and not isinstance({x}, _Mapping):")
        self.emit(d + 1, "raise _Mismatch")
        get = self.var("get")
        self.emit(d, f"{get} = {x}.get")
        for field in schema["fields"]:
            f = self.var("f")
            default = field.get("default")
            if default is None:
                self.emit(d, f"{f} = {get}({field['name']!r})")
            else:
                self.emit(d, f"{f} = {get}({field['name']!r}, {self.const(default)})")
            self.value(field["type"], f, d)

    def primitive(self, kind: str, x: str, d: int) -> None:
        if kind == "null":
            self.emit(d, f"if {x} is not None:")
            self.emit(d + 1, "raise _Mismatch")
        elif kind == "string":
            self.string(x, d, "_SMALL")
        elif kind == "long":
            self.emit(d, f"if type({x}) is int and 0 <= {x} < 64:")
            self.emit(d + 1, f"buf += _SMALL[{x}]")
            self.emit(d, "else:")
            self.emit(d + 1, f"_long(buf, {x})")
        elif kind == "int":
            self.emit(d, f"if type({x}) is int and 0 <= {x} < 64:")
            self.emit(d + 1, f"buf += _SMALL[{x}]")
            self.emit(d, "else:")
            self.emit(d + 1, f"_int(buf, {x})")
        elif kind == "double":
            self.emit(d, f"if type({x}) is float:")
            self.emit(d + 1, f"buf += _pack_double({x})")
            self.emit(d, "else:")
            self.emit(d + 1, f"_double(buf, {x})")
        elif kind == "float":
            self.emit(d, f"if type({x}) is float:")
            self.emit(d + 1, f"buf += _pack_float({x})")
            self.emit(d, "else:")
            self.emit(d + 1, f"_float(buf, {x})")
        elif kind == "boolean":
            self.emit(d, f"_boolean(buf, {x})")
        elif kind == "bytes":
            self.emit(d, f"_bytes(buf, {x})")
        else:  # pragma: no cover - _PRIMITIVE is exhaustive
            raise Unsupported(kind)

    def string(self, x: str, d: int, table: str, prefix: str = "") -> None:
        """A string; `table` holds the (branch index +) one-byte length pieces, `prefix` is
        the branch index to write before a longer length."""
        self.emit(d, f"if type({x}) is not str:")
        self.emit(d + 1, "raise _Mismatch")
        data, n = self.var("s"), self.var("n")
        self.emit(d, f"{data} = {x}.encode()")
        self.emit(d, f"{n} = len({data})")
        self.emit(d, f"if {n} < 64:")
        self.emit(d + 1, f"buf += {table}[{n}]")
        self.emit(d, "else:")
        if prefix:
            self.emit(d + 1, f"buf += {prefix}")
        self.emit(d + 1, f"_write_long(buf, {n})")
        self.emit(d, f"buf += {data}")

    def timestamp(self, scale: int, x: str, d: int, prefix: str = "") -> None:
        # writer._timestamp, inlined: aware datetimes (naive ones read as UTC) or plain longs.
        self.emit(d, f"if isinstance({x}, _datetime):")
        if prefix:
            self.emit(d + 1, f"buf += {prefix}")
        self.emit(d + 1, f"if {x}.tzinfo is None:")
        self.emit(d + 2, f"{x} = {x}.replace(tzinfo=_UTC)")
        delta = self.var("t")
        self.emit(d + 1, f"{delta} = {x} - _EPOCH")
        micros = f"{delta}.microseconds"
        if scale != 1_000_000:
            micros += f" // {1_000_000 // scale}"
        total = f"({delta}.days * 86400 + {delta}.seconds) * {scale} + {micros}"
        self.emit(d + 1, f"_write_long(buf, {total})")
        self.emit(d, "else:")
        if prefix:
            # _long raises before writing anything, so the index may be written first.
            self.emit(d + 1, f"buf += {prefix}")
        self.emit(d + 1, f"_long(buf, {x})")

    def array(self, items: Any, x: str, d: int) -> None:
        self.emit(d, f"if not isinstance({x}, (list, tuple)):")
        self.emit(d + 1, "raise _Mismatch")
        self.emit(d, f"if {x}:")
        n = self.var("n")
        self.emit(d + 1, f"{n} = len({x})")
        self.emit(d + 1, f"if {n} < 64:")
        self.emit(d + 2, f"buf += _SMALL[{n}]")
        self.emit(d + 1, "else:")
        self.emit(d + 2, f"_write_long(buf, {n})")
        item = self.var("i")
        self.emit(d + 1, f"for {item} in {x}:")
        self.value(items, item, d + 2)
        self.emit(d, 'buf += b"\\x00"')

    def map(self, values: Any, x: str, d: int) -> None:
        self.emit(d, f"if not isinstance({x}, _Mapping):")
        self.emit(d + 1, "raise _Mismatch")
        self.emit(d, f"if {x}:")
        n = self.var("n")
        self.emit(d + 1, f"{n} = len({x})")
        self.emit(d + 1, f"if {n} < 64:")
        self.emit(d + 2, f"buf += _SMALL[{n}]")
        self.emit(d + 1, "else:")
        self.emit(d + 2, f"_write_long(buf, {n})")
        key, item = self.var("k"), self.var("i")
        self.emit(d + 1, f"for {key}, {item} in {x}.items():")
        self.string(key, d + 2, "_SMALL")
        self.value(values, item, d + 2)
        self.emit(d, 'buf += b"\\x00"')

    def union(self, branches: list[Any], x: str, d: int) -> None:
        kinds = [_kind(b, self.named) for b in branches]
        if len(branches) == 2 and kinds[0] == "null":
            self.optional(branches[1], kinds[1], x, d)
            return
        # As writer._compile_union: each Python type picks exactly one branch.
        table: list[tuple[tuple[type, ...], int, Any]] = []
        seen: set[type] = set()
        null_index = -1
        for index, (kind, branch) in enumerate(zip(kinds, branches, strict=True)):
            if kind == "null":
                null_index = index
                continue
            types = (datetime, int) if kind == "timestamp" else _BRANCH_TYPES.get(kind)
            if types is None or seen.intersection(types):
                raise Unsupported(f"union of {kinds}")
            seen.update(types)
            table.append((types, index, branch))
        if {"float", "double"} & set(kinds):
            raise Unsupported(f"union of {kinds}")
        self.emit(d, f"if {x} is None:")
        if null_index < 0:
            self.emit(d + 1, "raise _Mismatch")
        else:
            self.emit(d + 1, f"buf += {self.const(_varint(null_index))}")
        for types, index, branch in table:
            check = f"isinstance({x}, {self.const(types)})"
            if bool not in types and int in types:
                check += f" and type({x}) is not bool"
            self.emit(d, f"elif {check}:")
            self.emit(d + 1, f"buf += {self.const(_varint(index))}")
            self.value(branch, x, d + 1)
        self.emit(d, "else:")
        self.emit(d + 1, "raise _Mismatch")

    def optional(self, branch: Any, kind: str, x: str, d: int) -> None:
        """["null", branch]: index 0 for None, else index 1 and the branch."""
        self.emit(d, f"if {x} is None:")
        self.emit(d + 1, 'buf += b"\\x00"')
        resolved = self.resolve(branch)
        if kind == "string" and (resolved == "string" or _is_plain(resolved, "string")):
            self.emit(d, "else:")
            self.string(x, d + 1, "_OPT_SMALL", prefix='b"\\x02"')
            return
        if kind == "long" and (resolved == "long" or _is_plain(resolved, "long")):
            self.emit(d, f"elif type({x}) is int and 0 <= {x} < 64:")
            self.emit(d + 1, f"buf += _OPT_SMALL[{x}]")
            self.emit(d, "else:")
            # _long raises before writing anything, so the index may be written first.
            self.emit(d + 1, 'buf += b"\\x02"')
            self.emit(d + 1, f"_long(buf, {x})")
            return
        if kind == "timestamp":
            self.emit(d, "else:")
            scale = 1000 if resolved["logicalType"] == "timestamp-millis" else 1_000_000
            self.timestamp(scale, x, d + 1, prefix='b"\\x02"')
            return
        self.emit(d, "else:")
        self.emit(d + 1, 'buf += b"\\x02"')
        self.value(branch, x, d + 1)


def _is_plain(schema: Any, kind: str) -> bool:
    """{"type": kind} without a logical type (or with one writer.py ignores for strings)."""
    return isinstance(schema, dict) and schema.get("type") == kind and "logicalType" not in schema


def _varint(n: int) -> bytes:
    buf = bytearray()
    _write_long(buf, n)
    return bytes(buf)
