from __future__ import annotations

from tests.bridge.test_handlers import FakeProducer, base, fake  # noqa: F401
from streams.settings import Settings


def test_x(base: Settings, fake: FakeProducer) -> None:
    assert base.max_body_bytes == 4096
    assert fake.mode == "ack"
