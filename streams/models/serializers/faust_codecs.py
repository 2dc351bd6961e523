"""Faust codecs over the Avro codec; importing this module registers them.

- one codec per record schema, e.g. "avro-customer-deleted": `dumps(datum_dict)`,
  `loads(bytes) -> datum_dict` (and a DecodeError if the message holds another schema);
- "avro": `loads` decodes any framed message to its datum dict; `dumps` takes a
  `(schema_name, datum)` pair or a dict carrying the schema name under "__schema__".

With a Schema Registry the subject is `<topic>-value` of the topic the settings give that
schema (see TOPIC_SETTING). Call `register_faust_codecs(settings)` to bind explicit settings;
on import they are bound to `Settings.from_env()`, resolved on first use.
"""

from __future__ import annotations

import re
from typing import Any

from faust.serializers import codecs

from streams.models.errors import DecodeError
from streams.models.serializers.avro import AvroCodec, get_codec
from streams.settings import Settings

__all__ = ["SCHEMA_HINT", "TOPIC_SETTING", "AvroFaustCodec", "codec_name", "register_faust_codecs"]

SCHEMA_HINT = "__schema__"

#: Which Settings attribute names the topic each record schema is published to.
TOPIC_SETTING: dict[str, str] = {
    "CustomerDeleted": "customer_deleted_topic",
    "DeadLetter": "dead_letter_topic",
    "LoyaltyPointsLost": "loyalty_topic",
    "ReferralImpact": "referral_topic",
    "CustomerDeletion": "deletions_topic",
}


def codec_name(schema_name: str) -> str:
    """ "CustomerDeleted" -> "avro-customer-deleted"."""
    return "avro-" + re.sub(r"(?<!^)(?=[A-Z])", "-", schema_name).lower()


class AvroFaustCodec(codecs.Codec):
    """A Faust codec for one record schema, or for any (schema_name=None: the "avro" codec)."""

    def __init__(
        self,
        children: tuple[codecs.CodecT, ...] | None = None,
        *,
        schema_name: str | None = None,
        settings: Settings | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(children, schema_name=schema_name, settings=settings, **kwargs)
        self.schema_name = schema_name
        self.settings = settings
        self._codec: AvroCodec | None = None
        self._topics: dict[str, str | None] = {}

    @property
    def codec(self) -> AvroCodec:
        if self._codec is None:
            self._codec = get_codec(self.settings)
        return self._codec

    def _topic(self, schema_name: str) -> str | None:
        if schema_name not in self._topics:
            settings = self.settings or Settings.from_env()
            attr = TOPIC_SETTING.get(schema_name)
            self._topics[schema_name] = settings.topic(getattr(settings, attr)) if attr else None
        return self._topics[schema_name]

    def _dumps(self, obj: Any) -> bytes:
        name = self.schema_name
        if name is None:
            if isinstance(obj, tuple) and len(obj) == 2:
                name, obj = obj
            elif isinstance(obj, dict) and isinstance(obj.get(SCHEMA_HINT), str):
                name = obj[SCHEMA_HINT]
            else:
                raise TypeError(
                    'the "avro" codec dumps a (schema_name, datum) pair or a dict with '
                    f'"{SCHEMA_HINT}"; got {type(obj).__name__}'
                )
        assert name is not None
        codec = self.codec
        topic = self._topic(name) if codec.schema_registry_url else None
        return codec.encode(name, obj, topic=topic)

    def _loads(self, s: bytes) -> Any:
        name, datum = self.codec.decode(s)
        if self.schema_name is not None and name != self.schema_name:
            raise DecodeError(f"expected a {self.schema_name} message, got {name}")
        return datum


def register_faust_codecs(settings: Settings | None = None) -> dict[str, AvroFaustCodec]:
    """(Re-)register "avro" and one "avro-<schema>" codec per schema; returns them by name."""
    made = {"avro": AvroFaustCodec(settings=settings)}
    for schema_name in TOPIC_SETTING:
        made[codec_name(schema_name)] = AvroFaustCodec(schema_name=schema_name, settings=settings)
    for name, codec in made.items():
        codecs.register(name, codec)
    return made


register_faust_codecs()
