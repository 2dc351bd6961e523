"""The Faust codecs registered over the Avro codec."""

from __future__ import annotations

from typing import Any

import pytest
from faust.serializers import codecs

from streams.models import DecodeError, parse_webhook
from streams.models.serializers.faust_codecs import codec_name, register_faust_codecs
from streams.settings import Settings
from tests.models.samples import SAMPLES


def test_names_are_registered() -> None:
    register_faust_codecs()
    names = {"avro", *(codec_name(n) for n in ("CustomerDeleted", *SAMPLES))}
    assert names <= set(codecs.codecs)
    assert codec_name("LoyaltyPointsLost") == "avro-loyalty-points-lost"


def test_per_schema_codec(example_payload: dict[str, Any]) -> None:
    register_faust_codecs(Settings())
    datum = parse_webhook(example_payload)
    data = codecs.dumps("avro-customer-deleted", datum)
    assert codecs.loads("avro-customer-deleted", data) == datum
    assert codecs.loads("avro", data) == datum
    with pytest.raises(DecodeError, match="expected a DeadLetter message, got CustomerDeleted"):
        codecs.loads("avro-dead-letter", data)


def test_generic_codec_takes_pair_or_hint() -> None:
    register_faust_codecs(Settings())
    sample = SAMPLES["ReferralImpact"]
    by_pair = codecs.dumps("avro", ("ReferralImpact", sample))
    by_hint = codecs.dumps("avro", {"__schema__": "ReferralImpact", **sample})
    assert by_pair == by_hint
    assert codecs.loads("avro", by_pair) == sample
    with pytest.raises(TypeError, match="schema_name, datum"):
        codecs.dumps("avro", sample)


def test_registry_subject_follows_settings_topic() -> None:
    settings = Settings(schema_registry_url="mock://faust-codecs", topic_prefix="t1.")
    made = register_faust_codecs(settings)
    try:
        data = codecs.dumps("avro-loyalty-points-lost", SAMPLES["LoyaltyPointsLost"])
        assert data[0] == 0
        subjects = made["avro"].codec.registry().get_subjects()
        assert set(subjects) == {"t1.analytics.loyalty-points-lost-value"}
        assert codecs.loads("avro-loyalty-points-lost", data) == SAMPLES["LoyaltyPointsLost"]
    finally:
        register_faust_codecs()
