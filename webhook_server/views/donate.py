"""GET /donate: the donation page behind the bot's signed link; POST /donate: the payer's choice, fixed on a new
invoice (billing/donations.py) before the payer goes on to that invoice's own signed payment page."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from billing.donations import (
    CUSTOM,
    MAX_MESSAGE,
    DonationLimits,
    DonationRefused,
    check_donation_link,
    checked_message,
    chosen_amount,
    create_donation,
)
from billing.invoices import pay_link
from billing.money import Money
from bot.texts import Texts, catalogue, page_language
from db.users import stored_language
from webhook_server.keys import CLOCK, PROVIDERS, SETTINGS
from webhook_server.views.signed_form import LINK_FIELDS, read_form

log = logging.getLogger(__name__)
DONATION_FIELDS = ("user", *LINK_FIELDS)


def donation_limits(request: web.Request) -> DonationLimits:
    settings = request.app[SETTINGS]
    return DonationLimits(settings.donation_min, settings.donation_max, settings.donation_suggested)


def _currencies(request: web.Request, limits: DonationLimits) -> list[str]:
    """Those of DONATION_MIN that some enabled provider shows a button for on the payment page."""
    base = request.app[SETTINGS].public_base_url
    taken = {currency for currency in limits.minimum for provider in request.app[PROVIDERS]
             if provider.page_form(label="donation", amounts={currency: limits.minimum[currency]}, title="",
                                   success_url=base) is not None}
    return limits.currencies(taken)


async def _texts(request: web.Request, lang: str | None, user_id: int) -> Texts:
    stored = None if lang else await stored_language(user_id)
    return catalogue().texts(page_language(lang, stored, request.headers.get("Accept-Language")))


def _render(request: web.Request, t: Texts, link: dict[str, str], *, error: str | None = None,
            status: int = 200, form: dict[str, str] | None = None) -> web.Response:
    limits = donation_limits(request)
    currencies = _currencies(request, limits)
    context: dict[str, Any] = {
        "t": t, "link": link, "error": error, "form": form or {}, "custom": CUSTOM, "max_message": MAX_MESSAGE,
        "currencies": currencies,
        "suggested": [(f"{currency}:{minor}", t.money(Money(minor, currency)))
                      for currency in currencies for minor in limits.suggested.get(currency, [])],
        "ranges": [t("page.donate.range", low=t.money(Money(limits.minimum[currency], currency)),
                     high=t.money(Money(limits.maximum[currency], currency))) for currency in currencies],
    }
    response = aiohttp_jinja2.render_template("donate.html", request, context, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


async def donate_page(request: web.Request) -> web.Response:
    link = {name: request.query[name] for name in DONATION_FIELDS if name in request.query}
    user_id = check_donation_link(request.app[SETTINGS].link_key, link, int(request.app[CLOCK]().timestamp()))
    return _render(request, await _texts(request, link.get("lang"), user_id), link)


async def donate(request: web.Request) -> web.StreamResponse:
    """The payer's pick: a new donation invoice for exactly that amount, then 303 to its payment page. A wrong
    amount or message shows the form again (400) with what was typed, and makes nothing."""
    form = await read_form(request)
    fields = {name: value for name, value in form.items() if isinstance(value, str)}
    link = {name: fields[name] for name in DONATION_FIELDS if name in fields}
    settings = request.app[SETTINGS]
    now = request.app[CLOCK]()
    user_id = check_donation_link(settings.link_key, link, int(now.timestamp()))
    t = await _texts(request, link.get("lang"), user_id)
    limits = donation_limits(request)
    try:
        amount = chosen_amount(limits, _currencies(request, limits), pick=fields.get("pick", ""),
                               custom=fields.get("amount", ""), currency=fields.get("currency", ""))
        message = checked_message(fields.get("message", ""))
    except DonationRefused as err:
        return _render(request, t, link, error=t(f"page.donate.{err.code}"), status=400, form=fields)
    invoice = await create_donation(user_id, amount, description=t("page.donate.item"), message=message, now=now,
                                    ttl_seconds=settings.invoice_ttl_seconds)
    log.info("donation invoice %s: %s from user %s", invoice.label, amount, user_id)
    url = pay_link(invoice, base_url=settings.public_base_url, key=settings.link_key, now=now,
                   ttl_seconds=settings.link_ttl_seconds, lang=t.language).url
    raise web.HTTPSeeOther(url)
