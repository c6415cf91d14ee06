"""Telegram Stars end to end through the web app's webhook, the real Dispatcher, the real Redis and RQ worker,
and the fake Bot API: /subscribe, pre-checkout, payment, renewal, redelivery, refunds, cancelling renewal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from billing import runtime
from billing.errors import LedgerUnavailable
from billing.plans import Catalogue
from billing.providers.stars.protocol import renewal_label
from db import Invoice, InvoiceStatus, Operation, OperationStatus, Subscription
from db.stars import RenewalState, StarsCharge, StarsSubscription
from tests.bot.conftest import ADMIN_CHAT_ID, ADMIN_ID, USER_ID, bot_settings, last_text
from tests.conftest import AUTH
from webhook_server.app import create_app
from webhook_server.emulators.telegram import FakeTelegram
from webhook_server.keys import QUEUES
from webhook_server.runner import InProcessWorker

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
PLANS = """
[plans.month]
title = "1 month"
period_days = 30
prices = { RUB = 29900, UZS = 3500000, XTR = 250 }
renews_monthly = true

[plans.year]
title = "12 months"
period_days = 365
prices = { RUB = 299000, XTR = 2500 }
"""
Drain = Callable[[], Awaitable[bool]]


@pytest.fixture
def plans(tmp_path) -> Catalogue:
    from billing.plans import load_plans

    path = tmp_path / "plans.toml"
    path.write_text(PLANS, encoding="utf-8")
    return load_plans(path)


@pytest.fixture
def settings(yoomoney_emulator, fake_telegram):
    return bot_settings(yoomoney_emulator[1], fake_telegram[1], stars_enabled=True,
                        stars_support_contact="@shop_owner")


@pytest.fixture
async def webhook(settings, plans, clock, redis_conn, fake) -> AsyncIterator[TestClient]:
    """The web app in webhook mode; the fake delivers its updates there, as Telegram would."""
    fake.stars.clock = lambda: int(clock.now.timestamp())
    app = create_app(settings.model_copy(update={"webhook_mode": True}), plans=plans, clock=clock)
    async with TestClient(TestServer(app)) as test_client:
        fake.webhook["url"] = str(test_client.make_url("/telegram/webhook"))
        yield test_client


@pytest.fixture
async def drain(webhook, plans, clock, notifier) -> AsyncIterator[Drain]:
    worker = InProcessWorker(webhook.app[QUEUES], asyncio.get_running_loop(), plans, clock=clock, notifier=notifier)
    yield worker.drain
    runtime.uninstall()


def secret(settings) -> dict[str, str]:
    return {SECRET_HEADER: settings.webhook_secret_token}


def keyboard(fake: FakeTelegram, chat_id: int = USER_ID) -> list[list[dict[str, Any]]]:
    return fake.bot_messages(chat_id)[-1]["reply_markup"]["inline_keyboard"]


async def subscribe(fake: FakeTelegram, language: str = "en") -> tuple[str, str]:
    """/subscribe; the month plan's Stars subscription link and its invoice label."""
    await fake.user_sends(USER_ID, "/subscribe", language_code=language)
    link = keyboard(fake)[0][1]["url"]
    return link, fake.stars.find(url=link).payload


async def subscribed(fake: FakeTelegram, drain: Drain) -> tuple[str, str]:
    """Bought and applied: the invoice label and the first charge id."""
    link, label = await subscribe(fake)
    paid = await fake.stars.pay(fake, USER_ID, fake.stars.find(url=link))
    assert paid.ok, paid.error_message
    await drain()
    return label, paid.charge_id


async def period_end():
    return (await Subscription.find_one(Subscription.user_id == USER_ID)).current_period_end


# ---- /subscribe -------------------------------------------------------------------------------

async def test_subscribe_offers_a_stars_subscription_link_and_a_one_time_stars_button(webhook, fake):
    await fake.user_sends(USER_ID, "/subscribe")
    (month_link, month_stars), (year_link, year_stars) = keyboard(fake)

    assert month_link["text"] == "1 month: 299\xa0RUB · 35,000\xa0UZS", "the page's link shows no XTR"
    assert month_stars["text"] == "⭐ 250 every 30 days" and month_stars["url"].startswith("https://t.me/$")
    assert year_stars["text"] == "⭐ 2500" and year_stars["callback_data"].startswith("stars:inv_")
    [link] = fake.sent("createInvoiceLink")
    label = month_link["url"].split("/pay/")[1].split("?")[0]
    assert link["payload"] == label and link["currency"] == "XTR" and "provider_token" not in link
    assert link["subscription_period"] == "2592000" and link["prices"] == [{"label": "1 month", "amount": 250}]


