"""The data contract: webhook parsing/validation, Avro schemas and the codec."""

from streams.models.customer_deleted import datum_to_json, envelope_from_data, parse_webhook
from streams.models.errors import DecodeError, ValidationError

__all__ = [
    "DecodeError",
    "ValidationError",
    "datum_to_json",
    "envelope_from_data",
    "parse_webhook",
]
