"""YooKassa's routes: POST /notify/yookassa, and POST /pay/{label}/yookassa (the page's button), which
creates the payment through the API and sends the payer to YooKassa's confirmation page."""

from __future__ import annotations

import logging

import aiohttp_jinja2
from aiohttp import web
from yarl import URL

from billing.errors import ProviderUnavailable
from billing.fiscal_ru import ReceiptContactMissing
from billing.invoices import get_invoice
from billing.money import Money
from billing.orders import item_title
from billing.providers.base import ProviderRejected
from billing.providers.yookassa import NAME, YooKassa
from billing.providers.yookassa.protocol import CURRENCY
from bot.texts import catalogue, page_language
from db import InvoiceStatus
from webhook_server.keys import CLOCK, LEDGER, PLANS, QUEUES, SETTINGS
from webhook_server.metrics import NOTIFY_OUTCOME
from webhook_server.views.notify import enabled_provider, read_raw, to_response
from webhook_server.views.signed_form import signed_form

log = logging.getLogger(__name__)

RETURNED = "returned"  # the pay page's mark for a payer back from the provider (views/pay.py)


async def notify_yookassa(request: web.Request) -> web.Response:
    provider: YooKassa = enabled_provider(request, NAME)
    raw = await read_raw(request)  # 413 past the body limit; `remote` believes X-Forwarded-For only from our proxies
    answer, outcome = await provider.handle(raw, ledger=request.app[LEDGER], reversals=request.app[QUEUES],
                                            now=request.app[CLOCK]())
    request[NOTIFY_OUTCOME] = outcome
    return to_response(answer)


async def pay_with_yookassa(request: web.Request) -> web.Response:
    """The page's button: check the link exactly as the page does, then open (or reuse) the payment; an
    invoice another payment has claimed gets the "already paid" page and nothing is created."""
    provider: YooKassa = enabled_provider(request, NAME)
    settings = request.app[SETTINGS]
    label = request.match_info["label"]
    now = request.app[CLOCK]()
    _, link = await signed_form(request)
    invoice = await get_invoice(label)
    page = URL(settings.public_base_url.rstrip("/") + f"/pay/{label}").with_query(link)
    back = str(page.update_query({RETURNED: "1"}))
    if invoice.status is not InvoiceStatus.PENDING:
        raise web.HTTPSeeOther(str(page))
    if CURRENCY not in invoice.amounts:
        raise web.HTTPNotFound(reason=f"this invoice has no {CURRENCY} price")
    title = item_title(invoice, request.app[PLANS])
    t = catalogue().texts(page_language(link.get("lang"), None, request.headers.get("Accept-Language")))
    try:
        checkout = await provider.start_payment(
            label=label, amount=Money(invoice.amounts[CURRENCY], CURRENCY), return_url=back,
            description=f"{title}, invoice {label}", now=now, ledger=request.app[LEDGER])
    except ReceiptContactMissing as err:  # receipts on: the page asks for the contact before this button
        log.warning("yookassa payment for %s not opened: %s", label, err)
        context = {"t": t, "status": 409, "action": request.path, "fields": link, "invoice": invoice,
                   "contact_needed": True}
        return aiohttp_jinja2.render_template("yookassa.html", request, context, status=409)
    except (ProviderUnavailable, ProviderRejected) as err:
        status = 503 if isinstance(err, ProviderUnavailable) else 502
        log.error("yookassa payment for %s not opened (%s): %s", label, status, err)
        context = {"t": t, "status": status, "action": request.path, "fields": link, "invoice": invoice}
        return aiohttp_jinja2.render_template("yookassa.html", request, context, status=status)
    if checkout.already_paid:
        log.info("yookassa button for %s refused: another payment has the invoice", label)
        return aiohttp_jinja2.render_template("yookassa_paid.html", request, {"t": t, "invoice": invoice},
                                              status=409)
    raise web.HTTPSeeOther(checkout.url or back)
