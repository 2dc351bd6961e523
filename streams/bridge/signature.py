"""`x-voucherify-signature`: lowercase hex HMAC-SHA256 of the body, keyed with the webhook secret.

Voucherify signs the JSON payload with all whitespace outside string literals removed, while
the body on the wire may be formatted. So the raw body is checked first (the fast, usual case)
and, when that fails, its whitespace-stripped form. Parsed JSON is never re-serialised: the
stripped form is the body's own bytes with the whitespace between tokens left out
(`msgspec.json.format(body, indent=-1)`, which copies every string literal verbatim: escapes,
UTF-8 and numbers stay byte for byte).

What a request that is not signed costs: the stripping is C and linear, and it stops at the
first byte that is not JSON, so rejecting a wrong signature costs one HMAC of the body, the
stripping (~1 ms per MiB of formatted JSON, ~3 ms of token-dense JSON, microseconds for a body
that is not JSON) and at most one more HMAC. A body with lone surrogate escapes is formatted
twice, with a scan of it per stand-in tried, four at most (see `_format_swapped`). Measured by
bench/signature.py (docs/BENCHMARKS.md, "Signature check"). A body with no JSON whitespace byte
at all is its own stripped form, and one whose only whitespace is inside strings strips to
itself: each is hashed once.

Where there is no stripped form (only the raw body is checked):
- the body is not JSON msgspec reads: malformed, or nested deeper than its limit (~1000);
- the body holds lone surrogate escapes (`"\\ud800"`, valid JSON that msgspec refuses) and
  the four stand-ins tried occur in it already (`\\uA`, `\\uB`, `\\uC`, `\\uE`: escapes of
  U+A000 and above in upper case, which JSON writers rarely emit; see `_format_swapped`).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

import msgspec

#: JSON's whitespace bytes (RFC 8259): none of them in a body, nothing to strip.
_WHITESPACE = (b" ", b"\n", b"\r", b"\t")
#: The prefixes of the surrogate escapes \uD800-\uDFFF, whichever case.
_SURROGATE_PREFIXES = (b"\\ud", b"\\uD")
#: What a surrogate prefix is swapped for while msgspec formats: a `\u` escape of a BMP code
#: point that is no surrogate (any hex digit but d/D), the rarest in real JSON (escapes of
#: U+A000 and above, in upper case). Four at most: each costs a scan of the body (about an
#: HMAC's time), and a body crafted to hold them all must not cost more than that.
_STAND_INS = (b"\\uA", b"\\uB", b"\\uC", b"\\uE")


def _compact(body: bytes) -> bytes:
    return msgspec.json.format(body, indent=-1)


def strip_json_whitespace(body: bytes) -> bytes | None:
    """`body` with every JSON whitespace byte outside string literals removed; `body` itself
    when it holds no whitespace byte at all; None when it is not JSON that can be stripped
    (see the module's docstring)."""
    if not any(ws in body for ws in _WHITESPACE):
        return body
    try:
        return _compact(body)
    except (msgspec.DecodeError, RecursionError):
        pass
    # (No backslash, no escape: one memchr spares the slower searches for the prefixes.)
    if b"\\" in body:
        prefixes = [prefix for prefix in _SURROGATE_PREFIXES if prefix in body]
        if prefixes:
            return _format_swapped(body, prefixes)
    return None


def _format_swapped(body: bytes, prefixes: list[bytes]) -> bytes | None:
    """The stripped form of a body msgspec refused, which may be for its lone surrogates.

    Each surrogate prefix the body holds (`prefixes`: `\\ud`, `\\uD`) is swapped for a
    stand-in `\\u<h>` that occurs nowhere in the body, so every escape becomes an ordinary BMP
    escape; the result is formatted and the stand-ins swapped back. Each stand-in tried costs
    a scan of the body (about an HMAC's time), so the rarest in real JSON are tried first.

    Exact, because a stand-in can only occur in the output where it was put: outside string
    literals valid JSON has no backslash, string literals are copied verbatim, and the three
    bytes of `\\u<h>` cannot span a string's end (a backslash in a string is always followed
    by another byte of it, and `u` followed by a closing quote is no `\\u<h>`). Nor can a swap
    create an occurrence it did not write: both patterns begin with the only backslash they
    hold, so occurrences never overlap. None when the body is still refused, or when no free
    stand-in is left."""
    free = (stand_in for stand_in in _STAND_INS if stand_in not in body)
    swaps: list[tuple[bytes, bytes]] = []
    swapped = body
    for prefix in prefixes:
        stand_in = next(free, None)
        if stand_in is None:
            return None
        swapped = swapped.replace(prefix, stand_in)
        swaps.append((stand_in, prefix))
    try:
        out = _compact(swapped)
    except (msgspec.DecodeError, RecursionError):
        return None
    for stand_in, prefix in swaps:
        out = out.replace(stand_in, prefix)
    return out


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
        # (A body whose whitespace is all inside strings strips to itself: hashed once.)
        if stripped is None or stripped is body or stripped == body:
            return None
        if self._match(stripped, given):
            return "stripped"
        return None

    def _match(self, message: bytes, given: bytes) -> bool:
        found = False
        for key in self._keys:
            # Every key is tried (no early exit), each compared in constant time.
            found |= hmac.compare_digest(hmac.digest(key, message, "sha256"), given)
        return found
