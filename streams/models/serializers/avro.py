"""The one Avro codec: datum <-> framed bytes, for the bridge, agents, replay, tests and benchmarks.

Framing on encode:
- default: Avro single-object encoding (`C3 01`, 8-byte little-endian CRC-64-AVRO fingerprint of
  the writer schema's Parsing Canonical Form, body);
- with a Schema Registry URL: the Confluent wire format (`00`, 4-byte big-endian schema id, body),
  the schema registered under the subject `<topic>-value`.

`decode` accepts both framings on one topic. A single-object message names its writer schema by
fingerprint among every schema in `streams/models/schemas/` (current and `history/`); a Confluent
one by registry id. Either way the datum is resolved to the current (reader) schema of the same
name.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources.abc import Traversable
from typing import Any

import fastavro
from fastavro.schema import fingerprint as canonical_fingerprint
from fastavro.schema import to_parsing_canonical_form

from streams.models.contract import (
    SCHEMA_DIR,
    Bad,
    build,
    error,
    load_schema_file,
    parsed_schema,
    schema_files,
)
from streams.models.errors import DecodeError, ValidationError
from streams.models.serializers.codegen import Unsupported
from streams.models.serializers.projection import Keep, Reader, compile_reader
from streams.models.serializers.registry import (
    RegistryAuthError,
    SchemaRegistry,
    new_client,
    registry_key,
    subject_for,
)
from streams.models.serializers.writer import Writer, compile_writer
from streams.settings import Settings

__all__ = [
    "CONFLUENT_MAGIC",
    "SCHEMA_DIR",
    "SINGLE_OBJECT_MAGIC",
    "AvroCodec",
    "get_codec",
    "load_schema_file",
    "schema_files",
]

NAMESPACE = "io.voucherify.streams"
SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"

_SOE_HEADER_LEN = 10
_CONFLUENT_HEADER_LEN = 5


@dataclass(frozen=True, slots=True)
class _Schema:
    """One schema version: parsed once, with its fingerprint and registry text."""

    name: str  # short name, e.g. "CustomerDeleted"
    fullname: str
    parsed: dict[str, Any]
    text: str  # compact JSON with logical types and defaults: what a registry stores
    fingerprint: bytes  # 8 bytes, little-endian
    source: str  # file or registry id, for messages


def _short(fullname: str) -> str:
    return fullname.rsplit(".", 1)[-1]


def _make_schema(raw: dict[str, Any], source: str) -> _Schema:
    if raw.get("type") != "record" or not isinstance(raw.get("name"), str):
        raise ValueError(f"{source}: top-level schema must be a named record")
    name = raw["name"]
    namespace = raw.get("namespace")
    fullname = name if "." in name or not namespace else f"{namespace}.{name}"
    pcf = to_parsing_canonical_form(raw)
    return _Schema(
        name=_short(fullname),
        fullname=fullname,
        parsed=parsed_schema(raw),
        text=json.dumps(raw, separators=(",", ":"), ensure_ascii=False),
        # fastavro gives the CRC-64-AVRO as the hex of its little-endian bytes, as framed.
        fingerprint=bytes.fromhex(canonical_fingerprint(pcf, "CRC-64-AVRO")),
        source=source,
    )


def _writer_for(parsed: dict[str, Any]) -> Writer:
    """The generated writer of `parsed`, or fastavro's where the generator declines."""
    try:
        return compile_writer(parsed)
    except Unsupported:

        def write(buf: bytearray, datum: Any) -> None:
            out = io.BytesIO()
            fastavro.schemaless_writer(out, parsed, datum)
            buf += out.getvalue()

        return write


@dataclass(frozen=True, slots=True)
class _Route:
    """How to read one writer version: its schema and the reader it resolves to."""

    name: str
    writer: dict[str, Any]
    reader: dict[str, Any] | None  # None: the writer is the current schema, no resolution
    readable: bool = True  # False: no current schema of this name (it was removed)


