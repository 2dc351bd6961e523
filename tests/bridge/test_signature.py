"""Signature check: the sheet's test vectors, the whitespace-stripped variant, tricky strings."""

from __future__ import annotations

import json

import pytest

from streams.bridge.signature import SignatureVerifier, sign, strip_json_whitespace

VECTORS = [
    ("secretKey", b'{"a":1}', "a17d2ac229d1ebbb5f10e839c7985c4818e5986eab297f7e5979196d4d7d3ed2"),
    (
        "secret-signature-key",
        b'{"test":"test1"}',
        "5547d4d07430a2d1b77649564c68d80afe591f7cc61ca110bccb442e3205eeec",
    ),
]


@pytest.mark.parametrize(("key", "message", "digest"), VECTORS)
def test_sheet_vectors(key: str, message: bytes, digest: str) -> None:
    assert sign(key, message) == digest
    assert SignatureVerifier([key]).verify(message, digest) == "raw"


@pytest.mark.parametrize(("key", "message", "digest"), VECTORS)
def test_formatted_body_matches_via_stripping(key: str, message: bytes, digest: str) -> None:
    pretty = json.dumps(json.loads(message), indent=2).encode() + b"\n"
    assert pretty != message
    assert SignatureVerifier([key]).verify(pretty, digest) == "stripped"


def test_uppercase_hex_and_surrounding_space_accepted() -> None:
    key, message, digest = VECTORS[0]
    assert SignatureVerifier([key]).verify(message, f" {digest.upper()} ") == "raw"


@pytest.mark.parametrize(
    "signature", [None, "", "nothex", "ab" * 31, "ab" * 33, "0" * 64, VECTORS[1][2]]
)
def test_wrong_or_missing_signature(signature: str | None) -> None:
    key, message, _ = VECTORS[0]
    assert SignatureVerifier([key]).verify(message, signature) is None


def test_wrong_key() -> None:
    _, message, digest = VECTORS[0]
    assert SignatureVerifier(["other"]).verify(message, digest) is None


def test_rotation_any_configured_secret_matches() -> None:
    message = b'{"a":1}'
    verifier = SignatureVerifier(["old", "new"])
    assert verifier.verify(message, sign("old", message)) == "raw"
    assert verifier.verify(message, sign("new", message)) == "raw"
    assert verifier.verify(message, sign("gone", message)) is None


def test_no_secret_is_an_error() -> None:
    with pytest.raises(ValueError):
        SignatureVerifier([])


@pytest.mark.parametrize(
    ("body", "stripped"),
    [
        (b'{ "a" : 1 }', b'{"a":1}'),
        (b'{\n\t"a":\r\n [1, 2]\n}', b'{"a":[1,2]}'),
        # whitespace inside strings is kept
        (b'{"name": "Lionel  Johnson"}', b'{"name":"Lionel  Johnson"}'),
        # escaped quotes do not end the string
        (b'{"q": "say \\"hi there\\" now", "b" : 2}', b'{"q":"say \\"hi there\\" now","b":2}'),
        # an escaped backslash right before the closing quote does end it
        (b'{"p": "C:\\\\ dir\\\\", "x" : "a b"}', b'{"p":"C:\\\\ dir\\\\","x":"a b"}'),
        # tabs/newlines escaped inside strings, unicode kept byte for byte
        (b'{"t": "a\\tb \\n c", "u": "Zo\xc3\xab  K"}', b'{"t":"a\\tb \\n c","u":"Zo\xc3\xab  K"}'),
        (b'{"a":1}', b'{"a":1}'),
    ],
)
def test_strip_json_whitespace(body: bytes, stripped: bytes) -> None:
    assert strip_json_whitespace(body) == stripped


def test_strings_with_spaces_verify_when_signed_compact() -> None:
    obj = {"name": "Lionel  Johnson", "q": 'he said "hi there"', "nested": {"k": "a \\ b"}}
    compact = json.dumps(obj, separators=(",", ":")).encode()
    pretty = json.dumps(obj, indent=4).encode()
    verifier = SignatureVerifier(["k"])
    assert verifier.verify(pretty, sign("k", compact)) == "stripped"
    # a signature over a body whose string content changed must not match
    tampered = pretty.replace(b"Lionel  Johnson", b"Lionel Johnson")
    assert verifier.verify(tampered, sign("k", compact)) is None


def test_example_signed_compact_verifies_raw_and_pretty(example_body: bytes) -> None:
    compact = json.dumps(
        json.loads(example_body), separators=(",", ":"), ensure_ascii=False
    ).encode()
    signature = sign("s", compact)
    verifier = SignatureVerifier(["s"])
    assert strip_json_whitespace(example_body) == compact
    assert verifier.verify(compact, signature) == "raw"
    assert verifier.verify(example_body, signature) == "stripped"