async def test_a_repeated_subscribe_hands_out_the_stored_link(webhook, fake):
    await fake.user_sends(USER_ID, "/subscribe")
    first = keyboard(fake)[0][1]["url"]
    await fake.user_sends(USER_ID, "/subscribe")
    assert keyboard(fake)[0][1]["url"] == first and len(fake.sent("createInvoiceLink")) == 1


async def test_when_telegram_refuses_the_link_subscribe_still_offers_the_page(webhook, fake):
    fake.fail("createInvoiceLink", 500, "Internal Server Error")
    await fake.user_sends(USER_ID, "/subscribe")
    month, year = keyboard(fake)
    assert len(month) == 1 and month[0]["url"].startswith("http://shop.test/pay/") and len(year) == 2


async def test_startup_lists_renewal_and_paysupport_and_asks_for_the_stars_updates(webhook, fake):
    assert [command["command"] for command in fake.commands["uz"]] == [
        "subscribe", "status", "cancel", "language", "donate", "renewal", "paysupport", "privacy", "deletedata"]
    [registered] = fake.sent("setWebhook")
    assert {"message", "callback_query", "pre_checkout_query", "subscription"} <= set(registered["allowed_updates"])


# ---- buying and renewing ----------------------------------------------------------------------

async def test_a_stars_subscription_is_bought_renewed_and_each_charge_applied_once(webhook, fake, drain, clock,
                                                                                   settings):
    link, label = await subscribe(fake, "ru")
    paid = await fake.stars.pay(fake, USER_ID, fake.stars.find(url=link))
    assert paid.ok and list(fake.stars.answers.values()) == [{"ok": True, "error_message": None}]
    assert last_text(fake).startswith("Спасибо! ⭐ 250 получены")
    await drain()
    assert await period_end() == clock.now + timedelta(days=30)
    assert last_text(fake).startswith("Оплата получена: 250\xa0XTR. Подписка «1 месяц» активна до ")
    tracked = await StarsSubscription.find_one(StarsSubscription.label == label)
    assert (tracked.first_charge_id, tracked.state) == (paid.charge_id, RenewalState.ACTIVE)
    assert tracked.expires_at == clock.now + timedelta(days=30)

    clock.now += timedelta(days=30)
    renewal = await fake.stars.renew(fake, fake.stars.subscription_of(USER_ID, label))
    await drain()
    assert await period_end() == clock.now + timedelta(days=30)
    assert (await StarsSubscription.find_one(StarsSubscription.label == label)).expires_at == clock.now + timedelta(30)
    renewed = renewal["message"]["successful_payment"]["telegram_payment_charge_id"]
    assert (await Invoice.find_one(Invoice.label == renewal_label(renewed))).status is InvoiceStatus.PAID

    again = await webhook.post("/telegram/webhook", json=renewal, headers=secret(settings))  # Telegram retries
    assert again.status == 200
    await drain()
    assert await Operation.find_all().count() == 2 and await period_end() == clock.now + timedelta(days=30)
    assert len([m for m in fake.bot_messages(USER_ID) if m["text"].startswith("Оплата получена")]) == 2


async def test_24_concurrent_deliveries_of_one_payment_record_it_once(webhook, fake, drain, settings, clock):
    link, label = await subscribe(fake)
    update = await fake.queue_update(fake.stars.charge(fake, USER_ID, fake.stars.find(url=link)))
    responses = await asyncio.gather(*(webhook.post("/telegram/webhook", json=update, headers=secret(settings))
                                       for _ in range(24)))
    assert [response.status for response in responses] == [200] * 24
    await drain()
    [operation] = await Operation.find_all().to_list()
    assert operation.status is OperationStatus.APPLIED and await StarsCharge.find_all().count() == 1
    assert await StarsSubscription.find_all().count() == 1 and await period_end() == clock.now + timedelta(30)


@pytest.mark.parametrize(("change", "expected"), [
    ({"amount": 249}, "The price has changed. Send /subscribe for the current one."),
    ({"user": ADMIN_ID}, "This invoice was made for another user. Send /subscribe to get your own."),
], ids=["wrong-amount", "another-user"])
async def test_pre_checkout_refuses_a_wrong_amount_or_payer_in_their_language(webhook, fake, change, expected):
    link, _ = await subscribe(fake)
    invoice = fake.stars.find(url=link)
    query = await fake.queue_update(fake.stars.pre_checkout_query(change.get("user", USER_ID), invoice,
                                                                  amount=change.get("amount")))
    assert fake.stars.answers[query["pre_checkout_query"]["id"]] == {"ok": False, "error_message": expected}
    assert await Operation.find_all().count() == 0


