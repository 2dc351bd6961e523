"""The `customer.deleted` webhook contract: JSON payload -> validated CustomerDeleted datum.

The datum keeps the webhook's nesting and key names (see schemas/CustomerDeleted.avsc). Parsing is
lenient where Voucherify is known to be inconsistent (legacy shapes, nulls, missing fields,
unknown fields) and strict about types, so a datum always encodes.

Validation is a hand-written walk built once from small converter closures: on the happy path
no path strings are built; a failure raises `_Bad`, and each enclosing level adds its path
segment while the exception unwinds.
"""

from __future__ import annotations

import json
import linecache
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from streams.models.errors import ValidationError

__all__ = ["EVENT_TYPE", "datum_to_json", "envelope_from_data", "parse_webhook"]

EVENT_TYPE = "customer.deleted"

_Conv = Callable[[Any], Any]
_LONG_MIN = -(1 << 63)
_LONG_MAX = (1 << 63) - 1
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# One encoder instance: json.dumps would rebuild it (and re-check its kwargs) on every call.
_JSON_TEXT = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))


class _Bad(Exception):
    """Internal: a broken rule; `parts` collects path segments innermost first."""

    __slots__ = ("parts", "rule")

    def __init__(self, rule: str) -> None:
        super().__init__(rule)
        self.rule = rule
        self.parts: list[str] = []


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "empty string" if value == "" else "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _join(parts: list[str]) -> str:
    out = ""
    for part in reversed(parts):
        if part.startswith("[") or not out:
            out += part
        else:
            out += "." + part
    return out


def _key_part(key: object) -> str:
    # Map keys (campaign names) are free text: bracket-quote them so the path stays parseable.
    if isinstance(key, str) and _IDENT.fullmatch(key):
        return f'["{key}"]'
    return "[" + json.dumps(key, ensure_ascii=False) + "]"


def _string(value: Any) -> str:
    if type(value) is str:
        if value.isascii():
            return value
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # JSON allows "\ud800"; UTF-8 (and so Avro) does not.
            raise _Bad("expected string, got a string with an unpaired surrogate") from None
        return value
    raise _Bad(f"expected string, got {_json_type(value)}")


def _nonempty_string(value: Any) -> str:
    if type(value) is str and value:
        return _string(value)
    raise _Bad(f"expected non-empty string, got {_json_type(value)}")


def _long(value: Any) -> int:
    if type(value) is int:
        if _LONG_MIN <= value <= _LONG_MAX:
            return value
        raise _Bad("expected 64-bit integer, got an out-of-range integer")
    # JSON has one number type; 2500.0 is the integer 2500 from some serialisers.
    if type(value) is float and value.is_integer():
        if _LONG_MIN <= value <= _LONG_MAX:
            return int(value)
        raise _Bad("expected 64-bit integer, got an out-of-range number")
    raise _Bad(f"expected integer, got {_json_type(value)}")


def _timestamp(value: Any) -> datetime:
    if type(value) is not str:
        raise _Bad(f"expected ISO-8601 timestamp, got {_json_type(value)}")
    try:
        dt = datetime.fromisoformat(value)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        elif dt.tzinfo is not UTC:
            dt = dt.astimezone(UTC)
    except (ValueError, OverflowError):
        raise _Bad("expected ISO-8601 timestamp, got an unparseable string") from None
    sub_ms = dt.microsecond % 1000
    # Avro timestamp-millis keeps milliseconds: truncate now so the datum equals its decode.
    return dt.replace(microsecond=dt.microsecond - sub_ms) if sub_ms else dt


def _json_text(value: Any) -> str:
    try:
        text = _JSON_TEXT.encode(value)
    except (TypeError, ValueError) as exc:
        raise _Bad(f"expected JSON value, got {_json_type(value)} ({exc})") from None
    return _string(text)


#: The shape of each converter built by `_record` / `_map_of`, read by the fast-path generator.
_RECORDS: dict[_Conv, tuple[tuple[tuple[str, _Conv], ...], tuple[str, ...]]] = {}
_MAPS: dict[_Conv, _Conv] = {}


