"""Errors of the webhook contract and the Avro codec."""

from __future__ import annotations


class ValidationError(ValueError):
    """A payload or datum broke the contract: `path` says where, `rule` says what."""

    def __init__(self, path: str, rule: str, code: str = "invalid_payload") -> None:
        super().__init__(f"{path}: {rule}")
        self.path = path
        self.rule = rule
        self.code = code

    def __reduce__(self) -> tuple[type[ValidationError], tuple[str, str, str]]:
        # Keeps the three attributes across pickling (multiprocessing, Faust workers).
        return (type(self), (self.path, self.rule, self.code))


class DecodeError(ValueError):
    """Bytes that are not a known framing, or name an unknown fingerprint or registry id."""
