"""The buyer's contact for fiscal receipts (54-FZ: the receipt goes to an e-mail or a phone): read, checked,
masked for display, kept on the invoice before the provider's page opens and remembered for the next payment.

Personal data: it is shown only masked (`mask`) and never logged, not even masked (a log line names the invoice
or the user, and that a contact was set). Which providers ask for it: YooKassa and CloudPayments with their
*_RECEIPTS on; Payme's `detail` and Click's ofd_data carry no buyer contact (their receipts reach the payer in
the provider's own app), so the page does not ask for one there.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from enum import StrEnum

from billing.consent import InvoiceNotPending
from billing.errors import BillingError
from db import Invoice, InvoiceStatus
from db.users import BotUser, ReceiptContact, find_user
from settings import Settings

log = logging.getLogger(__name__)

CONTACT_PROVIDERS = ("yookassa", "cloudpayments")  # the receipt-issuing providers that need the buyer's contact
MAX_EMAIL_LENGTH = 254  # RFC 5321's path limit; YooKassa takes up to 256
MAX_LOCAL_PART = 64
EMAIL = re.compile(r"[^@\s\"(),:;<>\[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*"
                   r"[A-Za-z0-9])?)*\.[A-Za-z]{2,63}")
PHONE_SEPARATORS = re.compile(r"[\s()\-.]")
RUSSIAN_PHONE = re.compile(r"7[0-9]{10}")
UZBEK_PHONE = re.compile(r"998[0-9]{9}")
RUSSIAN_TRUNK = "8"  # 8 900 ... is how Russians write +7 900 ... at home


class ContactProblem(StrEnum):
    """Why a contact was refused (the texts' keys say it to the user)."""

    EMAIL = "email"  # has an @ but is not an address
    PHONE = "phone"  # not +7 and 10 digits, nor +998 and 9 digits
    MISSING = "missing"  # nothing given and nothing saved


class InvalidContact(BillingError):
    def __init__(self, problem: ContactProblem) -> None:
        super().__init__(f"receipt contact refused: {problem.value}")  # never the value itself
        self.problem = problem


def parse_contact(text: str) -> ReceiptContact:
    """An e-mail address (syntax checked, the domain lower-cased) or a phone written as E.164 digits: Russian
    +7XXXXXXXXXX (8XXXXXXXXXX taken as +7) or Uzbek +998XXXXXXXXX, spaces, dashes, dots and brackets allowed."""
    value = text.strip()
    if "@" in value:
        local, _, domain = value.rpartition("@")
        if len(value) > MAX_EMAIL_LENGTH or len(local) > MAX_LOCAL_PART or not EMAIL.fullmatch(value):
            raise InvalidContact(ContactProblem.EMAIL)
        return ReceiptContact(email=f"{local}@{domain.lower()}")
    digits = PHONE_SEPARATORS.sub("", value).removeprefix("+")
    if len(digits) == 11 and digits.startswith(RUSSIAN_TRUNK) and not value.lstrip().startswith("+"):
        digits = "7" + digits[1:]
    if not (RUSSIAN_PHONE.fullmatch(digits) or UZBEK_PHONE.fullmatch(digits)):
        raise InvalidContact(ContactProblem.PHONE)
    return ReceiptContact(phone=digits)


def mask(contact: ReceiptContact) -> str:
    """i***@example.com; +7 *** *** 45 67; +998 ** *** 45 67: enough for its owner to recognise it."""
    if contact.email:
        local, _, domain = contact.email.rpartition("@")
        return f"{local[:1]}***@{domain}"
    phone = contact.phone or ""
    if phone.startswith("998"):
        return f"+998 ** *** {phone[-4:-2]} {phone[-2:]}"
    return f"+{phone[:1]} *** *** {phone[-4:-2]} {phone[-2:]}"


def contact_needed(settings: Settings, provider: str) -> bool:
    """Does paying with `provider` issue a receipt that needs the buyer's contact?"""
    return provider in CONTACT_PROVIDERS and bool(getattr(settings, f"{provider}_receipts"))


async def saved_contact(user_id: int) -> ReceiptContact | None:
    user = await find_user(user_id)
    return user.receipt_contact if user else None


async def remember_contact(user_id: int, contact: ReceiptContact, now: datetime) -> None:
    """Keep it for the next payment (the page prefills it, /email shows it), creating the user if the bot has not
    seen them yet (an invoice made through the admin API)."""
    await BotUser.get_motor_collection().update_one(
        {"user_id": user_id},
        {"$setOnInsert": {"user_id": user_id, "language": None, "language_chosen": False, "created_at": now},
         "$set": {"receipt_contact": contact.model_dump(), "updated_at": now}},
        upsert=True,
    )
    log.info("user %s: receipt contact saved", user_id)


class ContactNotFixed(InvoiceNotPending):
    """The invoice is no longer pending: the receipt of its payment keeps the contact it was paid with."""


async def fix_on_invoice(invoice: Invoice, contact: ReceiptContact, now: datetime) -> None:
    """Fix where this payment's receipt goes, on the pending invoice, and remember it for the user."""
    result = await Invoice.get_motor_collection().update_one(
        {"_id": invoice.id, "status": InvoiceStatus.PENDING.value},
        {"$set": {"receipt_contact": contact.model_dump()}})
    if result.matched_count != 1:
        raise ContactNotFixed(invoice.label)
    invoice.receipt_contact = contact
    log.info("invoice %s: receipt contact set", invoice.label)
    await remember_contact(invoice.user_id, contact, now)


def chosen_contact(typed: str | None, saved: ReceiptContact | None) -> ReceiptContact:
    """What the payer typed (checked), or the saved contact when they left the field empty."""
    if typed and typed.strip():
        return parse_contact(typed)
    if saved is None:
        raise InvalidContact(ContactProblem.MISSING)
    return saved
