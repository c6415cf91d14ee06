"""The one JSON reader for everything that comes from outside: bounded nesting, bounded numbers.

Python's json module converts every number literal in full and descends into nested arrays by recursion:
`1e999999999` read as an integer is a billion-digit int that blocks the event loop for minutes, and a
body nested a few thousand levels deep raises RecursionError. Here the nesting is measured first, by a
scan that does not recurse, and every number literal is checked (digits, exponent) before it is converted.
A number past those bounds is not refused with the whole document: it becomes an `OutOfBounds` marker,
which no field reader takes for a number, so each route answers it as its own invalid-field error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from itertools import accumulate
from typing import Any

MAX_DEPTH = 32  # no payload we read nests deeper than a dozen levels (a Telegram update's replies included)
MAX_DIGITS = 40  # digits of a number literal, its fraction included: ids, times and amounts need at most 20
MAX_EXPONENT = 40  # |exponent| of a literal: with MAX_DIGITS, any accepted number converts at once

# A string, or an unterminated one to the end of the text (invalid JSON either way), so that the scan
# never starts again inside it: linear time whatever the quotes and backslashes.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 and -1 as signed bytes
_FLOAT = re.compile(r"-?([0-9]+)(?:\.([0-9]+))?(?:[eE]([-+]?)([0-9]+))?")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # what a lone surrogate in the result must come from
_PREFIX = 16


class JsonRefused(ValueError):
    """Not JSON we read: not UTF-8, not JSON, NaN or Infinity, a string with a lone surrogate escape (no
    UTF-8 can hold it, so no store or log line could), or nested deeper than the limit."""


@dataclass(frozen=True, slots=True)
class OutOfBounds:
    """A number literal too long or too large to convert: only its first characters and its length are kept."""

    prefix: str
    length: int

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.length} characters)"


def nesting_within(text: str, limit: int) -> bool:
    """Whether the brackets of `text` (strings aside) never nest deeper than `limit`.

    Strings are dropped, then everything but brackets; an opener counts +1 and a closer −1, and the
    running sum is the depth json would recurse to (a sum below zero is a closer json refuses at once,
    before it can go deeper). Linear, in C loops, and without recursion."""
    skeleton = _NOT_BRACKET.sub("", _STRING.sub("", text)).encode("ascii")
    steps = memoryview(skeleton.translate(_STEPS)).cast("b")
    return max(accumulate(steps), default=0) <= limit


def _integer_reader(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def read(literal: str) -> Any:
        digits = len(literal) - literal.startswith("-")
        return convert(literal) if digits <= MAX_DIGITS else OutOfBounds(literal[:_PREFIX], len(literal))

    return read


def _number_reader(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def read(literal: str) -> Any:
        match = _FLOAT.fullmatch(literal)
        if match is None:  # the json scanner only hands over number literals
            raise JsonRefused(f"not a number: {literal[:_PREFIX]!r}")
        whole, fraction, _, exponent = match.groups()
        digits = len(whole) + len(fraction or "")
        exponent_ok = exponent is None or (len(exponent) <= 4 and int(exponent) <= MAX_EXPONENT)
        if digits <= MAX_DIGITS and exponent_ok:
            return convert(literal)
        return OutOfBounds(literal[:_PREFIX], len(literal))

    return read


def _no_constants(name: str) -> Any:
    raise JsonRefused(f"{name} is not JSON")


def loads(
    data: bytes | str, *, number: Callable[[str], Any] = Decimal, integer: Callable[[str], Any] = int,
    max_depth: int = MAX_DEPTH,
) -> Any:
    """The JSON document in `data` (UTF-8 when bytes). Integer literals go through `integer`, the others
    through `number` (Decimal by default, never float), each only within the digit and exponent bounds.
    Raises JsonRefused (a ValueError)."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as err:
        raise JsonRefused("the body is not UTF-8") from err
    if not nesting_within(text, max_depth):
        raise JsonRefused(f"not JSON, or nested deeper than {max_depth} levels")
    try:
        document = json.loads(text, parse_int=_integer_reader(integer), parse_float=_number_reader(number),
                              parse_constant=_no_constants)
    except JsonRefused:
        raise
    except ValueError as err:  # json.JSONDecodeError, and a conversion's own refusal
        raise JsonRefused(str(err)) from err
    if _SURROGATE_ESCAPE.search(text) and not _all_utf8(document):
        raise JsonRefused("a string holds a lone surrogate, which is not UTF-8")
    return document


def _all_utf8(document: Any) -> bool:
    """Every string of the document (keys included) can be written as UTF-8; walked without recursion."""
    pending = [document]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return True
