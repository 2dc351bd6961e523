"""The webhook bridge: signed Voucherify webhooks over HTTP -> Avro records in Kafka.

Modules: `handlers` (the request logic, no HTTP framework), `service` (start/stop: topics,
schema registration, producer), `server` (aiohttp: `create_app`, `serve`, and `run`, what
`voucherify-streams bridge` calls), `supervisor` (`--workers N`), `asgi` (`streams.bridge.asgi:app`
for any ASGI server).
"""