class AvroCodec:
    """Encode/decode the project's Avro records; see the module docstring for the framings."""

    def __init__(
        self,
        schema_registry_url: str = "",
        *,
        schema_dir: Traversable | None = None,
        registry_client: Any = None,
        registry_config: Mapping[str, Any] | None = None,
        settings: Settings | None = None,
    ) -> None:
        """`registry_client` (a confluent-kafka SchemaRegistryClient, or its mock) overrides
        building one; `settings` builds it as every component does (its SCHEMA_REGISTRY_URL,
        credentials and CA: streams.models.serializers.registry.client_config), else one is
        built from the URL alone."""
        self.schema_dir = SCHEMA_DIR if schema_dir is None else schema_dir
        if settings is not None and not schema_registry_url:
            schema_registry_url = settings.schema_registry_url
        self.schema_registry_url = schema_registry_url
        self._settings = settings
        self._registry_config = dict(registry_config or {})
        self._registry = registry_client
        self._sr: SchemaRegistry | None = None
        self._renew = False  # the credentials were refused: build the client again, files re-read
        self._lock = threading.Lock()
        self.current: dict[str, _Schema] = {}
        self.history: list[_Schema] = []
        for path in schema_files(self.schema_dir):
            schema = _make_schema(load_schema_file(path), str(path))
            if schema.name in self.current:
                raise ValueError(f"{path}: schema {schema.name} is defined twice")
            self.current[schema.name] = schema
        if not self.current:
            raise ValueError(f"no .avsc files in {self.schema_dir}")
        for path in schema_files(self.schema_dir / "history"):
            self.history.append(_make_schema(load_schema_file(path), str(path)))
        self._by_fullname = {s.fullname: s for s in self.current.values()}
        self._soe_writers = {
            name: (SINGLE_OBJECT_MAGIC + s.fingerprint, _writer_for(s.parsed))
            for name, s in self.current.items()
        }
        self._routes: dict[bytes, _Route] = {}
        for schema in (*self.history, *self.current.values()):
            self._routes.setdefault(schema.fingerprint, self._route(schema))
        # Current schemas win over an identical history copy (no needless resolution).
        for schema in self.current.values():
            self._routes[schema.fingerprint] = self._route(schema)
        self._use_registry = bool(schema_registry_url) or registry_client is not None
        self._sr_headers: dict[tuple[str, str | None], bytes] = {}
        self._sr_routes: dict[int, _Route] = {}

    # -- schemas -----------------------------------------------------------------------------

    def _route(self, writer: _Schema) -> _Route:
        reader = self._by_fullname.get(writer.fullname)
        if reader is None:
            return _Route(writer.name, writer.parsed, None, readable=False)
        if reader.fingerprint == writer.fingerprint:
            return _Route(reader.name, reader.parsed, None)
        return _Route(reader.name, writer.parsed, reader.parsed)

    def schema(self, schema_name: str) -> dict[str, Any]:
        """The parsed current schema of `schema_name`."""
        return self._current(schema_name).parsed

    def schema_text(self, schema_name: str) -> str:
        """The current schema as compact JSON (what is registered with a Schema Registry)."""
        return self._current(schema_name).text

    def fingerprint(self, schema_name: str) -> bytes:
        """The 8-byte CRC-64-AVRO fingerprint (little-endian) of the current schema."""
        return self._current(schema_name).fingerprint

    @property
    def schema_names(self) -> tuple[str, ...]:
        return tuple(self.current)

    def _current(self, schema_name: str) -> _Schema:
        schema = self.current.get(schema_name)
        if schema is None:
            raise self._unknown(schema_name)
        return schema

    def _unknown(self, schema_name: str) -> ValueError:
        known = ", ".join(sorted(self.current))
        return ValueError(f"unknown schema {schema_name!r} (known: {known})")

    # -- encode ------------------------------------------------------------------------------

    def encode(self, schema_name: str, datum: dict[str, Any], *, topic: str | None = None) -> bytes:
        """Frame and encode `datum` with the current schema `schema_name`.

        Raises ValidationError (path and rule) if the datum does not fit the schema.
        """
        writer = self._soe_writers.get(schema_name)
        if writer is None:
            raise self._unknown(schema_name)
        header, write = writer
        if self._use_registry:
            header = self.header(schema_name, topic=topic)
        buf = bytearray(header)
        try:
            write(buf, datum)
        except Exception as exc:
            raise _explain(self.current[schema_name].parsed, datum, exc) from None
        return bytes(buf)

    def header(self, schema_name: str, *, topic: str | None = None) -> bytes:
        """The framing `encode` puts before a body of the current `schema_name` (registering
        the schema on first use with a Schema Registry)."""
        if self._use_registry:
            return self._sr_headers.get((schema_name, topic)) or self._sr_header(schema_name, topic)
        writer = self._soe_writers.get(schema_name)
        if writer is None:
            raise self._unknown(schema_name)
        return writer[0]

    def _sr_header(self, schema_name: str, topic: str | None) -> bytes:
        if not topic:
            raise ValueError(f"encoding {schema_name} for a Schema Registry needs the topic")
        return self.register(schema_name, topic)

    def register(self, schema_name: str, topic: str) -> bytes:
        """Register the current schema under `<topic>-value`; returns the 5-byte wire header.

        Called on first use; call it at start-up to fail fast and keep HTTP off the hot path.
        Raises streams.models.serializers.registry's IncompatibleSchema, SchemaRegistrationError,
        RegistryUnavailable or RegistryAuthError (the client is then built again on next use).
        """
        schema = self._current(schema_name)
        try:
            schema_id = self.schema_registry().register(subject_for(topic), schema.text)
        except RegistryAuthError:
            self._renew = True
            raise
        header = CONFLUENT_MAGIC + schema_id.to_bytes(4, "big")
        self._sr_routes.setdefault(schema_id, self._route(schema))
        self._sr_headers[(schema_name, topic)] = header
        return header

    def registry(self) -> Any:
        """The Schema Registry client (built on first use)."""
        return self.schema_registry().client

    def schema_registry(self) -> SchemaRegistry:
        """The project's registry logic over the client (streams.models.serializers.registry).
        After a RegistryAuthError the client is built again (a fixed credentials file is read
        again), keeping the schemas already known."""
        sr = self._sr
        if sr is None or self._renew:
            with self._lock:
                if self._sr is None or self._renew:
                    client = self._registry if self._registry is not None else self._new_client()
                    if self._sr is None:
                        self._sr = SchemaRegistry(client)
                    else:  # the old one is left to the garbage collector: it may be in use
                        self._sr.client = client
                    self._renew = False
                sr = self._sr
        return sr

    def _new_client(self) -> Any:
        if not self.schema_registry_url:
            raise DecodeError("no SCHEMA_REGISTRY_URL configured")
        if self._settings is not None:
            return new_client(self._settings, self._registry_config)
        return new_client(self.schema_registry_url, self._registry_config)

    # -- decode ------------------------------------------------------------------------------

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]]:
        """(short schema name, datum in the current reader schema) of a framed message."""
        if data[:2] == SINGLE_OBJECT_MAGIC:
            if len(data) < _SOE_HEADER_LEN:
                raise DecodeError(f"truncated single-object header ({len(data)} bytes)")
            fp = data[2:_SOE_HEADER_LEN]
            route = self._routes.get(fp)
            if route is None:
                raise DecodeError(
                    f"unknown writer schema fingerprint {bytes(fp).hex()} "
                    f"(not among the schemas in {self.schema_dir})"
                )
            start = _SOE_HEADER_LEN
        elif data[:1] == CONFLUENT_MAGIC:
            if len(data) < _CONFLUENT_HEADER_LEN:
                raise DecodeError(f"truncated Confluent header ({len(data)} bytes)")
            schema_id = int.from_bytes(data[1:_CONFLUENT_HEADER_LEN], "big")
            route = self._sr_routes.get(schema_id) or self._sr_route(schema_id)
            start = _CONFLUENT_HEADER_LEN
        else:
            head = bytes(data[:2]).hex() or "empty"
            raise DecodeError(
                f"unknown framing (first bytes {head}): expected Avro single-object (c301) "
                "or Confluent wire format (00)"
            )
        if not route.readable:
            raise DecodeError(f"no current reader schema for {route.name} (schema removed)")
        buf = io.BytesIO(data)
        buf.seek(start)
        try:
            datum = fastavro.schemaless_reader(buf, route.writer, route.reader)
        except Exception as exc:
            raise DecodeError(f"corrupt {route.name} body: {type(exc).__name__}: {exc}") from None
        if buf.tell() != len(data):
            raise DecodeError(
                f"{len(data) - buf.tell()} trailing bytes after the {route.name} body"
            )
        if not isinstance(datum, dict):
            raise DecodeError(f"{route.name} body is not a record")
        return route.name, datum

    def projected_decoder(self, schema_name: str, keep: Keep) -> Callable[[bytes], dict[str, Any]]:
        """decode(data) -> datum with only the `keep` fields built (streams.models.serializers.
        projection), for single-object messages written with the current `schema_name`; any
        other message (an older writer, the Confluent framing) goes through `decode`. Raises
        DecodeError like `decode`, also for a record of another schema."""
        current = self._current(schema_name)
        prefix = SINGLE_OBJECT_MAGIC + current.fingerprint
        try:
            read: Reader | None = compile_reader(current.parsed, keep)
        except Unsupported:
            read = None
        decode = self.decode

        def projected(data: bytes) -> dict[str, Any]:
            if read is not None and data[:_SOE_HEADER_LEN] == prefix:
                try:
                    datum, end = read(data, _SOE_HEADER_LEN)
                except Exception as exc:
                    raise DecodeError(
                        f"corrupt {schema_name} body: {type(exc).__name__}: {exc}"
                    ) from None
                if end != len(data):
                    raise DecodeError(
                        f"{len(data) - end} trailing bytes after the {schema_name} body"
                    )
                return datum
            name, datum = decode(data)
            if name != schema_name:
                raise DecodeError(f"a {name} record, not {schema_name}")
            return datum

        return projected

    def _sr_route(self, schema_id: int) -> _Route:
        if self._registry is None and not self.schema_registry_url:
            raise DecodeError(
                f"Confluent-framed message (schema id {schema_id}) but no SCHEMA_REGISTRY_URL"
            )
        # UnknownSchemaId (a DecodeError), RegistryUnavailable and RegistryAuthError (not ones:
        # the record is not at fault) pass through as they are.
        try:
            text = self.schema_registry().schema_text(schema_id)
        except RegistryAuthError:
            self._renew = True
            raise
        try:
            writer = _make_schema(json.loads(text), f"schema registry id {schema_id}")
        except Exception as exc:
            raise DecodeError(f"schema registry id {schema_id}: {exc}") from exc
        if writer.fullname not in self._by_fullname:
            raise DecodeError(f"schema registry id {schema_id} is {writer.fullname}, not ours")
        route = self._routes.get(writer.fingerprint) or self._route(writer)
        self._sr_routes[schema_id] = route
        return route


# -- precise errors for bad datums (slow path only) -------------------------------------------


def _explain(schema: dict[str, Any], datum: Any, exc: Exception) -> ValidationError:
    """Where and why `datum` does not fit `schema`, by the contract's walk."""
    try:
        build(schema, webhook=False).convert(datum)
    except Bad as bad:
        return error(bad)
    return ValidationError("", f"cannot encode as {_short(schema['name'])}: {exc}")


# -- shared instances ---------------------------------------------------------------------------

_CODECS: dict[tuple[str, str], AvroCodec] = {}
_CODECS_LOCK = threading.Lock()


def get_codec(settings: Settings | None = None) -> AvroCodec:
    """The process-wide codec for `settings` (from the environment when None), cached per
    Schema Registry URL and credentials; its registry client is built from the settings
    (streams.models.serializers.registry.client_config)."""
    settings = settings or _env_settings()
    key = registry_key(settings)
    codec = _CODECS.get(key)
    if codec is None:
        with _CODECS_LOCK:
            codec = _CODECS.get(key)
            if codec is None:
                codec = _CODECS[key] = AvroCodec(settings=settings)
    return codec


@lru_cache(maxsize=1)
def _env_settings() -> Settings:
    return Settings.from_env()
