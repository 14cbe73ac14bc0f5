"""The shared text rules mean the same to every regular-expression dialect that reads them."""

from __future__ import annotations

import re
from typing import Annotated

import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import Field, TypeAdapter, ValidationError

from stellara_contracts import patterns

#: characters where the dialects' notions of space differ, the rule's own delimiters, and the rest
AWKWARD = "".join(chr(c) for c in [*range(0x00, 0x21), *range(0x7F, 0xA1), 0x1680, 0x2028])
AWKWARD += "\u2000\u200a\u200b\u202f\u205f\u3000\ufeff@<>\"',;._-aZz09+ü"
TEXT = st.text(alphabet=st.sampled_from(AWKWARD) | st.characters(codec="utf-8"), max_size=80)

PATTERNS = {
    "email": patterns.EMAIL_PATTERN,
    "meter key": patterns.METER_KEY_PATTERN,
    "user id": patterns.USER_ID_PATTERN,
}


def verdicts(pattern: str, text: str) -> dict[str, bool]:
    rust = TypeAdapter(Annotated[str, Field(pattern=pattern)])  # pydantic-core: Rust `regex`
    try:
        rust.validate_python(text)
        rust_ok = True
    except ValidationError:
        rust_ok = False
    return {
        "python re": re.search(pattern, text) is not None,
        "rust regex": rust_ok,
        "ECMA-262 (jsonschema-rs)": jsonschema_rs.validator_for(
            {"type": "string", "pattern": pattern}
        ).is_valid(text),
    }


@pytest.mark.parametrize("name", PATTERNS)
@settings(max_examples=400, deadline=None)
@given(text=TEXT)
def test_every_dialect_agrees(name: str, text: str) -> None:
    found = verdicts(PATTERNS[name], text)
    assert len(set(found.values())) == 1, (name, text, found)


@pytest.mark.parametrize(
    ("text", "taken"),
    [
        ("ada@acme.example", True),
        ("ada+billing@acme.example", True),
        ("ada\u0085@acme.example", False),
        ("ada\x1c@acme.example", False),
        ("ada @acme.example", False),
        ("ada@acme", False),
        ("<ada@acme.example>", False),
        ("a" * 64 + "@acme.example", True),
        ("a" * 65 + "@acme.example", False),
    ],
)
def test_what_an_email_address_is(text: str, taken: bool) -> None:
    assert set(verdicts(patterns.EMAIL_PATTERN, text).values()) == {taken}


@pytest.mark.parametrize(
    ("text", "taken"),
    [
        ("auth0|42", True),
        ("google-oauth2|1", True),
        ("...", True),
        ("a.b", True),
        (".", False),
        ("..", False),
        ("a/b", False),
        ("50%", False),
        ("a\\b", False),
        ("has space", False),
        ("ünicode", False),
        ("", False),
    ],
)
def test_what_a_user_id_is(text: str, taken: bool) -> None:
    """One a request path can name as it is (the gateway refuses dot segments, `%`, `\\`)."""
    assert set(verdicts(patterns.USER_ID_PATTERN, text).values()) == {taken}
