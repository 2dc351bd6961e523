"""`x-voucherify-signature`: lowercase hex HMAC-SHA256 of the body, keyed with the webhook secret.

Voucherify signs the JSON payload with all whitespace outside string literals removed, while
the body on the wire may be formatted. So the raw body is checked first (the fast, usual case)
and only when that fails the whitespace-stripped body. Parsed JSON is never re-serialised.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable

# A JSON string literal (unrolled loop: linear, no catastrophic backtracking), or a run of
# JSON whitespace. Whitespace runs are replaced by nothing, string literals by themselves.
_TOKEN = re.compile(rb'("[^"\\]*(?:\\.[^"\\]*)*")|[ \t\n\r]+', re.DOTALL)
_WHITESPACE = re.compile(rb"[ \t\n\r]")


def strip_json_whitespace(body: bytes) -> bytes:
    """`body` with every JSON whitespace character outside string literals removed."""
    if _WHITESPACE.search(body) is None:
        return body
    return _TOKEN.sub(rb"\1", body)


def sign(secret: str | bytes, message: bytes) -> str:
    """The signature Voucherify would send for `message` (lowercase hex)."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.digest(key, message, "sha256").hex()


class SignatureVerifier:
    """Checks a signature against every configured secret (several during a rotation)."""

    def __init__(self, secrets: Iterable[str | bytes]) -> None:
        self._keys = tuple(s.encode() if isinstance(s, str) else s for s in secrets)
        if not self._keys:
            raise ValueError("no webhook secret configured")

    def verify(self, body: bytes, signature: str | None) -> str | None:
        """How the body matched: "raw" or "stripped"; None when it did not (or no header)."""
        if not signature:
            return None
        try:
            given = bytes.fromhex(signature.strip())
        except ValueError:
            return None
        if len(given) != 32:
            return None
        if self._match(body, given):
            return "raw"
        stripped = strip_json_whitespace(body)
        if stripped is not body and self._match(stripped, given):
            return "stripped"
        return None

    def _match(self, message: bytes, given: bytes) -> bool:
        found = False
        for key in self._keys:
            # Every key is tried (no early exit), each compared in constant time.
            found |= hmac.compare_digest(hmac.digest(key, message, "sha256"), given)
        return found
