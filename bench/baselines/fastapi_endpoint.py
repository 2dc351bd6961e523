"""What a user would write by hand: a minimal FastAPI + confluent-kafka webhook endpoint.

Verifies the signature, validates and Avro-encodes with the project's own code (so the bytes are
the bridge's), then produces and flushes per request — the usual hand-written way to answer only
after the broker's ack. Same producer settings as the bridge (acks=all, idempotence).

Runs in bench/.venv-fastapi (`fastapi[standard]`: uvicorn with uvloop and httptools) with
PYTHONPATH=<repo>:

    .venv-fastapi/bin/python bench/baselines/fastapi_endpoint.py --port P --bootstrap B --topic T
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os

from confluent_kafka import Producer
from fastapi import FastAPI, HTTPException, Request

from streams.models.customer_deleted import parse_webhook
from streams.models.pii import PiiPolicy
from streams.models.serializers.avro import get_codec
from streams.settings import Settings

SECRET = os.environ.get("VOUCHERIFY_WEBHOOK_SECRET", "").encode()
TOPIC = os.environ.get("BENCH_TOPIC", "voucherify.customer.deleted")
BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")

codec = get_codec(Settings())
pii = PiiPolicy("redact")  # the bridge's default policy: same bytes on the topic
producer = Producer(
    {"bootstrap.servers": BOOTSTRAP, "acks": "all", "enable.idempotence": True, "log_level": 3}
)
app = FastAPI()


@app.get("/readyz")
def readyz() -> dict[str, str]:
    return {"status": "ready"}


@app.post("/webhooks/voucherify")
async def webhook(request: Request) -> dict[str, str]:
    body = await request.body()
    expected = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, request.headers.get("x-voucherify-signature", "")):
        raise HTTPException(401, "invalid signature")
    try:
        datum = pii.apply(parse_webhook(json.loads(body)))
    except Exception as exc:
        raise HTTPException(422, str(exc)) from None
    customer_id = datum["data"]["customer"]["id"]
    producer.produce(TOPIC, key=customer_id, value=codec.encode("CustomerDeleted", datum))
    if producer.flush(5) != 0:
        raise HTTPException(503, "not acknowledged by Kafka")
    return {"status": "accepted"}


if __name__ == "__main__":
    import uvicorn

    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
