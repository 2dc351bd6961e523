"""The data contract, derived from the Avro schemas: the one walk that checks values against a
schema and words what is wrong (`<JSON path>: <rule>`).

`build(schema, webhook=...)` walks a fastavro-parsed schema once into a tree of `Node`s, each
with a `convert` closure:
- `webhook=True`: JSON as parsed -> the Avro datum (ISO-8601 timestamps -> datetimes truncated
  to milliseconds, integral floats -> ints, unknown keys dropped, missing fields -> their
  defaults). `overrides` replace the node at a field path with a rule the schema cannot say
  (streams.models.customer_deleted has the webhook's);
- `webhook=False`: a datum as the codec encodes it, returned as it is (the codec asks only
  after its generated writer failed, for the message).

On the happy path no path strings are built: a failure raises `Bad`, and each enclosing level
adds its path segment while the exception unwinds. The nodes also tell the webhook's generated
fast path (customer_deleted.py) what to inline.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any, cast

import fastavro

from streams.models.errors import ValidationError

__all__ = [
    "LONG_MAX",
    "LONG_MIN",
    "NO_DEFAULT",
    "SCHEMA_DIR",
    "Bad",
    "Field",
    "Node",
    "build",
    "error",
    "load_schema_file",
    "named_types",
    "parsed_schema",
    "schema_files",
    "string",
    "type_name",
]

# Package data, so an installed wheel finds them wherever it runs from.
SCHEMA_DIR: Traversable = files("streams.models") / "schemas"

Conv = Callable[[Any], Any]
Override = Callable[["Node"], "Node"]

LONG_MIN = -(1 << 63)
LONG_MAX = (1 << 63) - 1
_INT_MIN = -(1 << 31)
_INT_MAX = (1 << 31) - 1
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
NO_DEFAULT = object()


def load_schema_file(path: Traversable) -> dict[str, Any]:
    """The JSON of one `.avsc` file."""
    raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return raw


def schema_files(directory: Traversable) -> list[Traversable]:
    """The `.avsc` files directly in `directory`, by name (none when it does not exist)."""
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if p.is_file() and p.name.endswith(".avsc")]
    return sorted(found, key=lambda p: p.name)


def named_types(schema: Any) -> dict[str, Any]:
    """The named types of a fastavro-parsed schema, by full name."""
    return dict(schema.get("__named_schemas", {})) if isinstance(schema, dict) else {}


def parsed_schema(raw: dict[str, Any]) -> dict[str, Any]:
    """fastavro's parse of one schema version."""
    # A fresh named-types table per version: v0 and v1 define the same names differently.
    return cast(dict[str, Any], fastavro.parse_schema(raw, named_schemas={}))


class Bad(Exception):
    """A broken rule; `parts` collects path segments innermost first."""

    __slots__ = ("parts", "rule")

    def __init__(self, rule: str) -> None:
        super().__init__(rule)
        self.rule = rule
        self.parts: list[str] = []


def error(bad: Bad) -> ValidationError:
    """The ValidationError of a Bad that unwound to the top."""
    return ValidationError(join(bad.parts), bad.rule)