async def test_pre_checkout_answers_in_russian_and_refuses_a_paid_or_expired_invoice(webhook, fake, drain, clock):
    link, label = await subscribe(fake, "ru")
    await fake.stars.pay(fake, USER_ID, fake.stars.find(url=link))
    await drain()
    await Invoice.get_motor_collection().update_one({"label": label},
                                                    {"$set": {"status": "pending", "claimed_by": None}})
    clock.now += timedelta(days=2)
    second = await fake.stars.pay(fake, USER_ID, fake.stars.find(url=link))
    assert (second.ok, second.error_message) == (False, "Срок этого счёта истёк. Отправьте /subscribe, чтобы "
                                                        "получить новый.")
    await Invoice.get_motor_collection().update_one({"label": label}, {"$set": {"status": "paid"}})
    third = await fake.stars.pay(fake, ADMIN_ID, fake.stars.find(url=link))
    assert third.error_message.startswith("This invoice has already been paid or closed.")


async def test_a_renewal_pre_checkout_is_allowed_for_the_subscriber_when_renewal_is_due(webhook, fake, drain, clock):
    label, _ = await subscribed(fake, drain)
    invoice = fake.stars.find(payload=label)
    early = await fake.queue_update(fake.stars.pre_checkout_query(USER_ID, invoice))
    assert fake.stars.answers[early["pre_checkout_query"]["id"]]["ok"] is False, "a second purchase, not a renewal"
    clock.now += timedelta(days=29, hours=1)
    due = await fake.queue_update(fake.stars.pre_checkout_query(USER_ID, invoice))
    assert fake.stars.answers[due["pre_checkout_query"]["id"]] == {"ok": True, "error_message": None}


async def test_a_one_time_stars_invoice_is_sent_paid_and_gives_its_plans_period(webhook, fake, drain, clock):
    await fake.user_sends(USER_ID, "/subscribe")
    menu = fake.bot_messages(USER_ID)[-1]
    await fake.user_presses(USER_ID, menu["message_id"], keyboard(fake)[1][1]["callback_data"])
    [sent] = fake.sent("sendInvoice")
    assert sent["currency"] == "XTR" and sent["prices"] == [{"label": "12 months", "amount": 2500}]
    assert "subscription_period" not in sent and "provider_token" not in sent
    invoice_message = fake.bot_messages(USER_ID)[-1]
    assert invoice_message["invoice"]["total_amount"] == 2500

    paid = await fake.stars.pay(fake, USER_ID, fake.stars.find(message_id=invoice_message["message_id"]))
    await drain()
    assert paid.ok and await period_end() == clock.now + timedelta(days=365)
    assert await StarsSubscription.find_all().count() == 0


async def test_a_one_time_button_for_someone_elses_invoice_sends_nothing(webhook, fake):
    await fake.user_sends(USER_ID, "/subscribe")
    data = keyboard(fake)[1][1]["callback_data"]
    await fake.user_sends(ADMIN_ID, "/start")
    fake.chats[ADMIN_ID].append({**fake.bot_messages(USER_ID)[-1], "chat": {"id": ADMIN_ID, "type": "private"}})
    await fake.user_presses(ADMIN_ID, fake.bot_messages(USER_ID)[-1]["message_id"], data)
    assert fake.sent("sendInvoice") == []
    [answer] = fake.sent("answerCallbackQuery")
    assert answer["text"].startswith("This offer is no longer available") and answer["show_alert"] == "true"


async def test_a_second_payment_of_a_paid_invoice_is_refunded_at_once(webhook, fake, drain, clock, settings):
    label, first = await subscribed(fake, drain)
    extra = await fake.queue_update(fake.stars.charge(fake, USER_ID, fake.stars.find(payload=label)))
    extra_id = extra["message"]["successful_payment"]["telegram_payment_charge_id"]
    await drain()
    assert (await webhook.post("/telegram/webhook", json=extra, headers=secret(settings))).status == 200
    assert len(fake.sent("refundStarPayment")) == 1, "a redelivery refunds nothing twice"
    assert (await StarsSubscription.find_one(StarsSubscription.label == label)).last_charge_id == first

    assert extra_id in fake.stars.refunded and fake.stars.subscriptions[extra_id].canceled
    assert not fake.stars.subscriptions[first].canceled, "the first subscription keeps renewing"
    assert (await Operation.find_one(Operation.operation_id == extra_id)).status is OperationStatus.REVERSED
    assert await period_end() == clock.now + timedelta(days=30)
    assert any(m["text"] == "This invoice had already been paid, so your ⭐ 250 have been refunded."
               for m in fake.bot_messages(USER_ID))


