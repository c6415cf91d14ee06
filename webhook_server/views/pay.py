"""GET /pay/{label}: the payment page behind a signed link."""

from __future__ import annotations

from dataclasses import dataclass, replace

import aiohttp_jinja2
from aiohttp import web
from yarl import URL

from billing.consent import Choice
from billing.invoices import get_invoice
from billing.links import check_link
from billing.orders import item_title
from billing.providers import PROVIDER_NAMES
from billing.providers.base import PageForm
from billing.receipt_contact import ContactProblem, contact_needed, mask, saved_contact
from billing.subscriptions import get_subscription
from bot.texts import Texts, catalogue, page_language
from db import Invoice, InvoiceKind, InvoiceStatus
from db.users import stored_language
from webhook_server.keys import CLOCK, PLANS, PROVIDERS, SETTINGS
from webhook_server.views.consent_terms import RenewOption, choice_action, renew_option, renewing_providers
from webhook_server.views.payme import card_form
from webhook_server.views.promo_page import PROMO_PROBLEM, promo_action, promo_problem
from webhook_server.views.signed_form import signed_query

RETURNED = "returned"
ROUTED_THROUGH_CHOICE = frozenset({"yookassa", "cloudpayments"})  # buttons that post to our own sub-pages
BOT_ONLY_CURRENCIES = frozenset({"XTR"})  # Telegram Stars are paid inside the bot, never on this page


def web_prices(amounts: dict[str, int]) -> dict[str, int]:
    """The prices a web page shows: every currency but those paid only inside the bot."""
    return {currency: minor for currency, minor in amounts.items() if currency not in BOT_ONLY_CURRENCIES}


LANG = "lang"
CONTACT_PROBLEM = "contact"  # the choice route's mark for a contact it refused (views/consent.py)


@dataclass(frozen=True, slots=True)
class ContactField:
    """The receipt's e-mail-or-phone field on the forms of the providers whose receipts need it."""

    providers: frozenset[str]
    saved: str | None  # the user's saved contact, masked: used when the field is left empty
    problem: str | None  # why the last post's contact was refused (a ContactProblem value)


async def contact_field(request: web.Request, invoice: Invoice, providers: set[str]) -> ContactField:
    """The field for those of `providers` that issue a receipt needing the buyer's contact. The refusal mark is
    outside the signed data, as `returned` is: a forged one only shows a sentence."""
    settings = request.app[SETTINGS]
    needing = frozenset(name for name in providers if contact_needed(settings, name))
    saved = await saved_contact(invoice.user_id) if needing else None
    problem = request.query.get(CONTACT_PROBLEM)
    return ContactField(providers=needing, saved=mask(saved) if saved else None,
                        problem=problem if problem in set(ContactProblem) and needing else None)


async def signed_invoice(request: web.Request) -> tuple[Invoice, Texts]:
    """The invoice of a signed link under /pay/{label} (BadLinkSignature, LinkExpired or InvoiceNotFound
    otherwise, which the middleware shows as a page), and the texts in the page's language."""
    settings = request.app[SETTINGS]
    label = request.match_info["label"]
    now = request.app[CLOCK]()
    signed_lang = request.query.get(LANG)
    check_link(settings.link_key, label, request.query.get("exp"), request.query.get("sig"), int(now.timestamp()),
               signed_lang)
    invoice = await get_invoice(label)
    stored = None if signed_lang else await stored_language(invoice.user_id)
    return invoice, catalogue().texts(page_language(signed_lang, stored, request.headers.get("Accept-Language")))


async def pay_page(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    label = request.match_info["label"]
    invoice, t = await signed_invoice(request)
    title = t.plan_title(item_title(invoice, request.app[PLANS]))
    forms: list[PageForm] = []
    renew: list[RenewOption] = []
    if invoice.status is InvoiceStatus.PENDING:
        success_url = _return_url(settings.public_base_url, request)
        for provider in request.app[PROVIDERS]:
            form = provider.page_form(label=label, amounts=invoice.amounts, title=title, success_url=success_url)
            if form is not None:
                forms.append(_once(form, label))
        subscription = await get_subscription(invoice.user_id)
        now = request.app[CLOCK]()
        for name in renewing_providers(request, invoice):
            option = renew_option(request, invoice, name, t, signed_query(request), subscription, now)
            if option is not None:
                renew.append(option)
    consent = invoice.auto_renew_consent
    contact = await contact_field(request, invoice, {form.provider for form in forms} | {o.provider for o in renew})
    context = {
        "provider_names": PROVIDER_NAMES,
        "invoice": invoice,
        "title": title,
        "prices": t.prices(web_prices(invoice.amounts)),
        "t": t,
        "paid": invoice.status is InvoiceStatus.PAID,
        "returned": request.query.get(RETURNED) == "1",
        "forms": forms,
        "renew": renew,
        "choice_action": choice_action(label),
        "contact": contact,
        "promo": {"action": promo_action(label), "fields": signed_query(request),
                  "problem": promo_problem(request.query.get(PROMO_PROBLEM)),
                  "offered": invoice.kind is InvoiceKind.PLAN and not invoice.promo_code and bool(forms or renew)},
        # Payme's card binding (views/payme.py), shown once the payer chose to renew with Payme
        "payme_card": card_form(request, invoice, t) if renew and consent and consent.provider == "payme" else None,
        "renewal_url": str(URL(f"/pay/{label}/renewal").with_query(signed_query(request))),
    }
    response = aiohttp_jinja2.render_template("pay.html", request, context)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _once(form: PageForm, label: str) -> PageForm:
    """A provider button that posts to one of our sub-pages goes through the choice route as "pay once", so a
    consent given earlier on this invoice is withdrawn before that provider's page opens."""
    if form.provider not in ROUTED_THROUGH_CHOICE:
        return form
    return replace(form, action=choice_action(label),
                   fields={**form.fields, "provider": form.provider, "choice": Choice.ONCE.value})


def _return_url(public_base_url: str, request: web.Request) -> str:
    """Where the provider sends the payer back: this same signed page, marked as a return.

    The mark is outside the signed data on purpose: it only switches the page to "confirming",
    which a forged mark cannot turn into anything else.
    """
    signed = {"exp": request.query["exp"], **({LANG: request.query[LANG]} if LANG in request.query else {})}
    query = {**signed, "sig": request.query["sig"], RETURNED: "1"}
    return str(URL(public_base_url.rstrip("/") + request.path).with_query(query))
