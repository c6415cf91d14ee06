"""/cancel: the user turns automatic renewal off after a confirm button; "Keep it" changes nothing."""

from __future__ import annotations

from typing import Any

from billing.subscriptions import get_subscription
from db import Subscription
from db.renewals import Renewal, RenewalStatus
from tests.bot.conftest import USER_ID, last_text, send
from tests.helpers import get_json, paid_with_saved_method


async def subscribed_with_saved_card(client, worker) -> Subscription:  # type: ignore[no-untyped-def]
    return await paid_with_saved_method(client, worker, USER_ID, provider="yookassa", token="pm-saved-1",
                                        method="Visa •••• 4242")


def press(message: dict[str, Any], button: int, update_id: int) -> dict[str, Any]:
    data = message["reply_markup"]["inline_keyboard"][0][button]["callback_data"]
    return {"update_id": update_id, "callback_query": {
        "id": f"cq{update_id}", "chat_instance": "1", "data": data, "message": message,
        "from": {"id": USER_ID, "is_bot": False, "first_name": "Ivan", "language_code": "en"}}}


async def test_cancel_asks_first_and_turns_auto_renewal_off(client, worker, dispatcher, bot, fake, clock):
    subscription = await subscribed_with_saved_card(client, worker)
    await Renewal(user_id=USER_ID, period_end=subscription.current_period_end, provider="yookassa", plan="month",
                  label="inv_open", next_attempt_at=clock(), created_at=clock(), updated_at=clock()).insert()
    await send(dispatcher, bot, "/cancel")
    question = fake.bot_messages(USER_ID)[-1]
    assert "•••• 4242" in question["text"] and "pm-saved-1" not in question["text"]
    await dispatcher.feed_raw_update(bot, press(question, 1, 50))  # Keep it
    assert (await get_subscription(USER_ID)).auto_renew is True  # type: ignore[union-attr]

    await send(dispatcher, bot, "/cancel", update_id=51, message_id=11)
    question = fake.bot_messages(USER_ID)[-1]
    await dispatcher.feed_raw_update(bot, press(question, 0, 52))  # Turn it off
    edited = fake.sent("editMessageText")[-1]
    assert edited["text"].startswith("Automatic renewal is off")
    stored = await get_subscription(USER_ID)
    assert stored is not None and stored.auto_renew is False
    [renewal] = await Renewal.find_all().to_list()
    assert renewal.status is RenewalStatus.CLOSED, "an open renewal stops at once"

    await worker.drain()  # the deletion job: YooKassa is not configured here, so it is forgotten here only
    stored = await get_subscription(USER_ID)
    assert stored is not None and stored.payment_token is None
    status, body = await get_json(client, f"/api/users/{USER_ID}/subscription")
    assert body["auto_renew"] is False and body["status"] == "active"

    await send(dispatcher, bot, "/cancel", update_id=53, message_id=12)
    assert last_text(fake).startswith("You have no automatic renewal")


async def test_cancel_without_a_subscription_says_so(client, dispatcher, bot, fake):
    await send(dispatcher, bot, "/cancel")
    assert last_text(fake) == "You have no automatic renewal to turn off."
