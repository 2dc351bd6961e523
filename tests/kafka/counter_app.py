"""A minimal Faust app with one table, for the foundation's changelog-recovery test.

Configured by env: KAFKA_BOOTSTRAP_SERVERS, STREAMS_APP_ID, STREAMS_TOPIC_PREFIX, STREAMS_WEB_PORT,
STREAMS_DATA_DIR (read through the project's Settings).
"""

from __future__ import annotations

import faust

from streams.settings import Settings

settings = Settings.from_env()
app = faust.App(
    settings.app_id,
    broker=f"kafka://{settings.bootstrap_servers}",
    store="memory://",
    datadir=settings.data_dir,
    web_port=settings.web_port,
    web_host="127.0.0.1",
    topic_partitions=1,
    processing_guarantee=settings.processing_guarantee,
    table_standby_replicas=1,
)
inputs = app.topic(
    settings.topic("counter-in"),
    key_type=str,
    value_type=str,
    partitions=1,
    key_serializer="raw",
    value_serializer="raw",
)
outputs = app.topic(
    settings.topic("counter-out"),
    key_type=str,
    value_type=str,
    partitions=1,
    key_serializer="raw",
    value_serializer="raw",
)
counts = app.Table("counts", default=int, partitions=1)


@app.agent(inputs)
async def count(stream: faust.StreamT[str]) -> None:
    async for key, _value in stream.items():
        counts[key] += 1
        await outputs.send(key=key, value=str(counts[key]))
