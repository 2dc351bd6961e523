"""The Avro binary writer, generated as Python source per schema: byte-identical to fastavro.

fastavro picks a union branch by validating the datum against each branch, so a record of ~75
nullable fields (CustomerDeleted) costs ~100 µs to write. `compile_writer` walks a
fastavro-parsed schema once and emits a straight-line function for it: nested records inlined,
each field read once, the union branch chosen from the Python type, the branch index and a
short length written as one precomputed piece, small longs and string lengths from tables,
everything appended to one bytearray. Only the subset the project's schemas use is compiled
(records, null-unions and other type-distinct unions, primitives, arrays, maps,
timestamp-millis/-micros); anything else raises `Unsupported` at compile time and the caller
keeps fastavro.

A writer raises on any mismatch without saying where: the caller re-checks the datum with the
contract (streams.models.contract) for a precise message. Tests hold its bytes to fastavro's.
Only records referenced from inside themselves are emitted as separate functions (and called).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from streams.models.contract import named_types
from streams.models.serializers.codegen import PRIMITIVE, Source, Unsupported

__all__ = [
    "Mismatch",
    "Unsupported",
    "Writer",
    "WriterGen",
    "compile_writer",
    "source_of",
    "varint",
]

Writer = Callable[[bytearray, Any], None]

_LONG_MIN = -(1 << 63)
_LONG_MAX = (1 << 63) - 1
_INT_MIN = -(1 << 31)
_INT_MAX = (1 << 31) - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_pack_double = struct.Struct("<d").pack
_pack_float = struct.Struct("<f").pack

#: zig-zag varint of 0..63 (one byte each).
_SMALL = tuple(bytes((n << 1,)) for n in range(64))
#: union branch 1 followed by the one-byte zig-zag varint of 0..63 (length or value).
_OPT_SMALL = tuple(bytes((2, n << 1)) for n in range(64))

# Python types each kind of branch accepts, to pick a union branch without validating.
_BRANCH_TYPES: dict[str, tuple[type, ...]] = {
    "boolean": (bool,),
    "int": (int,),
    "long": (int,),
    "float": (float,),
    "double": (float,),
    "bytes": (bytes, bytearray, memoryview),
    "string": (str,),
    "record": (dict,),
    "map": (dict,),
    "array": (list, tuple),
}


# Numbers: (the test of the usual value, its bytes, the checking writer of any other value).
_USUAL: dict[str, tuple[str, str, str]] = {
    "long": ("type({x}) is int and 0 <= {x} < 64", "_SMALL[{x}]", "_long"),
    "int": ("type({x}) is int and 0 <= {x} < 64", "_SMALL[{x}]", "_int"),
    "double": ("type({x}) is float", "_pack_double({x})", "_double"),
    "float": ("type({x}) is float", "_pack_float({x})", "_float"),
}


class Mismatch(Exception):
    """The datum does not fit the schema (where: ask the contract)."""


# -- what the generated code calls for the less common values ----------------------------------


def _write_long(buf: bytearray, n: int) -> None:
    n = (n << 1) ^ (n >> 63)
    while n > 0x7F:
        buf.append((n & 0x7F) | 0x80)
        n >>= 7
    buf.append(n)


def _long(buf: bytearray, v: Any) -> None:
    if type(v) is not int and (not isinstance(v, int) or isinstance(v, bool)):
        raise Mismatch
    if v < _LONG_MIN or v > _LONG_MAX:
        raise Mismatch
    _write_long(buf, v)


def _int(buf: bytearray, v: Any) -> None:
    if type(v) is not int and (not isinstance(v, int) or isinstance(v, bool)):
        raise Mismatch
    if v < _INT_MIN or v > _INT_MAX:
        raise Mismatch
    _write_long(buf, v)


def _bytes(buf: bytearray, v: Any) -> None:
    if not isinstance(v, bytes | bytearray | memoryview):
        raise Mismatch
    data = bytes(v)
    _write_long(buf, len(data))
    buf += data


def _boolean(buf: bytearray, v: Any) -> None:
    if type(v) is not bool:
        raise Mismatch
    buf.append(1 if v else 0)


def _double(buf: bytearray, v: Any) -> None:
    if not isinstance(v, float | int) or isinstance(v, bool):
        raise Mismatch
    buf += _pack_double(v)


def _float(buf: bytearray, v: Any) -> None:
    if not isinstance(v, float | int) or isinstance(v, bool):
        raise Mismatch
    buf += _pack_float(v)


def _kind(schema: Any, named: dict[str, Any]) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, str):
        if schema in named:
            return _kind(named[schema], named)
        return schema
    if schema.get("logicalType") in ("timestamp-millis", "timestamp-micros"):
        return "timestamp"
    kind = schema["type"]
    return _kind(kind, named) if isinstance(kind, list | dict) else str(kind)


# -- the generator -------------------------------------------------------------------------------


def compile_writer(schema: Any) -> Writer:
    """A generated writer for a fastavro-parsed schema; raises Unsupported for constructs it
    does not compile."""
    gen = _generate(schema)
    write: Writer = gen.build("write", f"avro writer {_label(schema)}")
    return write


def source_of(schema: Any) -> str:
    """The generated source for `schema` (for tests and curious readers)."""
    return _generate(schema).text


def _label(schema: Any) -> str:
    if isinstance(schema, dict) and isinstance(schema.get("name"), str):
        return str(schema["name"])
    return "schema"


def _generate(schema: Any) -> WriterGen:
    named = named_types(schema)
    gen = WriterGen(named)
    body = gen.function("write", schema)
    while gen.pending:
        name = gen.pending.pop()
        gen.functions.append(gen.function(gen.record_functions[name], named[name], name))
    gen.lines = [*gen.functions, body]
    return gen


class WriterGen(Source):
    def __init__(self, named: dict[str, Any]) -> None:
        super().__init__(
            {
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
        )
        self.named = named
        self.functions: list[str] = []
        self.record_functions: dict[str, str] = {}  # record name -> function name
        self.pending: list[str] = []
        self.inlining: list[str] = []  # records whose code is being generated, outermost first

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
        text = "\n".join(self.lines)
        self.lines, self.inlining = saved_lines, saved_stack
        return text

    def resolve(self, schema: Any) -> Any:
        while isinstance(schema, str) and schema not in PRIMITIVE:
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
            if schema in PRIMITIVE:
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
        if isinstance(kind, str) and kind in PRIMITIVE:
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
        elif kind in _USUAL:
            usual, piece, checked = _USUAL[kind]
            self.either(d, usual.format(x=x), f"buf += {piece.format(x=x)}", f"{checked}(buf, {x})")
        elif kind == "boolean":
            self.emit(d, f"_boolean(buf, {x})")
        elif kind == "bytes":
            self.emit(d, f"_bytes(buf, {x})")
        else:  # pragma: no cover - PRIMITIVE is exhaustive
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
        # Aware datetimes (fastavro would read a naive one as local time; this project means UTC)
        # or plain longs.
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

    def length(self, expr: str, d: int) -> None:
        """A count or length: one byte from the table when short."""
        n = self.var("n")
        self.emit(d, f"{n} = {expr}")
        self.either(d, f"{n} < 64", f"buf += _SMALL[{n}]", f"_write_long(buf, {n})")

    def array(self, items: Any, x: str, d: int) -> None:
        self.emit(d, f"if not isinstance({x}, (list, tuple)):")
        self.emit(d + 1, "raise _Mismatch")
        self.emit(d, f"if {x}:")
        self.length(f"len({x})", d + 1)
        item = self.var("i")
        self.emit(d + 1, f"for {item} in {x}:")
        self.value(items, item, d + 2)
        self.emit(d, 'buf += b"\\x00"')

    def map(self, values: Any, x: str, d: int) -> None:
        self.emit(d, f"if not isinstance({x}, _Mapping):")
        self.emit(d + 1, "raise _Mismatch")
        self.emit(d, f"if {x}:")
        self.length(f"len({x})", d + 1)
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
        # Each Python type must pick exactly one branch, else fastavro decides.
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
            # fastavro's float/int branch preferences are subtle; not worth mirroring.
            raise Unsupported(f"union of {kinds}")
        self.emit(d, f"if {x} is None:")
        if null_index < 0:
            self.emit(d + 1, "raise _Mismatch")
        else:
            self.emit(d + 1, f"buf += {self.const(varint(null_index))}")
        for types, index, branch in table:
            check = f"isinstance({x}, {self.const(types)})"
            if bool not in types and int in types:
                check += f" and type({x}) is not bool"
            self.emit(d, f"elif {check}:")
            self.emit(d + 1, f"buf += {self.const(varint(index))}")
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
    """{"type": kind} without a logical type."""
    return isinstance(schema, dict) and schema.get("type") == kind and "logicalType" not in schema


def varint(n: int) -> bytes:
    """The zig-zag varint of `n`: a long, a count or a union index as Avro writes it."""
    buf = bytearray()
    _write_long(buf, n)
    return bytes(buf)
