"""Serializers: the Avro codec over the schemas in `streams/models/schemas/`."""

from streams.models.serializers.avro import SCHEMA_DIR, AvroCodec, get_codec

__all__ = ["SCHEMA_DIR", "AvroCodec", "get_codec"]