def _record(fields: dict[str, _Conv], required: tuple[str, ...] = ()) -> _Conv:
    items = tuple(fields.items())

    def convert(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _Bad(f"expected object, got {_json_type(value)}")
        out: dict[str, Any] = {}
        for key, conv in items:
            item = value.get(key)
            if item is None:
                if key in required:
                    bad = _Bad(
                        "required field is missing" if key not in value else "must not be null"
                    )
                    bad.parts.append(key)
                    raise bad
                out[key] = None
                continue
            try:
                out[key] = conv(item)
            except _Bad as bad:
                bad.parts.append(key)
                raise
        return out

    _RECORDS[convert] = (items, required)
    return convert


def _map_of(conv: _Conv) -> _Conv:
    def convert(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            # PHP-style encoders write an empty object as [].
            if isinstance(value, list) and not value:
                return {}
            raise _Bad(f"expected object, got {_json_type(value)}")
        out: dict[str, Any] = {}
        for key, item in value.items():
            try:
                out[_string(key)] = conv(item)
            except _Bad as bad:
                bad.parts.append(_key_part(key))
                raise
        return out

    _MAPS[convert] = conv
    return convert


_s, _l, _ts = _string, _long, _timestamp

_loyalty_campaign = _record(
    {
        "points": _l,
        "loyalty_tier": _s,
        "referred_customers": _l,
        # Legacy shape from the vendor's own examples: kept beside `points`, never derived.
        "redeemed_points": _l,
        "points_to_go": _l,
    }
)

_REFERRAL_FIELDS = ("campaign_id", "referrer_id", "related_object_id", "related_object_type")
_referral_campaign_record = _record({**dict.fromkeys(_REFERRAL_FIELDS, _s), "date": _ts})


def _referral_campaigns(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise _Bad(f"expected array, got {_json_type(value)}")
    out: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        try:
            if type(item) is str:
                # Legacy shape: a bare campaign id.
                out.append(
                    {
                        "campaign_id": _string(item),
                        "referrer_id": None,
                        "related_object_id": None,
                        "related_object_type": None,
                        "date": None,
                    }
                )
            elif isinstance(item, dict):
                out.append(_referral_campaign_record(item))
            else:
                raise _Bad(f"expected object or string, got {_json_type(item)}")
        except _Bad as bad:
            bad.parts.append(f"[{index}]")
            raise
    return out


_customer = _record(
    {
        "id": _nonempty_string,
        "source_id": _s,
        "name": _s,
        "email": _s,
        "phone": _s,
        "description": _s,
        "birthdate": _s,
        "object": _s,
        "created_at": _ts,
        "updated_at": _ts,
        "assets": _record({"cockpit_url": _s}),
        "address": _record(
            dict.fromkeys(("city", "state", "line_1", "line_2", "country", "postal_code"), _s)
        ),
        "metadata": _json_text,
        "system_metadata": _json_text,
        "summary": _record(
            {
                "orders": _record(
                    {
                        "total_amount": _l,
                        "total_count": _l,
                        "average_amount": _l,
                        "last_order_amount": _l,
                        "last_order_date": _ts,
                    }
                ),
                "redemptions": _record(
                    {
                        "total_redeemed": _l,
                        "total_failed": _l,
                        "total_succeeded": _l,
                        "total_rolled_back": _l,
                        "total_rollback_failed": _l,
                        "total_rollback_succeeded": _l,
                        "gift": _record({"redeemed_amount": _l, "amount_to_go": _l}),
                        "loyalty_card": _record({"redeemed_points": _l, "points_to_go": _l}),
                    }
                ),
            }
        ),
        "loyalty": _record(
            {
                "points": _l,
                "referred_customers": _l,
                "campaigns": _map_of(_loyalty_campaign),
            }
        ),
        "referrals": _record({"total": _l, "campaigns": _referral_campaigns}),
    },
    required=("id",),
)


def _event_type(value: Any) -> str:
    if value != EVENT_TYPE:
        got = json.dumps(value, ensure_ascii=False)[:80] if type(value) is str else None
        raise _Bad(f'expected "{EVENT_TYPE}", got {got or _json_type(value)}')
    return EVENT_TYPE


_envelope = _record(
    {
        "id": _s,
        "project_id": _s,
        "created_at": _ts,
        "type": _event_type,
        "data": _record({"customer": _customer}, required=("customer",)),
        "source": _record({"id": _s, "object": _s, "target_url": _s}),
        "event": _record(
            {
                "id": _s,
                "type": _s,
                "created_at": _ts,
                "entity_id": _s,
                "group_id": _s,
                "event_source": _record(
                    {
                        "channel": _s,
                        "user": _record({"id": _s}),
                        "api_key": _record({"name": _s, "app_id": _s}),
                    }
                ),
            }
        ),
    },
    required=("data",),
)


# --- the fast path -------------------------------------------------------------------------
# The converters above define the contract and word its errors. From their shapes (_RECORDS,
# _MAPS) one straight-line function is generated for the usual well-formed payload: nested
# records inline, ASCII strings and in-range integers taken as they are, each record built as
# one dict display. A value it does not take as is goes through the very converter above; any
# exception sends parse_webhook back to the converters from the start, so a bad payload gets
# exactly their error (and the fast path can only ever be stricter, never more lenient).


class _FastGen:
    def __init__(self) -> None:
        self.namespace: dict[str, Any] = {
            "_UTC": UTC,
            "_fromisoformat": datetime.fromisoformat,
            "_EVENT_TYPE": EVENT_TYPE,
        }
        self.lines: list[str] = []
        self._names: dict[int, str] = {}
        self._n = 0

    def var(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n}"

    def name_of(self, conv: _Conv) -> str:
        name = self._names.get(id(conv))
        if name is None:
            name = self._names[id(conv)] = self.var("_conv")
            self.namespace[name] = conv
        return name

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def record(self, conv: _Conv, src: str, d: int) -> str:
        """Code reading the fields of the dict in `src`; returns the output dict display."""
        items, required = _RECORDS[conv]
        get = self.var("get")
        self.emit(d, f"{get} = {src}.get")
        out = []
        for key, field in items:
            x = self.var("x")
            self.emit(d, f"{x} = {get}({key!r})")
            if key in required:
                self.emit(d, f"if {x} is None:")
                self.emit(d + 1, "raise _Decline")
                self.value(field, x, d)
            else:
                self.emit(d, f"if {x} is not None:")
                self.value(field, x, d + 1)
            out.append(f"{key!r}: {x}")
        return "{" + ", ".join(out) + "}"

    def value(self, conv: _Conv, x: str, d: int) -> None:
        """Code replacing the JSON value in `x` by its converted value."""
        slow = f"{x} = {self.name_of(conv)}({x})"
        if conv is _string:
            self.emit(d, f"if type({x}) is not str or not {x}.isascii():")
            self.emit(d + 1, slow)
        elif conv is _nonempty_string:
            self.emit(d, f"if type({x}) is not str or not {x} or not {x}.isascii():")
            self.emit(d + 1, slow)
        elif conv is _long:
            self.emit(d, f"if type({x}) is not int or not {_LONG_MIN} <= {x} <= {_LONG_MAX}:")
            self.emit(d + 1, slow)
        elif conv is _timestamp:
            # The usual "...Z" / "+00:00" with whole milliseconds: nothing to normalise.
            dt = self.var("dt")
            self.emit(d, f"{dt} = _fromisoformat({x}) if type({x}) is str else None")
            self.emit(
                d, f"if {dt} is not None and {dt}.tzinfo is _UTC and not {dt}.microsecond % 1000:"
            )
            self.emit(d + 1, f"{x} = {dt}")
            self.emit(d, "else:")
            self.emit(d + 1, slow)
        elif conv is _json_text:
            self.emit(d, f'{x} = "{{}}" if type({x}) is dict and not {x} else {slow[len(x) + 3 :]}')
        elif conv is _event_type:
            self.emit(d, f"if type({x}) is str and {x} == _EVENT_TYPE:")
            self.emit(d + 1, f"{x} = _EVENT_TYPE")
            self.emit(d, "else:")
            self.emit(d + 1, slow)
        elif conv is _referral_campaigns:
            self.emit(d, f"{x} = [] if type({x}) is list and not {x} else {slow[len(x) + 3 :]}")
        elif conv in _RECORDS:
            self.emit(d, f"if type({x}) is dict:")
            self.emit(d + 1, f"{x} = {self.record(conv, x, d + 1)}")
            self.emit(d, "else:")
            self.emit(d + 1, slow)
        elif conv in _MAPS:
            out, key, item = self.var("m"), self.var("k"), self.var("i")
            self.emit(d, f"if type({x}) is dict:")
            self.emit(d + 1, f"{out} = {{}}")
            self.emit(d + 1, f"for {key}, {item} in {x}.items():")
            self.emit(d + 2, f"if type({key}) is not str or not {key}.isascii():")
            self.emit(d + 3, f"{key} = {self.name_of(_string)}({key})")
            self.value(_MAPS[conv], item, d + 2)
            self.emit(d + 2, f"{out}[{key}] = {item}")
            self.emit(d + 1, f"{x} = {out}")
            self.emit(d, "else:")
            self.emit(d + 1, slow)
        else:
            self.emit(d, slow)


class _Decline(Exception):
    """Internal: the fast path does not take this payload (the converters will say why)."""


def _generate_fast(conv: _Conv) -> tuple[str, Callable[[Any], dict[str, Any]]]:
    gen = _FastGen()
    gen.namespace["_Decline"] = _Decline
    gen.emit(0, "def parse(p):")
    gen.emit(1, "if type(p) is not dict:")
    gen.emit(2, "raise _Decline")
    gen.emit(1, f"return {gen.record(conv, 'p', 1)}")
    source = "\n".join(gen.lines) + "\n"
    filename = "<customer.deleted fast path>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), gen.namespace)
    return source, gen.namespace["parse"]


_FAST_SOURCE, _fast_envelope = _generate_fast(_envelope)


def parse_webhook(payload: object) -> dict[str, Any]:
    """Validate a parsed v2024 `customer.deleted` webhook and return its CustomerDeleted datum.

    Raises ValidationError naming the JSON path and the rule broken.
    """
    try:
        return _fast_envelope(payload)
    except Exception:
        pass
    return _parse_slowly(payload)


def _parse_slowly(payload: object) -> dict[str, Any]:
    """parse_webhook by the converters alone (the reference for the fast path)."""
    try:
        datum: dict[str, Any] = _envelope(payload)
    except _Bad as bad:
        raise ValidationError(_join(bad.parts), bad.rule) from None
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
