"""Opaque cursors: round trip, and refusal of anything not made by the encoder."""

from __future__ import annotations

import base64
import contextlib
import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from cloud.api.cursor import decode_cursor, encode_cursor
from cloud.api.errors import BadRequestError

NAMES = frozenset({"pk", "sk", "listPk", "listSk"})
values = st.one_of(st.text(max_size=40), st.integers(-(2**53), 2**53))


@given(st.fixed_dictionaries({name: values for name in NAMES}))
@example({name: "\U00010000" * 40 for name in NAMES})  # escaped, this was 2,631 characters
def test_round_trip(key: dict[str, object]) -> None:
    cursor = encode_cursor(key)
    assert cursor is not None and "=" not in cursor
    assert decode_cursor(cursor, NAMES) == key


def test_no_key_means_no_cursor() -> None:
    assert encode_cursor(None) is None and encode_cursor({}) is None
    assert decode_cursor(None, NAMES) is None and decode_cursor("", NAMES) is None


def _forge(body: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 !",
        _forge([1, 2]),
        _forge({"v": 2, "k": {"pk": "a", "sk": "b", "listPk": "c", "listSk": "d"}}),
        _forge({"v": 1, "k": {"pk": "a"}}),
        _forge({"v": 1, "k": {"pk": "a", "sk": "b", "listPk": "c", "listSk": True}}),
        _forge({"v": 1, "k": {"pk": "a", "sk": "b", "listPk": "c", "listSk": [1]}}),
        "x" * 2000,
    ],
)
def test_forged_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(BadRequestError, match="cursor"):
        decode_cursor(cursor, NAMES)


@given(st.text(max_size=200))
def test_any_text_is_a_cursor_or_a_bad_request(text: str) -> None:
    with contextlib.suppress(BadRequestError):
        decode_cursor(text, NAMES)
