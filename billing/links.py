"""Signed payment links: /pay/{label}?exp={unix}&sig={hex HMAC-SHA256 over label and exp}."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote, urlencode

from billing.errors import BadLinkSignature, LinkExpired
from billing.signing import secrets_equal


def link_signature(key: bytes, label: str, expires_at: int, lang: str | None = None) -> str:
    """Over "label:exp", or "label:exp:lang" for a link that names its page language (exp is digits and
    lang letters, so the two forms never sign the same message)."""
    message = f"{label}:{expires_at}" if lang is None else f"{label}:{expires_at}:{lang}"
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def signed_pay_url(base_url: str, key: bytes, label: str, expires_at: int, lang: str | None = None) -> str:
    params: dict[str, str | int] = {"exp": expires_at} if lang is None else {"exp": expires_at, "lang": lang}
    query = urlencode({**params, "sig": link_signature(key, label, expires_at, lang)})
    return f"{base_url.rstrip('/')}/pay/{quote(label, safe='')}?{query}"


def check_link(
    key: bytes, label: str, exp: str | None, sig: str | None, now: int, lang: str | None = None
) -> None:
    """Raise BadLinkSignature for a missing, malformed or forged link, LinkExpired for a stale one.

    The signature is checked first (constant time), so an attacker learns nothing from the expiry.
    A `lang` given is part of the signed data: adding, removing or changing it breaks the signature.
    """
    if not exp or not sig or not (exp.isascii() and exp.isdigit()) or len(exp) > 12:
        raise BadLinkSignature(label)
    if lang is not None and not (lang.isascii() and lang.isalpha() and lang.islower() and 2 <= len(lang) <= 8):
        raise BadLinkSignature(label)
    expected = link_signature(key, label, int(exp), lang)
    if not secrets_equal(expected, sig):
        raise BadLinkSignature(label)
    if int(exp) <= now:
        raise LinkExpired(label)
