"""Strict reading of form-encoded notification bodies, shared by every provider that receives forms."""

from __future__ import annotations

from urllib.parse import parse_qsl


class RepeatedField(ValueError):
    """A field appears twice: which value the provider signed cannot be known."""


def strict_form(text: str) -> dict[str, str]:
    """Well-formed `name=value` pairs, percent-decoded as UTF-8, each field at most once.

    Raises ValueError (UnicodeDecodeError for bad encoding, RepeatedField for a repeated field).
    """
    pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), errors="strict")
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise RepeatedField(f"field {name!r} repeated")
        fields[name] = value
    return fields
