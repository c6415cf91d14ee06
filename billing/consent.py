"""Consent to merchant-initiated charges (Federal Law 376-FZ and the providers' terms).

Nothing is charged without the payer: a saved method is kept for renewals only when the paid invoice carries
the payer's explicit "pay and renew automatically", which our server fixed on the invoice (`record_choice`)
before the provider's page opened. The payment page signs each consent form over (label, provider, text
version), so a post that changes the provider or claims another text is refused; the browser is never asked
again later. Fulfilment (`keep_consented_method`) saves the method and turns auto-renewal on only under that
consent, for the provider it names; any token a provider returns anyway is not kept. Subscriptions saved
before consent existed are not charged: `stop_unconsented` turns their auto-renewal off (the saved method is
then removed as after any cancellation), and the reminder before their end offers the choice again.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import datetime, timedelta
from enum import StrEnum

from billing.errors import BadLinkSignature, BillingError
from billing.signing import secrets_equal
from db import Invoice, InvoiceStatus, Operation, Subscription
from db.models import RenewalConsent

log = logging.getLogger(__name__)

MAX_VERSION_LENGTH = 64


class Choice(StrEnum):
    ONCE = "once"  # pay this invoice, save nothing for later charges
    RENEW = "renew"  # pay and renew automatically: the method is saved and charged when the period ends


class InvoiceNotPending(BillingError):
    """The invoice is paid (or refunded): its choice can no longer change."""


class NothingToRenew(InvoiceNotPending):
    """An order or a donation is paid once: no consent to renew is ever taken for it (billing/orders.py)."""


def text_version(language: str, *templates: str) -> str:
    """The version of the consent text a payer read: its language and a digest of the unformatted templates,
    so a changed sentence is a new version without anyone remembering to bump a number."""
    digest = hashlib.sha256("\x00".join(templates).encode()).hexdigest()[:16]
    return f"{language}-{digest}"


def consent_signature(key: bytes, label: str, provider: str, version: str) -> str:
    """Signs a consent form the page rendered: this invoice, this provider, this text."""
    message = f"consent:{label}:{provider}:{version}"
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def check_consent(key: bytes, label: str, provider: str, version: str | None, signature: str | None) -> str:
    """The version a posted consent form names, once its signature holds; BadLinkSignature otherwise."""
    if not version or not signature or len(version) > MAX_VERSION_LENGTH or not version.isascii():
        raise BadLinkSignature(label)
    if not secrets_equal(consent_signature(key, label, provider, version), signature):
        raise BadLinkSignature(label)
    return version


def next_charge(invoice: Invoice, current_end: datetime | None, now: datetime) -> datetime:
    """When the first automatic charge would fall if the invoice were paid now: the end of the period it adds
    (a period paid now extends from max(now, the current end), as billing.subscriptions.extend does)."""
    if invoice.period_days is None:
        raise NothingToRenew(invoice.label)
    start = max(now, current_end) if current_end is not None else now
    return start + timedelta(days=invoice.period_days)


async def record_choice(invoice: Invoice, consent: RenewalConsent | None, now: datetime) -> None:
    """Fix the payer's choice on a pending invoice: the consent, or none (pay once). The last choice made before
    the payment counts; a paid invoice keeps the one it was paid under (InvoiceNotPending)."""
    if consent is not None and invoice.plan is None:
        raise NothingToRenew(invoice.label)
    value = consent.model_dump() if consent is not None else None
    result = await Invoice.get_motor_collection().update_one(
        {"_id": invoice.id, "status": InvoiceStatus.PENDING.value}, {"$set": {"auto_renew_consent": value}})
    if result.matched_count != 1:
        raise InvoiceNotPending(invoice.label)
    invoice.auto_renew_consent = consent
    log.info("invoice %s: %s%s", invoice.label, "pay and renew with " if consent else "pay once",
             consent.provider if consent else "")


async def keep_consented_method(invoice: Invoice, operation: Operation) -> bool:
    """Fulfilment's step: save the method the payment brought and turn auto-renewal on, only when the invoice
    carries consent for this provider and the provider saved a method. Without it nothing is changed: the
    subscription keeps what it had (a pay-once payment neither saves a method nor removes a consented one).
    Idempotent: a rerun sets the same values."""
    consent = invoice.auto_renew_consent
    if consent is None or consent.provider != operation.provider or not operation.payment_token:
        if operation.payment_token:
            log.info("%s brought a saved method without consent for it: not kept", operation.key)
        return False
    await Subscription.get_motor_collection().update_one(
        {"user_id": invoice.user_id},
        {"$set": {"payment_method": operation.payment_method, "payment_provider": operation.provider,
                  "payment_token": operation.payment_token, "auto_renew": True,
                  "renewal_consent": consent.model_dump()}},
    )
    return True


def unconsented() -> dict[str, object]:
    """Subscriptions that would be charged automatically without a recorded consent (saved before 376-FZ)."""
    return {"auto_renew": True, "renewal_consent": None}


async def stop_unconsented(now: datetime, limit: int) -> int:
    """Turn auto-renewal off where no consent was recorded; the scheduler then removes their saved methods
    as after any cancellation, and reminds them before the end, where the page offers the choice."""
    count = 0
    async for subscription in Subscription.find(unconsented()).limit(limit):
        result = await Subscription.get_motor_collection().update_one(
            {"_id": subscription.id, **unconsented()}, {"$set": {"auto_renew": False, "updated_at": now}})
        if result.modified_count == 1:
            count += 1
            log.warning("user %s: auto-renewal was on without a recorded consent; turned off, not charged",
                        subscription.user_id)
    return count
