"""The webhook bridge: signed Voucherify webhooks over HTTP -> Avro records in Kafka.

Modules: `handlers` (the request logic, no HTTP framework), `service` (start/stop: topics,
schema registration, producer), `server` (`create_app`, `serve`, and `run`, what
`voucherify-streams bridge` calls), `http11` (its own HTTP/1.1 server), `supervisor`
(`--workers N`), `asgi` (`streams.bridge.asgi:app` for any ASGI server), `rsgi` (granian).
"""
