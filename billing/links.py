"""Signed payment links: /pay/{label}?exp={unix}&sig={hex HMAC-SHA256 over label and exp}."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote, urlencode

from billing.errors import BadLinkSignature, LinkExpired
from billing.signing import secrets_equal


def link_signature(key: bytes, label: str, expires_at: int) -> str:
    return hmac.new(key, f"{label}:{expires_at}".encode(), hashlib.sha256).hexdigest()


def signed_pay_url(base_url: str, key: bytes, label: str, expires_at: int) -> str:
    query = urlencode({"exp": expires_at, "sig": link_signature(key, label, expires_at)})
    return f"{base_url.rstrip('/')}/pay/{quote(label, safe='')}?{query}"


def check_link(key: bytes, label: str, exp: str | None, sig: str | None, now: int) -> None:
    """Raise BadLinkSignature for a missing, malformed or forged link, LinkExpired for a stale one.

    The signature is checked first (constant time), so an attacker learns nothing from the expiry.
    """
    if not exp or not sig or not (exp.isascii() and exp.isdigit()) or len(exp) > 12:
        raise BadLinkSignature(label)
    expected = link_signature(key, label, int(exp))
    if not secrets_equal(expected, sig):
        raise BadLinkSignature(label)
    if int(exp) <= now:
        raise LinkExpired(label)