def type_name(value: object, *, blank: bool = True) -> str:
    """What a value is, in JSON's words (for "expected X, got Y"); `blank`: "" is "empty string"
    (the webhook's wording; the codec's checks of datums say "string")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "empty string" if blank and value == "" else "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def join(parts: list[str]) -> str:
    out = ""
    for part in reversed(parts):
        if part.startswith("[") or not out:
            out += part
        else:
            out += "." + part
    return out


def key_part(key: object) -> str:
    # Map keys (campaign names) are free text: bracket-quote them so the path stays parseable.
    if isinstance(key, str) and _IDENT.fullmatch(key):
        return f'["{key}"]'
    return "[" + json.dumps(key, ensure_ascii=False) + "]"


@dataclass(eq=False, slots=True)
class Node:
    """One schema position: `kind` is "record", "map", "array", "union", "optional" or a leaf
    rule's name ("string", "long", "timestamp", ... or an override's)."""

    kind: str
    convert: Conv
    fields: tuple[Field, ...] = ()
    items: Node | None = None  # array items, map values, an optional's value


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    node: Node
    required: bool  # no null in its type: missing or null is an error (unless it has a default)
    default: Any = NO_DEFAULT


# -- leaf rules -----------------------------------------------------------------------------------


def _utf8(value: str) -> str:
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # JSON allows "\ud800"; UTF-8 (and so Avro) does not.
            raise Bad("expected string, got a string with an unpaired surrogate") from None
    return value


def string(value: Any) -> str:
    """A JSON string that Avro can hold."""
    if type(value) is str:
        return _utf8(value)
    raise Bad(f"expected string, got {type_name(value)}")


def long(value: Any) -> int:
    """A JSON number that is a 64-bit integer."""
    if type(value) is int:
        if LONG_MIN <= value <= LONG_MAX:
            return value
        raise Bad("expected 64-bit integer, got an out-of-range integer")
    # JSON has one number type; 2500.0 is the integer 2500 from some serialisers.
    if type(value) is float and value.is_integer():
        if LONG_MIN <= value <= LONG_MAX:
            return int(value)
        raise Bad("expected 64-bit integer, got an out-of-range number")
    raise Bad(f"expected integer, got {type_name(value)}")


def timestamp(value: Any) -> datetime:
    """An ISO-8601 string as a UTC datetime with whole milliseconds (as timestamp-millis keeps)."""
    if type(value) is not str:
        raise Bad(f"expected ISO-8601 timestamp, got {type_name(value)}")
    try:
        dt = datetime.fromisoformat(value)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        elif dt.tzinfo is not UTC:
            dt = dt.astimezone(UTC)
    except (ValueError, OverflowError):
        raise Bad("expected ISO-8601 timestamp, got an unparseable string") from None
    sub_ms = dt.microsecond % 1000
    # Truncate now so the datum equals its decode.
    return dt.replace(microsecond=dt.microsecond - sub_ms) if sub_ms else dt


def _null(value: Any) -> None:
    if value is not None:
        raise Bad(f"expected null, got {type_name(value, blank=False)}")


def _datum_leaf(label: str, kinds: type | tuple[type, ...], bits: int = 0) -> Conv:
    def check(value: Any) -> Any:
        if value is None:
            raise Bad("must not be null")
        if not isinstance(value, kinds) or (label != "boolean" and isinstance(value, bool)):
            raise Bad(f"expected {label}, got {type_name(value, blank=False)}")
        if bits and not -(1 << (bits - 1)) <= cast(int, value) < (1 << (bits - 1)):
            raise Bad(f"expected {bits}-bit integer, got an out-of-range integer")
        return _utf8(value) if isinstance(value, str) else value

    return check


def _any(value: Any) -> Any:
    return value


_WEBHOOK_LEAVES: dict[str, Conv] = {
    "null": _null,
    "string": string,
    "long": long,
    "timestamp-millis": timestamp,
}
_DATUM_LEAVES: dict[str, Conv] = {
    "null": _null,
    "string": _datum_leaf("string", str),
    "long": _datum_leaf("integer", int, 64),
    "int": _datum_leaf("integer", int, 32),
    "boolean": _datum_leaf("boolean", bool),
    "double": _datum_leaf("number", (int, float)),
    "float": _datum_leaf("number", (int, float)),
    "bytes": _datum_leaf("bytes", (bytes, bytearray, memoryview)),
    "timestamp-millis": _datum_leaf("timestamp (datetime)", (datetime, int)),
    "timestamp-micros": _datum_leaf("timestamp (datetime)", (datetime, int)),
}


# -- the walk -------------------------------------------------------------------------------


def build(schema: Any, *, webhook: bool, overrides: Mapping[str, Override] | None = None) -> Node:
    """The node tree of a fastavro-parsed schema (see the module docstring)."""
    return _Walk(named_types(schema), webhook, dict(overrides or {})).node(schema, "")


class _Walk:
    def __init__(self, named: dict[str, Any], webhook: bool, overrides: dict[str, Override]):
        self.named = named
        self.webhook = webhook
        self.leaves = _WEBHOOK_LEAVES if webhook else _DATUM_LEAVES
        self.overrides = overrides
        self.records: dict[str, Conv] = {}  # built so far, for recursive references
        self.building: set[str] = set()

    def node(self, schema: Any, path: str) -> Node:
        """The node of the value at `path` (dotted field names; maps and arrays add nothing)."""
        if isinstance(schema, list):
            return self.union(schema, path)
        if isinstance(schema, str):
            if schema in self.named:
                if schema in self.building:
                    records = self.records  # a record inside itself: look it up when called
                    return Node("record", lambda value: records[schema](value))
                return self.node(self.named[schema], path)
            return self.leaf(schema)
        kind = schema["type"]
        logical = schema.get("logicalType")
        if logical in ("timestamp-millis", "timestamp-micros") and kind == "long":
            return self.leaf(logical, "timestamp")
        if kind == "record":
            return self.record(schema, path)
        if kind == "array":
            return self.array(self.node(schema["items"], path))
        if kind == "map":
            return self.map(self.node(schema["values"], path))
        if isinstance(kind, list | dict) or kind in self.named:
            return self.node(kind, path)
        return self.leaf(kind)  # other logical types: their underlying type's rule

    def leaf(self, name: str, kind: str | None = None) -> Node:
        conv = self.leaves.get(name)
        if conv is None:
            if self.webhook:
                raise TypeError(f"no JSON rule for Avro {name!r}")
            conv = _any  # enum, fixed: the writer (fastavro) says what is wrong
        return Node(kind or name, conv)

    def union(self, branches: list[Any], path: str) -> Node:
        real = [self.node(b, path) for b in branches if b != "null"]
        if not real:
            return self.leaf("null")
        inner = real[0] if len(real) == 1 else _union(real)
        if len(real) == len(branches):
            return inner
        convert = inner.convert

        def optional(value: Any) -> Any:
            return None if value is None else convert(value)

        return Node("optional", optional, items=inner)

    def record(self, schema: dict[str, Any], path: str) -> Node:
        name = schema["name"]
        self.building.add(name)
        fields = []
        for f in schema["fields"]:
            sub = f"{path}.{f['name']}" if path else f["name"]
            node = self.node(f["type"], sub)
            required = node.kind != "optional"
            if not required:
                node = node.items or node  # the record says what null means
            override = self.overrides.get(sub)
            if override is not None:
                node = override(node)
            fields.append(Field(f["name"], node, required, f.get("default", NO_DEFAULT)))
        self.building.discard(name)
        convert = (_webhook_record if self.webhook else _datum_record)(tuple(fields))
        self.records[name] = convert
        return Node("record", convert, fields=tuple(fields))

    def array(self, items: Node) -> Node:
        convert, kinds, blank = items.convert, list if self.webhook else (list, tuple), self.webhook

        def array(value: Any) -> Any:
            if not isinstance(value, kinds):
                raise Bad(f"expected array, got {type_name(value, blank=blank)}")
            out = []
            for index, item in enumerate(value):
                try:
                    out.append(convert(item))
                except Bad as bad:
                    bad.parts.append(f"[{index}]")
                    raise
            return out if self.webhook else value

        return Node("array", array, items=items)

    def map(self, values: Node) -> Node:
        convert, webhook = values.convert, self.webhook
        key_rule = self.leaves["string"]

        def map_of(value: Any) -> Any:
            if not isinstance(value, dict if webhook else Mapping):
                # PHP-style encoders write an empty object as [].
                if webhook and isinstance(value, list) and not value:
                    return {}
                raise Bad(f"expected object, got {type_name(value, blank=webhook)}")
            out: dict[str, Any] = {}
            for key, item in value.items():
                if not webhook and not isinstance(key, str):
                    raise Bad(f"expected string keys, got {type_name(key, blank=False)}")
                try:
                    out[key_rule(key)] = convert(item)
                except Bad as bad:
                    bad.parts.append(key_part(key) if webhook else f"[{json.dumps(key)}]")
                    raise
            return out if webhook else value

        return Node("map", map_of, items=values)


def _union(branches: list[Node]) -> Node:
    convs = [b.convert for b in branches]

    def union(value: Any) -> Any:
        bads = []
        for conv in convs:
            try:
                return conv(value)
            except Bad as bad:
                bads.append(bad)
        if value is None:
            raise Bad("must not be null")
        # Report inside the branch of the right kind rather than "expected <the first kind>".
        raise next((bad for bad in bads if bad.parts), bads[0])

    return Node("union", union)


def _missing_or_null(key: str, value: Mapping[str, Any]) -> Bad:
    bad = Bad("required field is missing" if key not in value else "must not be null")
    bad.parts.append(key)
    return bad


def _webhook_record(fields: tuple[Field, ...]) -> Conv:
    items = tuple((f.name, f.node.convert, f.required, f.default) for f in fields)

    def record(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise Bad(f"expected object, got {type_name(value)}")
        out: dict[str, Any] = {}
        for key, conv, required, default in items:
            item = value.get(key)
            if item is None:
                if key not in value and default is not NO_DEFAULT:
                    out[key] = copy.deepcopy(default)
                elif required:
                    raise _missing_or_null(key, value)
                else:
                    out[key] = None
                continue
            try:
                out[key] = conv(item)
            except Bad as bad:
                bad.parts.append(key)
                raise
        return out

    return record


def _datum_record(fields: tuple[Field, ...]) -> Conv:
    items = tuple((f.name, f.node.convert, f.required, f.default) for f in fields)

    def record(value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise Bad(f"expected object, got {type_name(value, blank=False)}")
        for key, conv, required, default in items:
            item = value.get(key)
            if item is None:
                if key not in value:
                    if required and default is NO_DEFAULT:
                        raise _missing_or_null(key, value)
                    continue
                if not required:
                    continue
                # A null where the schema has none: the type's own rule says so.
            try:
                conv(item)
            except Bad as bad:
                bad.parts.append(key)
                raise
        return value

    return record
