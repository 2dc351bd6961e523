"""What the worker does with a record it cannot decode because of the registry, not the record:
never skipped as bad (no dead letter, no count)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from streams.agents import skipped
from streams.models.serializers.registry import RegistryAuthError, RegistryUnavailable
from streams.settings import Settings

MSG = SimpleNamespace(topic="in", partition=0, offset=7, key=b"k", value=b"\x00\x00\x00\x00\x07")


def test_the_registry_refusing_the_credentials_stops_the_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exits: list[tuple[str, str]] = []

    def exit_for_restart(message: str, *args: Any, reason: str) -> None:
        exits.append((message % args, reason))
        raise SystemExit(70)

    monkeypatch.setattr(skipped, "exit_for_restart", exit_for_restart)
    skip = skipped.Skipped(SimpleNamespace(settings=Settings(), codec=None), None)  # type: ignore[arg-type]
    refused = RegistryAuthError("schema registry at https://r refused the credentials (HTTP 401)")
    with pytest.raises(SystemExit):
        skip(MSG, refused)
    assert exits == [(str(refused), "registry")]
    with pytest.raises(RegistryUnavailable):
        skip(MSG, RegistryUnavailable("schema registry id 7: the registry did not answer"))
    assert not skip.counts  # nothing skipped, nothing kept as a dead letter
