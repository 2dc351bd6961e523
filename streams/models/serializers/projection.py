"""Avro readers generated as Python source that build only the fields a consumer needs.

The worker reads a handful of fields out of every CustomerDeleted record (ids, timestamps,
loyalty points, referral ids: `WORKER_FIELDS`), and fastavro's decode of the whole record (some
ninety fields, timestamps turned into datetimes) was its largest single cost. fastavro's own
projection (a reader schema without those fields) is no faster: it resolves the schemas per
record. `compile_reader(writer_schema, keep)` walks a fastavro-parsed writer schema once and
emits one straight-line function: fields in `keep` are decoded exactly as fastavro decodes them,
every other field is skipped by its encoding alone (a string's length, a union's branch, an
array's blocks) without building anything. Records missing from the result read as absent, which
is what the domain functions (`streams.domain.deltas`) expect of optional sections.

`keep` is a tree: {field name: True (the whole value) | {nested field name: ...}}; a nested tree
applies to the record inside a union, array or map. Raises `Unsupported` for schema constructs it
does not handle; the caller then keeps fastavro.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from streams.models.contract import named_types
from streams.models.serializers.codegen import Source, Unsupported

__all__ = ["WORKER_FIELDS", "Keep", "Reader", "Unsupported", "compile_reader", "source_of"]

Reader = Callable[[bytes, int], tuple[dict[str, Any], int]]
Keep = dict[str, Any]

#: What the worker reads of a CustomerDeleted record (streams.domain.deltas).
WORKER_FIELDS: Keep = {
    "created_at": True,
    "event": {"created_at": True},
    "data": {
        "customer": {
            "id": True,
            "updated_at": True,
            "loyalty": {
                "points": True,
                "referred_customers": True,
                "campaigns": {"points": True, "loyalty_tier": True, "referred_customers": True},
            },
            "referrals": {"campaigns": {"campaign_id": True, "referrer_id": True}},
        }
    },
}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """A zig-zag varint long at `pos`: (value, next position)."""
    n = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            return (n >> 1) ^ -(n & 1), pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _millis(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def compile_reader(schema: Any, keep: Keep) -> Reader:
    """read(buf, pos) -> (datum, next position) for a fastavro-parsed record schema."""
    read: Reader = _generate(schema, keep).build("read", "avro projection reader")
    return read


def source_of(schema: Any, keep: Keep) -> str:
    """The generated source (for tests and curious readers)."""
    return _generate(schema, keep).text


def _generate(schema: Any, keep: Keep) -> _Gen:
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise Unsupported("the top level must be a record")
    gen = _Gen(named_types(schema))
    gen.emit(0, "def read(buf, pos):")
    gen.emit(1, "d0 = {}")
    gen.record(schema, keep, "d0", 1)
    gen.emit(1, "return d0, pos")
    return gen


class _Gen(Source):
    def __init__(self, named: dict[str, Any]) -> None:
        super().__init__(
            {
                "_varint": _varint,
                "_millis": _millis,
                "_double": struct.Struct("<d").unpack_from,
                "_float": struct.Struct("<f").unpack_from,
            }
        )
        self.named = named
        self.depth: list[str] = []  # record names being generated (recursion guard)

    def resolve(self, schema: Any) -> Any:
        if isinstance(schema, str) and schema in self.named:
            return self.named[schema]
        return schema

    # -- records --

    def record(self, schema: dict[str, Any], keep: Keep, target: str, ind: int) -> None:
        name = schema.get("name", "")
        if name in self.depth:
            raise Unsupported(f"recursive record {name}")
        self.depth.append(name)
        for field in schema["fields"]:
            want = keep.get(field["name"])
            if want is None:
                self.skip(field["type"], ind)
            else:
                value = self.read(field["type"], want, ind)
                self.emit(ind, f"{target}[{field['name']!r}] = {value}")
        self.depth.pop()

    # -- reading a value: emits code, returns the expression holding it --

    def read(self, schema: Any, want: Any, ind: int) -> str:
        schema = self.resolve(schema)
        if isinstance(schema, list):
            return self.union(schema, want, ind)
        kind = schema if isinstance(schema, str) else schema.get("type")
        logical = schema.get("logicalType") if isinstance(schema, dict) else None
        v = self.var("v")
        if kind == "null":
            self.emit(ind, f"{v} = None")
        elif kind == "boolean":
            self.emit(ind, f"{v} = buf[pos] == 1")
            self.emit(ind, "pos += 1")
        elif kind in ("int", "long"):
            self.varint(v, ind)
            if logical == "timestamp-millis":
                self.emit(ind, f"{v} = _millis({v})")
            elif logical is not None:
                raise Unsupported(f"logical type {logical}")
        elif kind in ("string", "bytes"):
            if logical is not None:
                raise Unsupported(f"logical type {logical}")
            n = self.var("n")
            self.varint(n, ind)
            end = "pos + " + n
            self.emit(ind, f"if {n} < 0 or {end} > len(buf):")
            self.emit(ind + 1, "raise ValueError('length past the end of the record')")
            conv = ".decode()" if kind == "string" else ""
            self.emit(ind, f"{v} = buf[pos:{end}]{conv}")
            self.emit(ind, f"pos += {n}")
        elif kind in ("float", "double"):
            size, fn = (4, "_float") if kind == "float" else (8, "_double")
            self.emit(ind, f"{v} = {fn}(buf, pos)[0]")
            self.emit(ind, f"pos += {size}")
        elif kind == "record":
            self.emit(ind, f"{v} = {{}}")
            self.record(schema, want if isinstance(want, dict) else _all(schema), v, ind)
        elif kind == "array":
            self.emit(ind, f"{v} = []")
            self.blocks(
                ind, lambda i: self.emit(i, f"{v}.append({self.read(schema['items'], want, i)})")
            )
        elif kind == "map":
            self.emit(ind, f"{v} = {{}}")

            def item(i: int) -> None:
                k = self.read("string", True, i)
                self.emit(i, f"{v}[{k}] = {self.read(schema['values'], want, i)}")

            self.blocks(ind, item)
        elif kind == "enum":
            symbols = tuple(schema["symbols"])
            self.varint(v, ind)
            self.emit(ind, f"{v} = {symbols!r}[{v}]")
        elif kind == "fixed":
            size = int(schema["size"])
            self.emit(ind, f"{v} = buf[pos:pos + {size}]")
            self.emit(ind, f"pos += {size}")
        else:
            raise Unsupported(f"type {kind!r}")
        return v

    def union(self, branches: list[Any], want: Any, ind: int) -> str:
        v, b = self.var("v"), self.var("b")
        self.varint(b, ind)
        for i, branch in enumerate(branches):
            self.emit(ind, f"{'if' if i == 0 else 'elif'} {b} == {i}:")
            self.emit(ind + 1, f"{v} = {self.read(branch, want, ind + 1)}")
        self.emit(ind, "else:")
        self.emit(ind + 1, f"raise ValueError('union branch ' + str({b}) + ' out of range')")
        return v

    # -- skipping a value --

    def skip(self, schema: Any, ind: int) -> None:
        schema = self.resolve(schema)
        if isinstance(schema, list):
            b = self.var("b")
            self.varint(b, ind)
            for i, branch in enumerate(schema):
                self.emit(ind, f"{'if' if i == 0 else 'elif'} {b} == {i}:")
                self.emit(ind + 1, "pass")
                self.skip(branch, ind + 1)
            self.emit(ind, "else:")
            self.emit(ind + 1, f"raise ValueError('union branch ' + str({b}) + ' out of range')")
            return
        kind = schema if isinstance(schema, str) else schema.get("type")
        if kind == "null":
            return
        if kind == "boolean":
            self.emit(ind, "pos += 1")
        elif kind in ("int", "long", "enum"):
            self.varint("_", ind)
        elif kind in ("string", "bytes"):
            n = self.var("n")
            self.varint(n, ind)
            self.emit(ind, f"if {n} < 0:")
            self.emit(ind + 1, "raise ValueError('negative length')")
            self.emit(ind, f"pos += {n}")
        elif kind == "float":
            self.emit(ind, "pos += 4")
        elif kind == "double":
            self.emit(ind, "pos += 8")
        elif kind == "fixed":
            self.emit(ind, f"pos += {int(schema['size'])}")
        elif kind == "record":
            name = schema.get("name", "")
            if name in self.depth:
                raise Unsupported(f"recursive record {name}")
            self.depth.append(name)
            for field in schema["fields"]:
                self.skip(field["type"], ind)
            self.depth.pop()
        elif kind == "array":
            self.blocks(ind, lambda i: self.skip(schema["items"], i), skippable=True)
        elif kind == "map":

            def item(i: int) -> None:
                self.skip("string", i)
                self.skip(schema["values"], i)

            self.blocks(ind, item, skippable=True)
        else:
            raise Unsupported(f"type {kind!r}")

    # -- helpers --

    def varint(self, target: str, ind: int) -> None:
        # One byte (values -64..63) is by far the most common: no call for it.
        self.emit(ind, f"{target} = buf[pos]")
        self.emit(ind, f"if {target} < 128:")
        self.emit(ind + 1, f"{target} = ({target} >> 1) ^ -({target} & 1)")
        self.emit(ind + 1, "pos += 1")
        self.emit(ind, "else:")
        self.emit(ind + 1, f"{target}, pos = _varint(buf, pos)")

    def blocks(self, ind: int, item: Callable[[int], None], skippable: bool = False) -> None:
        """Avro array/map blocks: a count, then items, until a zero count. A negative count is
        followed by the block's byte size (which lets a skipped block be jumped over)."""
        c = self.var("c")
        self.varint(c, ind)
        self.emit(ind, f"while {c} != 0:")
        self.emit(ind + 1, f"if {c} < 0:")
        self.emit(ind + 2, f"{c} = -{c}")
        size = self.var("s")
        self.varint(size, ind + 2)
        if skippable:
            self.emit(ind + 2, f"pos += {size}")
            self.emit(ind + 2, f"{c} = 0")
        self.emit(ind + 1, f"for _ in range({c}):")
        item(ind + 2)
        self.varint(c, ind + 1)


def _all(schema: dict[str, Any]) -> Keep:
    return {f["name"]: True for f in schema["fields"]}
