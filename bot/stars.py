"""Telegram Stars in the bot: the Stars buttons /subscribe shows beside each plan's link, the Stars invoices
behind them, the command menu entries, and the queue a handler enqueues a reversal on.

Plans with an XTR price are offered in Stars when STARS_ENABLED: a plan with `renews_monthly` as a
subscription link (createInvoiceLink with subscription_period, made once per invoice and kept), any
other as a button that sends a one-time invoice (sendInvoice). Every one pays the same invoice as
the plan's link: its label is the Stars payload.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from aiogram import Bot
from aiogram.types import InlineKeyboardButton
from pymongo.errors import DuplicateKeyError

from billing.errors import ProviderUnavailable
from billing.plans import Catalogue as Plans
from billing.providers.base import ProviderRejected
from billing.providers.stars.protocol import NAME, NotSellable, StarsApi, StarsInvoice, build_invoice, stars_price
from bot.offers import Offer
from bot.stars_api import BotStarsApi
from bot.stars_keyboards import monthly_button, once_button
from bot.texts import Texts
from db import Invoice
from db.stars import StarsLink
from rq_access import RqQueues, connect
from settings import Settings

log = logging.getLogger(__name__)
STARS_MENU = ("renewal", "paysupport")


def stars_menu(settings: Settings) -> tuple[str, ...]:
    """The commands the menu lists for Stars, when they are sold."""
    return STARS_MENU if settings.provider_enabled(NAME) else ()


def stars_invoice(invoice: Invoice, t: Texts, plans: Plans, *, subscription: bool) -> StarsInvoice:
    """In the buyer's language; NotSellable when the invoice has no (acceptable) Stars price."""
    title = t.plan_title(plans.title(invoice.plan))
    key = "stars.invoice.description.monthly" if subscription else "stars.invoice.description"
    return build_invoice(invoice.label, invoice.amounts, title=title, subscription=subscription,
                         description=t(key, title=title, days=invoice.period_days))


async def stars_buttons(bot: Bot, offers: list[Offer], t: Texts, *, settings: Settings, plans: Plans,
                        now: datetime) -> dict[str, InlineKeyboardButton]:
    """The Stars button of each offer whose invoice has an XTR price, by plan name. A plan Telegram will not
    take now is left out (logged): the other ways to pay stay."""
    if not settings.provider_enabled(NAME):
        return {}
    api = BotStarsApi(bot)
    buttons: dict[str, InlineKeyboardButton] = {}
    for offer in offers:
        invoice = offer.link.invoice
        stars = stars_price(invoice.amounts)
        if stars is None:
            continue
        if not offer.plan.renews_monthly:
            buttons[offer.plan.name] = once_button(t, stars, invoice.label)
            continue
        try:
            url = await subscription_link(api, stars_invoice(invoice, t, plans, subscription=True), now=now)
        except (NotSellable, ProviderRejected, ProviderUnavailable) as err:
            log.warning("no Stars subscription link for plan %s: %s", offer.plan.name, err)
            continue
        buttons[offer.plan.name] = monthly_button(t, stars, url)
    return buttons


async def subscription_link(api: StarsApi, invoice: StarsInvoice, *, now: datetime) -> str:
    """The invoice's subscription link: made once with createInvoiceLink, then the stored one."""
    stored = await StarsLink.find_one(StarsLink.label == invoice.payload)
    if stored is not None:
        return stored.url
    url = await api.create_invoice_link(invoice)
    try:
        await StarsLink(label=invoice.payload, url=url, created_at=now).insert()
    except DuplicateKeyError:  # a concurrent /subscribe stored one first: hand out the same
        stored = await StarsLink.find_one(StarsLink.label == invoice.payload)
        return stored.url if stored is not None else url
    return url


@asynccontextmanager
async def reversal_queue(settings: Settings) -> AsyncIterator[RqQueues]:
    """The queue a bot handler enqueues a reversal on (refunds are rare: a connection for the one call)."""
    queues = RqQueues(connect(settings.redis_url), max_retries=settings.job_max_retries,
                      retry_intervals=settings.job_retry_intervals)
    try:
        yield queues
    finally:
        queues.connection.close()
