"""CloudPayments' routes: the widget page behind the signed link, and POST /notify/cloudpayments/{kind}."""

from __future__ import annotations

import logging

import aiohttp_jinja2
from aiohttp import web
from yarl import URL

from billing.fiscal_ru import ReceiptContactMissing
from billing.invoices import get_invoice
from billing.orders import item_title
from billing.providers.cloudpayments import NAME, Kind
from bot.texts import catalogue, page_language
from db import InvoiceStatus
from db.users import stored_language
from webhook_server.keys import CLOCK, LEDGER, PLANS, QUEUES, SETTINGS
from webhook_server.metrics import NOTIFY_OUTCOME
from webhook_server.security_headers import WIDGET_PAGE, serves_page
from webhook_server.views.notify import enabled_provider, read_raw, to_response
from webhook_server.views.pay import LANG, RETURNED, web_prices
from webhook_server.views.signed_form import signed_form

log = logging.getLogger(__name__)


async def notify_cloudpayments(request: web.Request) -> web.Response:
    provider = enabled_provider(request, NAME)
    try:
        kind = Kind(request.match_info["kind"])
    except ValueError:
        raise web.HTTPNotFound(reason="no such CloudPayments notification") from None
    raw = await read_raw(request)  # 413 past the body limit, before anything is parsed
    answer, outcome = await provider.handle(kind, raw, ledger=request.app[LEDGER], reversals=request.app[QUEUES],
                                            now=request.app[CLOCK]())
    request[NOTIFY_OUTCOME] = outcome
    return to_response(answer)


async def widget_page(request: web.Request) -> web.StreamResponse:
    """POST /pay/{label}/cloudpayments from the payment page's button: the link is checked exactly as the
    payment page checks it, then the page opens the CloudPayments widget (and the opening is noted, for
    the reconciliation)."""
    provider = enabled_provider(request, NAME)
    settings = request.app[SETTINGS]
    label = request.match_info["label"]
    _, signed = await signed_form(request)
    invoice = await get_invoice(label)
    page_url = URL(settings.public_base_url.rstrip("/") + f"/pay/{label}").with_query(signed)
    if invoice.status is not InvoiceStatus.PENDING:
        raise web.HTTPSeeOther(str(page_url))  # the payment page says it is paid
    stored = None if LANG in signed else await stored_language(invoice.user_id)
    t = catalogue().texts(page_language(signed.get(LANG), stored, request.headers.get("Accept-Language")))
    title = t.plan_title(item_title(invoice, request.app[PLANS]))
    try:
        widget = await provider.open_widget(invoice=invoice, description=title, language=t.language,
                                            return_url=str(page_url.update_query({RETURNED: "1"})),
                                            now=request.app[CLOCK]())
    except ReceiptContactMissing as err:  # receipts on: the payment page asks for the contact first
        log.warning("cloudpayments widget for %s not opened: %s", label, err)
        return aiohttp_jinja2.render_template("receipt_contact_needed.html", request,
                                              {"t": t, "invoice": invoice, "back": str(page_url)}, status=409)
    if widget is None:
        raise web.HTTPSeeOther(str(page_url))
    context = {"invoice": invoice, "title": title, "prices": t.prices(web_prices(invoice.amounts)), "t": t,
               "widget": widget}
    response = aiohttp_jinja2.render_template("cloudpayments.html", request, context)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return serves_page(request, response, WIDGET_PAGE)
