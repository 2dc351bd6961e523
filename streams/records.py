"""The Kafka record of a customer.deleted: what the bridge and replay both publish."""

from __future__ import annotations

import logging
from typing import Any

from streams.kafka.producer import Headers
from streams.models.customer_deleted import EVENT_TYPE
from streams.models.pii import PiiPolicy
from streams.models.serializers.codegen import Unsupported
from streams.models.serializers.from_webhook import DECLINED, WebhookEncoder, compile_encoder
from streams.settings import Settings

log = logging.getLogger("streams.records")

#: (key, value, headers) of one Kafka record.
Record = tuple[str, bytes, Headers]


class CustomerDeletedRecords:
    """A deletion's Kafka record (key, value, headers): the personal-data policy, Avro and the
    provenance headers, from a validated datum (`build`) or straight from the webhook's JSON
    (`from_payload`, one generated pass)."""

    def __init__(self, settings: Settings, codec: Any = None) -> None:
        if codec is None:
            from streams.models.serializers.avro import get_codec

            codec = get_codec(settings)
        self.codec = codec
        self.pii = PiiPolicy(settings.pii_policy, settings.pii_hash_key)
        self.topic = settings.topic(settings.customer_deleted_topic)
        self.fingerprint = codec.fingerprint("CustomerDeleted").hex()
        self._encode: WebhookEncoder | None = None
        try:
            self._encode = compile_encoder(codec.schema("CustomerDeleted"), self.pii)
        except Unsupported as exc:  # a codec whose schema the contract does not line up with
            log.info("customer.deleted records are built step by step: %s", exc)

    def build(self, datum: dict[str, Any]) -> Record:
        """The record of a validated datum, keyed by customer id. Applies the PII policy to
        `datum` in place."""
        self.pii.apply(datum)
        value = self.codec.encode("CustomerDeleted", datum, topic=self.topic)
        event = datum.get("event")
        return (
            datum["data"]["customer"]["id"],
            value,
            self._headers(datum.get("id"), event.get("id") if event else None),
        )

    def from_payload(self, payload: Any) -> Record | None:
        """`build(parse_webhook(payload))` in one pass, for the usual well-formed payload;
        None for any other (parse_webhook then says what is wrong, or gives the datum)."""
        encode = self._encode
        if encode is None:
            return None
        buf = bytearray()
        try:
            customer_id, sendout_id, event_id = encode(payload, buf)
        except DECLINED:
            return None
        # The framing only now: with a Schema Registry its first use registers the schema.
        value = self.codec.header("CustomerDeleted", topic=self.topic) + buf
        return customer_id, value, self._headers(sendout_id, event_id)

    def _headers(self, sendout_id: str | None, event_id: str | None) -> Headers:
        headers: Headers = [("event_type", EVENT_TYPE), ("schema_fingerprint", self.fingerprint)]
        if sendout_id:
            headers.append(("sendout_id", sendout_id))
        if event_id:
            headers.append(("event_id", event_id))
        return headers
