"""billing/providers/stars: Stars invoices within Telegram's limits, reading updates and Star transactions
(the reference's worked examples), plans that renew monthly, and the domain side against the ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from billing.errors import PlansFileError
from billing.money import Money
from billing.plans import load_plans
from billing.providers.base import EventKind, NotificationRejected, Outcome, RefundUnsupported
from billing.providers.stars import TelegramStars
from billing.providers.stars.payments import (
    pre_checkout_refusal,
    record_payment,
    renewal_state_changed,
)
from billing.providers.stars.protocol import (
    MAX_SUBSCRIPTION_STARS,
    NAME,
    SUBSCRIPTION_PERIOD_SECONDS,
    NotSellable,
    PreCheckout,
    Refusal,
    StarsPayment,
    build_invoice,
    payment_event,
    read_payment,
    read_pre_checkout,
    read_refund,
    read_transaction,
    renewal_label,
)
from db import Invoice, InvoiceStatus, Operation, OperationStatus, Subscription
from db.stars import RenewalState, StarsCharge, StarsSubscription
from webhook_server.keys import LEDGER

# The reference's worked examples (providers/telegram.md §6).
FIRST_PAYMENT = {"currency": "XTR", "total_amount": 150, "invoice_payload": "inv_abc",
                 "telegram_payment_charge_id": "stxABC", "provider_payment_charge_id": "777_42",
                 "subscription_expiration_date": 1769817610, "is_recurring": True, "is_first_recurring": True}
PRE_CHECKOUT = {"id": "pcq_1", "from": {"id": 777, "is_bot": False, "first_name": "Ivan"}, "currency": "XTR",
                "total_amount": 150, "invoice_payload": "inv_abc"}


# ---- invoices -----------------------------------------------------------------------------------

def test_a_subscription_invoice_has_one_price_in_whole_stars_and_the_30_day_period():
    invoice = build_invoice("inv_abc", {"RUB": 29900, "XTR": 150}, title="1 month", description="Access for 30 days",
                            subscription=True)
    assert invoice.payload == "inv_abc" and invoice.amount == 150
    assert invoice.prices() == [{"label": "1 month", "amount": 150}]
    assert invoice.subscription_period == SUBSCRIPTION_PERIOD_SECONDS == 2592000


def test_a_one_time_invoice_has_no_subscription_period():
    assert build_invoice("inv_abc", {"XTR": 1500}, title="12 months", description="d",
                         subscription=False).subscription_period is None


@pytest.mark.parametrize(("amounts", "subscription"), [
    ({"RUB": 29900}, False), ({"XTR": 0}, False), ({"XTR": MAX_SUBSCRIPTION_STARS + 1}, True),
], ids=["no-xtr", "zero", "over-the-subscription-cap"])
def test_an_invoice_telegram_would_refuse_is_not_sellable(amounts, subscription):
    with pytest.raises(NotSellable):
        build_invoice("inv_abc", amounts, title="t", description="d", subscription=subscription)


def test_a_one_time_invoice_may_cost_more_than_the_subscription_cap():
    assert build_invoice("inv_abc", {"XTR": MAX_SUBSCRIPTION_STARS + 1}, title="t", description="d",
                         subscription=False).amount == MAX_SUBSCRIPTION_STARS + 1


def test_title_and_description_are_clipped_to_telegrams_limits_and_the_payload_is_checked():
    invoice = build_invoice("inv_abc", {"XTR": 1}, title="x" * 40, description="y " * 200, subscription=False)
    assert len(invoice.title) == 32 and invoice.title.endswith("…")
    assert len(invoice.description) <= 255
    with pytest.raises(NotSellable):
        build_invoice("i" * 129, {"XTR": 1}, title="t", description="d", subscription=False)


# ---- reading updates ----------------------------------------------------------------------------

def test_the_first_subscription_payment_of_the_reference_reads_as_a_first_recurring_charge():
    payment = read_payment(FIRST_PAYMENT, payer_id=777, date=1767225610)
    assert payment.charge_id == "stxABC" and payment.payload == "inv_abc" and payment.money == Money(150, "XTR")
    assert payment.expires_at == datetime.fromtimestamp(1767225610 + 2592000, UTC)
    assert payment.recurring and payment.first_recurring and not payment.renewal
    assert payment.provider_charge_id == "777_42" and payment.paid_at == datetime.fromtimestamp(1767225610, UTC)


def test_a_renewal_is_recurring_and_not_first():
    fields = {**FIRST_PAYMENT, "telegram_payment_charge_id": "stxDEF"}
    del fields["is_first_recurring"]
    assert read_payment(fields, payer_id=777, date=1769817610).renewal


def test_the_event_is_keyed_on_the_charge_id_never_the_payload():
    payment = read_payment(FIRST_PAYMENT, payer_id=777, date=1767225610)
    event = payment_event(payment, "inv_abc")
    assert (event.provider, event.operation_id, event.label) == (NAME, "stxABC", "inv_abc")
    assert event.amount == Money(150, "XTR") and event.kind is EventKind.PAYMENT


@pytest.mark.parametrize("change", [
    {"currency": "RUB"}, {"total_amount": 0}, {"total_amount": True}, {"total_amount": "150"},
    {"telegram_payment_charge_id": ""}, {"invoice_payload": None},
], ids=["not-stars", "zero", "bool", "string-amount", "no-charge-id", "no-payload"])
def test_a_payment_that_is_not_a_well_formed_stars_payment_is_rejected(change):
    with pytest.raises(NotificationRejected):
        read_payment({**FIRST_PAYMENT, **change}, payer_id=777, date=1767225610)


def test_the_pre_checkout_of_the_reference_reads_with_its_payer():
    query = read_pre_checkout(PRE_CHECKOUT, payer_id=777)
    assert (query.query_id, query.payer_id, query.payload, query.money) == ("pcq_1", 777, "inv_abc", Money(150, "XTR"))


def test_a_refunded_payment_and_star_transactions_read():
    refund = read_refund({"currency": "XTR", "total_amount": 150, "invoice_payload": "inv_abc",
                          "telegram_payment_charge_id": "stxABC"})
    assert (refund.charge_id, refund.amount) == ("stxABC", 150)
    incoming = read_transaction({"id": "stxABC", "amount": 150, "date": 1767225610, "source": {
        "type": "user", "transaction_type": "invoice_payment", "user": {"id": 777, "is_bot": False, "first_name": "I"},
        "invoice_payload": "inv_abc", "subscription_period": 2592000}})
    assert incoming.incoming and incoming.invoice_payment and incoming.user_id == 777
    assert (incoming.payload, incoming.subscription_period) == ("inv_abc", 2592000)
    outgoing = read_transaction({"id": "stxABC", "amount": 150, "date": 1767225700, "receiver": {
        "type": "user", "transaction_type": "invoice_payment",
        "user": {"id": 777, "is_bot": False, "first_name": "I"}}})
    assert not outgoing.incoming and outgoing.invoice_payment
    withdrawal = read_transaction({"id": "w1", "amount": 500, "date": 1767225800, "receiver": {"type": "fragment"}})
    assert not withdrawal.invoice_payment


def test_a_renewals_invoice_label_is_fixed_by_its_charge_and_shaped_like_every_label():
    label = renewal_label("stxDEF")
    assert label == renewal_label("stxDEF") != renewal_label("stxGHI")
    assert label.startswith("inv_") and len(label) == 28


# ---- plans --------------------------------------------------------------------------------------

def plans_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "plans.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_a_plan_may_renew_monthly_in_stars(tmp_path):
    body = ("[plans.m]\nperiod_days = 30\nprices = { XTR = 250 }\nrenews_monthly = true\n"
            "[plans.y]\nperiod_days = 365\nprices = { XTR = 1 }\n")
    plans = load_plans(plans_file(tmp_path, body))
    assert plans.get("m").renews_monthly and not plans.get("y").renews_monthly


@pytest.mark.parametrize("body", ["period_days = 31\nprices = { XTR = 1 }\nrenews_monthly = true\n",
                                  "period_days = 30\nprices = { XTR = 1 }\nrenews_monthly = 'yes'\n"],
                         ids=["not-30-days", "not-a-bool"])
def test_renews_monthly_needs_a_bool_and_30_days(tmp_path, body):
    with pytest.raises(PlansFileError, match="renews_monthly"):
        load_plans(plans_file(tmp_path, "[plans.m]\n" + body))


# ---- against the ledger -------------------------------------------------------------------------

async def invoice(clock, *, label: str = "inv_abc", user_id: int = 777, xtr: int = 150,
                  status: InvoiceStatus = InvoiceStatus.PENDING, ttl: timedelta = timedelta(days=1)) -> Invoice:
    made = Invoice(label=label, user_id=user_id, plan="month", amounts={"RUB": 29900, "XTR": xtr}, period_days=30,
                   status=status, created_at=clock.now, expires_at=clock.now + ttl)
    await made.insert()
    return made


def query(**change) -> PreCheckout:
    return PreCheckout(**{"query_id": "pcq_1", "payer_id": 777, "currency": "XTR", "amount": 150,
                          "payload": "inv_abc", **change})


async def test_pre_checkout_says_ok_only_for_a_pending_invoice_at_its_price_for_its_user(client, clock):
    await invoice(clock)
    assert await pre_checkout_refusal(query(), now=clock.now, selling=True) is None
    assert await pre_checkout_refusal(query(payload="inv_none"), now=clock.now, selling=True) is Refusal.NOT_FOUND
    assert await pre_checkout_refusal(query(amount=149), now=clock.now, selling=True) is Refusal.AMOUNT_CHANGED
    assert await pre_checkout_refusal(query(amount=151), now=clock.now, selling=True) is Refusal.AMOUNT_CHANGED
    assert await pre_checkout_refusal(query(currency="RUB"), now=clock.now, selling=True) is Refusal.AMOUNT_CHANGED
    assert await pre_checkout_refusal(query(payer_id=778), now=clock.now, selling=True) is Refusal.OTHER_USER
    assert await pre_checkout_refusal(query(), now=clock.now, selling=False) is Refusal.NOT_SELLING
    later = clock.now + timedelta(days=1)
    assert await pre_checkout_refusal(query(), now=later, selling=True) is Refusal.EXPIRED


async def test_pre_checkout_refuses_a_paid_invoice_but_lets_its_subscription_renew(client, clock):
    await invoice(clock, status=InvoiceStatus.PAID)
    assert await pre_checkout_refusal(query(), now=clock.now, selling=True) is Refusal.ALREADY_PAID
    await StarsSubscription(label="inv_abc", user_id=777, plan="month", amount=150, first_charge_id="stxA",
                            last_charge_id="stxA", expires_at=clock.now + timedelta(days=30),
                            updated_at=clock.now).insert()
    assert await pre_checkout_refusal(query(), now=clock.now, selling=True) is Refusal.ALREADY_PAID, "not due"
    due = clock.now + timedelta(days=29, hours=12)
    assert await pre_checkout_refusal(query(), now=due, selling=True) is None
    assert await pre_checkout_refusal(query(payer_id=778), now=due, selling=True) is Refusal.ALREADY_PAID
    assert await pre_checkout_refusal(query(amount=1), now=due, selling=True) is Refusal.ALREADY_PAID
    await StarsSubscription.get_motor_collection().update_one({"label": "inv_abc"}, {"$set": {"state": "canceled"}})
    assert await pre_checkout_refusal(query(), now=due, selling=True) is Refusal.ALREADY_PAID, "renewal off"


def payment(charge_id: str, *, first: bool | None = True, amount: int = 150, at: datetime) -> StarsPayment:
    return StarsPayment(charge_id=charge_id, payer_id=777, payload="inv_abc", amount=amount, paid_at=at,
                        expires_at=at + timedelta(days=30), recurring=first is not None, first_recurring=bool(first))


async def test_a_first_charge_and_a_renewal_are_two_operations_each_paying_its_own_invoice(client, clock, worker):
    await invoice(clock)
    ledger = client.app[LEDGER]
    first = await record_payment(ledger, payment("stxA", at=clock.now), now=clock.now, ttl_seconds=86400)
    assert first.outcome is Outcome.ACCEPTED and first.label == "inv_abc"
    renewal = await record_payment(ledger, payment("stxB", first=False, at=clock.now + timedelta(days=30)),
                                   now=clock.now, ttl_seconds=86400)
    assert renewal.outcome is Outcome.ACCEPTED and renewal.label == renewal_label("stxB")
    await worker.drain()

    operations = {op.operation_id: op for op in await Operation.find_all().to_list()}
    assert {key: op.status for key, op in operations.items()} == {"stxA": OperationStatus.APPLIED,
                                                                 "stxB": OperationStatus.APPLIED}
    renewal_invoice = await Invoice.find_one(Invoice.label == renewal.label)
    assert (renewal_invoice.user_id, renewal_invoice.amounts, renewal_invoice.status) == (
        777, {"XTR": 150}, InvoiceStatus.PAID)
    assert (await Subscription.find_one(Subscription.user_id == 777)).current_period_end == clock.now + timedelta(60)
    tracked = await StarsSubscription.find_one(StarsSubscription.label == "inv_abc")
    assert (tracked.first_charge_id, tracked.last_charge_id) == ("stxA", "stxB")
    assert tracked.expires_at == clock.now + timedelta(days=60)
    assert await StarsCharge.find_all().count() == 2


async def test_recording_a_charge_again_changes_nothing(client, clock, worker):
    await invoice(clock)
    ledger = client.app[LEDGER]
    for _ in range(3):
        await record_payment(ledger, payment("stxA", at=clock.now), now=clock.now, ttl_seconds=86400)
        await record_payment(ledger, payment("stxB", first=False, at=clock.now), now=clock.now, ttl_seconds=86400)
        await worker.drain()
    assert await Operation.find_all().count() == 2 and await Invoice.find_all().count() == 2
    assert (await Subscription.find_one(Subscription.user_id == 777)).current_period_end == clock.now + timedelta(60)


async def test_a_renewal_at_another_price_is_kept_for_review_and_extends_nothing(client, clock, worker):
    await invoice(clock)
    ledger = client.app[LEDGER]
    await record_payment(ledger, payment("stxA", at=clock.now), now=clock.now, ttl_seconds=86400)
    cheaper = await record_payment(ledger, payment("stxB", first=False, amount=100, at=clock.now), now=clock.now,
                                   ttl_seconds=86400)
    await worker.drain()
    assert cheaper.outcome is Outcome.WRONG_AMOUNT
    assert (await Operation.find_one(Operation.operation_id == "stxB")).status is OperationStatus.REJECTED
    assert (await Subscription.find_one(Subscription.user_id == 777)).current_period_end == clock.now + timedelta(30)


async def test_a_renewal_of_an_unknown_invoice_is_kept_for_review(client, clock):
    recorded = await record_payment(client.app[LEDGER], payment("stxB", first=False, at=clock.now), now=clock.now,
                                    ttl_seconds=86400)
    assert recorded.outcome is Outcome.UNKNOWN_LABEL and recorded.subscription is None


async def test_telegrams_renewal_states_are_recorded_once(client, clock):
    await StarsSubscription(label="inv_abc", user_id=777, plan="month", amount=150, first_charge_id="stxA",
                            last_charge_id="stxA", updated_at=clock.now).insert()
    changed = await renewal_state_changed("inv_abc", 777, "failed", now=clock.now)
    assert changed is not None and changed.state is RenewalState.FAILED
    assert await renewal_state_changed("inv_abc", 777, "failed", now=clock.now) is None
    assert await renewal_state_changed("inv_abc", 778, "canceled", now=clock.now) is None, "not that user's"
    assert await renewal_state_changed("inv_abc", 777, "paused", now=clock.now) is None, "unknown state"


async def test_the_provider_refunds_only_stars_and_has_no_page_form():
    provider = TelegramStars(api=None)  # type: ignore[arg-type]
    assert provider.page_form(label="inv_abc", amounts={"XTR": 150}, title="t", success_url="http://x") is None
    with pytest.raises(RefundUnsupported):
        await provider.refund(operation_id="1", amount=Money(29900, "RUB"), label="inv_abc")


def test_stars_are_sold_with_stars_enabled_and_the_bot_token_only():
    from tests.conftest import make_settings

    token = "123456:ABC"
    assert "telegram_stars" not in make_settings(bot_token=token).enabled_providers
    assert "telegram_stars" in make_settings(bot_token=token, stars_enabled=True).enabled_providers
    assert "telegram_stars" not in make_settings(stars_enabled=True).enabled_providers
    production = make_settings(stars_enabled=True, environment="production", link_secret="k")
    assert any(warning.startswith("STARS_ENABLED") for warning in production.validate_for_run())
    assert not any(w.startswith("telegram_stars") for w in make_settings(bot_token=token, stars_enabled=True)
                   .validate_for_run())
