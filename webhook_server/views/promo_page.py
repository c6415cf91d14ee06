"""A promo code typed on the payment page (issue 18.3), as `/promo CODE` in the bot does it.

The amounts of an invoice are fixed when it is made, so a discount code makes a new invoice at the discounted
prices (billing.promo.discounted_invoice, which counts the use atomically) and sends the payer to its own signed
page; a gift code grants its days (billing.promo.redeem_gift). The form is the page's own, carrying the signed
link: a forged or expired one is refused as the page is, and changes nothing. A refusal goes back to the page,
which says why; the mark is outside the signed data and only picks a sentence.
"""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web
from yarl import URL

from billing.errors import UnknownPlan
from billing.invoices import get_invoice, pay_link
from billing.promo import PromoInvalid, PromoRefused, discounted_invoice, find_code, redeem_gift
from bot.texts import catalogue, page_language
from db import InvoiceKind, InvoiceStatus
from db.promo import PromoKind
from webhook_server.keys import CLOCK, LEDGER, PLANS, SETTINGS
from webhook_server.views.signed_form import LINK_FIELDS, signed_form

PROMO_PROBLEM = "promo"  # the page's query mark for a refused code
PROBLEMS = ("invalid", "unknown", "expired", "used_up", "wrong_plan", "already_used", "gift", "not_applicable")
MAX_CODE_LENGTH = 64


def promo_action(label: str) -> str:
    return f"/pay/{label}/promo"


def promo_problem(query_value: str | None) -> str | None:
    return query_value if query_value in PROBLEMS else None


async def apply_promo(request: web.Request) -> web.StreamResponse:
    form, link = await signed_form(request)
    settings, now = request.app[SETTINGS], request.app[CLOCK]()
    invoice = await get_invoice(request.match_info["label"])
    back = URL(settings.public_base_url.rstrip("/") + f"/pay/{invoice.label}").with_query(
        {name: link[name] for name in LINK_FIELDS if name in link})

    def refused(problem: str) -> web.HTTPSeeOther:
        return web.HTTPSeeOther(str(back.update_query({PROMO_PROBLEM: problem}).with_fragment("promo-error")))

    if invoice.status is not InvoiceStatus.PENDING or invoice.kind is not InvoiceKind.PLAN or invoice.promo_code:
        raise refused("not_applicable")
    code = form.get("code")
    try:
        promo = await find_code(code[:MAX_CODE_LENGTH] if isinstance(code, str) else "")
    except PromoInvalid:
        raise refused("invalid") from None
    if promo is None:
        raise refused("unknown")
    try:
        if promo.kind is PromoKind.GIFT:
            plan = await redeem_gift(promo, invoice.user_id, request.app[PLANS], request.app[LEDGER], now=now,
                                     ttl_seconds=settings.invoice_ttl_seconds)
            t = catalogue().texts(page_language(link.get("lang"), None, request.headers.get("Accept-Language")))
            return aiohttp_jinja2.render_template("promo_gifted.html", request, {
                "t": t, "message": t("promo.gifted", plan=t.plan_title(plan.title), days=promo.gift_days)})
        assert invoice.plan is not None  # a plan's invoice
        discounted = await discounted_invoice(promo.code, request.app[PLANS].get(invoice.plan), invoice.user_id,
                                              now=now, ttl_seconds=settings.invoice_ttl_seconds)
    except UnknownPlan:
        raise refused("wrong_plan") from None
    except PromoRefused as refusal:
        raise refused(refusal.reason) from None
    new_link = pay_link(discounted, base_url=settings.public_base_url, key=settings.link_key, now=now,
                        ttl_seconds=settings.link_ttl_seconds, lang=link.get("lang"))
    raise web.HTTPSeeOther(new_link.url)
