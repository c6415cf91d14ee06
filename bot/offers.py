"""What /subscribe offers: one invoice per plan (reused while it stays payable) and its signed link."""

from __future__ import annotations

from datetime import datetime, timedelta

from billing.invoices import LinkIssuer, Offer
from billing.plans import Catalogue as Plans
from settings import Settings

__all__ = ["Offer", "REUSE_MARGIN", "link_issuer", "offers_for", "reuse_margin"]

REUSE_MARGIN = timedelta(minutes=15)


def reuse_margin(settings: Settings) -> timedelta:
    """A pending invoice is handed out again until it is about to expire: the link must leave the payer
    time to pay (15 minutes, or half the lifetime of very short-lived invoices)."""
    return min(REUSE_MARGIN, timedelta(seconds=settings.invoice_ttl_seconds / 2))


def link_issuer(settings: Settings) -> LinkIssuer:
    return LinkIssuer(base_url=settings.public_base_url, key=settings.link_key,
                      link_ttl_seconds=settings.link_ttl_seconds, invoice_ttl_seconds=settings.invoice_ttl_seconds,
                      min_remaining=reuse_margin(settings))


async def offers_for(user_id: int, language: str, *, settings: Settings, plans: Plans, now: datetime) -> list[Offer]:
    """Through billing/ (the function the admin API uses to create invoices), links signed with the
    user's language so the payment page speaks it."""
    return await link_issuer(settings).offers(plans, user_id, now=now, lang=language)
