"""The C-encoder fast path of `canonical_json` must spell every value exactly as rfc8785."""

from __future__ import annotations

from typing import Any

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.log.canonical import CanonicalizationError, canonical_json

_scalars = (
    st.none() | st.booleans() | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1) | st.text()
)
_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


def _reference(value: Any) -> bytes | None:
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError):
        return None


@settings(max_examples=600, deadline=None)
@given(_values)
def test_fast_path_equals_rfc8785(value: Any) -> None:
    expected = _reference(value)
    try:
        actual = canonical_json(value)
    except CanonicalizationError:
        assert expected is None
    else:
        assert actual == expected


def test_non_ascii_member_names_sort_by_utf16_code_units() -> None:
    # U+FB01 sorts after U+1F600 by code point but before it in UTF-16 (a surrogate pair).
    value = {"\U0001f600": 1, "\ufb01": 2, "a": 3}
    assert canonical_json(value) == rfc8785.dumps(value)
    assert canonical_json(value).index("\ufb01".encode()) > canonical_json(value).index(
        "\U0001f600".encode()
    )


def test_large_integers_take_the_reference_path() -> None:
    # rfc8785 refuses integers a double cannot hold exactly; the fast path must not accept them.
    for number in (2**53, -(2**53), 10**21):
        assert _reference({"n": number}) is None
        try:
            canonical_json({"n": number})
        except CanonicalizationError:
            continue
        raise AssertionError(f"{number} was canonicalised")
