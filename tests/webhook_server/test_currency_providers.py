"""A currency belongs to the providers that settle in it (issue 24, part 2), through real HTTP to our app, the
providers' emulators as real local servers signing with their own code, the real Redis and a real RQ worker.

The month plan is priced RUB 29900, UZS 3500000 and XTR 250: a provider that settles in roubles must never take
35000.00 UZS (the UZS price) or 2.50 XTR (250 hundredths, read as the 250-Star price) for it, and the UZS
providers never a rouble amount. Amounts are compared in the currency's own minor unit.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from billing.money import Money
from billing.providers.cloudpayments.protocol import Kind
from billing.providers.stars.payments import Refusal, pre_checkout_refusal
from billing.providers.stars.protocol import PreCheckout
from db import Invoice, InvoiceStatus, OperationStatus, Subscription
from tests.cloudpayments_support import CP_PUBLIC_ID, CP_SECRET, cp, cp_server, pay_fields, post  # noqa: F401
from tests.conftest import YOOMONEY_API_TOKEN, make_settings
from tests.consent_support import consent_on
from tests.helpers import new_invoice, notification, operations, post_notification, resign
from tests.payme_support import PAYME_CHECKOUT, PAYME_KEY, PAYME_MERCHANT, error_code, payme  # noqa: F401
from tests.webhook_server.test_notify_click import CLICK, SECRET as CLICK_SECRET
from tests.yookassa_support import (  # noqa: F401
    paid_payment,
    post_notification as post_yookassa,
    yookassa,
    yookassa_emulator,
    yookassa_settings,
)
from webhook_server.emulators.click import Attempt, ClickCaller
from webhook_server.emulators.cloudpayments_wire import JSON

MONTH = {"RUB": 29900, "UZS": 3500000, "XTR": 250}
FOREIGN_TO_ROUBLE_SHOPS = [("UZS", "35000.00"), ("XTR", "2.50"), ("XTR", "250"), ("USD", "299.00")]


@pytest.fixture
def settings(yoomoney_emulator, cp_server, yookassa_emulator):  # every provider enabled
    _, yoomoney_url = yoomoney_emulator
    _, cp_url = cp_server
    _, yookassa_url = yookassa_emulator
    return make_settings(
        yoomoney_api_token=YOOMONEY_API_TOKEN, yoomoney_api_url=yoomoney_url,
        cloudpayments_public_id=CP_PUBLIC_ID, cloudpayments_api_secret=CP_SECRET, cloudpayments_api_url=cp_url,
        cloudpayments_widget_url=cp_url + "/widget.js", cloudpayments_test_mode=True,
        payme_merchant_id=PAYME_MERCHANT, payme_key=PAYME_KEY, payme_checkout_url=PAYME_CHECKOUT,
        **yookassa_settings(yookassa_url + "/v3"), **CLICK,
    )


async def month_invoice(client, user_id: int) -> dict[str, Any]:
    invoice = await new_invoice(client, user_id=user_id)
    assert invoice["amounts"] == MONTH, "the plan these cases are written for"
    return invoice


async def still_payable(label: str, user_id: int) -> bool:
    invoice = await Invoice.find_one(Invoice.label == label)
    assert invoice is not None
    return (invoice.status is InvoiceStatus.PENDING and invoice.claimed_by is None
            and await Subscription.find_one(Subscription.user_id == user_id) is None)


def cp_fields(label: str, user_id: int, currency: str, amount: str, **options: Any) -> dict[str, str]:
    """A CloudPayments transaction whose Amount and Currency the payer's browser chose (the widget's options)."""
    fields = pay_fields(label, user_id, **options)
    fields.update({"Amount": amount, "Currency": currency, "PaymentAmount": amount, "PaymentCurrency": currency})
    return fields


# ---- CloudPayments: the shop's currency (RUB), the one the widget is opened with -------------------------


@pytest.mark.parametrize(("currency", "amount"), [*FOREIGN_TO_ROUBLE_SHOPS, ("RUB", "35000.00"), ("RUB", "2.50")])
async def test_cloudpayments_check_refuses_any_pair_but_the_invoices_roubles(client, cp, currency, amount):
    invoice = await month_invoice(client, 5)
    fields = cp_fields(invoice["label"], 5, currency, amount, pay=False)
    assert await post(client, Kind.CHECK, fields) == (200, {"code": 12})
    assert await post(client, Kind.CHECK, cp_fields(invoice["label"], 5, "RUB", "299.00", pay=False)) == (
        200, {"code": 0}), "the invoice's own pair still passes"
    assert await operations() == []


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", JSON])
@pytest.mark.parametrize(("currency", "amount"), FOREIGN_TO_ROUBLE_SHOPS)
async def test_cloudpayments_pay_in_a_foreign_currency_is_kept_for_review_and_pays_nothing(
        client, worker, cp, notifier, currency, amount, content_type):
    invoice = await month_invoice(client, 6)
    fields = cp_fields(invoice["label"], 6, currency, amount)
    assert await post(client, Kind.PAY, fields, content_type=content_type) == (200, {"code": 0}), \
        "the money is taken: CloudPayments must stop delivering"
    await worker.drain()
    [row] = await operations()
    assert (row.status, row.reason) == (OperationStatus.REJECTED, "wrong_currency")
    assert currency in row.currency and row.currency != currency
    assert await still_payable(invoice["label"], 6) and notifier.notices == []


async def test_cloudpayments_renewal_of_its_own_subscription_in_another_currency_is_refused(client, worker, cp):
    invoice = await month_invoice(client, 7)
    await consent_on(invoice["label"], "cloudpayments")  # the payer chose "pay and renew": CloudPayments renews it
    first = pay_fields(invoice["label"], 7, subscription_id="sc_currency")
    assert await post(client, Kind.PAY, first) == (200, {"code": 0})
    await worker.drain()
    renewal = cp_fields("", 7, "UZS", "35000.00", subscription_id="sc_currency", pay=False)
    assert await post(client, Kind.CHECK, renewal) == (200, {"code": 12})
    rouble_renewal = cp_fields("", 7, "RUB", "299.00", subscription_id="sc_currency", pay=False)
    assert await post(client, Kind.CHECK, rouble_renewal) == (200, {"code": 0})


# ---- YooMoney: RUB only (currency 643) --------------------------------------------------------------------


@pytest.mark.parametrize(("code", "paid_minor"), [("UZS", 3500000), ("XTR", 250), ("860", 3500000), ("840", 29900)])
async def test_yoomoney_signed_notification_in_another_currency_is_kept_for_review(client, worker, notifier, code,
                                                                                  paid_minor):
    """reference 3.3: currency ≠ 643 → not paid, stored and flagged, answered 200."""
    invoice = await month_invoice(client, 8)
    fields = resign({**notification(invoice["label"], paid_minor=paid_minor), "currency": code})
    assert await post_notification(client, fields) == 200
    await worker.drain()
    [row] = await operations()
    assert (row.status, row.reason) == (OperationStatus.REJECTED, "wrong_currency")
    assert await still_payable(invoice["label"], 8) and notifier.notices == []


async def test_yoomoney_signed_currency_is_kept_for_review_even_for_an_operation_the_wallet_has(
        client, worker, yoomoney_emulator, notifier):
    """The hash vouches for `currency`: a signed UZS notification is not turned into roubles by the wallet API."""
    emulator, _ = yoomoney_emulator
    invoice = await month_invoice(client, 15)
    emulator.drop_notifications = True
    operation = await emulator.pay(invoice["label"], 3500000)
    calls = len(emulator.api_calls)
    assert await post_notification(client, resign({**operation.notification(), "currency": "UZS"})) == 200
    await worker.drain()
    [row] = await operations()
    assert (row.status, row.reason) == (OperationStatus.REJECTED, "wrong_currency")
    assert await still_payable(invoice["label"], 15) and notifier.notices == []
    assert len(emulator.api_calls) == calls


async def test_yoomoney_unsigned_notification_in_another_currency_pays_only_as_the_wallet_has_it(
        client, worker, yoomoney_emulator):
    """Unsigned, its currency is a hint like every other field: the wallet API's record (roubles) is what pays."""
    emulator, _ = yoomoney_emulator
    invoice = await month_invoice(client, 9)
    emulator.drop_notifications = True
    operation = await emulator.pay(invoice["label"], 29900)
    forged_currency = {**operation.notification(), "currency": "UZS", "withdraw_amount": "35000.00"}
    assert await post_notification(client, forged_currency) == 200
    await worker.drain()
    [row] = await operations()
    assert (row.status, row.currency, row.amount) == (OperationStatus.APPLIED, "RUB", 29901)