async def test_a_payment_in_another_currency_is_not_recorded(webhook, fake, settings):
    link, _ = await subscribe(fake)
    body = fake.stars.charge(fake, USER_ID, fake.stars.find(url=link))
    body["message"]["successful_payment"]["currency"] = "RUB"
    response = await webhook.post("/telegram/webhook", json={"update_id": 5, **body}, headers=secret(settings))
    assert response.status == 200 and await Operation.find_all().count() == 0


# ---- failures: Telegram delivers again --------------------------------------------------------

async def test_a_payment_that_cannot_be_recorded_answers_503_and_its_redelivery_records_it_once(
        webhook, fake, drain, settings, monkeypatch, clock):
    link, _ = await subscribe(fake)

    async def redis_down(*args, **kwargs):
        raise LedgerUnavailable("redis: ConnectionError")

    monkeypatch.setattr(type(webhook.app[QUEUES]), "enqueue_fulfilment", redis_down)
    update = {"update_id": 9, **fake.stars.charge(fake, USER_ID, fake.stars.find(url=link))}
    failed = await webhook.post("/telegram/webhook", json=update, headers=secret(settings))
    assert failed.status == 503
    assert "Something went wrong" not in last_text(fake), "no 'try again' to a payer whose Stars are taken"

    monkeypatch.undo()
    again = await webhook.post("/telegram/webhook", json=update, headers=secret(settings))
    assert again.status == 200
    await drain()
    [operation] = await Operation.find_all().to_list()
    assert operation.status is OperationStatus.APPLIED and await period_end() == clock.now + timedelta(days=30)


async def test_a_crash_after_the_ledger_insert_then_redelivery_tracks_the_subscription_once(
        webhook, fake, drain, settings, monkeypatch):
    from pymongo.errors import AutoReconnect

    from billing.providers.stars import payments

    link, label = await subscribe(fake)
    real = payments._track_subscription
    crashes: list[str] = []

    async def crash_once(*args, **kwargs):
        if not crashes:
            crashes.append("crashed")
            raise AutoReconnect("connection lost after the ledger insert")
        return await real(*args, **kwargs)

    monkeypatch.setattr(payments, "_track_subscription", crash_once)
    update = {"update_id": 9, **fake.stars.charge(fake, USER_ID, fake.stars.find(url=link))}
    assert (await webhook.post("/telegram/webhook", json=update, headers=secret(settings))).status == 503
    assert (await webhook.post("/telegram/webhook", json=update, headers=secret(settings))).status == 200
    await drain()
    assert await Operation.find_all().count() == 1
    tracked = await StarsSubscription.find_one(StarsSubscription.label == label)
    assert tracked.first_charge_id == update["message"]["successful_payment"]["telegram_payment_charge_id"]


# ---- refunds ----------------------------------------------------------------------------------

async def test_a_refund_from_the_admin_api_returns_the_stars_stops_renewal_and_takes_the_time_back(
        webhook, fake, drain, clock, notifier):
    label, charge = await subscribed(fake, drain)
    response = await webhook.post(f"/api/invoices/{label}/refund", headers=AUTH)
    assert response.status == 202
    assert fake.sent("refundStarPayment") == [{"user_id": str(USER_ID), "telegram_payment_charge_id": charge}]
    assert fake.sent("editUserStarSubscription") == [
        {"user_id": str(USER_ID), "telegram_payment_charge_id": charge, "is_canceled": "true"}]
    await drain()

    assert (await Invoice.find_one(Invoice.label == label)).status is InvoiceStatus.REFUNDED
    assert await period_end() == clock.now
    assert (await StarsSubscription.find_one(StarsSubscription.label == label)).state is RenewalState.CANCELED
    assert last_text(fake).startswith("Your payment of 250\xa0XTR was returned.")
    assert await fake.stars.renew(fake, fake.stars.subscriptions[charge]) is None, "Telegram charges no more"
    again = await webhook.post(f"/api/invoices/{label}/refund", headers=AUTH)
    assert again.status == 409


