"""The `customer.deleted` webhook contract: JSON payload -> validated CustomerDeleted datum.

The datum keeps the webhook's nesting and key names. Its rules are schemas/CustomerDeleted.avsc
read by streams.models.contract, plus the few the schema cannot say (`_OVERRIDES`). Parsing is
lenient where Voucherify is known to be inconsistent (legacy shapes, nulls, missing fields,
unknown fields) and strict about types, so a datum always encodes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from streams.models.contract import (
    LONG_MAX,
    LONG_MIN,
    NO_DEFAULT,
    SCHEMA_DIR,
    Bad,
    Node,
    build,
    error,
    load_schema_file,
    parsed_schema,
    string,
    type_name,
)
from streams.models.serializers.codegen import Source

__all__ = ["EVENT_TYPE", "datum_to_json", "envelope_from_data", "parse_webhook"]

EVENT_TYPE = "customer.deleted"

# One encoder instance: json.dumps would rebuild it (and re-check its kwargs) on every call.
_JSON_TEXT = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))


# -- what the schema cannot say ------------------------------------------------------------------


def _nonempty_string(value: Any) -> str:
    if type(value) is str and value:
        return string(value)
    raise Bad(f"expected non-empty string, got {type_name(value)}")


def _json_text(value: Any) -> str:
    try:
        text = _JSON_TEXT.encode(value)
    except (TypeError, ValueError) as exc:
        raise Bad(f"expected JSON value, got {type_name(value)} ({exc})") from None
    return string(text)


def _event_type(value: Any) -> str:
    if value != EVENT_TYPE:
        got = json.dumps(value, ensure_ascii=False)[:80] if type(value) is str else None
        raise Bad(f'expected "{EVENT_TYPE}", got {got or type_name(value)}')
    return EVENT_TYPE


def _leaf(kind: str, convert: Callable[[Any], Any]) -> Callable[[Node], Node]:
    """An override for a string field of the schema."""

    def override(node: Node) -> Node:
        if node.kind != "string":
            raise TypeError(f"the {kind} rule is for a string field, not {node.kind}")
        return Node(kind, convert)

    return override


def _legacy_referrals(node: Node) -> Node:
    """An array of ReferralCampaign records that also takes a bare campaign id (legacy shape)."""
    if node.kind != "array" or node.items is None or node.items.kind != "record":
        raise TypeError(f"referrals.campaigns is an array of records, not {node.kind}")
    record = node.items.convert
    blank = dict.fromkeys(f.name for f in node.items.fields)

    def referral_campaigns(value: Any) -> list[dict[str, Any]]:
        if not isinstance(value, list):
            raise Bad(f"expected array, got {type_name(value)}")
        out: list[dict[str, Any]] = []
        for index, item in enumerate(value):
            try:
                if type(item) is str:
                    out.append({**blank, "campaign_id": string(item)})
                elif isinstance(item, dict):
                    out.append(record(item))
                else:
                    raise Bad(f"expected object or string, got {type_name(item)}")
            except Bad as bad:
                bad.parts.append(f"[{index}]")
                raise
        return out

    return Node("array", referral_campaigns, items=node.items)


_OVERRIDES = {
    "type": _leaf("event_type", _event_type),
    "data.customer.id": _leaf("nonempty_string", _nonempty_string),
    "data.customer.metadata": _leaf("json_text", _json_text),
    "data.customer.system_metadata": _leaf("json_text", _json_text),
    "data.customer.referrals.campaigns": _legacy_referrals,
}
CONTRACT = build(
    parsed_schema(load_schema_file(SCHEMA_DIR / "CustomerDeleted.avsc")),
    webhook=True,
    overrides=_OVERRIDES,
)


# --- the fast path -------------------------------------------------------------------------
# From the same nodes one straight-line function is generated for the usual well-formed
# payload: nested records inline, ASCII strings and in-range integers taken as they are, each
# record built as one dict display. A value it does not take as is goes through the node's own
# converter; a Bad or Decline sends parse_webhook back to the converters from the start, so a
# bad payload gets exactly their error (and the fast path can only ever be stricter).


class Decline(Exception):
    """Internal: the fast path does not take this payload (the converters will say why)."""


class FastParseGen(Source):
    def __init__(self) -> None:
        super().__init__(
            {
                "_UTC": UTC,
                "_fromisoformat": datetime.fromisoformat,
                "_EVENT_TYPE": EVENT_TYPE,
                "Decline": Decline,
            }
        )
        self._names: dict[int, str] = {}

    def name_of(self, conv: Callable[[Any], Any]) -> str:
        name = self._names.get(id(conv))
        if name is None:
            name = self._names[id(conv)] = self.const(conv, "_conv")
        return name

    def record(self, node: Node, src: str, d: int) -> str:
        """Code reading the fields of the dict in `src`; returns the output dict display."""
        get = self.var("get")
        self.emit(d, f"{get} = {src}.get")
        out = []
        for field in node.fields:
            x = self.var("x")
            self.emit(d, f"{x} = {get}({field.name!r})")
            if field.required or field.default not in (None, NO_DEFAULT):
                # A missing or null value: the converters say what it becomes or what is wrong.
                self.emit(d, f"if {x} is None:")
                self.emit(d + 1, "raise Decline")
                self.value(field.node, x, d)
            else:
                self.emit(d, f"if {x} is not None:")
                self.value(field.node, x, d + 1)
            out.append(f"{field.name!r}: {x}")
        return "{" + ", ".join(out) + "}"

    def value(self, node: Node, x: str, d: int) -> None:
        """Code replacing the JSON value in `x` by its converted value."""
        slow = f"{self.name_of(node.convert)}({x})"
        kind = node.kind
        if kind == "string":
            self.emit(d, f"if type({x}) is not str or not {x}.isascii():")
            self.emit(d + 1, f"{x} = {slow}")
        elif kind == "nonempty_string":
            self.emit(d, f"if type({x}) is not str or not {x} or not {x}.isascii():")
            self.emit(d + 1, f"{x} = {slow}")
        elif kind == "long":
            self.emit(d, f"if type({x}) is not int or not {LONG_MIN} <= {x} <= {LONG_MAX}:")
            self.emit(d + 1, f"{x} = {slow}")
        elif kind == "timestamp":
            # The usual "...Z" / "+00:00" with whole milliseconds: nothing to normalise.
            dt = self.var("dt")
            self.emit(d, f"if type({x}) is str:")
            self.emit(d + 1, "try:")
            self.emit(d + 2, f"{dt} = _fromisoformat({x})")
            self.emit(d + 1, "except ValueError:")
            self.emit(d + 2, "raise Decline from None")
            self.emit(
                d + 1,
                f"{x} = {dt} if {dt}.tzinfo is _UTC and not {dt}.microsecond % 1000 else {slow}",
            )
            self.emit(d, "else:")
            self.emit(d + 1, f"{x} = {slow}")
        elif kind == "json_text":
            self.emit(d, f'{x} = "{{}}" if type({x}) is dict and not {x} else {slow}')
        elif kind == "event_type":
            usual = f"type({x}) is str and {x} == _EVENT_TYPE"
            self.either(d, usual, f"{x} = _EVENT_TYPE", f"{x} = {slow}")
        elif kind == "array":
            self.emit(d, f"{x} = [] if type({x}) is list and not {x} else {slow}")
        elif kind == "record":
            self.emit(d, f"if type({x}) is dict:")
            self.emit(d + 1, f"{x} = {self.record(node, x, d + 1)}")
            self.emit(d, "else:")
            self.emit(d + 1, f"{x} = {slow}")
        elif kind == "map" and node.items is not None:
            out, key, item = self.var("m"), self.var("k"), self.var("i")
            self.emit(d, f"if type({x}) is dict:")
            self.emit(d + 1, f"{out} = {{}}")
            self.emit(d + 1, f"for {key}, {item} in {x}.items():")
            self.emit(d + 2, f"if type({key}) is not str or not {key}.isascii():")
            self.emit(d + 3, f"{key} = {self.name_of(string)}({key})")
            self.value(node.items, item, d + 2)
            self.emit(d + 2, f"{out}[{key}] = {item}")
            self.emit(d + 1, f"{x} = {out}")
            self.emit(d, "else:")
            self.emit(d + 1, f"{x} = {slow}")
        else:
            self.emit(d, f"{x} = {slow}")


def _generate_fast(node: Node) -> tuple[str, Callable[[Any], dict[str, Any]]]:
    gen = FastParseGen()
    gen.emit(0, "def parse(p):")
    gen.emit(1, "if type(p) is not dict:")
    gen.emit(2, "raise Decline")
    gen.emit(1, f"return {gen.record(node, 'p', 1)}")
    return gen.text, gen.build("parse", "customer.deleted fast path")


_FAST_SOURCE, _fast_envelope = _generate_fast(CONTRACT)


def parse_webhook(payload: object) -> dict[str, Any]:
    """Validate a parsed v2024 `customer.deleted` webhook and return its CustomerDeleted datum.

    Raises ValidationError naming the JSON path and the rule broken.
    """
    try:
        return _fast_envelope(payload)
    except (Decline, Bad):
        pass  # not the usual payload: the converters decide, and word any error
    return _parse_slowly(payload)


def _parse_slowly(payload: object) -> dict[str, Any]:
    """parse_webhook by the converters alone (the reference for the fast path)."""
    try:
        datum: dict[str, Any] = CONTRACT.convert(payload)
    except Bad as bad:
        raise error(bad) from None
    return datum


def envelope_from_data(data: object) -> dict[str, Any]:
    """Wrap a bare `{"customer": {...}}` data object (replay) and parse it as a webhook."""
    return parse_webhook({"type": EVENT_TYPE, "data": data})


def _to_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    if isinstance(value, datetime):
        return format_timestamp(value)
    return value


def format_timestamp(value: datetime) -> str:
    """ISO-8601 in UTC with milliseconds and `Z`, as Voucherify writes timestamps."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    text = value.astimezone(UTC).isoformat(timespec="milliseconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def datum_to_json(datum: dict[str, Any]) -> dict[str, Any]:
    """A CustomerDeleted datum as webhook-shaped JSON: ISO timestamps, metadata as objects."""
    out: dict[str, Any] = _to_json(datum)
    customer = (out.get("data") or {}).get("customer")
    if isinstance(customer, dict):
        for key in ("metadata", "system_metadata"):
            text = customer.get(key)
            if isinstance(text, str):
                customer[key] = json.loads(text)
    return out
