"""Payme's routes: POST /notify/payme (the Merchant API, JSON-RPC) and POST /pay/{label}/payme/card (the
payment page's card binding: the browser bound the card at Payme and posts only its token here).

Any HTTP method reaches the Merchant API handler, which answers a non-POST with Payme's own −32300
error; the body limit of read_raw still turns an oversized body into 413 before anything is parsed.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from yarl import URL

from billing.errors import ProviderUnavailable
from billing.invoices import get_invoice
from billing.money import Money
from billing.orders import item_title
from billing.providers.payme import NAME, Payme
from billing.providers.payme.binding import BindingOutcome, pay_with_card
from billing.providers.payme.protocol import CURRENCY
from billing.providers.payme.subscribe import PaymeSubscribeError
from bot.texts import Texts, catalogue, page_language
from db import Invoice
from webhook_server.keys import CLOCK, LEDGER, PLANS, PROVIDERS, QUEUES, SETTINGS
from webhook_server.views.notify import enabled_provider, read_raw, to_response
from webhook_server.views.signed_form import signed_form, signed_query

log = logging.getLogger(__name__)

LANG = "lang"
RETURNED = "returned"  # the pay page's mark for a payer back from paying (views/pay.py, which imports this module)
MAX_TOKEN_LENGTH = 1024  # Payme's tokens are a few hundred characters
DECLINED_STATUS = 402
PENDING_STATUS = 202
BUSY_STATUS = 409
NO_CONSENT_STATUS = 409
REFUSED_STATUS = 502
UNAVAILABLE_STATUS = 503
SCRIPT_TEXTS = ("code_sent", "failed", "network")  # the card form's messages its script shows


async def notify_payme(request: web.Request) -> web.Response:
    provider: Payme = enabled_provider(request, NAME)
    raw = await read_raw(request)
    answer = await provider.handle(
        raw, http_method=request.method, ledger=request.app[LEDGER], reversals=request.app[QUEUES],
        clock=request.app[CLOCK], plans=request.app[PLANS],
    )
    return to_response(answer)


def card_form(request: web.Request, invoice: Invoice, t: Texts) -> dict[str, Any] | None:
    """The payment page's "pay by card and renew automatically" for a pending invoice with a UZS price,
    behind the link the page itself was opened with; None when Payme or its Subscribe API is off. The page
    shows it only once the payer chose to renew with Payme (views/consent.py), and the POST it makes charges
    only under that consent (billing/providers/payme/binding.py)."""
    provider = request.app[PROVIDERS].get(NAME)
    binding = provider.card_binding(invoice.amounts) if provider is not None else None
    if binding is None:
        return None
    base = request.app[SETTINGS].public_base_url.rstrip("/")
    return {
        "action": f"{base}/pay/{invoice.label}/payme/card",
        "fields": signed_query(request),
        "price": t.money(Money(invoice.amounts[CURRENCY], CURRENCY)),
        "config": {"apiUrl": binding.api_url, "merchantId": binding.merchant_id, "language": t.language,
                   "texts": {name: t(f"page.payme_card.{name}") for name in SCRIPT_TEXTS}},
    }


async def pay_with_saved_card(request: web.Request) -> web.StreamResponse:
    """POST /pay/{label}/payme/card: the link is checked exactly as the payment page checks it; then the
    card is checked and charged once for the invoice, and the payment recorded with the card's token."""
    provider: Payme = enabled_provider(request, NAME)
    settings = request.app[SETTINGS]
    label = request.match_info["label"]
    form, link = await signed_form(request)
    invoice = await get_invoice(label)
    page = URL(settings.public_base_url.rstrip("/") + f"/pay/{label}").with_query(link)
    token = form.get("token")
    if not isinstance(token, str) or not token.isascii() or not token.isprintable() or not (
        0 < len(token) <= MAX_TOKEN_LENGTH
    ):
        raise web.HTTPBadRequest(reason="the card token is missing or malformed")
    if provider.card_binding(invoice.amounts) is None:
        raise web.HTTPNotFound(reason=f"no card payment for this invoice (no {CURRENCY} price or no Subscribe API)")
    title = item_title(invoice, request.app[PLANS])
    t = catalogue().texts(page_language(link.get(LANG), None, request.headers.get("Accept-Language")))
    try:
        result = await pay_with_card(provider, request.app[LEDGER], invoice, token=token,
                                     description=f"{title}, invoice {label}", now=request.app[CLOCK]())
    except PaymeSubscribeError as err:  # our credentials or request are wrong: nothing was charged
        log.error("payme card payment for %s refused by Payme: %s", label, err.code)
        return _answer(request, t, invoice, page, REFUSED_STATUS, t("page.payme_card.refused"))
    except ProviderUnavailable as err:  # outcome unknown: a new press finds the receipt and finishes it
        log.error("payme card payment for %s: Payme did not answer: %s", label, err)
        return _answer(request, t, invoice, page, UNAVAILABLE_STATUS, t("page.payme_card.unavailable"))
    if result.outcome is BindingOutcome.PAID:
        raise web.HTTPSeeOther(str(page.update_query({RETURNED: "1"})))
    if result.outcome is BindingOutcome.ALREADY_PAID:
        raise web.HTTPSeeOther(str(page))  # the payment page says it is paid
    if result.outcome is BindingOutcome.DECLINED:
        log.info("payme card payment for %s declined (%s)", label, "hard" if result.hard else "soft")
        hint = t("page.payme_card.declined.hard" if result.hard else "page.payme_card.declined.soft")
        return _answer(request, t, invoice, page, DECLINED_STATUS, hint, result.reason)
    if result.outcome is BindingOutcome.NO_CONSENT:
        return _answer(request, t, invoice, page, NO_CONSENT_STATUS, t("page.payme_card.no_consent"))
    if result.outcome is BindingOutcome.BUSY:
        return _answer(request, t, invoice, page, BUSY_STATUS, t("page.payme_card.busy"))
    return _answer(request, t, invoice, page, PENDING_STATUS, t("page.payme_card.pending"))


def _answer(request: web.Request, t: Texts, invoice: Invoice, page: URL, status: int, hint: str,
            reason: str = "") -> web.Response:
    context = {"t": t, "invoice": invoice, "status": status, "hint": hint, "reason": reason, "page_url": str(page)}
    response = aiohttp_jinja2.render_template("payme_card.html", request, context, status=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
