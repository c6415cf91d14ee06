"""billing.bounded_json: the same documents as json.loads within the bounds, refusals past them, and a nesting
measure that agrees with the real depth of any document (strings with brackets, quotes and escapes included)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import assume, given, settings, strategies as st

from billing.bounded_json import MAX_DEPTH, MAX_DIGITS, MAX_EXPONENT, JsonRefused, OutOfBounds, loads, nesting_within

tricky_text = st.text(alphabet=st.sampled_from('[]{}"\\ ax\n\u00e9\U0001f600'), max_size=12)
documents = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-10**30, max_value=10**30) | tricky_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(tricky_text, inner, max_size=4),
    max_leaves=30,
)


def depth(document: Any) -> int:
    if isinstance(document, list):
        return 1 + max((depth(item) for item in document), default=0)
    if isinstance(document, dict):
        return 1 + max((depth(item) for item in document.values()), default=0)
    return 0


@settings(max_examples=300)
@given(documents)
def test_documents_within_the_bounds_read_as_json_reads_them(document):
    text = json.dumps(document)
    assert nesting_within(text, depth(document))
    assert depth(document) == 0 or not nesting_within(text, depth(document) - 1)
    assert loads(text.encode()) == json.loads(text)


@given(documents, st.integers(min_value=1, max_value=40))
def test_a_document_wrapped_to_the_limit_is_read_and_past_it_refused(document, extra):
    assume(depth(document) <= MAX_DEPTH)

    def wrapped(total: int) -> str:
        layers = total - depth(document)
        return "[" * layers + json.dumps(document) + "]" * layers

    assert nesting_within(wrapped(MAX_DEPTH), MAX_DEPTH) and loads(wrapped(MAX_DEPTH)) is not None
    with pytest.raises(JsonRefused):
        loads(wrapped(MAX_DEPTH + extra))


@pytest.mark.parametrize("text", ["[" * 100_000, "[" * 100_000 + "]" * 100_000, '{"a":' * 50_000,
                                  '"\\"' * 100_000, "]" * 10 + "[" * 100_000, '["' + "[" * 1000 + '"'])
def test_deep_or_unterminated_text_is_refused_without_recursion(text):
    with pytest.raises(JsonRefused):
        loads(text)


@pytest.mark.parametrize(("literal", "value"), [
    ("3500000", 3500000), ("-42", -42), ("3500000.00", Decimal("3500000.00")), ("35e5", Decimal("35e5")),
    ("9" * MAX_DIGITS, int("9" * MAX_DIGITS)), (f"1e{MAX_EXPONENT}", Decimal(f"1e{MAX_EXPONENT}")),
    (f"1e-{MAX_EXPONENT}", Decimal(f"1e-{MAX_EXPONENT}")),
])
def test_numbers_within_the_bounds_are_converted(literal, value):
    assert loads(f'{{"n": {literal}}}') == {"n": value}


@pytest.mark.parametrize("literal", [
    "1e999999999", "1e1000000", "-1e1000000", f"1e{MAX_EXPONENT + 1}", f"1e-{MAX_EXPONENT + 1}",
    "9" * (MAX_DIGITS + 1), "-" + "9" * (MAX_DIGITS + 1), "1." + "0" * MAX_DIGITS, "1e" + "9" * 100_000,
])
def test_numbers_past_the_bounds_become_markers(literal):
    [marker] = loads(f"[{literal}]")
    assert isinstance(marker, OutOfBounds)
    assert (marker.length, marker.prefix) == (len(literal), literal[:16])


def test_number_types_are_the_caller_s():
    assert loads('[1, 2.5]', number=str, integer=str) == ["1", "2.5"]
    assert loads('[1, 2.5]', number=float) == [1, 2.5]


@pytest.mark.parametrize("data", [b"\xff", b'["\xed\xa0\x80"]', '["\\ud800"]', '{"\\udc00": 1}', "NaN", "[Infinity]",
                                  "-Infinity", "", "{", b"\xef\xbb\xbf[]"])
def test_what_is_not_utf8_json_is_refused(data):
    with pytest.raises(JsonRefused):
        loads(data)


def test_escaped_surrogate_pairs_and_escaped_backslashes_are_read():
    assert loads('["\\ud83d\\ude00", "\\\\ud800"]') == ["\U0001f600", "\\ud800"]
