"""POST /pay/{label}/choose: the payment page's "pay once" or "pay and renew automatically" with a provider.

The choice is fixed on the invoice here, before the provider's page opens, and never read from the browser
again: a consent needs the page's signature over (label, provider, text version), so a post that changes
the provider, claims another text or was never rendered by us is refused (403) and changes nothing. Then the
payer goes on exactly as the provider's own button would take them: YooKassa's payment, the CloudPayments
widget, or (Payme) the page's card form, which is shown only under a consent for Payme.

Where that provider issues a fiscal receipt needing the buyer's e-mail or phone (YOOKASSA_RECEIPTS,
CLOUDPAYMENTS_RECEIPTS), the form carries it: checked after the link and the consent, fixed on the invoice and
remembered for the user before the provider's page opens; a refused one goes back to the page, which says why.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from yarl import URL

from billing.consent import Choice, InvoiceNotPending, check_consent, record_choice
from billing.invoices import get_invoice
from billing.receipt_contact import InvalidContact, chosen_contact, contact_needed, fix_on_invoice, saved_contact
from billing.subscriptions import get_subscription
from bot.texts import catalogue, page_language
from db import Invoice, InvoiceStatus
from db.models import RenewalConsent
from db.users import ReceiptContact, stored_language
from webhook_server.client_ip import client_ip
from webhook_server.keys import CLOCK, SETTINGS, TRUSTED_PROXIES
from webhook_server.views.cloudpayments import widget_page
from webhook_server.views.consent_terms import renew_option
from webhook_server.views.notify import enabled_provider
from webhook_server.views.pay import CONTACT_PROBLEM
from webhook_server.views.signed_form import LINK_FIELDS, signed_form
from webhook_server.views.yookassa import pay_with_yookassa

log = logging.getLogger(__name__)

PAYME_CARD = "payme-card"  # the card form's anchor on the payment page


async def _payme_card(request: web.Request) -> web.StreamResponse:
    """Back to the page, where the card form now shows (it binds the card straight at Payme)."""
    raise web.HTTPSeeOther(str((await _page(request)).with_fragment(PAYME_CARD)))


HANDOVER: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]] = {
    "yookassa": pay_with_yookassa, "cloudpayments": widget_page, "payme": _payme_card,
}


async def choose(request: web.Request) -> web.StreamResponse:
    form, link = await signed_form(request)  # the link's own signature and expiry first: 403 / 410
    provider, choice = form.get("provider"), form.get("choice")
    if not isinstance(provider, str) or provider not in HANDOVER:
        raise web.HTTPNotFound(reason="no such provider to pay with here")
    enabled_provider(request, provider)
    try:
        chosen = Choice(choice) if isinstance(choice, str) else None
    except ValueError:
        chosen = None
    if chosen is None:
        raise web.HTTPBadRequest(reason='choice must be "once" or "renew"')
    invoice = await get_invoice(request.match_info["label"])
    now = request.app[CLOCK]()
    if invoice.status is not InvoiceStatus.PENDING:
        raise web.HTTPSeeOther(str(await _page(request)))  # the payment page says it is paid
    consent = None
    if chosen is Choice.RENEW:
        version = form.get("version")
        signature = form.get("consent_sig")
        check_consent(request.app[SETTINGS].link_key, invoice.label, provider,
                      version if isinstance(version, str) else None, signature if isinstance(signature, str) else None)
        stored = None if "lang" in link else await stored_language(invoice.user_id)
        t = catalogue().texts(page_language(link.get("lang"), stored, request.headers.get("Accept-Language")))
        option = renew_option(request, invoice, provider, t, link, await get_subscription(invoice.user_id), now)
        if option is None:
            raise web.HTTPConflict(reason=f"{provider} cannot renew this invoice automatically")
        if option.version != version:
            raise web.HTTPConflict(reason="the terms on the page have changed: reload it and choose again")
        consent = RenewalConsent(
            at=now, ip=client_ip(request.remote or "", request.headers.get("X-Forwarded-For"),
                                 request.app[TRUSTED_PROXIES]),
            text_version=option.version, provider=provider, amount=option.amount.minor,
            currency=option.amount.currency, period_days=invoice.period_days)
    contact = await _receipt_contact(request, form.get("contact"), invoice, provider)
    try:
        if contact is not None:
            await fix_on_invoice(invoice, contact, now)
        await record_choice(invoice, consent, now)
    except InvoiceNotPending:
        raise web.HTTPSeeOther(str(await _page(request))) from None
    return await HANDOVER[provider](request)


async def _receipt_contact(request: web.Request, typed: object, invoice: Invoice,
                           provider: str) -> ReceiptContact | None:
    """The buyer's e-mail or phone where this provider's receipt needs one: the one typed, else the saved one. A
    refused one sends the payer back to the page, which says why; nothing is stored."""
    if not contact_needed(request.app[SETTINGS], provider):
        return None
    try:
        return chosen_contact(typed if isinstance(typed, str) else None, await saved_contact(invoice.user_id))
    except InvalidContact as refused:
        page = (await _page(request)).update_query({CONTACT_PROBLEM: refused.problem.value})
        raise web.HTTPSeeOther(str(page.with_fragment("contact-error"))) from None


async def _page(request: web.Request) -> URL:
    """The signed payment page this form came from (signed_form has checked its link fields; the form is cached)."""
    form = await request.post()
    link = {name: value for name in LINK_FIELDS if isinstance(value := form.get(name), str)}
    base = request.app[SETTINGS].public_base_url.rstrip("/")
    return URL(base + f"/pay/{request.match_info['label']}").with_query(link)
