"""Schema evolution: every committed schema reads data written with each earlier version of
itself (streams/models/schemas/history/), and a reader on an earlier version reads newer data
where Avro allows."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.models import DecodeError, parse_webhook
from streams.models.serializers.avro import SCHEMA_DIR, AvroCodec, schema_files
from streams.models.serializers.registry import new_client
from tests.models.samples import SAMPLES
from tests.models.strategies import from_schema

CODEC = AvroCodec()
HISTORY = schema_files(SCHEMA_DIR / "history")
VERSIONS = [(p.name, s) for p, s in zip(HISTORY, CODEC.history, strict=True)]


def _resolved(old: Any, new: Any, *, added_are_defaults: bool = True) -> None:
    """`new` keeps every field of `old`; fields only `new` has hold defaults if asked."""
    if isinstance(old, dict) and isinstance(new, dict):
        assert set(old) <= set(new)
        for key, value in new.items():
            if key in old:
                _resolved(old[key], value, added_are_defaults=added_are_defaults)
            elif added_are_defaults:
                assert value in (None, 0, "", [], {}), f"{key}: {value!r} is not a default"
    elif isinstance(old, list) and isinstance(new, list):
        assert len(old) == len(new)
        for a, b in zip(old, new, strict=True):
            _resolved(a, b, added_are_defaults=added_are_defaults)
    else:
        assert old == new


def test_history_exists_and_differs() -> None:
    assert VERSIONS, "schemas/history/ should hold at least one earlier version"
    for file, old in VERSIONS:
        assert old.name in CODEC.current, f"{file}: no current schema named {old.name}"
        assert old.fingerprint != CODEC.fingerprint(old.name), f"{file} equals the current schema"


def test_v0_is_a_genuine_earlier_customer_deleted() -> None:
    v0 = next(s for f, s in VERSIONS if f == "CustomerDeleted.v0.avsc")

    def campaign_fields(parsed: dict[str, Any]) -> set[str]:
        named = parsed["__named_schemas"]["io.voucherify.streams.LoyaltyCampaign"]
        return {f["name"] for f in named["fields"]}

    added = {"redeemed_points", "points_to_go"}
    assert not added & campaign_fields(v0.parsed)
    assert added <= campaign_fields(CODEC.schema("CustomerDeleted"))
    assert "CustomerAssets" not in v0.text and "CustomerAssets" in CODEC.schema_text(v0.name)


@pytest.mark.parametrize(("file", "old"), VERSIONS, ids=[f for f, _ in VERSIONS])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_current_reads_earlier_versions(file: str, old: Any, data: st.DataObject) -> None:
    datum = data.draw(from_schema(old.parsed))
    body = io.BytesIO()
    fastavro.schemaless_writer(body, old.parsed, datum)
    framed = b"\xc3\x01" + old.fingerprint + body.getvalue()
    name, back = CODEC.decode(framed)  # finds the v0 writer by fingerprint
    assert name == old.name
    _resolved(fastavro.schemaless_reader(io.BytesIO(body.getvalue()), old.parsed), back)


@pytest.mark.parametrize(("file", "old"), VERSIONS, ids=[f for f, _ in VERSIONS])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_earlier_versions_read_current_data(file: str, old: Any, data: st.DataObject) -> None:
    current = CODEC.schema(old.name)
    datum = data.draw(from_schema(current))
    body = CODEC.encode(old.name, datum)[10:]
    back = fastavro.schemaless_reader(io.BytesIO(body), current, old.parsed)
    full = fastavro.schemaless_reader(io.BytesIO(body), current)
    _resolved(back, full, added_are_defaults=False)


def _old_codec_dir(tmp: Path, file: str, name: str) -> Path:
    for path in schema_files(SCHEMA_DIR):
        (tmp / path.name).write_bytes(path.read_bytes())
    (tmp / f"{name}.avsc").write_bytes((SCHEMA_DIR / "history" / file).read_bytes())
    return tmp


@pytest.mark.parametrize(("file", "old"), VERSIONS, ids=[f for f, _ in VERSIONS])
def test_old_reader_through_schema_registry(
    tmp_path: Path, file: str, old: Any, example_payload: dict[str, Any]
) -> None:
    """A deployed reader still on `old` decodes newer Confluent-framed data (writer by id)."""
    datum = parse_webhook(example_payload) if old.name == "CustomerDeleted" else SAMPLES[old.name]
    old_codec = AvroCodec(schema_dir=_old_codec_dir(tmp_path, file, old.name))
    registry = new_client("mock://evolution")  # one registry shared by writer and reader
    data = AvroCodec(registry_client=registry).encode(old.name, datum, topic="t")
    name, back = AvroCodec(registry_client=registry, schema_dir=old_codec.schema_dir).decode(data)
    assert name == old.name
    _resolved(back, datum, added_are_defaults=False)
    # Single-object framing names the writer only by fingerprint: an old reader cannot know it.
    with pytest.raises(DecodeError, match="unknown writer schema fingerprint"):
        old_codec.decode(CODEC.encode(old.name, datum))
