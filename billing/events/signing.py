"""The `Ymds-Signature` header: HMAC-SHA256 over "{timestamp}.{body}" keyed by EVENTS_SECRET, hex, as Stripe's
`Stripe-Signature` is built (t=<unix seconds>,v1=<hex>); the timestamp lets a receiver refuse an old replay."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "Ymds-Signature"
EVENT_ID_HEADER = "Ymds-Event-Id"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def event_id(type_: str, cause: str) -> str:
    """The same cause (e.g. "yookassa:2c5e…" for a payment) always names the same event: a rerun records it once."""
    return "evt_" + hashlib.sha256(f"{type_}\x00{cause}".encode()).hexdigest()[:32]
