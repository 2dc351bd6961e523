"""Serializers: the Avro codec (and, in `faust_codecs`, its Faust codecs).

`faust_codecs` is not imported here so the bridge does not pay for importing Faust.
"""

from streams.models.serializers.avro import SCHEMA_DIR, AvroCodec, get_codec

__all__ = ["SCHEMA_DIR", "AvroCodec", "get_codec"]
