"""/donate: the signed link to the donation page; a donation paid through YooMoney is told to the payer and, with
its message, to the admin chat, and counted in /stats."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

from db import Invoice, InvoiceKind, InvoiceStatus, Subscription
from tests.bot.conftest import ADMIN_CHAT_ID, ADMIN_ID, USER_ID, last_text, send
from tests.conftest import AUTH
from tests.helpers import Forms, notification, path_of, post_notification
from webhook_server.keys import QUEUES


async def test_a_donation_from_the_bots_link_is_paid_told_with_its_message_and_counted(
    dispatcher, bot, fake, client, worker, clock
):
    clock.now = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
    await send(dispatcher, bot, "/donate", language_code="en")
    [[button]] = fake.bot_messages(USER_ID)[-1]["reply_markup"]["inline_keyboard"]
    assert button["url"].startswith("http://shop.test/donate?user=777&")
    page = await client.get(path_of(button["url"]))
    assert page.status == 200
    form = Forms()
    form.feed(await page.text())
    fields = form.forms["donate"]["fields"]
    assert {name: fields[name] for name in ("user", "lang")} == {"user": str(USER_ID), "lang": "en"}

    chosen = await client.post("/donate", data={**fields, "pick": "RUB:30000", "message": "Keep it up!"},
                               allow_redirects=False)
    assert chosen.status == 303
    label = urlsplit(chosen.headers["Location"]).path.rsplit("/", 1)[1]
    invoice = await Invoice.find_one(Invoice.label == label)
    assert (invoice.kind, invoice.amounts, invoice.donor_message) == (InvoiceKind.DONATION, {"RUB": 30000},
                                                                      "Keep it up!")
    pay_page = await client.get(path_of(chosen.headers["Location"]))
    assert pay_page.status == 200 and "Donation" in await pay_page.text()

    assert await post_notification(client, notification(label, paid_minor=30000)) == 200
    await worker.drain()
    assert last_text(fake) == "Thank you for your donation of 300\xa0RUB!"
    admin = last_text(fake, ADMIN_CHAT_ID)
    assert "Donation received: 300\xa0RUB (yoomoney)" in admin and "Message: Keep it up!" in admin
    assert await Subscription.find_one(Subscription.user_id == USER_ID) is None

    await send(dispatcher, bot, "/stats", user_id=ADMIN_ID, update_id=2, message_id=11)
    assert "Donations this month (1 March 2026, 00:00 UTC):\n• 300\xa0RUB (count: 1)\n" in last_text(fake, ADMIN_ID)


async def test_an_orders_payment_and_its_refund_are_told_without_a_subscription(client, worker, fake):
    response = await client.post("/api/invoices", json={
        "user_id": USER_ID, "amounts": {"RUB": 50000}, "description": "Consultation", "order_id": "bot-1"},
        headers=AUTH)
    label = (await response.json())["label"]
    assert await post_notification(client, notification(label, paid_minor=50000, operation_id="77001")) == 200
    await worker.drain()
    assert last_text(fake) == "Payment received: 500\xa0RUB for Consultation. Thank you!"
    admin = last_text(fake, ADMIN_CHAT_ID)
    assert "Order paid: " + label in admin and "Order: bot-1" in admin and "Item: Consultation" in admin

    await client.app[QUEUES].enqueue_reversal("yoomoney", "77001", "refunded by hand")
    await worker.drain()
    assert last_text(fake) == "Your payment of 500\xa0RUB was returned."
    assert (await Invoice.find_one(Invoice.label == label)).status is InvoiceStatus.REFUNDED
