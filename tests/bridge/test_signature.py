"""Signature check: the sheet's test vectors, the whitespace-stripped variant, tricky strings,
the stripping held to the regex it replaced, what a wrong signature costs in HMACs."""

from __future__ import annotations

import hmac
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.bridge import signature
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


# --- the stripped form: msgspec's formatter against the regex it replaced ---------------------

# The stripping as it was (a regex over the body): the reference on valid JSON.
_OLD_TOKEN = re.compile(rb'("[^"\\]*(?:\\.[^"\\]*)*")|[ \t\n\r]+', re.DOTALL)


def regex_strip(body: bytes) -> bytes:
    return _OLD_TOKEN.sub(rb"\1", body)


# Strings dense in what matters: spaces, quotes, backslashes, the letters and digits of `\u`
# escapes and their stand-ins, control characters, non-ASCII.
_TRICKY = st.sampled_from(list(' "\\udD059aAfF/\n\t\r\x00\x1fé€😀'))
_TEXT = st.text(alphabet=st.one_of(_TRICKY, st.characters(codec="utf-8")), max_size=12)
_SURROGATE = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
_TEXT_WITH_SURROGATES = st.text(
    alphabet=st.one_of(_TRICKY, _SURROGATE, st.characters()), max_size=12
)


def _json_values(text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),  # beyond 64 bits too: copied digit for digit
        st.floats(allow_nan=False, allow_infinity=False),
        text,
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=5), st.dictionaries(text, inner, max_size=5)
        ),
        max_leaves=25,
    )


_INDENTS = st.sampled_from([None, 0, 1, 2, 4, "\t", " \n "])
_SEPARATORS = st.sampled_from([None, (",", ":"), (" , ", " : "), (",\n", ":\t")])


# A string holding a surrogate, most often a lone one (and then msgspec refuses the body).
_LONE = st.builds(
    lambda a, s, b: a + s + b, _TEXT_WITH_SURROGATES, _SURROGATE, _TEXT_WITH_SURROGATES
)


@settings(max_examples=400, deadline=None)
@given(
    obj=_json_values(_TEXT_WITH_SURROGATES),
    lone=_LONE,
    as_key=st.booleans(),
    indent=_INDENTS,
    separators=_SEPARATORS,
    sort_keys=st.booleans(),
)
def test_stripping_equals_the_regex_on_ascii_json(
    obj: Any, lone: str, as_key: bool, indent: Any, separators: Any, sort_keys: bool
) -> None:
    """json.dumps' ASCII output escapes every non-ASCII character, lone surrogates included
    (`\\ud800`, which msgspec refuses: the stand-in swap)."""
    payload = {lone: obj} if as_key else [obj, lone]
    body = json.dumps(payload, indent=indent, separators=separators, sort_keys=sort_keys).encode()
    assert strip_json_whitespace(body) == regex_strip(body)


@settings(max_examples=400, deadline=None)
@given(obj=_json_values(_TEXT), indent=_INDENTS, separators=_SEPARATORS)
def test_stripping_equals_the_regex_on_utf8_json(obj: Any, indent: Any, separators: Any) -> None:
    body = json.dumps(obj, indent=indent, separators=separators, ensure_ascii=False).encode()
    assert strip_json_whitespace(body) == regex_strip(body)
    compact = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    assert SignatureVerifier(["k"]).verify(body, sign("k", compact)) in ("raw", "stripped")


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": "\\ud800", "b" : "\\uDC00 x"}',
        b'[ "\\ud83d\\ude00", "\\ud83d" ,"\\uDE00\\ud800" ]',
        # an escaped backslash before "ud800" is no escape, beside a real lone surrogate
        b'[ "\\\\ud800", "\\udfff" ]',
        # the first stand-ins taken (\uA, \uB): \uC and \uE stand in
        b'[ "\\uA030\\uB030\\ua030\\uf030", "\\ud800", "\\uD800" ]',
        # a string ending in an escaped backslash, then whitespace and a string starting with
        # the stand-in's letters: no "\u<h>" can form across the gap
        b'[ "\\\\" ,  "uA", "\\\\",\n"uA\\ud800" ]',
    ],
    ids=["lone", "pairs-and-lone", "escaped-backslash", "stand-ins-taken", "no-straddle"],
)
def test_lone_surrogates_are_stripped_exactly(body: bytes) -> None:
    stripped = strip_json_whitespace(body)
    assert stripped is not None
    assert stripped == regex_strip(body)
    verifier = SignatureVerifier(["k"])
    assert verifier.verify(body, sign("k", stripped)) == "stripped"


def test_lone_surrogates_with_every_stand_in_taken_have_no_stripped_form() -> None:
    """Documented: then only the raw body is checked."""
    taken = b"".join(b'"\\u%c000" ' % c for c in b"ABCE")
    body = b"[ " + taken.replace(b'" "', b'", "') + b', "\\ud800" ]'
    assert strip_json_whitespace(body) is None
    verifier = SignatureVerifier(["k"])
    assert verifier.verify(body, sign("k", regex_strip(body))) is None
    assert verifier.verify(body, sign("k", body)) == "raw"


@pytest.mark.parametrize(
    "body",
    [
        b'" x"' * 64,  # the body: fails at byte 6
        b"{nope: 1, }",
        b'{"a": 1} {"b": 2}',
        b'{"a": "unterminated }',
        b'["a\tb"]'.replace(b"\t", b"\t "),  # a raw control character inside a string
        b"[" * 2000 + b" " + b"]" * 2000,  # deeper than msgspec's nesting limit
    ],
    ids=["garbage", "not-json", "two-values", "unterminated", "raw-tab-in-string", "deep"],
)
def test_not_json_has_no_stripped_form(body: bytes) -> None:
    assert strip_json_whitespace(body) is None
    verifier = SignatureVerifier(["k"])
    if regex_strip(body) != body:  # what the regex made of it is no longer accepted
        assert verifier.verify(body, sign("k", regex_strip(body))) is None
    assert verifier.verify(body, sign("k", body)) == "raw"


def test_a_body_without_whitespace_is_its_own_stripped_form() -> None:
    body = b"not-json-but-no-whitespace"
    assert strip_json_whitespace(body) is body


@pytest.mark.parametrize(
    ("body", "digests"),
    [
        (b'{"a":1}', 1),  # no whitespace: nothing to strip
        (b'{"a":"x y"}', 1),  # whitespace only inside a string: strips to itself
        (b'" x" " x"', 1),  # not JSON: no stripped form
        (b'{"a": 1}', 2),  # the raw body, then the stripped one
    ],
)
def test_a_wrong_signature_costs_at_most_two_hmacs(
    body: bytes, digests: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    digest = hmac.digest

    def counted(key: bytes, message: bytes, name: str) -> bytes:
        calls.append(len(message))
        return digest(key, message, name)

    monkeypatch.setattr(signature.hmac, "digest", counted)
    assert SignatureVerifier(["k"]).verify(body, "00" * 32) is None
    assert len(calls) == digests
