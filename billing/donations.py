"""Donations: the bot's /donate hands out a signed link to the donation page, where the payer picks a suggested
amount or types one between DONATION_MIN and DONATION_MAX, with an optional message. The page's POST fixes that
amount on a new invoice (kind donation) and then sends the payer to the invoice's own signed payment page: from
there on every provider compares what is paid with the invoice, never with anything the browser sent."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode

from billing.errors import BillingError
from billing.invoices import new_label
from billing.links import check_link, link_signature
from billing.money import Money, minor_units
from db import Invoice, InvoiceKind

MAX_MESSAGE = 200  # characters of the payer's message: one readable line in the admin chat
CUSTOM = "custom"  # the pick of the page's own amount field
_AMOUNT = re.compile(r"\s*([0-9]{1,12})(?:[.,]([0-9]{1,2}))?\s*")
_PICK = re.compile(r"([A-Z]{3}):([0-9]{1,15})")


class DonationRefused(BillingError):
    """The page's form asks for no amount we take; `code` names the page's message for it."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True, slots=True)
class DonationLimits:
    minimum: Mapping[str, int]
    maximum: Mapping[str, int]
    suggested: Mapping[str, list[int]]

    def currencies(self, taken: set[str]) -> list[str]:
        """The currencies a donation can be made in: limits set, and a provider taking it (`taken`)."""
        return [currency for currency in self.minimum if currency in self.maximum and currency in taken]


def link_subject(user_id: int) -> str:
    """What a donation link signs: never an invoice label (those hold no colon)."""
    return f"donate:{user_id}"


def donation_url(base_url: str, key: bytes, user_id: int, *, now: datetime, ttl_seconds: int,
                 lang: str | None = None) -> str:
    expires_at = int((now + timedelta(seconds=ttl_seconds)).timestamp())
    query: dict[str, str | int] = {"user": user_id, "exp": expires_at, **({"lang": lang} if lang else {})}
    query["sig"] = link_signature(key, link_subject(user_id), expires_at, lang)
    return f"{base_url.rstrip('/')}/donate?{urlencode(query)}"


def check_donation_link(key: bytes, fields: Mapping[str, str], now: int) -> int:
    """The user id a donation link is signed for; BadLinkSignature or LinkExpired as for payment links."""
    user = fields.get("user", "")
    subject = link_subject(int(user)) if user.isascii() and user.isdigit() and len(user) <= 16 else "donate:?"
    check_link(key, subject, fields.get("exp"), fields.get("sig"), now, fields.get("lang"))
    return int(user)


def chosen_amount(limits: DonationLimits, currencies: list[str], *, pick: str, custom: str,
                  currency: str) -> Money:
    """The amount the form asks for: a suggested one ("RUB:30000", only as the settings suggest it), or the typed
    one in major units ("150", "150.50") in `currency`; within DONATION_MIN and DONATION_MAX either way."""
    if pick == CUSTOM:
        matched = _AMOUNT.fullmatch(custom)
        if currency not in currencies or matched is None:
            raise DonationRefused("amount_invalid")
        minor = minor_units(Decimal(f"{matched[1]}.{matched[2] or '0'}"), currency)
        if minor is None:
            raise DonationRefused("amount_invalid")
    else:
        picked = _PICK.fullmatch(pick)
        if picked is None or picked[1] not in currencies or int(picked[2]) not in limits.suggested.get(picked[1], []):
            raise DonationRefused("amount_invalid")
        currency, minor = picked[1], int(picked[2])
    if not limits.minimum[currency] <= minor <= limits.maximum[currency]:
        raise DonationRefused("amount_out_of_range")
    return Money(minor, currency)


def checked_message(value: str) -> str | None:
    """The payer's message, trimmed; None when empty. Longer than MAX_MESSAGE or with control characters it is
    refused rather than cut, so the admin chat reads what the payer wrote."""
    message = " ".join(value.split())
    if not message:
        return None
    if len(message) > MAX_MESSAGE or not message.isprintable():
        raise DonationRefused("message_invalid")
    return message


async def create_donation(user_id: int, amount: Money, *, description: str, message: str | None,
                          now: datetime, ttl_seconds: int) -> Invoice:
    """A donation's invoice for the amount the payer chose, fixed before any provider's page opens."""
    invoice = Invoice(
        label=new_label(), user_id=user_id, kind=InvoiceKind.DONATION, amounts={amount.currency: amount.minor},
        description=description, donor_message=message, created_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds),
    )
    await invoice.insert()
    return invoice
