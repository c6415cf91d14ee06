"""Admin commands: only ADMIN_IDS get /stats, /invoice and /grant; everyone else a polite refusal."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from billing.admin_access import redeem_login_token
from db import Invoice, Operation, OperationStatus, Subscription
from tests.bot.conftest import ADMIN_CHAT_ID, ADMIN_ID, USER_ID, last_text, message_update, send
from tests.helpers import new_invoice, notification, operations, post_notification

REFUSAL = "Sorry, this command is only for the administrators of this service."


@pytest.mark.parametrize("command", ["/stats", "/invoice inv_x", f"/grant {USER_ID} month", "/dashboard"])
async def test_a_non_admin_gets_a_polite_refusal_and_nothing_happens(dispatcher, bot, fake, command):
    await send(dispatcher, bot, command, user_id=USER_ID)

    assert last_text(fake) == REFUSAL
    assert await Invoice.find_all().count() == 0 and await Operation.find_all().count() == 0


async def test_the_refusal_is_in_the_users_language(dispatcher, bot, fake):
    await send(dispatcher, bot, "/stats", language_code="uz")
    assert last_text(fake) == "Kechirasiz, bu buyruq faqat xizmat administratorlari uchun."


async def test_stats_counts_todays_and_this_months_payments_per_provider_and_currency(
    dispatcher, bot, fake, client, worker, clock
):
    clock.now = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
    for user_id in (1, 2):
        invoice = await new_invoice(client, user_id=user_id)
        await post_notification(client, notification(invoice["label"]))
    await worker.drain()

    await send(dispatcher, bot, "/stats", user_id=ADMIN_ID)
    assert last_text(fake, ADMIN_ID) == (
        "Payments today (15 March 2026, 00:00 UTC):\n• yoomoney: 598\xa0RUB (count: 2)\n"
        "Payments this month (1 March 2026, 00:00 UTC):\n• yoomoney: 598\xa0RUB (count: 2)\n"
        "Donations this month (1 March 2026, 00:00 UTC):\n• none\n"
        "Active subscriptions: 2")

    clock.now = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)
    await send(dispatcher, bot, "/stats", user_id=ADMIN_ID, update_id=2, message_id=11)
    assert "today (16 March 2026, 00:00 UTC):\n• none\nPayments this month" in last_text(fake, ADMIN_ID)

    clock.now = datetime(2026, 4, 20, 9, 0, tzinfo=UTC)
    await send(dispatcher, bot, "/stats", user_id=ADMIN_ID, update_id=3, message_id=12)
    assert last_text(fake, ADMIN_ID).endswith("UTC):\n• none\nActive subscriptions: 0")


async def test_invoice_shows_its_state(dispatcher, bot, fake, client, worker):
    invoice = await new_invoice(client, user_id=5)
    await send(dispatcher, bot, f"/invoice {invoice['label']}", user_id=ADMIN_ID)
    assert f"Invoice {invoice['label']}\nStatus: pending\nUser: 5\nPlan: 1 month" in last_text(fake, ADMIN_ID)

    await post_notification(client, notification(invoice["label"]))
    await worker.drain()
    await send(dispatcher, bot, f"/invoice {invoice['label']}", user_id=ADMIN_ID, update_id=2, message_id=11)
    text = last_text(fake, ADMIN_ID)
    assert "Status: paid" in text and ", yoomoney, 299\xa0RUB" in text


@pytest.mark.parametrize(("command", "answer"), [
    ("/invoice", "Usage: /invoice LABEL"),
    ("/invoice inv_missing", "There is no invoice inv_missing."),
    ("/grant", "Usage: /grant USER_ID PLAN (plans: month, year)"),
    ("/grant abc month", "Usage: /grant USER_ID PLAN (plans: month, year)"),
    ("/grant -5 month", "Usage: /grant USER_ID PLAN (plans: month, year)"),
    ("/grant 5 decade", "There is no plan decade. Plans: month, year"),
])
async def test_admin_commands_explain_bad_arguments(dispatcher, bot, fake, command, answer):
    await send(dispatcher, bot, command, user_id=ADMIN_ID)
    assert last_text(fake, ADMIN_ID) == answer
    assert await Operation.find_all().count() == 0


async def test_grant_records_a_manual_operation_and_activates_the_subscription(dispatcher, bot, fake, worker, clock):
    await send(dispatcher, bot, f"/grant {USER_ID} year", user_id=ADMIN_ID)
    assert last_text(fake, ADMIN_ID).startswith(f"Granted 12 months to user {USER_ID} (invoice inv_")
    await worker.drain()

    [operation] = await operations()
    assert operation.provider == "manual" and operation.status is OperationStatus.APPLIED
    assert (operation.amount, operation.currency) == (299000, "RUB")
    subscription = await Subscription.find_one(Subscription.user_id == USER_ID)
    assert subscription.plan == "year" and subscription.current_period_end == clock.now + timedelta(days=365)
    assert last_text(fake, USER_ID).startswith("Payment received: 2,990\xa0RUB. Your subscription 12 months")
    assert "(manual)" in last_text(fake, ADMIN_CHAT_ID)


async def test_a_redelivered_grant_grants_once(dispatcher, bot, fake, worker, clock):
    update = message_update(f"/grant {USER_ID} month", user_id=ADMIN_ID)
    await dispatcher.feed_raw_update(bot, update)
    await dispatcher.feed_raw_update(bot, update)
    await worker.drain()

    assert last_text(fake, ADMIN_ID).startswith("This grant is already recorded (invoice inv_")
    assert len(await operations()) == 1
    subscription = await Subscription.find_one(Subscription.user_id == USER_ID)
    assert subscription.current_period_end == clock.now + timedelta(days=30)


async def test_concurrent_deliveries_of_one_grant_extend_the_subscription_once(dispatcher, bot, worker, clock):
    update = message_update(f"/grant {USER_ID} month", user_id=ADMIN_ID)
    await asyncio.gather(*(dispatcher.feed_raw_update(bot, update) for _ in range(24)))
    await worker.drain()

    assert len(await operations()) == 1
    subscription = await Subscription.find_one(Subscription.user_id == USER_ID)
    assert subscription.current_period_end == clock.now + timedelta(days=30)


async def test_dashboard_sends_an_admin_a_one_time_sign_in_link(dispatcher, bot, fake, clock):
    await send(dispatcher, bot, "/dashboard", user_id=ADMIN_ID)
    text = last_text(fake, ADMIN_ID)
    token = text.rsplit("/admin/login/link/", 1)[1]
    assert await redeem_login_token(token, clock()) == ADMIN_ID
    assert await redeem_login_token(token, clock()) is None, "single use"