async def test_telegram_refusing_the_refund_changes_nothing(webhook, fake, drain, clock):
    label, _ = await subscribed(fake, drain)
    fake.fail("refundStarPayment", 400, "Bad Request: CHARGE_NOT_FOUND")
    response = await webhook.post(f"/api/invoices/{label}/refund", headers=AUTH)
    assert response.status == 502 and "CHARGE_NOT_FOUND" in (await response.json())["message"]
    fake.fail("refundStarPayment", 502, "Bad Gateway")
    assert (await webhook.post(f"/api/invoices/{label}/refund", headers=AUTH)).status == 503
    await drain()
    assert (await Invoice.find_one(Invoice.label == label)).status is InvoiceStatus.PAID
    assert await period_end() == clock.now + timedelta(days=30)


async def test_a_refund_telegram_says_was_done_already_still_takes_the_time_back(webhook, fake, drain, clock):
    label, charge = await subscribed(fake, drain)
    fake.stars.refunded.add(charge)  # refunded elsewhere (another tool, Telegram support)
    assert (await webhook.post(f"/api/invoices/{label}/refund", headers=AUTH)).status == 202
    await drain()
    assert (await Invoice.find_one(Invoice.label == label)).status is InvoiceStatus.REFUNDED


async def test_the_admin_command_refunds_by_label_or_charge_id(webhook, fake, drain, clock):
    label, charge = await subscribed(fake, drain)
    clock.now += timedelta(days=30)
    renewal = await fake.stars.renew(fake, fake.stars.subscription_of(USER_ID, label))
    renewed = renewal["message"]["successful_payment"]["telegram_payment_charge_id"]
    await drain()

    await fake.user_sends(ADMIN_ID, f"/stars_refund {renewed}")
    assert last_text(fake, ADMIN_ID).startswith(f"⭐ 250 of {renewal_label(renewed)} returned to the payer")
    await drain()
    assert (await Operation.find_one(Operation.operation_id == renewed)).status is OperationStatus.REVERSED
    assert await period_end() == clock.now, "the renewal's 30 days are taken back, the first period had run out"
    assert fake.sent("editUserStarSubscription")[0]["telegram_payment_charge_id"] == charge

    await fake.user_sends(ADMIN_ID, f"/stars_refund {renewed}")
    assert last_text(fake, ADMIN_ID) == f"There is no Stars payment to refund for {renewed}."
    await fake.user_sends(USER_ID, f"/stars_refund {label}")
    assert fake.sent("refundStarPayment", ) and len(fake.sent("refundStarPayment")) == 1, "not for everyone"


# ---- auto-renewal -----------------------------------------------------------------------------

async def test_renewal_is_turned_off_and_back_on_from_the_bot(webhook, fake, drain):
    label, charge = await subscribed(fake, drain)
    await fake.user_sends(USER_ID, "/renewal")
    menu = fake.bot_messages(USER_ID)[-1]
    assert menu["text"].startswith("1 month: ⭐ 250 every 30 days; the next renewal is on ")
    [[off]] = menu["reply_markup"]["inline_keyboard"]

    await fake.user_presses(USER_ID, menu["message_id"], off["callback_data"])
    assert fake.sent("editUserStarSubscription") == [
        {"user_id": str(USER_ID), "telegram_payment_charge_id": charge, "is_canceled": "true"}]
    assert fake.stars.subscriptions[charge].canceled
    edited = fake.bot_messages(USER_ID)[-1]
    assert edited["text"].startswith("Auto-renewal of 1 month is off. Your access lasts until ")
    [[on]] = edited["reply_markup"]["inline_keyboard"]
    await fake.user_presses(USER_ID, edited["message_id"], on["callback_data"])
    assert fake.sent("editUserStarSubscription")[-1]["is_canceled"] == "false"
    assert not fake.stars.subscriptions[charge].canceled
    assert (await StarsSubscription.find_one(StarsSubscription.label == label)).state is RenewalState.ACTIVE


async def test_someone_else_cannot_switch_a_users_renewal(webhook, fake, drain):
    label, _ = await subscribed(fake, drain)
    await fake.user_sends(USER_ID, "/renewal")
    menu = fake.bot_messages(USER_ID)[-1]
    fake.chats.setdefault(ADMIN_ID, []).append({**menu, "chat": {"id": ADMIN_ID, "type": "private"}})
    await fake.user_presses(ADMIN_ID, menu["message_id"], menu["reply_markup"]["inline_keyboard"][0][0][
        "callback_data"])
    assert fake.sent("editUserStarSubscription") == []
    assert fake.sent("answerCallbackQuery")[-1]["text"] == "This subscription is not yours or no longer exists."


