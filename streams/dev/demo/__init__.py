"""The demo: generated webhooks through the real bridge, worker and Kafka."""

from streams.dev.demo.runner import run

__all__ = ["run"]
