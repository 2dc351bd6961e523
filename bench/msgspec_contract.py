"""msgspec Structs derived from the Avro schema (msgspec.defstruct), for the codec bench's
comparison only: one C pass from the webhook's bytes to a typed, validated value, then the Avro
datum the codec encodes. Not used by the bridge (see docs/BENCHMARKS.md, codec)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import msgspec

from streams.models.contract import SCHEMA_DIR, load_schema_file

#: Fields whose rule the schema cannot say (streams.models.customer_deleted._OVERRIDES).
JSON_TEXT = {"metadata", "system_metadata"}  # any JSON value, stored as its text
LEGACY_REFERRALS = "campaigns"  # in `referrals`: a record or a bare campaign id


def derive(schema: dict[str, Any]) -> type[msgspec.Struct]:
    """The Struct type of an Avro record schema (named types resolved as they appear)."""
    named: dict[str, Any] = {}

    def of(t: Any, field: str = "", parent: str = "") -> Any:
        if isinstance(t, list):
            real = [of(b, field, parent) for b in t if b != "null"]
            inner = real[0] if len(real) == 1 else Any
            return inner | None if "null" in t else inner
        if isinstance(t, str):
            if t in named:
                return named[t]
            return {"string": str, "long": int, "int": int, "boolean": bool,
                    "double": float, "float": float, "null": type(None)}[t]  # fmt: skip
        kind = t["type"]
        if t.get("logicalType", "").startswith("timestamp"):
            return dt.datetime
        if kind == "record":
            fields: list[tuple[Any, ...]] = []
            for f in t["fields"]:
                ftype = Any if f["name"] in JSON_TEXT else of(f["type"], f["name"], t["name"])
                if "default" in f:
                    fields.append((f["name"], ftype, f["default"]))
                else:
                    fields.append((f["name"], ftype))
            # Required fields first, as a class needs (the order is not part of the contract).
            fields.sort(key=lambda x: len(x) == 3)
            struct = msgspec.defstruct(t["name"], fields, kw_only=True)
            named[t["name"]] = named[t.get("namespace", "") + "." + t["name"]] = struct
            return struct
        if kind == "array":
            items = of(t["items"], field, parent)
            if field == LEGACY_REFERRALS:
                items = str | items
            return list[items]  # type: ignore[valid-type]
        if kind == "map":
            return dict[str, of(t["values"], field, parent)]  # type: ignore[misc]
        return of(kind, field, parent)

    out: type[msgspec.Struct] = of(schema)
    return out


CustomerDeletedStruct = derive(load_schema_file(SCHEMA_DIR / "CustomerDeleted.avsc"))
_DECODER = msgspec.json.Decoder(CustomerDeletedStruct)


_JSON_TEXT = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def to_datum(value: Any) -> Any:
    """A decoded Struct as the plain dict/list datum the Avro writer takes (JSON-text fields
    as their text, as parse_webhook makes them)."""
    if isinstance(value, msgspec.Struct):
        return {
            f: _JSON_TEXT.encode(v) if f in JSON_TEXT and v is not None else to_datum(v)
            for f in value.__struct_fields__
            for v in (getattr(value, f),)
        }
    if isinstance(value, list):
        return [to_datum(v) for v in value]
    if isinstance(value, dict):
        return {k: to_datum(v) for k, v in value.items()}
    return value


def decode(body: bytes) -> Any:
    """bytes -> validated Struct (raises msgspec.ValidationError, e.g. `Expected int, got
    str - at $.data.customer.loyalty.points`)."""
    return _DECODER.decode(body)
