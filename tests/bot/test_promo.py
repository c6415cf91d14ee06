"""/promo in the bot (aiogram against the fake Bot API): a discount answers with a link to a new discounted
invoice that YooMoney's notification pays; a gift code grants its days once; bad codes are answered clearly."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from aiohttp.test_utils import TestClient

from billing.invoices import get_invoice
from billing.subscriptions import get_subscription, is_active
from db import InvoiceStatus
from tests.bot.conftest import ADMIN_ID, USER_ID, last_text, send
from tests.conftest import AUTH
from tests.helpers import notification, post_notification


async def create(client: TestClient, **body: Any) -> None:
    response = await client.post("/api/promo-codes", json=body, headers=AUTH)
    assert response.status == 201, await response.text()


def link_label(fake: Any) -> str:
    [[button]] = fake.bot_messages(USER_ID)[-1]["reply_markup"]["inline_keyboard"]
    return urlsplit(button["url"]).path.rsplit("/", 1)[1]


async def test_a_discount_code_answers_a_link_to_the_discounted_invoice(dispatcher, bot, fake, client, worker,
                                                                        clock):
    await create(client, code="SPRING-25", kind="percent", percent_off=25, max_uses=5, plans=["month"])
    await send(dispatcher, bot, "/promo spring-25")
    assert last_text(fake).startswith("Code SPRING-25 applied.")
    label = link_label(fake)
    assert (await get_invoice(label)).amounts["RUB"] == 22425
    assert fake.bot_messages(USER_ID)[-1]["reply_markup"]["inline_keyboard"][0][0]["text"].startswith(
        "1 month: 224.25\xa0RUB")
    assert await post_notification(client, notification(label, paid_minor=22425)) == 200
    await worker.drain()
    assert (await get_invoice(label)).status is InvoiceStatus.PAID
    subscription = await get_subscription(USER_ID)
    assert subscription is not None and is_active(subscription, clock())

    await send(dispatcher, bot, "/promo SPRING-25", update_id=2, message_id=11)
    assert last_text(fake) == "You have already used this code."


async def test_bad_codes_are_answered_clearly(dispatcher, bot, fake, client, clock):
    await create(client, code="YEAR-ONLY", kind="fixed", amounts_off={"RUB": 100}, max_uses=1, plans=["year"])
    await create(client, code="OLD-CODE", kind="percent", percent_off=10, max_uses=1,
                 expires_at=(clock() + timedelta(hours=1)).isoformat())
    await create(client, code="ONE-USE", kind="percent", percent_off=10, max_uses=1, plans=["month"])
    cases = [("/promo", "Send /promo CODE"), ("/promo a!", "A code is 4 to 32"), ("/promo NOPE-NOPE", "There is no"),
             ("/promo year-only month", "This code does not apply"),
             ("/promo OLD-CODE", "Code OLD-CODE fits several plans"),
             ("/promo OLD-CODE lifetime", "This code does not apply")]
    for n, (text, answer) in enumerate(cases):
        await send(dispatcher, bot, text, update_id=10 + n, message_id=10 + n)
        assert last_text(fake).startswith(answer), (text, last_text(fake))
    clock.now += timedelta(hours=2)
    await send(dispatcher, bot, "/promo old-code month", update_id=30, message_id=30)
    assert last_text(fake) == "This code has expired."
    await send(dispatcher, bot, "/promo one-use", update_id=31, message_id=31, user_id=901)
    await send(dispatcher, bot, "/promo one-use", update_id=32, message_id=32)
    assert last_text(fake) == "This code has been used up."


async def test_a_gift_code_grants_its_days_once_per_user(dispatcher, bot, fake, client, worker, clock):
    await create(client, code="GIFT-WEEK", kind="gift", gift_plan="month", gift_days=7, max_uses=10)
    await send(dispatcher, bot, "/promo gift-week")
    assert last_text(fake) == "Gift received: 1 month for 7 days."
    await worker.drain()
    subscription = await get_subscription(USER_ID)
    assert subscription is not None and subscription.current_period_end == clock() + timedelta(days=7)

    await send(dispatcher, bot, "/promo GIFT-WEEK", update_id=2, message_id=11)
    assert last_text(fake) == "You have already used this code."
    await worker.drain()
    assert (await get_subscription(USER_ID)).current_period_end == clock() + timedelta(days=7)  # type: ignore[union-attr]
    response = await client.get("/api/promo-codes/gift-week", headers=AUTH)
    assert (await response.json())["uses"] == 1


async def test_admins_create_codes_in_the_bot_and_others_cannot(dispatcher, bot, fake, client):
    words = "code=Bot-Code kind=fixed amounts_off=RUB:5000 max_uses=3 plans=month"
    await send(dispatcher, bot, f"/newpromo {words}", user_id=ADMIN_ID)
    assert last_text(fake, ADMIN_ID) == "Code BOT-CODE created, 3 uses."
    await send(dispatcher, bot, f"/newpromo {words}", user_id=ADMIN_ID, update_id=2, message_id=11)
    assert last_text(fake, ADMIN_ID) == "Code BOT-CODE exists already."
    for n, bad in enumerate(("code=X1 kind=percent percent_off=25 max_uses=1", "kind=percent percent_off=101 "
                             "code=ABCD max_uses=1", "code=ABCD kind=percent percent_off=5 max_uses=99999999999999",
                             "garbage")):
        await send(dispatcher, bot, f"/newpromo {bad}", user_id=ADMIN_ID, update_id=3 + n, message_id=12 + n)
        assert last_text(fake, ADMIN_ID).startswith("Not created:"), bad
    await send(dispatcher, bot, "/newpromo code=MINE kind=percent percent_off=99 max_uses=9", update_id=9,
               message_id=20)
    assert "created" not in last_text(fake)
    response = await client.get("/api/promo-codes", headers=AUTH)
    assert [code["code"] for code in (await response.json())["promo_codes"]] == ["BOT-CODE"]
