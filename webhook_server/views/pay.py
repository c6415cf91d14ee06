"""GET /pay/{label}: the payment page behind a signed link."""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from billing.invoices import get_invoice
from billing.links import check_link
from billing.money import Money
from db import InvoiceStatus
from webhook_server.keys import CLOCK, PLANS, PROVIDERS, SETTINGS


async def pay_page(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    label = request.match_info["label"]
    now = request.app[CLOCK]()
    check_link(settings.link_key, label, request.query.get("exp"), request.query.get("sig"), int(now.timestamp()))
    invoice = await get_invoice(label)
    title = request.app[PLANS].title(invoice.plan)
    forms = []
    if invoice.status is InvoiceStatus.PENDING:
        success_url = str(request.url.with_scheme(_public_scheme(settings.public_base_url)))
        for provider in request.app[PROVIDERS]:
            form = provider.page_form(label=label, amounts=invoice.amounts, title=title, success_url=success_url)
            if form is not None:
                forms.append(form)
    context = {
        "invoice": invoice,
        "title": title,
        "prices": [str(Money(minor, currency)) for currency, minor in invoice.amounts.items()],
        "paid": invoice.status is InvoiceStatus.PAID,
        "forms": forms,
    }
    response = aiohttp_jinja2.render_template("pay.html", request, context)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _public_scheme(public_base_url: str) -> str:
    return "https" if public_base_url.startswith("https:") else "http"
