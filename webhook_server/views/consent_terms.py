"""The payment page's "pay and renew automatically": which providers may offer it for an invoice, and the terms
each shows (price, period, next charge date, how to cancel), in a version the consent form is signed over."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from billing.consent import Choice, consent_signature, next_charge, text_version
from billing.money import Money
from billing.providers import PROVIDER_NAMES
from bot.texts import Texts
from db import Invoice, Subscription
from webhook_server.keys import PROVIDERS, SETTINGS

TERMS_KEYS = ("page.choice.renew.title", "page.choice.renew.terms", "page.choice.renew.button")
CHOICE_ROUTE = "/pay/{label}/choose"


@dataclass(frozen=True, slots=True)
class RenewOption:
    provider: str
    amount: Money  # what each automatic charge takes, in the currency this provider charges saved methods in
    terms: str  # the sentence the payer agrees to, as shown
    version: str  # the text's version, stored with the consent
    button: str
    fields: dict[str, str]  # the signed consent form: link fields, provider, choice, version, consent_sig


def renewing_providers(request: web.Request, invoice: Invoice) -> list[str]:
    """Providers that can save a method for charges and charge it for this invoice: YooKassa when the shop may
    save methods (YOOKASSA_SAVE_PAYMENT_METHOD is the shop's permission, the payer decides), CloudPayments,
    and Payme when its Subscribe API binds cards for this invoice (views/payme.py)."""
    settings = request.app[SETTINGS]
    names: list[str] = []
    if invoice.plan is None:  # an order or a donation is paid once (billing/orders.py)
        return names
    for name in ("yookassa", "cloudpayments", "payme"):
        provider = request.app[PROVIDERS].get(name)
        currency = getattr(provider, "charge_currency", None)
        if provider is None or currency not in invoice.amounts:
            continue
        if name == "yookassa" and not settings.yookassa_save_payment_method:
            continue
        if name == "payme" and provider.card_binding(invoice.amounts) is None:
            continue
        names.append(name)
    return names


def renew_option(request: web.Request, invoice: Invoice, provider: str, t: Texts, link: dict[str, str],
                 subscription: Subscription | None, now: datetime) -> RenewOption | None:
    """The terms and the signed form of "pay and renew" with `provider`; None where it cannot renew the invoice."""
    if provider not in renewing_providers(request, invoice):
        return None
    currency = request.app[PROVIDERS].get(provider).charge_currency
    amount = Money(invoice.amounts[currency], currency)
    name = PROVIDER_NAMES.get(provider, provider)
    current_end = subscription.current_period_end if subscription is not None else None
    terms = t("page.choice.renew.terms", price=t.money(amount), days=invoice.period_days, provider=name,
              next=t.moment(next_charge(invoice, current_end, now)))
    version = text_version(t.language, *(t(key) for key in TERMS_KEYS))
    key = request.app[SETTINGS].link_key
    fields = {**link, "provider": provider, "choice": Choice.RENEW.value, "version": version,
              "consent_sig": consent_signature(key, invoice.label, provider, version)}
    return RenewOption(provider=provider, amount=amount, terms=terms, version=version,
                       button=t("page.choice.renew.button", provider=name), fields=fields)


def choice_action(label: str) -> str:
    return CHOICE_ROUTE.format(label=label)
