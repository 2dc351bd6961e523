"""The webhook bridge: signed Voucherify webhooks over HTTP -> Avro records in Kafka.

Entry points: `streams.bridge.app.create_app(settings, producer=None)` and
`streams.bridge.app.run(settings)` (what `voucherify-streams bridge` calls).
"""