# ---- YooKassa: the payments we create are in roubles --------------------------------------------------------


@pytest.mark.parametrize(("currency", "minor"), [("UZS", 3500000), ("XTR", 250)])
async def test_yookassa_payment_in_another_currency_pays_nothing(client, worker, yookassa, notifier, currency,
                                                                 minor):
    invoice = await month_invoice(client, 10)
    payment_id = paid_payment(yookassa, invoice["label"], minor, currency=currency)
    assert await post_yookassa(client, yookassa.notification("payment.succeeded", payment_id)) == 200
    await worker.drain()
    [row] = await operations()
    assert (row.status, row.reason) == (OperationStatus.REJECTED, "wrong_currency")
    assert await still_payable(invoice["label"], 10) and notifier.notices == []


# ---- Payme and Click: UZS only (their protocols carry no currency: every amount is tiyin or sum) -------------


@pytest.mark.parametrize("amount", [29900, 250, 3500000 + 1])
async def test_payme_takes_only_the_uzs_price(client, payme, amount):
    invoice = await month_invoice(client, 11)
    assert error_code(await payme.check(client.session, invoice["label"], amount)) == -31001
    assert error_code(await payme.check(client.session, invoice["label"], 3500000)) is None


async def test_payme_refuses_an_invoice_without_a_uzs_price(client, payme, clock):
    await Invoice(label="inv_rub_only", user_id=12, plan="month", amounts={"RUB": 29900, "XTR": 250}, period_days=30,
                  created_at=clock.now, expires_at=clock.now + timedelta(days=1)).insert()
    for amount in (29900, 250):  # -31053: "the order cannot be paid in UZS", an account error (-31050..-31099)
        assert error_code(await payme.check(client.session, "inv_rub_only", amount)) == -31053


