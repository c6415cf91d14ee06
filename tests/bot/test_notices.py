"""Notices after a payment or a refund: to the user (in their language) and the admin chat, sent once,
and a Telegram failure (429, 403, network) never undoes or repeats the payment."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry

from bot.notifier import SEND_TIMEOUT_SECONDS, notifier_for
from db import Invoice, OperationStatus, Subscription
from db.users import BotUser, SentNotice, remember_user
from rq_access import RqQueues
from tests.bot.conftest import ADMIN_CHAT_ID, USER_ID, last_text
from tests.helpers import new_invoice, notification, operations, post_notification
from tests.webhook_server.test_redis_faults import free_port
from webhook_server.keys import QUEUES
from webhook_server.payout_services import OwnSessionTransport

RUB = 29900


async def pay(client, user_id: int = USER_ID) -> dict:
    invoice = await new_invoice(client, user_id=user_id)
    assert await post_notification(client, notification(invoice["label"])) == 200
    return invoice


async def assert_paid_once(label: str, user_id: int = USER_ID) -> Subscription:
    stored = await Invoice.find_one(Invoice.label == label)
    assert stored.status.value == "paid"
    [operation] = await operations()
    assert operation.status is OperationStatus.APPLIED
    subscription = await Subscription.find_one(Subscription.user_id == user_id)
    assert len(subscription.applied_operations) == 1
    return subscription


async def test_paying_through_the_yoomoney_emulator_tells_the_user_and_the_admin_chat(
    client, worker, yoomoney_emulator, fake, clock
):
    """The payer's path: the emulator's Pay → our notification route → the worker → the fake Bot API."""
    emulator, emulator_url = yoomoney_emulator
    await remember_user(USER_ID, "ru", chosen=True, now=clock.now)
    invoice = await new_invoice(client, user_id=USER_ID)
    form = {"receiver": "4100118000000000", "sum": "299.00", "label": invoice["label"], "successURL": "http://x"}
    async with client.session.post(f"{emulator_url}/quickpay/pay", data=form, allow_redirects=False) as paid:
        assert paid.status == 303
    await worker.drain()

    end = clock.now + timedelta(days=30)
    user_text = last_text(fake, USER_ID)
    assert user_text.startswith("Оплата получена: 299\xa0₽. Подписка «1 месяц» активна до ")
    assert str(end.year) in user_text and f"{end:%H:%M} UTC" in user_text
    admin_text = last_text(fake, ADMIN_CHAT_ID)
    assert admin_text.startswith(f"✅ Invoice paid: {invoice['label']}\nUser: {USER_ID}\nPlan: 1 month\n")
    assert "Amount: 299\xa0RUB (yoomoney)" in admin_text
    assert len(fake.sent()) == 2


async def test_a_user_who_blocked_the_bot_is_not_retried_and_the_admin_chat_still_hears(client, worker, fake, queues,
                                                                                       clock):
    await remember_user(USER_ID, "en", chosen=False, now=clock.now)
    fake.block(USER_ID, times=10)
    invoice = await pay(client)
    await worker.drain()

    assert len(fake.sent(chat_id=USER_ID)) == 1, "403 is final at once"
    assert len(FailedJobRegistry(queue=queues.notices)) == 0
    assert last_text(fake, ADMIN_CHAT_ID).startswith("✅ Invoice paid")
    [operation] = await operations()
    assert operation.notified_at is not None
    assert (await BotUser.find_one(BotUser.user_id == USER_ID)).blocked_at is not None
    await assert_paid_once(invoice["label"])


async def test_429_is_waited_out_for_retry_after_then_sent_once(client, worker, fake, sleeps):
    fake.rate_limit("sendMessage", 3, chat_id=USER_ID)
    invoice = await pay(client)
    await worker.drain()

    assert sleeps.calls == [3]
    assert len(fake.bot_messages(USER_ID)) == 1 and len(fake.bot_messages(ADMIN_CHAT_ID)) == 1
    await assert_paid_once(invoice["label"])


@pytest.fixture
def retrying(client, settings) -> RqQueues:
    """The notices queue with two immediate retries (RETRY_INTERVALS=0), so a burst worker runs them."""
    queues = RqQueues(client.app[QUEUES].connection, max_retries=2, retry_intervals=[0])
    client.app[QUEUES].enqueue_payment_notice = queues.enqueue_payment_notice
    return queues


async def test_a_long_429_is_left_to_rq_and_the_retry_sends_it(client, worker, fake, sleeps, retrying):
    fake.rate_limit("sendMessage", 120, chat_id=USER_ID)
    invoice = await pay(client)
    await worker.drain()

    assert sleeps.calls == [], "too long to wait inside the job"
    assert len(fake.sent(chat_id=USER_ID)) == 2 and len(fake.bot_messages(USER_ID)) == 1
    assert len(FailedJobRegistry(queue=retrying.notices)) == 0
    await assert_paid_once(invoice["label"])


async def test_an_admin_chat_failure_retries_without_writing_to_the_user_twice(client, worker, fake, retrying):
    fake.fail("sendMessage", 502, "Bad Gateway", chat_id=ADMIN_CHAT_ID)
    invoice = await pay(client)
    await worker.drain()

    assert len(fake.bot_messages(USER_ID)) == 1
    assert len(fake.sent(chat_id=ADMIN_CHAT_ID)) == 2 and len(fake.bot_messages(ADMIN_CHAT_ID)) == 1
    assert await SentNotice.find_all().count() == 2
    await assert_paid_once(invoice["label"])


async def test_telegram_down_fails_the_notice_after_its_retries_and_leaves_the_payment(client, worker, fake,
                                                                                      retrying, clock):
    fake.fail("sendMessage", 500, "Internal Server Error", times=3)
    invoice = await pay(client)
    await worker.drain()

    assert len(fake.sent(chat_id=USER_ID)) == 3, "the first try and two retries"
    failed = FailedJobRegistry(queue=retrying.notices)
    assert len(failed) == 1
    subscription = await assert_paid_once(invoice["label"])
    assert subscription.current_period_end == clock.now + timedelta(days=30)
    [operation] = await operations()
    assert operation.notified_at is None, "not marked as told"

    Job.fetch(failed.get_job_ids()[0], connection=retrying.connection).requeue()  # an operator, once it is back
    await worker.drain()
    assert len(fake.bot_messages(USER_ID)) == 1 and len(fake.bot_messages(ADMIN_CHAT_ID)) == 1
    await assert_paid_once(invoice["label"])


async def test_retries_wait_out_the_backoff_interval(client, worker, fake):
    queues = RqQueues(client.app[QUEUES].connection, max_retries=3, retry_intervals=[60, 300])
    client.app[QUEUES].enqueue_payment_notice = queues.enqueue_payment_notice
    fake.fail("sendMessage", 500, "Internal Server Error", times=10)
    await pay(client)
    await worker.drain()

    assert len(fake.sent(chat_id=USER_ID)) == 1, "not retried at once"
    assert len(ScheduledJobRegistry(queue=queues.notices)) == 1


async def test_an_unreachable_bot_api_never_touches_the_payment(client, worker, settings, retrying):
    unreachable = settings.model_copy(update={"telegram_api_url": f"http://127.0.0.1:{free_port()}"})
    transport = OwnSessionTransport(SEND_TIMEOUT_SECONDS)
    worker.runtime.notifier = notifier_for(unreachable, transport)
    try:
        invoice = await pay(client)
        await worker.drain()
    finally:
        await transport.close()

    assert len(FailedJobRegistry(queue=retrying.notices)) == 1
    await assert_paid_once(invoice["label"])


async def test_a_refund_tells_the_user_and_the_admin_chat(client, worker, fake, queues, clock):
    invoice = await pay(client)
    await worker.drain()
    [operation] = await operations()
    await queues.enqueue_reversal(operation.provider, operation.operation_id, "refund")
    await worker.drain()

    assert last_text(fake, USER_ID) == ("Your payment of 299\xa0RUB was returned. "
                                        "Your subscription has ended. You can renew it with /subscribe.")
    admin_text = last_text(fake, ADMIN_CHAT_ID)
    assert admin_text.startswith(f"↩️ Payment reversed: {invoice['label']}\n")
    assert "Reason: refund" in admin_text


async def test_a_payment_job_that_fails_for_good_alerts_the_admin_chat(client, worker, fake):
    invoice = await new_invoice(client, user_id=USER_ID)
    assert await post_notification(client, notification(invoice["label"])) == 200

    def crash(step: str) -> None:
        if step == "after_invoice_update":
            raise RuntimeError("injected failure")

    worker.runtime.checkpoint = crash
    await worker.drain()

    text = last_text(fake, ADMIN_CHAT_ID)
    assert text.startswith("⚠️ A payment job failed for good: fulfil_payment(yoomoney, ")
    assert "Error: RuntimeError: injected failure" in text and "ymds jobs requeue fulfil-yoomoney-" in text
    assert fake.bot_messages(USER_ID) == [], "the user hears only of an applied payment"



async def test_a_second_payment_of_an_invoice_tells_the_admin_chat_to_refund_it_by_hand(client, worker, fake):
    invoice = await pay(client)
    second = notification(invoice["label"])
    assert await post_notification(client, second) == 200
    await worker.drain()
    admin = [message["text"] for message in fake.sent(chat_id=ADMIN_CHAT_ID)]
    [extra] = [text for text in admin if "second payment" in text]
    assert extra.startswith(f"⚠️ A second payment of invoice {invoice['label']} (user {USER_ID}): 299.00 RUB through "
                            f"yoomoney (operation {second['operation_id']}). It was not applied; refund it by hand")
    assert extra.endswith(f"ymds extras refunded yoomoney {second['operation_id']}")
    assert len(fake.sent(chat_id=USER_ID)) == 1, "the user hears of the one payment that was applied"
    await worker.drain()
    assert len(fake.sent(chat_id=ADMIN_CHAT_ID)) == len(admin), "told once"
