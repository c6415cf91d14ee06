"""Stars against the worker's timing: a one-time invoice paid twice before any worker ran, and a subscription's
period taken from Telegram's subscription_expiration_date when our worker applies it late."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from db import ExtraRefund, Invoice, Operation, OperationStatus
from tests.bot.conftest import ADMIN_CHAT_ID, USER_ID
from tests.bot.test_stars import (  # noqa: F401  (fixtures)
    drain,
    keyboard,
    period_end,
    plans,
    secret,
    settings,
    subscribe,
    webhook,
)


async def one_time_invoice(fake):
    """/subscribe, then the year plan's one-time Stars button: the invoice message's invoice at the fake."""
    await fake.user_sends(USER_ID, "/subscribe")
    menu = fake.bot_messages(USER_ID)[-1]
    await fake.user_presses(USER_ID, menu["message_id"], keyboard(fake)[1][1]["callback_data"])
    return fake.stars.find(message_id=fake.bot_messages(USER_ID)[-1]["message_id"])


async def test_a_second_payment_before_any_worker_is_refunded_at_once_through_refund_star_payment(
        webhook, fake, drain, clock, settings):
    invoice = await one_time_invoice(fake)
    checks = [await fake.queue_update(fake.stars.pre_checkout_query(USER_ID, invoice)) for _ in range(2)]
    assert all(fake.stars.answers[c["pre_checkout_query"]["id"]]["ok"] for c in checks), "both pay buttons pressed"
    first = await fake.queue_update(fake.stars.charge(fake, USER_ID, invoice))
    second = await fake.queue_update(fake.stars.charge(fake, USER_ID, invoice))
    first_id, second_id = (u["message"]["successful_payment"]["telegram_payment_charge_id"] for u in (first, second))

    assert fake.sent("refundStarPayment") == [{"user_id": str(USER_ID), "telegram_payment_charge_id": second_id}]
    assert fake.stars.refunded == {second_id}, "refunded before any worker ran"
    claimed = await Invoice.find_one(Invoice.label == invoice.payload)
    assert claimed.claimed_by == f"telegram_stars:{first_id}" and claimed.status.value == "pending"
    assert fake.bot_messages(USER_ID)[-1]["text"] == (
        "This invoice had already been paid, so your ⭐ 2500 have been refunded.")

    await drain()
    assert (await webhook.post("/telegram/webhook", json=second, headers=secret(settings))).status == 200
    await drain()
    operations = {o.operation_id: o for o in await Operation.find_all().to_list()}
    assert operations[first_id].status is OperationStatus.APPLIED
    assert operations[second_id].status is OperationStatus.REVERSED
    assert operations[second_id].extra_refund is ExtraRefund.REFUNDED
    assert len(fake.sent("refundStarPayment")) == 1, "the redelivery refunds nothing twice"
    assert await period_end() == clock.now + timedelta(days=365), "the first payment's year, once"
    told = [m["text"] for m in fake.bot_messages(ADMIN_CHAT_ID) if m["text"].startswith("↩️ A second payment")]
    assert len(told) == 1 and second_id in told[0] and "was refunded" in told[0]


async def test_a_subscription_period_ends_at_telegrams_expiration_date_when_applied_late(webhook, fake, drain, clock):
    telegram_now = [int(clock.now.timestamp())]
    fake.stars.clock = lambda: telegram_now[0]
    link, _ = await subscribe(fake)
    paid = await fake.stars.pay(fake, USER_ID, fake.stars.find(url=link))
    expires = datetime.fromtimestamp(paid.update["message"]["successful_payment"]["subscription_expiration_date"], UTC)

    clock.now += timedelta(days=3)  # the worker was down: applied three days after Telegram took the Stars
    await drain()
    assert await period_end() == expires, "Telegram's date, not three days more on our clock"

    telegram_now[0] = int(expires.timestamp())  # Telegram renews when its period ends
    renewal = await fake.stars.renew(fake, fake.stars.subscription_of(USER_ID, paid.update["message"][
        "successful_payment"]["invoice_payload"]))
    renewed_until = datetime.fromtimestamp(renewal["message"]["successful_payment"]["subscription_expiration_date"],
                                           UTC)
    clock.now = expires + timedelta(days=1, hours=5)  # and our worker applies it a day later
    await drain()
    assert renewed_until == expires + timedelta(days=30)
    assert await period_end() == renewed_until