@pytest.mark.parametrize("amount", ["299.00", "2.50", "250"])
async def test_click_takes_only_the_uzs_price(client, amount):
    invoice = await month_invoice(client, 13)
    caller = ClickCaller(client.session, str(client.make_url("/notify/click")), CLICK["click_service_id"],
                         CLICK_SECRET)
    assert (await caller.prepare(Attempt(invoice["label"], amount))).error == -2
    assert (await caller.prepare(Attempt(invoice["label"], "35000.00"))).error == 0
    assert await operations() == []


# ---- Telegram Stars: XTR only --------------------------------------------------------------------------------


async def test_stars_pre_checkout_in_roubles_is_refused_even_at_the_rouble_price(client, clock):
    invoice = await month_invoice(client, 14)

    def query(currency: str, amount: int) -> PreCheckout:
        return PreCheckout(query_id="pcq_1", payer_id=14, currency=currency, amount=amount, payload=invoice["label"])

    assert await pre_checkout_refusal(query("RUB", 29900), now=clock.now, selling=True) is Refusal.AMOUNT_CHANGED
    assert await pre_checkout_refusal(query("UZS", 3500000), now=clock.now, selling=True) is Refusal.AMOUNT_CHANGED
    assert await pre_checkout_refusal(query("XTR", 250), now=clock.now, selling=True) is None
    assert query("RUB", 29900).money != Money(29900, "RUB")