async def test_renewal_turned_off_in_telegram_is_recorded_and_the_user_told_once(webhook, fake, drain):
    label, charge = await subscribed(fake, drain)
    await fake.stars.user_cancels(fake, fake.stars.subscriptions[charge])
    assert last_text(fake).startswith("Auto-renewal of 1 month is off. Your access lasts until ")
    told = len(fake.bot_messages(USER_ID))
    await fake.stars.user_cancels(fake, fake.stars.subscriptions[charge])
    assert len(fake.bot_messages(USER_ID)) == told
    await fake.user_sends(USER_ID, "/renewal")
    assert fake.bot_messages(USER_ID)[-1]["text"].startswith("1 month: auto-renewal is off; paid until ")
    assert "reply_markup" not in fake.bot_messages(USER_ID)[-1], "only Telegram can turn it back on"


async def test_a_failed_renewal_is_told_and_a_later_renewal_clears_it(webhook, fake, drain, clock):
    label, charge = await subscribed(fake, drain)
    await fake.stars.renewal_fails(fake, fake.stars.subscriptions[charge])
    assert last_text(fake).startswith("Telegram could not renew 1 month")
    assert (await StarsSubscription.find_one(StarsSubscription.label == label)).state is RenewalState.FAILED
    await fake.stars.renew(fake, fake.stars.subscriptions[charge])
    await drain()
    assert (await StarsSubscription.find_one(StarsSubscription.label == label)).state is RenewalState.ACTIVE


# ---- /paysupport ------------------------------------------------------------------------------

async def test_paysupport_tells_how_to_reach_the_owner_in_the_users_language(webhook, fake):
    await fake.user_sends(USER_ID, "/paysupport", language_code="uz")
    assert last_text(fake).startswith("Stars orqali toʻlovda muammo bormi?")
    assert last_text(fake).endswith("Bundan tashqari, @shop_owner ga yozishingiz mumkin.")


async def test_a_payment_dispute_reaches_the_admin_chat_with_the_users_stars_payments(webhook, fake, drain):
    label, charge = await subscribed(fake, drain)
    await fake.user_sends(USER_ID, "/paysupport Оплатил, но доступа нет", language_code="ru")
    admin = last_text(fake, ADMIN_CHAT_ID)
    assert admin.startswith(f"💬 /paysupport from user {USER_ID}:\nОплатил, но доступа нет\n"), "ADMIN_LANGUAGE"
    assert f"⭐ 250, invoice {label}, charge {charge}" in admin
    assert last_text(fake) == "Thank you, your message has been passed on to the owner.\n\nYou can also write to " \
                              "@shop_owner.", "the user's stored language (English, from /subscribe) wins"


async def test_without_stars_subscribe_shows_no_stars_and_paysupport_is_not_a_command(
        client, plans, clock, fake, yoomoney_emulator, fake_telegram, bot):
    from bot.main import build_dispatcher
    from tests.bot.conftest import send
    from webhook_server.keys import LEDGER

    off = bot_settings(yoomoney_emulator[1], fake_telegram[1])
    dispatcher = build_dispatcher(off, plans, clock=clock, ledger=client.app[LEDGER])
    await send(dispatcher, bot, "/subscribe")
    assert [len(row) for row in keyboard(fake)] == [1, 1] and fake.sent("createInvoiceLink") == []
    await send(dispatcher, bot, "/paysupport", update_id=2, message_id=11)
    assert last_text(fake).startswith("I don't know this command.")


async def test_simulate_pays_and_renews_an_invoice_in_stars_through_the_fake(webhook, fake, drain, settings, clock):
    import aiohttp

    from webhook_server.emulators import EMULATORS

    _, label = await subscribe(fake)
    emulator = EMULATORS["telegram_stars"]
    base = str(webhook.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as session:
        assert await emulator.simulate(settings, session, base, "payment", label, None) == 200
        await drain()
        assert await emulator.simulate(settings, session, base, "renewal", label, None) == 200
        await drain()
        assert await emulator.simulate(settings, session, base, "payment", label, None) == 409, "paid already"
    assert await period_end() == clock.now + timedelta(days=60)
