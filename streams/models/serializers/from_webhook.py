"""A customer.deleted webhook's JSON straight to Avro bytes, in one generated function.

The record used to take three walks of the ~75 fields: the contract's fast path (JSON -> datum
dicts, streams.models.customer_deleted), the personal-data policy (in place) and the generated
writer (datum -> bytes, writer.py). Here the same two generators emit one function: each field
is read from the JSON and checked or converted by the fast path's code, has the policy applied,
and is written by the writer's code, with no datum built in between (nested records inline).

It declines (raises `Decline`, `Bad` or `Mismatch`, the caller's buffer half written) whatever
the fast path would not take as is; the caller then takes the three walks, which word any
error. Tests hold its records to theirs, byte for byte, under every policy.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from streams.models.contract import NO_DEFAULT, Bad, Field, Node, named_types, string
from streams.models.customer_deleted import CONTRACT, EVENT_TYPE, Decline, FastParseGen
from streams.models.pii import ADDRESS_FIELDS, CUSTOMER_FIELDS, PiiPolicy
from streams.models.serializers.codegen import Unsupported
from streams.models.serializers.writer import Mismatch, WriterGen, varint

__all__ = ["DECLINED", "WebhookEncoder", "compile_encoder", "source_of"]

#: What the encoder raises when it does not take a payload (the slow path then decides).
DECLINED = (Decline, Bad, Mismatch)

#: encode(payload, buf) -> (customer id, sendout id, event id); raises one of DECLINED.
WebhookEncoder = Callable[[Any, bytearray], tuple[str, str | None, str | None]]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PERSONAL = frozenset(
    [f"data.customer.{n}" for n in CUSTOMER_FIELDS]
    + [f"data.customer.address.{n}" for n in ADDRESS_FIELDS]
)
#: The values the record's key and headers are made of, by field path.
_CAPTURED = {"data.customer.id": "cid", "id": "sid", "event.id": "eid"}


def compile_encoder(schema: dict[str, Any], pii: PiiPolicy) -> WebhookEncoder:
    """The encoder writing `schema` (the codec's parsed CustomerDeleted) under `pii`; raises
    Unsupported when the schema and the contract do not line up field by field."""
    try:
        gen = _Fused(schema, pii)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:  # a shape it cannot walk
        raise Unsupported(f"the schema does not line up with the contract ({exc!r})") from None
    encode: WebhookEncoder = gen.build("encode", "customer.deleted JSON -> Avro")
    return encode


def source_of(schema: dict[str, Any], pii: PiiPolicy) -> str:
    """The generated source (for tests and curious readers)."""
    return _Fused(schema, pii).text


def _usual_millis(text: str) -> int | None:
    """The milliseconds of the usual timestamp ("...Z" or "+00:00", whole milliseconds: what
    the contract keeps as it is); None for any other string."""
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is not UTC or dt.microsecond % 1000:
        return None
    t = dt - _EPOCH
    return (t.days * 86400 + t.seconds) * 1000 + t.microseconds // 1000


def _split(avro_type: Any) -> tuple[Any, bool]:
    """(the branch, nullable) of a field's type: ["null", X] -> (X, True), X -> (X, False)."""
    if isinstance(avro_type, list):
        if len(avro_type) == 2 and avro_type[0] == "null":
            return avro_type[1], True
        raise Unsupported(f"union {avro_type}")
    return avro_type, False


class _Fused(FastParseGen):
    """The fast path's generator, writing with a writer generator that shares its lines."""

    def __init__(self, schema: dict[str, Any], pii: PiiPolicy) -> None:
        super().__init__()
        self.writer = WriterGen(named_types(schema))
        self.namespace.update(self.writer.namespace)
        self.writer.namespace = self.namespace
        self.writer.lines = self.lines
        self.writer._n = self._n  # one counter: fresh names stay fresh across both
        self.pii = pii
        self.namespace["_usual_millis"] = _usual_millis
        if pii.policy == "hash":
            self.namespace["_hash"] = pii.hash_value
        self.emit(0, "def encode(p, buf):")
        self.emit(1, "if type(p) is not dict:")
        self.emit(2, "raise Decline")
        self.emit(1, "eid = None")
        self.fields(CONTRACT, schema, "p", 1, "")
        self.emit(1, "return cid, sid, eid")
        if self.writer.pending:  # a record inside itself: the writer would call a function
            raise Unsupported("recursive records")

    def fields(self, node: Node, schema: dict[str, Any], src: str, d: int, path: str) -> None:
        """Code reading, converting and writing each field of the JSON object in `src`."""
        if node.kind != "record" or not isinstance(schema, dict) or schema["type"] != "record":
            raise Unsupported(f"{path or 'the top'}: not a record on both sides")
        avro_fields = schema["fields"]
        if [f.name for f in node.fields] != [f["name"] for f in avro_fields]:
            raise Unsupported(f"{path or 'the top'}: fields differ from the contract's")
        get = self.var("get")
        self.emit(d, f"{get} = {src}.get")
        for field, avro_field in zip(node.fields, avro_fields, strict=True):
            where = f"{path}.{field.name}" if path else field.name
            x = self.var("x")
            self.emit(d, f"{x} = {get}({field.name!r})")
            # A missing or null value the contract does not write as null: the slow path says
            # what it becomes or what is wrong.
            declines_null = field.required or field.default not in (None, NO_DEFAULT)
            branch, nullable = _split(avro_field["type"])
            if not nullable and not declines_null:
                raise Unsupported(f"{where}: optional in the contract, not in the schema")
            if field.node.kind == "record":
                self.emit(d, f"if type({x}) is dict:")
                if nullable:
                    self.emit(d + 1, 'buf += b"\\x02"')
                self.fields(field.node, self.writer.resolve(branch), x, d + 1, where)
                self.emit(d, f"elif {x} is None:")
                self.emit(d + 1, "raise Decline" if declines_null else 'buf += b"\\x00"')
                self.emit(d, "else:")
                self.emit(d + 1, "raise Decline")
                continue
            if field.node.kind in ("map", "array") and self.items_record(field.node, branch):
                self.collection(field, avro_field["type"], declines_null, x, d, where)
                continue
            usual = self.usual(field.node.kind, branch, nullable, x, where)
            if usual is not None:
                test, write = usual
                self.emit(d, f"if {test}:")
                for line in write:
                    self.emit(d + 1, line)
                self.emit(d, f"elif {x} is None:")
                self.emit(d + 1, "raise Decline" if declines_null else 'buf += b"\\x00"')
                self.emit(d, "else:")
                self.convert_and_write(field.node, avro_field["type"], x, d + 1, where)
            elif declines_null:
                self.emit(d, f"if {x} is None:")
                self.emit(d + 1, "raise Decline")
                self.convert_and_write(field.node, avro_field["type"], x, d, where)
            else:
                self.emit(d, f"if {x} is not None:")
                self.value(field.node, x, d + 1)
                self.convert_and_write(field.node, avro_field["type"], x, d, where, converted=True)
            if where in _CAPTURED:
                self.emit(d, f"{_CAPTURED[where]} = {x}")

    def items_record(self, node: Node, branch: Any) -> bool:
        """Whether `node` is a map or array of records, written inline."""
        items = node.items
        schema = self.writer.resolve(branch)
        if items is None or items.kind != "record" or not isinstance(schema, dict):
            return False
        inner = schema.get("values" if node.kind == "map" else "items")
        return isinstance(self.writer.resolve(inner), dict)

    def collection(
        self, field: Field, avro_type: Any, declines_null: bool, x: str, d: int, where: str
    ) -> None:
        """A map or array of records: each item's fields read and written inline. Anything
        but an object for an item (legacy referral ids too) declines; an odd container (PHP's
        [] for an empty object) takes the general case."""
        branch, nullable = _split(avro_type)
        node, schema = field.node, self.writer.resolve(branch)
        is_map = node.kind == "map"
        assert node.items is not None
        item_schema = self.writer.resolve(schema["values" if is_map else "items"])
        self.emit(d, f"if type({x}) is {'dict' if is_map else 'list'}:")
        if nullable:
            self.emit(d + 1, 'buf += b"\\x02"')
        self.emit(d + 1, f"if {x}:")
        self.writer.length(f"len({x})", d + 2)
        key, item = self.var("k"), self.var("i")
        if is_map:
            self.emit(d + 2, f"for {key}, {item} in {x}.items():")
            self.emit(d + 3, f"if type({key}) is not str or not {key}.isascii():")
            self.emit(d + 4, f"{key} = {self.name_of(string)}({key})")
            self.writer.string(key, d + 3, "_SMALL")
        else:
            self.emit(d + 2, f"for {item} in {x}:")
        self.emit(d + 3, f"if type({item}) is not dict:")
        self.emit(d + 4, "raise Decline")
        self.fields(node.items, item_schema, item, d + 3, f"{where}[]")
        self.emit(d + 1, 'buf += b"\\x00"')
        self.emit(d, f"elif {x} is None:")
        self.emit(d + 1, "raise Decline" if declines_null else 'buf += b"\\x00"')
        self.emit(d, "else:")
        self.convert_and_write(node, avro_type, x, d + 1, where)

    def convert_and_write(
        self, node: Node, avro_type: Any, x: str, d: int, where: str, converted: bool = False
    ) -> None:
        """The general case: the fast path's conversion, the policy, the writer's code."""
        if not converted:
            self.value(node, x, d)
        if self.is_personal(where):
            self.personal(x, d)
        self.writer.value(avro_type, x, d)

    def usual(
        self, kind: str, branch: Any, nullable: bool, x: str, where: str
    ) -> tuple[str, list[str]] | None:
        """(the test of the usual value, the lines writing it) for the common leaves; the
        usual value is the converted one, so the rest of the code takes the general case."""
        plain = self.writer.resolve(branch)
        if isinstance(plain, dict) and "logicalType" not in plain:
            plain = plain["type"]
        prefix = 'buf += b"\\x02"' if nullable else ""
        small = "_OPT_SMALL" if nullable else "_SMALL"
        if self.is_personal(where):
            if self.pii.policy != "redact" or not nullable or kind != "string":
                return None
            # Checked as the fast path checks it, written as the policy says: null.
            return f"type({x}) is str and {x}.isascii()", ['buf += b"\\x00"']
        if kind in ("string", "nonempty_string") and plain == "string":
            n = self.var("n")
            test = f"type({x}) is str and {x}.isascii()"
            if kind == "nonempty_string":
                test = f"type({x}) is str and {x} and {x}.isascii()"
            return test, [
                f"{n} = len({x})",
                f"if {n} < 64: buf += {small}[{n}]",
                f"else: {prefix or 'pass'}; _write_long(buf, {n})",
                f"buf += {x}.encode()",
            ]
        if kind == "long" and plain == "long":
            return f"type({x}) is int and 0 <= {x} < 64", [f"buf += {small}[{x}]"]
        if kind == "event_type" and plain == "string":
            data = EVENT_TYPE.encode()
            piece = (b"\x02" if nullable else b"") + varint(len(data)) + data
            return f"{x} == _EVENT_TYPE", [f"buf += {self.const(piece)}", f"{x} = _EVENT_TYPE"]
        if (
            kind == "timestamp"
            and isinstance(plain, dict)
            and plain.get("logicalType") == "timestamp-millis"
        ):
            ms = self.var("ms")
            test = f"type({x}) is str and ({ms} := _usual_millis({x})) is not None"
            return test, [prefix or "pass", f"_write_long(buf, {ms})"]
        return None

    def is_personal(self, where: str) -> bool:
        return where in _PERSONAL and self.pii.policy != "keep"

    def personal(self, x: str, d: int) -> None:
        """The personal-data policy (streams.models.pii) on a converted value."""
        if self.pii.policy == "redact":
            self.emit(d, f"{x} = None")
        elif self.pii.policy == "hash":
            self.emit(d, f"if {x} is not None:")
            self.emit(d + 1, f"{x} = _hash({x})")
