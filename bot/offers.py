"""What /subscribe offers: one invoice per plan (reused while it stays payable) and its signed link."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from billing.invoices import PayLink, invoice_for, pay_link
from billing.plans import Catalogue as Plans, Plan
from settings import Settings


@dataclass(frozen=True, slots=True)
class Offer:
    plan: Plan
    link: PayLink


REUSE_MARGIN = timedelta(minutes=15)


def reuse_margin(settings: Settings) -> timedelta:
    """A pending invoice is handed out again until it is about to expire: the link must leave the payer
    time to pay (15 minutes, or half the lifetime of very short-lived invoices)."""
    return min(REUSE_MARGIN, timedelta(seconds=settings.invoice_ttl_seconds / 2))


async def offers_for(user_id: int, language: str, *, settings: Settings, plans: Plans, now: datetime) -> list[Offer]:
    """Through billing/ (the function the admin API uses to create invoices), links signed with the
    user's language so the payment page speaks it."""
    offers = []
    for plan in plans:
        invoice = await invoice_for(plan, user_id, now=now, ttl_seconds=settings.invoice_ttl_seconds,
                                    min_remaining=reuse_margin(settings))
        link = pay_link(invoice, base_url=settings.public_base_url, key=settings.link_key, now=now,
                        ttl_seconds=settings.link_ttl_seconds, lang=language)
        offers.append(Offer(plan, link))
    return offers
