"""The Kafka record of a customer.deleted: what the bridge and replay both publish."""

from __future__ import annotations

from typing import Any

from streams.kafka.producer import Headers
from streams.models.customer_deleted import EVENT_TYPE
from streams.models.pii import PiiPolicy
from streams.settings import Settings


class CustomerDeletedRecords:
    """Validated datum -> (key, value, headers): personal-data policy, Avro, provenance headers."""

    def __init__(self, settings: Settings, codec: Any = None) -> None:
        if codec is None:
            from streams.models.serializers.avro import get_codec

            codec = get_codec(settings)
        self.codec = codec
        self.pii = PiiPolicy(settings.pii_policy, settings.pii_hash_key)
        self.topic = settings.topic(settings.customer_deleted_topic)
        self.fingerprint = codec.fingerprint("CustomerDeleted").hex()

    def build(self, datum: dict[str, Any]) -> tuple[str, bytes, Headers]:
        """The record, keyed by customer id. Applies the PII policy to `datum` in place."""
        self.pii.apply(datum)
        value = self.codec.encode("CustomerDeleted", datum, topic=self.topic)
        headers: Headers = [("event_type", EVENT_TYPE), ("schema_fingerprint", self.fingerprint)]
        sendout_id = datum.get("id")
        if sendout_id:
            headers.append(("sendout_id", sendout_id))
        event = datum.get("event")
        event_id = event.get("id") if event else None
        if event_id:
            headers.append(("event_id", event_id))
        return datum["data"]["customer"]["id"], value, headers
