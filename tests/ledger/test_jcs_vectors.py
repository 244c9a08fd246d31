"""RFC 8785 (JCS) vectors from tests/data/jcs and the log-entry rules (DESIGN §4.1, §4.2).

Every vector: canonical_json(json.loads(input_text)) is exactly the expected bytes (also
given as hex). Log entries: `kind` of the form "<name>/<version>" is required, floats are
refused anywhere, the canonical form is bounded by MAX_CANONICAL_BYTES.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_support import load_testdata, missing_testdata

from ledger.log.canonical import (
    MAX_CANONICAL_BYTES,
    CanonicalizationError,
    canonical_entry,
    canonical_json,
    parse_entry,
)

VECTOR_FILE = ("jcs", "jcs_vectors.json")
VECTORS: dict[str, Any] | None = load_testdata(*VECTOR_FILE)
CASES: dict[str, dict[str, str]] = VECTORS["cases"] if VECTORS else {}


def test_vector_file_is_complete() -> None:
    if VECTORS is None:
        missing_testdata(*VECTOR_FILE)
    assert sorted(CASES) == ["arrays", "french", "structures", "unicode", "values", "weird"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_jcs_vector(name: str) -> None:
    case = CASES[name]
    expected = case["expected_output"].encode("utf-8")
    assert expected == bytes.fromhex(case["expected_hex"]), "the vector's two forms disagree"
    assert canonical_json(json.loads(case["input_text"])) == expected
    # Canonical output is a fixed point.
    assert canonical_json(json.loads(expected)) == expected


@pytest.mark.parametrize("name", ["structures", "weird"])
def test_vectors_reject_naive_sorted_json(name: str) -> None:
    """The vectors can tell JCS from json.dumps(sort_keys=True) (DESIGN §4.1)."""
    case = CASES.get(name) or missing_testdata(*VECTOR_FILE)
    naive = json.dumps(
        json.loads(case["input_text"]), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()
    assert naive != bytes.fromhex(case["expected_hex"])


# ---------------------------------------------------------------------- JSON values

MAX_SAFE_INTEGER = 2**53 - 1
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
)
float_free_json = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(float_free_json)
@settings(max_examples=100, deadline=None)
def test_canonical_json_is_a_fixed_point_and_parses_back(value: Any) -> None:
    encoded = canonical_json(value)
    assert json.loads(encoded) == value
    assert canonical_json(json.loads(encoded)) == encoded


@given(
    st.dictionaries(st.text(max_size=8).filter(lambda k: k != "kind"), float_free_json, max_size=6),
    st.randoms(),
)
@settings(max_examples=100, deadline=None)
def test_canonical_entry_ignores_key_order(fields: dict[str, Any], rng: random.Random) -> None:
    entry = {"kind": "reading/1", **fields}
    items = list(entry.items())
    rng.shuffle(items)
    assert canonical_entry(dict(items)) == canonical_entry(entry) == canonical_json(entry)
    assert parse_entry(canonical_entry(entry)) == entry


# -------------------------------------------------------------------------- kinds


@pytest.mark.parametrize(
    "kind", ["reading/1", "meter.key/1", "meter.key-revoked/1", "certificate.issued/12"]
)
def test_entry_kinds_of_the_form_name_version_are_accepted(kind: str) -> None:
    assert parse_entry(canonical_entry({"kind": kind, "value": 1})) == {"kind": kind, "value": 1}


@pytest.mark.parametrize(
    "entry",
    [
        {},
        {"value": 1},
        {"kind": None},
        {"kind": 1},
        {"kind": ["reading/1"]},
        {"kind": ""},
        {"kind": "reading"},
        {"kind": "reading/"},
        {"kind": "/1"},
        {"kind": "reading/v1"},
        {"kind": "reading/1.0"},
        {"kind": "reading/-1"},
        {"kind": "reading/1 "},
        {"kind": "reading/\u00b2"},  # superscript two: str.isdigit() but not a number
        {"kind": "reading/\u0661"},  # ARABIC-INDIC DIGIT ONE
    ],
    ids=repr,
)
def test_entry_without_a_proper_kind_is_refused(entry: dict[str, Any]) -> None:
    with pytest.raises(CanonicalizationError):
        canonical_entry(entry)


# ------------------------------------------------------------------------- floats


@pytest.mark.parametrize(
    "entry",
    [
        {"kind": "reading/1", "importWh": 1.0},
        {"kind": "reading/1", "importWh": 0.5},
        {"kind": "reading/1", "payload": {"meter": "m", "exportWh": 2.0}},
        {"kind": "reading/1", "values": [1, 2, 3.0]},
        {"kind": "reading/1", "deep": [{"a": [{"b": -0.0}]}]},
        {"kind": "reading/1", "tuple": (1, 2.5)},
        {"kind": "reading/1", "nan": float("nan")},
    ],
    ids=repr,
)
def test_floats_are_refused_anywhere(entry: dict[str, Any]) -> None:
    with pytest.raises(CanonicalizationError, match="float"):
        canonical_entry(entry)


@given(st.data())
@settings(max_examples=100, deadline=None)
def test_a_float_hidden_anywhere_is_refused(data: st.DataObject) -> None:
    """Put one float at a random place in a random float-free entry."""
    entry: dict[str, Any] = {"kind": "reading/1"}
    container: Any = entry
    for _ in range(data.draw(st.integers(0, 5), label="depth")):
        child: Any = data.draw(st.sampled_from([{}, []]), label="container")
        if isinstance(container, dict):
            container[data.draw(st.text(max_size=5), label="key")] = child
        else:
            container.append(child)
        container = child
    value = data.draw(st.floats(allow_nan=False), label="float")
    if isinstance(container, dict):
        container[data.draw(st.text(max_size=5).filter(lambda k: k != "kind"))] = value
    else:
        container.append(value)
    with pytest.raises(CanonicalizationError):
        canonical_entry(entry)


def test_integers_and_booleans_are_not_floats() -> None:
    entry = {"kind": "reading/1", "importWh": 12, "flag": True, "none": None, "neg": -3}
    assert (
        canonical_entry(entry)
        == b'{"flag":true,"importWh":12,"kind":"reading/1","neg":-3,"none":null}'
    )


@pytest.mark.parametrize("number", [2**53, -(2**53), 10**20])
def test_integers_beyond_ijson_range_are_refused(number: int) -> None:
    with pytest.raises(CanonicalizationError):
        canonical_entry({"kind": "reading/1", "importWh": number})


@pytest.mark.parametrize(
    "value",
    [b"bytes", {1, 2}, {1: "int key"}, "\ud800"],
    ids=["bytes", "set", "int-key", "lone-surrogate"],
)
def test_values_outside_json_are_refused(value: Any) -> None:
    with pytest.raises(CanonicalizationError):
        canonical_entry({"kind": "reading/1", "value": value})


# --------------------------------------------------------------------------- size


def _entry_of_size(size: int) -> dict[str, Any]:
    base = len(canonical_entry({"kind": "reading/1", "pad": ""}))
    return {"kind": "reading/1", "pad": "x" * (size - base)}


def test_entry_size_limit() -> None:
    assert len(canonical_entry(_entry_of_size(MAX_CANONICAL_BYTES))) == MAX_CANONICAL_BYTES
    with pytest.raises(CanonicalizationError, match="limit"):
        canonical_entry(_entry_of_size(MAX_CANONICAL_BYTES + 1))


def test_size_limit_counts_canonical_utf8_bytes() -> None:
    # "é" is one character but two UTF-8 bytes.
    base = len(canonical_entry({"kind": "reading/1", "pad": ""}))
    half = (MAX_CANONICAL_BYTES - base) // 2 + 1
    with pytest.raises(CanonicalizationError, match="limit"):
        canonical_entry({"kind": "reading/1", "pad": "\u00e9" * half})


def test_parse_entry_refuses_non_objects() -> None:
    with pytest.raises(CanonicalizationError):
        parse_entry(b"[1,2]")
