"""/subscribe: one invoice and one signed URL button per plan, reused while pending; /status."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

from billing.links import check_link
from db import Invoice, Subscription
from tests.bot.conftest import USER_ID, last_text, send
from tests.helpers import notification, path_of, post_notification


def buttons(fake) -> list[dict]:
    markup = fake.bot_messages(USER_ID)[-1]["reply_markup"]
    return [button for row in markup["inline_keyboard"] for button in row]


def label_of(url: str) -> str:
    return urlsplit(url).path.rsplit("/", 1)[1]


async def test_subscribe_answers_one_signed_link_per_plan_with_its_prices(dispatcher, bot, fake, settings, clock):
    await send(dispatcher, bot, "/subscribe", language_code="en")

    month, year = buttons(fake)
    assert month["text"] == "1 month: 299\xa0RUB · 35,000\xa0UZS"
    assert year["text"] == "12 months: 2,990\xa0RUB · 350,000\xa0UZS"
    for button in (month, year):
        assert button["url"].startswith("http://shop.test/pay/inv_")
        query = {name: values[0] for name, values in parse_qs(urlsplit(button["url"]).query).items()}
        assert query["lang"] == "en"
        check_link(settings.link_key, label_of(button["url"]), query["exp"], query["sig"], int(clock.now.timestamp()),
                   query["lang"])
    invoices = await Invoice.find_all().to_list()
    assert sorted((invoice.plan, invoice.user_id) for invoice in invoices) == [("month", USER_ID), ("year", USER_ID)]
    assert "valid until" in last_text(fake)


async def test_a_link_from_subscribe_opens_the_payment_page(dispatcher, bot, fake, client):
    await send(dispatcher, bot, "/subscribe", language_code="ru")
    month = buttons(fake)[0]

    response = await client.get(path_of(month["url"]))
    page = await response.text()
    assert response.status == 200
    assert '<html lang="ru">' in page and "1 месяц" in page and "299\xa0₽" in page
    assert f'name="label" value="{label_of(month["url"])}"' in page
    assert "Оплатить через YooMoney" in page


async def test_repeated_subscribe_reuses_the_pending_invoices(dispatcher, bot, fake):
    await send(dispatcher, bot, "/subscribe")
    first = [label_of(button["url"]) for button in buttons(fake)]
    await send(dispatcher, bot, "/subscribe", update_id=2, message_id=11)
    second = [label_of(button["url"]) for button in buttons(fake)]

    assert second == first
    assert await Invoice.find_all().count() == 2


async def test_subscribe_makes_new_invoices_when_the_old_ones_are_paid_or_near_expiry(dispatcher, bot, fake, client,
                                                                                       worker, clock, settings):
    await send(dispatcher, bot, "/subscribe")
    month, year = (label_of(button["url"]) for button in buttons(fake))
    assert await post_notification(client, notification(month)) == 200
    await worker.drain()

    await send(dispatcher, bot, "/subscribe", update_id=2, message_id=11)
    labels = [label_of(button["url"]) for button in buttons(fake)]
    assert labels[0] != month and labels[1] == year, "the paid one is replaced, the pending one reused"

    clock.now += timedelta(seconds=settings.invoice_ttl_seconds) - timedelta(minutes=30)
    await send(dispatcher, bot, "/subscribe", update_id=3, message_id=12)
    assert [label_of(button["url"]) for button in buttons(fake)] == labels, "reused while there is time to pay"

    clock.now += timedelta(minutes=15, seconds=1)
    await send(dispatcher, bot, "/subscribe", update_id=4, message_id=13)
    assert not {label_of(button["url"]) for button in buttons(fake)} & set(labels), "about to expire: new ones"
    assert await Invoice.find_all().count() == 5


async def test_status_without_a_subscription_says_so(dispatcher, bot, fake):
    await send(dispatcher, bot, "/status")
    assert last_text(fake) == "You have no subscription yet. Choose a plan with /subscribe."


async def test_status_shows_plan_end_date_and_the_masked_payment_method(dispatcher, bot, fake, client, worker, clock):
    await send(dispatcher, bot, "/subscribe")
    assert await post_notification(client, notification(label_of(buttons(fake)[0]["url"]))) == 200
    await worker.drain()
    await Subscription.get_motor_collection().update_one(
        {"user_id": USER_ID}, {"$set": {"payment_method": "card-token-5c1b9f00d4e2-4242"}})

    await send(dispatcher, bot, "/status", update_id=2, message_id=11)
    text = last_text(fake)
    end = clock.now + timedelta(days=30)
    assert text.startswith("Your subscription: 1 month\nActive until ")
    assert f"{end.day} {end.strftime('%B')} {end.year}" in text
    assert "Saved payment method: •••• 4242" in text and "5c1b9f00d4e2" not in text


async def test_status_after_the_end_date_says_it_ended(dispatcher, bot, fake, client, worker, clock):
    await send(dispatcher, bot, "/subscribe")
    await post_notification(client, notification(label_of(buttons(fake)[0]["url"])))
    await worker.drain()
    clock.now += timedelta(days=31)

    await send(dispatcher, bot, "/status", update_id=2, message_id=11)
    assert last_text(fake).startswith("Your subscription 1 month ended on ")
